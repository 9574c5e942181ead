/** A request's upstream time: each call to its primary, answered or failed, added to the request's notes. */
import { describe, expect, it } from 'vitest';
import { RequestTimedUpstream, type UpstreamTimeNotes } from '../../../src/observability/request-upstream-time.ts';
import { FakeUpstream } from '../../support/fake-upstream.ts';

const signal = new AbortController().signal;

describe('RequestTimedUpstream', () => {
  it('adds the time of every call, answered or failed, to the notes of its own request only', async () => {
    const upstream = new FakeUpstream();
    upstream.manifests.set('app:1', { digest: 'sha256:' + 'a'.repeat(64), mediaType: 'application/vnd.oci.image.manifest.v1+json', body: Buffer.from('{}') });
    const mine: UpstreamTimeNotes = {};
    const other: UpstreamTimeNotes = {};
    const timed = new RequestTimedUpstream(upstream, mine);
    const otherTimed = new RequestTimedUpstream(upstream, other);
    // A primary that takes 30 ms to answer.
    const inner = upstream.headManifest.bind(upstream);
    upstream.headManifest = (repo, reference, s) => new Promise((resolve) => setTimeout(resolve, 30)).then(() => inner(repo, reference, s));
    await timed.headManifest('app', '1', signal);
    const afterOne = mine.upstreamMs ?? 0;
    expect(afterOne).toBeGreaterThanOrEqual(25);
    await expect(timed.headManifest('app', 'missing', signal)).rejects.toMatchObject({ code: 'UPSTREAM_NOT_FOUND' });
    expect(mine.upstreamMs).toBeGreaterThanOrEqual(afterOne + 25);
    // Another request on the same primary: its calls count for it, and theirs never did.
    expect(other.upstreamMs).toBeUndefined();
    await otherTimed.headManifest('app', '1', signal);
    expect(other.upstreamMs).toBeGreaterThanOrEqual(25);
    expect(timed.host).toBe(upstream.host);
  });
});
