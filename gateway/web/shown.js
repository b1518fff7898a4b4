/**
 * The entries the filter lets through, in order, and where each one's row sits: the list's
 * geometry. A row is `rowHeight` high, or, wrapped, as high as it measured.
 *
 * Row bottoms are running sums kept from frame to frame, so that no frame walks every entry
 * (at 100,000 entries a sum built per frame cost a 100,000-element array each time, and the
 * garbage collector's pauses with it): an arrival adds one bottom, the oldest going moves a
 * base, a row measured again sums again from that row on (once, at the next look).
 */

export class Shown {
  #items = [];
  #ends = []; // #ends[i]: the bottom of row i, from an origin that `#base` (row 0's top) keeps
  #base = 0;
  #stale = 0; // #ends from this index on are to be summed again
  #rowHeight;
  #wrap = false;

  constructor(rowHeight) {
    this.#rowHeight = rowHeight;
  }

  /** The items shown, oldest first (the caller must not change the array). */
  get items() {
    return this.#items;
  }

  get length() {
    return this.#items.length;
  }

  /** Show these items (in order) instead of those before. */
  reset(items) {
    for (const item of this.#items) item.shown = false;
    for (const item of items) item.shown = true;
    this.#items = items;
    this.#ends = [];
    this.#base = 0;
    this.#stale = 0;
  }

  /** Show `item` after the others. */
  push(item) {
    item.shown = true;
    this.#items.push(item);
  }

  /** Stop showing the `count` oldest; the pixels they took. */
  dropOldest(count) {
    if (count <= 0) return 0;
    this.#settle();
    const base = this.#ends[count - 1];
    const gone = base - this.#base;
    for (const item of this.#items.splice(0, count)) item.shown = false;
    this.#ends.splice(0, count);
    this.#base = base;
    this.#stale = Math.max(0, this.#stale - count);
    return gone;
  }

  /** Rows `rowHeight` pixels high, wrapped or not: every row is measured again. */
  setGeometry(rowHeight, wrap) {
    this.#rowHeight = rowHeight;
    this.#wrap = wrap;
    this.#stale = 0;
  }

  heightOf(item) {
    return this.#wrap && item.height ? item.height : this.#rowHeight;
  }

  /** Record row `index`'s measured height; true when it changed. */
  measured(index, height) {
    const item = this.#items[index];
    if (!height || height === item.height) return false;
    item.height = height;
    this.#stale = Math.min(this.#stale, index);
    return true;
  }

  /** The top of row `index` (`length`: the bottom of the last). */
  top(index) {
    this.#settle();
    return (index > 0 ? this.#ends[index - 1] : this.#base) - this.#base;
  }

  get total() {
    return this.top(this.#items.length);
  }

  /** The index of the row at `y` pixels from the top (`length` past the last). */
  indexAt(y) {
    this.#settle();
    const at = y + this.#base;
    let low = 0;
    let high = this.#items.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.#ends[mid] <= at) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  #settle() {
    const ends = this.#ends;
    const items = this.#items;
    let i = Math.min(this.#stale, ends.length);
    let end = i > 0 ? ends[i - 1] : this.#base;
    for (; i < items.length; i += 1) {
      end += this.heightOf(items[i]);
      ends[i] = end;
    }
    ends.length = items.length;
    this.#stale = items.length;
  }
}
