/**
 * Prefetch run records in etcd (the RunStore port, prefetch/run-store.ts).
 *
 *   <cluster>/prefetch/
 *   ├── runs/<job>/header          RunHeader JSON of the job's current or last run
 *   ├── runs/<job>/run-id          its run id alone (the fence of image writes)
 *   ├── runs/<job>/images/<000000> the expanded image list, in chunks of 1,000
 *   ├── runs/<job>/done/<000000>   one ImageOutcome per image done, by index
 *   └── requests/<job>             {job, runId, at}: an admin asked any replica for a run now
 *
 * Every write of the leader goes through the replica set's `ifLeader`
 * (an etcd transaction that commits only while this node's election key
 * holds), with a condition on the run id, so a deposed leader or a
 * superseded run changes nothing. `requests/` is written by any replica and
 * removed by the leader once acted on. Job names come from the config
 * (`[a-z0-9][a-z0-9._-]*`), so they are safe in keys. Values read back are
 * parsed (run-record-codec.ts); a record that does not parse counts as absent.
 */
import type { Etcd3 } from 'etcd3';
import type { ImageRef } from '../prefetch/ports.ts';
import { parseImageOutcome, parseImageRefs, parseRunHeader, parseRunRequest } from '../prefetch/run-record-codec.ts';
import type { BeginResult, ImageOutcome, RunHeader, RunRequest, RunState, RunStore, StoredRun } from '../prefetch/run-store.ts';
import type { EtcdReplicaSet, FenceCondition } from './etcd-replica-set.ts';

const chunkSize = 1_000;
const pad = (n: number): string => String(n).padStart(6, '0');

export interface EtcdRunStoreOptions {
  client: Etcd3;
  clusterName: string;
  /** The fenced write of the replica set. */
  ifLeader: EtcdReplicaSet['ifLeader'];
}

export class EtcdRunStore implements RunStore {
  private readonly root: string;

  constructor(private readonly options: EtcdRunStoreOptions) {
    this.root = `${options.clusterName}/prefetch/`;
  }

  private runKey(job: string, part: string): string {
    return `${this.root}runs/${job}/${part}`;
  }

  async read(job: string): Promise<StoredRun | undefined> {
    const kvs = await this.options.client.getAll().prefix(this.runKey(job, '')).exec();
    let header: RunHeader | undefined;
    const chunks = new Map<number, ImageRef[]>();
    const outcomes = new Map<number, ImageOutcome>();
    let broken = false;
    for (const kv of kvs.kvs) {
      const part = kv.key.toString('utf8').slice(this.runKey(job, '').length);
      const text = kv.value.toString('utf8');
      if (part === 'header') header = parseRunHeader(text);
      else if (part.startsWith('images/')) {
        const refs = parseImageRefs(text);
        if (refs === undefined) broken = true;
        else chunks.set(Number(part.slice('images/'.length)), refs);
      } else if (part.startsWith('done/')) {
        const outcome = parseImageOutcome(text);
        if (outcome !== undefined) outcomes.set(outcome.index, outcome);
      }
    }
    if (header === undefined || header.job !== job) return undefined;
    let images: ImageRef[] | undefined;
    if (chunks.size > 0 && !broken) {
      images = [];
      for (let i = 0; i < chunks.size; i++) {
        const chunk = chunks.get(i);
        if (chunk === undefined) {
          images = undefined;
          break;
        }
        images.push(...chunk);
      }
    }
    return { header, images, outcomes };
  }

  async header(job: string): Promise<RunHeader | undefined> {
    const kv = (await this.options.client.get(this.runKey(job, 'header')).exec()).kvs[0];
    const header = kv === undefined ? undefined : parseRunHeader(kv.value.toString('utf8'));
    return header?.job === job ? header : undefined;
  }

  async begin(header: RunHeader): Promise<BeginResult> {
    const c = this.options.client;
    const headerKey = this.runKey(header.job, 'header');
    const existing = (await c.get(headerKey).exec()).kvs[0];
    const current = existing === undefined ? undefined : parseRunHeader(existing.value.toString('utf8'));
    if (current?.state === 'running') return { ok: false, reason: 'busy', current };
    if (current?.dueKey === header.dueKey) return { ok: false, reason: 'duplicate', current };
    const committed = await this.options.ifLeader(
      [
        c.delete().prefix(this.runKey(header.job, 'images/')),
        c.delete().prefix(this.runKey(header.job, 'done/')),
        c.put(headerKey).value(JSON.stringify(header)),
        c.put(this.runKey(header.job, 'run-id')).value(header.runId),
      ],
      { key: headerKey, column: 'Mod', cmp: '==', value: existing?.mod_revision ?? 0 },
    );
    return committed ? { ok: true } : { ok: false, reason: 'not-leader' };
  }

  async setImages(job: string, runId: string, images: readonly ImageRef[]): Promise<boolean> {
    const c = this.options.client;
    const ops = [];
    for (let i = 0; i * chunkSize < images.length || i === 0; i++) {
      ops.push(c.put(this.runKey(job, `images/${pad(i)}`)).value(JSON.stringify(images.slice(i * chunkSize, (i + 1) * chunkSize))));
    }
    return this.options.ifLeader(ops, this.fence(job, runId));
  }

  async recordOutcome(job: string, runId: string, outcome: ImageOutcome): Promise<boolean> {
    const c = this.options.client;
    return this.options.ifLeader([c.put(this.runKey(job, `done/${pad(outcome.index)}`)).value(JSON.stringify(outcome))], this.fence(job, runId));
  }

  async finish(job: string, runId: string, result: { state: Exclude<RunState, 'running'>; finishedAt: number; error: string | undefined }): Promise<boolean> {
    const c = this.options.client;
    const headerKey = this.runKey(job, 'header');
    const existing = (await c.get(headerKey).exec()).kvs[0];
    const current = existing === undefined ? undefined : parseRunHeader(existing.value.toString('utf8'));
    if (current?.runId !== runId || existing === undefined) return false;
    const finished: RunHeader = { ...current, ...result };
    return this.options.ifLeader([c.put(headerKey).value(JSON.stringify(finished))], this.fence(job, runId), {
      key: headerKey,
      column: 'Mod',
      cmp: '==',
      value: existing.mod_revision,
    });
  }

  async requestRun(request: RunRequest): Promise<RunRequest> {
    const c = this.options.client;
    const key = `${this.root}requests/${request.job}`;
    // Create only: a second request while one is pending gets the first one's run id.
    const result = await c.if(key, 'Version', '==', 0).then(c.put(key).value(JSON.stringify(request))).else(c.get(key)).commit();
    if (result.succeeded) return request;
    const kv = result.responses[0]?.response_range?.kvs[0];
    return (kv === undefined ? undefined : parseRunRequest(kv.value.toString('utf8'))) ?? request;
  }

  async pendingRequests(): Promise<RunRequest[]> {
    const kvs = await this.options.client.getAll().prefix(`${this.root}requests/`).limit(1_000).exec();
    return kvs.kvs
      .map((kv) => parseRunRequest(kv.value.toString('utf8')))
      .filter((r): r is RunRequest => r !== undefined && kvs.kvs.some((kv) => kv.key.toString('utf8') === `${this.root}requests/${r.job}`));
  }

  async takeRequest(request: RunRequest): Promise<void> {
    const key = `${this.root}requests/${request.job}`;
    const c = this.options.client;
    const kv = (await c.get(key).exec()).kvs[0];
    if (kv === undefined || parseRunRequest(kv.value.toString('utf8'))?.runId !== request.runId) return;
    await c.if(key, 'Mod', '==', kv.mod_revision).then(c.delete().key(key)).commit();
  }

  private fence(job: string, runId: string): FenceCondition {
    return { key: this.runKey(job, 'run-id'), column: 'Value', cmp: '==', value: runId };
  }
}
