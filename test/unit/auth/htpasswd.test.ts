import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HtpasswdError, HtpasswdFile, parseHtpasswd, type HtpasswdConfig } from '../../../src/auth/htpasswd.ts';
import type { Logger } from '../../../src/cache/ports.ts';
import { writeHtpasswd } from '../../support/htpasswd.ts';
import { makeTempDir, removeTempDir } from '../../support/temp.ts';
import { waitFor } from '../../support/wait.ts';

const limits = { maxBytes: 1024 * 1024, maxUsers: 100 };
// Cost 4 keeps the tests fast; the format is what matters.
const hashOf = (password: string) => bcrypt.hashSync(password, 4);

function manualClock(start = 1_000_000) {
  return {
    t: start,
    now() {
      return this.t;
    },
  };
}

interface LogRecord {
  level: string;
  obj: object;
  msg: string;
}

function recordingLogger(): Logger & { records: LogRecord[] } {
  const records: LogRecord[] = [];
  const at = (level: string) => (obj: object, msg: string) => void records.push({ level, obj, msg });
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('parseHtpasswd', () => {
  it('reads bcrypt entries of every bcrypt prefix, skipping blank lines and comments', () => {
    const y = hashOf('a').replace(/^\$2[ab]\$/, '$2y$');
    const a = hashOf('b').replace(/^\$2[by]\$/, '$2a$');
    const b = hashOf('c').replace(/^\$2[ay]\$/, '$2b$');
    const text = `# users\r\n\r\nalice:${y}\r\n  bob:${a}  \n\ncarol:${b}\n`;
    const entries = parseHtpasswd(text, limits);
    expect([...entries.users.keys()]).toEqual(['alice', 'bob', 'carol']);
    expect(entries.users.get('bob')).toBe(a);
    expect(entries.cost).toBe(4);
  });

  it('reads an empty file as no users', () => {
    expect(parseHtpasswd('', limits).users.size).toBe(0);
  });

  it.each([
    ['an Apache MD5 hash', 'dave:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/', 'an Apache MD5 ($apr1$) hash'],
    ['a SHA-1 hash', 'dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', 'a SHA-1 ({SHA}) hash'],
    ['a SHA-512-crypt hash', 'dave:$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/', 'SHA-512-crypt'],
    ['a plain-text password', 'dave:hunter2', 'plain-text password'],
    ['a truncated bcrypt hash', `dave:${hashOf('x').slice(0, 40)}`, 'a malformed bcrypt hash'],
  ])('refuses %s, naming the line but never the hash', (_kind, line, kind) => {
    const text = `alice:${hashOf('a')}\n\n${line}\n`;
    let error: unknown;
    try {
      parseHtpasswd(text, limits);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(HtpasswdError);
    const message = (error as HtpasswdError).message;
    expect(message).toMatch(/^line 3: /);
    expect(message).toContain(kind);
    expect(message).toContain('only bcrypt hashes');
    expect(message).not.toContain(line.slice(line.indexOf(':') + 1));
    expect((error as HtpasswdError).line).toBe(3);
  });

  it('refuses a bcrypt cost htpasswd would not make', () => {
    const hash = hashOf('x').replace(/^\$2([aby])\$04\$/, '$2$1$31$');
    expect(() => parseHtpasswd(`eve:${hash}`, limits)).toThrow('line 1: bcrypt cost 31 is outside 4 to 17');
  });

  it('refuses a line without a colon or without a user', () => {
    expect(() => parseHtpasswd('just-a-name\n', limits)).toThrow('line 1: not "user:hash"');
    expect(() => parseHtpasswd(`:${hashOf('x')}\n`, limits)).toThrow('line 1: empty user name');
  });

  it('refuses a user listed twice, naming both lines', () => {
    expect(() => parseHtpasswd(`alice:${hashOf('a')}\nalice:${hashOf('b')}\n`, limits)).toThrow(
      'line 2: the user of line 1 appears again',
    );
  });

  it('refuses more users than the limit', () => {
    const hash = hashOf('x');
    const text = Array.from({ length: 4 }, (_, i) => `user${i}:${hash}`).join('\n');
    expect(() => parseHtpasswd(text, { maxBytes: 1e6, maxUsers: 3 })).toThrow('more than 3 users');
  });
});

describe('HtpasswdFile', () => {
  let dir: string;
  let path: string;
  let clock: ReturnType<typeof manualClock>;
  let logger: ReturnType<typeof recordingLogger>;
  const opened: HtpasswdFile[] = [];

  async function openFile(config: Partial<HtpasswdConfig> = {}, watch = true): Promise<HtpasswdFile> {
    const file = await HtpasswdFile.open({ path, reloadDebounceMs: 20, ...config }, { clock, logger, watch });
    opened.push(file);
    return file;
  }

  beforeEach(async () => {
    dir = await makeTempDir('htpasswd');
    path = join(dir, 'htpasswd');
    clock = manualClock();
    logger = recordingLogger();
    await writeHtpasswd(path, [
      { username: 'alice', password: 'alice-pw' },
      { username: 'bob', password: 'bob:pw' },
    ]);
  });

  afterEach(async () => {
    for (const file of opened.splice(0)) file.close();
    vi.restoreAllMocks();
    await removeTempDir(dir);
  });

  it('accepts the right password and refuses a wrong one or an unknown user', async () => {
    const file = await openFile();
    expect(file.userCount).toBe(2);
    expect(await file.verify('alice', 'alice-pw')).toBe(true);
    expect(await file.verify('bob', 'bob:pw')).toBe(true);
    expect(await file.verify('alice', 'bob:pw')).toBe(false);
    expect(await file.verify('alice', '')).toBe(false);
    expect(await file.verify('mallory', 'alice-pw')).toBe(false);
    expect(await file.verify('Alice', 'alice-pw')).toBe(false);
  });

  it('spends one bcrypt comparison of the usual cost on an unknown user', async () => {
    const file = await openFile();
    const compare = vi.spyOn(bcrypt, 'compare');
    expect(await file.verify('mallory', 'guess')).toBe(false);
    expect(compare).toHaveBeenCalledTimes(1);
    const hash = compare.mock.calls[0]?.[1] as string;
    expect(bcrypt.getRounds(hash)).toBe(4);
  });

  it('remembers a verified pair so repeated requests skip bcrypt, until its time is up', async () => {
    const file = await openFile({ verifiedTtlMs: 60_000 }, false);
    const compare = vi.spyOn(bcrypt, 'compare');
    expect(await file.verify('alice', 'alice-pw')).toBe(true);
    expect(await file.verify('alice', 'alice-pw')).toBe(true);
    clock.t += 59_999;
    expect(await file.verify('alice', 'alice-pw')).toBe(true);
    expect(compare).toHaveBeenCalledTimes(1);
    clock.t += 1;
    expect(await file.verify('alice', 'alice-pw')).toBe(true);
    expect(compare).toHaveBeenCalledTimes(2);
  });

  it('never remembers a refused pair', async () => {
    const file = await openFile();
    const compare = vi.spyOn(bcrypt, 'compare');
    expect(await file.verify('alice', 'wrong')).toBe(false);
    expect(await file.verify('alice', 'wrong')).toBe(false);
    expect(compare).toHaveBeenCalledTimes(2);
  });

  it('shares one comparison among concurrent checks of the same pair', async () => {
    const file = await openFile();
    const compare = vi.spyOn(bcrypt, 'compare');
    const results = await Promise.all([1, 2, 3, 4].map(() => file.verify('alice', 'alice-pw')));
    expect(results).toEqual([true, true, true, true]);
    expect(compare).toHaveBeenCalledTimes(1);
  });

  it('refuses to open a file with an unsupported hash, naming the file and line', async () => {
    await writeFile(path, `alice:${hashOf('a')}\nbob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n`);
    const attempt = openFile();
    await expect(attempt).rejects.toThrow(HtpasswdError);
    await expect(attempt).rejects.toThrow(`${path}: line 2: an Apache MD5 ($apr1$) hash`);
  });

  it('refuses to open a missing or oversized file', async () => {
    await expect(HtpasswdFile.open({ path: join(dir, 'nope') }, { clock, logger })).rejects.toThrow('cannot be read (ENOENT)');
    await expect(openFile({ maxBytes: 100 })).rejects.toThrow('larger than 100 bytes');
  });

  it('picks up a new user after the file is replaced, without any request to notice it', async () => {
    const file = await openFile();
    expect(await file.verify('carol', 'carol-pw')).toBe(false);
    const next = join(dir, 'htpasswd.new');
    await writeHtpasswd(next, [
      { username: 'alice', password: 'alice-pw' },
      { username: 'carol', password: 'carol-pw' },
    ]);
    await rename(next, path);
    // The clock does not move, so only the directory watch can trigger the reload.
    await waitFor(() => file.userCount === 2 && logger.records.some((r) => r.msg === 'htpasswd file reloaded'), {
      what: 'the htpasswd reload',
      intervalMs: 10,
    });
    expect(await file.verify('carol', 'carol-pw')).toBe(true);
    expect(await file.verify('bob', 'bob:pw')).toBe(false);
  });

  it('notices a change on use when not watching, once the debounce time has passed', async () => {
    const file = await openFile({ reloadDebounceMs: 1000 }, false);
    await writeHtpasswd(path, [{ username: 'carol', password: 'carol-pw' }]);
    expect(await file.verify('carol', 'carol-pw')).toBe(false);
    clock.t += 1000;
    expect(await file.verify('carol', 'carol-pw')).toBe(true);
    expect(file.userCount).toBe(1);
  });

  it('forgets a remembered password when the file changes', async () => {
    const file = await openFile({}, false);
    expect(await file.verify('alice', 'alice-pw')).toBe(true);
    await writeHtpasswd(path, [{ username: 'alice', password: 'new-pw' }]);
    clock.t += 20;
    expect(await file.verify('alice', 'alice-pw')).toBe(false);
    expect(await file.verify('alice', 'new-pw')).toBe(true);
  });

  it('keeps the last good users when the file becomes broken, warns once, and recovers when it is fixed', async () => {
    const file = await openFile({}, false);
    await writeFile(path, `alice:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n`);
    clock.t += 20;
    await file.refresh();
    clock.t += 20;
    await file.refresh();
    expect(await file.verify('alice', 'alice-pw')).toBe(true);
    expect(await file.verify('bob', 'bob:pw')).toBe(true);
    const warnings = logger.records.filter((r) => r.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toBe('htpasswd file not reloaded: keeping the last good users');
    expect(JSON.stringify(warnings[0]?.obj)).toContain('line 1: an Apache MD5 ($apr1$) hash');
    expect(JSON.stringify(warnings[0]?.obj)).not.toContain('HqJZimcKQFAMYayBlzkrA');

    await writeHtpasswd(path, [{ username: 'dave', password: 'dave-pw' }]);
    clock.t += 20;
    expect(await file.verify('dave', 'dave-pw')).toBe(true);
    expect(await file.verify('alice', 'alice-pw')).toBe(false);
  });

  it('keeps the last good users when the file disappears', async () => {
    const file = await openFile();
    await rm(path);
    await waitFor(() => logger.records.some((r) => r.level === 'warn'), { what: 'a warning about the missing file', intervalMs: 10 });
    expect(JSON.stringify(logger.records.find((r) => r.level === 'warn')?.obj)).toContain('ENOENT');
    expect(await file.verify('alice', 'alice-pw')).toBe(true);
  });

  it('keeps remembered pairs when the file is touched without a change', async () => {
    const file = await openFile({}, false);
    expect(await file.verify('alice', 'alice-pw')).toBe(true);
    const compare = vi.spyOn(bcrypt, 'compare');
    await writeFile(path, await readFile(path));
    clock.t += 20;
    expect(await file.verify('alice', 'alice-pw')).toBe(true);
    expect(compare).not.toHaveBeenCalled();
    expect(logger.records.some((r) => r.msg === 'htpasswd file reloaded')).toBe(false);
  });
});
