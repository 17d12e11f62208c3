// The web page's end-to-end test (tests/web/run.sh): drives the page served
// by `g3n serve --demo` in Debian's headless Chromium through playwright-core,
// with Chromium's fake camera and microphone fed from files.
// Usage: node page.mjs BASE_URL REPO ARTIFACTS_DIR CAMERA.mjpeg|.y4m MICROPHONE.wav
// Every wait is bounded; a watchdog ends the run if anything still hangs.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [base, repo, artifacts, camera, microphone] = process.argv.slice(2);
const WAIT = 150_000; // the longest any one step may take (a frame costs ~3 s on 2 busy cores, more under ASan)
const watchdog = setTimeout(() => {
  console.log('FAIL web test: the watchdog fired (a step hung)');
  process.exit(1);
}, 570_000);

let failures = 0;
function check(condition, what, detail = '') {
  console.log(`${condition ? 'PASS' : 'FAIL'} ${what}${detail ? `: ${detail}` : ''}`);
  if (!condition) failures++;
  return condition;
}

// {status, body}; status 0 when no answer came in time (a session's requests
// take turns with the page's frames, which are slow under the sanitizers).
async function json(url, options = {}) {
  try {
    const response = await fetch(base + url, { ...options, signal: AbortSignal.timeout(60_000) });
    return { status: response.status, body: await response.json().catch(() => null) };
  } catch (e) {
    console.log(`  (${url}: ${e.message})`);
    return { status: 0, body: null };
  }
}

async function metric(name) {
  const response = await fetch(base + '/metrics', { signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
}

async function until(what, probe, timeout = WAIT) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeout / 1000} s waiting for ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.G3N_CHROMIUM || '/usr/bin/chromium',
  timeout: 60_000,
  args: [
    '--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
    `--use-file-for-fake-video-capture=${camera}`, `--use-file-for-fake-audio-capture=${microphone}`,
    '--autoplay-policy=no-user-gesture-required',
  ],
});
const context = await browser.newContext({ viewport: { width: 1180, height: 760 } });
await context.grantPermissions(['camera', 'microphone'], { origin: base });
const page = await context.newPage();
page.setDefaultTimeout(WAIT);
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => {
  if (m.type() === 'error') console.log(`  (browser console) ${m.text()}`);
});
// The Settings panel opens, takes the value, closes (as a person would).
async function setMaxTokens(n) {
  await page.click('#settings-toggle');
  await page.fill('#max-tokens', String(n));
  await page.click('#settings-toggle');
}
const shot = (name) => page.screenshot({ path: path.join(artifacts, name) });

try {
  // ---------------------------------------------------------------- the page
  const response = await page.goto(base + '/');
  check(response.status() === 200, 'GET / serves the page');
  check(/script-src 'self'/.test(response.headers()['content-security-policy'] || ''), 'the page has a Content-Security-Policy');
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForFunction(() => document.getElementById('model-name').textContent !== '');
  check((await page.textContent('#model-name')) === 'gemma-3n-demo', 'the model name shows', await page.textContent('#model-name'));

  // model text never becomes markup
  const rendered = await page.evaluate(async () => {
    const { renderMarkdown } = await import('./markdown.js');
    const box = document.createElement('div');
    box.append(renderMarkdown('<img src=x onerror="window.hacked=1"> **bold** [x](javascript:alert(1)) [ok](https://example.com)\n```\n<script>window.hacked=1</script>\n```'));
    return { images: box.querySelectorAll('img').length, scripts: box.querySelectorAll('script').length, strong: box.querySelectorAll('strong').length,
      links: [...box.querySelectorAll('a')].map((a) => a.href), text: box.textContent };
  });
  check(rendered.images === 0 && rendered.scripts === 0 && rendered.text.includes('<img src=x'), 'markdown: HTML in model text stays text', JSON.stringify(rendered));
  check(rendered.strong === 1 && rendered.links.length === 1 && rendered.links[0] === 'https://example.com/', 'markdown: bold and only http(s) links');

  // the API key goes out as a Bearer token (this server wants none; it ignores it)
  await page.click('#settings-toggle');
  await page.fill('#api-key', 'sk-web-test');
  await page.click('#settings-toggle');
  const authorizations = new Set();
  page.on('request', (r) => {
    if (new URL(r.url()).pathname.startsWith('/v1/')) authorizations.add(r.headers().authorization || '(none)');
  });

  // ---------------------------------------------------------------- chat with an image
  await page.setInputFiles('#file-input', path.join(repo, 'assets/demo-image.jpg'));
  await page.waitForSelector('#attachments .chip[data-kind="image"]');
  await page.fill('#prompt', 'Describe this image.');
  await setMaxTokens(24);
  await page.click('#send');
  const first = page.locator('#messages .message.assistant .body').nth(0);
  await first.and(page.locator('[data-state="done"], [data-state="error"]')).waitFor();
  const answer = await first.textContent();
  const pieces = Number(await first.getAttribute('data-pieces'));
  const meta = await page.locator('#messages .message.assistant .meta').nth(0).textContent();
  check((await first.getAttribute('data-state')) === 'done' && answer.length > 0, 'chat: an answer to a message with an image', answer.slice(0, 60));
  check(pieces >= 2, 'chat: the answer streamed in pieces', `${pieces} pieces`);
  check(/tok\/s/.test(meta) && /first token \d/.test(meta), 'chat: tokens/s and time to first token shown', meta);
  check((await page.locator('#messages .message.user .media img').count()) === 1, 'chat: the image shows in the conversation');
  await shot('chat.png');

  check(authorizations.size === 1 && authorizations.has('Bearer sk-web-test'), 'the API key is sent as Authorization: Bearer', [...authorizations].join(', '));

  // ---------------------------------------------------------------- drop an image, pick a clip
  await page.click('#new-chat'); // (the image would be encoded again with every later message)
  const jpeg = fs.readFileSync(path.join(repo, 'assets/demo-image.jpg')).toString('base64');
  await page.evaluate(async (data) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], 'dropped.jpg', { type: 'image/jpeg' }));
    const view = document.getElementById('chat-view');
    view.dispatchEvent(new DragEvent('dragenter', { dataTransfer: transfer, bubbles: true }));
    view.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }, jpeg);
  await page.waitForSelector('#attachments .chip[data-kind="image"]');
  await page.setInputFiles('#file-input', path.join(repo, 'assets/demo-speech.wav'));
  await page.waitForSelector('#attachments .chip[data-kind="audio"]');
  const chips = await page.textContent('#attachments');
  check(/dropped\.jpg/.test(chips) && /demo-speech\.wav/.test(chips), 'chat: an image dropped and an audio file picked are attached', chips);
  check(await page.isHidden('#drop-hint'), 'chat: the drop hint goes away after the drop');
  while (await page.locator('#attachments .chip button').count()) await page.locator('#attachments .chip button').first().click();

  // ---------------------------------------------------------------- a recording from the microphone
  await page.click('#record');
  await page.waitForFunction(() => document.getElementById('record').classList.contains('recording'));
  await page.waitForTimeout(1500);
  await page.fill('#prompt', 'What is said in this recording?');
  await page.click('#send'); // while recording: the recording goes with the message
  const recorded = await page.locator('#messages .message.user .media audio').first().getAttribute('title');
  check(/^recording-1\.wav \([1-9]/.test(recorded || ''), 'chat: the microphone recording went with the message', recorded);
  check(!(await page.locator('#record').evaluate((b) => b.classList.contains('recording'))), 'chat: the recording stopped');
  const heard = page.locator('#messages .message.assistant .body').nth(0);
  await heard.and(page.locator('[data-state="done"], [data-state="error"]')).waitFor();
  check((await heard.getAttribute('data-state')) === 'done', 'chat: the recording (WAV made by the page) is answered',
    (await page.locator('#messages .message.assistant').nth(0).textContent()).slice(0, 80));

  // ---------------------------------------------------------------- an invalid image
  const broken = Buffer.from('this is not a PNG file');
  await page.setInputFiles('#file-input', { name: 'broken.png', mimeType: 'image/png', buffer: broken });
  await page.fill('#prompt', 'What is in this picture?');
  await page.click('#send');
  const failed = page.locator('#messages .message.assistant').nth(1);
  await failed.locator('.error').waitFor();
  const shown = (await failed.locator('.error').textContent()).trim();
  const direct = await json('/v1/chat/completions', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ stream: true, messages: [{ role: 'user', content: [
      { type: 'image_url', image_url: { url: `data:image/png;base64,${broken.toString('base64')}` } },
      { type: 'text', text: 'What is in this picture?' }] }] }),
  });
  check(direct.status === 400 && direct.body?.error?.code === 'invalid_image', 'the server refuses the invalid image', `${direct.status}`);
  check(shown === direct.body?.error?.message, "invalid image: the server's error message is on the page", shown);
  check((await page.textContent('#banner-text')).trim() === shown && (await page.isVisible('#banner')), 'invalid image: the banner shows it too');
  await shot('chat-error.png');

  // ---------------------------------------------------------------- the connection drops
  await page.route('**/v1/chat/completions', (route) => route.abort('connectionreset'));
  await page.fill('#prompt', 'Hello?');
  await page.click('#send');
  const dropped = page.locator('#messages .message.assistant').nth(2);
  await dropped.locator('.error').waitFor();
  const droppedText = await dropped.locator('.error').textContent();
  check(/cannot reach the server/.test(droppedText), 'a dropped connection is reported', droppedText);
  await page.unroute('**/v1/chat/completions');

  // ---------------------------------------------------------------- stop a long generation
  await page.click('#new-chat');
  await setMaxTokens(2000);
  const tokensBefore = await metric('g3n_generated_tokens_total');
  await page.fill('#prompt', 'Tell me a very long story.');
  await page.click('#send');
  const long = page.locator('#messages .message.assistant .body').nth(0);
  await until('the long answer to stream', async () => Number(await long.getAttribute('data-pieces')) >= 5);
  const activeBefore = await metric('g3n_generations_active');
  check(activeBefore === 1, 'stop: the generation runs on the server', `g3n_generations_active ${activeBefore}`);
  const stoppedAt = Date.now();
  await page.click('#stop');
  await long.and(page.locator('[data-state="stopped"]')).waitFor({ timeout: 10_000 });
  let activeAfter = NaN;
  await until('the server to end the generation', async () => (activeAfter = await metric('g3n_generations_active')) === 0, 10_000)
    .catch(() => {});
  const freedIn = (Date.now() - stoppedAt) / 1000;
  const generated = (await metric('g3n_generated_tokens_total')) - tokensBefore;
  check(activeAfter === 0, 'stop: the server freed the session (g3n_generations_active 0)', `after ${freedIn.toFixed(2)} s`);
  check(generated < 2000, 'stop: the generation ended early', `${generated} of up to 2000 tokens generated`);
  check((await page.locator('#send').isVisible()) && !(await page.locator('#stop').isVisible()), 'stop: Send is back');
  await shot('chat-stopped.png');

  // ---------------------------------------------------------------- live session
  await page.click('#tab-live');
  await page.selectOption('#fps', '2');
  await page.click('#live-start');
  await page.waitForFunction(() => document.getElementById('live-session-id').textContent.startsWith('live-'));
  const id = await page.textContent('#live-session-id');
  let state = null;
  try {
    state = await until('frames and sound to reach the session', async () => {
      const { status, body } = await json(`/v1/live/sessions/${id}`);
      return status === 200 && body.frames >= 2 && body.audio_seconds >= 1 ? body : null;
    });
  } catch (e) {
    console.log(`  ${e.message}`);
  }
  check(state !== null, 'live: camera frames arrived (GET /v1/live/sessions/{id})', state ? `${state.frames} frames` : 'none');
  check(state !== null && state.audio_seconds >= 1, 'live: microphone sound arrived', state ? `${state.audio_seconds.toFixed(2)} s` : 'none');
  await page.waitForFunction(() => Number(document.getElementById('live-frames').firstChild?.textContent) >= 1);
  check(/positions/.test(await page.textContent('#live-context')), 'live: context use shown', await page.textContent('#live-context'));
  await setMaxTokens(16);
  await page.fill('#question', 'What did you see and hear?');
  await page.click('#ask');
  const liveAnswer = page.locator('#live-log .message.assistant .body').nth(0);
  await liveAnswer.and(page.locator('[data-state="done"], [data-state="error"]')).waitFor();
  const liveText = await liveAnswer.textContent();
  check((await liveAnswer.getAttribute('data-state')) === 'done' && liveText.length > 0, 'live: the question is answered', liveText.slice(0, 60));
  check(Number(await liveAnswer.getAttribute('data-pieces')) >= 2, 'live: the answer streamed');
  const after = await until('the session state', async () => {
    const answer = await json(`/v1/live/sessions/${id}`);
    return answer.status ? answer : null;
  });
  check(after.body?.questions === 1, 'live: the session counted the question', `${after.body?.questions}`);
  await page.waitForTimeout(600); // one more stats refresh for the picture
  await shot('live.png');
  await page.click('#live-end');
  let ended = null;
  await until('the session to be deleted', async () => (ended = (await json(`/v1/live/sessions/${id}`)).status) === 404, 15_000).catch(() => {});
  check(ended === 404, 'live: End session deletes it on the server', `GET answers ${ended}`);
  // ---------------------------------------------------------------- camera and microphone refused
  const refused = await context.newPage();
  refused.setDefaultTimeout(WAIT);
  refused.on('pageerror', (e) => pageErrors.push(e.message));
  await refused.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = async () => {
      throw new DOMException('Permission denied', 'NotAllowedError');
    };
  });
  await refused.goto(base + '/#live');
  await refused.waitForSelector('body[data-ready="true"]');
  await refused.click('#live-start');
  await refused.waitForFunction(() => document.getElementById('live-session-id').textContent.startsWith('live-'));
  await refused.waitForFunction(() => /refused/.test(document.getElementById('banner-text').textContent));
  const refusal = await refused.textContent('#banner-text');
  check(/camera was refused/.test(refusal) && /microphone was refused/.test(refusal), 'camera and microphone refused: the page says so', refusal.replace(/\n/g, ' | '));
  check(await refused.isEnabled('#question'), 'camera and microphone refused: questions still work');
  await refused.click('#live-end');
  await refused.waitForFunction(() => document.getElementById('live-session-id').textContent.endsWith('(ended)'));
  await refused.close();
} catch (e) {
  check(false, 'web test step', e.message.split('\n')[0]);
  await shot('failure.png').catch(() => {});
}
check(pageErrors.length === 0, 'no script errors in the page', pageErrors.join(' | '));
await browser.close();
clearTimeout(watchdog);
console.log(`web page test: ${failures === 0 ? 'PASS' : `FAIL (${failures})`}`);
process.exit(failures === 0 ? 0 : 1);
