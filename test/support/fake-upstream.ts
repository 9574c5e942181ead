/** An in-memory Upstream for unit tests of the cache core (integration tests use a real registry). */
import { PassThrough, Readable } from 'node:stream';
import type { BlobResponse, ManifestHead, ManifestResponse, ReferrersResponse, Upstream } from '../../src/cache/ports.ts';
import { UpstreamError } from '../../src/cache/ports.ts';

export class FakeUpstream implements Upstream {
  readonly host = 'fake.example';
  blobs = new Map<string, Buffer>();
  manifests = new Map<string, { body: Buffer; mediaType: string; digest: string }>();
  calls: string[] = [];
  /** When set, blob GETs answer with this controllable stream instead. */
  blobBody: (() => { size: number | undefined; body: Readable }) | undefined;
  failWith: UpstreamError | undefined;
  ignoreRange = false;

  count(prefix: string): number {
    return this.calls.filter((c) => c.startsWith(prefix)).length;
  }

  /** Where each blob GET of `digest` started: 0 for the whole blob, the Range's start otherwise. */
  blobGetStarts(digest: string): number[] {
    return this.calls.filter((c) => c.startsWith(`GET blob ${digest}`)).map((c) => Number(/ from (\d+)$/.exec(c)?.[1] ?? 0));
  }

  async headManifest(repo: string, reference: string, _signal?: AbortSignal): Promise<ManifestHead> {
    this.calls.push(`HEAD manifest ${repo}:${reference}`);
    if (this.failWith) throw this.failWith;
    const m = this.manifests.get(`${repo}:${reference}`);
    if (!m) throw new UpstreamError('UPSTREAM_NOT_FOUND', 'not found', { status: 404 });
    return { digest: m.digest, mediaType: m.mediaType, size: m.body.byteLength };
  }

  async getManifest(repo: string, reference: string): Promise<ManifestResponse> {
    this.calls.push(`GET manifest ${repo}:${reference}`);
    if (this.failWith) throw this.failWith;
    const m = this.manifests.get(`${repo}:${reference}`);
    if (!m) throw new UpstreamError('UPSTREAM_NOT_FOUND', 'not found', { status: 404 });
    return { body: m.body, mediaType: m.mediaType, digest: m.digest };
  }

  async headBlob(repo: string, digest: string): Promise<{ size: number | undefined }> {
    this.calls.push(`HEAD blob ${digest}`);
    const blob = this.blobs.get(digest);
    if (!blob) throw new UpstreamError('UPSTREAM_NOT_FOUND', 'not found', { status: 404 });
    return { size: blob.byteLength };
  }

  async getBlob(repo: string, digest: string, _signal?: AbortSignal, options: { start?: number } = {}): Promise<BlobResponse> {
    const start = options.start ?? 0;
    this.calls.push(start > 0 ? `GET blob ${digest} from ${start}` : `GET blob ${digest}`);
    if (this.failWith) throw this.failWith;
    if (this.blobBody && start === 0) return { offset: 0, ...this.blobBody() };
    const blob = this.blobs.get(digest);
    if (!blob) throw new UpstreamError('UPSTREAM_NOT_FOUND', 'not found', { status: 404 });
    if (this.ignoreRange) return { size: blob.byteLength, offset: 0, body: Readable.from([blob]) };
    const rest = blob.subarray(start);
    return { size: blob.byteLength, offset: start, body: Readable.from([rest.subarray(0, rest.length >> 1), rest.subarray(rest.length >> 1)]) };
  }

  async listTags(): Promise<string[]> {
    this.calls.push('GET tags');
    if (this.failWith) throw this.failWith;
    return [...this.manifests.keys()].map((k) => k.split(':')[1] ?? '');
  }

  /** `repo@digest` → the referrers API answer; with none, the API answers 404 (a primary without it). */
  referrers = new Map<string, ReferrersResponse>();

  async getReferrers(repo: string, digest: string): Promise<ReferrersResponse> {
    this.calls.push(`GET referrers ${repo}@${digest}`);
    if (this.failWith) throw this.failWith;
    const answer = this.referrers.get(`${repo}@${digest}`);
    if (!answer) throw new UpstreamError('UPSTREAM_NOT_FOUND', 'not found', { status: 404 });
    return answer;
  }

  async close(): Promise<void> {}
}

/** A body the test feeds by hand, to observe what clients see mid-fill. */
export function manualBody(): { stream: PassThrough } {
  return { stream: new PassThrough() };
}

/** A primary's blob body that sends its first `firstBytes`, then waits for `release()`, then sends the rest in `chunkBytes` pieces. */
export function heldBlobBody(blob: Buffer, firstBytes: number, chunkBytes: number): { body: () => { size: number; body: Readable }; release: () => void } {
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  return {
    release: () => release(),
    body: () => ({
      size: blob.length,
      body: Readable.from(
        (async function* () {
          yield blob.subarray(0, firstBytes);
          await released;
          for (let at = firstBytes; at < blob.length; at += chunkBytes) yield blob.subarray(at, at + chunkBytes);
        })(),
      ),
    }),
  };
}
