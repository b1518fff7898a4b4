/**
 * The list's filter: a lowest severity, one source, and the search box's terms. Each entry
 * is tested once when it arrives; the whole list only when the filter itself changes.
 */

import { parseSearch } from './search.js';

export class Filter {
  minSeverity = 0;
  source = '';
  search = parseSearch('');

  /** Change the parts given; the search's error ('' when it parsed). */
  set({ minSeverity, source, text }) {
    if (minSeverity !== undefined) this.minSeverity = minSeverity;
    if (source !== undefined) this.source = source;
    if (text !== undefined) this.search = parseSearch(text);
    return this.search.error;
  }

  /** Whether `item` (of entries.js) passes. */
  matches(item) {
    const { entry } = item;
    return (
      (entry.severity ?? 9) >= this.minSeverity &&
      (!this.source || entry.source === this.source) &&
      (this.search.empty || this.search.test(item.haystack))
    );
  }
}
