/**
 * The Logs page: wires the JS client (lib/logs-client.js) to the list view, the details
 * panel and the controls.
 *
 * Channels come from `?channels=A,B`, else from `?workspace=ID` (where dev sign-in sends
 * the browser), as that workspace's two patterns. The stream opens with the channels'
 * last 200 entries (`tail`); a reload resumes from the stored cursor instead.
 */

import { LogsClient, parsePattern, segmentsMatch, entryKey } from './lib/logs-client.js';
import { Details } from './details.js';
import { zoneLabel } from './format.js';
import { History, fillPicker, wireDensity } from './history.js';
import { LogView } from './log-view.js';
import { sampleEntries } from './samples.js';

const DEFAULT_WORKSPACE = 'workspace123';
const TAIL = 200;
const BUSY = new Set(['connecting', 'connected', 'reconnecting']);
const ERRORS = {
  unauthenticated: 'Sign-in needed',
  permission_denied: 'Not allowed',
  invalid_argument: 'Bad request',
  not_found: 'Not found',
};
const HINTS = {
  401:
    "Sign in first: your app's backend sets the logs_gateway_token cookie (README, " +
    '"Signing in in production"). In dev mode: /dev/login?user=NAME&workspace=ID',
  403: 'This sign-in has no rights to these channels.',
};
const THEMES = ['auto', 'dark', 'light'];
const CLEARED = 'logs-page:cleared'; // sessionStorage: keys of entries the reader cleared

const $ = (id) => document.getElementById(id);

function splitChannels(text) {
  return text
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean);
}

function describe(status) {
  switch (status.state) {
    case 'connecting':
      return 'Connecting…';
    case 'connected':
      return 'Connected';
    case 'reconnecting': {
      const seconds = ((status.retryInMs ?? 0) / 1000).toFixed(1);
      return `Reconnecting… (attempt ${status.attempt ?? 1}, in ${seconds} s: ${status.message})`;
    }
    case 'error':
      return `Error: ${ERRORS[status.reason] ?? status.reason ?? 'refused'}`;
    default:
      return 'Disconnected';
  }
}

function showProblem(text) {
  const box = $('problem');
  box.textContent = text;
  box.hidden = !text;
}

function showStatus(status) {
  $('status').dataset.state = status.state;
  $('status-text').textContent = describe(status);
  $('connect').disabled = BUSY.has(status.state);
  $('connect').hidden = status.state === 'connected'; // nothing to press while it is
  $('disconnect').disabled = status.state === 'disconnected';
  if (status.state === 'error') {
    const hint = HINTS[status.httpStatus] ?? '';
    showProblem(`${status.message} (HTTP ${status.httpStatus}). ${hint}`.trim());
  } else if (status.state === 'connected' || status.state === 'connecting') {
    showProblem('');
  }
}

function showGap(gap) {
  $('notice').textContent =
    gap.reason === 'reset'
      ? 'The gateway restarted and lost its history; showing what it holds now.'
      : `${gap.lost} entries of ${gap.channel} were lost (${gap.reason}).`;
}

function initialChannels(params) {
  const workspace = params.get('workspace') || DEFAULT_WORKSPACE;
  return params.get('channels') || `logs:*:${workspace}, logs:*:${workspace}:>`;
}

/** A stored setting of this browser (theme, time zone, wrapping). */
function setting(name, fallback) {
  try {
    return localStorage.getItem(`logs-page:${name}`) ?? fallback;
  } catch {
    return fallback;
  }
}

function saveSetting(name, value) {
  try {
    localStorage.setItem(`logs-page:${name}`, value);
  } catch {
    /* private mode: the setting lasts this page */
  }
}

function readJson(storage, key, fallback) {
  try {
    return JSON.parse(storage.getItem(key) ?? 'null') ?? fallback;
  } catch {
    return fallback;
  }
}

/** When the demo's sample entries end: fixed at the first visit, so reloads keep them. */
function samplesAnchor() {
  let at = Number(setting('samples-at', ''));
  if (!at) {
    at = Date.now();
    saveSetting('samples-at', String(at));
  }
  return at;
}

// -- the toolbar's toggles ----------------------------------------------------------------

function toggle(button, on, labels) {
  button.setAttribute('aria-pressed', String(on));
  if (labels) button.textContent = on ? labels[1] : labels[0];
}

function applyTheme(theme) {
  if (theme === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  $('theme').textContent = `Theme: ${theme}`;
}

function wireToggles(view) {
  let utc = setting('utc', 'false') === 'true';
  let wrap = setting('wrap', 'false') === 'true';
  let theme = setting('theme', 'auto');
  const showUtc = () => {
    $('utc').textContent = `Times: ${zoneLabel(utc)}`;
    $('utc').setAttribute('aria-pressed', String(utc));
    view.setUtc(utc);
  };
  $('utc').addEventListener('click', () => {
    utc = !utc;
    saveSetting('utc', String(utc));
    showUtc();
  });
  $('wrap').addEventListener('click', () => {
    wrap = !wrap;
    saveSetting('wrap', String(wrap));
    toggle($('wrap'), wrap);
    view.setWrap(wrap);
  });
  $('theme').addEventListener('click', () => {
    theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    saveSetting('theme', theme);
    applyTheme(theme);
  });
  $('tools-toggle').addEventListener('click', (e) => {
    const open = e.currentTarget.getAttribute('aria-expanded') !== 'true';
    e.currentTarget.setAttribute('aria-expanded', String(open));
    $('tools').classList.toggle('open', open);
  });
  showUtc();
  toggle($('wrap'), wrap);
  view.setWrap(wrap);
  applyTheme(THEMES.includes(theme) ? theme : 'auto');
}

// -- downloads --------------------------------------------------------------------------

function asText(entry) {
  const attrs = Object.entries(entry.attributes ?? {}).map(([k, v]) => ` ${k}=${v}`);
  const level = String(entry.level ?? '').toUpperCase().padEnd(5);
  const source = entry.source || '-';
  return `${entry.time} ${level} ${source} ${entry.channel} ${entry.message}${attrs.join('')}`;
}

function download(entries, kind) {
  const lines = kind === 'jsonl' ? entries.map((e) => JSON.stringify(e)) : entries.map(asText);
  const blob = new Blob([lines.join('\n') + (lines.length ? '\n' : '')], {
    type: kind === 'jsonl' ? 'application/x-ndjson' : 'text/plain',
  });
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  link.download = `logs-${stamp}.${kind === 'jsonl' ? 'jsonl' : 'txt'}`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// -- keys ----------------------------------------------------------------------------------

function typing(target) {
  return target.matches?.('input, textarea, select, [contenteditable]');
}

function wireShortcuts(view, details, pause) {
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === 'Escape') {
      if (details.isOpen) details.close();
      else if (e.target === $('search')) $('list').focus();
      return;
    }
    if (typing(e.target)) return;
    if (e.key === '/') {
      e.preventDefault();
      $('tools').classList.add('open'); // on a phone the toolbar may be folded
      $('tools-toggle').setAttribute('aria-expanded', 'true');
      $('search').focus();
    } else if (e.key === 'End') {
      e.preventDefault();
      view.jumpToLatest();
      toggle($('pause'), false, ['Pause', 'Resume']);
    } else if (e.key === ' ' && !e.target.matches?.('button, a, summary')) {
      e.preventDefault();
      pause();
    }
  });
}

// -- the page ------------------------------------------------------------------------------

function main() {
  const params = new URLSearchParams(location.search);
  const workspace = params.get('workspace') || DEFAULT_WORKSPACE;
  const client = new LogsClient({ tail: TAIL });
  const details = new Details({
    panel: $('details'),
    title: $('details-title'),
    body: $('details-body'),
    close: $('details-close'),
  });
  const sourceSelect = $('source');
  let past = null; // History, once the view exists (its scroll asks for earlier entries)
  const view = new LogView(
    {
      list: $('list'),
      spacer: $('spacer'),
      rows: $('rows'),
      count: $('count'),
      jump: $('jump'),
      sampleNote: $('sample-note'),
    },
    {
      maxLive: 100000,
      onOpen: (entry) => details.open(entry),
      onTop: () => past?.earlier(),
      onSources(sources) {
        const chosen = sourceSelect.value;
        sourceSelect.replaceChildren(new Option('all', ''), ...sources.map((s) => new Option(s)));
        sourceSelect.value = chosen;
      },
    },
  );
  past = new History(view, (text) => {
    $('history-note').textContent = text;
    $('history-note').hidden = !text;
  });
  let demo = false;
  let patterns = [];
  const cleared = new Set(readJson(sessionStorage, CLEARED, []));
  const showSamples = () => {
    const shown = demo && client.status.state === 'disconnected';
    const samples = shown ? sampleEntries(workspace, samplesAnchor()) : [];
    const selected = samples.filter((s) => patterns.some((p) => segmentsMatch(p, s.channel)));
    view.setSamples(selected);
  };

  let unfollow = () => {};
  const followChannels = (text) => {
    let next;
    try {
      next = splitChannels(text).map((c) => [c, parsePattern(c)]); // a typo fails here
    } catch (err) {
      showProblem(err.message);
      return false;
    }
    showProblem('');
    const offs = next.map(([c]) => client.subscribe(c, (entry) => view.add([entry])));
    unfollow();
    unfollow = () => offs.forEach((off) => off());
    patterns = next.map(([, segments]) => segments);
    past.reset(next.map(([c]) => c).join(','));
    view.retain((entry) => patterns.some((p) => segmentsMatch(p, entry.channel)));
    const kept = next.flatMap(([c]) => client.recent(c)).filter((e) => !cleared.has(entryKey(e)));
    view.add(kept.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0)));
    showSamples();
    return true;
  };

  const pause = () => {
    const held = $('pause').getAttribute('aria-pressed') !== 'true';
    toggle($('pause'), held, ['Pause', 'Resume']);
    view.setHeld(held);
  };

  $('channels').value = initialChannels(params);
  followChannels($('channels').value);
  client.onStatus((status) => {
    showStatus(status);
    showSamples();
  });
  client.onGap(showGap);
  $('connect').addEventListener('click', () => client.connect());
  $('disconnect').addEventListener('click', () => client.disconnect());
  $('channels').addEventListener('change', (e) => {
    if (!followChannels(e.target.value)) return;
    params.set('channels', e.target.value); // a reload keeps the edited channels
    history.replaceState(null, '', `?${params}`);
  });
  $('level').addEventListener('change', (e) => view.setFilter({ minSeverity: +e.target.value }));
  sourceSelect.addEventListener('change', (e) => view.setFilter({ source: e.target.value }));
  $('search').addEventListener('input', (e) => {
    const error = view.setFilter({ text: e.target.value });
    e.target.setAttribute('aria-invalid', String(Boolean(error)));
    $('search-error').textContent = error ? `Search: ${error}` : '';
  });
  $('pause').addEventListener('click', pause);
  $('clear').addEventListener('click', () => {
    // Cleared entries stay cleared after a reload: remember the ones the client keeps.
    const keys = client.channels.flatMap((c) => client.recent(c)).map(entryKey);
    for (const key of keys) cleared.add(key);
    const still = new Set(keys);
    sessionStorage.setItem(CLEARED, JSON.stringify([...cleared].filter((k) => still.has(k))));
    view.clear();
  });
  $('download-jsonl').addEventListener('click', () => download(view.shown(), 'jsonl'));
  $('download-text').addEventListener('click', () => download(view.shown(), 'text'));
  wireToggles(view);
  wireShortcuts(view, details, pause);
  wireDensity($('density'), view, $('list'), setting('density', 'normal'), (value) =>
    saveSetting('density', value),
  );
  $('jump-time').addEventListener('change', (e) => {
    const time = new Date(e.target.value); // the browser's zone, as the field shows it
    if (!Number.isNaN(time.getTime())) past.jumpTo(time);
  });
  fillPicker($('picker'), '>', (channel) => {
    $('channels').value = channel;
    $('channels').dispatchEvent(new Event('change'));
  });
  fetch('/health')
    .then((r) => r.json())
    .then((health) => {
      demo = health.mode === 'dev'; // sample rows are for the demo only
      showSamples();
    })
    .catch(() => {});
  if (client.wasConnected) client.connect(); // a reload resumes where the tab left off
  globalThis.logsPage = { client, view }; // for the browser console
}

main();
