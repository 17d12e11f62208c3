// live.js - the Live view: a live session (/v1/live/sessions) fed with the
// camera's frames (JPEG, at the chosen rate) and the microphone's sound (16 kHz
// mono s16le pieces) as they happen; questions at any moment, answers streamed.
//
// The server prefills each frame and piece when it arrives, one request per
// session at a time, and a frame costs far more than a piece of sound. So the
// page never queues frames: a frame is taken only when the previous one has
// been answered (the others are counted as skipped), and sound waits in a
// bounded backlog that goes out as one piece whenever the previous piece has
// been answered (the oldest is dropped past MAX_BACKLOG_SECONDS).

import { api, ApiError, streamAnswer, newAnswerState, answerRates, describeRates, headers } from './api.js';
import { openCamera, openMicrophone, concatSamples, toS16le, MediaRefused, RATE } from './media.js';
import { $, showBanner, hideBanner, requestSettings, addMessage, answerView } from './ui.js';

const MAX_BACKLOG_SECONDS = 30;
const MAX_FRAME_SIDE = 768;
const POLL_MS = 2000;

let live = null; // the running session's state (start() below)

function setControls() {
  const on = !!live;
  $('live-start').disabled = on;
  $('live-end').disabled = !on;
  $('question').disabled = !on;
  $('ask').disabled = !on || !!(live && live.asking);
  $('ask-stop').hidden = !(live && live.asking);
  $('ask').hidden = !!(live && live.asking);
}

function showStats(json) {
  if (!live || !json || json.id !== live.id) return;
  live.server = json;
  renderStats();
}

function renderStats() {
  if (!live) return;
  const s = live.server || {};
  $('live-session-id').textContent = live.id;
  const frames = $('live-frames');
  frames.replaceChildren(String(s.frames ?? 0));
  if (live.camera) frames.append(sub(`sent ${live.framesSent}, skipped ${live.framesSkipped} (busy)`));
  const audio = $('live-audio');
  audio.replaceChildren(`${(s.audio_seconds ?? 0).toFixed(1)} s`);
  if (live.microphone) {
    let note = `waiting ${(live.backlogSamples / RATE).toFixed(1)} s`;
    if (live.droppedSamples) note += `, dropped ${(live.droppedSamples / RATE).toFixed(1)} s`;
    audio.append(sub(note));
  }
  const used = s.positions ?? 0;
  const context = s.context ?? 0;
  $('live-context').textContent = `${used} / ${context} positions (${context ? ((100 * used) / context).toFixed(1) : '0'} %)`;
  $('live-context-bar').value = context ? used / context : 0;
  $('live-dropped').textContent = `${s.dropped_items ?? 0} items, ${s.compactions ?? 0} compactions`;
  $('live-questions').textContent = String(s.questions ?? 0);
}

function sub(text) {
  const span = document.createElement('div');
  span.className = 'sub';
  span.textContent = text;
  return span;
}

function sessionPath(suffix = '') {
  return `v1/live/sessions/${encodeURIComponent(live.id)}${suffix}`;
}

// An error from a session request: a session gone (404) ends the page's side.
function sessionError(e, what) {
  if (e.name === 'AbortError' || !live) return;
  if (e instanceof ApiError && e.status === 404 && e.code === 'session_not_found') {
    showBanner(`The live session ended on the server: ${e.message}`);
    stop(false);
    return;
  }
  showBanner(`${what}: ${e.message}`);
}

// ------------------------------------------------------------ frames

async function sendFrame() {
  const session = live;
  if (!session || !session.camera) return;
  const video = $('preview');
  if (session.frameInFlight) {
    session.framesSkipped++;
    renderStats();
    return;
  }
  if (video.readyState < 2 || !video.videoWidth) return;
  session.frameInFlight = true;
  try {
    const scale = Math.min(1, MAX_FRAME_SIDE / Math.max(video.videoWidth, video.videoHeight));
    const canvas = session.canvas;
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    canvas.getContext('2d').drawImage(video, 0, 0, canvas.width, canvas.height);
    const jpeg = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.85));
    if (!jpeg || live !== session) return;
    const seconds = ((performance.now() - session.started) / 1000).toFixed(2);
    const response = await api(sessionPath(`/frames?seconds=${seconds}`), {
      method: 'POST', body: jpeg, contentType: 'image/jpeg', signal: session.abort.signal,
    });
    session.framesSent++;
    showStats(await response.json());
  } catch (e) {
    sessionError(e, 'A frame was not taken');
  } finally {
    session.frameInFlight = false;
  }
}

function startFrameTimer() {
  if (!live) return;
  clearInterval(live.frameTimer);
  live.frameTimer = null;
  if (!live.camera) return;
  const fps = Number($('fps').value) || 1;
  live.frameTimer = setInterval(sendFrame, 1000 / fps);
  setTimeout(sendFrame, 300); // the first one soon, once the camera shows something
}

// ------------------------------------------------------------ sound

function queueSamples(samples) {
  const session = live;
  if (!session) return;
  session.backlog.push(samples);
  session.backlogSamples += samples.length;
  while (session.backlogSamples > MAX_BACKLOG_SECONDS * RATE && session.backlog.length > 1) {
    const dropped = session.backlog.shift();
    session.backlogSamples -= dropped.length;
    session.droppedSamples += dropped.length;
  }
}

async function sendAudio() {
  const session = live;
  if (!session || session.audioInFlight || session.backlogSamples < RATE / 4) return;
  const samples = concatSamples(session.backlog);
  session.backlog = [];
  session.backlogSamples = 0;
  session.audioInFlight = true;
  try {
    const response = await api(sessionPath('/audio?format=s16le&rate=16000'), {
      method: 'POST', body: toS16le(samples), contentType: 'audio/pcm', signal: session.abort.signal,
    });
    showStats(await response.json());
  } catch (e) {
    sessionError(e, 'Sound was not taken');
  } finally {
    session.audioInFlight = false;
    renderStats();
  }
}

// ------------------------------------------------------------ state polling

async function poll() {
  const session = live;
  if (!session || session.pollInFlight) return;
  session.pollInFlight = true;
  try {
    const response = await api(sessionPath(), { signal: session.abort.signal });
    showStats(await response.json());
  } catch (e) {
    sessionError(e, 'The session state could not be read');
  } finally {
    session.pollInFlight = false;
  }
}

// ------------------------------------------------------------ start / stop

async function start() {
  if (live) return;
  hideBanner();
  $('live-start').disabled = true;
  const settings = requestSettings();
  let json;
  try {
    const response = await api('v1/live/sessions', { method: 'POST', json: settings.system ? { system: settings.system } : {} });
    json = await response.json();
  } catch (e) {
    showBanner(`The live session could not start: ${e.message}`);
    $('live-start').disabled = false;
    return;
  }
  live = {
    id: json.id, server: json, started: performance.now(), abort: new AbortController(), canvas: document.createElement('canvas'),
    camera: null, microphone: null, frameTimer: null, audioTimer: null, pollTimer: null,
    frameInFlight: false, framesSent: 0, framesSkipped: 0,
    backlog: [], backlogSamples: 0, droppedSamples: 0, audioInFlight: false, pollInFlight: false, asking: null,
  };
  const session = live;
  setControls();
  renderStats();
  const problems = [];
  if ($('use-camera').checked) {
    try {
      session.camera = await openCamera();
      if (live !== session) return session.camera.getTracks().forEach((t) => t.stop());
      $('preview').srcObject = session.camera;
      $('preview').closest('.preview-box').classList.add('on');
      session.camera.getVideoTracks()[0].addEventListener('ended', () => showBanner('The camera stopped (unplugged, or taken by another program).'));
    } catch (e) {
      problems.push(e instanceof MediaRefused ? e.message : `The camera could not be opened: ${e.message}`);
    }
  }
  if ($('use-mic').checked) {
    try {
      session.microphone = await openMicrophone(queueSamples);
      if (live !== session) return session.microphone.stop();
    } catch (e) {
      problems.push(e instanceof MediaRefused ? e.message : `The microphone could not be opened: ${e.message}`);
    }
  }
  if (problems.length) {
    const rest = session.camera || session.microphone ? 'The session goes on with the rest.' : 'The session goes on without media: questions still work.';
    showBanner(`${problems.join('\n')}\n${rest}`);
  }
  startFrameTimer();
  if (session.microphone) session.audioTimer = setInterval(sendAudio, 250);
  session.pollTimer = setInterval(poll, POLL_MS);
  renderStats();
  $('question').focus();
}

// Ends the page's side; `remove`: also DELETE the session on the server.
async function stop(remove = true) {
  const session = live;
  if (!session) return;
  live = null;
  clearInterval(session.frameTimer);
  clearInterval(session.audioTimer);
  clearInterval(session.pollTimer);
  if (session.asking) session.asking.abort();
  session.abort.abort();
  if (session.camera) session.camera.getTracks().forEach((t) => t.stop());
  if (session.microphone) session.microphone.stop();
  $('preview').srcObject = null;
  $('preview').closest('.preview-box').classList.remove('on');
  $('live-session-id').textContent = `${session.id} (ended)`;
  setControls();
  if (remove) {
    try {
      await api(`v1/live/sessions/${encodeURIComponent(session.id)}`, { method: 'DELETE' });
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) showBanner(`The session could not be ended on the server: ${e.message}`);
    }
  }
}

// ------------------------------------------------------------ questions

async function ask() {
  const session = live;
  const question = $('question').value.trim();
  if (!session || !question || session.asking) return;
  hideBanner();
  $('question').value = '';
  addMessage($('live-log'), 'user', 'You').body.textContent = question;
  const settings = requestSettings();
  const request = { question, stream: true, stream_options: { include_usage: true } };
  if (settings.temperature !== null) request.temperature = settings.temperature;
  if (settings.maxTokens !== null) request.max_tokens = settings.maxTokens;
  const controller = new AbortController();
  session.asking = controller;
  setControls();
  const view = answerView($('live-log'), 'g3n');
  const state = newAnswerState();
  const context = session.server ? `after ${session.server.frames} frames, ${(session.server.audio_seconds ?? 0).toFixed(1)} s of sound` : '';
  try {
    const response = await api(sessionPath('/ask'), { method: 'POST', json: request, signal: controller.signal });
    await streamAnswer(response, state, (s) => view.update(s.text, s.pieces));
    view.finish('done', state.text, describeRates(answerRates(state), context));
  } catch (e) {
    if (e.name === 'AbortError') {
      view.finish('stopped', state.text, describeRates(answerRates(state), 'stopped'));
    } else {
      view.finish('error', state.text, '');
      view.fail(e.message);
      sessionError(e, 'The question was not answered');
    }
  } finally {
    session.asking = null;
    setControls();
    if (live === session) poll();
  }
}

export function initLive() {
  $('live-start').addEventListener('click', start);
  $('live-end').addEventListener('click', () => stop(true));
  $('fps').addEventListener('change', startFrameTimer);
  $('ask-form').addEventListener('submit', (event) => {
    event.preventDefault();
    ask();
  });
  $('ask-stop').addEventListener('click', () => live && live.asking && live.asking.abort());
  // Leaving the page ends the session on the server (keepalive outlives the page).
  window.addEventListener('pagehide', () => {
    if (live) fetch(sessionPath(), { method: 'DELETE', headers: headers(), keepalive: true }).catch(() => {});
  });
  setControls();
}
