/**
 * The status page's refresh: every few seconds it reads the status document
 * (prefetch jobs included) and re-renders the sections in place (no reload),
 * with the same renderer the server used for the first paint.
 */
import { renderSections } from './render.js';

const refreshMs = 3_000;
const dataPath = '/api/v0/meta/status_page';
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

async function refresh() {
  const data = await fetch(dataPath, { credentials: 'same-origin', headers: { accept: 'application/json' }, signal: AbortSignal.timeout(5_000) })
    .then(async (res) => {
      if (res.status === 401) {
        await res.body?.cancel();
        throw new Error('not signed in any more: reload the page');
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      return res.json();
    })
    .catch((err) => {
      showState(`Refresh failed (${err instanceof Error ? err.message : String(err)}); retrying`, true);
      return undefined;
    });
  if (data === undefined) return;
  for (const [id, html] of Object.entries(renderSections(data))) replace(id, html);
  const generated = document.getElementById('generated-at');
  if (generated !== null) generated.textContent = data.generated_at;
  showState(`Live: refreshes every ${refreshMs / 1000} s`, false);
}

async function loop() {
  await refresh();
  setTimeout(loop, refreshMs);
}

void loop();
