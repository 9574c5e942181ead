/**
 * Where prefetch runs are recorded, so that a leader change mid-run neither
 * loses the run nor runs it twice: the new leader reads the record and
 * finishes the images not done yet.
 *
 * One record per job: its current (or last) run — a header, the expanded
 * image list, one outcome per image done. Every write by the leader is
 * fenced (a deposed leader's write changes nothing and answers false);
 * `requestRun` is the one write any replica makes: it asks the leader for a
 * run now. Adapters: memory (standalone, unit tests), etcd
 * (coordination/etcd-run-store.ts). Both pass test/unit/prefetch/run-store-contract.ts.
 */
import type { ImageRef } from './ports.ts';
import type { RunReason } from './scheduler.ts';

export type RunState = 'running' | 'succeeded' | 'partial' | 'failed';

export interface RunHeader {
  job: string;
  runId: string;
  /** What the run is for: `schedule:<ISO instant>`, `start:<ms>` or `manual:<runId>`. One run per key. */
  dueKey: string;
  reason: RunReason;
  /** ms since the epoch. */
  startedAt: number;
  finishedAt: number | undefined;
  state: RunState;
  /** Why the run itself failed or was cut short (catalog unreadable, image cap exceeded). */
  error: string | undefined;
}

export interface ImageOutcome {
  /** Position in the run's image list. */
  index: number;
  /** formatImageRef of the image. */
  image: string;
  ok: boolean;
  /** Left out by the warmer (e.g. no selected platform). */
  skipped: boolean;
  blobs: number;
  bytes: number;
  /** Replicas the image is warm on. */
  replicas: string[];
  error: string | undefined;
}

export interface StoredRun {
  header: RunHeader;
  /** Undefined until the job's patterns were expanded. */
  images: ImageRef[] | undefined;
  outcomes: Map<number, ImageOutcome>;
}

export type BeginResult = { ok: true } | { ok: false; reason: 'busy' | 'duplicate' | 'not-leader'; current?: RunHeader };

export interface RunRequest {
  job: string;
  runId: string;
  /** ms since the epoch. */
  at: number;
}

export interface RunStore {
  /** The job's current or last run; undefined when it never ran. */
  read(job: string): Promise<StoredRun | undefined>;
  /** Only the header of the job's current or last run (cheap: no image list, no outcomes). */
  header(job: string): Promise<RunHeader | undefined>;
  /** Starts a run unless one is in progress (`busy`) or the last one had the same dueKey (`duplicate`). Fenced. */
  begin(header: RunHeader): Promise<BeginResult>;
  /** Fenced; false when not leading or the run is no longer the job's current one. */
  setImages(job: string, runId: string, images: readonly ImageRef[]): Promise<boolean>;
  recordOutcome(job: string, runId: string, outcome: ImageOutcome): Promise<boolean>;
  finish(job: string, runId: string, result: { state: Exclude<RunState, 'running'>; finishedAt: number; error: string | undefined }): Promise<boolean>;
  /**
   * Any replica: asks the leader to run `job` now under `runId`, unless a
   * request for the job is pending already. Resolves with the pending request
   * (this one, or the one that was there first).
   */
  requestRun(request: RunRequest): Promise<RunRequest>;
  /** The leader's side: requests not taken yet. */
  pendingRequests(): Promise<RunRequest[]>;
  /** Removes a request once the leader acted on it. */
  takeRequest(request: RunRequest): Promise<void>;
}

/** A run may select at most this many images; more is an error of the run (the first ones are warmed). */
export const maxImagesPerRun = 10_000;

/** What a memory store holds; two stores over the same records play two nodes in tests. */
export interface MemoryRunRecords {
  runs: Map<string, StoredRun>;
  requests: Map<string, RunRequest>;
}

/** The memory adapter: standalone nodes and unit tests. `leading` plays the fence. */
export class MemoryRunStore implements RunStore {
  private readonly runs: Map<string, StoredRun>;
  private readonly requests: Map<string, RunRequest>;

  constructor(
    private readonly leading: () => boolean = () => true,
    readonly records: MemoryRunRecords = { runs: new Map(), requests: new Map() },
  ) {
    this.runs = records.runs;
    this.requests = records.requests;
  }

  async read(job: string): Promise<StoredRun | undefined> {
    const run = this.runs.get(job);
    if (run === undefined) return undefined;
    return { header: { ...run.header }, images: run.images?.map((i) => ({ ...i })), outcomes: new Map([...run.outcomes].map(([k, v]) => [k, { ...v }])) };
  }

  async header(job: string): Promise<RunHeader | undefined> {
    const header = this.runs.get(job)?.header;
    return header === undefined ? undefined : { ...header };
  }

  async begin(header: RunHeader): Promise<BeginResult> {
    if (!this.leading()) return { ok: false, reason: 'not-leader' };
    const current = this.runs.get(header.job)?.header;
    if (current?.state === 'running') return { ok: false, reason: 'busy', current: { ...current } };
    if (current?.dueKey === header.dueKey) return { ok: false, reason: 'duplicate', current: { ...current } };
    this.runs.set(header.job, { header: { ...header }, images: undefined, outcomes: new Map() });
    return { ok: true };
  }

  async setImages(job: string, runId: string, images: readonly ImageRef[]): Promise<boolean> {
    const run = this.current(job, runId);
    if (run === undefined) return false;
    run.images = images.map((i) => ({ ...i }));
    return true;
  }

  async recordOutcome(job: string, runId: string, outcome: ImageOutcome): Promise<boolean> {
    const run = this.current(job, runId);
    if (run === undefined) return false;
    run.outcomes.set(outcome.index, { ...outcome });
    return true;
  }

  async finish(job: string, runId: string, result: { state: Exclude<RunState, 'running'>; finishedAt: number; error: string | undefined }): Promise<boolean> {
    const run = this.current(job, runId);
    if (run === undefined) return false;
    run.header = { ...run.header, ...result };
    return true;
  }

  async requestRun(request: RunRequest): Promise<RunRequest> {
    const pending = this.requests.get(request.job);
    if (pending !== undefined) return { ...pending };
    this.requests.set(request.job, { ...request });
    return { ...request };
  }

  async pendingRequests(): Promise<RunRequest[]> {
    return [...this.requests.values()].map((r) => ({ ...r }));
  }

  async takeRequest(request: RunRequest): Promise<void> {
    if (this.requests.get(request.job)?.runId === request.runId) this.requests.delete(request.job);
  }

  private current(job: string, runId: string): StoredRun | undefined {
    const run = this.runs.get(job);
    return this.leading() && run?.header.runId === runId ? run : undefined;
  }
}
