import { describe, expect, it } from 'vitest';
import {
  basicChallenge,
  MAX_BASIC_AUTHORIZATION_LENGTH,
  parseBasicAuthorization,
} from '../../../src/auth/basic-credentials.ts';
import { parseWwwAuthenticate } from '../../../src/upstream/www-authenticate.ts';

const basic = (text: string) => `Basic ${Buffer.from(text, 'utf8').toString('base64')}`;

describe('parseBasicAuthorization', () => {
  it('reads the user and password of a Basic header', () => {
    expect(parseBasicAuthorization(basic('alice:s3cret'))).toEqual({ username: 'alice', password: 's3cret' });
  });

  it('accepts the scheme in any case and extra spaces around the token', () => {
    const token = Buffer.from('alice:pw').toString('base64');
    expect(parseBasicAuthorization(`basic ${token}`)).toEqual({ username: 'alice', password: 'pw' });
    expect(parseBasicAuthorization(`BASIC   ${token}  `)).toEqual({ username: 'alice', password: 'pw' });
  });

  it('splits at the first colon, so passwords may contain colons', () => {
    expect(parseBasicAuthorization(basic('bob:a:b:c'))).toEqual({ username: 'bob', password: 'a:b:c' });
  });

  it('allows an empty password and UTF-8 text', () => {
    expect(parseBasicAuthorization(basic('carol:'))).toEqual({ username: 'carol', password: '' });
    expect(parseBasicAuthorization(basic('jürgen:pässwörd✓'))).toEqual({ username: 'jürgen', password: 'pässwörd✓' });
  });

  it.each([
    ['no header', undefined],
    ['an empty header', ''],
    ['another scheme', `Bearer ${Buffer.from('alice:pw').toString('base64')}`],
    ['the scheme alone', 'Basic'],
    ['the scheme and a space', 'Basic '],
    ['no space after the scheme', `Basic${Buffer.from('alice:pw').toString('base64')}`],
    ['base64 with bad characters', 'Basic YWxp!2U6cHc='],
    ['base64url instead of base64', `Basic ${Buffer.from('a?>:~~~?x').toString('base64url')}`],
    ['base64 without its padding', 'Basic YWxpY2U6cHc'],
    ['base64 with non-zero padding bits', 'Basic YWxpY2U6cHd='],
    ['two tokens', `Basic ${Buffer.from('alice:pw').toString('base64')} extra`],
    ['no colon', basic('alice')],
    ['an empty user', basic(':password')],
    ['a control character in the user', basic('ali\nce:pw')],
    ['a control character in the password', basic('alice:p\u0000w')],
    ['bytes that are not UTF-8', `Basic ${Buffer.from([0x61, 0x3a, 0xff, 0xfe]).toString('base64')}`],
    ['a header over the length limit', basic(`alice:${'x'.repeat(MAX_BASIC_AUTHORIZATION_LENGTH)}`)],
  ])('reads %s as no credentials', (_case, header) => {
    expect(parseBasicAuthorization(header)).toBeUndefined();
  });

  it('reads a long header of pathological shape quickly', () => {
    const header = `Basic ${'A'.repeat(MAX_BASIC_AUTHORIZATION_LENGTH - 10)}!`;
    const started = performance.now();
    for (let i = 0; i < 1000; i++) expect(parseBasicAuthorization(header)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('basicChallenge', () => {
  it('builds a Basic challenge that registry clients parse back to the realm', () => {
    const challenge = basicChallenge('Outpost registry');
    expect(challenge).toBe('Basic realm="Outpost registry"');
    expect(parseWwwAuthenticate(challenge)).toEqual([{ scheme: 'basic', params: { realm: 'Outpost registry' } }]);
  });

  it('escapes quotes and backslashes in the realm', () => {
    const challenge = basicChallenge('say "hi" \\ bye');
    expect(challenge).toBe('Basic realm="say \\"hi\\" \\\\ bye"');
    expect(parseWwwAuthenticate(challenge)[0]?.params.realm).toBe('say "hi" \\ bye');
  });

  it('refuses a realm that would break the header', () => {
    expect(() => basicChallenge('a\r\nSet-Cookie: x=y')).toThrow(TypeError);
    expect(() => basicChallenge('')).toThrow(TypeError);
    expect(() => basicChallenge('r'.repeat(257))).toThrow(TypeError);
  });
});
