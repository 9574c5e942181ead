import { ConfigError } from '../../../src/config/load.ts';

/** The ConfigError `run` throws (any other error is rethrown; none fails the test). */
export function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}
