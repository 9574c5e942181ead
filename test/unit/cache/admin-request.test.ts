import { describe, expect, it } from 'vitest';
import { parseAdminRequest } from '../../../src/cache/admin-request.ts';
import { digestOf } from '../../../src/registry/digest.ts';

describe('parseAdminRequest (admin requests crossing IPC)', () => {
  const digest = digestOf(Buffer.from('x'));

  it('parses every operation into its typed form', () => {
    expect(parseAdminRequest({ op: 'stats' })).toEqual({ op: 'stats' });
    expect(parseAdminRequest({ op: 'list', limit: 5000, cursor: -3 })).toEqual({ op: 'list', limit: 1000, cursor: 0 });
    expect(parseAdminRequest({ op: 'purge', target: { digest } })).toEqual({ op: 'purge', target: { digest } });
    expect(parseAdminRequest({ op: 'purge', target: { repository: 'library/nginx' } })).toEqual({ op: 'purge', target: { repository: 'library/nginx' } });
    expect(parseAdminRequest({ op: 'purge', target: { all: true } })).toEqual({ op: 'purge', target: { all: true } });
    expect(parseAdminRequest({ op: 'pin', reference: 'library/nginx:1', digests: [digest, '../x'], persist: true })).toEqual({
      op: 'pin',
      reference: 'library/nginx:1',
      digests: [digest],
      persist: true,
    });
    expect(parseAdminRequest({ op: 'unpin', reference: 'library/nginx:1' })).toEqual({ op: 'unpin', reference: 'library/nginx:1' });
  });

  it('refuses traversal digests, bad names, unknown operations and missing references', () => {
    expect(() => parseAdminRequest({ op: 'purge', target: { digest: 'sha256:../../etc/passwd' } })).toThrowError(expect.objectContaining({ code: 'DIGEST_INVALID' }));
    expect(() => parseAdminRequest({ op: 'purge', target: { repository: '../etc' } })).toThrowError(expect.objectContaining({ code: 'NAME_INVALID' }));
    expect(() => parseAdminRequest({ op: 'purge', target: {} })).toThrowError(expect.objectContaining({ code: 'BODY_INVALID' }));
    expect(() => parseAdminRequest({ op: 'reboot' })).toThrowError(expect.objectContaining({ code: 'UNSUPPORTED' }));
    expect(() => parseAdminRequest(null)).toThrowError(expect.objectContaining({ code: 'UNSUPPORTED' }));
    expect(() => parseAdminRequest({ op: 'pin', reference: '' })).toThrowError(expect.objectContaining({ code: 'BODY_INVALID' }));
  });
});
