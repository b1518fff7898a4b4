/**
 * The search box's language: words and "quoted phrases" (all must match, case-insensitive),
 * `/regex/` (case-insensitive unless it has upper-case letters), and `-word`, `-"phrase"` or
 * `-/regex/` (must not match).
 * A search looks at the message, source, channel and attributes (`key=value`), each on its
 * own: a term matches within one of them, and a regex's `^` and `$` hold at each one's ends.
 */

// A `/regex/` (which may hold spaces and escaped slashes), a "quoted phrase", or a word;
// any of them may start with -.
const TOKEN = /-?\/(?:\\.|[^/\\])+\/|-?"[^"]+"|\S+/g;

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function termRegex(token) {
  const quoted = /^"(.+)"$/.exec(token);
  if (quoted) return new RegExp(escape(quoted[1]), 'gi');
  const slashed = /^\/(.+)\/$/.exec(token);
  if (!slashed) return new RegExp(escape(token), 'gi');
  const source = slashed[1];
  return new RegExp(source, /[A-Z]/.test(source.replace(/\\./g, '')) ? 'g' : 'gi');
}

/** `{ test(texts), ranges(text), error }` for `text`; a bad regex is reported, not thrown.
 * `test(texts)`: every wanted term is found in one of the texts, no unwanted one in any. */
export function parseSearch(text) {
  const wanted = [];
  const unwanted = [];
  let error = '';
  for (const [token] of text.matchAll(TOKEN)) {
    const negated = token.length > 1 && token.startsWith('-');
    try {
      (negated ? unwanted : wanted).push(termRegex(negated ? token.slice(1) : token));
    } catch (err) {
      error = `${token}: ${err.message}`;
    }
  }
  const found = (re, texts) =>
    texts.some((text) => {
      re.lastIndex = 0;
      return re.test(text);
    });
  return {
    empty: wanted.length === 0 && unwanted.length === 0,
    error,
    test: (texts) =>
      wanted.every((re) => found(re, texts)) && !unwanted.some((re) => found(re, texts)),
    /** The [start, end) spans of `text` that the wanted terms match, sorted and merged. */
    ranges(value) {
      const spans = [];
      for (const re of wanted) {
        re.lastIndex = 0;
        for (const m of value.matchAll(re)) {
          if (m[0].length) spans.push([m.index, m.index + m[0].length]);
        }
      }
      spans.sort((a, b) => a[0] - b[0]);
      const merged = [];
      for (const span of spans) {
        const last = merged[merged.length - 1];
        if (last && span[0] <= last[1]) last[1] = Math.max(last[1], span[1]);
        else merged.push(span);
      }
      return merged;
    },
  };
}

/** Fill `el` with `text`, the spans that `search` matches wrapped in <mark>. */
export function showMarked(el, text, search) {
  const spans = search.empty ? [] : search.ranges(text);
  if (!spans.length) {
    el.textContent = text;
    return;
  }
  el.textContent = '';
  let at = 0;
  for (const [start, end] of spans) {
    if (start > at) el.append(text.slice(at, start));
    el.appendChild(document.createElement('mark')).textContent = text.slice(start, end);
    at = end;
  }
  if (at < text.length) el.append(text.slice(at));
}
