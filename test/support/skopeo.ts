import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Credentials } from './htpasswd.ts';
import { sha256 } from './images.ts';
import { requireBinary, runProcess, type RunResult } from './process.ts';
import { makeTempDir, removeTempDir } from './temp.ts';

/**
 * skopeo (Debian package skopeo, 1.9.x) as the client in integration tests.
 * Every run is isolated from the machine's containers configuration: its own
 * auth file (`--authfile` and REGISTRY_AUTH_FILE), an insecureAcceptAnything
 * `--policy`, an empty registries.conf and registries.d, its own `--tmpdir`
 * and HOME — all in a temp dir removed afterwards. TLS verification is off
 * (the registries under test speak plain HTTP on 127.0.0.1), retries are off
 * (`--retry-times 0`), and the run is bounded by `timeoutMs`.
 */

export class SkopeoError extends Error {
  readonly code = 'SKOPEO_FAILED';
  constructor(
    message: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly timedOut: boolean,
  ) {
    super(message);
    this.name = 'SkopeoError';
  }
}

export interface SkopeoRunOptions {
  /** Default 120 000 ms. */
  timeoutMs?: number;
  /** Extra flags placed right after the subcommand (before the image references). */
  extraArgs?: readonly string[];
  env?: NodeJS.ProcessEnv;
}

export interface SkopeoCopyOptions extends SkopeoRunOptions {
  /** `--all`: copy every image of an index / manifest list. */
  all?: boolean;
  /** Credentials for the source registry, `--src-creds user:password`. */
  srcCreds?: Credentials;
  /** Credentials for the destination registry, `--dest-creds user:password`. */
  destCreds?: Credentials;
  /** Passed as `--override-arch` / `--override-os` (picks one image from an index when `all` is false). */
  overrideArch?: string;
  overrideOs?: string;
  /** `--src-cert-dir`: verify the source's TLS certificate with the CAs (`*.crt`) in this directory instead of not verifying it. */
  srcCertDir?: string;
}

export interface SkopeoInspectOptions extends SkopeoRunOptions {
  creds?: Credentials;
}

async function runSkopeo(subcommand: string, subArgs: readonly string[], options: SkopeoRunOptions): Promise<RunResult> {
  const skopeo = requireBinary('skopeo');
  const dir = await makeTempDir('skopeo');
  try {
    const policy = join(dir, 'policy.json');
    const authfile = join(dir, 'auth.json');
    const registriesConf = join(dir, 'registries.conf');
    const registriesD = join(dir, 'registries.d');
    const tmp = join(dir, 'tmp');
    const home = join(dir, 'home');
    await Promise.all([mkdir(registriesD), mkdir(tmp), mkdir(home)]);
    await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
    await writeFile(authfile, JSON.stringify({ auths: {} }));
    await writeFile(registriesConf, '');
    const args = [
      '--policy', policy,
      '--registries.d', registriesD,
      '--tmpdir', tmp,
      subcommand,
      '--authfile', authfile,
      ...subArgs,
    ];
    const result = await runProcess(skopeo, args, {
      timeoutMs: options.timeoutMs ?? 120_000,
      env: {
        REGISTRY_AUTH_FILE: authfile,
        CONTAINERS_REGISTRIES_CONF: registriesConf,
        HOME: home,
        XDG_RUNTIME_DIR: home,
        DOCKER_CONFIG: home,
        TMPDIR: tmp,
        ...options.env,
      },
      name: `skopeo ${subcommand}`,
    });
    if (result.exitCode !== 0 || result.timedOut) {
      const why = result.timedOut ? `timed out after ${options.timeoutMs ?? 120_000} ms` : `exited ${result.exitCode ?? result.signal}`;
      throw new SkopeoError(
        `skopeo ${subcommand} ${redactCreds(subArgs).join(' ')} ${why}: ${result.stderr.trim()}`,
        redactCreds(args),
        result.exitCode,
        result.stderr,
        result.timedOut,
      );
    }
    return result;
  } finally {
    await removeTempDir(dir);
  }
}

function redactCreds(args: readonly string[]): string[] {
  return args.map((a, i) => (i > 0 && /^--(src-|dest-)?creds$/.test(args[i - 1]!) ? '<redacted>' : a));
}

function credsArg(c: Credentials): string {
  return `${c.username}:${c.password}`;
}

/** `skopeo copy` with TLS verification off; throws {@link SkopeoError} (with skopeo's stderr) on failure. */
export async function skopeoCopy(src: string, dest: string, options: SkopeoCopyOptions = {}): Promise<RunResult> {
  const args = [
    ...(options.srcCertDir === undefined ? ['--src-tls-verify=false'] : ['--src-cert-dir', options.srcCertDir]),
    '--dest-tls-verify=false',
    '--retry-times', '0',
    ...(options.all === true ? ['--all'] : []),
    ...(options.srcCreds === undefined ? [] : ['--src-creds', credsArg(options.srcCreds)]),
    ...(options.destCreds === undefined ? [] : ['--dest-creds', credsArg(options.destCreds)]),
    ...(options.extraArgs ?? []),
    // Global (persistent) flags; cobra accepts them after the subcommand too.
    ...(options.overrideArch === undefined ? [] : ['--override-arch', options.overrideArch]),
    ...(options.overrideOs === undefined ? [] : ['--override-os', options.overrideOs]),
  ];
  return runSkopeo('copy', [...args, src, dest], options);
}

export interface RawManifest {
  bytes: Buffer;
  digest: string;
  mediaType: string | undefined;
}

/** `skopeo inspect --raw REF`: the manifest bytes exactly as served, and their digest. */
export async function skopeoInspectRaw(ref: string, options: SkopeoInspectOptions = {}): Promise<RawManifest> {
  const result = await runSkopeo(
    'inspect',
    [
      '--raw',
      '--tls-verify=false',
      '--retry-times', '0',
      ...(options.creds === undefined ? [] : ['--creds', credsArg(options.creds)]),
      ...(options.extraArgs ?? []),
      ref,
    ],
    options,
  );
  const bytes = result.stdout;
  let mediaType: string | undefined;
  try {
    mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType;
  } catch {
    mediaType = undefined;
  }
  return { bytes, digest: sha256(bytes), mediaType };
}

/** The manifest digests listed in an `oci:` layout's index.json (one per copied image or index). */
export async function ociLayoutManifestDigests(dir: string): Promise<string[]> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests?: Array<{ digest: string }> };
  return (index.manifests ?? []).map((m) => m.digest);
}

/** The digest of the top-level manifest a `dir:` copy wrote (dir/manifest.json, stored byte-for-byte). */
export async function dirManifestDigest(dir: string): Promise<string> {
  return sha256(await readFile(join(dir, 'manifest.json')));
}

/** Pulls `docker://<ref>` into a temp OCI layout and returns its manifest digest(s); the layout is removed afterwards. */
export async function pullOciDigests(ref: string, options: SkopeoCopyOptions = {}): Promise<string[]> {
  const dir = await makeTempDir('pull');
  try {
    await skopeoCopy(`docker://${ref}`, `oci:${dir}:pulled`, { timeoutMs: 120_000, ...options });
    return await ociLayoutManifestDigests(dir);
  } finally {
    await removeTempDir(dir);
  }
}
