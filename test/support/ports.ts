import { createServer } from 'node:net';

/**
 * Asks the kernel for a free TCP port on 127.0.0.1 (listen on port 0, read the
 * port, close). Another process can in theory take the port between the close
 * and the caller's own listen; on a loopback-only test machine that is rare,
 * and every server in the harness fails loudly when its port is taken.
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.unref();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  if (address === null || typeof address === 'string') {
    throw new Error(`freePort: unexpected server address ${String(address)}`);
  }
  return address.port;
}
