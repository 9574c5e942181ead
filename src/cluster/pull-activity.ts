/**
 * What the status page shows about pulls on a node: the most recent manifest
 * pulls (a ring of {@link recentPullsKept}) and the repositories pulled most,
 * by pulls and by blob bytes sent (at most {@link reposKept} repositories:
 * past that, the least pulled one is forgotten to make room).
 *
 * Workers record each answered pull ({@link PullRecorder}) and send what they
 * saw in batches (at most one IPC message a second) to the cluster primary,
 * which keeps the node's {@link PullActivity}. Everything in a batch comes
 * from clients (repository names, tags, user names): it is bounded and
 * checked again here ({@link parsePullBatch}) and escaped where it is shown.
 */
import type { CacheResult, Clock } from '../cache/ports.ts';

/**
 * How a pull was answered, as the access log's `cache` field says (`revalidated`:
 * a tag past its TTL that the primary confirmed unchanged); `other` for anything else.
 */
export type PullResult = CacheResult | 'other';

/** One manifest pull. */
export interface RecentPull {
  /** ms since the epoch. */
  at: number;
  repository: string;
  /** A tag, or a digest `sha256:...`. */
  reference: string;
  /** The client's address as the socket saw it. */
  client: string;
  result: PullResult;
  /** The authenticated (or claimed, with auth.mode upstream) user; absent when access control is off. */
  user?: string;
}

export interface RepositoryPulls {
  repository: string;
  /** Manifest GETs answered (by tag or digest). */
  pulls: number;
  /** Blob bytes sent. */
  bytes: number;
}

/** What a worker sends the primary. */
export interface PullBatch {
  recent: RecentPull[];
  /** `[repository, pulls, bytes]` since the last batch. */
  repositories: Array<[string, number, number]>;
}

/** One answered registry request, as the HTTP layer tells it. */
export interface PullEvent {
  kind: 'manifest' | 'blob';
  repository: string;
  reference: string;
  client: string;
  cache: string | undefined;
  user: string | undefined;
  /** Bytes written for the response (headers included). */
  bytes: number;
}

/** The replica set's pulls, merged (Redis): what every replica added. */
export interface SharedPulls {
  /** Newest first; each names the replica that answered it. */
  recent: Array<RecentPull & { node: string }>;
  byPulls: RepositoryPulls[];
  byBytes: RepositoryPulls[];
}

/** Where the cluster primaries of a replica set share their pull activity (coordination/redis-pull-activity.ts). */
export interface SharedPullActivity {
  /** Whether the store answers right now. */
  up(): boolean;
  add(batch: PullBatch): Promise<void>;
  read(recentLimit: number, topLimit: number): Promise<SharedPulls>;
}

export const recentPullsKept = 100;
export const reposKept = 1_000;
/** Longest repository name, reference, client address or user name kept (longer ones are cut). */
const maxField = 256;

const results = new Set<PullResult>(['hit', 'miss', 'coalesced', 'revalidated', 'stale', 'passthrough']);

function resultOf(cache: string | undefined): PullResult {
  return cache !== undefined && results.has(cache as PullResult) ? (cache as PullResult) : 'other';
}

function clip(value: string): string {
  return value.length > maxField ? value.slice(0, maxField) : value;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/** A batch as it arrives over IPC; undefined when malformed. Oversized parts are cut, not trusted. */
export function parsePullBatch(value: unknown): PullBatch | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const raw = value as { recent?: unknown; repositories?: unknown };
  if (!Array.isArray(raw.recent) || !Array.isArray(raw.repositories)) return undefined;
  const recent: RecentPull[] = [];
  for (const item of raw.recent.slice(-recentPullsKept) as unknown[]) {
    const p = item as Partial<Record<keyof RecentPull, unknown>> | null;
    if (typeof p !== 'object' || p === null) continue;
    if (!isCount(p.at) || typeof p.repository !== 'string' || typeof p.reference !== 'string' || typeof p.client !== 'string') continue;
    recent.push({
      at: p.at,
      repository: clip(p.repository),
      reference: clip(p.reference),
      client: clip(p.client),
      result: resultOf(typeof p.result === 'string' ? p.result : undefined),
      ...(typeof p.user === 'string' ? { user: clip(p.user) } : {}),
    });
  }
  const repositories: Array<[string, number, number]> = [];
  for (const item of raw.repositories.slice(0, reposKept) as unknown[]) {
    if (!Array.isArray(item) || typeof item[0] !== 'string' || !isCount(item[1]) || !isCount(item[2])) continue;
    repositories.push([clip(item[0]), item[1], item[2]]);
  }
  return { recent, repositories };
}

/** Worker side: records answered pulls and hands them on in batches. */
export class PullRecorder {
  private recent: RecentPull[] = [];
  private repos = new Map<string, { pulls: number; bytes: number }>();
  private lastFlush: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly send: (batch: PullBatch) => void,
    private readonly clock: Clock,
    private readonly flushEveryMs = 1_000,
  ) {
    this.lastFlush = clock.now();
  }

  /** Flushes what is left on a timer too (unref'd), so the last pulls of a quiet period arrive. */
  start(): void {
    this.timer ??= setInterval(() => this.flush(), this.flushEveryMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.flush();
  }

  record(event: PullEvent): void {
    const repository = clip(event.repository);
    let repo = this.repos.get(repository);
    if (repo === undefined) {
      // A flood of distinct names between two flushes is cut, not kept.
      if (this.repos.size >= reposKept) return;
      repo = { pulls: 0, bytes: 0 };
      this.repos.set(repository, repo);
    }
    if (event.kind === 'blob') {
      repo.bytes += event.bytes;
    } else {
      repo.pulls += 1;
      this.recent.push({
        at: this.clock.now(),
        repository,
        reference: clip(event.reference),
        client: clip(event.client),
        result: resultOf(event.cache),
        ...(event.user === undefined ? {} : { user: clip(event.user) }),
      });
      if (this.recent.length > recentPullsKept) this.recent.shift();
    }
    if (this.clock.now() - this.lastFlush >= this.flushEveryMs) this.flush();
  }

  flush(): void {
    this.lastFlush = this.clock.now();
    if (this.recent.length === 0 && this.repos.size === 0) return;
    const batch: PullBatch = { recent: this.recent, repositories: [...this.repos].map(([name, r]) => [name, r.pulls, r.bytes]) };
    this.recent = [];
    this.repos = new Map();
    this.send(batch);
  }
}

/** Primary side: the node's recent pulls and its most pulled repositories. */
export class PullActivity {
  private readonly ring: RecentPull[] = [];
  private readonly repos = new Map<string, { pulls: number; bytes: number }>();

  add(batch: PullBatch): void {
    for (const pull of batch.recent) {
      this.ring.push(pull);
      if (this.ring.length > recentPullsKept) this.ring.shift();
    }
    for (const [name, pulls, bytes] of batch.repositories) {
      let repo = this.repos.get(name);
      if (repo === undefined) {
        if (this.repos.size >= reposKept) this.forgetLeastPulled();
        repo = { pulls: 0, bytes: 0 };
        this.repos.set(name, repo);
      }
      repo.pulls += pulls;
      repo.bytes += bytes;
    }
  }

  /** Newest first. */
  recent(limit = recentPullsKept): RecentPull[] {
    return this.ring.slice(-limit).reverse();
  }

  top(by: 'pulls' | 'bytes', limit = 10): RepositoryPulls[] {
    return [...this.repos]
      .map(([repository, r]) => ({ repository, pulls: r.pulls, bytes: r.bytes }))
      .filter((r) => r[by] > 0)
      .sort((a, b) => b[by] - a[by] || a.repository.localeCompare(b.repository))
      .slice(0, limit);
  }

  private forgetLeastPulled(): void {
    let least: string | undefined;
    let leastPulls = Infinity;
    for (const [name, r] of this.repos) {
      if (r.pulls < leastPulls) {
        least = name;
        leastPulls = r.pulls;
      }
    }
    if (least !== undefined) this.repos.delete(least);
  }
}
