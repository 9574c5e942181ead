/**
 * The lines of a warm's NDJSON stream, checked field by field: the peer
 * endpoint's and the admin prefetch endpoint's answers come from another
 * process (a peer is untrusted), so nothing of them is used before it
 * parsed. `{"progress":{...WarmProgress}}` lines, then `{"result":{...WarmResult}}`.
 */
import { tryParseDigest } from '../registry/digest.ts';
import type { WarmProgress, WarmResult } from './ports.ts';

export type WarmLine = { progress: WarmProgress } | { result: WarmResult };

/** A line that is not a valid progress or result. */
export class WarmLineError extends Error {
  override readonly name = 'WarmLineError';
  readonly code = 'WARM_LINE_INVALID';
}

const maxImageLength = 1_024;
const maxErrorLength = 1_000;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function count(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new WarmLineError(`${field} is not a count`);
  return value;
}

function text(value: unknown, field: string, max: number): string {
  if (typeof value !== 'string' || value.length > max) throw new WarmLineError(`${field} is not a string of at most ${max} characters`);
  return value;
}

/** Absent and null both mean "none" (JSON has no undefined). */
function optionalText(value: unknown, field: string, max: number): string | undefined {
  return value === undefined || value === null ? undefined : text(value, field, max);
}

export function parseWarmProgress(value: unknown): WarmProgress {
  if (!isObject(value)) throw new WarmLineError('progress is not an object');
  const progress: WarmProgress = {
    image: text(value.image, 'progress.image', maxImageLength),
    blobsDone: count(value.blobsDone, 'progress.blobsDone'),
    blobsTotal: count(value.blobsTotal, 'progress.blobsTotal'),
    bytesDone: count(value.bytesDone, 'progress.bytesDone'),
    bytesTotal: count(value.bytesTotal, 'progress.bytesTotal'),
  };
  if (progress.blobsDone > progress.blobsTotal) throw new WarmLineError('progress.blobsDone is more than blobsTotal');
  return progress;
}

export function parseWarmResult(value: unknown): WarmResult {
  if (!isObject(value)) throw new WarmLineError('result is not an object');
  if (typeof value.ok !== 'boolean') throw new WarmLineError('result.ok is not a boolean');
  const digest = value.digest === undefined || value.digest === null ? undefined : tryParseDigest(value.digest);
  if (value.digest !== undefined && value.digest !== null && digest === undefined) throw new WarmLineError('result.digest is not a digest');
  const result: WarmResult = {
    image: text(value.image, 'result.image', maxImageLength),
    ok: value.ok,
    digest,
    blobs: count(value.blobs, 'result.blobs'),
    bytes: count(value.bytes, 'result.bytes'),
    cachedBlobs: count(value.cachedBlobs, 'result.cachedBlobs'),
    error: optionalText(value.error, 'result.error', maxErrorLength),
  };
  const skipped = optionalText(value.skipped, 'result.skipped', maxErrorLength);
  if (skipped !== undefined) result.skipped = skipped;
  if (result.cachedBlobs > result.blobs) throw new WarmLineError('result.cachedBlobs is more than blobs');
  if (result.ok && result.error !== undefined) throw new WarmLineError('result is ok with an error');
  if (!result.ok && result.error === undefined) throw new WarmLineError('result failed without an error');
  return result;
}

/** One line of a warm stream; `image` is the image asked for, which every line must name. */
export function parseWarmLine(value: unknown, image?: string): WarmLine {
  if (!isObject(value)) throw new WarmLineError('a line is not an object');
  let line: WarmLine;
  if ('progress' in value) line = { progress: parseWarmProgress(value.progress) };
  else if ('result' in value) line = { result: parseWarmResult(value.result) };
  else throw new WarmLineError('a line is neither progress nor result');
  const named = 'progress' in line ? line.progress.image : line.result.image;
  if (image !== undefined && named !== image) throw new WarmLineError(`a line names ${JSON.stringify(named.slice(0, 200))}, not the image asked for`);
  return line;
}
