import { describe, it, expect } from 'vitest';
import { FormatError, convictFormats, parseDuration, valueFormats } from '../../../src/config/formats.ts';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';
import { configError } from './config-error.ts';
import { configSchema, listSettings, parseRegistries } from '../../../src/config/schema.ts';

const {
  bytes: { parse: parseBytes },
  'strict-boolean': { parse: parseBoolean },
  fraction: { parse: parseFraction },
  url: { parse: parseHttpUrl },
  'log-level': { parse: parseLogLevel },
  'optional-string': { parse: parseOptionalString },
  'port-number': { parse: parsePort },
  'redis-url': { parse: parseRedisUrl },
  'string-list': { parse: parseStringList },
  'url-list': { parse: parseUrlList },
} = valueFormats;

function failure(run: () => unknown): FormatError {
  try {
    run();
  } catch (error) {
    if (error instanceof FormatError) return error;
    throw error;
  }
  throw new Error('expected a FormatError');
}

describe('parseBytes', () => {
  it.each([
    [0, 0],
    [1073741824, 1073741824],
    ['1073741824', 1073741824],
    ['0', 0],
    ['10GiB', 10 * 1024 ** 3],
    ['500MB', 500_000_000],
    ['10GB', 10_000_000_000],
    ['512KiB', 512 * 1024],
    ['100kb', 100_000],
    ['100KB', 100_000],
    ['64M', 64 * 1024 ** 2],
    ['64m', 64 * 1024 ** 2],
    ['512Mi', 512 * 1024 ** 2],
    ['2T', 2 * 1024 ** 4],
    ['1TB', 1e12],
    ['10 GiB', 10 * 1024 ** 3],
    ['  4MiB  ', 4 * 1024 ** 2],
    ['512B', 512],
    ['1.5GiB', 1.5 * 1024 ** 3],
  ])('reads %j as %d bytes', (input, expected) => {
    expect(parseBytes(input)).toBe(expected);
  });

  it('rounds a fractional multi-byte unit down to a whole byte', () => {
    expect(parseBytes('0.1KiB')).toBe(102);
  });

  it('computes decimal fractions exactly rather than in floating point', () => {
    // 1.005 * 1000 is 1004.9999999999999 in floating point.
    expect(parseBytes('1.005kB')).toBe(1005);
  });

  it.each([-1, '-1', '-1GiB', ' -5MB'])('rejects the negative size %j', (input) => {
    expect(failure(() => parseBytes(input)).reason).toMatch(/negative/);
  });

  it.each(['1.5', '1.5B', 1.5])('rejects the fraction of a byte %j', (input) => {
    expect(() => parseBytes(input)).toThrow(FormatError);
  });

  it.each(['lots', '', ' ', '10XB', '1e3', '10 GiB extra', 'GiB', '0x10', '+5', NaN, Infinity, null, undefined, true, {}, []])(
    'rejects %j',
    (input) => {
      expect(() => parseBytes(input)).toThrow(FormatError);
    },
  );

  it('rejects sizes beyond what a number holds exactly', () => {
    expect(failure(() => parseBytes('9999999TiB')).reason).toMatch(/too large/);
  });

  it('says what is allowed when it rejects a value', () => {
    const error = failure(() => parseBytes('lots'));
    expect(error.message).toContain('"lots"');
    expect(error.message).toContain('GiB');
    expect(error.message).toContain('MB');
    expect(error.allowed).toMatch(/whole number of bytes/);
  });
});

describe('parseDuration', () => {
  it.each([
    ['60s', 60_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['250ms', 250],
    ['1.5s', 1500],
    ['1m30s', 90_000],
    ['1h 30m', 5_400_000],
    ['0s', 0],
    ['0', 0],
    [' 45s ', 45_000],
  ])('reads %j as %d ms', (input, expected) => {
    expect(parseDuration(input)).toBe(expected);
  });

  it('reads a plain number as seconds, whether a number or a string', () => {
    expect(parseDuration(30)).toBe(30_000);
    expect(parseDuration('30')).toBe(30_000);
    expect(parseDuration(1.5)).toBe(1500);
    expect(parseDuration('0.25')).toBe(250);
  });

  it.each([-1, '-5s', '-1'])('rejects the negative duration %j', (input) => {
    expect(failure(() => parseDuration(input)).reason).toMatch(/negative/);
  });

  it('rejects a duration finer than a millisecond instead of rounding it', () => {
    expect(failure(() => parseDuration('1.0005s')).reason).toMatch(/whole number of milliseconds/);
  });

  it.each(['soon', '', '5x', '5 minutes', 'ms', 's5', '5S', '1m30', 'P1D', NaN, Infinity, null, undefined, {}, true])(
    'rejects %j',
    (input) => {
      expect(() => parseDuration(input)).toThrow(FormatError);
    },
  );

  it('says what is allowed when it rejects a value', () => {
    const error = failure(() => parseDuration('soon'));
    expect(error.message).toContain('"soon"');
    expect(error.message).toMatch(/seconds/);
    expect(error.message).toContain('250ms');
  });
});

describe('scalar formats', () => {
  it('reads ports from numbers and digit strings and rejects the rest', () => {
    expect(parsePort('5000')).toBe(5000);
    expect(parsePort(65535)).toBe(65535);
    expect(() => parsePort(65536)).toThrow(FormatError);
    expect(() => parsePort('50a')).toThrow(FormatError);
    expect(() => parsePort(-1)).toThrow(FormatError);
  });

  it('points at Kubernetes service links when a port looks like tcp://host:port', () => {
    expect(failure(() => parsePort('tcp://10.0.0.1:5000')).reason).toMatch(/enableServiceLinks/);
  });

  it('reads fractions between 0 and 1 only', () => {
    expect(parseFraction('0.85')).toBe(0.85);
    expect(parseFraction(1)).toBe(1);
    expect(() => parseFraction('1.5')).toThrow(FormatError);
    expect(() => parseFraction('-0.1')).toThrow(FormatError);
    expect(() => parseFraction('most')).toThrow(FormatError);
  });

  it('reads "no" and "off" as false rather than as a non-empty string', () => {
    expect(parseBoolean('no')).toBe(false);
    expect(parseBoolean('OFF')).toBe(false);
    expect(parseBoolean('true')).toBe(true);
    expect(parseBoolean(false)).toBe(false);
    expect(() => parseBoolean('disabled')).toThrow(FormatError);
  });

  it('treats empty and null optional strings as unset and refuses numbers', () => {
    expect(parseOptionalString('')).toBeUndefined();
    expect(parseOptionalString(null)).toBeUndefined();
    expect(parseOptionalString('x')).toBe('x');
    expect(() => parseOptionalString(12345)).toThrow(FormatError);
  });

  it('accepts pino levels only, case-insensitively', () => {
    expect(parseLogLevel('DEBUG')).toBe('debug');
    expect(() => parseLogLevel('verbose')).toThrow(FormatError);
  });
});

describe('URL formats', () => {
  it('strips trailing slashes from http(s) URLs', () => {
    expect(parseHttpUrl('https://registry.example.com/')).toBe('https://registry.example.com');
    expect(parseHttpUrl('http://registry:5000/prefix//')).toBe('http://registry:5000/prefix');
  });

  it('rejects other schemes, credentials, queries and non-URLs', () => {
    expect(() => parseHttpUrl('ftp://example.com')).toThrow(/scheme/);
    expect(() => parseHttpUrl('https://user:pw@example.com')).toThrow(/credentials/);
    expect(() => parseHttpUrl('https://example.com/?a=1')).toThrow(/query/);
    expect(() => parseHttpUrl('registry.example.com')).toThrow(FormatError);
  });

  it('accepts redis and rediss URLs, empty meaning none', () => {
    expect(parseRedisUrl('redis://:pw@redis:6379/0')).toBe('redis://:pw@redis:6379/0');
    expect(parseRedisUrl('')).toBeUndefined();
    expect(() => parseRedisUrl('http://redis:6379')).toThrow(/scheme/);
  });

  it('splits comma lists, trims items and drops empty ones', () => {
    expect(parseStringList(' a, b ,,c ,')).toEqual(['a', 'b', 'c']);
    expect(parseStringList(['x ', '', ' y'])).toEqual(['x', 'y']);
    expect(parseStringList('')).toEqual([]);
    expect(() => parseStringList([1])).toThrow(FormatError);
  });

  it('locates the bad item of a URL list', () => {
    expect(parseUrlList('http://etcd-1:2379/, http://etcd-2:2379')).toEqual(['http://etcd-1:2379', 'http://etcd-2:2379']);
    expect(failure(() => parseUrlList('http://etcd-1:2379,etcd-2')).path).toBe('[1]');
  });
});

describe('parseRegistries', () => {
  const entry = { host: 'ghcr.io', url: 'https://ghcr.io/' };

  it('parses entries with units, leaving unset fields for the loader to default', () => {
    const [registry] = parseRegistries([{ ...entry, connectTimeout: '2s', retries: 0, insecure: 'no' }]);
    expect(registry).toMatchObject({ host: 'ghcr.io', url: 'https://ghcr.io', connectTimeoutMs: 2000, retries: 0, insecure: false });
    expect(registry?.headersTimeoutMs).toBeUndefined();
    expect(registry?.password).toBeUndefined();
  });

  it('rejects an unknown key, naming it without showing its value', () => {
    const error = failure(() => parseRegistries([entry, { ...entry, host: 'quay.io', passwd: 'hunter2' }]));
    expect(error.path).toBe('[1].passwd');
    expect(error.valueHidden).toBe(true);
    expect(error.message).not.toContain('hunter2');
  });

  it('requires host and url', () => {
    expect(failure(() => parseRegistries([{ url: 'https://ghcr.io' }])).path).toBe('[0].host');
    expect(failure(() => parseRegistries([{ host: 'ghcr.io' }])).path).toBe('[0].url');
  });

  it('rejects the same host twice, whatever its case', () => {
    expect(failure(() => parseRegistries([entry, { ...entry, host: 'GHCR.io' }])).reason).toMatch(/duplicate/);
  });

  it('rejects a zero timeout and a non-list', () => {
    expect(failure(() => parseRegistries([{ ...entry, headersTimeout: 0 }])).path).toBe('[0].headersTimeout');
    expect(() => parseRegistries({ host: 'ghcr.io' })).toThrow(FormatError);
  });
});

describe('values from the environment (strings)', () => {
  const machine = { hostname: 'outpost-test-host', cpus: 2 };
  const withEnv = listSettings(configSchema(machine)).filter(({ setting }) => setting.env !== undefined);
  const asEnv = (value: unknown): string => (Array.isArray(value) ? value.join(',') : value === null ? '' : String(value));

  it('mean what the same values mean in the file: every default, written as an env string, loads to the defaults', () => {
    const env = Object.fromEntries(withEnv.map(({ setting }) => [setting.env!, asEnv(setting.default)]));
    expect(loadConfig({ machine, env })).toEqual(loadConfig({ machine }));
  });

  it('are reported with the key that holds them when they cannot be read, never as a crash', () => {
    for (const { key, setting } of withEnv) {
      try {
        loadConfig({ machine, env: { [setting.env!]: '{{garbage' } });
      } catch (error) {
        expect(error, key).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).problems.some((problem) => problem.key === key || problem.key?.startsWith(`${key}[`)), key).toBe(true);
      }
    }
    expect(configError(() => loadConfig({ machine, env: { OUTPOST_CACHE_MAX_BYTES: 'lots' } })).value).toBe('lots');
  });

  it('read a duration string with the meaning parseDuration gives it', () => {
    for (const text of ['30', '1m30s', '250ms']) {
      expect(loadConfig({ machine, env: { OUTPOST_TAG_TTL: text } }).tags.ttlMs).toBe(parseDuration(text));
    }
  });

  it('register every format with convict, as a validator', () => {
    for (const [name, format] of Object.entries(convictFormats)) expect(format.validate, name).toBeTypeOf('function');
    expect(() => convictFormats['bytes']?.validate?.('10GB', undefined as never)).not.toThrow();
    expect(() => convictFormats['bytes']?.validate?.('lots', undefined as never)).toThrow(FormatError);
  });
});

