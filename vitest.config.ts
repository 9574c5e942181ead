import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Installs the Debian packages in test/system-packages.txt that are
    // missing (as root), or stops with the list of what to install.
    globalSetup: ['test/support/system-packages-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Integration suites start real registries and servers; keep them from
    // starving each other on a 2-core machine.
    fileParallelism: true,
    maxWorkers: 2,
    pool: 'forks',
  },
});
