/**
 * The live list: the entries held (entries.js), those the filter lets through and where
 * their rows sit (filter.js, shown.js), the rows in sight (rows.js), and following the
 * newest (follow.js).
 *
 * Smooth at 100,000 entries: arrivals are queued and applied once per animation frame; each
 * is filtered once, on arrival, and its row's place added to running sums; only the rows in
 * sight (plus a few) exist in the DOM, each kept with its entry while in sight, so a frame
 * fills only the rows that came into sight. Past `maxLive` the oldest entries go. No frame
 * walks all entries; a filter change does, once. Nothing is kept per entry beside the
 * client's entry object (no wrapper, key or text): the heap a major collection walks holds
 * the entries and little else.
 */

import { Entries } from './entries.js';
import { Filter } from './filter.js';
import { Follow } from './follow.js';
import { Rows } from './rows.js';
import { Shown } from './shown.js';

export const MAX_LIVE = 10000;
const OVERSCAN = 8;
const MINUTE = 60_000; // rows are filled again each minute: "today" drops its date

export class LogView {
  #el;
  #rowHeight;
  #onOpen;
  #onTop;
  #entries;
  #filter = new Filter();
  #shown;
  #rows;
  #follow = new Follow();
  #samples = [];
  #frame = 0;
  #refilter = false;
  #shiftUp = 0; // pixels of shown entries gone from the top since the last render
  #wrap = false;
  #utc = false;
  #lookAt = 0; // when the rows' look was set (a minute later, set again)
  #selected = null;
  #status = ''; // what the status line and the jump button show now

  /** `el`: { list (the scrolling box), spacer, rows, count, jump, sampleNote } elements. */
  constructor(
    el,
    { rowHeight = 24, maxLive = MAX_LIVE, onOpen = () => {}, onSources = () => {}, onTop = () => {} },
  ) {
    this.#el = el;
    this.#onTop = onTop;
    this.#rowHeight = rowHeight;
    this.#onOpen = onOpen;
    this.#entries = new Entries(maxLive, onSources);
    this.#shown = new Shown(rowHeight);
    this.#rows = new Rows(el.rows);
    this.#newLook();
    el.list.addEventListener('scroll', () => this.#onScroll(), { passive: true });
    el.list.addEventListener('click', (e) => this.#onClick(e));
    el.list.addEventListener('keydown', (e) => this.#onKey(e));
    el.jump.addEventListener('click', () => this.jumpToLatest());
    globalThis.addEventListener('resize', () => this.#relayout());
  }

  /** The sample entries (replacing any before): shown only while no real entry is held. */
  setSamples(entries) {
    this.#samples = entries;
    for (const entry of entries) this.#entries.noteSource(entry.source);
    this.#changed();
  }

  /** Queue entries for the next frame (a burst costs one render). */
  add(entries) {
    this.#entries.queue(entries);
    this.#schedule();
  }

  /** Earlier entries (oldest first) above those held: what the reader looks at stays in
   * place. Past `maxLive`, the newest go (the reader is reading back, not following). */
  prepend(entries) {
    this.#flushPending();
    const fresh = this.#entries.prepend(entries);
    if (!fresh.length) return 0;
    this.#follow.stop();
    const before = this.#shown.total;
    this.#filterAll();
    this.#shiftUp -= this.#shown.total - before; // scroll down by what came in above
    this.#schedule();
    return fresh.length;
  }

  /** Show the oldest entry held, and stop following (after a jump to a time). */
  showStart() {
    this.#flushPending();
    this.#follow.stop();
    this.#shiftUp = 0;
    this.#render();
    this.#el.list.scrollTop = 0;
    this.#follow.scrolledBy(this.#el.list);
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
    this.#entries.retain(keep);
    this.#changed();
  }

  clear() {
    this.#entries.clear();
    this.#follow.jump();
    this.#changed();
  }

  setFilter(parts) {
    const error = this.#filter.set(parts);
    this.#newLook(); // highlights change
    this.#changed();
    return error;
  }

  setHeld(held) {
    this.#follow.hold(held);
    this.#schedule();
  }

  setWrap(wrap) {
    this.#wrap = wrap;
    this.#el.list.classList.toggle('wrap', wrap);
    this.#relayout();
  }

  setUtc(utc) {
    this.#utc = utc;
    this.#newLook();
    this.#schedule();
  }

  jumpToLatest() {
    this.#follow.jump();
    this.#schedule();
  }

  /** Move the selected row by `delta` (the list's arrow keys), keeping it in sight. */
  select(delta) {
    const shown = this.#shown.items;
    const at = shown.indexOf(this.#selected);
    const base = at < 0 ? (delta > 0 ? -1 : shown.length) : at;
    const next = Math.max(0, Math.min(shown.length - 1, base + delta));
    this.#selected = shown[next] ?? null;
    if (!this.#selected) return;
    const top = this.#shown.top(next);
    const { list } = this.#el;
    const bottom = top + this.#shown.heightOf(next);
    if (top < list.scrollTop || bottom > list.scrollTop + list.clientHeight) {
      this.#follow.stop();
      list.scrollTop = top - list.clientHeight / 2;
    }
    this.#schedule();
  }

  /** The real entries the list shows now (filters applied), oldest first. */
  shown() {
    this.#flushPending();
    return this.#shown.items.filter((entry) => !entry.sample);
  }

  get size() {
    return this.#entries.size;
  }

  get following() {
    return this.#follow.active;
  }

  // -- arrivals and filters -------------------------------------------------------------

  #changed() {
    this.#refilter = true;
    this.#schedule();
  }

  #schedule() {
    if (!this.#frame) this.#frame = requestAnimationFrame(() => this.#flush());
  }

  #flush() {
    this.#frame = 0;
    this.#flushPending();
    this.#render();
  }

  /** Apply what arrived since the last frame: each new entry filtered once. */
  #flushPending() {
    const wasEmpty = this.#entries.size === 0;
    const fresh = this.#entries.take();
    if (fresh.length && wasEmpty && this.#samples.length) this.#refilter = true; // samples go
    const passed = fresh.filter((entry) => this.#filter.matches(entry));
    if (!this.#refilter) for (const entry of passed) this.#shown.push(entry);
    this.#shiftUp += this.#shown.drop(this.#entries.trim()); // the oldest go
    if (this.#refilter) this.#filterAll();
    this.#follow.arrived(passed.length);
  }

  #filterAll() {
    const all = this.#entries.size ? this.#entries.items : this.#samples;
    this.#shown.reset(all.filter((entry) => this.#filter.matches(entry)));
    this.#refilter = false;
  }

  // -- scrolling and keys ----------------------------------------------------------------

  #onScroll() {
    const { list } = this.#el;
    if (!this.#follow.readerScrolled(list)) return; // our own follow
    // The reader scrolled to the top of a list taller than the view: earlier entries.
    const tall = list.scrollHeight > list.clientHeight;
    if (tall && this.#entries.size && list.scrollTop < 2 * this.#rowHeight) this.#onTop();
    this.#schedule();
  }

  #onClick(event) {
    const row = event.target.closest?.('.row');
    if (!row?.entry) return;
    this.#selected = row.entry;
    this.#schedule();
    this.#onOpen(row.entry);
  }

  #onKey(event) {
    const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: 10, PageUp: -10 };
    if (event.key in moves) {
      event.preventDefault();
      this.select(moves[event.key]);
    } else if (event.key === 'Enter' && this.#selected) {
      event.preventDefault();
      this.#onOpen(this.#selected);
    }
  }

  /** Sizes changed (wrap, density, window): wrapped rows measure again, all fill again. */
  #relayout() {
    this.#shown.setGeometry(this.#rowHeight, this.#wrap);
    this.#newLook();
    this.#schedule();
  }

  #newLook() {
    this.#lookAt = Date.now();
    const look = { utc: this.#utc, wrap: this.#wrap, search: this.#filter.search };
    this.#rows.setLook({ ...look, now: new Date(this.#lookAt) });
  }

  // -- rendering ------------------------------------------------------------------------

  #render() {
    const { list, spacer, rows } = this.#el;
    if (Date.now() - this.#lookAt > MINUTE) this.#newLook();
    // Read the layout first (still clean from the last frame), then write the DOM once.
    const height = list.clientHeight;
    const total = this.#shown.total;
    const top = this.following
      ? Math.max(0, total - height)
      : Math.max(0, list.scrollTop - this.#shiftUp); // what the reader looks at stays put
    const first = Math.max(0, this.#shown.indexAt(top) - OVERSCAN);
    const last = Math.min(this.#shown.length, this.#shown.indexAt(top + height) + 1 + OVERSCAN);
    this.#write(spacer.style, 'height', `${total}px`);
    this.#write(rows.style, 'transform', `translateY(${this.#shown.top(first)}px)`);
    const items = this.#shown.items.slice(first, last);
    const dated = this.#rows.draw(items, first, this.#shown.length, this.#selected);
    list.classList.toggle('dated', dated); // a wider time column while a date shows
    const active = this.#rows.of(this.#selected)?.id;
    if (active && list.getAttribute('aria-activedescendant') !== active) {
      list.setAttribute('aria-activedescendant', active);
    }
    if (this.following || this.#shiftUp) {
      list.scrollTop = this.following ? total : top; // (the browser stops at the bottom)
      this.#follow.scrolledBy(list);
    }
    this.#shiftUp = 0;
    if (this.#wrap && this.#measure(first, last)) this.#schedule();
    this.#renderStatus();
  }

  /** Set `style[name]` unless it already holds `value` (a write costs a restyle). */
  #write(style, name, value) {
    if (style[name] !== value) style[name] = value;
  }

  /** Record the wrapped rows' heights; true when one changed (render again). */
  #measure(first, last) {
    let changed = false;
    for (let i = first; i < last; i += 1) {
      const row = this.#rows.of(this.#shown.items[i]);
      changed = this.#shown.measured(i, row?.offsetHeight ?? 0) || changed;
    }
    return changed;
  }

  #renderStatus() {
    const total = this.#entries.size;
    const samples = total ? 0 : this.#samples.length;
    const shown = total ? this.#shown.length : 0; // (without entries, samples are shown)
    const parts = [`${total.toLocaleString('en')} ${total === 1 ? 'entry' : 'entries'}`];
    if (samples) parts.push(`${samples} samples`);
    if (shown !== total) parts.push(`${shown.toLocaleString('en')} shown`);
    if (this.#follow.held) parts.push('paused');
    const { unseen } = this.#follow;
    const jump = unseen ? `${unseen.toLocaleString('en')} new, jump to latest` : 'Jump to latest';
    const status = `${parts.join(' · ')}|${this.following}|${jump}|${samples}`;
    if (status === this.#status) return; // unchanged: no text written, no restyle
    this.#status = status;
    this.#el.count.textContent = parts.join(' · ');
    this.#el.sampleNote.hidden = samples === 0;
    this.#el.jump.hidden = this.following;
    this.#el.jump.textContent = jump;
  }
}
