/**
 * The list's filter: a lowest severity, one source, and the search box's terms. Each entry
 * is tested once when it arrives; the whole list only when the filter itself changes.
 */

import { attributesText, messageOf } from './format.js';
import { parseSearch } from './search.js';

/** What a search looks at: message, source, channel and attributes, a line each. Made for
 * each test rather than kept per entry (100,000 kept texts cost the collector more than a
 * filter change costs making them again). */
function searchText(entry) {
  const attrs = attributesText(entry.attributes);
  return `${messageOf(entry)}\n${entry.source ?? ''}\n${entry.channel}\n${attrs}`;
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
      (this.search.empty || this.search.test(searchText(entry)))
    );
  }
}
