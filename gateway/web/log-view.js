/**
 * The live list: a bounded store of entries and a virtual view of it.
 *
 * Smooth at 10,000 entries: arrivals are queued and applied once per animation frame; only
 * the rows in sight (plus a few) exist in the DOM, reused from frame to frame; the store
 * keeps the newest `maxLive` entries. Rows are one line high, or, wrapped, as high as they
 * measure (heights are kept per entry and summed per frame, a few microseconds at 10,000).
 *
 * It follows the newest entry until the reader scrolls up (or holds it with pause); then it
 * counts what arrives below and offers to jump back.
 */

import { entryKey } from './lib/logs-client.js';
import { formatTime, hueOf } from './format.js';
import { parseSearch, showMarked } from './search.js';

export const MAX_LIVE = 10000;
const OVERSCAN = 8;
const NO_SEARCH = parseSearch('');
let nextSeq = 0;

function attributesText(attributes) {
  return Object.entries(attributes ?? {})
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

function makeItem(entry, key = entryKey(entry)) {
  const attrs = attributesText(entry.attributes);
  const message = String(entry.message ?? '');
  const haystack = `${message}\n${entry.source ?? ''}\n${entry.channel}\n${attrs}`;
  return { entry, key, seq: (nextSeq += 1), message, attrs, haystack, height: 0, shown: false };
}

function makeRow() {
  const row = document.createElement('div');
  row.setAttribute('role', 'option');
  for (const name of ['time', 'lvl', 'chan', 'src', 'msg']) {
    row.appendChild(document.createElement('span')).className = name;
  }
  row.lastChild.append(document.createElement('span'), document.createElement('span'));
  row.lastChild.firstChild.className = 'text';
  row.lastChild.lastChild.className = 'attrs';
  return row;
}

export class LogView {
  #el;
  #rowHeight;
  #maxLive;
  #onOpen;
  #onSources;
  #onTop;
  #items = [];
  #samples = [];
  #keys = new Set();
  #sources = new Set();
  #visible = [];
  #pending = [];
  #frame = 0;
  #refilter = false;
  #filter = { minSeverity: 0, source: '', search: NO_SEARCH };
  #following = true; // the newest entry is in sight, and stays so as entries arrive
  #held = false; // paused by the reader (Pause, Space): no scrolling even at the bottom
  #autoTop = -1; // the scrollTop this view set last: its scroll event is not the reader's
  #unseen = 0; // entries shown below while not following
  #shiftUp = 0; // pixels of shown entries trimmed from the top since the last render
  #wrap = false;
  #utc = false;
  #look = 0; // bumped when times or wrapping change: every row is filled again
  #selected = null;
  #rows = [];

  /** `el`: { list (the scrolling box), spacer, rows, count, jump, sampleNote } elements. */
  constructor(
    el,
    { rowHeight = 24, maxLive = MAX_LIVE, onOpen = () => {}, onSources = () => {}, onTop = () => {} },
  ) {
    this.#el = el;
    this.#onTop = onTop;
    this.#rowHeight = rowHeight;
    this.#maxLive = maxLive;
    this.#onOpen = onOpen;
    this.#onSources = onSources;
    el.list.addEventListener('scroll', () => this.#onScroll(), { passive: true });
    el.list.addEventListener('click', (e) => this.#onClick(e));
    el.list.addEventListener('keydown', (e) => this.#onKey(e));
    el.jump.addEventListener('click', () => this.jumpToLatest());
    globalThis.addEventListener('resize', () => this.#relayout());
  }

  /** The sample entries (replacing any before): shown only while no real entry is held. */
  setSamples(entries) {
    this.#samples = entries.map((entry, i) => makeItem(entry, `sample|${i}`));
    for (const item of this.#samples) this.#noteSource(item.entry.source);
    this.#changed();
  }

  /** Queue entries for the next frame (a burst costs one render). */
  add(entries) {
    this.#pending.push(...entries);
    if (this.#pending.length > 2 * this.#maxLive) this.#pending.splice(0, this.#maxLive);
    this.#schedule();
  }

  /** Earlier entries (oldest first) above those held: what the reader looks at stays in
   * place. Past `maxLive`, the newest go (the reader is reading back, not following). */
  prepend(entries) {
    this.#flushPending();
    const fresh = [];
    for (const entry of entries) {
      const key = entryKey(entry);
      if (this.#keys.has(key)) continue;
      this.#keys.add(key);
      this.#noteSource(entry.source);
      fresh.push(makeItem(entry, key));
    }
    if (!fresh.length) return 0;
    this.#following = false;
    const before = this.#visible.reduce((sum, item) => sum + this.#heightOf(item), 0);
    this.#items.unshift(...fresh);
    for (const item of this.#items.splice(this.#maxLive)) this.#keys.delete(item.key);
    this.#filterAll();
    const after = this.#visible.reduce((sum, item) => sum + this.#heightOf(item), 0);
    this.#shiftUp -= after - before; // scroll down by what came in above
    this.#schedule();
    return fresh.length;
  }

  /** Show the oldest entry held, and stop following (after a jump to a time). */
  showStart() {
    this.#flushPending();
    this.#following = false;
    this.#shiftUp = 0;
    this.#render();
    this.#el.list.scrollTop = 0;
    this.#autoTop = 0;
    this.#schedule();
  }

  /** Rows this many pixels high (the density setting). */
  setRowHeight(height) {
    this.#rowHeight = height;
    this.#relayout();
  }

  /** Keep only the entries `keep(entry)` accepts (e.g. of the channels still selected). */
  retain(keep) {
    this.#flushPending();
    const kept = this.#items.filter((item) => keep(item.entry));
    for (const item of this.#items) if (!keep(item.entry)) this.#keys.delete(item.key);
    this.#items = kept;
    this.#pending = this.#pending.filter(keep);
    this.#changed();
  }

  clear() {
    this.#items = [];
    this.#pending = [];
    this.#keys.clear();
    this.#unseen = 0;
    this.#following = true;
    this.#changed();
  }

  setFilter({ minSeverity, source, text }) {
    const next = { ...this.#filter };
    if (minSeverity !== undefined) next.minSeverity = minSeverity;
    if (source !== undefined) next.source = source;
    if (text !== undefined) next.search = parseSearch(text);
    this.#filter = next;
    this.#look += 1; // highlights change
    this.#changed();
    return next.search.error;
  }

  setHeld(held) {
    this.#held = held;
    if (held) this.#following = false;
    else this.jumpToLatest();
    this.#schedule();
  }

  setWrap(wrap) {
    this.#wrap = wrap;
    this.#el.list.classList.toggle('wrap', wrap);
    this.#relayout();
  }

  setUtc(utc) {
    this.#utc = utc;
    this.#look += 1;
    this.#schedule();
  }

  jumpToLatest() {
    this.#held = false;
    this.#following = true;
    this.#unseen = 0;
    this.#schedule();
  }

  /** Move the selected row by `delta` (the list's arrow keys), keeping it in sight. */
  select(delta) {
    const at = this.#visible.indexOf(this.#selected);
    const base = at < 0 ? (delta > 0 ? -1 : this.#visible.length) : at;
    const next = Math.max(0, Math.min(this.#visible.length - 1, base + delta));
    this.#selected = this.#visible[next] ?? null;
    if (!this.#selected) return;
    const top = this.#tops()[next];
    const { list } = this.#el;
    const bottom = top + this.#heightOf(this.#selected);
    if (top < list.scrollTop || bottom > list.scrollTop + list.clientHeight) {
      this.#following = false;
      list.scrollTop = top - list.clientHeight / 2;
    }
    this.#schedule();
  }

  /** The real entries the list shows now (filters applied), oldest first. */
  shown() {
    this.#flushPending();
    return this.#visible.filter((item) => !item.entry.sample).map((item) => item.entry);
  }

  get size() {
    return this.#items.length;
  }

  get following() {
    return this.#following && !this.#held;
  }

  // -- arrivals and filters -------------------------------------------------------------

  #changed() {
    this.#refilter = true;
    this.#schedule();
  }

  #schedule() {
    if (!this.#frame) this.#frame = requestAnimationFrame(() => this.#flush());
  }

  #flushPending() {
    const fresh = this.#take();
    this.#trim();
    if (this.#refilter) this.#filterAll();
    else for (const item of fresh) if (this.#matches(item)) this.#show(item);
    if (!this.following) this.#unseen += fresh.filter((item) => item.shown).length;
  }

  #flush() {
    this.#frame = 0;
    this.#flushPending();
    this.#render();
  }

  #take() {
    const fresh = [];
    for (const entry of this.#pending) {
      const key = entryKey(entry);
      if (this.#keys.has(key)) continue; // the same entry via two patterns, or restored
      this.#keys.add(key);
      this.#noteSource(entry.source);
      fresh.push(makeItem(entry, key));
    }
    this.#pending = [];
    if (fresh.length && !this.#items.length && this.#samples.length) this.#refilter = true;
    this.#items.push(...fresh);
    return fresh;
  }

  #trim() {
    const excess = this.#items.length - this.#maxLive;
    if (excess <= 0) return;
    let shown = 0;
    for (const item of this.#items.splice(0, excess)) {
      this.#keys.delete(item.key);
      if (!item.shown) continue;
      this.#shiftUp += this.#heightOf(item);
      item.shown = false;
      shown += 1;
    }
    // The oldest shown lead #visible (it is in the items' order): no filtering all again,
    // which at 100,000 entries cost a frame every batch.
    this.#visible.splice(0, shown);
  }

  #filterAll() {
    for (const item of this.#visible) item.shown = false;
    this.#visible = [];
    for (const item of this.#items.length ? this.#items : this.#samples) {
      if (this.#matches(item)) this.#show(item);
    }
    this.#refilter = false;
  }

  #show(item) {
    item.shown = true;
    this.#visible.push(item);
  }

  #matches(item) {
    const { minSeverity, source, search } = this.#filter;
    const { entry } = item;
    return (
      (entry.severity ?? 9) >= minSeverity &&
      (!source || entry.source === source) &&
      (search.empty || search.test(item.haystack))
    );
  }

  #noteSource(source) {
    if (!source || this.#sources.has(source)) return;
    this.#sources.add(source);
    this.#onSources([...this.#sources].sort());
  }

  // -- scrolling and keys ----------------------------------------------------------------

  #onScroll() {
    const { list } = this.#el;
    if (Math.abs(list.scrollTop - this.#autoTop) < 1) return; // our own follow
    const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 2;
    if (atBottom && !this.#held) {
      this.#following = true;
      this.#unseen = 0;
    } else if (!atBottom) {
      this.#following = false;
    }
    // The reader scrolled to the top of a list taller than the view: earlier entries.
    const tall = list.scrollHeight > list.clientHeight;
    if (tall && this.#items.length && list.scrollTop < 2 * this.#rowHeight) this.#onTop();
    this.#schedule();
  }

  #onClick(event) {
    const row = event.target.closest?.('.row');
    if (!row?.item) return;
    this.#selected = row.item;
    this.#schedule();
    this.#onOpen(row.item.entry);
  }

  #onKey(event) {
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 };
    if (event.key in moves) {
      event.preventDefault();
      this.select(moves[event.key]);
    } else if (event.key === 'Enter' && this.#selected) {
      event.preventDefault();
      this.#onOpen(this.#selected.entry);
    }
  }

  #relayout() {
    for (const item of this.#visible) item.height = 0; // wrapped rows measure again
    this.#look += 1;
    this.#schedule();
  }

  // -- rendering ------------------------------------------------------------------------

  #heightOf(item) {
    return this.#wrap && item.height ? item.height : this.#rowHeight;
  }

  #tops() {
    const tops = new Array(this.#visible.length + 1);
    tops[0] = 0;
    for (let i = 0; i < this.#visible.length; i += 1) {
      tops[i + 1] = tops[i] + this.#heightOf(this.#visible[i]);
    }
    return tops;
  }

  #render() {
    const { list, spacer, rows } = this.#el;
    const tops = this.#tops();
    const total = tops[tops.length - 1];
    spacer.style.height = `${total}px`;
    if (this.following) {
      list.scrollTop = total;
      this.#autoTop = list.scrollTop;
    } else if (this.#shiftUp) {
      list.scrollTop -= this.#shiftUp; // what the reader looks at stays in place
      this.#autoTop = list.scrollTop;
    }
    this.#shiftUp = 0;
    const top = list.scrollTop;
    let first = 0;
    let high = this.#visible.length;
    while (first < high) {
      const mid = (first + high) >> 1;
      if (tops[mid + 1] <= top) first = mid + 1;
      else high = mid;
    }
    first = Math.max(0, first - OVERSCAN);
    let last = first;
    while (last < this.#visible.length && tops[last] < top + list.clientHeight) last += 1;
    last = Math.min(this.#visible.length, last + OVERSCAN);
    rows.style.transform = `translateY(${tops[first]}px)`;
    while (this.#rows.length < last - first) this.#rows.push(rows.appendChild(makeRow()));
    while (this.#rows.length > Math.max(0, last - first)) this.#rows.pop().remove();
    const now = new Date();
    let dated = false;
    for (let i = first; i < last; i += 1) {
      this.#fill(this.#rows[i - first], this.#visible[i], i, now);
      dated ||= this.#rows[i - first].firstChild.childElementCount > 0;
    }
    list.classList.toggle('dated', dated); // a wider time column while a date shows
    if (this.#wrap && this.#measure(first, last)) this.#schedule();
    this.#renderStatus();
  }

  #fill(row, item, index, now) {
    row.setAttribute('aria-posinset', String(index + 1));
    row.setAttribute('aria-setsize', String(this.#visible.length));
    const selected = item === this.#selected;
    row.setAttribute('aria-selected', String(selected));
    if (selected) this.#el.list.setAttribute('aria-activedescendant', `row-${item.seq}`);
    if (row.item === item && row.look === this.#look) return;
    row.item = item;
    row.look = this.#look;
    const { entry } = item;
    const level = String(entry.level ?? 'info');
    const search = this.#filter.search;
    const [time, lvl, chan, src, msg] = row.children;
    row.id = `row-${item.seq}`;
    row.className = entry.sample ? 'row sample' : 'row';
    row.dataset.level = level;
    row.style.setProperty('--h', String(hueOf(entry.source ?? '')));
    const when = formatTime(entry.time, this.#utc, now); // "[YYYY-MM-DD ]HH:MM:SS.mmm"
    time.textContent = '';
    if (when.length > 12) {
      const date = time.appendChild(document.createElement('span'));
      date.className = 'date';
      date.textContent = when.slice(0, -12);
    }
    time.append(when.slice(-12));
    lvl.textContent = level;
    lvl.className = `lvl lvl-${level}`;
    showMarked(chan, entry.channel ?? '', search);
    chan.title = entry.channel ?? '';
    showMarked(src, entry.source ?? '', search);
    const text = this.#wrap ? item.message : item.message.replace(/\r?\n/g, ' ⏎ ');
    showMarked(msg.firstChild, text, search);
    showMarked(msg.lastChild, item.attrs, search);
  }

  /** Record the wrapped rows' heights; true when one changed (render again). */
  #measure(first, last) {
    let changed = false;
    for (let i = first; i < last; i += 1) {
      const item = this.#visible[i];
      const height = this.#rows[i - first].offsetHeight;
      if (height && height !== item.height) {
        item.height = height;
        changed = true;
      }
    }
    return changed;
  }

  #renderStatus() {
    const total = this.#items.length;
    const samples = total ? 0 : this.#samples.length;
    const shown = this.#visible.length - (samples ? this.#countShownSamples() : 0);
    const parts = [`${total.toLocaleString('en')} ${total === 1 ? 'entry' : 'entries'}`];
    if (samples) parts.push(`${samples} samples`);
    this.#el.sampleNote.hidden = samples === 0;
    if (shown !== total) parts.push(`${shown.toLocaleString('en')} shown`);
    if (this.#held) parts.push('paused');
    this.#el.count.textContent = parts.join(' · ');
    const { jump } = this.#el;
    jump.hidden = this.following;
    jump.textContent = this.#unseen
      ? `${this.#unseen.toLocaleString('en')} new, jump to latest`
      : 'Jump to latest';
  }

  #countShownSamples() {
    return this.#samples.filter((item) => item.shown).length;
  }
}
