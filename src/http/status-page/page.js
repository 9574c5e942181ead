/**
 * The status page's refresh: every few seconds it reads the status document
 * and the prefetch jobs and re-renders the sections in place (no reload),
 * with the same renderer the server used for the first paint.
 */
import { renderJobs, renderSections } from './render.js';

const refreshMs = 3_000;
const dataPath = '/api/v0/meta/status_page';
const jobsPath = '/api/v0/prefetch/jobs';
/** A node without prefetch answers 404: asked again only this often (each 404 is a console line in the browser). */
const jobsAbsentRecheckMs = 60_000;
let jobsAbsentUntil = 0;
/** What the last look at the jobs found (shown again while backing off). */
let lastJobs = null;

/** What each section shows now: an unchanged section is left alone (no flicker, selection kept). */
const shown = new Map();

/** @param {string} id @param {string} html */
function replace(id, html) {
  const el = document.getElementById(id);
  if (el !== null && shown.get(id) !== html) {
    el.innerHTML = html;
    shown.set(id, html);
  }
}

/** @param {string} text @param {boolean} failing */
function showState(text, failing) {
  const el = document.getElementById('refresh-state');
  if (el === null) return;
  el.textContent = text;
  el.classList.toggle('failing', failing);
}

async function readJobs() {
  if (Date.now() < jobsAbsentUntil) return lastJobs;
  lastJobs = await askJobs();
  return lastJobs;
}

async function askJobs() {
  try {
    const res = await fetch(jobsPath, { credentials: 'same-origin', headers: { accept: 'application/json' }, signal: AbortSignal.timeout(5_000) });
    if (res.status === 404) {
      await res.body?.cancel();
      jobsAbsentUntil = Date.now() + jobsAbsentRecheckMs;
      return null;
    }
    if (res.status === 405) {
      // The admin API is off (no OUTPOST_ADMIN_TOKEN): the jobs cannot be read here.
      await res.body?.cancel();
      jobsAbsentUntil = Date.now() + jobsAbsentRecheckMs;
      return 'the admin API is off on this node (set OUTPOST_ADMIN_TOKEN)';
    }
    if (!res.ok) {
      await res.body?.cancel();
      return `HTTP ${res.status}`;
    }
    const body = await res.json();
    return body !== null && typeof body === 'object' && Array.isArray(body.jobs) ? body : 'unexpected answer';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

async function refresh() {
  const [data, jobs] = await Promise.all([
    fetch(dataPath, { credentials: 'same-origin', headers: { accept: 'application/json' }, signal: AbortSignal.timeout(5_000) }).then(async (res) => {
      if (res.status === 401) {
        await res.body?.cancel();
        throw new Error('not signed in any more: reload the page');
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      return res.json();
    }),
    readJobs(),
  ]).catch((err) => {
    showState(`Refresh failed (${err instanceof Error ? err.message : String(err)}); retrying`, true);
    return [undefined, undefined];
  });
  if (data === undefined) return;
  for (const [id, html] of Object.entries(renderSections(data))) replace(id, html);
  replace('sec-jobs', renderJobs(jobs));
  const generated = document.getElementById('generated-at');
  if (generated !== null) generated.textContent = data.generated_at;
  showState(`Live: refreshes every ${refreshMs / 1000} s`, false);
}

async function loop() {
  await refresh();
  setTimeout(loop, refreshMs);
}

void loop();
