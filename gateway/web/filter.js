/**
 * The list's filter: a lowest severity, one source, and the search box's terms. Each entry
 * is tested once when it arrives; the whole list only when the filter itself changes.
 */

import { attributesText, messageOf } from './format.js';
import { parseSearch } from './search.js';

/** What a search looks at: message, source, channel and attributes. Taken from the entry
 * for each test, each searched as it is: kept per entry, a joined text cost the collector
 * 100,000 more strings to walk; joined for each test, a search over 100,000 entries took
 * 3x longer (docs/PERFORMANCE.md). */
function searchedTexts(entry) {
  return [messageOf(entry), entry.source ?? '', entry.channel, attributesText(entry.attributes)];
}

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

  /** Whether `entry` passes. */
  matches(entry) {
    return (
      (entry.severity ?? 9) >= this.minSeverity &&
      (!this.source || entry.source === this.source) &&
      (this.search.empty || this.search.test(searchedTexts(entry)))
    );
  }
}
