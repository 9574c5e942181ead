/** The configuration for a command, or its problems on stderr and exit code 2. */
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/types.ts';

export function configOrExit(argv: string[]): Config {
  try {
    return loadConfig({ argv, env: process.env, positionals: 'reject' });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // "Invalid configuration: ..." → "outpost: invalid configuration: ..."
    process.stderr.write(`outpost: ${err.message.replace(/^Invalid/, 'invalid')}\n`);
    process.exit(2);
  }
}
