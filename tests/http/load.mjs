// A bounded load test on loopback: CONCURRENCY streaming clients send REQUESTS
// chats in all, then it stops by itself. Every stream must be well formed (role
// chunk first, JSON chunks with one id, a finish_reason, `data: [DONE]` last),
// none may fail or take longer than its deadline, and the server's memory must
// come back to its idle level. Prints requests/s and p50/p99 time to first token.
// Usage: node load.mjs BASE_URL SERVER_PID [REQUESTS] [CONCURRENCY]
import fs from 'node:fs';

const [baseURL, pid, requestsArg, concurrencyArg] = process.argv.slice(2);
const REQUESTS = Number(requestsArg ?? 48), CONCURRENCY = Number(concurrencyArg ?? 4), MAX_TOKENS = 24;
const DEADLINE_MS = 60000;

function rssKiB() {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
  return Number(m[1]);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const model = (await (await fetch(`${baseURL}/v1/models`)).json()).data[0].id;

async function one(index) {
  const start = performance.now();
  const response = await fetch(`${baseURL}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    signal: AbortSignal.timeout(DEADLINE_MS),
    body: JSON.stringify({
      model, stream: true, max_tokens: MAX_TOKENS, temperature: 0.8, seed: index,
      messages: [{ role: 'user', content: `Request ${index}: tell me something about the number ${index * 7}.` }],
    }),
  });
  if (response.status !== 200) throw new Error(`request ${index}: HTTP ${response.status} ${await response.text()}`);
  if (!response.headers.get('content-type').startsWith('text/event-stream')) throw new Error('not an event stream');
  const decoder = new TextDecoder();
  let buffer = '', firstToken = null, events = [], done = false;
  for await (const bytes of response.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!event.startsWith('data: ')) throw new Error(`request ${index}: not a data line: ${event.slice(0, 80)}`);
      const data = event.slice(6);
      if (done) throw new Error(`request ${index}: data after [DONE]`);
      if (data === '[DONE]') { done = true; continue; }
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(`request ${index}: error event ${data}`);
      if (firstToken === null && chunk.choices[0]?.delta?.content !== undefined) firstToken = performance.now() - start;
      events.push(chunk);
    }
  }
  if (!done || buffer.length) throw new Error(`request ${index}: stream did not end with [DONE]`);
  if (events[0].choices[0].delta.role !== 'assistant') throw new Error(`request ${index}: first chunk has no role`);
  if (new Set(events.map((e) => e.id)).size !== 1) throw new Error(`request ${index}: several ids`);
  const last = events[events.length - 1].choices[0];
  if (!['stop', 'length'].includes(last.finish_reason)) throw new Error(`request ${index}: no finish_reason`);
  const contents = events.slice(1, -1).length;
  if (contents < 1 || contents > MAX_TOKENS) throw new Error(`request ${index}: ${contents} content chunks`);
  return { firstToken, total: performance.now() - start };
}

// warm up, then the idle memory level
await one(-1);
await sleep(500);
const idleBefore = rssKiB();
let next = 0, failures = [], results = [];
const started = performance.now();
let peak = idleBefore;
const sampler = setInterval(() => { peak = Math.max(peak, rssKiB()); }, 100);
await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
  while (next < REQUESTS) {
    const index = next++;
    try { results.push(await one(index)); } catch (e) { failures.push(String(e)); }
  }
}));
const seconds = (performance.now() - started) / 1000;
clearInterval(sampler);
// back to idle: nothing running or queued, memory near where it started
let health;
for (let i = 0; i < 50; i++) {
  health = await (await fetch(`${baseURL}/health`)).json();
  if (health.active === 0 && health.queued === 0) break;
  await sleep(100);
}
await sleep(1000);
const idleAfter = rssKiB();
const ttft = results.map((r) => r.firstToken).sort((a, b) => a - b);
const pct = (p) => ttft[Math.min(ttft.length - 1, Math.floor((p / 100) * ttft.length))];
console.log(`load: ${results.length}/${REQUESTS} streams ok, ${failures.length} failed, concurrency ${CONCURRENCY}, ` +
  `${MAX_TOKENS} tokens each`);
console.log(`load: ${(results.length / seconds).toFixed(2)} requests/s, ` +
  `${((results.length * MAX_TOKENS) / seconds).toFixed(1)} tokens/s, time to first token p50 ${pct(50).toFixed(1)} ms, ` +
  `p99 ${pct(99).toFixed(1)} ms`);
console.log(`load: server RSS idle ${(idleBefore / 1024).toFixed(1)} MiB, peak ${(peak / 1024).toFixed(1)} MiB, ` +
  `after ${(idleAfter / 1024).toFixed(1)} MiB`);
for (const f of failures.slice(0, 5)) console.log(`load: ${f}`);
let ok = failures.length === 0 && results.length === REQUESTS && health.active === 0 && health.queued === 0;
// "back to idle": within 10% + 8 MiB of the level before the load
if (idleAfter > idleBefore * 1.1 + 8192) {
  console.log('load: FAIL memory did not come back to its idle level');
  ok = false;
}
console.log(ok ? 'load: PASS' : 'load: FAIL');
process.exit(ok ? 0 : 1);
