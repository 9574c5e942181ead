/**
 * Reads and checks the HTTPS certificate and key files (`server.tlsCert`,
 * `server.tlsKey`): both PEM, the key unencrypted, and the key the
 * certificate's. Used at start (a bad pair is a configuration error) and on
 * every reload (a bad pair is refused and the current one kept).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
  /** Of the first certificate of the chain (the server's own). */
  subject: string;
  serialNumber: string;
  notAfter: Date;
  fingerprint256: string;
}

/** `key`: the setting whose file is at fault. */
export interface TlsPairProblem {
  key: 'server.tlsCert' | 'server.tlsKey';
  file: string;
  reason: string;
}

export type TlsPairResult = { ok: true; pair: TlsPair } | { ok: false; problem: TlsPairProblem };

export function readTlsPair(certFile: string, keyFile: string): TlsPairResult {
  const fail = (key: TlsPairProblem['key'], reason: string): TlsPairResult => ({ ok: false, problem: { key, file: key === 'server.tlsCert' ? certFile : keyFile, reason } });
  const read = (key: TlsPairProblem['key'], file: string): Buffer | TlsPairResult => {
    try {
      return readFileSync(file);
    } catch (err) {
      return fail(key, `cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  const cert = read('server.tlsCert', certFile);
  if (!Buffer.isBuffer(cert)) return cert;
  const key = read('server.tlsKey', keyFile);
  if (!Buffer.isBuffer(key)) return key;
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    return fail('server.tlsCert', 'is not a PEM certificate');
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    // Node's error for an encrypted key varies with the OpenSSL version (ERR_MISSING_PASSPHRASE, "interrupted or cancelled").
    const encrypted = /^-----BEGIN (ENCRYPTED PRIVATE KEY|[A-Z ]*PRIVATE KEY-----\r?\nProc-Type: 4,ENCRYPTED)/m.test(key.toString('latin1'));
    return fail('server.tlsKey', encrypted ? 'is an encrypted key (a passphrase is not supported)' : 'is not a PEM private key');
  }
  if (!x509.checkPrivateKey(privateKey)) return fail('server.tlsKey', `is not the key of the certificate in server.tlsCert (${certFile})`);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    return fail('server.tlsCert', `cannot be used for TLS (${(err as Error).message})`);
  }
  const { subject, serialNumber, validTo, fingerprint256 } = x509;
  return { ok: true, pair: { cert, key, subject, serialNumber, notAfter: new Date(validTo), fingerprint256 } };
}
