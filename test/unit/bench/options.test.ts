import { describe, expect, it } from 'vitest';
import { defaultScenarios, parseOptions } from '../../../bench/options.ts';

describe('bench options', () => {
  it('runs every default scenario with the anchors and no comparison when given nothing', () => {
    const options = parseOptions([]);
    expect(options.scenarios).toEqual([...defaultScenarios]);
    expect(options.scenarios).toContain('cold-200');
    expect(options.scenarios).toContain('slow-200');
    expect(options.compare).toBeUndefined();
    expect(options.anchors).toBe(true);
  });

  it('takes --compare with a ref and leaves the anchors out unless --anchors is given', () => {
    const plain = parseOptions(['--compare', 'main', '--scenarios', 'big-blob-1,big-blob-8']);
    expect(plain.compare).toBe('main');
    expect(plain.anchors).toBe(false);
    expect(plain.scenarios).toEqual(['big-blob-1', 'big-blob-8']);
    const withAnchors = parseOptions(['--compare=HEAD~3', '--anchors']);
    expect(withAnchors.compare).toBe('HEAD~3');
    expect(withAnchors.anchors).toBe(true);
  });

  it('refuses a --compare value git would read as an option or a range', () => {
    expect(() => parseOptions(['--compare', '--upload-pack=x'])).toThrow(/needs a value|git ref/);
    expect(() => parseOptions(['--compare=-x'])).toThrow(/git ref/);
    expect(() => parseOptions(['--compare=main..HEAD'])).toThrow(/git ref/);
    expect(() => parseOptions(['--compare=a b'])).toThrow(/git ref/);
  });

  it('refuses --compare with the replica-set scenario and --anchors without --compare', () => {
    expect(() => parseOptions(['--compare', 'main', '--scenarios', 'replica-set'])).toThrow(/cannot run replica-set/);
    expect(() => parseOptions(['--anchors'])).toThrow(/only makes sense with --compare/);
  });

  it('seeds the tiny images only when a scenario reads them', () => {
    expect(parseOptions(['--scenarios', 'big-blob-1']).tinyImages).toBe(0);
    expect(parseOptions(['--scenarios', 'layers-4k']).tinyImages).toBe(200);
    expect(parseOptions(['--quick', '--scenarios', 'config-blob']).tinyImages).toBe(20);
  });

  it('gives the memory scenarios 200 clients at 64 KiB/s, 20 s, 2 rounds (5 s and 1 round with --quick)', () => {
    const options = parseOptions([]);
    expect(options.memoryClients).toBe(200);
    expect(options.slowClientBytesPerSec).toBe(65536);
    expect(options.slowClientSeconds).toBe(20);
    expect(options.memoryRounds).toBe(2);
    expect(parseOptions(['--quick']).slowClientSeconds).toBe(5);
    expect(parseOptions(['--quick']).memoryRounds).toBe(1);
    expect(parseOptions(['--memory-rounds', '3']).memoryRounds).toBe(3);
  });
});
