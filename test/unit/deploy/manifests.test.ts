/**
 * What can be checked of the container artefacts without a Docker engine or
 * a Kubernetes API server: the Dockerfile's shape and its HEALTHCHECK script
 * (run against real HTTP servers), the compose file's cluster and every
 * node's environment, and the Kubernetes manifests wired together — each
 * pod's environment and config file loaded by Outpost's own config loader.
 */
import { access, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { loadConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/types.ts';
import { opsRouteOf } from '../../../src/http/ops-routes.ts';
import { createCleanupStack } from '../../support/cleanup.ts';
import { parseHaproxySections } from '../../support/haproxy.ts';
import { runProcess } from '../../support/process.ts';
import { makeTempDir, removeTempDir } from '../../support/temp.ts';

const root = resolve(import.meta.dirname, '../../..');
const deploy = join(root, 'deploy');
const cleanup = createCleanupStack();
afterAll(() => cleanup.run());

const read = (path: string): Promise<string> => readFile(join(deploy, path), 'utf8');

async function tempDir(prefix: string): Promise<string> {
  const dir = await makeTempDir(prefix);
  cleanup.add(() => removeTempDir(dir));
  return dir;
}

/** How long a node may take to stop after SIGTERM before its primary gives up (src/process/primary.ts). */
function stopBoundSeconds(config: Config): number {
  return config.drainSeconds + config.shutdownTimeoutMs / 1000 + 10;
}

/** `45s`, `1m30s`, `2m` → seconds (compose durations). */
function composeSeconds(value: string): number {
  let total = 0;
  for (const m of value.matchAll(/(\d+(?:\.\d+)?)(h|m|s|ms)/g)) total += Number(m[1]) * { h: 3600, m: 60, s: 1, ms: 0.001 }[m[2] as 'h' | 'm' | 's' | 'ms'];
  return total;
}

/** A Kubernetes quantity (`60Gi`, `500M`) in bytes. */
function quantityBytes(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(value);
  if (m === null) throw new Error(`not a quantity: ${value}`);
  const units: Record<string, number> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return Number(m[1]) * units[m[2] ?? '']!;
}

// ---------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function dockerfileInstructions(text: string): Instruction[] {
  const joined = text.replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const [keyword, ...rest] = l.split(/\s+/);
      return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
    });
}

async function listen(status: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/health' ? status : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ healthy: status === 200 }));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  cleanup.add(() => new Promise<void>((ok) => server.close(() => ok())));
  return { server, port: (server.address() as AddressInfo).port };
}

describe('Dockerfile (deploy/Dockerfile)', () => {
  it('builds on node:20-slim, runs as node with the cache in a volume, and stops with SIGTERM', async () => {
    const ins = dockerfileInstructions(await read('Dockerfile'));
    const all = (k: string): string[] => ins.filter((i) => i.keyword === k).map((i) => i.args);
    expect(all('FROM')).toEqual(['node:20-slim']);
    expect(all('USER')).toEqual(['node']);
    expect(all('VOLUME')).toEqual(['/var/lib/outpost']);
    expect(all('EXPOSE')).toEqual(['5000']);
    expect(all('STOPSIGNAL')).toEqual(['SIGTERM']);
    expect(all('ENTRYPOINT')).toEqual(['["node", "--import", "tsx", "src/main.ts"]']);
    expect(all('CMD')).toEqual(['["serve"]']);
    expect(all('RUN').some((r) => r.includes('npm ci --omit=dev'))).toBe(true);
    // --omit=dev keeps tsx only because it is a runtime dependency.
    const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(pkg.dependencies['tsx']).toBeDefined();
    // The USER must come after the last RUN that needs root (mkdir/chown of the volume).
    expect(ins.findIndex((i) => i.keyword === 'USER')).toBeGreaterThan(ins.map((i) => i.keyword).lastIndexOf('RUN'));
  });

  it('copies only what exists and what its .dockerignore lets through', async () => {
    const ins = dockerfileInstructions(await read('Dockerfile'));
    const ignore = (await read('Dockerfile.dockerignore')).split('\n').map((l) => l.trim());
    expect(ignore).toContain('**');
    for (const copy of ins.filter((i) => i.keyword === 'COPY')) {
      const sources = copy.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1);
      for (const src of sources) {
        await access(join(root, src));
        expect(ignore.some((l) => l === `!${src}` || l === `!${src}/`), `${src} is re-included in Dockerfile.dockerignore`).toBe(true);
      }
    }
  });

  it('its HEALTHCHECK passes on /health 200 and fails on 503 or when nothing listens', async () => {
    const ins = dockerfileInstructions(await read('Dockerfile'));
    const healthcheck = ins.find((i) => i.keyword === 'HEALTHCHECK')!.args;
    const cmd = JSON.parse(/\bCMD\s+(\[.*\])\s*$/.exec(healthcheck)![1]!) as string[];
    expect(cmd[0]).toBe('node');
    const probe = async (port: number): Promise<number | null> =>
      (await runProcess(process.execPath, cmd.slice(1), { env: { OUTPOST_PORT: String(port) }, timeoutMs: 15_000 })).exitCode;
    const healthy = await listen(200);
    const draining = await listen(503);
    const gone = await listen(200);
    await new Promise<void>((ok) => gone.server.close(() => ok()));
    expect(await probe(healthy.port)).toBe(0);
    expect(await probe(draining.port)).toBe(1);
    expect(await probe(gone.port)).toBe(1);
  });
});

// ---------------------------------------------------------------------------

interface ComposeService {
  image?: string;
  command?: string[];
  hostname?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  volumes?: string[];
  stop_grace_period?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  ports?: string[];
}

/** Compose's variable interpolation (`${VAR}`, `${VAR:-default}`, `${VAR:?error}`) with the given environment. */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-?])([^}]*))?\}/g, (_m, name: string, kind?: string, rest?: string) => {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
    if (kind === '?') throw new Error(`compose would refuse to start: ${rest}`);
    return kind === '-' ? (rest ?? '') : '';
  });
}

const composeEnv = { OUTPOST_PEER_SECRET: 'compose-test-peer-secret-0123456789' };

async function composeFile(): Promise<{ services: Record<string, ComposeService>; volumes: Record<string, unknown> }> {
  return parseYaml(interpolate(await read('compose/docker-compose.yml'), composeEnv), { merge: true }) as {
    services: Record<string, ComposeService>;
    volumes: Record<string, unknown>;
  };
}

describe('compose cluster (deploy/compose/docker-compose.yml)', () => {
  const nodes = ['outpost-1', 'outpost-2', 'outpost-3'];

  it('runs three Outpost nodes built from deploy/Dockerfile, each with its own cache volume', async () => {
    const compose = await composeFile();
    const volumes = new Set<string>();
    for (const name of nodes) {
      const svc = compose.services[name]!;
      expect(resolve(deploy, 'compose', svc.build!.context)).toBe(root);
      await access(join(root, svc.build!.dockerfile));
      const cache = svc.volumes!.find((v) => v.endsWith(':/var/lib/outpost'));
      expect(cache, name).toBeDefined();
      const volume = cache!.split(':')[0]!;
      expect(Object.keys(compose.volumes)).toContain(volume);
      volumes.add(volume);
      expect(svc.depends_on?.['etcd']?.condition).toBe('service_healthy');
      expect(svc.depends_on?.['redis']?.condition).toBe('service_healthy');
    }
    expect(volumes.size).toBe(3);
    expect(compose.services['etcd']?.healthcheck?.test).toContain('etcdctl');
    expect(compose.services['redis']?.healthcheck?.test).toContain('redis-cli');
  });

  it('refuses to start without a peer secret', async () => {
    expect(() => interpolate('x: ${OUTPOST_PEER_SECRET:?set it}', {})).toThrow('set it');
    expect(await read('compose/docker-compose.yml')).toContain('${OUTPOST_PEER_SECRET:?');
  });

  it("gives every node an environment Outpost accepts, with distinct ids and etcd/Redis set, and a stop grace above the node's own bound", async () => {
    const compose = await composeFile();
    const ids = new Set<string>();
    for (const name of nodes) {
      const svc = compose.services[name]!;
      const config = loadConfig({ env: svc.environment! });
      expect(config.node.id).toBe(name);
      expect(config.node.advertiseUrl).toBe(`http://${name}:5000`);
      expect(config.etcd.endpoints.length, name).toBeGreaterThan(0);
      expect(config.redis.url, name).toBe('redis://redis:6379');
      expect(config.cluster.peerSecret, name).toBe(composeEnv.OUTPOST_PEER_SECRET);
      expect(config.cache.dir).toBe('/var/lib/outpost');
      ids.add(config.node.id);
      expect(composeSeconds(svc.stop_grace_period!), name).toBeGreaterThan(stopBoundSeconds(config));
    }
    expect(ids.size).toBe(3);
  });

  it('forms one replica set: the cluster variables set on every node, shared where they must be, pointing at the etcd and Redis services', async () => {
    const compose = await composeFile();
    const shared = ['OUTPOST_ETCD_ENDPOINTS', 'OUTPOST_REDIS_URL', 'OUTPOST_CLUSTER_NAME', 'OUTPOST_PEER_SECRET', 'OUTPOST_ETCD_LEASE_TTL'];
    const own = ['OUTPOST_NODE_ID', 'OUTPOST_ADVERTISE_URL'];
    const envs = nodes.map((n) => compose.services[n]!.environment!);
    for (const [i, env] of envs.entries()) {
      for (const key of [...shared, ...own]) expect(env[key], `${nodes[i]} ${key}`).toBeTruthy();
    }
    for (const key of shared) expect(new Set(envs.map((e) => e[key])).size, key).toBe(1);
    for (const key of own) expect(new Set(envs.map((e) => e[key])).size, key).toBe(3);
    const etcd = compose.services['etcd']!;
    const flag = (name: string): string | undefined => etcd.command!.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
    for (const [i, env] of envs.entries()) {
      const config = loadConfig({ env });
      // Compose's DNS resolves a service's name: each node is reached at its own, on the port it listens on.
      const advertised = new URL(config.node.advertiseUrl!);
      expect(advertised.hostname).toBe(nodes[i]);
      expect(Number(advertised.port)).toBe(config.server.port);
      for (const endpoint of config.etcd.endpoints) {
        const url = new URL(endpoint);
        expect(Object.keys(compose.services)).toContain(url.hostname);
        expect(url.hostname).toBe('etcd');
        expect(new URL(flag('listen-client-urls')!).port).toBe(url.port);
        expect(flag('advertise-client-urls')).toBe(endpoint);
      }
      expect(new URL(config.redis.url!).hostname).toBe('redis');
      expect(config.etcd.leaseTtlMs).toBe(5000);
    }
    // Member records are rewritten every few seconds: etcd must compact its history.
    expect(flag('auto-compaction-mode')).toBe('periodic');
    expect(flag('auto-compaction-retention')).toBeTruthy();
  });

  it('puts HAProxy in front of exactly those nodes with its compose config', async () => {
    const compose = await composeFile();
    const haproxy = compose.services['haproxy']!;
    const mount = haproxy.volumes!.find((v) => v.includes('haproxy.cfg'))!;
    const cfgPath = resolve(deploy, 'compose', mount.split(':')[0]!);
    const sections = parseHaproxySections(await readFile(cfgPath, 'utf8'));
    const servers = sections
      .find((s) => s.keyword === 'backend' && s.name === 'outpost')!
      .lines.map((l) => l.trim())
      .filter((l) => l.startsWith('server '))
      .map((l) => l.split(/\s+/)[2]);
    expect(servers).toEqual(nodes.map((n) => `${n}:5000`));
    expect(haproxy.ports).toContain('5000:5000');
  });
});

// ---------------------------------------------------------------------------

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  /** Parsed YAML; each test checks the fields it reads. */
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** Everything kustomization.yaml applies, and the example Secret operators create from it. */
async function k8sObjects(): Promise<K8sObject[]> {
  const dir = join(deploy, 'kubernetes');
  const kustomization = parseYaml(await read('kubernetes/kustomization.yaml')) as { resources: string[] };
  const files = [...kustomization.resources, 'secret.example.yaml'];
  const out: K8sObject[] = [];
  for (const file of files) for (const doc of parseAllDocuments(await readFile(join(dir, file), 'utf8'))) out.push(doc.toJS() as K8sObject);
  return out;
}

function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(found, `${kind} ${name ?? ''}`).toHaveLength(1);
  return found[0]!;
}

const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

interface Container {
  name: string;
  image: string;
  command?: string[];
  args: string[];
  ports: Array<{ name: string; containerPort: number }>;
  env: Array<{ name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }>;
  envFrom: Array<{ secretRef?: { name: string; optional?: boolean } }>;
  readinessProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string }; periodSeconds: number; failureThreshold: number };
  startupProbe?: { httpGet: { path: string; port: string } };
  volumeMounts: Array<{ name: string; mountPath: string }>;
}

/** The environment the kubelet would give the container of pod `podName` (fieldRefs resolved, $(VAR) expanded). */
function podEnv(container: Container, pod: { name: string; namespace: string }, secret: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { ...secret };
  for (const e of container.env) {
    if (e.valueFrom !== undefined) {
      const field = e.valueFrom.fieldRef.fieldPath;
      env[e.name] = field === 'metadata.name' ? pod.name : field === 'metadata.namespace' ? pod.namespace : '';
    } else {
      env[e.name] = (e.value ?? '').replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);
    }
  }
  return env;
}

/** What the kubelet injects for a Service when service links are on (the docker-link style variables). */
function serviceLinkEnv(service: string, ip: string, port: number): Record<string, string> {
  const p = service.toUpperCase().replaceAll('-', '_');
  return {
    [`${p}_SERVICE_HOST`]: ip,
    [`${p}_SERVICE_PORT`]: String(port),
    [`${p}_PORT`]: `tcp://${ip}:${port}`,
    [`${p}_PORT_${port}_TCP`]: `tcp://${ip}:${port}`,
    [`${p}_PORT_${port}_TCP_PROTO`]: 'tcp',
    [`${p}_PORT_${port}_TCP_PORT`]: String(port),
    [`${p}_PORT_${port}_TCP_ADDR`]: ip,
  };
}

describe('Kubernetes manifests (deploy/kubernetes)', () => {
  async function setup() {
    const objects = await k8sObjects();
    const sts = one(objects, 'StatefulSet', 'outpost');
    const container = (sts.spec.template.spec.containers as Container[])[0]!;
    const configMap = one(objects, 'ConfigMap');
    const kustomization = parseYaml(await read('kubernetes/kustomization.yaml')) as { namespace: string; resources: string[] };
    // The config file as mounted: the ConfigMap key under the mount path the --config argument names.
    const configArg = container.args[container.args.indexOf('--config') + 1]!;
    const mount = container.volumeMounts.find((m) => m.mountPath === dirname(configArg))!;
    const volume = (sts.spec.template.spec.volumes as Array<{ name: string; configMap?: { name: string } }>).find((v) => v.name === mount.name)!;
    expect(volume.configMap?.name).toBe(configMap.metadata.name);
    const dir = await tempDir('k8s');
    const configFile = join(dir, 'outpost.yaml');
    const key = configArg.slice(dirname(configArg).length + 1);
    expect(Object.keys(configMap.data!)).toContain(key);
    await writeFile(configFile, configMap.data![key]!);
    const argv = container.args.slice(1).map((a) => (a === configArg ? configFile : a));
    // The Secret's keys, as envFrom gives them: the replica set needs its peer secret.
    const secretEnv = one(objects, 'Secret').stringData!;
    return { objects, sts, container, kustomization, argv, secretEnv };
  }

  it('applies everything but the example Secret, all in one namespace', async () => {
    const { kustomization } = await setup();
    for (const file of kustomization.resources) await access(join(deploy, 'kubernetes', file));
    expect(kustomization.resources).not.toContain('secret.example.yaml');
    expect(kustomization.namespace).toBe('outpost');
  });

  it('wires the StatefulSet to its headless Service, the client Service and the PodDisruptionBudget by labels', async () => {
    const { objects, sts } = await setup();
    const podLabels = sts.spec.template.metadata.labels as Record<string, string>;
    expect(matches(sts.spec.selector.matchLabels, podLabels)).toBe(true);
    const headless = one(objects, 'Service', sts.spec.serviceName);
    expect(headless.spec.clusterIP).toBe('None');
    // A replica's name resolves from its start (its advertise URL), ready or not.
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    const client = one(objects, 'Service', 'outpost');
    expect(client.spec.type ?? 'ClusterIP').toBe('ClusterIP');
    for (const svc of [headless, client]) {
      expect(matches(svc.spec.selector, podLabels), svc.metadata.name).toBe(true);
      expect(svc.spec.ports.map((p: { targetPort: string }) => p.targetPort)).toEqual(['http']);
    }
    const pdb = one(objects, 'PodDisruptionBudget');
    expect(matches(pdb.spec.selector.matchLabels, podLabels)).toBe(true);
    expect(pdb.spec.maxUnavailable).toBe(1);
    expect(sts.spec.replicas).toBeGreaterThanOrEqual(3);
  });

  it('probes readiness on /health and liveness on /livez, on the port the config listens on, and gives each replica a cache volume bigger than its budget', async () => {
    const { sts, container, argv, secretEnv } = await setup();
    const config = loadConfig({ argv, env: secretEnv });
    const http = container.ports.find((p) => p.name === 'http')!;
    expect(http.containerPort).toBe(config.server.port);
    // Readiness: a draining node or an unwritable cache takes the pod out of the Service.
    expect(container.readinessProbe.httpGet).toEqual({ path: '/health', port: 'http' });
    expect(opsRouteOf(container.readinessProbe.httpGet.path)).toBe('health');
    // Liveness and start-up: only "the process serves". On /health a read-only volume or a drain
    // would fail them, and the kubelet would restart the pod in a loop that fixes nothing.
    for (const probe of [container.livenessProbe, container.startupProbe!]) {
      expect(probe.httpGet).toEqual({ path: '/livez', port: 'http' });
      expect(opsRouteOf(probe.httpGet.path)).toBe('livez');
    }
    // Patient enough for a CPU-starved moment: half a minute without an answer before a restart.
    expect(container.livenessProbe.periodSeconds * container.livenessProbe.failureThreshold).toBeGreaterThanOrEqual(30);
    const claim = (sts.spec.volumeClaimTemplates as Array<{ metadata: { name: string }; spec: { resources: { requests: { storage: string } } } }>)[0]!;
    expect(container.volumeMounts.find((m) => m.name === claim.metadata.name)?.mountPath).toBe(config.cache.dir);
    expect(quantityBytes(claim.spec.resources.requests.storage)).toBeGreaterThan(config.cache.maxBytes);
  });

  it('outlasts the node: terminationGracePeriodSeconds exceeds drain + shutdown timeout + 10 s', async () => {
    const { sts, argv, secretEnv } = await setup();
    const config = loadConfig({ argv, env: secretEnv });
    expect(sts.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(stopBoundSeconds(config));
  });

  it('starts each pod with a valid configuration: its own node id, its advertise URL and the Secret credentials', async () => {
    const { objects, sts, container, kustomization, argv } = await setup();
    const secret = one(objects, 'Secret');
    // Required: the peer secret is in it, and without it the node would refuse its configuration.
    expect(container.envFrom).toContainEqual({ secretRef: { name: secret.metadata.name } });
    expect(loadConfig.bind(null, { argv, env: {} })).toThrow(/cluster\.peerSecret/);
    for (const ordinal of [0, 1, 2]) {
      const pod = { name: `${sts.metadata.name}-${ordinal}`, namespace: kustomization.namespace };
      const config = loadConfig({ argv, env: podEnv(container, pod, secret.stringData!) });
      expect(config.node.id).toBe(pod.name);
      expect(config.node.advertiseUrl).toBe(`http://${pod.name}.${sts.spec.serviceName}.${pod.namespace}.svc:5000`);
      expect(config.upstream.username).toBe(secret.stringData!['OUTPOST_UPSTREAM_USERNAME']);
      expect(config.admin.token).toBe(secret.stringData!['OUTPOST_ADMIN_TOKEN']);
      expect(config.cluster.peerSecret).toBe(secret.stringData!['OUTPOST_PEER_SECRET']);
    }
  });

  it('points every replica at the etcd and Redis it deploys: a Service with that port, selecting pods that listen on it', async () => {
    const { objects, sts, container, kustomization, argv, secretEnv } = await setup();
    const config = loadConfig({ argv, env: podEnv(container, { name: 'outpost-0', namespace: kustomization.namespace }, secretEnv) });
    expect(config.etcd.endpoints.length).toBeGreaterThan(0);
    expect(config.redis.url).toBeDefined();
    expect(config.cluster.name).toBe('outpost');
    const served = (url: string): { workload: K8sObject; container: { name: string; ports: Array<{ name: string; containerPort: number }> } } => {
      const { hostname, port } = new URL(url);
      // `name`, `name.namespace` or `name.namespace.svc[.cluster.local]`, in the pods' own namespace.
      const [name, namespace] = hostname.split('.');
      expect([undefined, kustomization.namespace]).toContain(namespace);
      const svc = one(objects, 'Service', name);
      const svcPort = (svc.spec.ports as Array<{ port: number; targetPort: string | number }>).find((p) => String(p.port) === port);
      expect(svcPort, `${url}: Service ${name} has port ${port}`).toBeDefined();
      const workloads = objects.filter((o) => (o.kind === 'StatefulSet' || o.kind === 'Deployment') && matches(svc.spec.selector, o.spec.template.metadata.labels));
      expect(workloads.map((w) => w.metadata.name), `pods behind Service ${name}`).toHaveLength(1);
      const workload = workloads[0]!;
      expect(workload).not.toBe(sts);
      const containers = workload.spec.template.spec.containers as Array<{ name: string; ports: Array<{ name: string; containerPort: number }> }>;
      const listening = containers.find((c) => c.ports.some((p) => p.name === svcPort!.targetPort || p.containerPort === svcPort!.targetPort));
      expect(listening, `${workload.metadata.name} listens on ${String(svcPort!.targetPort)}`).toBeDefined();
      return { workload, container: listening! };
    };
    for (const endpoint of config.etcd.endpoints) expect(served(endpoint).container.name).toBe('etcd');
    expect(served(config.redis.url!).container.name).toBe('redis');
  });

  it('runs one etcd member named after its pod under a headless Service, with a volume and a short history', async () => {
    const { objects, kustomization } = await setup();
    const etcd = one(objects, 'StatefulSet', 'etcd');
    const headless = one(objects, 'Service', etcd.spec.serviceName);
    expect(headless.spec.clusterIP).toBe('None');
    // The member's peer name must resolve before it is ready, or it never bootstraps.
    expect(headless.spec.publishNotReadyAddresses).toBe(true);
    const spec = etcd.spec.template.spec;
    // etcd reads ETCD_* variables as flags: the `etcd` Service's links would be read too.
    expect(spec.enableServiceLinks).toBe(false);
    const c = (spec.containers as Container[])[0]!;
    const env = podEnv(c, { name: 'etcd-0', namespace: kustomization.namespace }, {});
    const args = c.args.map((a) => a.replace(/\$\(([A-Z_]+)\)/g, (m, v: string) => env[v] ?? m));
    const flag = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
    expect(flag('name')).toBe('etcd-0');
    const peerUrl = `http://etcd-0.${headless.metadata.name}.${kustomization.namespace}.svc:2380`;
    expect(flag('initial-advertise-peer-urls')).toBe(peerUrl);
    const members = flag('initial-cluster')!.split(',');
    expect(members).toEqual([`etcd-0=${peerUrl}`]);
    expect(etcd.spec.replicas).toBe(members.length);
    expect(flag('advertise-client-urls')).toBe(`http://etcd-0.${headless.metadata.name}.${kustomization.namespace}.svc:2379`);
    expect(flag('auto-compaction-mode')).toBe('periodic');
    expect(flag('auto-compaction-retention')).toBeTruthy();
    const claim = (etcd.spec.volumeClaimTemplates as Array<{ metadata: { name: string } }>)[0]!;
    const mount = c.volumeMounts.find((m) => m.name === claim.metadata.name)!;
    expect(flag('data-dir')!.startsWith(`${mount.mountPath}/`)).toBe(true);
    expect(c.readinessProbe).toBeDefined();
    expect(c.livenessProbe).toBeDefined();
  });

  it('runs one Redis without persistence (it holds only state the replicas rewrite)', async () => {
    const { objects } = await setup();
    const redis = one(objects, 'Deployment', 'redis');
    expect(redis.spec.replicas).toBe(1);
    const c = (redis.spec.template.spec.containers as Container[])[0]!;
    expect(c.image).toMatch(/^redis:7/);
    expect(c.args.join(' ')).toBe('redis-server --save  --appendonly no');
    expect(c.readinessProbe).toBeDefined();
    expect(c.livenessProbe).toBeDefined();
  });

  it('runs every container of the kustomization as non-root, read-only, with probes', async () => {
    const { objects } = await setup();
    for (const workload of objects.filter((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment')) {
      const spec = workload.spec.template.spec;
      expect(spec.securityContext?.runAsNonRoot, workload.metadata.name).toBe(true);
      for (const c of spec.containers as Array<Container & { securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean } }>) {
        expect(c.securityContext?.readOnlyRootFilesystem, c.name).toBe(true);
        expect(c.securityContext?.allowPrivilegeEscalation, c.name).toBe(false);
        expect(c.readinessProbe, c.name).toBeDefined();
        expect(c.livenessProbe, c.name).toBeDefined();
      }
    }
  });

  it('needs enableServiceLinks: false — the `outpost` Service would otherwise inject an OUTPOST_PORT the node refuses', async () => {
    const { objects, sts, container, kustomization, argv, secretEnv } = await setup();
    expect(sts.spec.template.spec.enableServiceLinks).toBe(false);
    const env = podEnv(container, { name: 'outpost-0', namespace: kustomization.namespace }, secretEnv);
    const links = objects.filter((o) => o.kind === 'Service').reduce((acc, svc) => ({ ...acc, ...serviceLinkEnv(svc.metadata.name, '10.96.0.12', 5000) }), {});
    expect(links).toHaveProperty('OUTPOST_PORT', 'tcp://10.96.0.12:5000');
    expect(() => loadConfig({ argv, env: { ...links, ...env } })).toThrow(/server\.port/);
  });
});

// ---------------------------------------------------------------------------

describe('environment variables in deploy/ and the README', () => {
  /** The variables Outpost reads: every `env:` of the convict schema, and OUTPOST_CONFIG, which the loader reads. */
  async function knownVariables(): Promise<Set<string>> {
    const schema = await readFile(join(root, 'src/config/schema.ts'), 'utf8');
    const names = new Set([...schema.matchAll(/\benv: '(OUTPOST_[A-Z0-9_]+)'/g)].map((m) => m[1]!));
    expect(names.size).toBeGreaterThan(30);
    const loader = await readFile(join(root, 'src/config/load.ts'), 'utf8');
    expect(loader).toContain("env['OUTPOST_CONFIG']");
    names.add('OUTPOST_CONFIG');
    return names;
  }

  /** Names that are not Outpost settings but appear on purpose, and why. */
  const notSettings: Record<string, string> = {
    ...Object.fromEntries(
      Object.keys(serviceLinkEnv('outpost', '10.96.0.12', 5000)).map((n) => [n, 'Kubernetes service-link variable the manifests warn about']),
    ),
    OUTPOST_SKIP_SYSTEM_PACKAGES: 'read by the test setup (test/support/system-packages-setup.ts), not by a node',
  };

  async function filesUnder(dir: string): Promise<string[]> {
    const entries = await readdir(dir, { withFileTypes: true, recursive: true });
    return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  }

  it('every OUTPOST_* variable named in deploy/ or the README is one the config schema reads', async () => {
    const known = await knownVariables();
    const unknown: string[] = [];
    for (const file of [...(await filesUnder(deploy)), join(root, 'README.md')]) {
      const text = await readFile(file, 'utf8');
      for (const m of text.matchAll(/\bOUTPOST_[A-Z0-9_]*[A-Z0-9]\b/g)) {
        if (known.has(m[0])) continue;
        if (notSettings[m[0]] !== undefined && (m[0] === 'OUTPOST_SKIP_SYSTEM_PACKAGES' || file.includes('/kubernetes/'))) continue;
        unknown.push(`${file.slice(root.length + 1)}: ${m[0]}`);
      }
    }
    expect([...new Set(unknown)]).toEqual([]);
  });

  it('the check knows the replica-set variables, and catches a misspelt one', async () => {
    const known = await knownVariables();
    for (const name of ['OUTPOST_NODE_ID', 'OUTPOST_ADVERTISE_URL', 'OUTPOST_ETCD_ENDPOINTS', 'OUTPOST_REDIS_URL', 'OUTPOST_CLUSTER_NAME', 'OUTPOST_PEER_SECRET', 'OUTPOST_ETCD_LEASE_TTL']) {
      expect(known.has(name), name).toBe(true);
    }
    expect(known.has('OUTPOST_ETCD_LEASE')).toBe(false);
    expect(known.has('OUTPOST_LEASE_TTL')).toBe(false);
  });
});
