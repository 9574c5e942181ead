import { describe, expect, it } from 'vitest';
import { EvictionIndex } from '../../../src/cache/eviction-index.ts';
import { digestOf, type Digest } from '../../../src/registry/digest.ts';

/** A digest per short name, so the tests read as names. */
const names = new Map<Digest, string>();
function d(name: string): Digest {
  const digest = digestOf(Buffer.from(name));
  names.set(digest, name);
  return digest;
}
const name = (digest: Digest): string => names.get(digest) ?? digest;

function index(maxBytes = 1000, retentionMs = 0) {
  let now = 1_000;
  const clock = { now: () => now };
  const idx = new EvictionIndex({ maxBytes, highWatermark: 0.9, lowWatermark: 0.5, retentionMs, clock });
  return { idx, advance: (ms: number) => (now += ms) };
}

describe('EvictionIndex', () => {
  it('evicts nothing until usage passes the high watermark', () => {
    const { idx } = index();
    idx.add(d('a'), 400, 'blob');
    idx.add(d('b'), 400, 'blob');
    expect(idx.totalBytes).toBe(800);
    expect(idx.planEviction()).toEqual([]);
  });

  it('evicts least recently used first, down to the low watermark', () => {
    const { idx, advance } = index();
    idx.add(d('a'), 300, 'blob');
    advance(1);
    idx.add(d('b'), 300, 'blob');
    advance(1);
    idx.add(d('c'), 300, 'blob');
    advance(1);
    idx.touch(d('a'));
    idx.add(d('d'), 100, 'blob'); // 1000 > 900
    const victims = idx.planEviction().map((v) => name(v.digest));
    expect(victims).toEqual(['b', 'c']); // a was touched; 1000 - 600 = 400 <= 500
  });

  it('never evicts pinned entries', () => {
    const { idx } = index();
    idx.add(d('a'), 400, 'blob');
    idx.add(d('b'), 400, 'blob');
    idx.add(d('c'), 200, 'blob');
    idx.setPinned([d('a')]);
    const victims = idx.planEviction().map((v) => name(v.digest));
    expect(victims).toEqual(['b', 'c']);
  });

  it('plans retention for entries not hit within the period', () => {
    const { idx, advance } = index(10_000, 1_000);
    idx.add(d('old'), 10, 'blob');
    idx.add(d('pinned-old'), 10, 'blob');
    idx.setPinned([d('pinned-old')]);
    advance(2_000);
    idx.add(d('new'), 10, 'blob');
    expect(idx.planRetention().map((v) => name(v.digest))).toEqual(['old']);
  });

  it('keeps byte totals right across replace and remove', () => {
    const { idx } = index();
    idx.add(d('a'), 100, 'blob');
    idx.add(d('a'), 150, 'blob');
    expect(idx.totalBytes).toBe(150);
    idx.remove(d('a'));
    expect(idx.totalBytes).toBe(0);
    expect(idx.size).toBe(0);
  });
});
