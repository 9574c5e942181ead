/** Test doubles for prefetch: a fake clock with timers and sleep, a recording logger, fake warm client and image source. */
import type { Clock, Logger } from '../../../src/cache/ports.ts';
import type { PrefetchJobConfig } from '../../../src/config/types.ts';
import { formatImageRef, type ImageRef, type JobImageSource, type Pace, type ReplicaTarget, type ReplicaWarmClient, type WarmOptions, type WarmResult } from '../../../src/prefetch/ports.ts';
import type { Timers } from '../../../src/prefetch/scheduler.ts';
import type { Sleep } from '../../../src/prefetch/token-bucket.ts';

/** Lets promise chains started by a callback run to their next real wait. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

export class FakeTime implements Clock, Timers {
  private seq = 0;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();
  constructor(public current = Date.parse('2026-11-30T00:00:00Z')) {}

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { at: this.current + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  readonly sleep: Sleep = (ms, signal) =>
    new Promise((resolve, reject) => {
      signal.throwIfAborted();
      const id = this.setTimeout(resolve, ms);
      signal.addEventListener('abort', () => {
        this.clearTimeout(id);
        reject(signal.reason as Error);
      }, { once: true });
    });

  /** Timers armed now, by due instant. */
  armed(): number[] {
    return [...this.pending.values()].map((t) => t.at).sort((a, b) => a - b);
  }

  /** Moves time forward, running each timer at its instant (and what it starts), in order. */
  async advance(ms: number): Promise<void> {
    const end = this.current + ms;
    await settle();
    for (;;) {
      const next = [...this.pending.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (next === undefined) break;
      this.pending.delete(next[0]);
      this.current = Math.max(this.current, next[1].at);
      next[1].fn();
      await settle();
    }
    this.current = end;
    await settle();
  }
}

export interface LogLine {
  level: string;
  msg: string;
  obj: Record<string, unknown>;
}

export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object, msg: string) => void lines.push({ level, msg, obj: obj as Record<string, unknown> });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export function job(overrides: Partial<PrefetchJobConfig> = {}): PrefetchJobConfig {
  return {
    name: 'nightly',
    schedule: '0 3 * * *',
    timezone: 'UTC',
    upstream: 'registry.test',
    images: ['bars/*:*'],
    updatedWithinDays: undefined,
    platforms: [],
    replicas: 'all',
    runOnStart: false,
    concurrency: 2,
    requestsPerSecond: 1_000,
    ...overrides,
  };
}

export const image = (repository: string, reference = 'v1'): ImageRef => ({ upstream: 'registry.test', repository, reference });

export function okResult(ref: ImageRef, blobs = 2, bytes = 100, cachedBlobs = 0): WarmResult {
  return { image: formatImageRef(ref), ok: true, digest: `sha256:${'a'.repeat(63)}${blobs}`, blobs, bytes, cachedBlobs, error: undefined };
}

export interface WarmCall {
  replica: string;
  image: string;
  at: number;
}

/**
 * A ReplicaWarmClient whose answers the test decides: `behave` returns a
 * result, throws (replica unreachable), or waits on a gate.
 */
export class FakeWarmClient implements ReplicaWarmClient {
  readonly calls: WarmCall[] = [];
  inFlight = 0;
  maxInFlight = 0;
  constructor(
    private readonly clock: Clock,
    public behave: (replica: ReplicaTarget, ref: ImageRef, options: WarmOptions) => Promise<WarmResult> | WarmResult = (_r, ref) => okResult(ref),
  ) {}

  async warm(replica: ReplicaTarget, ref: ImageRef, options: WarmOptions): Promise<WarmResult> {
    this.calls.push({ replica: replica.id, image: formatImageRef(ref), at: this.clock.now() });
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      options.signal.throwIfAborted();
      return await this.behave(replica, ref, options);
    } finally {
      this.inFlight -= 1;
    }
  }
}

export class FakeImageSource implements JobImageSource {
  expansions = 0;
  constructor(public images: ImageRef[] | (() => Promise<ImageRef[]>)) {}
  async expand(_job: PrefetchJobConfig, signal: AbortSignal, _pace?: Pace): Promise<ImageRef[]> {
    signal.throwIfAborted();
    this.expansions += 1;
    return typeof this.images === 'function' ? this.images() : this.images;
  }
}

export const replicas = (...ids: string[]): ReplicaTarget[] => ids.map((id) => ({ id, url: `http://${id}.test:5000` }));

/** A promise the test resolves when it wants. */
export function gate<T = void>(): { promise: Promise<T>; open: (value: T) => void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
