/** HTTP `Range: bytes=` parsing for blob GETs (single ranges only, as registries serve). */

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

export type RangeResult =
  | { kind: 'none' } // no Range header, or one we ignore (serve 200 with the whole body)
  | { kind: 'range'; range: ByteRange }
  | { kind: 'unsatisfiable' }; // 416

/**
 * Parses a Range header against a body of `size` bytes (RFC 9110 §14.1.2).
 * Multi-range, non-`bytes` units and invalid specs (`9-3`) are ignored
 * (whole body), as RFC 9110 allows. A last-pos past the end, however large,
 * means "to the end": `bytes=0-99999999999999999999` is a 206 of the whole
 * body, not a 200 or a 416. Only a first-pos at or past the end is
 * unsatisfiable. A zero-length body is sent whole for a suffix range (a 206
 * cannot describe an empty range).
 */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'none' };
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return { kind: 'none' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'none' };
  if (first === '') {
    // suffix range: the last N bytes (N may be any length of digits)
    if (/^0+$/.test(last)) return { kind: 'unsatisfiable' };
    if (size === 0) return { kind: 'none' };
    const suffix = Number(last); // a huge N becomes a huge float: still "everything"
    return { kind: 'range', range: { start: Math.max(0, size - suffix), end: size - 1 } };
  }
  const start = Number(first);
  if (!(start < size)) return { kind: 'unsatisfiable' };
  if (last === '') return { kind: 'range', range: { start, end: size - 1 } };
  const requestedEnd = Number(last);
  if (requestedEnd < start) return { kind: 'none' };
  return { kind: 'range', range: { start, end: Math.min(requestedEnd, size - 1) } };
}

export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}
