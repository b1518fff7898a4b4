/**
 * The entries the filter lets through, in order, and where each one's row sits: the list's
 * geometry. A row is `rowHeight` high, or, wrapped, as high as it measured.
 *
 * Row bottoms are running sums kept from frame to frame, so that no frame walks every entry
 * (at 100,000 entries a sum built per frame cost a 100,000-element array each time, and the
 * garbage collector's pauses with it): an arrival adds one bottom, the oldest going moves a
 * base, a row measured again sums again from that row on (once, at the next look). Bottoms
 * and measured heights are numbers in arrays beside the entries, not objects per entry.
 */

export class Shown {
  #items = [];
  #heights = []; // #heights[i]: row i's measured height, wrapped (0: not measured)
  #ends = []; // #ends[i]: the bottom of row i, from an origin that `#base` (row 0's top) keeps
  #base = 0;
  #stale = 0; // #ends from this index on are to be summed again
  #rowHeight;
  #wrap = false;

  constructor(rowHeight) {
    this.#rowHeight = rowHeight;
  }

  /** The entries shown, oldest first (the caller must not change the array). */
  get items() {
    return this.#items;
  }

  get length() {
    return this.#items.length;
  }

  /** Show these entries (in order) instead of those before. */
  reset(items) {
    this.#items = items;
    this.#heights = new Array(items.length).fill(0);
    this.#ends = [];
    this.#base = 0;
    this.#stale = 0;
  }

  /** Show `entry` after the others. */
  push(entry) {
    this.#items.push(entry);
    this.#heights.push(0);
  }

  /** Stop showing those of `gone` (the oldest entries held, oldest first) that are shown:
   * they lead the shown entries, in the same order. The pixels they took. */
  drop(gone) {
    let count = 0;
    for (const entry of gone) if (this.#items[count] === entry) count += 1;
    if (count === 0) return 0;
    this.#settle();
    const base = this.#ends[count - 1];
    const pixels = base - this.#base;
    this.#items.splice(0, count);
    this.#heights.splice(0, count);
    this.#ends.splice(0, count);
    this.#base = base;
    this.#stale = Math.max(0, this.#stale - count);
    return pixels;
  }

  /** Rows `rowHeight` pixels high, wrapped or not: every row is measured again. */
  setGeometry(rowHeight, wrap) {
    this.#rowHeight = rowHeight;
    this.#wrap = wrap;
    this.#heights.fill(0);
    this.#stale = 0;
  }

  /** The height of row `index`. */
  heightOf(index) {
    return (this.#wrap && this.#heights[index]) || this.#rowHeight;
  }

  /** Record row `index`'s measured height; true when it changed. */
  measured(index, height) {
    if (!height || height === this.#heights[index]) return false;
    this.#heights[index] = height;
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
    const count = this.#items.length;
    let i = Math.min(this.#stale, ends.length);
    let end = i > 0 ? ends[i - 1] : this.#base;
    for (; i < count; i += 1) {
      end += this.heightOf(i);
      ends[i] = end;
    }
    ends.length = count;
    this.#stale = count;
  }
}
