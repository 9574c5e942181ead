/**
 * What `outpost prefetch` shows while a node warms images. On a terminal,
 * one line per image, redrawn in place as progress arrives:
 *
 *   registry-1.docker.io/library/nginx:1.27  12/14 blobs  61.2/70.0 MB
 *
 * Otherwise (a pipe, a CI log) one line per image when it ends, so logs
 * are not flooded with redraws. Failures are listed at the end on the
 * error stream, one per image, naming it and why.
 */
import type { RunCounts, WarmProgress, WarmResult } from '../prefetch/ports.ts';

export interface DisplayOutput {
  /** True on a terminal: lines are redrawn in place. */
  tty: boolean;
  /** The terminal's width: longer lines are cut, as a wrapped line would break the redraw. */
  columns?: number;
  out(text: string): void;
  err(text: string): void;
}

/** The summary line of an ad-hoc warm: the same counts as a job run's. */
export type PrefetchTotals = RunCounts;

const mb = (bytes: number): string => (bytes / 1_000_000).toFixed(1);

/** The line of an image in progress. */
export function progressLine(p: WarmProgress): string {
  if (p.blobsTotal === 0) return `${p.image}  resolving`;
  return `${p.image}  ${p.blobsDone}/${p.blobsTotal} blobs  ${mb(p.bytesDone)}/${mb(p.bytesTotal)} MB`;
}

/** The line of an image that ended. */
export function resultLine(r: WarmResult): string {
  if (!r.ok) return `${r.image}  failed: ${r.error ?? 'unknown error'}`;
  if (r.skipped !== undefined) return `${r.image}  skipped: ${r.skipped}`;
  const cached = r.cachedBlobs > 0 ? ` (${r.cachedBlobs} already cached)` : '';
  return `${r.image}  ${r.blobs}/${r.blobs} blobs  ${mb(r.bytes)}/${mb(r.bytes)} MB  done${cached}`;
}

/** Control sequences, only ever written on a terminal. */
const up = (n: number): string => `\x1b[${n}A`;
const clearLine = '\x1b[2K\r';

export class PrefetchDisplay {
  /** Image → its current line, in the order images first appeared. */
  private readonly rows = new Map<string, string>();
  private drawn = 0;
  private readonly failures: WarmResult[] = [];

  constructor(private readonly io: DisplayOutput) {}

  progress(p: WarmProgress): void {
    if (!this.io.tty) return;
    this.rows.set(p.image, progressLine(p));
    this.redraw();
  }

  result(r: WarmResult): void {
    if (!r.ok) this.failures.push(r);
    if (!this.io.tty) {
      this.io.out(`${resultLine(r)}\n`);
      return;
    }
    this.rows.set(r.image, resultLine(r));
    this.redraw();
  }

  /** The closing line and the failures; call once at the end. */
  summary(totals: PrefetchTotals): void {
    this.io.out(
      `prefetch: ${totals.images} image${totals.images === 1 ? '' : 's'}: ${totals.warmed} warmed, ${totals.skipped} skipped, ${totals.failed} failed; ` +
        `${totals.blobs} blobs, ${mb(totals.bytes)} MB\n`,
    );
    for (const failure of this.failures) this.io.err(`outpost prefetch: ${failure.image}: ${failure.error ?? 'failed'}\n`);
  }

  private redraw(): void {
    let text = this.drawn > 0 ? up(this.drawn) : '';
    const width = this.io.columns !== undefined && this.io.columns > 10 ? this.io.columns - 1 : Infinity;
    for (const line of this.rows.values()) text += `${clearLine}${line.length > width ? `${line.slice(0, width - 1)}…` : line}\n`;
    this.drawn = this.rows.size;
    this.io.out(text);
  }
}
