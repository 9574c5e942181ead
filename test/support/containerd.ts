/** A real containerd daemon with its own root, state and socket, and `ctr` pulling through a hosts.toml mirror. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { requireBinary, runProcess, startProcess, type ProcessHandle, type RunResult } from './process.ts';
import { makeTempDir, removeTempDir } from './temp.ts';
import { waitFor } from './wait.ts';

export interface Containerd {
  socket: string;
  /** Writes `<hostsDir>/<registryHost>/hosts.toml` sending pulls for that registry to `mirrorUrl`. */
  mirror(registryHost: string, mirrorUrl: string, options?: { ca?: string }): Promise<void>;
  /** `ctr images pull --hosts-dir ... --snapshotter native` (unpacks the layers); throws with ctr's output on failure. */
  pull(ref: string, options?: { platform?: string }): Promise<RunResult>;
  /** The target digest of an image as containerd recorded it. */
  imageDigest(ref: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startContainerd(): Promise<Containerd> {
  const binary = requireBinary('containerd');
  const ctr = requireBinary('ctr');
  const dir = await makeTempDir('containerd');
  const socket = path.join(dir, 'containerd.sock');
  const hostsDir = path.join(dir, 'certs.d');
  await mkdir(hostsDir, { recursive: true });
  const config = [
    'version = 2',
    `root = "${path.join(dir, 'root')}"`,
    `state = "${path.join(dir, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
    '[grpc]',
    `  address = "${socket}"`,
    '[ttrpc]',
    `  address = "${path.join(dir, 'containerd-ttrpc.sock')}"`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
  ].join('\n');
  const configPath = path.join(dir, 'config.toml');
  await writeFile(configPath, config);
  const proc: ProcessHandle = await startProcess(binary, ['--config', configPath], { name: 'containerd' });
  await waitFor(
    async () => {
      if (!proc.isRunning()) throw new Error(`containerd exited: ${proc.output().slice(-2000)}`);
      return (await runProcess(ctr, ['--address', socket, 'version'], { timeoutMs: 5_000 })).exitCode === 0;
    },
    { what: 'containerd to answer on its socket', timeoutMs: 20_000, intervalMs: 100 },
  );
  const ctrRun = async (args: string[]): Promise<RunResult> => {
    const result = await runProcess(ctr, ['--address', socket, ...args], { timeoutMs: 120_000 });
    if (result.exitCode !== 0) throw new Error(`ctr ${args.join(' ')} failed (${result.exitCode}): ${result.output.slice(-3000)}`);
    return result;
  };
  return {
    socket,
    async mirror(registryHost, mirrorUrl, options = {}) {
      const hostDir = path.join(hostsDir, registryHost);
      await mkdir(hostDir, { recursive: true });
      await writeFile(
        path.join(hostDir, 'hosts.toml'),
        `server = "http://${registryHost}"\n\n[host."${mirrorUrl}"]\n  capabilities = ["pull", "resolve"]\n` +
          (options.ca === undefined ? '' : `  ca = ${JSON.stringify(options.ca)}\n`),
      );
    },
    pull(ref, options = {}) {
      const args = ['images', 'pull', '--hosts-dir', hostsDir, '--snapshotter', 'native'];
      if (options.platform) args.push('--platform', options.platform);
      return ctrRun([...args, ref]);
    },
    async imageDigest(ref) {
      const result = await ctrRun(['images', 'ls']);
      const line = result.stdout
        .toString('utf8')
        .split('\n')
        .find((l) => l.startsWith(`${ref} `));
      const digest = line?.split(/\s+/).find((field) => field.startsWith('sha256:'));
      if (!digest) throw new Error(`image ${ref} not listed by ctr: ${result.output}`);
      return digest;
    },
    async stop() {
      await proc.stop({ graceMs: 5_000 });
      await removeTempDir(dir);
    },
  };
}
