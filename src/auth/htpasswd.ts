/**
 * The users of `auth.mode: basic`: an htpasswd file of bcrypt entries
 * (`htpasswd -B`), one `user:hash` a line, as CNCF distribution reads it.
 * Blank lines and lines starting with `#` are skipped; surrounding spaces
 * are trimmed.
 *
 * - Only bcrypt (`$2y$`, `$2a$`, `$2b$`, cost 4 to 17 like `htpasswd -C`) is
 *   accepted. Any other line refuses the whole file with a message naming
 *   the line number and the kind of hash — never the hash or the user.
 * - The file is bounded ({@link HtpasswdConfig.maxBytes}, `maxUsers`).
 * - Reloaded when it changes: a watch on its directory (which also sees
 *   atomic renames and Kubernetes secret symlink swaps) schedules a check
 *   after `reloadDebounceMs` of quiet, and {@link HtpasswdFile.verify}
 *   checks the file's identity (inode, size, mtime) when the last check is
 *   older than that, in case the watch missed it. A file that became broken
 *   or disappeared keeps the last good users in force, with a warning.
 * - {@link HtpasswdFile.verify} costs one bcrypt comparison whether or not
 *   the user exists (an unknown user is compared against a random hash of
 *   the file's usual cost). bcryptjs runs on the event loop (about 75 ms at
 *   cost 10), and a `docker pull` sends the same credentials with every
 *   request, so a successful check is remembered for `verifiedTtlMs`
 *   under an HMAC of the user and password (a per-process random key; the
 *   password itself is never kept), forgotten as soon as the file changes.
 *   Concurrent checks of the same pair share one comparison.
 */
import { createHash, createHmac, randomBytes, randomInt } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import bcrypt from 'bcryptjs';
import { LRUCache } from 'lru-cache';
import type { Clock, Logger } from '../cache/ports.ts';

export interface HtpasswdConfig {
  /** Path of the htpasswd file. */
  path: string;
  /** Largest file read. Default 1 MiB (about 13 000 bcrypt entries). */
  maxBytes?: number;
  /** Most entries accepted. Default 10 000. */
  maxUsers?: number;
  /** Quiet time after a change before the file is re-read; also the least time between two checks on use. Default 1 s. */
  reloadDebounceMs?: number;
  /** How long a verified user/password pair is trusted without bcrypt (while the file does not change). Default 5 min. */
  verifiedTtlMs?: number;
  /** Verified pairs remembered at most. Default 1000. */
  maxVerified?: number;
}

export interface HtpasswdDeps {
  clock: Clock;
  logger: Logger;
  /** Watch the directory for changes (default true); checks on use happen either way. */
  watch?: boolean;
}

export interface HtpasswdLimits {
  maxBytes: number;
  maxUsers: number;
}

/** An htpasswd file that cannot be used; the message names the file and line, never a hash. */
export class HtpasswdError extends Error {
  override readonly name = 'HtpasswdError';
  readonly code = 'HTPASSWD_INVALID';

  constructor(
    message: string,
    /** 1-based line number, when one line is at fault. */
    readonly line?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const BCRYPT_MIN_COST = 4;
export const BCRYPT_MAX_COST = 17;
const DEFAULT_COST = 10;
const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const ONLY_BCRYPT = 'only bcrypt hashes ($2y$, $2a$, $2b$, made by htpasswd -B) are accepted';

/** What kind of hash a refused entry holds, for the error message. */
function hashKind(hash: string): string {
  if (hash.startsWith('$apr1$')) return 'an Apache MD5 ($apr1$) hash';
  if (hash.startsWith('{SHA}')) return 'a SHA-1 ({SHA}) hash';
  if (hash.startsWith('$1$')) return 'an MD5-crypt ($1$) hash';
  if (hash.startsWith('$5$')) return 'a SHA-256-crypt ($5$) hash';
  if (hash.startsWith('$6$')) return 'a SHA-512-crypt ($6$) hash';
  if (/^\$2[aby]\$/.test(hash)) return 'a malformed bcrypt hash';
  if (hash.startsWith('$')) return 'an unsupported hash';
  return 'a plain-text password or crypt() hash';
}

export interface HtpasswdEntries {
  /** Hash by user name. */
  readonly users: ReadonlyMap<string, string>;
  /** The most common bcrypt cost, used for the unknown-user comparison. */
  readonly cost: number;
}

/** Parses htpasswd text; throws {@link HtpasswdError} naming the line at fault. */
export function parseHtpasswd(text: string, limits: HtpasswdLimits): HtpasswdEntries {
  const users = new Map<string, string>();
  const lineOf = new Map<string, number>();
  const costs = new Map<number, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const number = i + 1;
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon < 0) throw new HtpasswdError(`line ${number}: not "user:hash"`, number);
    if (colon === 0) throw new HtpasswdError(`line ${number}: empty user name`, number);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    const bcryptMatch = BCRYPT.exec(hash);
    if (!bcryptMatch) throw new HtpasswdError(`line ${number}: ${hashKind(hash)}; ${ONLY_BCRYPT}`, number);
    const cost = Number(bcryptMatch[1]);
    if (cost < BCRYPT_MIN_COST || cost > BCRYPT_MAX_COST) {
      throw new HtpasswdError(`line ${number}: bcrypt cost ${cost} is outside ${BCRYPT_MIN_COST} to ${BCRYPT_MAX_COST} (htpasswd -B -C)`, number);
    }
    const earlier = lineOf.get(user);
    if (earlier !== undefined) throw new HtpasswdError(`line ${number}: the user of line ${earlier} appears again`, number);
    if (users.size >= limits.maxUsers) throw new HtpasswdError(`more than ${limits.maxUsers} users`, number);
    users.set(user, hash);
    lineOf.set(user, number);
    costs.set(cost, (costs.get(cost) ?? 0) + 1);
  }
  let usual = DEFAULT_COST;
  let most = 0;
  for (const [cost, count] of costs) {
    if (count > most) [usual, most] = [cost, count];
  }
  return { users, cost: usual };
}

/** A bcrypt hash of the given cost that no password matches (random salt and digest). */
function unmatchableHash(cost: number): string {
  let tail = '';
  for (let i = 0; i < 53; i++) tail += BCRYPT_ALPHABET[randomInt(BCRYPT_ALPHABET.length)];
  return `$2b$${String(cost).padStart(2, '0')}$${tail}`;
}

interface Snapshot {
  entries: HtpasswdEntries;
  /** Identity of the file read: inode, size, mtime, ctime. */
  signature: string;
  /** sha256 of its bytes: a touch without a change keeps the verified pairs. */
  contentHash: string;
  dummyHash: string;
}

function signatureOf(info: { ino: number; size: number; mtimeMs: number; ctimeMs: number }): string {
  return `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
}

/** Reads and parses the file, bounded. Throws HtpasswdError (file errors included) naming the path. */
async function readSnapshot(path: string, limits: HtpasswdLimits): Promise<Snapshot> {
  let bytes: Buffer;
  let signature: string;
  try {
    const handle = await open(path, 'r');
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new HtpasswdError(`${path}: not a regular file`);
      signature = signatureOf(info);
      const buffer = Buffer.alloc(Math.min(info.size, limits.maxBytes) + 1);
      let length = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length === buffer.length) break;
      }
      if (length > limits.maxBytes) throw new HtpasswdError(`${path}: larger than ${limits.maxBytes} bytes`);
      bytes = buffer.subarray(0, length);
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof HtpasswdError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new HtpasswdError(`${path}: cannot be read (${code})`, undefined, { cause: error });
  }
  let entries: HtpasswdEntries;
  try {
    entries = parseHtpasswd(bytes.toString('utf8'), limits);
  } catch (error) {
    if (error instanceof HtpasswdError) throw new HtpasswdError(`${path}: ${error.message}`, error.line);
    throw error;
  }
  return {
    entries,
    signature,
    contentHash: createHash('sha256').update(bytes).digest('hex'),
    dummyHash: unmatchableHash(entries.cost),
  };
}

/** The users of an htpasswd file, kept current. Make one with {@link HtpasswdFile.open}. */
export class HtpasswdFile {
  readonly #path: string;
  readonly #limits: HtpasswdLimits;
  readonly #debounceMs: number;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #hmacKey = randomBytes(32);
  readonly #verifiedTtlMs: number;
  /** Generation and expiry of each verified pair, by HMAC of user and password. */
  readonly #verified: LRUCache<string, { generation: number; expiresAt: number }>;
  readonly #inflight = new Map<string, Promise<boolean>>();
  #snapshot: Snapshot;
  /** Bumped on every change of users; verified pairs of older generations are void. */
  #generation = 0;
  /** Signature of a broken file already warned about, so it is not re-read until it changes again. */
  #failedSignature: string | undefined;
  #lastCheckAt: number;
  #checking: Promise<void> | undefined;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(config: HtpasswdConfig, deps: HtpasswdDeps, limits: HtpasswdLimits, snapshot: Snapshot) {
    this.#path = config.path;
    this.#limits = limits;
    this.#debounceMs = config.reloadDebounceMs ?? 1000;
    this.#clock = deps.clock;
    this.#logger = deps.logger;
    this.#snapshot = snapshot;
    this.#lastCheckAt = deps.clock.now();
    this.#verifiedTtlMs = config.verifiedTtlMs ?? 5 * 60_000;
    this.#verified = new LRUCache({ max: config.maxVerified ?? 1000 });
  }

  /**
   * Reads the file and starts watching it. Rejects with an
   * {@link HtpasswdError} when it cannot be read or parsed: a node does
   * not start with a broken user list.
   */
  static async open(config: HtpasswdConfig, deps: HtpasswdDeps): Promise<HtpasswdFile> {
    const limits = { maxBytes: config.maxBytes ?? 1024 * 1024, maxUsers: config.maxUsers ?? 10_000 };
    const file = new HtpasswdFile(config, deps, limits, await readSnapshot(config.path, limits));
    if (deps.watch ?? true) file.#startWatching();
    return file;
  }

  /** Users currently in force. */
  get userCount(): number {
    return this.#snapshot.entries.users.size;
  }

  /** Whether `password` is the password of `username`; always one bcrypt comparison unless remembered. */
  async verify(username: string, password: string): Promise<boolean> {
    if (this.#clock.now() - this.#lastCheckAt >= this.#debounceMs) await this.refresh();
    const key = this.#keyOf(username, password);
    const generation = this.#generation;
    const remembered = this.#verified.get(key);
    if (remembered?.generation === generation && this.#clock.now() < remembered.expiresAt) return true;
    const flight = `${generation}:${key}`;
    let pending = this.#inflight.get(flight);
    if (pending === undefined) {
      pending = this.#compare(username, password, key, generation).finally(() => this.#inflight.delete(flight));
      this.#inflight.set(flight, pending);
    }
    return pending;
  }

  /** Checks the file now and re-reads it if it changed. Never rejects: a broken file is logged and ignored. */
  refresh(): Promise<void> {
    this.#checking ??= this.#check().finally(() => {
      this.#checking = undefined;
    });
    return this.#checking;
  }

  /** Stops watching. Verification keeps working with the users last read. */
  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #compare(username: string, password: string, key: string, generation: number): Promise<boolean> {
    const snapshot = this.#snapshot;
    const hash = snapshot.entries.users.get(username);
    let matches: boolean;
    try {
      matches = await bcrypt.compare(password, hash ?? snapshot.dummyHash);
    } catch {
      matches = false;
    }
    const ok = matches && hash !== undefined;
    if (ok && generation === this.#generation && this.#verifiedTtlMs > 0) {
      this.#verified.set(key, { generation, expiresAt: this.#clock.now() + this.#verifiedTtlMs });
    }
    return ok;
  }

  #keyOf(username: string, password: string): string {
    return createHmac('sha256', this.#hmacKey).update(`${username.length}:${username}${password}`).digest('base64');
  }

  async #check(): Promise<void> {
    this.#lastCheckAt = this.#clock.now();
    let signature: string;
    try {
      signature = signatureOf(await stat(this.#path));
    } catch (error) {
      signature = `missing:${(error as NodeJS.ErrnoException).code ?? ''}`;
    }
    if (signature === this.#snapshot.signature || signature === this.#failedSignature) return;
    let next: Snapshot;
    try {
      next = await readSnapshot(this.#path, this.#limits);
    } catch (error) {
      this.#failedSignature = signature;
      const reason = error instanceof HtpasswdError ? error.message : 'unknown error';
      this.#logger.warn({ path: this.#path, reason, users: this.userCount }, 'htpasswd file not reloaded: keeping the last good users');
      return;
    }
    this.#failedSignature = undefined;
    const changed = next.contentHash !== this.#snapshot.contentHash;
    this.#snapshot = changed ? next : { ...this.#snapshot, signature: next.signature };
    if (!changed) return;
    this.#generation++;
    this.#verified.clear();
    this.#logger.info({ path: this.#path, users: this.userCount }, 'htpasswd file reloaded');
  }

  #startWatching(): void {
    try {
      this.#watcher = watch(dirname(this.#path), { persistent: false }, () => this.#schedule());
      this.#watcher.on('error', (error: NodeJS.ErrnoException) => {
        this.#logger.warn({ path: this.#path, code: error.code }, 'htpasswd watch failed: changes are noticed on use only');
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      this.#logger.warn({ path: this.#path, code }, 'cannot watch the htpasswd directory: changes are noticed on use only');
    }
  }

  /** Debounced: a burst of events (an editor's save, a secret update) causes one check after it ends. */
  #schedule(): void {
    if (this.#closed) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.refresh();
    }, this.#debounceMs);
    this.#timer.unref();
  }
}
