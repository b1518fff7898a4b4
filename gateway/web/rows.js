/**
 * The rows in sight. A DOM row stays with its entry from frame to frame: following a stream,
 * a frame fills only the rows of the entries that came into sight, and the rows that left
 * are reused for them (filling every row in sight again cost a time format and a restyle
 * each, forty rows a frame). A row is filled again when the look changes (times, search
 * marks, wrapping).
 */

import { attributesText, formatTime, hueOf, messageOf } from './format.js';
import { showMarked } from './search.js';

let rowsMade = 0;

function makeRow() {
  const row = document.createElement('div');
  row.id = `row-${(rowsMade += 1)}`; // the list's aria-activedescendant names it
  row.setAttribute('role', 'option');
  for (const name of ['time', 'lvl', 'chan', 'src', 'msg']) {
    row.appendChild(document.createElement('span')).className = name;
  }
  row.lastChild.append(document.createElement('span'), document.createElement('span'));
  row.lastChild.firstChild.className = 'text';
  row.lastChild.lastChild.className = 'attrs';
  return row;
}

function setAttribute(row, name, value) {
  if (row.getAttribute(name) !== value) row.setAttribute(name, value);
}

/** Fill `row` with `entry` as `look` says ({ utc, wrap, search, now }). */
function fill(row, entry, look) {
  const level = String(entry.level ?? 'info');
  const [time, lvl, chan, src, msg] = row.children;
  row.entry = entry;
  row.className = entry.sample ? 'row sample' : 'row';
  row.dataset.level = level;
  row.style.setProperty('--h', String(hueOf(entry.source ?? '')));
  const when = formatTime(entry.time, look.utc, look.now); // "[YYYY-MM-DD ]HH:MM:SS.mmm"
  row.dated = when.length > 12;
  time.textContent = '';
  if (row.dated) {
    const date = time.appendChild(document.createElement('span'));
    date.className = 'date';
    date.textContent = when.slice(0, -12);
  }
  time.append(when.slice(-12));
  lvl.textContent = level;
  lvl.className = `lvl lvl-${level}`;
  showMarked(chan, entry.channel ?? '', look.search);
  chan.title = entry.channel ?? '';
  showMarked(src, entry.source ?? '', look.search);
  const message = messageOf(entry);
  const text = look.wrap ? message : message.replace(/\r?\n/g, ' ⏎ ');
  showMarked(msg.firstChild, text, look.search);
  showMarked(msg.lastChild, attributesText(entry.attributes), look.search);
}

export class Rows {
  #box;
  #byEntry = new Map(); // entry -> its row, for the entries in sight
  #spare = []; // rows out of the document, for the next entries to come into sight
  #look = null;

  /** `box`: the element the rows go in, in order. */
  constructor(box) {
    this.#box = box;
  }

  /** From now on rows look as `look` says ({ utc, wrap, search, now }): all filled again. */
  setLook(look) {
    this.#look = look;
  }

  /** The rows of `entries` (in order), the first at position `first` (0-based) of `size`,
   * `selected` marked; true when one of them shows a date. */
  draw(entries, first, size, selected) {
    const wanted = new Set(entries);
    for (const [entry, row] of this.#byEntry) {
      if (wanted.has(entry)) continue;
      this.#byEntry.delete(entry);
      row.remove();
      this.#spare.push(row);
    }
    let next = this.#box.firstChild; // rows are moved only where they are out of order
    let dated = false;
    entries.forEach((entry, i) => {
      const row = this.#rowOf(entry);
      setAttribute(row, 'aria-posinset', String(first + i + 1));
      setAttribute(row, 'aria-setsize', String(size));
      setAttribute(row, 'aria-selected', String(entry === selected));
      if (row === next) next = row.nextSibling;
      else this.#box.insertBefore(row, next);
      dated ||= row.dated;
    });
    return dated;
  }

  /** The row drawn for `entry` (undefined: not in sight). */
  of(entry) {
    return this.#byEntry.get(entry);
  }

  #rowOf(entry) {
    let row = this.#byEntry.get(entry);
    if (!row) {
      row = this.#spare.pop() ?? makeRow();
      this.#byEntry.set(entry, row);
    }
    if (row.entry !== entry || row.look !== this.#look) {
      fill(row, entry, this.#look);
      row.look = this.#look;
    }
    return row;
  }
}
