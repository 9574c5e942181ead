import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../../../src/cache/ports.ts';
import { toRegistryError } from '../../../src/cache/upstream-failure.ts';
import { CircuitBreaker, parseBreakerEvent, type BreakerEvent, type CircuitState } from '../../../src/upstream/circuit-breaker.ts';
import { ConcurrencyCap, NotFoundCache, protectListing, protectUpstream } from '../../../src/upstream/protected-upstream.ts';
import type { RegistryListing } from '../../../src/upstream/registry-client.ts';
import { FakeUpstream } from '../../support/fake-upstream.ts';
import { FakeClock, rejection } from './helpers.ts';

const never = new AbortController().signal;
const refused = (): UpstreamError =>
  new UpstreamError('UPSTREAM_UNREACHABLE', 'refused', { reason: 'connection refused (ECONNREFUSED)', cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) });
const MANIFEST = { body: Buffer.from('{}'), mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:' + '1'.repeat(64) };

function setup(options: { threshold?: number; cooldownMs?: number; maxConcurrent?: number; maxQueued?: number; queueTimeoutMs?: number; notFoundTtlMs?: number } = {}) {
  const clock = new FakeClock();
  const fake = new FakeUpstream();
  fake.manifests.set('a/b:latest', MANIFEST);
  const states: CircuitState[] = [];
  const breaker = new CircuitBreaker({
    host: fake.host,
    clock,
    failureThreshold: options.threshold ?? 3,
    cooldownMs: options.cooldownMs ?? 10_000,
    onStateChange: (s) => states.push(s),
  });
  const cap = new ConcurrencyCap(fake.host, {
    maxConcurrent: options.maxConcurrent ?? 0,
    maxQueued: options.maxQueued ?? 10,
    queueTimeoutMs: options.queueTimeoutMs ?? 5_000,
  });
  const notFound = new NotFoundCache(options.notFoundTtlMs ?? 30_000, clock);
  const upstream = protectUpstream(fake, { breaker, cap, notFound });
  return { clock, fake, breaker, states, upstream };
}

describe('circuit breaker', () => {
  it('opens after consecutive outages, then fails at once without asking the primary', async () => {
    const { fake, upstream, breaker, states } = setup({ threshold: 3 });
    fake.failWith = refused();
    for (let i = 0; i < 3; i++) await rejection(upstream.headManifest('a/b', 'latest', never));
    expect(breaker.state).toBe('open');
    expect(states).toEqual(['open']);
    const before = fake.calls.length;
    const err = await rejection(upstream.getManifest('a/b', 'latest', 1024, never));
    expect(fake.calls.length).toBe(before);
    expect(err).toBeInstanceOf(UpstreamError);
    expect(err.code).toBe('UPSTREAM_UNREACHABLE');
    const client = toRegistryError(err, 'MANIFEST_UNKNOWN');
    expect(client.code).toBe('UPSTREAM_UNAVAILABLE');
    expect(JSON.stringify(client.detail)).toContain('circuit breaker open for fake.example');
  });

  it('answers 504 while open when the primary was timing out', async () => {
    const { fake, upstream } = setup({ threshold: 1 });
    fake.failWith = new UpstreamError('UPSTREAM_TIMEOUT', 'slow', { reason: 'timeout waiting for response headers' });
    await rejection(upstream.headManifest('a/b', 'latest', never));
    const err = await rejection(upstream.headManifest('a/b', 'latest', never));
    expect(toRegistryError(err, 'MANIFEST_UNKNOWN').code).toBe('UPSTREAM_TIMEOUT');
  });

  it('does not count 404, 401 or 403 answers as outages', async () => {
    const { fake, upstream, breaker } = setup({ threshold: 2, notFoundTtlMs: 0 });
    for (const code of ['UPSTREAM_NOT_FOUND', 'UPSTREAM_UNAUTHORIZED', 'UPSTREAM_DENIED', 'UPSTREAM_NOT_FOUND'] as const) {
      fake.failWith = new UpstreamError(code, code);
      await rejection(upstream.headManifest('a/b', 'latest', never));
    }
    expect(breaker.state).toBe('closed');
  });

  it('resets the count on a success in between', async () => {
    const { fake, upstream, breaker } = setup({ threshold: 2 });
    fake.failWith = refused();
    await rejection(upstream.headManifest('a/b', 'latest', never));
    fake.failWith = undefined;
    await upstream.headManifest('a/b', 'latest', never);
    fake.failWith = refused();
    await rejection(upstream.headManifest('a/b', 'latest', never));
    expect(breaker.state).toBe('closed');
  });

  it('lets one probe through after the cool-down and closes when it succeeds', async () => {
    const { fake, upstream, breaker, clock, states } = setup({ threshold: 1, cooldownMs: 10_000 });
    fake.failWith = refused();
    await rejection(upstream.headManifest('a/b', 'latest', never));
    clock.advance(9_999);
    await rejection(upstream.headManifest('a/b', 'latest', never));
    expect(fake.count('HEAD')).toBe(1);
    clock.advance(1);
    fake.failWith = undefined;
    await expect(upstream.headManifest('a/b', 'latest', never)).resolves.toMatchObject({ digest: MANIFEST.digest });
    expect(breaker.state).toBe('closed');
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });

  it('refuses other calls while the probe is in flight', async () => {
    const { fake, upstream, clock } = setup({ threshold: 1, cooldownMs: 1_000 });
    fake.failWith = refused();
    await rejection(upstream.headManifest('a/b', 'latest', never));
    clock.advance(1_000);
    fake.failWith = undefined;
    const probe = upstream.headManifest('a/b', 'latest', never);
    const other = await rejection(upstream.headManifest('a/b', 'latest', never));
    expect(other.message).toContain('probe is in flight');
    await probe;
  });

  it('backs off: a failed probe opens the breaker for twice the cool-down', async () => {
    const { fake, upstream, breaker, clock } = setup({ threshold: 1, cooldownMs: 1_000 });
    fake.failWith = refused();
    await rejection(upstream.headManifest('a/b', 'latest', never));
    clock.advance(1_000);
    await rejection(upstream.headManifest('a/b', 'latest', never)); // the probe fails
    expect(breaker.state).toBe('open');
    expect(fake.count('HEAD')).toBe(2);
    clock.advance(1_999);
    await rejection(upstream.headManifest('a/b', 'latest', never));
    expect(fake.count('HEAD')).toBe(2);
    clock.advance(1);
    fake.failWith = undefined;
    await upstream.headManifest('a/b', 'latest', never);
    expect(breaker.state).toBe('closed');
  });
});

describe('429 gate', () => {
  it('sends nothing to the primary until Retry-After has passed, and says how long is left', async () => {
    const { fake, upstream, clock, breaker } = setup();
    fake.failWith = new UpstreamError('UPSTREAM_RATE_LIMITED', '429', { status: 429, retryAfter: 60 });
    await rejection(upstream.headManifest('a/b', 'latest', never));
    fake.failWith = undefined;
    clock.advance(30_000);
    const err = await rejection(upstream.listTags('a/b', never));
    expect(fake.calls).toEqual(['HEAD manifest a/b:latest']);
    expect(err.code).toBe('UPSTREAM_RATE_LIMITED');
    const client = toRegistryError(err, 'NAME_UNKNOWN');
    expect(client.code).toBe('TOOMANYREQUESTS');
    expect(client.headers).toEqual({ 'retry-after': '30' });
    expect(breaker.state).toBe('closed');
    clock.advance(30_000);
    await upstream.headManifest('a/b', 'latest', never);
    expect(fake.count('HEAD')).toBe(2);
  });
});

describe('negative cache', () => {
  it('asks the primary once about an unknown tag within the TTL, then again after it', async () => {
    const { fake, upstream, clock } = setup({ notFoundTtlMs: 30_000 });
    for (let i = 0; i < 5; i++) {
      const err = await rejection(i % 2 === 0 ? upstream.headManifest('no/such', 'tag', never) : upstream.getManifest('no/such', 'tag', 1024, never));
      expect(err.code).toBe('UPSTREAM_NOT_FOUND');
    }
    expect(fake.calls).toEqual(['HEAD manifest no/such:tag']);
    clock.advance(30_000);
    await rejection(upstream.headManifest('no/such', 'tag', never));
    expect(fake.calls.length).toBe(2);
  });

  it('never remembers a 404 by digest', async () => {
    const { fake, upstream } = setup();
    const digest = 'sha256:' + '2'.repeat(64);
    await rejection(upstream.getManifest('a/b', digest, 1024, never));
    fake.manifests.set(`a/b:${digest}`, { ...MANIFEST, digest });
    await expect(upstream.getManifest('a/b', digest, 1024, never)).resolves.toMatchObject({ digest });
  });

  it('remembers a 404 for a repository’s tag list', async () => {
    const { fake, upstream } = setup();
    fake.listTags = async () => {
      fake.calls.push('GET tags');
      throw new UpstreamError('UPSTREAM_NOT_FOUND', 'no repo', { status: 404 });
    };
    await rejection(upstream.listTags('random/name', never));
    await rejection(upstream.listTags('random/name', never));
    expect(fake.count('GET tags')).toBe(1);
  });
});

describe('concurrency cap', () => {
  function blocked(fake: FakeUpstream): Array<() => void> {
    const gates: Array<() => void> = [];
    fake.headManifest = (repo, reference) => {
      fake.calls.push(`HEAD manifest ${repo}:${reference}`);
      return new Promise((resolve) => gates.push(() => resolve({ digest: MANIFEST.digest, mediaType: MANIFEST.mediaType, size: 2 })));
    };
    return gates;
  }

  it('queues requests beyond the cap and sends them as slots free up', async () => {
    const { fake, upstream } = setup({ maxConcurrent: 2 });
    const gates = blocked(fake);
    const calls = [1, 2, 3].map(() => upstream.headManifest('a/b', 'latest', never));
    await expect.poll(() => fake.calls.length).toBe(2);
    gates[0]!();
    await expect.poll(() => fake.calls.length).toBe(3);
    gates[1]!();
    gates[2]!();
    await Promise.all(calls);
  });

  it('refuses with 503 when the queue is full, and 504 when a slot does not come in time', async () => {
    const { fake, upstream } = setup({ maxConcurrent: 1, maxQueued: 1, queueTimeoutMs: 50 });
    const gates = blocked(fake);
    const first = upstream.headManifest('a/b', 'latest', never);
    const queued = rejection(upstream.headManifest('a/b', 'latest', never));
    const full = await rejection(upstream.headManifest('a/b', 'latest', never));
    expect(full.code).toBe('UPSTREAM_BUSY');
    expect(toRegistryError(full, 'MANIFEST_UNKNOWN').status).toBe(503);
    const late = await queued;
    expect(late.code).toBe('UPSTREAM_TIMEOUT');
    expect(toRegistryError(late, 'MANIFEST_UNKNOWN').status).toBe(504);
    gates[0]!();
    await first;
    expect(fake.calls.length).toBe(1);
  });

  it('holds a blob’s slot until its body is closed', async () => {
    const { fake, upstream } = setup({ maxConcurrent: 1 });
    const digest = 'sha256:' + '3'.repeat(64);
    fake.blobs.set(digest, Buffer.from('abcdef'));
    const first = await upstream.getBlob('a/b', digest, never);
    const second = upstream.getBlob('a/b', digest, never);
    await new Promise((resolve) => setImmediate(resolve));
    expect(fake.count('GET blob')).toBe(1);
    first.body.resume();
    await expect.poll(() => fake.count('GET blob')).toBe(2);
    const answer = await second;
    expect(answer.body).toBeInstanceOf(Readable);
    answer.body.destroy();
  });
});

describe('breaker decisions shared between workers', () => {
  /** Two workers' breakers for one primary, joined as the cluster primary joins them (each gets the other's events). */
  function twoWorkers() {
    const clock = new FakeClock();
    const fakes = [new FakeUpstream(), new FakeUpstream()] as const;
    const breakers: CircuitBreaker[] = [];
    const events: BreakerEvent[] = [];
    const relay = (from: number) => (event: BreakerEvent) => {
      events.push(parseBreakerEvent(JSON.parse(JSON.stringify(event)))!); // as it crosses IPC
      breakers[1 - from]!.adopt(events.at(-1)!);
    };
    for (const i of [0, 1]) {
      breakers.push(new CircuitBreaker({ host: 'fake.example', clock, failureThreshold: 2, cooldownMs: 5_000, share: relay(i) }));
    }
    const cap = (): ConcurrencyCap => new ConcurrencyCap('fake.example', { maxConcurrent: 0, maxQueued: 0, queueTimeoutMs: 1 });
    const upstreams = [0, 1].map((i) => protectUpstream(fakes[i]!, { breaker: breakers[i]!, cap: cap() }));
    return { clock, fakes, breakers, upstreams, events };
  }

  it('keeps the other worker away from the primary once one worker’s breaker opens, and lets it back when it closes', async () => {
    const { clock, fakes, breakers, upstreams, events } = twoWorkers();
    fakes[0].failWith = refused();
    await rejection(upstreams[0]!.headManifest('a/b', 'latest', never));
    await rejection(upstreams[0]!.headManifest('a/b', 'latest', never));
    expect(breakers[1]!.state).toBe('open');
    const refusedElsewhere = await rejection(upstreams[1]!.headManifest('a/b', 'latest', never));
    expect(refusedElsewhere.message).toContain('circuit breaker open');
    expect(refusedElsewhere.message).toContain('connection refused (ECONNREFUSED)');
    expect(fakes[1].calls).toEqual([]);
    clock.advance(5_000);
    fakes[0].failWith = undefined;
    fakes[0].manifests.set('a/b:latest', MANIFEST);
    await upstreams[0]!.headManifest('a/b', 'latest', never); // worker 0's probe
    expect(breakers[1]!.state).toBe('closed');
    expect(events.map((e) => e.kind)).toEqual(['open', 'closed']);
  });

  it('keeps every worker away from the primary until a 429’s Retry-After has passed', async () => {
    const { clock, fakes, upstreams } = twoWorkers();
    fakes[0].failWith = new UpstreamError('UPSTREAM_RATE_LIMITED', '429', { status: 429, retryAfter: 20 });
    await rejection(upstreams[0]!.headManifest('a/b', 'latest', never));
    clock.advance(19_000);
    const err = await rejection(upstreams[1]!.listTags('a/b', never));
    expect(err).toMatchObject({ code: 'UPSTREAM_RATE_LIMITED', retryAfter: 1 });
    expect(fakes[1].calls).toEqual([]);
    clock.advance(1_000);
    await upstreams[1]!.listTags('a/b', never);
    expect(fakes[1].calls).toEqual(['GET tags']);
  });

  it('accepts only well-formed events from another process', () => {
    expect(parseBreakerEvent({ host: 'h', kind: 'closed' })).toEqual({ host: 'h', kind: 'closed' });
    expect(parseBreakerEvent({ host: 'h', kind: 'rate-limited', until: 5 })).toEqual({ host: 'h', kind: 'rate-limited', until: 5 });
    expect(parseBreakerEvent({ host: 'h', kind: 'open', until: 5, code: 'UPSTREAM_DENIED', reason: 'x' })).toBeUndefined();
    expect(parseBreakerEvent({ host: 'h', kind: 'rate-limited', until: 'soon' })).toBeUndefined();
    expect(parseBreakerEvent({ kind: 'closed' })).toBeUndefined();
    expect(parseBreakerEvent(null)).toBeUndefined();
  });
});

describe('protectListing (prefetch listings in the cluster primary)', () => {
  function listingSetup(options: { threshold?: number; maxConcurrent?: number } = {}) {
    const clock = new FakeClock();
    const breaker = new CircuitBreaker({ host: 'registry.test', clock, failureThreshold: options.threshold ?? 1, cooldownMs: 10_000 });
    const cap = new ConcurrencyCap('registry.test', { maxConcurrent: options.maxConcurrent ?? 0, maxQueued: 10, queueTimeoutMs: 5_000 });
    const calls: string[] = [];
    const gates: Array<() => void> = [];
    let failWith: UpstreamError | undefined;
    const inner: RegistryListing = {
      page: async (kind, repo) => {
        calls.push(`${kind} ${repo}`);
        if (options.maxConcurrent !== undefined) await new Promise<void>((resolve) => gates.push(resolve));
        if (failWith) throw failWith;
        return { items: ['a'], next: undefined };
      },
    };
    const listing = protectListing('registry.test', inner, { breaker, cap });
    return { breaker, calls, gates, listing, fail: (err: UpstreamError) => (failWith = err) };
  }

  it('counts a failed page as an outage, then refuses the next at once without asking the primary', async () => {
    const { breaker, calls, listing, fail } = listingSetup({ threshold: 1 });
    fail(refused());
    await rejection(listing.page('repositories', '', undefined, 100, never));
    expect(breaker.state).toBe('open');
    const err = await rejection(listing.page('tags', 'solo/a', undefined, 100, never));
    expect(err.code).toBe('UPSTREAM_UNREACHABLE');
    expect(err.message).toContain('circuit breaker open for registry.test');
    expect(calls).toEqual(['repositories ']);
  });

  it("is refused while another process's breaker is open, and lets pages through once it closed", async () => {
    const { breaker, calls, listing } = listingSetup();
    breaker.adopt({ host: 'registry.test', kind: 'open', until: Date.now() + 60_000, code: 'UPSTREAM_UNREACHABLE', reason: 'connection refused' });
    await rejection(listing.page('repositories', '', undefined, 100, never));
    expect(calls).toEqual([]);
    breaker.adopt({ host: 'registry.test', kind: 'closed' });
    await expect(listing.page('repositories', '', undefined, 100, never)).resolves.toEqual({ items: ['a'], next: undefined });
    expect(calls).toEqual(['repositories ']);
  });

  it('takes a slot of the concurrency cap per page', async () => {
    const { calls, gates, listing } = listingSetup({ maxConcurrent: 1 });
    const first = listing.page('tags', 'a', undefined, 100, never);
    const second = listing.page('tags', 'b', undefined, 100, never);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toEqual(['tags a']);
    gates.shift()?.();
    await first;
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toEqual(['tags a', 'tags b']);
    gates.shift()?.();
    await second;
  });
});

