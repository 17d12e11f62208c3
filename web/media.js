// media.js - the camera and microphone (with the messages a person needs when
// the browser refuses them), 16 kHz mono capture, WAV and s16le encoding, and
// files as base64.

export const RATE = 16000;

export class MediaRefused extends Error {}

// Why getUserMedia failed, in words.
export function describeMediaError(error, what) {
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia)
    return `The ${what} needs a secure page: open it over https:// or on http://localhost (browsers give the camera and microphone to no other page).`;
  switch (error && error.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return `The ${what} was refused: allow it for this site in the browser (the icon in the address bar), then try again.`;
    case 'NotFoundError':
    case 'OverconstrainedError':
      return `No ${what} was found on this device.`;
    case 'NotReadableError':
    case 'AbortError':
      return `The ${what} is busy or failed to start (another program may be using it).`;
    default:
      return `The ${what} could not be opened: ${error && error.message ? error.message : error}`;
  }
}

async function getMedia(constraints, what) {
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia)
    throw new MediaRefused(describeMediaError(null, what));
  try {
    return await navigator.mediaDevices.getUserMedia(constraints);
  } catch (e) {
    throw new MediaRefused(describeMediaError(e, what));
  }
}

export function openCamera() {
  return getMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false }, 'camera');
}

// Linear resampling, for a browser that will not run the AudioContext at 16 kHz.
function resample(samples, from) {
  if (from === RATE) return samples;
  const length = Math.floor((samples.length * RATE) / from);
  const out = new Float32Array(length);
  const step = from / RATE;
  for (let i = 0; i < length; i++) {
    const x = i * step;
    const j = Math.floor(x);
    const f = x - j;
    out[i] = samples[j] * (1 - f) + (j + 1 < samples.length ? samples[j + 1] : samples[j]) * f;
  }
  return out;
}

// The microphone as 16 kHz mono Float32Array pieces (about 100 ms each) to
// onSamples. Returns {stop()}.
export async function openMicrophone(onSamples) {
  const stream = await getMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true }, video: false }, 'microphone');
  let context;
  try {
    try {
      context = new AudioContext({ sampleRate: RATE });
    } catch {
      context = new AudioContext();
    }
    await context.audioWorklet.addModule('audio-worklet.js');
    const source = context.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(context, 'g3n-capture', { numberOfInputs: 1, numberOfOutputs: 1 });
    const silent = context.createGain();
    silent.gain.value = 0; // pulled by the destination, heard by no one
    source.connect(node).connect(silent).connect(context.destination);
    const rate = context.sampleRate;
    node.port.onmessage = (event) => onSamples(resample(event.data, rate));
    await context.resume();
    return {
      stop() {
        node.port.onmessage = null;
        stream.getTracks().forEach((t) => t.stop());
        context.close().catch(() => {});
      },
    };
  } catch (e) {
    stream.getTracks().forEach((t) => t.stop());
    if (context) context.close().catch(() => {});
    throw new MediaRefused(`The microphone could not be recorded: ${e.message}`);
  }
}

export function concatSamples(pieces) {
  const length = pieces.reduce((n, p) => n + p.length, 0);
  const out = new Float32Array(length);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// 16-bit little-endian PCM.
export function toS16le(samples) {
  const view = new DataView(new ArrayBuffer(samples.length * 2));
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(2 * i, v < 0 ? v * 32768 : v * 32767, true);
  }
  return view.buffer;
}

// A 16 kHz mono 16-bit WAV file.
export function toWav(samples) {
  const pcm = toS16le(samples);
  const view = new DataView(new ArrayBuffer(44));
  const text = (at, s) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  text(0, 'RIFF');
  view.setUint32(4, 36 + pcm.byteLength, true);
  text(8, 'WAVE');
  text(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, RATE, true);
  view.setUint32(28, RATE * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, 'data');
  view.setUint32(40, pcm.byteLength, true);
  return new Blob([view.buffer, pcm], { type: 'audio/wav' });
}

// A file or blob as a data: URL.
export function readDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error || new Error('the file could not be read'));
    reader.readAsDataURL(blob);
  });
}

// The input_audio format name for a file (the server decodes these).
export function audioFormat(file) {
  const name = (file.name || '').toLowerCase();
  const extension = name.includes('.') ? name.slice(name.lastIndexOf('.') + 1) : '';
  const known = ['wav', 'mp3', 'flac', 'ogg', 'opus', 'm4a', 'aac', 'webm', 'mp4'];
  if (known.includes(extension)) return extension;
  const type = (file.type || '').toLowerCase();
  if (type.includes('wav')) return 'wav';
  if (type.includes('mpeg') || type.includes('mp3')) return 'mp3';
  if (type.includes('flac')) return 'flac';
  if (type.includes('ogg')) return 'ogg';
  if (type.includes('opus')) return 'opus';
  if (type.includes('webm')) return 'webm';
  if (type.includes('aac')) return 'aac';
  if (type.includes('mp4') || type.includes('m4a')) return 'm4a';
  return 'wav';
}
