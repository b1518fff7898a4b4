/**
 * The Logs page: wires the JS client (lib/logs-client.js) to the list view and the controls.
 *
 * Channels come from `?channels=A,B`, else from `?workspace=ID` (where dev sign-in sends
 * the browser), as that workspace's two patterns.
 */

import { LogsClient, parsePattern } from './lib/logs-client.js';
import { LogView } from './log-view.js';
import { sampleEntries } from './samples.js';

const DEFAULT_WORKSPACE = 'workspace123';
const BUSY = new Set(['connecting', 'connected', 'reconnecting']);
const ERRORS = {
  unauthenticated: 'Sign-in needed',
  permission_denied: 'Not allowed',
  invalid_argument: 'Bad request',
  not_found: 'Not found',
};
const HINTS = {
  401: 'Sign in first. In dev mode: /dev/login?user=NAME&workspace=ID',
  403: 'This sign-in has no rights to these channels.',
};

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

/** Subscribe the view to `text`'s channels; returns the function that unsubscribes. */
function follow(client, view, text) {
  const channels = splitChannels(text);
  channels.forEach(parsePattern); // a typo fails here, with a message, before anything changes
  const offs = channels.map((c) => client.subscribe(c, (entry) => view.add([entry])));
  const restored = channels.flatMap((c) => client.recent(c));
  view.add(restored.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0)));
  return () => offs.forEach((off) => off());
}

function initialChannels(params) {
  const workspace = params.get('workspace') || DEFAULT_WORKSPACE;
  return params.get('channels') || `logs:*:${workspace}, logs:*:${workspace}:>`;
}

function wireControls(client, view, followChannels) {
  $('connect').addEventListener('click', () => client.connect());
  $('disconnect').addEventListener('click', () => client.disconnect());
  $('channels').addEventListener('change', (e) => followChannels(e.target.value));
  $('level').addEventListener('change', (e) => view.setFilter({ minSeverity: +e.target.value }));
  $('search').addEventListener('input', (e) => view.setFilter({ text: e.target.value }));
  $('pause').addEventListener('click', (e) => {
    const paused = e.target.getAttribute('aria-pressed') !== 'true';
    e.target.setAttribute('aria-pressed', String(paused));
    e.target.textContent = paused ? 'Resume' : 'Pause';
    view.setPaused(paused);
  });
}

function main() {
  const params = new URLSearchParams(location.search);
  const client = new LogsClient();
  const view = new LogView({ list: $('list'), spacer: $('spacer'), rows: $('rows'), count: $('count') });
  view.addSamples(sampleEntries(params.get('workspace') || DEFAULT_WORKSPACE));
  let unfollow = () => {};
  const followChannels = (text) => {
    try {
      const next = follow(client, view, text);
      unfollow();
      unfollow = next;
    } catch (err) {
      showProblem(err.message);
    }
  };
  $('channels').value = initialChannels(params);
  followChannels($('channels').value);
  client.onStatus(showStatus);
  client.onGap(showGap);
  wireControls(client, view, followChannels);
  if (client.wasConnected) client.connect(); // a reload resumes where the tab left off
  globalThis.logsPage = { client, view }; // for the browser console
}

main();
