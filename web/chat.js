// chat.js - the Chat view: a conversation over /v1/chat/completions (streamed),
// images and audio attached by picking, dropping, pasting or recording, a Stop
// button that aborts the request (the server sees the connection close and
// ends the generation), tokens/s and time to first token under each answer.

import { api, ApiError, streamAnswer, newAnswerState, answerRates, describeRates } from './api.js';
import { openMicrophone, concatSamples, toWav, readDataUrl, audioFormat, MediaRefused, RATE } from './media.js';
import { $, showBanner, hideBanner, requestSettings, addMessage, answerView } from './ui.js';

const MAX_RECORDING_SECONDS = 120;

const history = []; // {role, content} as sent (content: a string or parts)
let attachments = []; // {kind: 'image'|'audio', name, url (data:), objectUrl, format}
let running = null; // the AbortController of the answer being streamed
let recording = null; // {capture, pieces, samples, timer}
let modelId = null;

export function setModel(id) {
  modelId = id;
}

function setRunning(controller) {
  running = controller;
  $('send').hidden = !!controller;
  $('stop').hidden = !controller;
  $('new-chat').disabled = !!controller;
}

// ------------------------------------------------------------ attachments

function renderAttachments() {
  const box = $('attachments');
  box.replaceChildren();
  attachments.forEach((a, index) => {
    const chip = document.createElement('div');
    chip.className = 'chip';
    chip.dataset.kind = a.kind;
    if (a.kind === 'image') {
      const img = document.createElement('img');
      img.src = a.objectUrl;
      img.alt = '';
      chip.append(img);
    } else {
      const icon = document.createElement('span');
      icon.className = 'audio-icon';
      icon.textContent = '♪';
      chip.append(icon);
    }
    const name = document.createElement('span');
    name.textContent = a.name;
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.title = `Remove ${a.name}`;
    remove.textContent = '×';
    remove.addEventListener('click', () => {
      URL.revokeObjectURL(a.objectUrl);
      attachments.splice(index, 1);
      renderAttachments();
    });
    chip.append(name, remove);
    box.append(chip);
  });
}

async function addFiles(files) {
  for (const file of files) {
    const type = (file.type || '').toLowerCase();
    const kind = type.startsWith('image/') ? 'image' : type.startsWith('audio/') || /\.(wav|mp3|flac|ogg|opus|m4a|aac)$/i.test(file.name) ? 'audio' : null;
    if (!kind) {
      showBanner(`${file.name} is neither an image nor an audio clip: attach images (JPEG, PNG, ...) or audio (WAV, MP3, ...).`);
      continue;
    }
    try {
      const url = await readDataUrl(file);
      attachments.push({ kind, name: file.name || kind, url, objectUrl: URL.createObjectURL(file), format: kind === 'audio' ? audioFormat(file) : null });
    } catch (e) {
      showBanner(`${file.name} could not be read: ${e.message}`);
    }
  }
  renderAttachments();
}

// ------------------------------------------------------------ recording

async function toggleRecording() {
  if (recording) {
    stopRecording();
    return;
  }
  const button = $('record');
  button.disabled = true;
  const state = { pieces: [], samples: 0, started: performance.now(), timer: null, capture: null };
  try {
    state.capture = await openMicrophone((samples) => {
      state.pieces.push(samples);
      state.samples += samples.length;
      if (state.samples >= MAX_RECORDING_SECONDS * RATE) stopRecording();
    });
  } catch (e) {
    button.disabled = false;
    showBanner(e instanceof MediaRefused ? e.message : `The microphone could not be opened: ${e.message}`);
    return;
  }
  recording = state;
  button.disabled = false;
  button.classList.add('recording');
  const tick = () => (button.textContent = `Stop recording ${((performance.now() - state.started) / 1000).toFixed(0)} s`);
  tick();
  state.timer = setInterval(tick, 500);
}

let recordings = 0;

// Ends the recording and attaches it (resolves once attached).
function stopRecording() {
  const state = recording;
  if (!state) return Promise.resolve();
  recording = null;
  clearInterval(state.timer);
  state.capture.stop();
  const button = $('record');
  button.classList.remove('recording');
  button.textContent = 'Record';
  if (state.samples < RATE / 10) {
    showBanner('The recording is empty: no sound came from the microphone.');
    return Promise.resolve();
  }
  const wav = toWav(concatSamples(state.pieces));
  recordings++;
  const name = `recording-${recordings}.wav (${(state.samples / RATE).toFixed(1)} s)`;
  return addFiles([new File([wav], name, { type: 'audio/wav' })]);
}

// ------------------------------------------------------------ sending

function userBubble(text, sent) {
  const view = addMessage($('messages'), 'user', 'You');
  if (sent.length) {
    const media = document.createElement('div');
    media.className = 'media';
    for (const a of sent) {
      if (a.kind === 'image') {
        const img = document.createElement('img');
        img.src = a.objectUrl;
        img.alt = a.name;
        media.append(img);
      } else {
        const audio = document.createElement('audio');
        audio.controls = true;
        audio.src = a.objectUrl;
        audio.title = a.name;
        media.append(audio);
      }
    }
    view.root.insertBefore(media, view.body);
  }
  view.body.textContent = text;
  if (!text) view.body.hidden = true;
}

let preparing = false;

async function send() {
  if (running || preparing) return;
  if (recording) {
    preparing = true; // a recording still running goes with this message, once encoded
    try {
      await stopRecording();
    } finally {
      preparing = false;
    }
  }
  const text = $('prompt').value.trim();
  if (!text && !attachments.length) return;
  hideBanner();
  const sent = attachments;
  attachments = [];
  renderAttachments();
  $('prompt').value = '';

  let content = text;
  if (sent.length) {
    content = sent.map((a) =>
      a.kind === 'image'
        ? { type: 'image_url', image_url: { url: a.url } }
        : { type: 'input_audio', input_audio: { data: a.url.slice(a.url.indexOf(',') + 1), format: a.format } },
    );
    if (text) content.push({ type: 'text', text });
  }
  userBubble(text, sent);
  const settings = requestSettings();
  const messages = [];
  if (settings.system) messages.push({ role: 'system', content: settings.system });
  messages.push(...history, { role: 'user', content });
  const request = { messages, stream: true, stream_options: { include_usage: true } };
  if (modelId) request.model = modelId;
  if (settings.temperature !== null) request.temperature = settings.temperature;
  if (settings.maxTokens !== null) request.max_tokens = settings.maxTokens;

  const controller = new AbortController();
  setRunning(controller);
  const view = answerView($('messages'), 'g3n');
  const state = newAnswerState();
  try {
    const response = await api('v1/chat/completions', { method: 'POST', json: request, signal: controller.signal });
    await streamAnswer(response, state, (s) => view.update(s.text, s.pieces));
    const rates = answerRates(state);
    const finish = state.finish === 'length' ? 'stopped at max tokens' : '';
    view.finish('done', state.text, describeRates(rates, finish));
    history.push({ role: 'user', content }, { role: 'assistant', content: state.text });
  } catch (e) {
    if (e.name === 'AbortError') {
      view.finish('stopped', state.text, describeRates(answerRates(state), 'stopped'));
      if (state.text) history.push({ role: 'user', content }, { role: 'assistant', content: state.text });
    } else {
      const message = e instanceof ApiError ? e.message : `unexpected error: ${e.message}`;
      view.finish('error', state.text, state.first ? describeRates(answerRates(state)) : '');
      view.fail(message);
      showBanner(message);
    }
  } finally {
    setRunning(null);
  }
}

function newChat() {
  if (running) return;
  history.length = 0;
  const list = $('messages');
  list.replaceChildren();
  const empty = document.createElement('p');
  empty.className = 'empty';
  empty.textContent = 'New conversation.';
  list.append(empty);
  $('prompt').focus();
}

export function stopChat() {
  if (running) running.abort();
}

export function initChat() {
  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  $('prompt').addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    } else if (event.key === 'Escape') {
      stopChat();
    }
  });
  $('prompt').addEventListener('paste', (event) => {
    const files = [...(event.clipboardData?.files || [])];
    if (files.length) {
      event.preventDefault();
      addFiles(files);
    }
  });
  $('stop').addEventListener('click', stopChat);
  $('new-chat').addEventListener('click', newChat);
  $('attach').addEventListener('click', () => $('file-input').click());
  $('file-input').addEventListener('change', () => {
    addFiles([...$('file-input').files]);
    $('file-input').value = '';
  });
  $('record').addEventListener('click', toggleRecording);

  const view = $('chat-view');
  let depth = 0;
  view.addEventListener('dragenter', (event) => {
    if (![...event.dataTransfer.types].includes('Files')) return;
    depth++;
    view.classList.add('dragging');
    $('drop-hint').hidden = false;
  });
  view.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) {
      view.classList.remove('dragging');
      $('drop-hint').hidden = true;
    }
  });
  view.addEventListener('dragover', (event) => event.preventDefault());
  view.addEventListener('drop', (event) => {
    event.preventDefault();
    depth = 0;
    view.classList.remove('dragging');
    $('drop-hint').hidden = true;
    addFiles([...event.dataTransfer.files]);
  });
}
