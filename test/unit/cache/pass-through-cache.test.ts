import { describe, expect, it } from 'vitest';
import { approximateBytes, PassThroughCache } from '../../../src/cache/pass-through-cache.ts';
import { noopObserver } from '../../../src/cache/ports.ts';

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function cache<T extends object>(maxBytes: number): PassThroughCache<T> {
  return new PassThroughCache<T>({
    kind: 'tags_list',
    notFound: 'NAME_UNKNOWN',
    clock: { now: () => 0 },
    observer: noopObserver,
    logger: silent,
    ttlMs: 60_000,
    timeoutMs: 1_000,
    maxBytes,
  });
}

/** A tag list of about `bytes` bytes. */
const tagList = (bytes: number) => ({ tags: Array.from({ length: bytes / 100 }, (_, i) => `${i}`.padEnd(100 - 24, 'x')) });

describe('PassThroughCache', () => {
  it('keeps answers up to a byte budget, evicting the least recently used', async () => {
    const tags = cache<{ tags: string[] }>(100_000);
    const loads: string[] = [];
    const get = (key: string) =>
      tags.get(key, async () => {
        loads.push(key);
        return tagList(30_000);
      });
    for (const key of ['a', 'b', 'c']) await get(key);
    expect((await get('a')).result).toBe('hit');
    await get('d'); // over budget: b is the least recently used
    expect((await get('a')).result).toBe('hit');
    expect((await get('b')).result).toBe('miss');
    expect(loads).toEqual(['a', 'b', 'c', 'd', 'b']);
  });

  it('does not keep in memory an answer larger than the whole budget', async () => {
    const tags = cache<{ tags: string[] }>(10_000);
    let loads = 0;
    const load = async () => {
      loads++;
      return tagList(20_000);
    };
    expect((await tags.get('big', load)).value.tags).toHaveLength(200);
    expect((await tags.get('big', load)).result).toBe('miss');
    expect(loads).toBe(2);
  });

  it('counts a relayed body by its bytes', () => {
    const small = approximateBytes({ body: Buffer.alloc(10), mediaType: 'application/vnd.oci.image.index.v1+json' });
    const large = approximateBytes({ body: Buffer.alloc(1_000_010), mediaType: 'application/vnd.oci.image.index.v1+json' });
    expect(large - small).toBe(1_000_000);
    expect(approximateBytes(tagList(50_000))).toBeGreaterThanOrEqual(50_000);
  });
});
