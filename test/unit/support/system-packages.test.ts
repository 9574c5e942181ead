/**
 * test/support/ensure-system-packages.sh, run for real with a PATH made of
 * fake binaries: a fake `id` decides root or not, a fake `apt-get` records
 * its calls and "installs" packages by adding their binaries to PATH.
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCleanupStack } from '../../support/cleanup.ts';
import { requireBinary } from '../../support/process.ts';
import {
  debianPackageFor,
  ensureSystemPackagesScript,
  parseSystemPackages,
  systemPackagesFile,
} from '../../support/system-packages.ts';
import { makeTempDir, removeTempDir } from '../../support/temp.ts';

const root = resolve(import.meta.dirname, '../../..');
const cleanup = createCleanupStack();
afterAll(() => cleanup.run());

let bash: string;
let listed: Map<string, string>;

beforeAll(async () => {
  bash = requireBinary('bash');
  listed = parseSystemPackages(await readFile(systemPackagesFile, 'utf8'));
});

const installCommand = 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends';

async function writeExecutable(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o755 });
}

interface FakeMachine {
  /** Runs the script with PATH = only the fake binaries; `--sudo` and other args pass through. */
  run(...args: string[]): { status: number | null; stdout: string; stderr: string };
  /** One line per apt-get call: `DEBIAN_FRONTEND=<value> <args>` (`sudo` first when run through it). */
  aptCalls(): Promise<string[]>;
}

/**
 * A PATH holding a fake binary for every listed binary except `missing`,
 * plus `id` (uid 0 when `root`), and `apt-get` / `sudo` when asked for.
 */
async function fakeMachine(opts: {
  missing: string[];
  root: boolean;
  aptGet?: 'works' | 'update fails' | 'install fails' | 'installs nothing' | 'absent';
  sudo?: 'works' | 'needs a password';
}): Promise<FakeMachine> {
  const dir = await makeTempDir('system-packages');
  cleanup.add(() => removeTempDir(dir));
  const bin = join(dir, 'bin');
  const stash = join(dir, 'packages');
  const log = join(dir, 'apt-get.log');
  await mkdir(bin);
  await writeFile(log, '');
  for (const [binary, pkg] of listed) {
    if (!opts.missing.includes(binary)) {
      await writeExecutable(join(bin, binary), '#!/bin/sh\nexit 0\n');
    } else {
      // What `apt-get install <pkg>` would put on PATH.
      await mkdir(join(stash, pkg), { recursive: true });
      await writeExecutable(join(stash, pkg, binary), '#!/bin/sh\nexit 0\n');
    }
  }
  await writeExecutable(join(bin, 'id'), `#!/bin/sh\necho ${opts.root ? 0 : 1000}\n`);
  const apt = opts.aptGet ?? 'works';
  if (apt !== 'absent') {
    await writeExecutable(
      join(bin, 'apt-get'),
      [
        '#!/bin/bash',
        `echo "\${SUDO_CALL:-}DEBIAN_FRONTEND=\${DEBIAN_FRONTEND:-} $*" >> '${log}'`,
        `[ "$1" = update ] && { echo 'Reading package lists...'; ${apt === 'update fails' ? 'exit 100' : 'exit 0'}; }`,
        apt === 'install fails' ? 'echo "E: Unable to locate package $5"; exit 100' : '',
        apt === 'installs nothing' ? 'exit 0' : '',
        'shift 4',
        `for p in "$@"; do /bin/cp '${stash}'/"$p"/* '${bin}'/; done`,
      ].join('\n'),
    );
  }
  if (opts.sudo !== undefined) {
    // sudo [-n] [VAR=value...] command...: runs the command with the assignments, as "root".
    await writeExecutable(
      join(bin, 'sudo'),
      [
        '#!/bin/bash',
        opts.sudo === 'needs a password' ? 'echo "sudo: a password is required" >&2; exit 1' : '',
        '[ "$1" = -n ] && shift',
        'while [[ "$1" == *=* ]]; do export "$1"; shift; done',
        '[ "$1" = true ] && exit 0',
        'export SUDO_CALL="sudo "',
        'exec "$@"',
      ].join('\n'),
    );
  }
  return {
    run(...args) {
      const r = spawnSync(bash, [ensureSystemPackagesScript, ...args], {
        env: { PATH: bin },
        encoding: 'utf8',
        timeout: 10_000,
      });
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    },
    async aptCalls() {
      return (await readFile(log, 'utf8')).split('\n').filter(Boolean);
    },
  };
}

describe('the list of system packages', () => {
  it('maps each binary to its Debian package, comments and blank lines skipped', () => {
    const parsed = parseSystemPackages('# comment\n\netcd   etcd-server\n  ctr containerd  \nskopeo\n');
    expect([...parsed]).toEqual([
      ['etcd', 'etcd-server'],
      ['ctr', 'containerd'],
      ['skopeo', 'skopeo'],
    ]);
    expect(debianPackageFor('promtool')).toBe('prometheus');
    expect(debianPackageFor('outpost-no-such-binary')).toBe('outpost-no-such-binary');
  });

  it('names every binary a test or bench asks requireBinary for', async () => {
    const asked = new Set<string>();
    for (const top of ['test', 'bench']) {
      for (const entry of await readdir(join(root, top), { recursive: true })) {
        if (!entry.endsWith('.ts')) continue;
        const text = await readFile(join(root, top, entry), 'utf8');
        for (const m of text.matchAll(/requireBinary\('([a-z][a-z0-9-]*)'\)/g)) asked.add(m[1]!);
      }
    }
    asked.delete('outpost-no-such-binary'); // the harness test's missing binary
    asked.delete('bash'); // this file's, and bash runs the installer
    expect([...asked].filter((b) => !listed.has(b))).toEqual([]);
  });

  it('is the list .ci/run installs from: it calls the same script and keeps no list of its own', async () => {
    const ci = await readFile(join(root, '.ci/run'), 'utf8');
    expect(ci).toContain('test/support/ensure-system-packages.sh --sudo');
    expect(ci).not.toMatch(/skopeo|etcd-server|promtool/);
  });
});

describe('ensure-system-packages.sh', () => {
  it('does nothing, silently, when every binary is on PATH', async () => {
    const machine = await fakeMachine({ missing: [], root: true });
    expect(machine.run()).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(await machine.aptCalls()).toEqual([]);
  });

  it('when not root, stops with one list of the missing packages and the exact command', async () => {
    const machine = await fakeMachine({ missing: ['skopeo', 'containerd', 'ctr'], root: false });
    const result = machine.run();
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      [
        '',
        'The tests need these Debian packages, which are missing:',
        '  skopeo (provides skopeo)',
        '  containerd (provides containerd, ctr)',
        'Not installed: not running as root.',
        'Install them with:',
        `  sudo apt-get update && sudo ${installCommand} skopeo containerd`,
        '',
        '',
      ].join('\n'),
    );
    expect(await machine.aptCalls()).toEqual([]);
  });

  it('as root, runs one apt-get update and one apt-get install of everything missing', async () => {
    const machine = await fakeMachine({ missing: ['skopeo', 'etcd', 'promtool'], root: true });
    const result = machine.run();
    expect(result.stderr).toContain('Installing the Debian packages the tests need: etcd-server skopeo prometheus');
    expect(result.status).toBe(0);
    expect(await machine.aptCalls()).toEqual([
      'DEBIAN_FRONTEND=noninteractive update -q',
      'DEBIAN_FRONTEND=noninteractive install -y -q --no-install-recommends etcd-server skopeo prometheus',
    ]);
    // Now everything is there: nothing more to do.
    expect(machine.run()).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(await machine.aptCalls()).toHaveLength(2);
  });

  it('as root without apt-get, stops with the list', async () => {
    const result = (await fakeMachine({ missing: ['skopeo'], root: true, aptGet: 'absent' })).run();
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('  skopeo (provides skopeo)\nNot installed: apt-get is not available on this machine.');
    expect(result.stderr).toContain(`  apt-get update && ${installCommand} skopeo\n`);
  });

  it('stops with the list when apt-get update fails, without trying to install', async () => {
    const machine = await fakeMachine({ missing: ['nginx'], root: true, aptGet: 'update fails' });
    const result = machine.run();
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('Not installed: apt-get update failed (its output is above).');
    expect(await machine.aptCalls()).toEqual(['DEBIAN_FRONTEND=noninteractive update -q']);
  });

  it('stops with the list, apt-get output included, when apt-get install fails', async () => {
    const result = (await fakeMachine({ missing: ['nginx', 'haproxy'], root: true, aptGet: 'install fails' })).run();
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('E: Unable to locate package nginx');
    expect(result.stderr).toContain('Not installed: apt-get install failed (its output is above).');
    expect(result.stderr).toContain(`  apt-get update && ${installCommand} nginx haproxy\n`);
  });

  it('stops naming what is still missing when apt-get install succeeded without providing a binary', async () => {
    const result = (await fakeMachine({ missing: ['promtool'], root: true, aptGet: 'installs nothing' })).run();
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('  prometheus (provides promtool)\n');
    expect(result.stderr).toContain('Not installed: apt-get install ran, yet these binaries are still not on PATH');
  });

  it('with --sudo (.ci/run), installs through sudo -n when not root', async () => {
    const machine = await fakeMachine({ missing: ['podman'], root: false, sudo: 'works' });
    expect(machine.run('--sudo').status).toBe(0);
    expect(await machine.aptCalls()).toEqual([
      'sudo DEBIAN_FRONTEND=noninteractive update -q',
      'sudo DEBIAN_FRONTEND=noninteractive install -y -q --no-install-recommends podman',
    ]);
  });

  it('with --sudo, stops with the list when sudo wants a password', async () => {
    const machine = await fakeMachine({ missing: ['podman'], root: false, sudo: 'needs a password' });
    const result = machine.run('--sudo');
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('Not installed: not running as root.');
    expect(await machine.aptCalls()).toEqual([]);
  });

  it('never uses sudo without --sudo (npm test)', async () => {
    const machine = await fakeMachine({ missing: ['podman'], root: false, sudo: 'works' });
    expect(machine.run().status).toBe(1);
    expect(await machine.aptCalls()).toEqual([]);
  });
});
