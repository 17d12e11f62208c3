// The official openai client against `g3n serve` over HTTPS with API keys
// (issue 17; tests/http/secure.sh): the test CA is trusted through
// NODE_EXTRA_CA_CERTS; a listed key works (models, a chat, a streamed chat), a
// wrong key gets AuthenticationError 401 with code invalid_api_key, a missing
// key 401 with OpenAI's error object.
// Usage: node secure.mjs HTTPS_BASE_URL KEY   (exits 1 on the first failed check)
import OpenAI from 'openai';

const [baseURL, key] = process.argv.slice(2);
const timeout = Number(process.env.G3N_HTTP_TIMEOUT_MS ?? 120000);
let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: key, maxRetries: 0, timeout });
const models = await client.models.list();
const model = models.data[0]?.id;
check(typeof model === 'string', `https + key: models.list -> '${model}'`);
const chat = await client.chat.completions.create({
  model, max_tokens: 4, messages: [{ role: 'user', content: 'Say hello.' }],
});
check(chat.choices[0].message.content.length > 0 && chat.usage.completion_tokens >= 1,
  `https + key: chat -> ${JSON.stringify(chat.choices[0].message.content)}`);
const stream = await client.chat.completions.create({
  model, max_tokens: 4, stream: true, messages: [{ role: 'user', content: 'Say hello.' }],
});
let chunks = 0;
for await (const chunk of stream) if (chunk.choices[0]) chunks++;
check(chunks >= 2, `https + key: streamed chat, ${chunks} chunks`);

const wrong = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'not-the-key-0123456789', maxRetries: 0, timeout });
try {
  await wrong.models.list();
  check(false, 'wrong key: refused');
} catch (error) {
  check(error instanceof OpenAI.AuthenticationError && error.status === 401 && error.code === 'invalid_api_key',
    `wrong key: ${error.constructor.name} ${error.status} ${error.code}`);
}
try {
  await wrong.chat.completions.create({ model, max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] });
  check(false, 'wrong key: chat refused');
} catch (error) {
  check(error.status === 401 && error.code === 'invalid_api_key', `wrong key, chat: ${error.status} ${error.code}`);
}
const bare = await fetch(`${baseURL}/v1/models`);
const body = await bare.json();
check(bare.status === 401 && body.error?.code === 'invalid_api_key' && body.error?.type === 'invalid_request_error' &&
  typeof body.error?.message === 'string' && bare.headers.get('www-authenticate')?.startsWith('Bearer'),
  `no key: ${bare.status} ${JSON.stringify(body.error?.code)}, WWW-Authenticate ${bare.headers.get('www-authenticate')}`);
process.exit(failures ? 1 : 0);
