import { describe, expect, it } from 'vitest';
import { peerSignatureWindowMs, signPeerRequest, verifyPeerRequest } from '../../../src/cluster/peer-protocol.ts';

const secret = 'peer-secret-0123456789abcdef';
const path = '/api/v0/peer/blobs/sha256:' + 'a'.repeat(64);

describe('peer request signatures', () => {
  it('accepts a request signed with the secret, naming the caller', () => {
    const now = 1_700_000_000_000;
    const header = signPeerRequest(secret, 'GET', path, 'n2', now);
    expect(verifyPeerRequest(secret, 'GET', path, header, now + 5_000)).toEqual({ ok: true, nodeId: 'n2' });
  });

  it('refuses another secret, another path or method, an old signature and garbage', () => {
    const now = 1_700_000_000_000;
    const header = signPeerRequest(secret, 'GET', path, 'n2', now);
    expect(verifyPeerRequest('another-secret-0123456789', 'GET', path, header, now)).toMatchObject({ ok: false, reason: expect.stringContaining('does not verify') });
    expect(verifyPeerRequest(secret, 'GET', path.replace('aaa', 'aab'), header, now).ok).toBe(false);
    expect(verifyPeerRequest(secret, 'HEAD', path, header, now).ok).toBe(false);
    expect(verifyPeerRequest(secret, 'GET', path, header, now + peerSignatureWindowMs + 1)).toMatchObject({ ok: false, reason: expect.stringContaining('clocks') });
    expect(verifyPeerRequest(secret, 'GET', path, undefined, now)).toMatchObject({ ok: false, reason: 'no peer signature' });
    expect(verifyPeerRequest(secret, 'GET', path, 'Bearer x', now)).toMatchObject({ ok: false, reason: 'malformed peer signature' });
    expect(verifyPeerRequest(secret, 'GET', path, header.replace(' n2 ', ' n3 '), now).ok).toBe(false);
  });
});
