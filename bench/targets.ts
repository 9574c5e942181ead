/**
 * The servers under comparison, all on 127.0.0.1 with temp dirs:
 *
 *   primary   CNCF distribution (docker-registry serve), the source of truth
 *   proxy     CNCF distribution in proxy mode (proxy.remoteurl = primary) — the anchor
 *   nginx     nginx serving the same blob files from disk — the physical-limit reference
 *   outpost   Outpost, 2 workers, upstream = primary
 *   relay     the least a Node mirror does (node-relay.ts) — the cold pull's floor for Node
 *
 * Cold scenarios reset a mirror: stop it, empty its storage, start it again
 * (same port).
 */
import { mkdir, rm } from 'node:fs/promises';
import { startDistribution, type DistributionRegistry } from '../test/support/distribution.ts';
import { startOutpost, type OutpostNode } from '../test/support/outpost.ts';
import { startNginx, type NginxServer } from './nginx.ts';
import { startNodeRelay, type NodeRelay } from './node-relay.ts';
import type { RssSubject } from './rss-sampler.ts';
import { manifestMediaType } from './seed.ts';

/** An Outpost under measurement: this tree's ("outpost"), or with --compare the ref's too ("outpost@<ref>"). */
export interface OutpostUnderTest {
  name: string;
  node: OutpostNode;
  /** The tree it runs from (undefined: this one). */
  root: string | undefined;
}

export interface Targets {
  primary: DistributionRegistry;
  proxy: DistributionRegistry;
  nginx: NginxServer;
  relay: NodeRelay;
  /** This tree's Outpost (the first of `outposts`). */
  outpost: OutpostNode;
  /** Every Outpost under measurement, this tree's first. */
  outposts: OutpostUnderTest[];
}

/** A server a warm scenario measures. */
export interface WarmServer {
  name: string;
  url: string;
  pid: () => number | undefined;
}

/** A mirror a cold scenario empties before each measurement. */
export interface ColdMirror {
  name: string;
  url: () => string;
  host: () => string;
  /** Root pid of the mirror's process tree (for its CPU time and RSS). */
  pid: () => number | undefined;
  reset: () => Promise<void>;
}

/** The Outposts, then (unless --compare left them out) the proxy and nginx. */
export function warmServers(targets: Targets, anchors: boolean): WarmServer[] {
  const servers: WarmServer[] = targets.outposts.map(({ name, node }) => ({ name, url: node.url, pid: () => node.pid }));
  if (anchors) {
    servers.push({ name: 'proxy', url: targets.proxy.url, pid: () => targets.proxy.pid });
    servers.push({ name: 'nginx', url: targets.nginx.url, pid: () => targets.nginx.pid });
  }
  return servers;
}

/** The Outposts, then (unless --compare left it out) the proxy. */
export function coldMirrors(targets: Targets, anchors: boolean): ColdMirror[] {
  const mirrors: ColdMirror[] = targets.outposts.map(({ name, node }) => ({
    name,
    url: () => node.url,
    host: () => node.host,
    pid: () => node.pid,
    reset: () => resetOutpost(node),
  }));
  if (anchors) {
    const { proxy } = targets;
    mirrors.push({ name: 'proxy', url: () => proxy.url, host: () => proxy.host, pid: () => proxy.pid, reset: () => resetProxy(proxy) });
  }
  return mirrors;
}

/** Environment for every Outpost the bench starts: quiet logs, tags trusted for the whole run. */
export const outpostBenchEnv: Record<string, string> = {
  OUTPOST_LOG_LEVEL: 'warn',
  OUTPOST_TAG_TTL: '24h',
  OUTPOST_CACHE_MAX_BYTES: '100GiB',
  OUTPOST_UPSTREAM_CONNECT_TIMEOUT: '5s',
  OUTPOST_UPSTREAM_HEADERS_TIMEOUT: '60s',
  OUTPOST_UPSTREAM_BODY_TIMEOUT: '60s',
};

/** Starts whatever is missing; `add` registers each server's disposal as soon as it exists. */
export async function startTargets(
  add: (dispose: () => Promise<void>) => void,
  log: (line: string) => void,
  compare?: { name: string; root: string },
): Promise<Targets> {
  const primary = await startDistribution();
  add(() => primary.dispose());
  log(`primary  distribution ${primary.url} (pid ${primary.pid})`);
  const proxy = await startDistribution({ proxyRemoteUrl: primary.url });
  add(() => proxy.dispose());
  log(`proxy    distribution proxy ${proxy.url} → primary (pid ${proxy.pid})`);
  const nginx = await startNginx({ manifestMediaType });
  add(() => nginx.dispose());
  log(`nginx    ${nginx.url} serving ${nginx.www} (pid ${nginx.pid})`);
  const relay = await startNodeRelay(primary.url);
  add(() => relay.dispose());
  log(`relay    node relay ${relay.url} → primary (pid ${relay.pid})`);
  const outpost = await startOutpost({ upstreamUrl: primary.url, workers: 2, env: outpostBenchEnv });
  add(() => outpost.dispose());
  log(`outpost  ${outpost.url} → primary, 2 workers (pid ${outpost.pid})`);
  const outposts: OutpostUnderTest[] = [{ name: 'outpost', node: outpost, root: undefined }];
  if (compare) {
    const other = await startOutpost({ upstreamUrl: primary.url, workers: 2, env: outpostBenchEnv, root: compare.root });
    add(() => other.dispose());
    log(`${compare.name}  ${other.url} → primary, 2 workers, from ${compare.root} (pid ${other.pid})`);
    outposts.push({ name: compare.name, node: other, root: compare.root });
  }
  return { primary, proxy, nginx, relay, outpost, outposts };
}

export async function resetOutpost(node: OutpostNode): Promise<void> {
  await node.stop();
  await rm(node.cacheDir, { recursive: true, force: true });
  await mkdir(node.cacheDir, { recursive: true });
  await node.start();
}

export async function resetProxy(proxy: DistributionRegistry): Promise<void> {
  await proxy.stop();
  await rm(proxy.dataDir, { recursive: true, force: true });
  await proxy.start();
}

/** The processes whose peak RSS every scenario reports. */
export function rssSubjects(targets: Targets): RssSubject[] {
  return [
    ...targets.outposts.map(({ name, node }): RssSubject => ({ target: name, rootPid: () => node.pid, rootRole: 'primary', childRole: 'worker' })),
    { target: 'proxy', rootPid: () => targets.proxy.pid, rootRole: 'process', childRole: 'child' },
    { target: 'nginx', rootPid: () => targets.nginx.pid, rootRole: 'master', childRole: 'worker' },
    { target: 'upstream', rootPid: () => targets.primary.pid, rootRole: 'process', childRole: 'child' },
  ];
}
