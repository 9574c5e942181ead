/** The configuration a worker runs comes from the primary, over IPC, as the primary loaded it. */
import { EventEmitter } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../../src/config/load.ts';
import { isWorkerConfigMessage, receiveWorkerConfig, workerConfigMessage } from '../../../src/process/worker-config.ts';
import { writeHtpasswd } from '../../support/htpasswd.ts';

const machine = { hostname: 'outpost-test-host', cpus: 2 };
let dir: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outpost-worker-config-'));
});
afterEach(async () => {
  vi.useRealTimers();
  await fs.rm(dir, { recursive: true, force: true });
});

/** A process-like IPC channel. */
class Channel extends EventEmitter {
  deliver(message: unknown): void {
    this.emit('message', message);
  }
}

describe('workerConfigMessage', () => {
  it('carries every setting across the IPC channel (JSON) unchanged', async () => {
    const htpasswd = path.join(dir, 'htpasswd');
    await writeHtpasswd(htpasswd, [{ username: 'alice', password: 'alice-secret' }]);
    const file = path.join(dir, 'outpost.yaml');
    await fs.writeFile(
      file,
      `registries:
  - {host: ghcr.io, url: https://ghcr.io, password: ghcr-token, username: bot}
auth:
  mode: basic
  htpasswd: ${htpasswd}
  groups: {developers: [alice]}
  anonymous: ["library/*"]
  rules: [{repositories: ["team-a/*"], groups: [developers], upstreams: [ghcr.io]}]
prefetch:
  - {name: nightly, schedule: "0 3 * * *", images: ["library/alpine:3.*"], updatedWithinDays: 7}
cache:
  pins: [library/nginx:1.27]
  retentionRules: [{repositories: ["ci/*"], unusedFor: 168h}]
`,
    );
    const config = loadConfig({ machine, file, env: { OUTPOST_UPSTREAM_PASSWORD: 'hub-secret', OUTPOST_REDIS_URL: 'redis://:pw@127.0.0.1:6379/0' } });
    const received = JSON.parse(JSON.stringify(workerConfigMessage(config))) as unknown;
    expect(isWorkerConfigMessage(received)).toBe(true);
    // toEqual: an unset setting (undefined) arrives absent, which readers treat alike.
    expect((received as { config: unknown }).config).toEqual(config);
    expect(config.auth.rules[0]?.upstreams).toEqual(['ghcr.io']); // the fixture reaches the nested settings
  });
});

describe('receiveWorkerConfig', () => {
  it('resolves with the first configuration message, ignoring other messages, and stops listening', async () => {
    const channel = new Channel();
    const config = loadConfig({ machine });
    const received = receiveWorkerConfig(1_000, channel);
    channel.deliver({ t: 'fill.granted', key: 'x' });
    channel.deliver({ t: 'worker.config' }); // no config: not the message
    channel.deliver(workerConfigMessage(config));
    await expect(received).resolves.toEqual(config);
    expect(channel.listenerCount('message')).toBe(0);
  });

  it('rejects when the primary sends none in time, and stops listening', async () => {
    vi.useFakeTimers();
    const channel = new Channel();
    const received = receiveWorkerConfig(30_000, channel);
    const outcome = expect(received).rejects.toThrow('the cluster primary sent no configuration within 30000 ms');
    await vi.advanceTimersByTimeAsync(30_000);
    await outcome;
    expect(channel.listenerCount('message')).toBe(0);
  });
});
