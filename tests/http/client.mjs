// Drives a running `g3n serve --demo` with the official `openai` npm client:
// a streamed chat with an image and an audio clip, a non-streamed chat, stop
// strings (streamed and not), a seeded sampled chat twice, and a transcription.
// Usage: node client.mjs BASE_URL REPO_DIR   (exits 1 on the first failed check)
import fs from 'node:fs';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';

const [baseURL, repo] = process.argv.slice(2);
// G3N_HTTP_TIMEOUT_MS: more time for sanitizer builds (the vision tower is slow there)
const timeout = Number(process.env.G3N_HTTP_TIMEOUT_MS ?? 120000);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'unused', maxRetries: 0, timeout });
let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

const models = await client.models.list();
const model = models.data[0]?.id;
check(models.data.length === 1 && typeof model === 'string', `models.list -> '${model}'`);

// streamed chat: an image (data: URL) and an audio clip (input_audio), usage at the end
const image = fs.readFileSync(path.join(repo, 'assets/demo-image.jpg')).toString('base64');
const audio = fs.readFileSync(path.join(repo, 'assets/demo-speech.wav')).toString('base64');
const stream = await client.chat.completions.create({
  model,
  stream: true,
  stream_options: { include_usage: true },
  max_tokens: 12,
  messages: [
    { role: 'system', content: 'You describe pictures and sounds.' },
    {
      role: 'user',
      content: [
        { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${image}` } },
        { type: 'input_audio', input_audio: { data: audio, format: 'wav' } },
        { type: 'text', text: 'Describe the image, then transcribe the audio.' },
      ],
    },
  ],
});
let streamed = '', chunks = 0, finish = null, usage = null, firstRole = null, ids = new Set();
for await (const chunk of stream) {
  ids.add(chunk.id);
  if (chunk.usage) usage = chunk.usage;
  const choice = chunk.choices[0];
  if (!choice) continue;
  if (chunks === 0) firstRole = choice.delta.role;
  chunks++;
  streamed += choice.delta.content ?? '';
  if (choice.finish_reason) finish = choice.finish_reason;
}
check(firstRole === 'assistant', 'stream: first chunk carries role assistant');
check(chunks >= 3 && streamed.length > 0, `stream: ${chunks} chunks, ${streamed.length} characters of text`);
check(ids.size === 1, 'stream: one id for every chunk');
check(finish === 'length' || finish === 'stop', `stream: finish_reason ${finish}`);
// 256 image + 188 audio placeholders (in the demo config's counts) are part of the prompt
check(usage && usage.completion_tokens >= 1 && usage.completion_tokens <= 12 && usage.prompt_tokens > 200,
  `stream: usage ${JSON.stringify(usage)}`);

// non-streamed chat (greedy: temperature 0)
const request = { model, max_tokens: 16, temperature: 0, messages: [{ role: 'user', content: 'Write a haiku about the sea.' }] };
const answer = await client.chat.completions.create(request);
const text = answer.choices[0].message.content;
check(answer.object === 'chat.completion' && answer.choices.length === 1, 'non-stream: one choice');
check(typeof text === 'string' && text.length > 0, `non-stream: text '${text.slice(0, 40)}...'`);
check(answer.usage.completion_tokens === 16 && answer.choices[0].finish_reason === 'length',
  `non-stream: 16 tokens, finish_reason ${answer.choices[0].finish_reason}`);
check(answer.usage.total_tokens === answer.usage.prompt_tokens + answer.usage.completion_tokens, 'non-stream: usage adds up');
const again = await client.chat.completions.create(request);
check(again.choices[0].message.content === text, 'non-stream: greedy is deterministic');

// a multi-turn conversation
const turns = await client.chat.completions.create({
  model, max_tokens: 4, messages: [
    { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: 'How are you?' }],
});
check(turns.usage.prompt_tokens > answer.usage.prompt_tokens - 10 && turns.choices[0].message.content.length > 0,
  `multi-turn: ${turns.usage.prompt_tokens} prompt tokens`);

// stop strings: cut the greedy answer at a piece of its own text
const words = text.trim().split(/\s+/);
const stopWord = words.length > 2 ? words[2] : text.slice(Math.floor(text.length / 2));
const expected = text.slice(0, text.indexOf(stopWord));
const stopped = await client.chat.completions.create({ ...request, stop: [stopWord, 'never-appears'] });
check(stopped.choices[0].message.content === expected && stopped.choices[0].finish_reason === 'stop',
  `stop: non-stream cut before '${stopWord}' (finish_reason ${stopped.choices[0].finish_reason})`);
let streamedStop = '', streamedFinish = null;
for await (const chunk of await client.chat.completions.create({ ...request, stream: true, stop: stopWord })) {
  streamedStop += chunk.choices[0]?.delta?.content ?? '';
  streamedFinish = chunk.choices[0]?.finish_reason ?? streamedFinish;
}
check(streamedStop === expected && streamedFinish === 'stop', 'stop: the stream never shows the stop string');

// sampling with a seed is reproducible; temperature/top_p/top_k/min_p accepted
const sampled = { model, max_tokens: 12, temperature: 1.0, top_p: 0.9, top_k: 40, min_p: 0.01, seed: 42,
  messages: [{ role: 'user', content: 'Tell me a story.' }] };
const s1 = await client.chat.completions.create(sampled);
const s2 = await client.chat.completions.create(sampled);
check(s1.choices[0].message.content === s2.choices[0].message.content, 'sampling: the same seed gives the same text');

// transcription (multipart upload)
const file = await toFile(fs.createReadStream(path.join(repo, 'assets/demo-speech.wav')), 'speech.wav');
const transcription = await client.audio.transcriptions.create({ model, file });
check(typeof transcription.text === 'string' && transcription.text.length > 0,
  `transcription: '${transcription.text.slice(0, 40)}...'`);

// errors come back as the client's typed errors
try {
  await client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] });
  check(false, 'unknown model is refused');
} catch (e) {
  check(e instanceof OpenAI.NotFoundError && e.code === 'model_not_found', `unknown model -> ${e.status} ${e.code}`);
}
try {
  await client.chat.completions.create({ model, messages: [{ role: 'user', content: [{ type: 'file', file: {} }] }] });
  check(false, 'unknown part type is refused');
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.param === 'messages[0].content[0]', `unknown part type -> ${e.status}: ${e.message}`);
}

// a body over --max-body-mb (4 in run.sh) is answered 413, and the client reads it (it saw "Connection error")
try {
  await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x'.repeat(5 << 20) }] });
  check(false, 'a body over --max-body-mb is refused');
} catch (e) {
  check(e instanceof OpenAI.APIError && e.status === 413 && e.code === 'request_too_large',
    `a body over --max-body-mb -> ${e.status} ${e.code ?? e.message}`);
}

console.log(failures === 0 ? 'client: all checks passed' : `client: ${failures} checks failed`);
process.exit(failures === 0 ? 0 : 1);
