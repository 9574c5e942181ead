/** The status page's renderer (src/http/status-page/render.js): what it shows, and that nothing from outside becomes markup. */
import { describe, expect, it } from 'vitest';
import type { StatusPageData } from '../../../src/cluster/status-page-data.ts';
import type { PrefetchJobStatus } from '../../../src/prefetch/ports.ts';
import { escapeHtml, formatBytes, formatDuration, formatPercent, renderJobs, renderSections } from '../../../src/http/status-page/render.js';

const evil = '<img src=x onerror=alert(1)>"\'&';

function data(overrides: Partial<StatusPageData> = {}): StatusPageData {
  return {
    generated_at: '2026-11-30T03:00:00Z',
    node_id: 'n1',
    cluster: {
      replica_health: { n1: 'OK', n2: 'unreachable: no heartbeat for 7s' },
      current_issues: [{ critical: false, description: 'replica n2 has no heartbeat for 7s' }],
      leader: 'n1',
      replicas: {
        n1: { advertise_url: 'http://10.0.0.1:5000', version: '0.2.0', uptime_seconds: 8123, cache_bytes: 512 * 1024 * 1024, hit_ratio: 0.93, last_heartbeat: '2026-11-30T02:59:58Z' },
      },
    },
    cache: {
      used_bytes: 512 * 1024 * 1024,
      max_bytes: 1024 * 1024 * 1024,
      entries: 42,
      evictions: 3,
      evicted_bytes: 1000,
      blob_lookups: 100,
      hit_ratio: 0.93,
      served_from_cache_bytes: 900,
      served_from_fill_bytes: 100,
      fetched_upstream_bytes: 150,
      saved_bytes: 850,
    },
    history: [
      { start: Date.parse('2026-11-30T02:59:00Z'), lookups: 0, hit_ratio: null, from_cache_bytes: 0, upstream_bytes: 0 },
      { start: Date.parse('2026-11-30T03:00:00Z'), lookups: 10, hit_ratio: 0.5, from_cache_bytes: 2048, upstream_bytes: 1024 },
    ],
    top_by_pulls: [{ repository: 'library/nginx', pulls: 7, bytes: 2048 }],
    top_by_bytes: [{ repository: 'library/nginx', pulls: 7, bytes: 2048 }],
    recent_pulls: [
      { at: '2026-11-30T02:59:59Z', repository: 'library/nginx', reference: '1.27', client: '10.1.2.3', result: 'hit', user: 'alice' },
      { at: '2026-11-30T02:59:58Z', repository: 'library/nginx', reference: `sha256:${'a'.repeat(64)}`, client: '10.1.2.4', result: 'miss' },
    ],
    pulls_scope: 'node',
    show_users: true,
    ...overrides,
  };
}

const allHtml = (d: StatusPageData): string => Object.values(renderSections(d)).join('\n');

describe('status page renderer', () => {
  it('escapes the five HTML-significant characters', () => {
    expect(escapeHtml(evil)).toBe('&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;');
    expect(escapeHtml(undefined)).toBe('');
    expect(escapeHtml(12)).toBe('12');
  });

  it('formats bytes, ratios and durations as people read them', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(64 * 1024 * 1024)).toBe('64 MiB');
    expect(formatBytes(-1)).toBe('?');
    expect(formatPercent(0.931)).toBe('93.1%');
    expect(formatPercent(null)).toBe('–');
    expect(formatDuration(8123)).toBe('2h 15m');
    expect(formatDuration(90_000)).toBe('1d 1h');
    expect(formatDuration(59)).toBe('59s');
  });

  it('lists every replica with health, leader badge, version, uptime, cache use and heartbeat', () => {
    const html = renderSections(data())['sec-replicas'];
    expect(html).toContain('data-replica="n1"');
    expect(html).toContain('data-replica="n2"');
    expect(html).toMatch(/data-replica="n1"[\s\S]*badge leader[\s\S]*this node/);
    expect(html).toContain('<dd class="version">0.2.0</dd>');
    expect(html).toContain('<dd class="uptime">2h 15m</dd>');
    expect(html).toContain('512 MiB of 1.0 GiB');
    expect(html).toContain('<dd class="heartbeat">02:59:58 UTC</dd>');
    // n2 has no live record: its health, in red, and no figures.
    expect(html).toMatch(/<article class="replica bad" data-replica="n2">[\s\S]*unreachable: no heartbeat for 7s[\s\S]*No live record/);
  });

  it("draws each replica's cache against its own budget when its record carries one", () => {
    const base = data();
    const n1 = { ...base.cluster.replicas!['n1']!, cache_max_bytes: 4 * 1024 * 1024 * 1024 };
    const n2 = { ...n1, advertise_url: 'http://10.0.0.2:5000', cache_bytes: 256 * 1024 * 1024, cache_max_bytes: 512 * 1024 * 1024 };
    const html = renderSections(data({ cluster: { ...base.cluster, replicas: { n1, n2 } } }))['sec-replicas'];
    expect(html).toMatch(/data-replica="n1"[\s\S]*512 MiB of 4\.0 GiB[\s\S]*data-replica="n2"[\s\S]*256 MiB of 512 MiB/);
  });

  it('shows the cache use, hit ratio and the bytes saved', () => {
    const html = renderSections(data())['sec-cache'];
    expect(html).toContain('<span id="cache-used">512 MiB</span> of <span id="cache-max">1.0 GiB</span>');
    expect(html).toContain('value="0.5000"');
    expect(html).toContain('<dd id="hit-ratio" data-value="0.93">93.0%</dd>');
    expect(html).toContain('<dd id="saved">850 B (85.0% of blob bytes served)</dd>');
    expect(renderSections(data({ cache: { ...data().cache, blob_lookups: 0, hit_ratio: 0 } }))['sec-cache']).toContain('<dd id="hit-ratio" data-value="0">–</dd>');
  });

  it('draws the hour as bars per minute with traffic and the hit ratio as a line', () => {
    const svg = renderSections(data())['sec-chart'];
    expect(svg.match(/<rect class="c-cache"/g)).toHaveLength(1);
    expect(svg.match(/<rect class="c-upstream"/g)).toHaveLength(1);
    expect(svg).toMatch(/<polyline class="c-ratio" points="[\d.]+,[\d.]+ [\d.]+,[\d.]+"\/>/); // one minute with lookups: a dash
    expect(svg).toContain('peak 3.0 KiB/min');
    expect(svg).toContain('03:00:00 UTC: hit ratio 50.0%, 2.0 KiB from cache, 1.0 KiB upstream');
    const quiet = renderSections(data({ history: [] }))['sec-chart'];
    expect(quiet).toContain('no blob traffic in the last hour');
    expect(quiet).not.toContain('<rect');
  });

  it('lists recent pulls as repository:tag or repository@digest, with the user when access control is on', () => {
    const html = renderSections(data())['sec-pulls'];
    expect(html).toContain('<td class="repo">library/nginx:1.27</td><td>10.1.2.3</td><td><span class="result r-hit">hit</span></td><td>alice</td>');
    expect(html).toContain(`library/nginx@sha256:${'a'.repeat(64)}`);
    expect(html).toContain('<th>User</th>');
    expect(renderSections(data({ show_users: false }))['sec-pulls']).not.toContain('<th>User</th>');
    expect(renderSections(data({ recent_pulls: [] }))['sec-pulls']).toContain('No pulls yet.');
  });

  it('says whose pulls these are: this node only, or every replica with the replica that answered each', () => {
    expect(renderSections(data())['sec-pulls']).toContain('on this node (n1) only: without Redis each replica keeps its own');
    expect(renderSections(data())['sec-pulls']).not.toContain('<th>Replica</th>');
    const shared = data({ pulls_scope: 'cluster', recent_pulls: [{ at: '2026-11-30T02:59:59Z', repository: 'a/b', reference: 'v1', client: 'c', result: 'stale', node: 'n2' }] });
    const html = renderSections(shared)['sec-pulls'];
    expect(html).toContain('on every replica (shared through Redis)');
    expect(html).toContain('<th>Replica</th>');
    expect(html).toContain('<span class="result r-stale">stale</span></td><td>–</td><td>n2</td></tr>');
    expect(renderSections(shared)['sec-repos']).toContain('Counted on every replica');
  });

  it('shows current issues in red, critical ones marked', () => {
    const html = renderSections(data({ cluster: { ...data().cluster, current_issues: [{ critical: true, description: 'etcd unreachable' }] } }))['sec-issues'];
    expect(html).toBe('<ul class="issues"><li class="issue critical"><strong>critical</strong> etcd unreachable</li></ul>');
    expect(renderSections(data({ cluster: { ...data().cluster, current_issues: [] } }))['sec-issues']).toContain('No current issues.');
  });

  it('turns no untrusted value into markup: repository, tag, client, user, replica id, issue, version', () => {
    const hostile = data({
      node_id: evil,
      cluster: {
        replica_health: { [evil]: evil },
        current_issues: [{ critical: false, description: evil }],
        leader: evil,
        replicas: { [evil]: { advertise_url: evil, version: evil, uptime_seconds: 1, cache_bytes: 1, hit_ratio: 0, last_heartbeat: evil } },
      },
      top_by_pulls: [{ repository: evil, pulls: 1, bytes: 1 }],
      top_by_bytes: [{ repository: evil, pulls: 1, bytes: 1 }],
      recent_pulls: [{ at: evil, repository: evil, reference: evil, client: evil, result: 'hit', user: evil }],
    });
    const html = allHtml(hostile);
    expect(html).not.toContain('<img');
    expect(html).not.toMatch(/onerror=alert\(1\)>/);
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    // Attribute values cannot be closed early either.
    expect(html).toContain(`data-replica="${escapeHtml(evil)}"`);
  });
});

describe('prefetch jobs section', () => {
  const job: PrefetchJobStatus = {
    name: 'nightly-base',
    schedule: '0 3 * * *',
    timezone: 'Europe/Paris',
    upstream: 'registry-1.docker.io',
    nextRunAt: '2026-12-01T02:00:00.000Z',
    lastRun: {
      runId: 'r1',
      startedAt: '2026-11-30T02:00:00.000Z',
      finishedAt: '2026-11-30T02:05:00.000Z',
      result: 'partial',
      counts: { images: 10, warmed: 9, skipped: 0, failed: 1, blobs: 40, bytes: 3 * 1024 * 1024 },
      errors: ['library/busybox:1.36: MANIFEST_UNKNOWN'],
    },
  };

  it('says no prefetch jobs are configured for an empty list or a node without the prefetch API', () => {
    expect(renderJobs({ jobs: [] })).toContain('No prefetch jobs configured.');
    expect(renderJobs(null)).toContain('No prefetch jobs configured.');
  });

  it('shows each job with schedule, next and last run and its result', () => {
    const html = renderJobs({ jobs: [job, { ...job, name: 'never', lastRun: undefined, nextRunAt: undefined }] });
    expect(html).toContain('<tr class="job"><td>nightly-base <span class="muted">(registry-1.docker.io)</span></td><td><code>0 3 * * *</code> Europe/Paris</td>');
    expect(html).toContain('<td>2026-12-01 02:00:00 UTC</td><td>2026-11-30 02:00:00 UTC</td>');
    expect(html).toContain('<span class="result j-partial">partial</span> 9/10 images, 3.0 MiB, 1 failed');
    expect(html).toContain('<div class="issue">library/busybox:1.36: MANIFEST_UNKNOWN</div>');
    expect(html).toMatch(/never <span class="muted">[\s\S]*<td>–<\/td><td>–<\/td><td><span class="muted">never run<\/span>/);
  });

  it('renders the jobs the status document carries, as part of every section', () => {
    expect(renderSections(data({ jobs: [job] }))['sec-jobs']).toContain('<tr class="job"><td>nightly-base');
    expect(renderSections(data({ jobs: 'prefetch jobs run in the cluster primary' }))['sec-jobs']).toContain('Could not read the prefetch jobs: prefetch jobs run in the cluster primary');
    expect(renderSections(data())['sec-jobs']).toContain('No prefetch jobs configured.');
  });

  it('shows a failure to read the jobs as an issue, escaped', () => {
    expect(renderJobs('HTTP 500')).toBe('<p class="issue">Could not read the prefetch jobs: HTTP 500</p>');
    expect(renderJobs({ jobs: [{ ...job, name: evil }] })).not.toContain('<img');
  });
});
