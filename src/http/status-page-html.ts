/**
 * The status page's HTML documents: the page itself (every section rendered
 * server-side, so `curl` shows the replicas and the cache use; page.js then
 * refreshes the sections in place) and the sign-in form shown instead when
 * an admin token is configured and the request does not bear it. Pure.
 */
import type { StatusPageData } from '../cluster/status-page-data.ts';
import { escapeHtml, renderSections } from './status-page/render.js';

export const assetsPath = '/status/assets/';
export const loginPath = '/status/login';
export const logoutPath = '/status/logout';

function head(title: string, script: boolean): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${assetsPath}page.css">
${script ? `<script type="module" src="${assetsPath}page.js"></script>` : ''}
</head>`;
}

export interface PageOptions {
  /** A sign-out button (only when an admin token is configured). */
  signedIn: boolean;
  /** Why the data could not be gathered (the page shows it instead). */
  problem?: string;
}

export function renderStatusPage(data: StatusPageData | undefined, nodeId: string, options: PageOptions): string {
  const sections = data === undefined ? undefined : renderSections(data);
  const section = (id: keyof NonNullable<typeof sections>, title: string): string =>
    `<section aria-labelledby="${id}-h"><h2 id="${id}-h">${escapeHtml(title)}</h2><div id="${id}">${sections?.[id] ?? '<p class="muted">Not available yet.</p>'}</div></section>`;
  return `${head(`Outpost status: ${nodeId}`, true)}
<body>
<header>
<h1>Outpost status</h1>
<span class="muted">node <strong>${escapeHtml(nodeId)}</strong> · as of <time id="generated-at">${escapeHtml(data?.generated_at ?? '–')}</time></span>
<span id="refresh-state">Live: refreshes every 3 s</span>
${options.signedIn ? `<form method="post" action="${logoutPath}"><button type="submit">Sign out</button></form>` : ''}
</header>
<main>
<section aria-labelledby="sec-issues-h" class="issues-section"><h2 id="sec-issues-h">Current issues</h2><div id="sec-issues">${
    options.problem !== undefined ? `<p class="issue critical">${escapeHtml(options.problem)}</p>` : (sections?.['sec-issues'] ?? '')
  }</div></section>
${section('sec-replicas', 'Replicas')}
${section('sec-cache', 'Cache')}
${section('sec-chart', 'Last hour (this node, per minute)')}
${section('sec-repos', 'Top repositories')}
${section('sec-pulls', 'Recent pulls')}
${section('sec-jobs', 'Prefetch jobs')}
</main>
</body>
</html>
`;
}

/** The sign-in form: nothing about the cache, the replicas or the pulls. */
export function renderLoginPage(nodeId: string, error: string | undefined): string {
  return `${head(`Outpost status: ${nodeId}`, false)}
<body>
<main class="login">
<h1>Outpost status</h1>
<p>This node's status page needs the admin token (<code>OUTPOST_ADMIN_TOKEN</code>).</p>
${error === undefined ? '' : `<p class="error" id="login-error" role="alert">${escapeHtml(error)}</p>`}
<form method="post" action="${loginPath}" id="login">
<label for="token">Admin token</label>
<input type="password" id="token" name="token" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
`;
}
