// app.js - g3n's web page: tabs, settings, the server's state. The Chat view
// is chat.js, the Live view live.js. No framework, nothing loaded from
// elsewhere: every file comes from this server (web/ in the repository).

import { api, auth, headers } from './api.js';
import { initChat, setModel } from './chat.js';
import { initLive } from './live.js';
import { $, showBanner, hideBanner } from './ui.js';

const SETTINGS_KEY = 'g3n.settings';
const KEY_KEY = 'g3n.apiKey';
const HEALTH_MS = 10000;

function showTab(name) {
  for (const tab of ['chat', 'live']) {
    $(`tab-${tab}`).setAttribute('aria-selected', String(tab === name));
    $(`${tab}-view`).hidden = tab !== name;
  }
  (name === 'chat' ? $('prompt') : $('question')).focus();
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
}

// Settings survive a reload (localStorage); the API key only this tab's life
// (sessionStorage), so it is not left on a shared machine.
function loadSettings() {
  try {
    const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) || '{}');
    if (typeof saved.system === 'string') $('system-prompt').value = saved.system;
    if (saved.temperature !== undefined) $('temperature').value = saved.temperature;
    if (saved.maxTokens !== undefined) $('max-tokens').value = saved.maxTokens;
    if (saved.fps !== undefined) $('fps').value = saved.fps;
    auth.apiKey = sessionStorage.getItem(KEY_KEY) || '';
    $('api-key').value = auth.apiKey;
  } catch {
    // storage refused (private mode): defaults
  }
}

function saveSettings() {
  auth.apiKey = $('api-key').value.trim();
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify({
      system: $('system-prompt').value, temperature: $('temperature').value, maxTokens: $('max-tokens').value, fps: $('fps').value,
    }));
    if (auth.apiKey) sessionStorage.setItem(KEY_KEY, auth.apiKey);
    else sessionStorage.removeItem(KEY_KEY);
  } catch {
    // storage refused: the values still apply to this page
  }
}

// The model's name; tells when the server cannot be reached or wants a key.
async function loadModel() {
  try {
    const response = await api('v1/models');
    const json = await response.json();
    const id = json.data && json.data[0] && json.data[0].id;
    if (id) {
      $('model-name').textContent = id;
      setModel(id);
    }
    return true;
  } catch (e) {
    showBanner(`The model list could not be read: ${e.message}`);
    if (e.status === 401 || e.status === 403) openSettings(true);
    return false;
  }
}

function openSettings(open) {
  $('settings').hidden = !open;
  $('settings-toggle').setAttribute('aria-expanded', String(open));
  if (open) $('api-key').focus();
}

// A dot that turns red when the server stops answering, and a notice when it
// answers again.
let reachable = null;
async function checkHealth() {
  const dot = $('server-status');
  let ok = false;
  let title;
  try {
    const response = await fetch('health', { headers: headers(), cache: 'no-store' });
    const json = await response.json().catch(() => ({}));
    ok = response.ok;
    title = ok ? `server ok: ${json.active ?? 0} generating, ${json.queued ?? 0} waiting` : `server unavailable (${response.status})`;
  } catch (e) {
    title = `the server cannot be reached (${e.message})`;
  }
  dot.className = `status ${ok ? 'ok' : 'bad'}`;
  dot.title = title;
  if (reachable === true && !ok) showBanner(`Lost the connection to the server: ${title}.`);
  if (reachable === false && ok) {
    showBanner('The server answers again.', 'info');
    if (!$('model-name').textContent) loadModel();
  }
  reachable = ok;
}

function init() {
  loadSettings();
  initChat();
  initLive();
  $('tab-chat').addEventListener('click', () => showTab('chat'));
  $('tab-live').addEventListener('click', () => showTab('live'));
  $('settings-toggle').addEventListener('click', () => openSettings($('settings').hidden));
  $('banner-close').addEventListener('click', hideBanner);
  for (const id of ['api-key', 'system-prompt', 'temperature', 'max-tokens', 'fps']) {
    $(id).addEventListener('change', saveSettings);
    $(id).addEventListener('input', saveSettings);
  }
  $('api-key').addEventListener('change', () => {
    hideBanner();
    loadModel();
  });
  showTab(location.hash === '#live' ? 'live' : 'chat');
  loadModel();
  checkHealth();
  setInterval(checkHealth, HEALTH_MS);
  document.body.dataset.ready = 'true';
}

init();
