/** A throwaway certificate authority made with openssl, and server certificates it signs for 127.0.0.1. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { requireBinary } from './process.ts';

export interface TestCa {
  dir: string;
  /** The CA certificate (PEM), what clients trust. */
  caCert: string;
  caKey: string;
}

export interface TestServerCert {
  cert: string;
  key: string;
  commonName: string;
}

function openssl(args: string[]): void {
  execFileSync(requireBinary('openssl'), args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makeTestCa(dir: string, name = 'Outpost Test CA'): TestCa {
  const caCert = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return { dir, caCert, caKey };
}

/** A server certificate for 127.0.0.1 and localhost, signed by `ca`, with a fresh key and a random serial. */
export function issueServerCert(ca: TestCa, name: string, commonName = name): TestServerCert {
  const key = join(ca.dir, `${name}.key`);
  const csr = join(ca.dir, `${name}.csr`);
  const cert = join(ca.dir, `${name}.crt`);
  const ext = join(ca.dir, `${name}.ext`);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${commonName}`]);
  execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth\\n' > '${ext}'`]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.caCert, '-CAkey', ca.caKey, '-set_serial', `0x${randomSerial()}`, '-out', cert, '-days', '1', '-extfile', ext]);
  return { cert, key, commonName };
}

function randomSerial(): string {
  return [...crypto.getRandomValues(new Uint8Array(12))].map((b) => b.toString(16).padStart(2, '0')).join('').replace(/^0+/, '1');
}
