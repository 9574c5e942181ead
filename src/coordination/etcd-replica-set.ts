/**
 * Membership and leader election of a replica set in etcd.
 *
 * Keys, under `<cluster>/`:
 *
 *   <cluster>/
 *   ├── members/<node-id>      signed MemberRecord, under the node's session lease
 *   ├── election/<lease-hex>   node id, under the same lease; the lowest create revision leads
 *   ├── status                 signed ClusterAggregate: every replica seen lately (leader-written, fenced)
 *   └── left/<node-id>         instance id of a node that left gracefully (own 60 s lease)
 *
 * One lease per node session carries both its member key and its election
 * key, the way etcd's Go `concurrency.Session` does: a node that dies loses
 * both when the lease expires (within the TTL), and a clean stop is
 * "resign, revoke the lease, close". The election is etcd's recipe (as in Go's
 * `concurrency.Election` and etcd3's `Election`), built here on the session
 * lease instead of etcd3's `Campaign`, which grants a second lease of its own
 * and keeps the key revision the fence needs private.
 *
 * Leadership is fenced: a leader's side effects go through {@link ifLeader},
 * an etcd transaction that commits only while its election key still exists
 * with the create revision it won with. A partitioned leader may believe it
 * leads until its next heartbeat fails, but it can no longer change anything.
 *
 * A background loop heartbeats every `heartbeatMs`: it rewrites this node's
 * record (only while the key is still on its lease), reads the cluster view,
 * decides leadership, and as leader writes the aggregate. Failures mark etcd
 * down and retry with backoff; a lost lease starts a new session. Deletes under
 * the prefix (a lease expired, a leader resigned) wake the loop at once, so a
 * dead leader is replaced as soon as etcd expires its lease.
 */
import { randomUUID } from 'node:crypto';
import { isBrokenCircuitError } from 'cockatiel';
import type { Etcd3, IKeyValue, IRangeResponse, ITxnResponse, Lease, Watcher } from 'etcd3';
import type { Clock, Logger } from '../cache/ports.ts';
import { DuplicateNodeIdError } from '../cluster/duplicate-node-id-error.ts';
import {
  type ClusterAggregate,
  type KnownReplica,
  type MemberRecord,
  type Verified,
  parseAggregate,
  parseMemberRecord,
  signRecord,
  verifyRecord,
} from '../cluster/member-record.ts';

export { DuplicateNodeIdError };

export interface EtcdReplicaSetOptions {
  client: Etcd3;
  clusterName: string;
  nodeId: string;
  /** Random per process start. */
  instance?: string;
  leaseTtlSeconds: number;
  peerSecret: string;
  /** Record rewrite, view refresh and leader duty period. */
  heartbeatMs: number;
  /** This node's record, without `heartbeat_at` (set at each write). */
  record: () => Omit<MemberRecord, 'heartbeat_at' | 'instance'>;
  logger: Logger;
  clock: Clock;
  /** Called after every change of connectivity, membership or leadership. */
  onChange?: (state: ReplicaSetState) => void;
  /** Replicas without a heartbeat for this long are forgotten. Default 24 h. */
  forgetAfterMs?: number;
}

export interface ReplicaSetState {
  etcdUp: boolean;
  /** Why etcd is considered down (last error). */
  etcdError: string | undefined;
  /** When etcdUp last changed. */
  etcdSince: number;
  /** This node's member key is in etcd. */
  joined: boolean;
  /** Why the node is not joined although etcd is up (e.g. duplicate id). */
  joinProblem: string | undefined;
  leader: boolean;
  /** The leader seen at the last successful heartbeat. */
  leaderId: string | undefined;
  /** Verified live members at the last successful heartbeat. */
  members: number;
}

export interface ReplicaSetView {
  readAt: number;
  members: Array<{ id: string; record: Verified<MemberRecord> }>;
  leader: string | undefined;
  aggregate: ClusterAggregate | undefined;
  /** Nodes that left gracefully lately. */
  departed: ReadonlySet<string>;
}

export interface FenceCondition {
  key: string;
  column: 'Version' | 'Create' | 'Mod' | 'Value' | 'Lease';
  cmp: '==' | '!=' | '>' | '<';
  value: string | number;
}

interface Session {
  lease: Lease;
  leaseId: string;
  electionKey: string | undefined;
  electionRevision: string | undefined;
}

interface RawView {
  view: ReplicaSetView;
  leaderKv: IKeyValue | undefined;
  statusModRevision: string;
}

type Operation = Parameters<ReturnType<Etcd3['if']>['then']>[number];

const departedTtlSeconds = 60;

export class EtcdReplicaSet {
  readonly instance: string;
  readonly prefix: string;
  private readonly client: Etcd3;
  private session: Session | undefined;
  private readonly staleLeases = new Set<string>();
  private watcher: Watcher | undefined;
  private running = false;
  private campaigning = true;
  private loopDone: Promise<void> = Promise.resolve();
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private lastView: ReplicaSetView | undefined;
  private current: ReplicaSetState;

  constructor(private readonly options: EtcdReplicaSetOptions) {
    this.client = options.client;
    this.instance = options.instance ?? randomUUID();
    this.prefix = `${options.clusterName}/`;
    this.current = {
      etcdUp: false,
      etcdError: 'not connected yet',
      etcdSince: options.clock.now(),
      joined: false,
      joinProblem: undefined,
      leader: false,
      leaderId: undefined,
      members: 0,
    };
  }

  private get memberKey(): string {
    return `${this.prefix}members/${this.options.nodeId}`;
  }

  private get statusKey(): string {
    return `${this.prefix}status`;
  }

  state(): ReplicaSetState {
    return { ...this.current };
  }

  /**
   * Joins the replica set if etcd answers now: claims the node id (throws
   * {@link DuplicateNodeIdError} when a live process holds it) and starts
   * campaigning. When etcd does not answer, returns anyway and keeps trying
   * in the background: a node never waits on etcd to serve.
   */
  async start(): Promise<void> {
    this.running = true;
    try {
      this.session = await this.establish();
      this.markUp();
    } catch (err) {
      if (err instanceof DuplicateNodeIdError) {
        this.running = false;
        throw err;
      }
      this.markDown(err);
      this.options.logger.warn({ err: errorText(err) }, 'etcd unreachable at start; serving standalone, joining when it answers');
    }
    this.watch();
    this.loopDone = this.loop();
  }

  /**
   * Runs `operations` in one etcd transaction that commits only while this
   * node leads (its election key still exists with the revision it won with)
   * and every extra condition holds. Resolves false, having changed nothing,
   * otherwise. Every leader-only side effect goes through here.
   */
  async ifLeader(operations: Operation[], ...conditions: FenceCondition[]): Promise<boolean> {
    const session = this.session;
    if (!this.current.leader || session?.electionKey === undefined || session.electionRevision === undefined) return false;
    let txn = this.client.if(session.electionKey, 'Create', '==', session.electionRevision);
    for (const c of conditions) txn = txn.and(c.key, c.column, c.cmp, c.value);
    const result = await txn.then(...operations).commit();
    if (!result.succeeded) this.options.logger.warn({}, 'fenced leader transaction refused: leadership or its precondition is gone');
    return result.succeeded;
  }

  /**
   * The cluster as etcd sees it now; the last view read when etcd does not
   * answer within `timeoutMs` (or the client's call timeout, if shorter).
   */
  async view(timeoutMs = Infinity): Promise<ReplicaSetView | undefined> {
    const read = this.readView().then(
      (raw) => {
        this.lastView = raw.view;
        return raw.view;
      },
      (err: unknown) => {
        this.markDown(err);
        return this.lastView;
      },
    );
    if (timeoutMs === Infinity) return read;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<ReplicaSetView | undefined>((resolve) => {
      timer = setTimeout(() => resolve(this.lastView), timeoutMs);
    });
    try {
      return await Promise.race([read, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops campaigning and gives up leadership now (shutdown begins); membership stays until {@link stop}. */
  async resign(): Promise<void> {
    this.campaigning = false;
    const session = this.session;
    this.setLeader(false, this.current.leaderId === this.options.nodeId ? undefined : this.current.leaderId);
    if (session?.electionKey === undefined || session.electionRevision === undefined) return;
    const key = session.electionKey;
    const revision = session.electionRevision;
    session.electionKey = undefined;
    session.electionRevision = undefined;
    try {
      await this.client.if(key, 'Create', '==', revision).then(this.client.delete().key(key)).commit();
      this.options.logger.info({}, 'resigned from the leader election');
    } catch (err) {
      this.options.logger.warn({ err: errorText(err) }, 'could not resign; the election key goes with the lease');
    }
  }

  /** Resigns, records a graceful departure, revokes the lease and closes the client. Bounded; never throws. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.resign();
    await this.loopDone;
    await this.watcher?.cancel().catch(() => undefined);
    const session = this.session;
    this.session = undefined;
    if (session !== undefined) {
      try {
        const departed = this.client.lease(departedTtlSeconds, { autoKeepAlive: false });
        await departed.put(`${this.prefix}left/${this.options.nodeId}`).value(this.instance);
        departed.release();
      } catch {
        // The leader then reports the node unreachable until it is forgotten or returns.
      }
      await session.lease.revoke().catch((err: unknown) => {
        this.options.logger.warn({ err: errorText(err) }, 'could not revoke the etcd lease; it expires within the TTL');
      });
      this.options.logger.info({}, 'left the replica set');
    }
    this.client.close();
  }

  // ---------------------------------------------------------------------------

  private async loop(): Promise<void> {
    let backoffMs = 100;
    while (this.running) {
      try {
        if (this.session === undefined || this.session.lease.revoked()) {
          this.session = undefined;
          this.session = await this.establish();
        }
        await this.heartbeat(this.session);
        this.markUp();
        backoffMs = 100;
        await this.sleep(this.options.heartbeatMs);
      } catch (err) {
        if (err instanceof DuplicateNodeIdError) {
          if (this.current.joinProblem !== err.message) this.options.logger.error({ err: err.message }, 'cannot join the replica set');
          this.current = { ...this.current, joinProblem: err.message };
          this.markUp();
          await this.sleep(Math.max(this.options.heartbeatMs, 5_000));
          continue;
        }
        this.markDown(err);
        await this.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, Math.min(2_000, this.options.heartbeatMs));
      }
    }
  }

  /** New lease; claims the member key (refusing a live duplicate); enters the election. */
  private async establish(): Promise<Session> {
    await this.revokeStaleLeases();
    const lease = this.client.lease(this.options.leaseTtlSeconds, { autoKeepAlive: true });
    lease.on('lost', (err) => this.sessionLost(lease, err));
    let leaseId: string;
    try {
      leaseId = await lease.grant();
    } catch (err) {
      lease.release();
      throw err;
    }
    try {
      const session = await this.claim(lease, leaseId);
      this.current = { ...this.current, joined: true, joinProblem: undefined };
      this.options.logger.info(
        { cluster: this.options.clusterName, lease: leaseId, ttlSeconds: this.options.leaseTtlSeconds },
        'joined the replica set',
      );
      this.notify();
      return session;
    } catch (err) {
      await lease.revoke().catch(() => lease.release());
      throw err;
    }
  }

  private async claim(lease: Lease, leaseId: string): Promise<Session> {
    let deadline: number | undefined;
    for (;;) {
      const existing = (await this.client.get(this.memberKey).exec()).kvs[0];
      if (existing !== undefined) {
        const held = verifyRecord(this.options.peerSecret, existing.value.toString('utf8'), parseMemberRecord);
        if (held.value?.instance !== this.instance) {
          // A previous run of this node that was killed keeps the key until its lease expires: wait that long, no longer.
          deadline ??= this.options.clock.now() + (await this.remainingTtlMs(existing)) + 1_000;
          if (this.options.clock.now() >= deadline) {
            throw new DuplicateNodeIdError(this.options.nodeId, {
              instance: held.value?.instance,
              advertiseUrl: held.value?.advertise_url,
              startedAt: held.value?.started_at,
            });
          }
          await delay(Math.min(250, this.options.heartbeatMs));
          continue;
        }
      }
      const electionKey = this.campaigning ? `${this.prefix}election/${BigInt(leaseId).toString(16)}` : undefined;
      const record = this.signedRecord();
      const result = await this.client
        .if(this.memberKey, 'Mod', '==', existing?.mod_revision ?? 0)
        .then(
          this.client.put(this.memberKey).value(record).lease(leaseId),
          this.client.delete().key(`${this.prefix}left/${this.options.nodeId}`),
          ...(electionKey === undefined ? [] : [this.client.put(electionKey).value(this.options.nodeId).lease(leaseId)]),
        )
        .commit();
      if (!result.succeeded) continue; // changed under us: look again
      return { lease, leaseId, electionKey, electionRevision: electionKey === undefined ? undefined : result.header.revision };
    }
  }

  private async remainingTtlMs(kv: IKeyValue): Promise<number> {
    if (kv.lease === '0') return this.options.leaseTtlSeconds * 1000;
    const ttl = await this.client.leaseClient.leaseTimeToLive({ ID: kv.lease, keys: false });
    // Whole seconds, rounded down, and etcd revokes expired leases on a half-second beat: allow a second more.
    return Math.max(Number(ttl.TTL) + 1, 0) * 1000;
  }

  private sessionLost(lease: Lease, err: Error): void {
    const session = this.session;
    if (session?.lease !== lease) return;
    this.session = undefined;
    // After an etcd restart the old lease lives on for a TTL, holding our old election key: revoke it on reconnection.
    this.staleLeases.add(session.leaseId);
    this.options.logger.warn({ err: errorText(err) }, 'etcd lease lost; rejoining with a new one');
    this.current = { ...this.current, joined: false };
    this.setLeader(false, this.current.leaderId);
    this.wake();
  }

  private async revokeStaleLeases(): Promise<void> {
    for (const id of [...this.staleLeases]) {
      try {
        await this.client.leaseClient.leaseRevoke({ ID: id });
      } catch {
        // Expired already, or etcd is down: it expires by itself within the TTL.
      }
      this.staleLeases.delete(id);
    }
  }

  private async heartbeat(session: Session): Promise<void> {
    const put = await this.client
      .if(this.memberKey, 'Lease', '==', session.leaseId)
      .then(this.client.put(this.memberKey).value(this.signedRecord()).lease(session.leaseId))
      .commit();
    if (!put.succeeded) {
      // Our lease expired in etcd (a long partition): the key is gone or someone else's.
      this.staleLeases.add(session.leaseId);
      session.lease.release();
      this.session = undefined;
      this.current = { ...this.current, joined: false };
      this.setLeader(false, undefined);
      throw new Error('membership key no longer on our lease');
    }
    const raw = await this.readView();
    this.lastView = raw.view;
    const leading =
      session.electionKey !== undefined &&
      raw.leaderKv?.key.toString('utf8') === session.electionKey &&
      raw.leaderKv.create_revision === session.electionRevision;
    this.setLeader(leading, raw.view.leader);
    const members = raw.view.members.filter((m) => m.record.verified).length;
    if (members !== this.current.members) {
      this.current = { ...this.current, members };
      this.notify();
    }
    if (leading) await this.aggregate(raw);
  }

  /** Leader duty: keep the lasting record of every replica seen (so a dead one is still reported). */
  private async aggregate(raw: RawView): Promise<void> {
    const now = this.options.clock.now();
    const forgetAfterMs = this.options.forgetAfterMs ?? 24 * 3_600_000;
    const replicas: Record<string, KnownReplica> = {};
    for (const [id, known] of Object.entries(raw.view.aggregate?.replicas ?? {})) {
      if (raw.view.departed.has(id) || now - Date.parse(known.last_heartbeat) > forgetAfterMs) continue;
      replicas[id] = known;
    }
    for (const { id, record } of raw.view.members) {
      if (!record.verified) continue;
      const r = record.value;
      replicas[id] = { advertise_url: r.advertise_url, version: r.version, started_at: r.started_at, last_heartbeat: r.heartbeat_at };
    }
    const aggregate: ClusterAggregate = { leader: this.options.nodeId, updated_at: new Date(now).toISOString(), replicas };
    await this.ifLeader([this.client.put(this.statusKey).value(signRecord(this.options.peerSecret, aggregate))], {
      key: this.statusKey,
      column: 'Mod',
      cmp: '==',
      value: raw.statusModRevision,
    });
  }

  private async readView(): Promise<RawView> {
    const c = this.client;
    // One transaction (an always-true comparison) so every range reads the same revision.
    const result: ITxnResponse = await c
      .if(this.statusKey, 'Create', '>', -1)
      .then(
        c.getAll().prefix(`${this.prefix}members/`),
        c.getAll().prefix(`${this.prefix}election/`).sort('Create', 'Ascend').limit(1),
        c.get(this.statusKey),
        c.getAll().prefix(`${this.prefix}left/`),
      )
      .commit();
    const ranges = result.responses.map((r) => (r.response_range as IRangeResponse | undefined)?.kvs ?? []);
    const [memberKvs = [], leaderKvs = [], statusKvs = [], leftKvs = []] = ranges;
    const secret = this.options.peerSecret;
    const members = memberKvs.map((kv) => ({
      id: kv.key.toString('utf8').slice(`${this.prefix}members/`.length),
      record: verifyRecord(secret, kv.value.toString('utf8'), parseMemberRecord),
    }));
    const statusKv = statusKvs[0];
    const aggregate = statusKv === undefined ? undefined : verifyRecord(secret, statusKv.value.toString('utf8'), parseAggregate);
    const leaderKv = leaderKvs[0];
    return {
      view: {
        readAt: this.options.clock.now(),
        members,
        leader: leaderKv?.value.toString('utf8'),
        aggregate: aggregate?.verified ? aggregate.value : undefined,
        departed: new Set(leftKvs.map((kv) => kv.key.toString('utf8').slice(`${this.prefix}left/`.length))),
      },
      leaderKv,
      statusModRevision: statusKv?.mod_revision ?? '0',
    };
  }

  private signedRecord(): string {
    const record: MemberRecord = {
      ...this.options.record(),
      instance: this.instance,
      heartbeat_at: new Date(this.options.clock.now()).toISOString(),
    };
    return signRecord(this.options.peerSecret, record);
  }

  private watch(): void {
    // Any delete under the prefix (a lease expired, a leader resigned, a node left) is worth a look at once.
    this.watcher = this.client.watch().prefix(this.prefix).only('delete').watcher();
    this.watcher.on('delete', () => this.wake());
    this.watcher.on('error', (err) => this.options.logger.warn({ err: errorText(err) }, 'etcd watch failed'));
  }

  private setLeader(leader: boolean, leaderId: string | undefined): void {
    const before = this.current;
    if (before.leader === leader && before.leaderId === leaderId) return;
    this.current = { ...before, leader, leaderId };
    if (leader && !before.leader) this.options.logger.info({ leader: this.options.nodeId }, 'became the leader');
    else if (!leader && before.leader) this.options.logger.warn({ leader: leaderId ?? null }, 'no longer the leader');
    else if (before.leaderId !== leaderId) this.options.logger.info({ leader: leaderId ?? null, previous: before.leaderId ?? null }, 'leader changed');
    this.notify();
  }

  private markUp(): void {
    if (this.current.etcdUp) return;
    this.current = { ...this.current, etcdUp: true, etcdError: undefined, etcdSince: this.options.clock.now() };
    this.options.logger.info({}, 'etcd reachable');
    this.notify();
  }

  private markDown(err: unknown): void {
    const wasUp = this.current.etcdUp;
    // While down, "the circuit breaker is open" says less than the failure that opened it.
    const error = !wasUp && isBrokenCircuitError(err) ? (this.current.etcdError ?? errorText(err)) : errorText(err);
    this.current = {
      ...this.current,
      etcdUp: false,
      etcdError: error,
      etcdSince: wasUp ? this.options.clock.now() : this.current.etcdSince,
    };
    // Without etcd nobody can know who leads: no leader duties here until it answers again.
    this.setLeader(false, undefined);
    if (wasUp) this.options.logger.warn({ err: error }, 'etcd unreachable; serving on, no leader duties until it answers');
    this.notify();
  }

  private notify(): void {
    this.options.onChange?.(this.state());
  }

  private wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Waits `ms`, or less when {@link wake} is called meanwhile (or was since the last sleep). */
  private sleep(ms: number): Promise<void> {
    if (this.woken || !this.running) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(finish, ms);
      this.wakeUp = finish;
    });
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
