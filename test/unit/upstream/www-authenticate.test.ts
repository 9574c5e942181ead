import { describe, expect, it } from 'vitest';
import { findChallenge, parseWwwAuthenticate } from '../../../src/upstream/www-authenticate.ts';

describe('parseWwwAuthenticate', () => {
  it('reads a Docker Hub bearer challenge', () => {
    const [c] = parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"',
    );
    expect(c).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/nginx:pull' },
    });
  });

  it('keeps commas, equals signs and escaped quotes inside quoted values', () => {
    const [c] = parseWwwAuthenticate('Bearer realm="https://x/t?a=1,b=2", scope="repository:a:pull,push", error="say \\"no\\""');
    expect(c?.params).toEqual({ realm: 'https://x/t?a=1,b=2', scope: 'repository:a:pull,push', error: 'say "no"' });
  });

  it('accepts unquoted values, odd spacing and upper-case names', () => {
    const [c] = parseWwwAuthenticate('BASIC   Realm = registry ,charset=UTF-8');
    expect(c?.scheme).toBe('basic');
    expect(c?.params).toEqual({ realm: 'registry', charset: 'UTF-8' });
  });

  it('splits several challenges in one header and across headers', () => {
    const cs = parseWwwAuthenticate(['Bearer realm="https://a/token",service="a", Basic realm="b"', 'Negotiate abc==']);
    expect(cs.map((c) => c.scheme)).toEqual(['bearer', 'basic', 'negotiate']);
    expect(cs[0]?.params).toEqual({ realm: 'https://a/token', service: 'a' });
    expect(cs[1]?.params).toEqual({ realm: 'b' });
    expect(cs[2]?.token68).toBe('abc==');
    expect(findChallenge(cs, 'Basic')?.params['realm']).toBe('b');
  });

  it('reads a scheme without parameters and ignores empty input', () => {
    expect(parseWwwAuthenticate('Basic')).toEqual([{ scheme: 'basic', params: {} }]);
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate(undefined)).toEqual([]);
  });

  it('survives an unterminated quoted string', () => {
    const [c] = parseWwwAuthenticate('Bearer realm="https://x/token');
    expect(c?.params['realm']).toBe('https://x/token');
  });

  it('does not let a parameter named __proto__ touch the prototype', () => {
    const [c] = parseWwwAuthenticate('Bearer __proto__="x", realm="r"');
    expect(c?.params['realm']).toBe('r');
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
  });
});
