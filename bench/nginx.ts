/**
 * nginx serving the seeded blobs (and the benchmark manifest) as static
 * files: the physical-limit reference (sendfile, no cache logic at all).
 *
 *   <www>/blobs/sha256:<hex>            ← GET /v2/<any repo>/blobs/sha256:<hex>
 *   <www>/v2/<repo>/manifests/<tag>     ← GET|HEAD /v2/<repo>/manifests/<tag>
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../test/support/ports.ts';
import { requireBinary, startProcess, type ProcessHandle } from '../test/support/process.ts';
import { makeTempDir, removeTempDir } from '../test/support/temp.ts';
import { waitFor } from '../test/support/wait.ts';

export interface NginxServer {
  url: string;
  host: string;
  /** The master process (started with `daemon off`); its children are the workers. */
  readonly pid: number | undefined;
  /** Directory the files are served from (lay files out before measuring). */
  www: string;
  stop(): Promise<void>;
  dispose(): Promise<void>;
}

function nginxConf(dir: string, www: string, port: number, manifestMediaType: string): string {
  return `user root;
daemon off;
master_process on;
worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 100000000;
  client_body_temp_path ${dir}/tmp/client;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  types { }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    location ~ "^/v2/.+/blobs/(sha256:[0-9a-f]{64})$" {
      alias ${www}/blobs/$1;
    }
    location ~ "^/v2/.+/manifests/[^/]+$" {
      root ${www};
      default_type ${manifestMediaType};
    }
  }
}
`;
}

export async function startNginx(options: { manifestMediaType: string }): Promise<NginxServer> {
  const binary = requireBinary('nginx');
  const dir = await makeTempDir('nginx');
  const www = join(dir, 'www');
  await Promise.all([mkdir(join(www, 'blobs'), { recursive: true }), mkdir(join(dir, 'tmp'))]);
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  await writeFile(conf, nginxConf(dir, www, port, options.manifestMediaType));
  let proc: ProcessHandle | undefined;
  try {
    proc = await startProcess(binary, ['-p', dir, '-e', join(dir, 'error.log'), '-c', conf], { name: `nginx:${port}`, logFile: join(dir, 'output.log') });
    const started = proc;
    await waitFor(
      async () => {
        if (!started.isRunning()) throw new Error(`nginx exited: ${started.output()}`);
        const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1_000) });
        await res.arrayBuffer();
        return true;
      },
      { what: `nginx on 127.0.0.1:${port}`, timeoutMs: 10_000, intervalMs: 50 },
    );
  } catch (err) {
    await proc?.stop();
    await removeTempDir(dir);
    throw err;
  }
  const server: NginxServer = {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    get pid() {
      return proc?.isRunning() ? proc.pid : undefined;
    },
    www,
    async stop() {
      if (proc?.isRunning()) await proc.stop();
    },
    async dispose() {
      try {
        await server.stop();
      } finally {
        await removeTempDir(dir);
      }
    },
  };
  return server;
}
