/**
 * The details panel of one entry: the whole message with its line breaks, every attribute
 * as key = value, where it came from, its time in UTC and local time, its trace, and copy
 * buttons. Esc (or Close) hides it and gives the focus back to where it was.
 */

import { formatTime, zoneLabel } from './format.js';

function copyButton(text, label, caption = 'Copy') {
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'copy';
  button.textContent = caption;
  button.setAttribute('aria-label', `Copy ${label}`);
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Copy failed';
    }
    setTimeout(() => (button.textContent = caption), 1500);
  });
  return button;
}

function field(list, name, value, term = name) {
  list.appendChild(document.createElement('dt')).textContent = term;
  const detail = list.appendChild(document.createElement('dd'));
  detail.appendChild(document.createElement('code')).textContent = value;
  detail.appendChild(copyButton(value, name));
}

function fields(entry) {
  const rows = [
    ['channel', entry.channel],
    ['offset', String(entry.offset)],
    ['source', entry.source || '-'],
    ['level', `${entry.level} (severity ${entry.severity})`],
    ['time (UTC)', `${formatTime(entry.time, true, new Date(0))} UTC`],
    ['time (local)', `${formatTime(entry.time, false, new Date(0))} ${zoneLabel(false)}`],
    ['time (as sent)', String(entry.time)],
  ];
  if (entry.trace_id) rows.push(['trace id', entry.trace_id], ['span id', entry.span_id || '-']);
  return rows;
}

export class Details {
  #el;
  #returnTo = null;

  /** `el`: { panel, title, body, close } elements. */
  constructor(el) {
    this.#el = el;
    el.close.addEventListener('click', () => this.close());
  }

  get isOpen() {
    return !this.#el.panel.hidden;
  }

  open(entry) {
    const { panel, title, body, close } = this.#el;
    if (!this.isOpen) this.#returnTo = document.activeElement;
    title.textContent = entry.sample ? 'Sample entry' : `Entry ${entry.offset} of ${entry.channel}`;
    body.textContent = '';
    const message = body.appendChild(document.createElement('section'));
    message.appendChild(document.createElement('h3')).textContent = 'Message';
    message.lastChild.appendChild(copyButton(String(entry.message ?? ''), 'message'));
    message.appendChild(document.createElement('pre')).textContent = entry.message ?? '';
    const about = body.appendChild(document.createElement('dl'));
    for (const [name, value] of fields(entry)) field(about, name, value);
    const attributes = Object.entries(entry.attributes ?? {});
    const section = body.appendChild(document.createElement('section'));
    section.appendChild(document.createElement('h3')).textContent =
      `Attributes (${attributes.length})`;
    const list = section.appendChild(document.createElement('dl'));
    list.className = 'attributes';
    for (const [key, value] of attributes) {
      field(list, key, typeof value === 'string' ? value : JSON.stringify(value), `${key} =`);
    }
    const json = body.appendChild(document.createElement('p'));
    const { sample, ...plain } = entry;
    json.appendChild(copyButton(JSON.stringify(plain), 'the entry as JSON', 'Copy as JSON'));
    panel.hidden = false;
    close.focus();
  }

  close() {
    if (!this.isOpen) return;
    this.#el.panel.hidden = true;
    this.#returnTo?.focus?.();
    this.#returnTo = null;
  }
}
