/**
 * Makes the README's screenshot of the status page (docs/status-page.png)
 * against a demo replica set: the browser test's two-replica cluster, a few
 * images pulled cold and warm through both replicas, then headless Chromium
 * signed in with the admin token.
 *
 *   node --import tsx test/support/status-page-screenshot.ts [OUT.png] [--width=1280] [--rounds=2] [--gap=11]
 *
 * `--rounds` rounds of pulls `--gap` seconds apart: rounds a minute apart
 * give the hour chart one bar per minute.
 */
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { launchChromium } from './browser.ts';
import { startStatusPageCluster } from './status-page-cluster.ts';
import { waitFor } from './wait.ts';

const args = process.argv.slice(2);
const out = resolve(args.find((a) => !a.startsWith('--')) ?? 'docs/status-page.png');
const option = (name: string, fallback: number): number => Number(args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback);
const width = option('width', 1280);
const rounds = option('rounds', 2);
const gapMs = option('gap', 11) * 1000;

const cluster = await startStatusPageCluster();
try {
  const [n1, n2] = cluster.nodes as [(typeof cluster.nodes)[number], (typeof cluster.nodes)[number]];
  const images: Array<[string, string, number[]]> = [
    ['library/nginx', '1.27', [1_800_000, 600_000, 90_000]],
    ['library/alpine', '3.20', [900_000]],
    ['team/api', '2.4.1', [2_500_000, 400_000]],
    ['team/web', 'latest', [700_000, 300_000]],
  ];
  for (const [repo, tag, layers] of images) await cluster.push(repo, tag, layers);
  // The first round is cold on n1; later ones pull a few images again (cache hits).
  for (let round = 0; round < rounds; round++) {
    if (round > 0) await new Promise((r) => setTimeout(r, gapMs));
    for (const [repo, tag] of round === 0 ? images : images.slice(0, 1 + (round % images.length))) {
      await cluster.pull(n1, repo, tag);
      await cluster.pull(n2, repo, tag);
    }
    await cluster.pull(n1, 'library/nginx', '1.27');
  }
  // Sampled every 10 s: the last round shows once a sample after it is taken.
  await new Promise((r) => setTimeout(r, 11_000));
  const browser = await launchChromium();
  try {
    const { page, errors } = await browser.open({ width, height: 900, extraHTTPHeaders: { authorization: `Bearer ${cluster.adminToken}` } });
    await page.goto(`${n1.url}/status`);
    // The primary samples every 10 s: wait until the chart shows the traffic.
    await waitFor(async () => (await page.locator('#sec-chart rect').count()) > 0, { what: 'the hour chart to show the pulls', timeoutMs: 30_000, intervalMs: 500 });
    await page.locator('#jobs-none, #jobs').first().waitFor();
    await mkdir(dirname(out), { recursive: true });
    await page.screenshot({ path: out, fullPage: true });
    console.log(`wrote ${out}${errors.length > 0 ? ` (browser console: ${errors.join('; ')})` : ''}`);
  } finally {
    await browser.close();
  }
} finally {
  await cluster.dispose();
}
