/** cluster_status of an app running on its own, in-process (no cluster primary): the node alone, as leader. */
import { afterAll, describe, expect, it } from 'vitest';
import type { ClusterStatus } from '../../../src/cluster/cluster-status.ts';
import { loadConfig } from '../../../src/config/load.ts';
import { createOutpostApp } from '../../../src/process/node-app.ts';
import { createCleanupStack } from '../../support/cleanup.ts';
import { makeTempDir, removeTempDir } from '../../support/temp.ts';

const cleanup = createCleanupStack();
afterAll(() => cleanup.run());

describe('an in-process app', () => {
  it('lists itself alone as leader in cluster_status', async () => {
    const dir = await makeTempDir('standalone-status');
    cleanup.add(() => removeTempDir(dir));
    const config = loadConfig({
      env: { OUTPOST_CACHE_DIR: dir, OUTPOST_ADMIN_TOKEN: 'tok', OUTPOST_UPSTREAM_URL: 'http://127.0.0.1:9', OUTPOST_NODE_ID: 'inproc', OUTPOST_ADVERTISE_URL: 'http://inproc.office:5000', OUTPOST_LOG_LEVEL: 'silent' },
    });
    const app = await createOutpostApp(config);
    const port = await app.listen(0, '127.0.0.1');
    cleanup.add(() => app.close());
    const res = await fetch(`http://127.0.0.1:${port}/api/v0/meta/cluster_status`, { headers: { authorization: 'Bearer tok' } });
    expect(res.status).toBe(200);
    const status = (await res.json()) as ClusterStatus;
    expect(status).toMatchObject({ leader: 'inproc', replica_health: { inproc: 'OK' }, current_issues: [] });
    expect(status.replicas['inproc']).toMatchObject({ advertise_url: 'http://inproc.office:5000', hit_ratio: 0 });
  });
});
