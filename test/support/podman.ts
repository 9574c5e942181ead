/** podman pulls with the vfs storage driver into a temp root, with no system registries.conf or policy needed. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { requireBinary, runProcess, type RunResult } from './process.ts';
import { makeTempDir, removeTempDir } from './temp.ts';

export interface Podman {
  pull(ref: string): Promise<RunResult>;
  /** The manifest digest podman recorded for a pulled image. */
  imageDigest(ref: string): Promise<string>;
  dispose(): Promise<void>;
}

export interface PodmanOptions {
  /** registries.conf mirrors: pulls of `prefix` go to `mirror` first (plain HTTP), as CRI-O and podman are set up for a mirror. */
  mirrors?: Array<{ prefix: string; location: string; mirror: string }>;
}

export async function createPodman(options: PodmanOptions = {}): Promise<Podman> {
  const binary = requireBinary('podman');
  const dir = await makeTempDir('podman');
  const policy = path.join(dir, 'policy.json');
  const registries = path.join(dir, 'registries.conf');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const mirrors = (options.mirrors ?? []).map(
    ({ prefix, location, mirror }) => `[[registry]]\nprefix = "${prefix}"\nlocation = "${location}"\n\n[[registry.mirror]]\nlocation = "${mirror}"\ninsecure = true\n`,
  );
  await writeFile(registries, ['unqualified-search-registries = []\n', ...mirrors].join('\n'));
  await writeFile(path.join(dir, 'auth.json'), '{}');
  const base = ['--storage-driver', 'vfs', '--root', path.join(dir, 'root'), '--runroot', path.join(dir, 'runroot'), '--tmpdir', path.join(dir, 'tmp')];
  const env = { CONTAINERS_REGISTRIES_CONF: registries, REGISTRY_AUTH_FILE: path.join(dir, 'auth.json'), HOME: dir, XDG_RUNTIME_DIR: dir };
  const run = async (args: string[]): Promise<RunResult> => {
    const result = await runProcess(binary, [...base, ...args], { env, timeoutMs: 120_000 });
    if (result.exitCode !== 0) throw new Error(`podman ${args.join(' ')} failed (${result.exitCode}): ${result.output.slice(-3000)}`);
    return result;
  };
  return {
    pull: (ref) => run(['pull', '--tls-verify=false', '--signature-policy', policy, ref]),
    async imageDigest(ref) {
      const result = await run(['image', 'inspect', '--format', '{{.Digest}}', ref]);
      return result.stdout.toString('utf8').trim();
    },
    dispose: () => removeTempDir(dir),
  };
}
