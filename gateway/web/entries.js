/**
 * The entries the list holds: oldest first, each once (the same entry may come through two
 * patterns, or from sessionStorage and the stream), at most `max` of them. Arrivals wait in
 * a queue until the next frame takes them all at once; past `max` the oldest go.
 */

import { entryKey } from './lib/logs-client.js';

let nextSeq = 0;

function attributesText(attributes) {
  return Object.entries(attributes ?? {})
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

/** An entry with what the list needs of it, worked out once: its texts and what a search
 * looks at. `height` is its row's measured height (wrapped), `shown` whether it passes. */
export function makeItem(entry, key = entryKey(entry)) {
  const attrs = attributesText(entry.attributes);
  const message = String(entry.message ?? '');
  const haystack = `${message}\n${entry.source ?? ''}\n${entry.channel}\n${attrs}`;
  return { entry, key, seq: (nextSeq += 1), message, attrs, haystack, height: 0, shown: false };
}

export class Entries {
  #max;
  #onSources;
  #items = [];
  #queue = [];
  #keys = new Set();
  #sources = new Set();

  /** `onSources(sorted names)` is called when an entry brings a source not seen before. */
  constructor(max, onSources) {
    this.#max = max;
    this.#onSources = onSources;
  }

  /** The held entries as items, oldest first (the caller must not change the array). */
  get items() {
    return this.#items;
  }

  get size() {
    return this.#items.length;
  }

  /** Queue entries for the next `take` (a queue twice the bound drops its older half). */
  queue(entries) {
    for (const entry of entries) this.#queue.push(entry);
    if (this.#queue.length > 2 * this.#max) this.#queue.splice(0, this.#max);
  }

  /** The queued entries not held yet, now held (newest last): their items. */
  take() {
    const fresh = this.#fresh(this.#queue);
    this.#queue = [];
    for (const item of fresh) this.#items.push(item);
    return fresh;
  }

  /** The oldest items past the bound, no longer held. */
  trim() {
    const excess = this.#items.length - this.#max;
    if (excess <= 0) return [];
    const gone = this.#items.splice(0, excess);
    for (const item of gone) this.#keys.delete(item.key);
    return gone;
  }

  /** Earlier entries (oldest first) before those held; past the bound the newest go. The
   * items added (none: nothing new). */
  prepend(entries) {
    const fresh = this.#fresh(entries);
    if (!fresh.length) return fresh;
    this.#items = fresh.concat(this.#items);
    for (const item of this.#items.splice(this.#max)) this.#keys.delete(item.key);
    return fresh;
  }

  /** Keep only the entries (held or queued) that `keep(entry)` accepts. */
  retain(keep) {
    const kept = [];
    for (const item of this.#items) {
      if (keep(item.entry)) kept.push(item);
      else this.#keys.delete(item.key);
    }
    this.#items = kept;
    this.#queue = this.#queue.filter(keep);
  }

  clear() {
    this.#items = [];
    this.#queue = [];
    this.#keys.clear();
  }

  /** Items of the entries not held yet (each once), their sources noted. */
  #fresh(entries) {
    const fresh = [];
    for (const entry of entries) {
      const key = entryKey(entry);
      if (this.#keys.has(key)) continue;
      this.#keys.add(key);
      this.noteSource(entry.source);
      fresh.push(makeItem(entry, key));
    }
    return fresh;
  }

  /** Remember a source for the source filter (sample entries' sources too). */
  noteSource(source) {
    if (!source || this.#sources.has(source)) return;
    this.#sources.add(source);
    this.#onSources([...this.#sources].sort());
  }
}
