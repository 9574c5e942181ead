/** What the figures were measured on (printed with the tables, kept in the results JSON). */
import { spawnSync } from 'node:child_process';
import os from 'node:os';

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  distribution: string;
  nginx: string;
  skopeo: string;
}

/** First line a `--version`-style command prints (nginx prints it on stderr). */
function version(cmd: string, args: string[]): string {
  const run = spawnSync(cmd, args, { encoding: 'utf8' });
  const text = `${run.stdout ?? ''}${run.stderr ?? ''}`.trim();
  return text.split('\n')[0] || 'unknown';
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    distribution: version('docker-registry', ['--version']),
    nginx: version('nginx', ['-v']),
    skopeo: version('skopeo', ['--version']),
  };
}
