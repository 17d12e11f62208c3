// ui.js - small pieces the two views share: the banner, the settings, and
// message bubbles.

import { renderMarkdown } from './markdown.js';

export const $ = (id) => document.getElementById(id);

// One message at the top of the page (errors in red, notices in blue).
export function showBanner(message, kind = 'error') {
  $('banner-text').textContent = message;
  $('banner').classList.toggle('info', kind === 'info');
  $('banner').hidden = false;
}

export function hideBanner() {
  $('banner').hidden = true;
}

// The request settings (Settings panel), read when a request is made.
export function requestSettings() {
  const temperature = $('temperature').value.trim();
  const maxTokens = $('max-tokens').value.trim();
  return {
    system: $('system-prompt').value.trim(),
    temperature: temperature === '' ? null : Number(temperature),
    maxTokens: maxTokens === '' ? null : Math.max(1, Math.floor(Number(maxTokens))),
  };
}

// A bubble in a message list: {root, body, meta}. Removes the list's
// placeholder text first.
export function addMessage(list, role, label) {
  const empty = list.querySelector('.empty');
  if (empty) empty.remove();
  const root = document.createElement('div');
  root.className = `message ${role}`;
  const name = document.createElement('div');
  name.className = 'role';
  name.textContent = label;
  const body = document.createElement('div');
  body.className = 'body';
  const meta = document.createElement('div');
  meta.className = 'meta';
  root.append(name, body, meta);
  list.append(root);
  list.scrollTop = list.scrollHeight;
  return { root, body, meta };
}

// An answer that re-renders its markdown as text streams in (at most once a
// frame), and keeps the list scrolled to the end while the user is there.
export function answerView(list, label) {
  const view = addMessage(list, 'assistant', label);
  view.body.dataset.state = 'streaming';
  view.body.dataset.pieces = '0';
  let latest = '';
  let scheduled = false;
  let done = false;
  view.update = (text, pieces) => {
    view.body.dataset.pieces = String(pieces);
    latest = text;
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      if (done) return;
      const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      view.body.replaceChildren(renderMarkdown(latest));
      if (stick) list.scrollTop = list.scrollHeight;
    });
  };
  view.finish = (state, text, metaText) => {
    done = true;
    view.body.replaceChildren(renderMarkdown(text));
    view.body.dataset.state = state;
    view.body.hidden = !text && state === 'error';
    view.meta.textContent = metaText;
    list.scrollTop = list.scrollHeight;
  };
  view.fail = (message) => {
    done = true;
    const error = document.createElement('div');
    error.className = 'error';
    error.textContent = message;
    view.root.append(error);
    view.body.dataset.state = 'error';
    list.scrollTop = list.scrollHeight;
  };
  return view;
}
