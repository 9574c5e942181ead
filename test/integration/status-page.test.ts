/**
 * The status page in a real browser: headless Chromium from Debian, driven
 * by playwright-core, against a live two-replica set (real etcd, Redis, a
 * distribution registry as the primary, skopeo as the client).
 *
 * The tests run in order on one replica set and one signed-in page: the
 * page is opened once and never reloaded, so what changes on it after the
 * pulls came through its own refresh.
 */
import { join } from 'node:path';
import { stat } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, type BrowserPage, type TestBrowser } from '../support/browser.ts';
import { startStatusPageCluster, type StatusPageCluster } from '../support/status-page-cluster.ts';
import { createCleanupStack } from '../support/cleanup.ts';
import { makeTempDir, removeTempDir } from '../support/temp.ts';
import { waitFor } from '../support/wait.ts';

const cleanup = createCleanupStack();
let cluster: StatusPageCluster;
let browser: TestBrowser;
let shots: string;
/** The signed-in page, shared by the tests below (never reloaded). */
let signedIn: BrowserPage;

beforeAll(async () => {
  shots = await makeTempDir('status-page-shots');
  cleanup.add(() => removeTempDir(shots));
  cluster = await startStatusPageCluster();
  cleanup.add(() => cluster.dispose());
  browser = await launchChromium();
  cleanup.add(() => browser.close());
}, 180_000);
afterAll(() => cleanup.run(), 60_000);

const n1 = (): StatusPageCluster['nodes'][number] => cluster.nodes[0]!;

/** What the page logged as errors (console errors and uncaught exceptions). */
async function pageErrors(page: BrowserPage): Promise<string[]> {
  return page.errors;
}

describe('status page', () => {
  it('answers curl with the admin token with an HTML page listing every replica and the cache use', async () => {
    const res = await fetch(`${n1().url}/`, { headers: { authorization: `Bearer ${cluster.adminToken}` }, signal: AbortSignal.timeout(10_000) });
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(html).toContain('data-replica="n1"');
    expect(html).toContain('data-replica="n2"');
    expect(html).toMatch(/<span id="cache-used">[^<]+<\/span> of <span id="cache-max">64 MiB<\/span> used/);
    expect(html).toContain('<span class="badge leader">leader</span>');
    // The prefetch jobs are in the first paint too (from any replica).
    expect(html).toContain('nightly-base');
    // The same document as JSON, for the page's refresh.
    const data = await fetch(`${n1().url}/api/v0/meta/status_page`, { headers: { authorization: `Bearer ${cluster.adminToken}` }, signal: AbortSignal.timeout(10_000) });
    const doc = (await data.json()) as { node_id: string; cluster: { replicas: Record<string, unknown> }; cache: { max_bytes: number } };
    expect(doc.node_id).toBe('n1');
    expect(Object.keys(doc.cluster.replicas).sort()).toEqual(['n1', 'n2']);
    expect(doc.cache.max_bytes).toBe(64 * 1024 * 1024);
    expect((doc as unknown as { jobs: Array<{ name: string }> }).jobs.map((job) => job.name)).toEqual(['nightly-base']);
  });

  it('shows nothing of the cache without the token: curl gets the sign-in form, the data endpoint 401', async () => {
    for (const path of ['/', '/status']) {
      const res = await fetch(`${n1().url}${path}`, { signal: AbortSignal.timeout(10_000) });
      const html = await res.text();
      expect(res.status).toBe(401);
      expect(html).toContain('<form method="post" action="/status/login" id="login">');
      expect(html).not.toContain('data-replica');
      expect(html).not.toContain('cache-used');
    }
    const forged = await fetch(`${n1().url}/api/v0/meta/status_page`, { headers: { cookie: 'outpost_admin=forged' }, signal: AbortSignal.timeout(10_000) });
    await forged.body?.cancel();
    expect(forged.status).toBe(401);
    const wrong = await fetch(`${n1().url}/api/v0/meta/status_page`, { headers: { authorization: 'Bearer wrong' }, signal: AbortSignal.timeout(10_000) });
    await wrong.body?.cancel();
    expect(wrong.status).toBe(401);
  });

  it('in Chromium, asks for the token, refuses a wrong one, and signs in with an HttpOnly cookie', async () => {
    const visitor = await browser.open();
    const first = await visitor.page.goto(`${n1().url}/status`);
    expect(first?.status()).toBe(401);
    await expect(visitor.page.locator('#token').isVisible()).resolves.toBe(true);
    expect(await visitor.page.locator('#sec-cache, #sec-replicas, [data-replica]').count()).toBe(0);

    await visitor.page.fill('#token', 'not-the-token');
    const [refused] = await Promise.all([visitor.page.waitForNavigation(), visitor.page.click('button[type=submit]')]);
    expect(refused?.status()).toBe(401);
    expect(await visitor.page.locator('#login-error').textContent()).toContain('not the admin token');
    expect(await visitor.page.locator('[data-replica]').count()).toBe(0);

    await visitor.page.fill('#token', cluster.adminToken);
    await Promise.all([visitor.page.waitForNavigation(), visitor.page.click('button[type=submit]')]);
    expect(new URL(visitor.page.url()).pathname).toBe('/status');
    await visitor.page.locator('[data-replica="n2"]').waitFor();
    const cookies = await visitor.context.cookies();
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ name: 'outpost_admin', httpOnly: true, sameSite: 'Strict' });
    expect(cookies[0]!.value).not.toContain(cluster.adminToken);
    // Script cannot read it.
    expect(await visitor.page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie)).toBe('');
    // The browser logged the two 401 answers of the sign-in form (its own status); nothing since.
    visitor.errors.length = 0;
    signedIn = visitor;
    await screenshot(signedIn, 'signed-in.png');
  });

  it('in Chromium, renders both replicas and the cache numbers of the live set', async () => {
    const { page } = signedIn;
    const replicas = await page.locator('[data-replica]').evaluateAll((els) => els.map((el) => el.getAttribute('data-replica')));
    expect(replicas).toEqual(['n1', 'n2']);
    for (const id of ['n1', 'n2']) {
      const card = page.locator(`[data-replica="${id}"]`);
      expect(await card.locator('.health').textContent()).toBe('OK');
      expect(await card.locator('.version').textContent()).toMatch(/^\d+\.\d+\.\d+/);
      expect(await card.locator('.cache-bytes').textContent()).toContain('of 64 MiB');
    }
    expect(await page.locator('.badge.leader').count()).toBe(1);
    expect(await page.locator('#cache-max').textContent()).toBe('64 MiB');
    expect(await page.locator('#sec-issues').textContent()).toContain('No current issues');
    // The demo set's prefetch job ran at start, on the leader; every replica's page shows its run.
    await waitFor(async () => (await page.locator('#jobs tr.job .result').textContent()) === 'succeeded', {
      what: 'the prefetch job to show a succeeded run',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const job = await page.locator('#jobs tr.job').textContent();
    expect(job).toContain('nightly-base');
    expect(job).toContain('0 3 * * *');
    expect(job).toContain('1/1 images');
  });

  it('in Chromium, the hit ratio, the cache use and the recent pulls change after pulls, without a reload', async () => {
    const { page } = signedIn;
    // A mark in the page's JavaScript realm: a reload would lose it.
    await page.evaluate(() => {
      (globalThis as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    const before = {
      hitRatio: await page.locator('#hit-ratio').textContent(),
      used: await page.locator('#cache-used').textContent(),
      pulls: await page.locator('#recent-pulls tr.pull').count(),
    };
    expect(before.pulls).toBe(0);
    await cluster.push('status/app', 'v1', [400_000, 200_000]);
    await cluster.pull(n1(), 'status/app', 'v1'); // cold: misses, fetched from the primary
    await cluster.pull(n1(), 'status/app', 'v1'); // warm: hits from disk

    // Bounded waits on the DOM (the page refreshes every 3 s).
    await expect.poll(async () => Number(await page.locator('#hit-ratio').getAttribute('data-value')), { timeout: 20_000, interval: 200 }).toBeGreaterThan(0);
    await expect
      .poll(async () => (await page.locator('#recent-pulls tr.pull', { hasText: 'status/app:v1' }).count()), { timeout: 20_000, interval: 200 })
      .toBeGreaterThanOrEqual(2);
    expect(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    const hitRatio = await page.locator('#hit-ratio').textContent();
    expect(hitRatio).not.toBe(before.hitRatio);
    expect(hitRatio).toMatch(/^\d+\.\d%$/);
    const rows = await Promise.all((await page.locator('#recent-pulls tr.pull').all()).map((tr) => tr.locator('td').allTextContents()));
    const ours = rows.filter((r) => r[1] === 'status/app:v1');
    expect(ours.length).toBeGreaterThanOrEqual(2);
    expect(ours.map((r) => r[3])).toContain('miss');
    expect(ours.map((r) => r[3])).toContain('hit');
    for (const r of ours) {
      expect(r[2]).toMatch(/127\.0\.0\.1/);
      expect(r[4]).toBe('n1'); // the replica that answered
    }
    // The cache holds the image now, and the top repositories name it.
    await expect.poll(() => page.locator('#cache-used').textContent(), { timeout: 20_000, interval: 200 }).not.toBe('0 B');
    expect(await page.locator('#cache-used').textContent()).not.toBe(before.used);
    expect(await page.locator('#top-pulls td.repo').first().textContent()).toBe('status/app');
    expect(await page.locator('#top-bytes td.repo').first().textContent()).toBe('status/app');
    expect(await page.locator('#served-cache').textContent()).not.toBe('0 B');
    // The hour chart gets a bar once the primary's next sample (every 10 s) has seen the traffic.
    await page.locator('#sec-chart rect.c-cache').first().waitFor({ timeout: 25_000 });
    await page.locator('#sec-chart rect.c-upstream').first().waitFor({ timeout: 25_000 });
    expect(await pageErrors(signedIn)).toEqual([]);
    await screenshot(signedIn, 'after-pulls.png');
  });

  it('in Chromium, shows the other replica\'s pulls too, merged through Redis and naming the replica', async () => {
    const { page } = signedIn;
    expect(await page.locator('#sec-pulls .scope').textContent()).toContain('on every replica');
    await cluster.push('status/other', 'v2', [100_000]);
    await cluster.pull(cluster.nodes[1]!, 'status/other', 'v2');
    const row = page.locator('#recent-pulls tr.pull', { hasText: 'status/other:v2' });
    await expect.poll(() => row.count(), { timeout: 20_000, interval: 200 }).toBe(1);
    expect((await row.locator('td').allTextContents())[4]).toBe('n2');
    await expect.poll(() => page.locator('#top-bytes td.repo').allTextContents(), { timeout: 20_000, interval: 200 }).toContain('status/other');
    expect(await pageErrors(signedIn)).toEqual([]);
  });

  it('fits a 375 px wide phone screen without sideways scrolling', async () => {
    const { page } = signedIn;
    await page.setViewportSize({ width: 375, height: 800 });
    const width = await page.evaluate(() => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth);
    expect(width).toBeLessThanOrEqual(375);
    await screenshot(signedIn, 'phone.png');
    expect(await pageErrors(signedIn)).toEqual([]);
  });
});

async function screenshot(page: BrowserPage, name: string): Promise<void> {
  const path = join(shots, name);
  await page.page.screenshot({ path, fullPage: true });
  expect((await stat(path)).size).toBeGreaterThan(10_000);
}
