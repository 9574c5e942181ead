/**
 * The status page's sections, rendered from the status document
 * (src/cluster/status-page-data.ts) to HTML strings. One renderer for both
 * sides: the server renders the first paint with it, and the browser (it is
 * served as an ES module at /status/assets/render.js) renders every refresh
 * with it. Plain JavaScript, no build step; types in render.d.ts.
 *
 * Every value that came from outside (repository names, tags, user names,
 * client addresses, replica ids, issue texts) goes through escapeHtml; no
 * value is ever put in an attribute without it, and nothing here produces a
 * script, an event handler or a style attribute (the page's CSP forbids them).
 */

const escapes = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** @param {unknown} value */
export function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => escapes[/** @type {keyof typeof escapes} */ (c)]);
}

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** @param {number} bytes */
export function formatBytes(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** @param {number | null | undefined} ratio */
export function formatPercent(ratio) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '–';
  return `${(ratio * 100).toFixed(1)}%`;
}

/** @param {number} seconds */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3_600);
  const m = Math.floor((s % 3_600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

/** `2026-11-30T03:00:00Z` → `03:00:00` (UTC, as the logs). @param {string | undefined} iso */
export function formatTime(iso) {
  if (typeof iso !== 'string') return '–';
  const m = /T(\d\d:\d\d:\d\d)/.exec(iso);
  return m ? m[1] : iso.slice(0, 19);
}

/** @param {string | undefined} iso */
function formatDateTime(iso) {
  if (typeof iso !== 'string') return '–';
  return iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC');
}

/** @param {number} used @param {number} max @param {string} label */
function bar(used, max, label) {
  const ratio = max > 0 ? Math.min(1, used / max) : 0;
  // A <meter> needs no style attribute (the CSP forbids inline styles) and reads out as a gauge.
  return `<meter class="bar" min="0" max="1" low="0.75" high="0.9" optimum="0" value="${ratio.toFixed(4)}" title="${escapeHtml(label)}" aria-label="${escapeHtml(label)}"></meter>`;
}

/** @param {string} health */
function healthClass(health) {
  if (health === 'OK') return 'ok';
  if (health.startsWith('degraded')) return 'warn';
  return 'bad';
}

/** @param {import('./render.d.ts').StatusPageData} data */
export function renderIssues(data) {
  const issues = data.cluster.current_issues ?? [];
  if (issues.length === 0) return '<p class="ok-note">No current issues.</p>';
  return `<ul class="issues">${issues
    .map((i) => `<li class="issue${i.critical ? ' critical' : ''}">${i.critical ? '<strong>critical</strong> ' : ''}${escapeHtml(i.description)}</li>`)
    .join('')}</ul>`;
}

/** @param {import('./render.d.ts').StatusPageData} data */
export function renderReplicas(data) {
  const { cluster, cache, node_id: self } = data;
  const ids = [...new Set([...Object.keys(cluster.replica_health ?? {}), ...Object.keys(cluster.replicas ?? {})])].sort();
  if (ids.length === 0) return '<p>No replica known.</p>';
  /** A replica's own budget; this node's for records of versions that did not publish one. */
  const budgetOf = (r) => (typeof r.cache_max_bytes === 'number' ? r.cache_max_bytes : cache.max_bytes);
  const cards = ids.map((id) => {
    const health = cluster.replica_health?.[id] ?? 'unknown';
    const r = cluster.replicas?.[id];
    const badges = [
      cluster.leader === id ? '<span class="badge leader">leader</span>' : '',
      id === self ? '<span class="badge self">this node</span>' : '',
    ].join('');
    const figures = r
      ? `<dl>
<dt>Version</dt><dd class="version">${escapeHtml(r.version)}</dd>
<dt>Uptime</dt><dd class="uptime">${escapeHtml(formatDuration(r.uptime_seconds))}</dd>
<dt>Cache</dt><dd class="cache-bytes">${escapeHtml(formatBytes(r.cache_bytes))} of ${escapeHtml(formatBytes(budgetOf(r)))}${bar(r.cache_bytes, budgetOf(r), `${formatBytes(r.cache_bytes)} of ${formatBytes(budgetOf(r))}`)}</dd>
<dt>Hit ratio</dt><dd>${escapeHtml(formatPercent(r.hit_ratio))}</dd>
<dt>Heartbeat</dt><dd class="heartbeat">${escapeHtml(formatTime(r.last_heartbeat))} UTC</dd>
<dt>Address</dt><dd class="address">${escapeHtml(r.advertise_url || '–')}</dd>
</dl>`
      : '<p class="muted">No live record.</p>';
    return `<article class="replica ${healthClass(health)}" data-replica="${escapeHtml(id)}">
<h3><span class="replica-id">${escapeHtml(id)}</span>${badges}</h3>
<p class="health ${healthClass(health)}">${escapeHtml(health)}</p>
${figures}
</article>`;
  });
  return `<div class="replicas">${cards.join('')}</div>`;
}

/** @param {import('./render.d.ts').StatusPageData} data */
export function renderCache(data) {
  const c = data.cache;
  const served = c.served_from_cache_bytes + c.served_from_fill_bytes;
  return `<div class="cache-use">
<p><span id="cache-used">${escapeHtml(formatBytes(c.used_bytes))}</span> of <span id="cache-max">${escapeHtml(formatBytes(c.max_bytes))}</span> used
(${escapeHtml(formatPercent(c.max_bytes > 0 ? c.used_bytes / c.max_bytes : 0))})</p>
${bar(c.used_bytes, c.max_bytes, `${formatBytes(c.used_bytes)} of ${formatBytes(c.max_bytes)}`)}
</div>
<dl class="figures">
<div><dt>Hit ratio</dt><dd id="hit-ratio" data-value="${escapeHtml(c.hit_ratio)}">${escapeHtml(formatPercent(c.blob_lookups > 0 ? c.hit_ratio : null))}</dd></div>
<div><dt>Blob lookups</dt><dd id="blob-lookups">${escapeHtml(c.blob_lookups)}</dd></div>
<div><dt>Entries</dt><dd id="cache-entries">${escapeHtml(c.entries)}</dd></div>
<div><dt>Evictions</dt><dd id="cache-evictions">${escapeHtml(c.evictions)} (${escapeHtml(formatBytes(c.evicted_bytes))})</dd></div>
<div><dt>Served from cache</dt><dd id="served-cache">${escapeHtml(formatBytes(c.served_from_cache_bytes))}</dd></div>
<div><dt>Served while filling</dt><dd id="served-fill">${escapeHtml(formatBytes(c.served_from_fill_bytes))}</dd></div>
<div><dt>Fetched upstream</dt><dd id="fetched-upstream">${escapeHtml(formatBytes(c.fetched_upstream_bytes))}</dd></div>
<div><dt>WAN bytes saved</dt><dd id="saved">${escapeHtml(formatBytes(c.saved_bytes))}${served > 0 ? ` (${escapeHtml(formatPercent(c.saved_bytes / served))} of blob bytes served)` : ''}</dd></div>
</dl>`;
}

/** The last hour per minute: bytes from cache and from upstream as stacked bars, the hit ratio as a line. @param {import('./render.d.ts').StatusPageData} data */
export function renderChart(data) {
  const minutes = data.history ?? [];
  const width = 600;
  const height = 160;
  const top = 10;
  const plot = height - top - 20;
  const step = minutes.length > 0 ? width / minutes.length : width;
  const maxBytes = Math.max(1, ...minutes.map((m) => m.from_cache_bytes + m.upstream_bytes));
  const bars = [];
  const points = [];
  minutes.forEach((m, i) => {
    const x = i * step;
    const cacheH = (m.from_cache_bytes / maxBytes) * plot;
    const upH = (m.upstream_bytes / maxBytes) * plot;
    const title = `${formatTime(new Date(m.start).toISOString())} UTC: hit ratio ${formatPercent(m.hit_ratio)}, ${formatBytes(m.from_cache_bytes)} from cache, ${formatBytes(m.upstream_bytes)} upstream`;
    if (cacheH + upH > 0) {
      const w = Math.max(1, step - 2).toFixed(1);
      bars.push(
        `<g><title>${escapeHtml(title)}</title>` +
          (cacheH > 0 ? `<rect class="c-cache" x="${(x + 1).toFixed(1)}" y="${(top + plot - cacheH).toFixed(1)}" width="${w}" height="${cacheH.toFixed(1)}"/>` : '') +
          (upH > 0 ? `<rect class="c-upstream" x="${(x + 1).toFixed(1)}" y="${(top + plot - cacheH - upH).toFixed(1)}" width="${w}" height="${upH.toFixed(1)}"/>` : '') +
          '</g>',
      );
    }
    if (m.hit_ratio !== null) points.push(`${(x + step / 2).toFixed(1)},${(top + plot - m.hit_ratio * plot).toFixed(1)}`);
  });
  // One point is drawn as a short dash (the chart stretches: a circle would not stay round).
  const line =
    points.length > 1
      ? `<polyline class="c-ratio" points="${points.join(' ')}"/>`
      : points.length === 1
        ? `<polyline class="c-ratio" points="${points[0].replace(/^([\d.]+)/, (x) => String(Number(x) - step / 2))} ${points[0].replace(/^([\d.]+)/, (x) => String(Number(x) + step / 2))}"/>`
        : '';
  // Stretched to the section's width (labels are HTML below it, so no text is distorted).
  return `<svg class="chart" viewBox="0 0 ${width} ${height - 20}" preserveAspectRatio="none" role="img" aria-label="Hit ratio and bytes per minute over the last hour">
<line class="c-axis" x1="0" y1="${top + plot}" x2="${width}" y2="${top + plot}"/>
${bars.join('')}
${line}
</svg>
<div class="chart-axis"><span>−60 min</span><span>${bars.length > 0 ? `peak ${escapeHtml(formatBytes(maxBytes))}/min` : 'no blob traffic in the last hour'}</span><span>now</span></div>
<p class="legend"><span class="key k-cache"></span>from cache <span class="key k-upstream"></span>fetched upstream <span class="key k-ratio"></span>hit ratio (0–100%, full height = 100%)</p>`;
}

/** @param {import('./render.d.ts').RepositoryPulls[]} rows @param {'pulls' | 'bytes'} by @param {string} id */
function repoTable(rows, by, id) {
  if (rows.length === 0) return `<p class="muted" id="${id}">No pulls yet.</p>`;
  return `<table id="${id}"><thead><tr><th>Repository</th><th class="num">Pulls</th><th class="num">Bytes</th></tr></thead><tbody>${rows
    .map(
      (r) =>
        `<tr><td class="repo">${escapeHtml(r.repository)}</td><td class="num${by === 'pulls' ? ' key-col' : ''}">${escapeHtml(r.pulls)}</td><td class="num${by === 'bytes' ? ' key-col' : ''}">${escapeHtml(formatBytes(r.bytes))}</td></tr>`,
    )
    .join('')}</tbody></table>`;
}

/** @param {import('./render.d.ts').StatusPageData} data */
export function renderRepositories(data) {
  return `${scopeNote(data, 'Counted')}<div class="two"><div><h3>By pulls</h3>${repoTable(data.top_by_pulls ?? [], 'pulls', 'top-pulls')}</div><div><h3>By bytes</h3>${repoTable(data.top_by_bytes ?? [], 'bytes', 'top-bytes')}</div></div>`;
}

/** @param {string} repository @param {string} reference */
function imageName(repository, reference) {
  return reference.includes(':') ? `${repository}@${reference}` : `${repository}:${reference}`;
}

/** @param {import('./render.d.ts').StatusPageData} data */
export function renderPulls(data) {
  const pulls = data.recent_pulls ?? [];
  const scope = scopeNote(data, 'Manifest pulls, newest first,');
  if (pulls.length === 0) return `${scope}<p class="muted" id="recent-pulls">No pulls yet.</p>`;
  const users = data.show_users;
  const nodes = data.pulls_scope === 'cluster';
  return `${scope}<table id="recent-pulls"><thead><tr><th>Time (UTC)</th><th>Image</th><th>Client</th><th>Result</th>${users ? '<th>User</th>' : ''}${nodes ? '<th>Replica</th>' : ''}</tr></thead><tbody>${pulls
    .map(
      (p) =>
        `<tr class="pull"><td>${escapeHtml(formatTime(p.at))}</td><td class="repo">${escapeHtml(imageName(p.repository, p.reference))}</td><td>${escapeHtml(p.client)}</td><td><span class="result r-${escapeHtml(p.result)}">${escapeHtml(p.result)}</span></td>${users ? `<td>${escapeHtml(p.user ?? '–')}</td>` : ''}${nodes ? `<td>${escapeHtml(p.node ?? '–')}</td>` : ''}</tr>`,
    )
    .join('')}</tbody></table>`;
}

/** Whose pulls these are. @param {import('./render.d.ts').StatusPageData} data @param {string} what */
function scopeNote(data, what) {
  return data.pulls_scope === 'cluster'
    ? `<p class="muted scope">${escapeHtml(what)} on every replica (shared through Redis).</p>`
    : `<p class="muted scope">${escapeHtml(what)} on this node (${escapeHtml(data.node_id)}) only: ${'without Redis each replica keeps its own'}.</p>`;
}

/**
 * The prefetch jobs section, from what `GET /api/v0/prefetch/jobs` answered:
 * `{jobs: [...]}`; `null` for a 404 (no prefetch on this node) or nothing
 * yet; a string for an error to show.
 * @param {{ jobs: import('./render.d.ts').PrefetchJobView[] } | null | string} answer
 */
export function renderJobs(answer) {
  if (typeof answer === 'string') return `<p class="issue">Could not read the prefetch jobs: ${escapeHtml(answer)}</p>`;
  const jobs = answer?.jobs ?? [];
  if (!Array.isArray(jobs) || jobs.length === 0) return '<p class="muted" id="jobs-none">No prefetch jobs configured.</p>';
  return `<table id="jobs"><thead><tr><th>Job</th><th>Schedule</th><th>Next run</th><th>Last run</th><th>Result</th></tr></thead><tbody>${jobs
    .map((job) => {
      const last = job.lastRun;
      const counts = last?.counts;
      const result = last
        ? `<span class="result j-${escapeHtml(last.result)}">${escapeHtml(last.result)}</span>` +
          (counts ? ` ${escapeHtml(counts.warmed)}/${escapeHtml(counts.images)} images, ${escapeHtml(formatBytes(counts.bytes))}${counts.failed > 0 ? `, ${escapeHtml(counts.failed)} failed` : ''}` : '') +
          (last.errors?.length ? `<div class="issue">${escapeHtml(last.errors[0])}</div>` : '')
        : '<span class="muted">never run</span>';
      return `<tr class="job"><td>${escapeHtml(job.name)} <span class="muted">(${escapeHtml(job.upstream)})</span></td><td><code>${escapeHtml(job.schedule)}</code> ${escapeHtml(job.timezone)}</td><td>${escapeHtml(formatDateTime(job.nextRunAt))}</td><td>${escapeHtml(formatDateTime(last?.startedAt))}</td><td>${result}</td></tr>`;
    })
    .join('')}</tbody></table>`;
}

/** Every data section by the id of its container. @param {import('./render.d.ts').StatusPageData} data */
export function renderSections(data) {
  return {
    'sec-issues': renderIssues(data),
    'sec-replicas': renderReplicas(data),
    'sec-cache': renderCache(data),
    'sec-chart': renderChart(data),
    'sec-repos': renderRepositories(data),
    'sec-pulls': renderPulls(data),
    'sec-jobs': renderJobs(data.jobs === undefined ? null : typeof data.jobs === 'string' ? data.jobs : { jobs: data.jobs }),
  };
}
