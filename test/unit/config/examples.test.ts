import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';

const dir = path.resolve(import.meta.dirname, '../../../config');

describe('example configs in config/', () => {
  it.each(readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f)))('%s validates', (file) => {
    const config = loadConfig({ argv: ['--config', path.join(dir, file)], env: {} });
    expect(config.cache.maxBytes).toBeGreaterThan(0);
  });
});
