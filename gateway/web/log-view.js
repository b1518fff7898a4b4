/**
 * The live list: a bounded store of entries and a virtual view of it.
 *
 * Smooth at 10,000 entries: arrivals are queued and applied once per animation frame; only
 * the rows in sight (plus a few) exist in the DOM, reused from frame to frame; the store
 * keeps the newest `maxLive` live entries, and the sample entries beside them.
 */

import { entryKey } from './lib/logs-client.js';

export const MAX_LIVE = 10000;
const OVERSCAN = 8;
const TIME = new Intl.DateTimeFormat('en-GB', {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  fractionalSecondDigits: 3,
  hour12: false,
});

function makeItem(entry) {
  const haystack = `${entry.message} ${entry.source} ${entry.channel}`.toLowerCase();
  return { entry, key: entryKey(entry), haystack, timeText: '' };
}

function makeRow() {
  const row = document.createElement('div');
  row.className = 'row';
  for (const name of ['time', 'lvl', 'src', 'msg']) {
    row.appendChild(document.createElement('span')).className = name;
  }
  return row;
}

function fillRow(row, item) {
  if (row.item === item) return;
  row.item = item;
  const { entry } = item;
  const level = String(entry.level ?? 'info');
  if (!item.timeText) item.timeText = TIME.format(new Date(entry.time));
  const [time, lvl, src, msg] = row.children;
  row.className = entry.sample ? 'row sample' : 'row';
  row.dataset.level = level;
  time.textContent = item.timeText;
  lvl.textContent = level;
  lvl.className = `lvl lvl-${level}`;
  src.textContent = entry.source ?? '';
  msg.textContent = entry.message ?? '';
  const trace = entry.trace_id ? `\ntrace ${entry.trace_id} span ${entry.span_id || '-'}` : '';
  row.title = `${entry.channel}${trace}\n${entry.message}`;
}

export class LogView {
  #el;
  #rowHeight;
  #maxLive;
  #items = [];
  #keys = new Set();
  #samples = 0; // samples come first in #items and are never trimmed
  #visible = [];
  #pending = [];
  #frame = 0;
  #refilter = false;
  #jump = false; // scroll to the newest entry at the next render (unless paused)
  #filter = { minSeverity: 0, text: '' };
  #paused = false;
  #rows = [];

  /** `el`: { list (the scrolling box), spacer, rows, count } elements. */
  constructor(el, { rowHeight = 24, maxLive = MAX_LIVE } = {}) {
    this.#el = el;
    this.#rowHeight = rowHeight;
    this.#maxLive = maxLive;
    el.list.addEventListener('scroll', () => this.#schedule(), { passive: true });
    globalThis.addEventListener('resize', () => this.#schedule());
  }

  /** Sample entries: shown first and kept however many live entries arrive. */
  addSamples(entries) {
    const fresh = entries.map(makeItem).filter((item) => !this.#keys.has(item.key));
    for (const item of fresh) this.#keys.add(item.key);
    this.#items.splice(this.#samples, 0, ...fresh);
    this.#samples += fresh.length;
    this.#refilter = true;
    this.#schedule();
  }

  /** Queue entries for the next frame (a burst costs one render). */
  add(entries) {
    this.#pending.push(...entries);
    if (this.#pending.length > 2 * this.#maxLive) this.#pending.splice(0, this.#maxLive);
    this.#schedule();
  }

  setFilter({ minSeverity = this.#filter.minSeverity, text = this.#filter.text }) {
    this.#filter = { minSeverity, text: text.trim().toLowerCase() };
    this.#refilter = true;
    this.#jump = true;
    this.#schedule();
  }

  setPaused(paused) {
    this.#paused = paused;
    this.#jump = !paused;
    this.#schedule();
  }

  get size() {
    return this.#items.length;
  }

  #schedule() {
    if (!this.#frame) this.#frame = requestAnimationFrame(() => this.#flush());
  }

  #flush() {
    this.#frame = 0;
    const fresh = this.#take();
    const trimmed = this.#trim();
    if (this.#refilter || trimmed) {
      this.#visible = this.#items.filter((item) => this.#matches(item));
      this.#refilter = false;
    } else {
      for (const item of fresh) if (this.#matches(item)) this.#visible.push(item);
    }
    this.#render(fresh.length > 0 || this.#jump);
    this.#jump = false;
  }

  #take() {
    const fresh = [];
    for (const entry of this.#pending) {
      const item = makeItem(entry);
      if (this.#keys.has(item.key)) continue; // the same entry via two patterns, or restored
      this.#keys.add(item.key);
      fresh.push(item);
    }
    this.#pending = [];
    this.#items.push(...fresh);
    return fresh;
  }

  #trim() {
    const excess = this.#items.length - this.#samples - this.#maxLive;
    if (excess <= 0) return false;
    for (const item of this.#items.splice(this.#samples, excess)) this.#keys.delete(item.key);
    return true;
  }

  #matches(item) {
    const { minSeverity, text } = this.#filter;
    return (item.entry.severity ?? 9) >= minSeverity && (!text || item.haystack.includes(text));
  }

  #render(jump) {
    const { list, spacer, rows } = this.#el;
    const height = this.#rowHeight;
    spacer.style.height = `${this.#visible.length * height}px`;
    if (jump && !this.#paused) list.scrollTop = list.scrollHeight;
    const first = Math.max(0, Math.floor(list.scrollTop / height) - OVERSCAN);
    const last = Math.min(
      this.#visible.length,
      Math.ceil((list.scrollTop + list.clientHeight) / height) + OVERSCAN,
    );
    rows.style.transform = `translateY(${first * height}px)`;
    while (this.#rows.length < last - first) this.#rows.push(rows.appendChild(makeRow()));
    while (this.#rows.length > Math.max(0, last - first)) this.#rows.pop().remove();
    for (let i = first; i < last; i += 1) fillRow(this.#rows[i - first], this.#visible[i]);
    this.#renderCount();
  }

  #renderCount() {
    const total = this.#items.length;
    const parts = [`${total.toLocaleString('en')} ${total === 1 ? 'entry' : 'entries'}`];
    if (this.#visible.length !== total) parts.push(`${this.#visible.length} shown`);
    if (this.#paused) parts.push('auto-scroll paused');
    this.#el.count.textContent = parts.join(' · ');
  }
}
