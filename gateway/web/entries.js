/**
 * The entries the list holds: oldest first, each once (the same entry may come through two
 * patterns, or from sessionStorage, the stream and a history page), at most `max` of them.
 * Arrivals wait in a queue until the next frame takes them all at once; past `max` the
 * oldest go.
 *
 * The list holds the client's entry objects themselves and nothing else per entry: at
 * 100,000 entries each object or string kept per entry is 100,000 more for every major
 * garbage collection to walk (a wrapper per entry with a key and a search text made the
 * page's heap twice as large, docs/PERFORMANCE.md). What a row or a search needs of an entry
 * is worked out when it is needed, and an entry is found again by channel, then offset.
 */

export class Entries {
  #max;
  #onSources;
  #items = [];
  #queue = [];
  #held = new Map(); // channel -> Map(offset -> the entry held)
  #sources = new Set();

  /** `onSources(sorted names)` is called when an entry brings a source not seen before. */
  constructor(max, onSources) {
    this.#max = max;
    this.#onSources = onSources;
  }

  /** The held entries, oldest first (the caller must not change the array). */
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

  /** The queued entries not held yet, now held (newest last). */
  take() {
    const fresh = this.#fresh(this.#queue);
    this.#queue = [];
    for (const entry of fresh) this.#items.push(entry);
    return fresh;
  }

  /** The oldest entries past the bound, no longer held. */
  trim() {
    const excess = this.#items.length - this.#max;
    if (excess <= 0) return [];
    const gone = this.#items.splice(0, excess);
    for (const entry of gone) this.#release(entry);
    return gone;
  }

  /** Earlier entries (oldest first) before those held; past the bound the newest go. The
   * entries added (none: nothing new). */
  prepend(entries) {
    const fresh = this.#fresh(entries);
    if (!fresh.length) return fresh;
    this.#items = fresh.concat(this.#items);
    for (const entry of this.#items.splice(this.#max)) this.#release(entry);
    return fresh;
  }

  /** Keep only the entries (held or queued) that `keep(entry)` accepts. */
  retain(keep) {
    const kept = [];
    for (const entry of this.#items) {
      if (keep(entry)) kept.push(entry);
      else this.#release(entry);
    }
    this.#items = kept;
    this.#queue = this.#queue.filter(keep);
  }

  clear() {
    this.#items = [];
    this.#queue = [];
    this.#held.clear();
  }

  /** The entries not held yet (each once), now counted as held, their sources noted. */
  #fresh(entries) {
    const fresh = [];
    for (const entry of entries) {
      let offsets = this.#held.get(entry.channel);
      if (!offsets) this.#held.set(entry.channel, (offsets = new Map()));
      // The same offset with another time: the gateway lost its history and counts again.
      if (offsets.get(entry.offset)?.time === entry.time) continue;
      offsets.set(entry.offset, entry);
      this.noteSource(entry.source);
      fresh.push(entry);
    }
    return fresh;
  }

  #release(entry) {
    const offsets = this.#held.get(entry.channel);
    if (offsets?.get(entry.offset) !== entry) return; // a later entry took its offset
    offsets.delete(entry.offset);
    if (!offsets.size) this.#held.delete(entry.channel);
  }

  /** Remember a source for the source filter (sample entries' sources too). */
  noteSource(source) {
    if (!source || this.#sources.has(source)) return;
    this.#sources.add(source);
    this.#onSources([...this.#sources].sort());
  }
}
