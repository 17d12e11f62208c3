// api.js - requests to the g3n server: relative URLs (the page works under
// any origin, HTTPS included, and behind a path prefix), the API key as a
// Bearer token, OpenAI error objects turned into readable messages, and the
// server-sent events of a streamed answer.

export const auth = { apiKey: '' };

// An error to show a person: the server's own message where it sent one.
export class ApiError extends Error {
  constructor(message, status = 0, code = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

export function headers(extra = {}) {
  const h = { ...extra };
  if (auth.apiKey) h.Authorization = 'Bearer ' + auth.apiKey;
  return h;
}

// The OpenAI error object's message (or the body's text, or the status).
export async function errorFromResponse(response) {
  let message = '';
  let code = null;
  try {
    const text = await response.text();
    try {
      const json = JSON.parse(text);
      if (json && json.error) {
        message = typeof json.error === 'string' ? json.error : json.error.message || '';
        code = json.error.code || null;
      }
    } catch {
      message = text.trim().slice(0, 300);
    }
  } catch {
    // the body could not be read: the status says enough
  }
  if (!message) message = `the server answered ${response.status} ${response.statusText}`.trim();
  if (response.status === 401 || response.status === 403) message += ' (enter the API key under Settings)';
  return new ApiError(message, response.status, code);
}

// fetch with the key; throws ApiError on a network failure or a non-2xx
// answer, and lets an AbortError (the Stop button) through unchanged.
export async function api(path, { method = 'GET', json, body, contentType, signal, keepalive } = {}) {
  const extra = {};
  let payload = body;
  if (json !== undefined) {
    extra['Content-Type'] = 'application/json';
    payload = JSON.stringify(json);
  } else if (contentType) {
    extra['Content-Type'] = contentType;
  }
  let response;
  try {
    response = await fetch(path, { method, headers: headers(extra), body: payload, signal, keepalive, cache: 'no-store' });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(`cannot reach the server (${e.message}): is g3n still running, and the network up?`, 0, 'network');
  }
  if (!response.ok) throw await errorFromResponse(response);
  return response;
}

// Reads server-sent events ("data: {json}\n\n" ... "data: [DONE]") and calls
// onChunk with each parsed object. An error event throws its message; a
// stream that ends without [DONE] throws (the connection dropped).
export async function readStream(response, onChunk) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    let piece;
    try {
      piece = await reader.read();
    } catch (e) {
      if (e.name === 'AbortError') throw e;
      throw new ApiError(`the connection to the server was lost during the answer (${e.message})`, 0, 'network');
    }
    if (piece.done) break;
    buffer += decoder.decode(piece.value, { stream: true });
    let match;
    while ((match = /\r?\n\r?\n/.exec(buffer))) {
      const event = buffer.slice(0, match.index);
      buffer = buffer.slice(match.index + match[0].length);
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).replace(/^ /, ''))
        .join('\n');
      if (!data) continue;
      if (data === '[DONE]') return;
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        continue;
      }
      if (chunk.error) throw new ApiError(chunk.error.message || 'the server stopped the answer', 0, chunk.error.code);
      onChunk(chunk);
    }
  }
  throw new ApiError('the connection to the server closed before the answer finished', 0, 'network');
}

// Streams a chat.completion.chunk answer into `state` ({started:
// performance.now() when the request was sent, text, pieces, first, usage,
// finish}; kept filled if the stream stops early) and calls onText(state)
// after each piece of text.
export function newAnswerState() {
  return { started: performance.now(), first: null, end: null, text: '', pieces: 0, usage: null, finish: null };
}

export async function streamAnswer(response, state, onText) {
  await readStream(response, (chunk) => {
    if (state.first === null) state.first = performance.now();
    if (chunk.usage) state.usage = chunk.usage;
    const choice = chunk.choices && chunk.choices[0];
    if (!choice) return;
    if (choice.finish_reason) state.finish = choice.finish_reason;
    const delta = choice.delta && choice.delta.content;
    if (delta) {
      state.text += delta;
      state.pieces++;
      onText(state);
    }
  });
  state.end = performance.now();
  return state;
}

// {tokens, ttft, tokensPerSecond} of an answer so far: the time to first token
// (prompt prefill) and the decode rate after it. Tokens from usage when the
// server sent it, else the pieces (one per detokenized token).
export function answerRates(state) {
  const end = state.end ?? performance.now();
  const tokens = state.usage ? state.usage.completion_tokens : state.pieces;
  return { tokens, ...rates(state.started, state.first, end, tokens) };
}

// Time to first token and the decode rate after it (the first token's time is
// the prompt's: prefill).
export function rates(started, first, end, tokens) {
  const ttft = first === null ? null : (first - started) / 1000;
  const decode = first === null ? 0 : (end - first) / 1000;
  const tokensPerSecond = tokens > 1 && decode > 0 ? (tokens - 1) / decode : null;
  return { ttft, tokensPerSecond };
}

export function describeRates({ tokens, ttft, tokensPerSecond }, extra = '') {
  const parts = [];
  if (tokens !== undefined && tokens !== null) parts.push(`${tokens} tokens`);
  if (tokensPerSecond !== null && tokensPerSecond !== undefined) parts.push(`${tokensPerSecond.toFixed(1)} tok/s`);
  if (ttft !== null && ttft !== undefined) parts.push(`first token ${ttft.toFixed(2)} s`);
  if (extra) parts.push(extra);
  return parts.join(' · ');
}
