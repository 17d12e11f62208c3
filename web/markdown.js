// markdown.js - the model's markdown as DOM nodes. Safe by construction:
// every piece of model text becomes a text node (textContent), never markup,
// so an answer that contains <script> or <img onerror=...> shows those
// characters. Links keep only http(s) URLs. Covers what chat models write:
// paragraphs, headings, fenced code, inline code, bold, italics,
// strikethrough, lists, block quotes, rules, links. An unclosed code fence
// (a stream still arriving) renders as code so far.

function element(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

const LIST_ITEM = /^\s{0,3}([-*+]|\d{1,9}[.)])\s+(.*)$/;
const FENCE = /^\s{0,3}(```+|~~~+)\s*([\w+#.-]*)\s*$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^\s{0,3}>/;

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || LIST_ITEM.test(line);
}

export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const code = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[0].repeat(fence.length))) code.push(lines[i++]);
      i++; // the closing fence
      const pre = element('pre');
      const node = element('code');
      if (m[2]) node.dataset.language = m[2];
      node.textContent = code.join('\n');
      pre.append(node);
      fragment.append(pre);
    } else if (!line.trim()) {
      i++;
    } else if ((m = HEADING.exec(line))) {
      const heading = element('h' + Math.min(m[1].length + 2, 6)); // h3..h6: answers are not documents
      appendInline(heading, m[2]);
      fragment.append(heading);
      i++;
    } else if (RULE.test(line)) {
      fragment.append(element('hr'));
      i++;
    } else if (QUOTE.test(line)) {
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) quoted.push(lines[i++].replace(/^\s{0,3}>\s?/, ''));
      const quote = element('blockquote');
      quote.append(renderMarkdown(quoted.join('\n')));
      fragment.append(quote);
    } else if ((m = LIST_ITEM.exec(line))) {
      const ordered = /\d/.test(m[1]);
      const list = element(ordered ? 'ol' : 'ul');
      if (ordered && parseInt(m[1], 10) !== 1) list.start = parseInt(m[1], 10);
      while (i < lines.length) {
        const item = LIST_ITEM.exec(lines[i]);
        if (!item || /\d/.test(item[1]) !== ordered) break;
        let itemText = item[2];
        i++;
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !LIST_ITEM.test(lines[i])) itemText += '\n' + lines[i++].trim();
        const li = element('li');
        appendInline(li, itemText);
        list.append(li);
      }
      fragment.append(list);
    } else {
      const paragraph = [lines[i++]];
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) paragraph.push(lines[i++]);
      const p = element('p');
      appendInline(p, paragraph.join('\n'));
      fragment.append(p);
    }
  }
  return fragment;
}

// code spans, links, **bold**, __bold__, ~~strike~~, *italic*, _italic_, line breaks
const INLINE =
  /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\[([^\]\n]+)\]\(\s*([^)\s]+)\s*\)|\*\*(?=\S)([\s\S]+?)\*\*|__(?=\S)([\s\S]+?)__|~~(?=\S)([\s\S]+?)~~|\*(?=[^\s*])([^*\n]+?)\*|(?<![\w])_(?=[^\s_])([^_\n]+?)_(?![\w])|\n/g;

export function appendInline(parent, text) {
  const pattern = new RegExp(INLINE.source, 'g');
  let last = 0;
  let m;
  while ((m = pattern.exec(text))) {
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    if (m[1] !== undefined) {
      const code = element('code');
      code.textContent = m[2];
      parent.append(code);
    } else if (m[3] !== undefined) {
      if (/^https?:\/\//i.test(m[4])) {
        const link = element('a');
        link.href = m[4];
        link.target = '_blank';
        link.rel = 'noopener noreferrer nofollow';
        appendInline(link, m[3]);
        parent.append(link);
      } else {
        parent.append(document.createTextNode(m[0])); // javascript:, data:, relative: shown as text
      }
    } else if (m[5] !== undefined || m[6] !== undefined) {
      const strong = element('strong');
      appendInline(strong, m[5] ?? m[6]);
      parent.append(strong);
    } else if (m[7] !== undefined) {
      const strike = element('s');
      appendInline(strike, m[7]);
      parent.append(strike);
    } else if (m[8] !== undefined || m[9] !== undefined) {
      const em = element('em');
      appendInline(em, m[8] ?? m[9]);
      parent.append(em);
    } else {
      parent.append(element('br'));
    }
    last = pattern.lastIndex;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}
