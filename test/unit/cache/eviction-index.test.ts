import { describe, expect, it } from 'vitest';
import { EvictionIndex } from '../../../src/cache/eviction-index.ts';

function index(maxBytes = 1000, retentionMs = 0) {
  let now = 1_000;
  const clock = { now: () => now };
  const idx = new EvictionIndex({ maxBytes, highWatermark: 0.9, lowWatermark: 0.5, retentionMs, clock });
  return { idx, advance: (ms: number) => (now += ms) };
}

describe('EvictionIndex', () => {
  it('evicts nothing until usage passes the high watermark', () => {
    const { idx } = index();
    idx.add('a', 400, 'blob');
    idx.add('b', 400, 'blob');
    expect(idx.totalBytes).toBe(800);
    expect(idx.planEviction()).toEqual([]);
  });

  it('evicts least recently used first, down to the low watermark', () => {
    const { idx, advance } = index();
    idx.add('a', 300, 'blob');
    advance(1);
    idx.add('b', 300, 'blob');
    advance(1);
    idx.add('c', 300, 'blob');
    advance(1);
    idx.touch('a');
    idx.add('d', 100, 'blob'); // 1000 > 900
    const victims = idx.planEviction().map((v) => v.digest);
    expect(victims).toEqual(['b', 'c']); // a was touched; 1000 - 600 = 400 <= 500
  });

  it('never evicts pinned or busy entries', () => {
    const { idx } = index();
    idx.add('a', 400, 'blob');
    idx.add('b', 400, 'blob');
    idx.add('c', 200, 'blob');
    idx.setPinned(['a']);
    const victims = idx.planEviction((d) => d === 'b').map((v) => v.digest);
    expect(victims).toEqual(['c']);
  });

  it('knows what can never fit', () => {
    const { idx } = index(1000);
    expect(idx.fits(500)).toBe(true);
    expect(idx.fits(501)).toBe(false);
  });

  it('plans retention for entries not hit within the period', () => {
    const { idx, advance } = index(10_000, 1_000);
    idx.add('old', 10, 'blob');
    idx.add('pinned-old', 10, 'blob');
    idx.setPinned(['pinned-old']);
    advance(2_000);
    idx.add('new', 10, 'blob');
    expect(idx.planRetention().map((v) => v.digest)).toEqual(['old']);
  });

  it('keeps byte totals right across replace and remove', () => {
    const { idx } = index();
    idx.add('a', 100, 'blob');
    idx.add('a', 150, 'blob');
    expect(idx.totalBytes).toBe(150);
    idx.remove('a');
    expect(idx.totalBytes).toBe(0);
    expect(idx.size).toBe(0);
  });
});
