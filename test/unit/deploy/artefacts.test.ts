/**
 * deploy/ checked with the real tools (systemd-analyze, haproxy -c, nginx -t,
 * promtool), every YAML/JSON artefact parsed, and every metric the alert
 * rules and the Grafana dashboard use matched against the ones Outpost
 * defines in src/observability/metrics.ts.
 */
import { copyFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { loadConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/types.ts';
import { createCleanupStack } from '../../support/cleanup.ts';
import { checkHaproxyConfig, parseHaproxySections } from '../../support/haproxy.ts';
import { requireBinary, runProcess } from '../../support/process.ts';
import { makeTempDir, removeTempDir } from '../../support/temp.ts';

const root = resolve(import.meta.dirname, '../../..');
const deploy = join(root, 'deploy');
const cleanup = createCleanupStack();
afterAll(() => cleanup.run());

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  cleanup.add(() => removeTempDir(dir));
  return dir;
}

async function run(cmd: string, args: readonly string[], cwd?: string, timeoutMs = 30_000) {
  const result = await runProcess(cmd, args, { timeoutMs, ...(cwd === undefined ? {} : { cwd }) });
  return { ...result, text: `${result.stdout.toString('utf8')}${result.stderr}` };
}

const read = (path: string): Promise<string> => readFile(join(deploy, path), 'utf8');

/** How long a node may take to stop after SIGTERM before its primary gives up (src/process/primary.ts). */
function stopBoundSeconds(config: Config): number {
  return config.drainSeconds + config.shutdownTimeoutMs / 1000 + 10;
}

/** KEY=value lines of a systemd EnvironmentFile (comments and blanks skipped). */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m !== null) env[m[1]!] = m[2]!;
  }
  return env;
}

// ---------------------------------------------------------------------------
// The metric catalogue: src/observability/metrics.ts is the source of truth.

interface MetricDef {
  type: 'Counter' | 'Gauge' | 'Histogram' | 'Summary';
  labels: string[];
}

interface Catalogue {
  /** Outpost's own metrics by name. */
  metrics: Map<string, MetricDef>;
  /** prom-client's default process metric names (collectDefaultMetrics, standard names) → type. */
  defaultMetrics: Map<string, string>;
  /** Labels prometheus.yml attaches to every target of job="outpost" (beside job and instance). */
  targetLabels: string[];
  /** Recording rules alerts.yml defines (`level:metric:operations` names). */
  recorded: Set<string>;
}

/**
 * The metrics src/observability/metrics.ts defines (its `name: '...'`
 * entries), and prom-client's default process metrics, which it collects
 * under their standard names (no prefix) so stock dashboards work.
 */
async function definedMetrics(): Promise<Catalogue> {
  const source = await readFile(join(root, 'src/observability/metrics.ts'), 'utf8');
  const metrics = new Map<string, MetricDef>();
  for (const m of source.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{\s*name: '([^']+)',([\s\S]*?)\}\)/g)) {
    const labels = /labelNames: \[([^\]]*)\]/.exec(m[3]!)?.[1] ?? '';
    metrics.set(m[2]!, { type: m[1] as MetricDef['type'], labels: [...labels.matchAll(/'([^']+)'/g)].map((l) => l[1]!) });
  }
  // Every `name: '...'` entry must have been understood above.
  const names = [...source.matchAll(/\bname: '([^']+)'/g)].map((m) => m[1]!);
  expect(names.filter((n) => !metrics.has(n))).toEqual([]);
  const calls = [...source.matchAll(/collectDefaultMetrics\((\{[^}]*\})\)/g)].map((m) => m[1]!);
  if (calls.length === 0) throw new Error('metrics.ts: collectDefaultMetrics is never called');
  for (const call of calls) expect(call, 'default metrics keep their standard names').not.toMatch(/prefix/);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const defaultMetrics = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
  const recorded = new Set((await alertRules()).flatMap((r) => (r.record === undefined ? [] : [r.record])));
  return { metrics, defaultMetrics, targetLabels: await outpostTargetLabels(), recorded };
}

/**
 * The labels prometheus.yml gives the targets of job="outpost": its static
 * configs' `labels`, and the `target_label`s of its relabel rules, commented
 * out ones included (the Kubernetes variant), so queries may group by them.
 */
async function outpostTargetLabels(): Promise<string[]> {
  const text = await read('prometheus/prometheus.yml');
  const config = parseYaml(text) as {
    scrape_configs: Array<{ job_name: string; static_configs?: Array<{ labels?: Record<string, string> }>; relabel_configs?: Array<{ target_label?: string }> }>;
  };
  const job = config.scrape_configs.find((s) => s.job_name === 'outpost');
  const labels = new Set([
    ...(job?.static_configs ?? []).flatMap((s) => Object.keys(s.labels ?? {})),
    ...(job?.relabel_configs ?? []).flatMap((r) => (r.target_label === undefined ? [] : [r.target_label])),
    ...[...text.matchAll(/^\s*#\s+target_label: ([a-z_][a-z0-9_]*)$/gm)].map((m) => m[1]!),
  ]);
  for (const internal of ['job', 'instance', '__address__', '__metrics_path__', '__scheme__']) labels.delete(internal);
  return [...labels].sort();
}

/** Recording-rule names (`level:metric:operations`) in a PromQL expression, string literals left out. */
function recordedNamesIn(expr: string): string[] {
  const code = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  return [...new Set([...code.matchAll(/\b[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]+/g)].map((m) => m[0]))];
}

/** `outpost_*`, `process_*` and `nodejs_*` identifiers in a PromQL expression. */
function metricNamesIn(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b(?:outpost|process|nodejs)_[a-z0-9_]+/g)].map((m) => m[0]))];
}

/** The problems with one expression's metric names and label matchers (empty when all is well). */
function checkExpression(expr: string, where: string, c: Catalogue): string[] {
  const problems: string[] = [];
  const labelsOf = (name: string): string[] | undefined => {
    const suffix = /_(bucket|sum|count)$/.exec(name);
    const base = suffix === null ? undefined : name.slice(0, -suffix[0].length);
    const def = c.metrics.get(name) ?? (base === undefined ? undefined : c.metrics.get(base));
    if (def !== undefined) {
      if (!c.metrics.has(name) && def.type !== 'Histogram' && def.type !== 'Summary') {
        problems.push(`${where}: ${name}: _${suffix![1]} of ${base}, which is a ${def.type}, not a histogram`);
      }
      return [...def.labels, 'job', 'instance', ...c.targetLabels, ...(suffix?.[1] === 'bucket' ? ['le'] : [])];
    }
    const isDefault = c.defaultMetrics.has(name) || (base !== undefined && c.defaultMetrics.get(base) === 'histogram');
    if (!isDefault) problems.push(`${where}: ${name} is neither defined in src/observability/metrics.ts nor a default process metric (process_*, nodejs_*)`);
    return isDefault ? ['job', 'instance', ...c.targetLabels, ...defaultLabels(name)] : undefined;
  };
  const allLabels = new Set<string>(['job', 'instance', ...c.targetLabels]);
  for (const name of recordedNamesIn(expr)) {
    if (!c.recorded.has(name)) problems.push(`${where}: ${name} is not a recording rule of deploy/prometheus/alerts.yml`);
  }
  let labelsKnown = true;
  for (const name of metricNamesIn(expr)) {
    const labels = labelsOf(name);
    if (labels === undefined) labelsKnown = false;
    else for (const l of labels) allLabels.add(l);
  }
  for (const m of expr.matchAll(/\b((?:outpost|process|nodejs)_[a-z0-9_]+)\s*\{([^}]*)\}/g)) {
    const labels = labelsOf(m[1]!);
    if (labels === undefined) continue;
    for (const l of m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) {
      if (!labels.includes(l[1]!)) problems.push(`${where}: ${m[1]} has no label "${l[1]}" (labels: ${labels.join(', ')})`);
    }
  }
  if (labelsKnown) {
    for (const m of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
      for (const l of m[1]!.split(',').map((s) => s.trim()).filter(Boolean)) {
        if (!allLabels.has(l)) problems.push(`${where}: grouping or matching by "${l}", which none of its metrics has`);
      }
    }
  }
  return [...new Set(problems)];
}

/** The labels of prom-client's default metrics that have any (the node-wide merge keeps them). */
function defaultLabels(name: string): string[] {
  if (name.startsWith('nodejs_heap_space_size_')) return ['space'];
  if (name.startsWith('nodejs_gc_duration_seconds')) return ['kind', ...(name.endsWith('_bucket') ? ['le'] : [])];
  if (name === 'nodejs_version_info') return ['version', 'major', 'minor', 'patch'];
  return [];
}

interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

async function alertRules(): Promise<AlertRule[]> {
  const doc = parseYaml(await read('prometheus/alerts.yml')) as { groups: Array<{ name: string; rules: AlertRule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type: string; uid: string };
  targets?: Array<{ refId: string; expr: string; datasource?: { type: string; uid: string } }>;
  panels?: Panel[];
}

interface Dashboard {
  schemaVersion: number;
  title: string;
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query: unknown; definition?: string; datasource?: { uid: string } }> };
}

async function dashboard(): Promise<Dashboard> {
  return JSON.parse(await read('grafana/outpost-dashboard.json')) as Dashboard;
}

function dashboardPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

/** Every PromQL expression of the dashboard: panel targets, then variable queries. */
function dashboardExpressions(d: Dashboard): Array<{ where: string; expr: string; promql: boolean }> {
  const fromPanels = dashboardPanels(d).flatMap((p) =>
    (p.targets ?? []).map((t) => ({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr, promql: true })),
  );
  const fromVariables = d.templating.list
    .filter((v) => v.type === 'query')
    .map((v) => ({ where: `variable $${v.name}`, expr: v.definition ?? JSON.stringify(v.query), promql: false }));
  return [...fromPanels, ...fromVariables];
}

/** Grafana's variables replaced so promtool can parse the expression. */
function withoutGrafanaVariables(expr: string): string {
  const durations: Record<string, string> = { __rate_interval: '5m', __interval: '1m', __range: '1h' };
  return expr.replace(/\$\{?(\w+)\}?/g, (_m, name: string) => durations[name] ?? '.*');
}

// ---------------------------------------------------------------------------
// The documented install steps, run against a model of the file system.

interface FsEntry {
  dir: boolean;
  owner: string;
  group: string;
  mode: number;
}

/**
 * Applies the `install` commands of a shell snippet (`install -d ... DIR`,
 * `install ... SRC DEST`, `-o`/`-g`/`-m`; GNU defaults root:root, 0755)
 * to a model where every other path is a root:root 0755 directory.
 */
function applyInstallSteps(lines: readonly string[]): Map<string, FsEntry> {
  const fs = new Map<string, FsEntry>();
  for (const line of lines) {
    for (const command of line.replace(/\s#.*$/, '').split(/&&|;/)) {
      const words = command.trim().split(/\s+/);
      if (words[0] !== 'install') continue;
      let dir = false;
      let owner = 'root';
      let group = 'root';
      let mode = 0o755;
      const operands: string[] = [];
      for (let i = 1; i < words.length; i++) {
        const w = words[i]!;
        if (w === '-d') dir = true;
        else if (w === '-o') owner = words[++i]!;
        else if (w === '-g') group = words[++i]!;
        else if (w === '-m') mode = parseInt(words[++i]!, 8);
        else if (w.startsWith('-')) throw new Error(`install step with an option this model does not know: ${command}`);
        else operands.push(w);
      }
      if (dir) {
        for (const d of operands) fs.set(d.replace(/\/+$/, ''), { dir: true, owner, group, mode });
        continue;
      }
      const dest = operands.at(-1)!;
      for (const src of operands.slice(0, -1)) {
        const target = dest.endsWith('/') || fs.get(dest)?.dir === true ? join(dest, basename(src)) : dest;
        fs.set(target, { dir: false, owner, group, mode });
      }
    }
  }
  return fs;
}

/** Whether `user` (primary group `group`) may r/w/x `path` in the model, directories on the way included. */
function may(fs: Map<string, FsEntry>, path: string, want: 'r' | 'w' | 'x', user: string, group: string): boolean {
  const entryOf = (p: string): FsEntry => fs.get(p) ?? { dir: true, owner: 'root', group: 'root', mode: 0o755 };
  const bits = (e: FsEntry): number => (e.owner === user ? e.mode >> 6 : e.group === group ? e.mode >> 3 : e.mode) & 7;
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i < parts.length; i++) {
    if ((bits(entryOf(`/${parts.slice(0, i).join('/')}`)) & 1) === 0) return false;
  }
  return (bits(entryOf(path)) & { r: 4, w: 2, x: 1 }[want]) !== 0;
}

/** What the documented install steps leave in /etc/outpost: readable by the service, not writable by it, closed to others. */
function checkConfigPermissions(lines: readonly string[]): string[] {
  const fs = applyInstallSteps(lines);
  const problems: string[] = [];
  const files = [...fs.entries()].filter(([p, e]) => !e.dir && p.startsWith('/etc/outpost/')).map(([p]) => p);
  if (!fs.get('/etc/outpost')?.dir) problems.push('the steps do not create /etc/outpost');
  if (!files.includes('/etc/outpost/outpost.env')) problems.push('the steps do not install /etc/outpost/outpost.env');
  for (const path of ['/etc/outpost', ...files]) {
    const want = fs.get(path)?.dir ? 'x' : 'r';
    if (!may(fs, path, want, 'outpost', 'outpost')) problems.push(`${path}: the service user outpost cannot ${want === 'x' ? 'enter' : 'read'} it`);
    if (may(fs, path, 'w', 'outpost', 'outpost')) problems.push(`${path}: the service user outpost can change it`);
    if (may(fs, path, 'r', 'nobody', 'nogroup')) problems.push(`${path}: anyone can read it`);
  }
  return problems;
}

/** The `#   install ...` lines of the unit's header comment. */
async function unitInstallSteps(): Promise<string[]> {
  return [...(await read('systemd/outpost.service')).matchAll(/^#\s+(install .*)$/gm)].map((m) => m[1]!);
}

/** The shell block of the README's systemd section. */
async function readmeInstallSteps(): Promise<string[]> {
  const readme = await readFile(join(root, 'README.md'), 'utf8');
  const section = /^#+ .*systemd.*$([\s\S]*?)^#+ /im.exec(readme)?.[1] ?? '';
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block.split('\n').filter((l) => /^\s*install /.test(l));
}

// ---------------------------------------------------------------------------

describe('systemd unit (deploy/systemd/outpost.service)', () => {
  it('passes systemd-analyze verify with nothing to say about it', async () => {
    const systemdAnalyze = requireBinary('systemd-analyze');
    const dir = await tempDir('systemd');
    // The test machine's node may live outside systemd's search path (nvm);
    // the unit itself runs `node` from /usr/local/bin or /usr/bin.
    const unit = (await read('systemd/outpost.service')).replace(/^ExecStart=node /m, `ExecStart=${process.execPath} `);
    expect(unit).toContain(`ExecStart=${process.execPath} --import tsx /opt/outpost/src/main.ts serve`);
    await writeFile(join(dir, 'outpost.service'), unit);
    const result = await run(systemdAnalyze, ['verify', join(dir, 'outpost.service')], dir);
    expect(result.text.split('\n').filter((l) => l.includes('outpost.service'))).toEqual([]);
    expect(result.exitCode).toBe(0);
  });

  it('is hardened: systemd-analyze security rates its exposure 2.5 or lower', async () => {
    const systemdAnalyze = requireBinary('systemd-analyze');
    const dir = await tempDir('systemd');
    await copyFile(join(deploy, 'systemd/outpost.service'), join(dir, 'outpost.service'));
    const result = await run(systemdAnalyze, ['security', '--offline=yes', '--no-pager', join(dir, 'outpost.service')], dir);
    const level = /Overall exposure level for outpost\.service: ([\d.]+)/.exec(result.text)?.[1];
    expect(level, result.text.slice(-2000)).toBeDefined();
    expect(Number(level)).toBeLessThanOrEqual(2.5);
  });

  it('runs as a dedicated user with the cache in its StateDirectory and stops after the drain bound', async () => {
    const unit = await read('systemd/outpost.service');
    const settings = new Map<string, string[]>();
    for (const m of unit.matchAll(/^([A-Za-z]+)=(.*)$/gm)) settings.set(m[1]!, [...(settings.get(m[1]!) ?? []), m[2]!]);
    const one = (key: string): string | undefined => settings.get(key)?.at(-1);
    expect(one('User')).toBe('outpost');
    expect(one('StateDirectory')).toBe('outpost');
    expect(settings.get('Environment')).toContain('OUTPOST_CACHE_DIR=/var/lib/outpost');
    expect(one('EnvironmentFile')).toBe('/etc/outpost/outpost.env');
    expect(one('ExecStart')).toBe('node --import tsx /opt/outpost/src/main.ts serve');
    // `systemctl reload` reloads the HTTPS certificate (SIGHUP to the primary only).
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(one('KillMode')).toBe('mixed');
    expect(one('Restart')).toBe('on-failure');
    expect(Number(one('LimitNOFILE'))).toBeGreaterThanOrEqual(65536);
    // systemd must wait longer than the primary's own bound (drain + shutdown timeout + 10 s).
    expect(Number(one('TimeoutStopSec'))).toBeGreaterThan(stopBoundSeconds(loadConfig({ env: parseEnvFile(await read('systemd/outpost.env.example')) })));
    const sysusers = await read('systemd/outpost.sysusers');
    expect(sysusers).toMatch(/^u outpost - /m);
  });

  it('its install steps leave /etc/outpost readable by the service, not writable by it, and closed to others', async () => {
    const steps = await unitInstallSteps();
    expect(steps.length).toBeGreaterThanOrEqual(4);
    expect(checkConfigPermissions(steps)).toEqual([]);
    // The unit reads its settings from there, and systemd must not (re)create the directory root-only.
    const unit = await read('systemd/outpost.service');
    expect(unit).toMatch(/^EnvironmentFile=\/etc\/outpost\/outpost\.env$/m);
    expect(unit).not.toMatch(/^ConfigurationDirectory(Mode)?=/m);
  });

  it('the README shows the same install steps', async () => {
    const readme = await readmeInstallSteps();
    expect(readme).toEqual(await unitInstallSteps());
    expect(checkConfigPermissions(readme)).toEqual([]);
  });

  it('the permission check catches the old steps (a root-only /etc/outpost) and world-readable secrets', () => {
    expect(checkConfigPermissions([
      'install -d -m 0750 /etc/outpost',
      'install -m 0640 -g outpost deploy/systemd/outpost.env.example /etc/outpost/outpost.env',
    ])).toEqual(['/etc/outpost: the service user outpost cannot enter it', '/etc/outpost/outpost.env: the service user outpost cannot read it']);
    expect(checkConfigPermissions([
      'install -d -o root -g outpost -m 0755 /etc/outpost',
      'install -o outpost -m 0644 x.env /etc/outpost/outpost.env',
    ])).toEqual(['/etc/outpost: anyone can read it', '/etc/outpost/outpost.env: the service user outpost can change it', '/etc/outpost/outpost.env: anyone can read it']);
  });
});

describe('load balancers', () => {
  it('deploy/haproxy/haproxy.cfg passes haproxy -c without warnings', async () => {
    const check = await checkHaproxyConfig(join(deploy, 'haproxy/haproxy.cfg'));
    expect(check.warnings).toEqual([]);
    expect(check.ok, check.output).toBe(true);
  });

  it('deploy/compose/haproxy.cfg passes haproxy -c (only the compose host names do not resolve here)', async () => {
    const check = await checkHaproxyConfig(join(deploy, 'compose/haproxy.cfg'));
    expect(check.warnings.filter((w) => !/could not resolve address 'outpost-\d'/.test(w))).toEqual([]);
    expect(check.ok, check.output).toBe(true);
  });

  it.each(['haproxy/haproxy.cfg', 'compose/haproxy.cfg'])(
    '%s checks GET /health for 200 on every server, quickly, and never cuts sessions of a node marked down',
    async (file) => {
      const sections = parseHaproxySections(await read(file));
      const backend = sections.find((s) => s.keyword === 'backend' && s.name === 'outpost');
      expect(backend).toBeDefined();
      const body = backend!.lines.map((l) => l.trim());
      expect(body).toContain('option httpchk GET /health');
      expect(body).toContain('http-check expect status 200');
      const servers = body.filter((l) => l.startsWith('server '));
      expect(servers.length).toBeGreaterThanOrEqual(3);
      for (const s of servers) expect(s).toMatch(/\bcheck\b/);
      const defaults = body.find((l) => l.startsWith('default-server '))!;
      // Out within ~inter + fastinter: far inside the default 5 s drain.
      expect(defaults).toMatch(/\binter 1s\b/);
      expect(defaults).toMatch(/\bfall 2\b/);
      expect(defaults).toMatch(/\brise \d\b/);
      expect(sections.flatMap((s) => s.lines).join('\n')).not.toMatch(/on-marked-down\s+shutdown-sessions/);
      const defaultsSection = sections.find((s) => s.keyword === 'defaults')!.lines.map((l) => l.trim());
      expect(defaultsSection).toContain('timeout server 5m');
      expect(defaultsSection).toContain('timeout client 5m');
    },
  );

  it('deploy/nginx/outpost.conf passes nginx -t inside a wrapper nginx.conf', async () => {
    const nginx = requireBinary('nginx');
    const dir = await tempDir('nginx');
    const conf = join(dir, 'nginx.conf');
    await writeFile(
      conf,
      [
        `pid ${dir}/nginx.pid;`,
        `error_log ${dir}/error.log;`,
        'events {}',
        'http {',
        ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${dir}/${t}_temp;`),
        '    access_log off;',
        `    include ${join(deploy, 'nginx/outpost.conf')};`,
        '}',
        '',
      ].join('\n'),
    );
    const result = await run(nginx, ['-t', '-c', conf, '-p', `${dir}/`, '-e', join(dir, 'error.log')], dir);
    expect(result.text).toContain('test is successful');
    expect(result.text.split('\n').filter((l) => /\[(warn|emerg|alert|crit)\]/.test(l))).toEqual([]);
    expect(result.exitCode).toBe(0);
  });

  it('nginx streams blobs unbuffered, balances several nodes, and says it has no active health checks', async () => {
    const site = await read('nginx/outpost.conf');
    const upstream = /upstream outpost \{([\s\S]*?)\n\}/.exec(site)?.[1] ?? '';
    expect([...upstream.matchAll(/^\s*server \S+ .*max_fails=\d+/gm)].length).toBeGreaterThanOrEqual(3);
    expect(site).toMatch(/^\s*proxy_buffering off;/m);
    expect(site).toMatch(/^\s*proxy_next_upstream error timeout;/m);
    expect(site).toMatch(/#.*NO active health checks/);
  });
});

describe('Prometheus (deploy/prometheus)', () => {
  it('prometheus.yml and its rule file pass promtool check config', async () => {
    const promtool = requireBinary('promtool');
    const result = await run(promtool, ['check', 'config', 'prometheus.yml'], join(deploy, 'prometheus'));
    expect(result.exitCode, result.text).toBe(0);
    expect(result.text).toContain('SUCCESS: 1 rule files found');
    const config = parseYaml(await read('prometheus/prometheus.yml')) as { scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }> };
    const job = config.scrape_configs.find((s) => s.job_name === 'outpost');
    expect(job?.static_configs.flatMap((s) => s.targets).length).toBeGreaterThanOrEqual(3);
  });

  it('alerts.yml passes promtool check rules', async () => {
    const promtool = requireBinary('promtool');
    const result = await run(promtool, ['check', 'rules', 'alerts.yml'], join(deploy, 'prometheus'));
    expect(result.exitCode, result.text).toBe(0);
    expect(result.text).toMatch(/SUCCESS: \d+ rules found/);
  });

  // promtool evaluates every rule at each minute of the longest test (270 h for the disk-fill
  // prediction): ~16 CPU-seconds, so it gets a bound that holds on a loaded 2-core machine.
  it('alerts.test.yml passes promtool test rules', { timeout: 200_000 }, async () => {
    const promtool = requireBinary('promtool');
    const result = await run(promtool, ['test', 'rules', 'alerts.test.yml'], join(deploy, 'prometheus'), 180_000);
    expect(result.exitCode, result.text).toBe(0);
    expect(result.text).toContain('SUCCESS');
    const tests = parseYaml(await read('prometheus/alerts.test.yml')) as { tests: Array<{ alert_rule_test?: Array<{ alertname: string }> }> };
    const covered = new Set(tests.tests.flatMap((t) => (t.alert_rule_test ?? []).map((a) => a.alertname)));
    expect(covered.size).toBeGreaterThanOrEqual(2);
  });

  it('has the alerts operators need, each with a severity, a summary and a description', async () => {
    const rules = await alertRules();
    const byName = new Map(rules.map((r) => [r.alert, r]));
    expect(byName.get('OutpostNodeDown')?.expr).toMatch(/\bup\{job="outpost"\} == 0/);
    expect(byName.get('OutpostCacheNearBudget')?.expr).toBe('outpost_cache_size_bytes / outpost_cache_max_bytes > 0.9');
    const uses = (alert: string, metric: string): void => expect(byName.get(alert)?.expr, alert).toContain(metric);
    uses('OutpostCacheHitRatioLow', 'outpost_cache_requests_total');
    uses('OutpostUpstreamErrors', 'outpost_upstream_errors_total');
    uses('OutpostServingStale', 'outpost_stale_served_total');
    uses('OutpostWorkerRestarts', 'outpost_worker_restarts_total');
    uses('OutpostCacheUnwritable', 'outpost_cache_writable');
    for (const rule of rules.filter((r) => r.alert !== undefined)) {
      expect(rule.labels?.['severity'], rule.alert).toMatch(/^(critical|warning|info)$/);
      expect(rule.annotations?.['summary'], rule.alert).toBeTruthy();
      expect(rule.annotations?.['description'], rule.alert).toBeTruthy();
    }
  });

  it('watches the replica set: no leader for a minute, a replica missing, etcd or Redis down on a node', async () => {
    const rules = await alertRules();
    const byName = new Map(rules.map((r) => [r.alert ?? r.record, r]));
    const noLeader = byName.get('OutpostNoLeader');
    expect(noLeader?.expr).toMatch(/sum by \(job, cluster\) \(outpost_cluster_leader\{job="outpost"\}\) == 0/);
    expect(noLeader?.for).toBe('1m');
    // Members seen, from nodes that reach etcd, against the expectation (a recording rule operators may pin).
    expect(byName.get('outpost:cluster_replicas:expected')?.expr).toBe('count by (job, cluster) (up{job="outpost"})');
    const missing = byName.get('OutpostReplicaMissing')?.expr ?? '';
    for (const part of ['outpost_cluster_members', 'outpost_etcd_up == 1', 'outpost:cluster_replicas:expected']) expect(missing).toContain(part);
    expect(byName.get('OutpostEtcdDown')?.expr).toBe('outpost_etcd_up{job="outpost"} == 0');
    expect(byName.get('OutpostRedisDown')?.expr).toBe('outpost_redis_up{job="outpost"} == 0');
  });

  it('every replica-set alert has a promtool case where it fires and one where it must not', async () => {
    const doc = parseYaml(await read('prometheus/alerts.yml')) as { groups: Array<{ name: string; rules: AlertRule[] }> };
    const alerts = doc.groups.find((g) => g.name === 'outpost.replica_set')!.rules.flatMap((r) => (r.alert === undefined ? [] : [r.alert]));
    expect(alerts.sort()).toEqual(['OutpostEtcdDown', 'OutpostNoLeader', 'OutpostPeerFillFailures', 'OutpostRedisDown', 'OutpostReplicaMissing']);
    const tests = parseYaml(await read('prometheus/alerts.test.yml')) as {
      tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }>; promql_expr_test?: Array<{ expr: string }> }>;
    };
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of alerts) {
      expect(cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0), `${alert} fires in a test`).toBe(true);
      expect(cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0), `${alert} stays quiet in a test`).toBe(true);
    }
    expect(tests.tests.flatMap((t) => t.promql_expr_test ?? []).map((t) => t.expr)).toContain('outpost:cluster_replicas:expected');
  });

  it('watches peer fill per replica set: failed requests to peers, not stale hints, sustained and not isolated', async () => {
    const rules = await alertRules();
    const rule = rules.find((r) => r.alert === 'OutpostPeerFillFailures');
    expect(rule?.labels?.['severity']).toBe('warning');
    expect(rule?.for).toBe('10m');
    const expr = rule?.expr ?? '';
    expect(expr).toContain('sum by (job, cluster) (rate(outpost_peer_fills_total{job="outpost"}[5m]))');
    // The failures: every result the code reports except ok and not_found (a stale location hint).
    const ports = await readFile(join(root, 'src/cache/ports.ts'), 'utf8');
    const union = /export type PeerFillResult = ([^;]+);/.exec(ports)?.[1] ?? '';
    const results = [...union.matchAll(/'([a-z_]+)'/g)].map((m) => m[1]!);
    expect(results).toEqual(expect.arrayContaining(['ok', 'not_found', 'unreachable', 'timeout', 'refused', 'broken', 'mismatch', 'error']));
    const matchers = [...expr.matchAll(/outpost_peer_fills_total\{job="outpost", result!~"([^"]+)"\}/g)].map((m) => m[1]!);
    expect(matchers).toHaveLength(2); // the ratio's numerator and the volume guard
    for (const m of matchers) {
      const excluded = new RegExp(`^(?:${m})$`);
      expect(results.filter((r) => excluded.test(r)).sort()).toEqual(['not_found', 'ok']);
    }
    // A sustained ratio, with a volume guard so a few isolated failures stay quiet.
    expect(expr).toMatch(/\) > 0\.1\s+and sum by \(job, cluster\) \(increase\(outpost_peer_fills_total\{[^}]*\}\[5m\]\)\) >= 3/);
    const text = await read('prometheus/alerts.yml');
    expect(text).not.toMatch(/peer fill is not built yet/);
    expect(text).not.toMatch(/\b(TODO|FIXME|XXX)\b/);
  });
});

describe('Grafana dashboard (deploy/grafana/outpost-dashboard.json)', () => {
  it('is a Grafana dashboard with a Prometheus data source variable every panel uses', async () => {
    const d = await dashboard();
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(d.uid).toMatch(/^[a-zA-Z0-9_-]{1,40}$/);
    const dsVar = d.templating.list.find((v) => v.type === 'datasource');
    expect(dsVar).toMatchObject({ name: 'datasource', query: 'prometheus' });
    const panels = dashboardPanels(d);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    for (const p of panels.filter((q) => q.type !== 'row')) {
      expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      for (const t of p.targets!) expect(t.expr.trim(), p.title).not.toBe('');
    }
    for (const v of d.templating.list.filter((q) => q.type === 'query')) expect(v.datasource?.uid).toBe('${datasource}');
  });

  it('lays its panels out without overlaps on the 24-column grid', async () => {
    const panels = dashboardPanels(await dashboard());
    for (const p of panels) expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
    const overlaps: string[] = [];
    for (const [i, a] of panels.entries()) {
      for (const b of panels.slice(i + 1)) {
        const apart =
          a.gridPos.x + a.gridPos.w <= b.gridPos.x || b.gridPos.x + b.gridPos.w <= a.gridPos.x ||
          a.gridPos.y + a.gridPos.h <= b.gridPos.y || b.gridPos.y + b.gridPos.h <= a.gridPos.y;
        if (!apart) overlaps.push(`${a.title} / ${b.title}`);
      }
    }
    expect(overlaps).toEqual([]);
  });

  it('charts requests, latency, hit ratio, bytes by source, the primary, fills, disk, evictions, workers, rate limits, the replica set and peer fill', async () => {
    const used = new Set(dashboardExpressions(await dashboard()).flatMap((e) => metricNamesIn(e.expr)));
    for (const metric of [
      'outpost_http_requests_total',
      'outpost_http_request_duration_seconds_bucket',
      'outpost_cache_requests_total',
      'outpost_served_bytes_total',
      'outpost_upstream_fetched_bytes_total',
      'outpost_upstream_errors_total',
      'outpost_upstream_request_duration_seconds_bucket',
      'outpost_stale_served_total',
      'outpost_fills_in_flight',
      'outpost_cache_size_bytes',
      'outpost_cache_max_bytes',
      'outpost_evictions_total',
      'outpost_workers_up',
      'outpost_worker_restarts_total',
      'outpost_upstream_ratelimit_remaining',
      'outpost_cluster_leader',
      'outpost_cluster_members',
      'outpost_etcd_up',
      'outpost_redis_up',
      'outpost_peer_bytes_total',
      'outpost_peer_fills_total',
      'outpost_fill_lock_waits_total',
    ]) {
      expect(used.has(metric), metric).toBe(true);
    }
  });

  it('has a "Replica set" row: leaders, members seen against the expectation, leader per node, etcd and Redis per node, peer fill', async () => {
    const d = await dashboard();
    const rows = d.panels.filter((p) => p.type === 'row').sort((a, b) => a.gridPos.y - b.gridPos.y);
    const row = rows.find((r) => r.title === 'Replica set');
    expect(row).toBeDefined();
    // The panels of an expanded row are the ones below it and above the next row.
    const next = rows[rows.indexOf(row!) + 1]?.gridPos.y ?? Infinity;
    const panels = d.panels.filter((p) => p.type !== 'row' && p.gridPos.y > row!.gridPos.y && p.gridPos.y < next);
    const uses = (metric: string): string[] => panels.filter((p) => (p.targets ?? []).some((t) => metricNamesIn(t.expr).includes(metric) || recordedNamesIn(t.expr).includes(metric))).map((p) => p.title);
    expect(uses('outpost_cluster_leader')).toEqual(['Leaders', 'Leader per node']);
    expect(uses('outpost_cluster_members')).toEqual(['Replicas in etcd / expected', 'Replicas each node sees in etcd']);
    expect(uses('outpost:cluster_replicas:expected')).toEqual(['Replicas in etcd / expected', 'Replicas each node sees in etcd']);
    expect(uses('outpost_etcd_up')).toEqual(expect.arrayContaining(['Nodes without etcd', 'etcd and Redis reachable per node']));
    expect(uses('outpost_redis_up')).toEqual(['Nodes without Redis', 'etcd and Redis reachable per node']);
    // Peer fill: bytes from peers against bytes from the primary (the WAN saved), requests by result, lock waits.
    expect(uses('outpost_peer_bytes_total')).toEqual(['Fill bytes: from peers vs from the primary', 'Share of fill bytes from peers']);
    expect(uses('outpost_upstream_fetched_bytes_total')).toEqual(['Fill bytes: from peers vs from the primary', 'Share of fill bytes from peers']);
    expect(uses('outpost_peer_fills_total')).toEqual(['Peer requests by result']);
    expect(uses('outpost_fill_lock_waits_total')).toEqual(['Fill-lock waits']);
    const byResult = panels.find((p) => p.title === 'Peer requests by result')!;
    expect(byResult.targets![0]!.expr).toMatch(/^sum by \(result\) \(rate\(outpost_peer_fills_total\{/);
    // "Leader per node" shows one series per node.
    const perNode = panels.find((p) => p.title === 'Leader per node')!;
    expect(perNode.targets![0]!.expr).toMatch(/^max by \(instance\) \(outpost_cluster_leader\{/);
  });

  it('its replica-set stats and series answer what their descriptions say, on sample data (promtool test rules)', async () => {
    const promtool = requireBinary('promtool');
    const d = await dashboard();
    const expr = (title: string, refId = 'A'): string =>
      withoutGrafanaVariables(dashboardPanels(d).find((p) => p.title === title)!.targets!.find((t) => t.refId === refId)!.expr);
    // Three targets: a leads and sees 2 members; b cannot reach etcd (it still shows the 3 it last saw)
    // nor Redis; c is down. The alert rules' recording rule is loaded, as in a real Prometheus.
    const series = (name: string, instance: string, value: number): { series: string; values: string } => ({
      series: `${name}{job="outpost", cluster="office", instance="${instance}"}`,
      values: `${value}x5`,
    });
    const counter = (name: string, instance: string, labels: string, perMinute: number): { series: string; values: string } => ({
      series: `${name}{job="outpost", cluster="office", instance="${instance}"${labels}}`,
      values: `0+${perMinute}x5`,
    });
    const dir = await tempDir('dashboard-replica-set');
    await copyFile(join(deploy, 'prometheus/alerts.yml'), join(dir, 'alerts.yml'));
    const sample = (e: string, labels: string, value: number) => ({ expr: e, eval_time: '3m', exp_samples: [{ labels, value }] });
    const test = {
      rule_files: ['alerts.yml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            series('up', 'a', 1), series('up', 'b', 1), series('up', 'c', 0),
            series('outpost_cluster_leader', 'a', 1), series('outpost_cluster_leader', 'b', 0),
            series('outpost_etcd_up', 'a', 1), series('outpost_etcd_up', 'b', 0),
            series('outpost_redis_up', 'a', 1), series('outpost_redis_up', 'b', 0),
            series('outpost_cluster_members', 'a', 2), series('outpost_cluster_members', 'b', 3),
            // Peer fill: a gets 300 bytes a minute from peers and 100 from the primary, b 200 from
            // the primary; of 16 requests to peers a minute, 6 ok, 8 stale hints, 2 timeouts.
            counter('outpost_peer_bytes_total', 'a', '', 300), counter('outpost_upstream_fetched_bytes_total', 'a', '', 100),
            counter('outpost_peer_bytes_total', 'b', '', 0), counter('outpost_upstream_fetched_bytes_total', 'b', '', 200),
            counter('outpost_peer_fills_total', 'a', ', result="ok"', 6),
            counter('outpost_peer_fills_total', 'a', ', result="not_found"', 8),
            counter('outpost_peer_fills_total', 'b', ', result="timeout"', 2),
          ],
          promql_expr_test: [
            sample(expr('Leaders'), '{}', 1),
            sample(expr('Replicas in etcd / expected', 'A'), '{}', 2),
            sample(expr('Replicas in etcd / expected', 'B'), '{}', 3),
            sample(expr('Nodes without etcd'), '{}', 1),
            sample(expr('Nodes without Redis'), '{}', 1),
            sample(expr('Replicas each node sees in etcd', 'A'), '{instance="a"}', 2),
            sample(expr('Share of fill bytes from peers'), '{}', 0.5),
            sample(expr('Peer requests by result', 'B'), '{}', 0.125),
          ],
        },
      ],
    };
    await writeFile(join(dir, 'dashboard.test.yml'), stringifyYaml(test));
    const result = await run(promtool, ['test', 'rules', 'dashboard.test.yml'], dir);
    expect(result.exitCode, result.text).toBe(0);
    // With nothing wrong, the "without" stats answer 0, not "No data".
    const healthy = { ...test, tests: [{ ...test.tests[0]!, input_series: [series('outpost_etcd_up', 'a', 1)], promql_expr_test: [sample(expr('Nodes without etcd'), '{}', 0), sample(expr('Nodes without Redis'), '{}', 0)] }] };
    await writeFile(join(dir, 'healthy.test.yml'), stringifyYaml(healthy));
    const quiet = await run(promtool, ['test', 'rules', 'healthy.test.yml'], dir);
    expect(quiet.exitCode, quiet.text).toBe(0);
  });

  it('has only valid PromQL (every panel expression passes promtool check rules)', async () => {
    const promtool = requireBinary('promtool');
    const exprs = dashboardExpressions(await dashboard()).filter((e) => e.promql);
    const dir = await tempDir('dashboard-promql');
    const rules = { groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:expr_${i}`, expr: withoutGrafanaVariables(e.expr) })) }] };
    await writeFile(join(dir, 'dashboard.rules.yml'), stringifyYaml(rules));
    const result = await run(promtool, ['check', 'rules', 'dashboard.rules.yml'], dir);
    expect(result.exitCode, result.text).toBe(0);
    expect(result.text).toContain(`SUCCESS: ${exprs.length} rules found`);
  });
});

describe('metric names in alerts and the dashboard', () => {
  it('finds the catalogue in src/observability/metrics.ts', async () => {
    const c = await definedMetrics();
    expect(c.metrics.size).toBeGreaterThanOrEqual(20);
    expect(c.metrics.get('outpost_http_requests_total')?.labels).toEqual(['route', 'method', 'status']);
    expect(c.metrics.get('outpost_http_request_duration_seconds')?.type).toBe('Histogram');
    expect(c.defaultMetrics.has('process_resident_memory_bytes')).toBe(true);
    expect(c.defaultMetrics.has('nodejs_eventloop_lag_p99_seconds')).toBe(true);
  });

  it('every metric an alert rule uses is one Outpost defines, with labels it has', async () => {
    const c = await definedMetrics();
    const rules = await alertRules();
    expect(rules.flatMap((r) => metricNamesIn(r.expr)).length).toBeGreaterThan(10);
    expect(rules.flatMap((r) => checkExpression(r.expr, `alert ${r.alert ?? r.record}`, c))).toEqual([]);
  });

  it('every metric a dashboard query uses is one Outpost defines, with labels it has', async () => {
    const c = await definedMetrics();
    const exprs = dashboardExpressions(await dashboard());
    expect(exprs.flatMap((e) => metricNamesIn(e.expr)).length).toBeGreaterThan(20);
    expect(exprs.flatMap((e) => checkExpression(e.expr, e.where, c))).toEqual([]);
  });

  it('the check itself catches unknown metrics, wrong labels and _bucket on a non-histogram', async () => {
    const c = await definedMetrics();
    expect(checkExpression('rate(outpost_cache_hits_total[5m])', 'x', c)).toEqual([
      'x: outpost_cache_hits_total is neither defined in src/observability/metrics.ts nor a default process metric (process_*, nodejs_*)',
    ]);
    expect(checkExpression('outpost_http_requests_total{code="500"}', 'x', c)).toHaveLength(1);
    expect(checkExpression('outpost_fills_total_bucket', 'x', c)).toHaveLength(1);
    expect(checkExpression('sum by (code) (rate(outpost_http_requests_total[5m]))', 'x', c)).toHaveLength(1);
    // The old prefixed names are gone: stock dashboards use the standard ones.
    expect(checkExpression('rate(outpost_process_cpu_seconds_total[5m])', 'x', c)).toHaveLength(1);
    expect(checkExpression('outpost_nodejs_eventloop_lag_p99_seconds', 'x', c)).toHaveLength(1);
    expect(checkExpression('rate(process_cpu_seconds_total[5m]) + nodejs_eventloop_lag_p99_seconds', 'x', c)).toEqual([]);
    expect(checkExpression('process_resident_memory_bytes{worker="1"}', 'x', c)).toHaveLength(1);
    expect(checkExpression('sum by (space) (nodejs_heap_space_size_used_bytes{space="old"})', 'x', c)).toEqual([]);
    expect(checkExpression('histogram_quantile(0.9, sum by (le, route) (rate(outpost_http_request_duration_seconds_bucket{route="blob"}[5m])))', 'x', c)).toEqual([]);
    // Target labels from prometheus.yml may be grouped and matched on; recording rules must exist.
    expect(c.targetLabels).toContain('cluster');
    expect(checkExpression('sum by (job, cluster) (outpost_cluster_leader{cluster="office"})', 'x', c)).toEqual([]);
    expect(checkExpression('sum by (site) (outpost_cluster_leader)', 'x', c)).toHaveLength(1);
    expect(checkExpression('outpost_cluster_members and on (job, node) outpost_etcd_up', 'x', c)).toHaveLength(1);
    expect(checkExpression('outpost:cluster_replicas:expected{instance=~"a:5000"}', 'x', c)).toEqual([]);
    expect(checkExpression('outpost:cluster_replicas:wanted', 'x', c)).toEqual([
      'x: outpost:cluster_replicas:wanted is not a recording rule of deploy/prometheus/alerts.yml',
    ]);
  });
});

describe('YAML and JSON artefacts', () => {
  async function filesUnder(dir: string): Promise<string[]> {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true });
    return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  }

  it('every YAML and JSON file under deploy/ parses', async () => {
    const files = (await filesUnder(deploy)).filter((f) => /\.(ya?ml|json)$/.test(f));
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      if (file.endsWith('.json')) {
        expect(() => JSON.parse(text), file).not.toThrow();
        continue;
      }
      const docs = parseAllDocuments(text, { merge: true });
      for (const doc of Array.isArray(docs) ? docs : [docs]) expect(doc.errors.map((e) => `${basename(file)}: ${e.message}`)).toEqual([]);
    }
  });

  it('every Kubernetes document has apiVersion, kind and a name, and the kinds a deployment needs are there', async () => {
    const dir = join(deploy, 'kubernetes');
    const kinds: string[] = [];
    for (const file of (await readdir(dir)).filter((f) => f.endsWith('.yaml'))) {
      for (const doc of parseAllDocuments(await readFile(join(dir, file), 'utf8'))) {
        const obj = doc.toJS() as { apiVersion?: string; kind?: string; metadata?: { name?: string } };
        expect(obj.apiVersion, file).toMatch(/^[a-z0-9.]*\/?v\d/);
        expect(obj.kind, file).toMatch(/^[A-Z]\w+$/);
        if (obj.kind !== 'Kustomization') expect(obj.metadata?.name, file).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
        kinds.push(obj.kind!);
      }
    }
    expect(kinds.sort()).toEqual([
      'ConfigMap', 'Deployment', 'Kustomization', 'Namespace', 'PodDisruptionBudget', 'Secret',
      'Service', 'Service', 'Service', 'Service', 'StatefulSet', 'StatefulSet',
    ]);
  });

  it('the StatefulSet turns service links off and outlasts the drain and transfer bound', async () => {
    const sts = parseYaml(await read('kubernetes/statefulset.yaml')) as {
      spec: { template: { spec: { enableServiceLinks?: boolean; terminationGracePeriodSeconds?: number } } };
    };
    expect(sts.spec.template.spec.enableServiceLinks).toBe(false);
    expect(sts.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(40);
    const dir = await tempDir('k8s-config');
    const configMap = parseYaml(await read('kubernetes/configmap.yaml')) as { data: Record<string, string> };
    await writeFile(join(dir, 'outpost.yaml'), configMap.data['outpost.yaml']!);
    // The replica set needs its peer secret, which the Secret supplies.
    const config = loadConfig({ argv: ['--config', join(dir, 'outpost.yaml')], env: { OUTPOST_PEER_SECRET: 'k8s-test-peer-secret-0123456789' } });
    expect(sts.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(stopBoundSeconds(config));
  });

  it('the compose file and the Dockerfile are where the docs say', async () => {
    const compose = parseYaml(await read('compose/docker-compose.yml'), { merge: true }) as { services: Record<string, unknown> };
    expect(Object.keys(compose.services).sort()).toEqual(['etcd', 'haproxy', 'outpost-1', 'outpost-2', 'outpost-3', 'redis']);
    await expect(read('Dockerfile')).resolves.toMatch(/^FROM node:20-slim$/m);
  });
});
