// throwaway experiment: cost of pipeline stages for a 256 MiB download
import http from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { request, Agent } from 'undici';
const file = '/tmp/exp/blob.bin';
const size = statSync(file).size;
const server = http.createServer((req, res) => { res.writeHead(200, { 'content-length': size }); createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res); });
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as any).port;
const agent = new Agent({});
function cpu() { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; }
function pf() { return process.resourceUsage().minorPageFault; }
async function run(stage: string) {
  const t0 = performance.now(); const c0 = cpu(); const f0 = pf(); const s0 = process.cpuUsage().system;
  const { body } = await request(`http://127.0.0.1:${port}/`, { dispatcher: agent });
  const hash = createHash('sha256');
  const h = stage.includes('write') ? await open('/tmp/exp/out.bin', 'w') : undefined;
  let pos = 0; let n = 0; let copies = 0;
  for await (const chunk of body) {
    n++;
    if (stage.includes('hash')) hash.update(chunk);
    if (stage.includes('copy')) { const c = hash.copy(); copies++; }
    if (h) { await h.write(chunk, 0, chunk.length, pos); }
    pos += chunk.length;
  }
  if (h && stage.includes('sync')) await h.datasync();
  await h?.close();
  const t = performance.now() - t0; const c = cpu() - c0;
  console.log(stage.padEnd(24), `${t.toFixed(0)} ms`, `proc cpu ${c.toFixed(2)} s (incl server)`, `faults ${pf()-f0} sys ${((process.cpuUsage().system-s0)/1e6).toFixed(2)}`, `chunks ${n} avg ${(pos / n / 1024).toFixed(0)} KiB`);
}
for (let r = 0; r < 2; r++) for (const s of ['plain', 'hash', 'hash+copy', 'hash+write', 'hash+write+sync']) await run(s);
server.close(); await agent.close(); await rm('/tmp/exp/out.bin', { force: true });
