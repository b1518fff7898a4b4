/** How an entry looks: its time (UTC or local, with the date when not today), its colour, and
 * its message and attributes as text. */

const formatters = new Map();

function formatter(timeZone, withDate) {
  const key = `${timeZone}|${withDate}`;
  if (!formatters.has(key)) {
    const date = withDate ? { year: 'numeric', month: '2-digit', day: '2-digit' } : {};
    formatters.set(
      key,
      new Intl.DateTimeFormat('sv-SE', {
        ...date,
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
        fractionalSecondDigits: 3,
        hour12: false,
        timeZone,
      }),
    );
  }
  return formatters.get(key);
}

// The browser's zone, read once: asking builds a formatter, which cost more than the time
// format itself (a new system zone shows after a reload).
const LOCAL_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** The zone the page shows times in: 'UTC', or the browser's own. */
export function zoneOf(utc) {
  return utc ? 'UTC' : LOCAL_ZONE;
}

/** The zone's label for the toolbar, e.g. "UTC" or "Europe/Berlin (UTC+01:00)". */
export function zoneLabel(utc, now = new Date()) {
  if (utc) return 'UTC';
  const minutes = -now.getTimezoneOffset();
  const sign = minutes < 0 ? '-' : '+';
  const hh = String(Math.floor(Math.abs(minutes) / 60)).padStart(2, '0');
  const mm = String(Math.abs(minutes) % 60).padStart(2, '0');
  return `${zoneOf(false)} (UTC${sign}${hh}:${mm})`;
}

/** `time` (RFC 3339) as "HH:MM:SS.mmm", with "YYYY-MM-DD " before it when not today. */
export function formatTime(time, utc, now = new Date()) {
  const when = new Date(time);
  if (Number.isNaN(when.getTime())) return String(time ?? '');
  const timeZone = zoneOf(utc);
  const day = (d) => formatter(timeZone, true).format(d).slice(0, 10);
  return formatter(timeZone, day(when) !== day(now)).format(when).replace(',', '.');
}

// Hues far enough apart to tell sources apart at a glance, in light and dark themes.
const HUES = [212, 28, 140, 280, 350, 180, 48, 310, 100, 250, 0, 160];

/** A hue for `text`, the same on every load: a hash of its UTF-16 units picks one. */
export function hueOf(text) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16; // mix the high bits in: FNV alone gave etl and faas one colour
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  return HUES[(hash >>> 0) % HUES.length];
}

/** The message as text (a stream's entry always has one; a stored one may not). */
export function messageOf(entry) {
  return String(entry.message ?? '');
}

/** Attributes as `key=value key=value` (a value that is not a string as JSON). */
export function attributesText(attributes) {
  for (const _ in attributes ?? {}) {
    return Object.entries(attributes)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
  }
  return ''; // most entries have none: no array made for them
}
