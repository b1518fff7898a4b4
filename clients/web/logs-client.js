/**
 * logs-gateway browser client: one EventSource per page, shared by any number of channel
 * subscriptions. A dependency-free ES module; use it as it is, no build step. The npm
 * package `logs-gateway-client` (this folder; README.md, types in logs-client.d.ts) and the
 * gateway's /static/lib/ serve this same file.
 *
 *   import { LogsClient } from 'logs-gateway-client'; // or '/static/lib/logs-client.js'
 *   const client = new LogsClient();                       // same-origin /api/logs/stream
 *   const off = client.subscribe('logs:etl:workspace123:>', (entry) => show(entry));
 *   client.onStatus((status) => console.log(status.state, status.message));
 *   client.connect();                                      // later: off(); client.disconnect();
 *
 * Statuses: `connecting`, `connected`, `reconnecting` (with the reason and the delay),
 * `disconnected`, and `error` (a refusal that retrying cannot fix: bad request, no or
 * expired sign-in, no rights; it carries the gateway's code and message).
 */

const DEFAULTS = Object.freeze({
  url: '/api/logs/stream', // or a proxy route such as /api/dapadmin/faas/sse/logs/stream?...
  withCredentials: true, // send the `logs_gateway_token` cookie, also to a CORS-listed gateway
  level: '', // minimum level for the whole connection, e.g. 'warn'
  tail: 0, // on the first connect only: start with the N most recent retained entries
  keep: 200, // recent entries kept per channel, in memory and in sessionStorage
  storage: 'session', // 'session' keeps recent entries across reloads; null keeps nothing
  storageKey: 'logs-gateway',
  minDelayMs: 1000, // first reconnect delay; doubles per failed attempt ...
  maxDelayMs: 30000, // ... up to this, each with random jitter
});
// Refusals that the same request will meet again: wait for connect() or other channels.
const FINAL_HTTP = new Set([400, 401, 403, 404]);
const MAX_SEEN = 20000; // entry keys remembered to drop what a resume sends twice
const PERSIST_DELAY_MS = 250;
const SEGMENT = /^[A-Za-z0-9_.-]{1,64}$/;

/** The segments of a channel or pattern (`*` one segment, `>` the rest); throws if invalid. */
export function parsePattern(text) {
  const parts = typeof text === 'string' ? text.split(':') : [];
  const valid =
    parts.length <= 6 &&
    new TextEncoder().encode(text).length <= 256 &&
    parts.every((p, i) => SEGMENT.test(p) || p === '*' || (p === '>' && i === parts.length - 1));
  if (!valid) {
    throw new TypeError(
      `${JSON.stringify(text)} is not a channel or pattern like logs:etl:workspace123:>`,
    );
  }
  return parts;
}

/** Whether the concrete `channel` is matched by the pattern `segments`. */
export function segmentsMatch(segments, channel) {
  const parts = channel.split(':');
  for (let i = 0; i < segments.length; i += 1) {
    if (segments[i] === '>') return parts.length > i;
    if (i >= parts.length || (segments[i] !== '*' && segments[i] !== parts[i])) return false;
  }
  return parts.length === segments.length;
}

/** Identity of an entry: offsets restart when a gateway loses its history, times do not. */
export function entryKey(entry) {
  return `${entry.channel}|${entry.offset}|${entry.time}`;
}

/** Exponential backoff with jitter: a delay in [cap/2, cap], cap = min(max, min * 2^attempt). */
export function backoffDelay(attempt, minMs, maxMs, random = Math.random) {
  const cap = Math.min(maxMs, minMs * 2 ** attempt);
  return Math.round(cap / 2 + (random() * cap) / 2);
}

function parseData(event) {
  try {
    return JSON.parse(event.data);
  } catch {
    return {};
  }
}

export class LogsClient {
  #opts;
  #storage;
  #subs = new Map(); // pattern -> { segments, listeners: Set, recent: [] }
  #routes = new Map(); // channel -> subscriptions matching it (cleared when subs change)
  #restored = new Map(); // pattern -> entries from sessionStorage not yet claimed
  #seen = new Map(); // entryKey -> true, oldest first
  #statusListeners = new Set();
  #gapListeners = new Set();
  #status = Object.freeze({ state: 'disconnected', reason: 'idle' });
  #source = null;
  #generation = 0; // bumped whenever the source changes; stale callbacks compare it
  #opened = false;
  #openChannels = '';
  #cursor = '';
  #wanted = false;
  #attempt = 0;
  #timers = { retry: 0, reconcile: 0, persist: 0 };
  #wasConnected = false;
  #onPageHide = () => this.#persistNow();
  #onOnline = () => this.#retryNow();

  /**
   * Options (all optional, defaults above): `url`, `withCredentials`, `level`, `keep`,
   * `storage`, `storageKey`, `minDelayMs`, `maxDelayMs`, and `tail`: with `tail: N` the first
   * connect (`&tail=N` on the stream URL) starts with the N most recent retained entries
   * that match, oldest first, then live ones; reconnects, and a tab restored with its
   * cursor, resume with the cursor instead (the missed entries, not the tail again).
   * The types, with every field: logs-client.d.ts.
   */
  constructor(options = {}) {
    this.#opts = { ...DEFAULTS, ...options };
    this.#storage = this.#opts.storage === 'session' ? globalThis.sessionStorage ?? null : null;
    this.#restore();
  }

  /** The current status: { state, reason?, message?, httpStatus?, attempt?, ... }. */
  get status() {
    return this.#status;
  }

  /** The channels and patterns that have listeners, sorted. */
  get channels() {
    return [...this.#subs.keys()].filter((p) => this.#subs.get(p).listeners.size).sort();
  }

  /** Whether this tab was connected before a reload (so a page may reconnect by itself). */
  get wasConnected() {
    return this.#wasConnected;
  }

  /** Follow `channel` (a channel or pattern); returns the function that stops it. */
  subscribe(channel, listener) {
    if (typeof listener !== 'function') throw new TypeError('listener must be a function');
    let sub = this.#subs.get(channel);
    if (!sub) {
      sub = { segments: parsePattern(channel), listeners: new Set(), recent: [] };
      sub.recent = this.#restored.get(channel) ?? this.#keptMatching(sub.segments);
      this.#restored.delete(channel);
      this.#subs.set(channel, sub);
      this.#routes.clear();
    }
    const isNew = sub.listeners.size === 0;
    sub.listeners.add(listener);
    if (isNew) this.#scheduleReconcile();
    return () => {
      if (sub.listeners.delete(listener) && sub.listeners.size === 0) this.#scheduleReconcile();
    };
  }

  /**
   * The entries other subscriptions keep that `segments` matches, oldest first: a pattern
   * that replaces another (a page editing its channels) keeps what was already shown.
   */
  #keptMatching(segments) {
    const kept = new Map();
    for (const sub of this.#subs.values()) {
      for (const entry of sub.recent) {
        if (segmentsMatch(segments, entry.channel)) kept.set(entryKey(entry), entry);
      }
    }
    const byTime = (a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0);
    return [...kept.values()].sort(byTime).slice(-this.#opts.keep);
  }

  /** The recent entries of `channel` (oldest first), restored ones included. */
  recent(channel) {
    return [...(this.#subs.get(channel)?.recent ?? this.#restored.get(channel) ?? [])];
  }

  onStatus(listener) {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  /** `listener({channel, lost, reason})` when entries were lost (trimmed, or history reset). */
  onGap(listener) {
    this.#gapListeners.add(listener);
    return () => this.#gapListeners.delete(listener);
  }

  /**
   * Open the stream (and keep it open) for the subscribed channels. It opens at the end of
   * this task, so subscriptions made next to it, or a connect() undone at once (React's
   * StrictMode), cost no extra connection; an open stream is kept, a failed one retried.
   */
  connect() {
    this.#wanted = true;
    this.#attempt = 0;
    globalThis.addEventListener?.('pagehide', this.#onPageHide);
    globalThis.addEventListener?.('online', this.#onOnline);
    this.#scheduleReconcile();
  }

  /** Close the stream and stop reconnecting; subscriptions stay for a later connect(). */
  disconnect() {
    this.#wanted = false;
    this.#closeSource();
    this.#clearTimer('retry');
    globalThis.removeEventListener?.('pagehide', this.#onPageHide);
    globalThis.removeEventListener?.('online', this.#onOnline);
    this.#setStatus('disconnected', { reason: 'closed', message: 'disconnected' });
    this.#persistNow();
  }

  // -- the connection -----------------------------------------------------------------

  #scheduleReconcile() {
    if (this.#timers.reconcile) return;
    // Changes made together (a page subscribing to several channels) reconnect once.
    this.#timers.reconcile = setTimeout(() => {
      this.#timers.reconcile = 0;
      this.#reconcile();
    }, 0);
  }

  #reconcile() {
    for (const [pattern, sub] of this.#subs) {
      if (!sub.listeners.size) this.#subs.delete(pattern);
    }
    this.#routes.clear();
    this.#persistSoon();
    const unchanged = this.channels.join(',') === this.#openChannels;
    if (this.#wanted && !(unchanged && (this.#source || this.#timers.retry))) {
      this.#attempt = 0;
      this.#open('connecting');
    }
  }

  #open(state) {
    this.#clearTimer('retry');
    this.#closeSource();
    const channels = this.channels;
    this.#openChannels = channels.join(',');
    if (!channels.length) {
      this.#setStatus('disconnected', { reason: 'no_channels', message: 'no channels to follow' });
      return;
    }
    if (state === 'connecting') this.#setStatus('connecting', { channels });
    const url = this.#streamUrl(channels);
    const gen = this.#generation;
    const source = new EventSource(url, { withCredentials: this.#opts.withCredentials });
    const on = (type, handler) =>
      source.addEventListener(type, (event) => gen === this.#generation && handler(event));
    on('open', () => (this.#opened = true));
    on('ready', (e) => this.#onReady(e));
    on('log', (e) => this.#onLog(e));
    on('gap', (e) => this.#onGap(e));
    on('shutdown', (e) => this.#onShutdown(e));
    // `error` is both the server's event (a MessageEvent with data) and a failed connection.
    on('error', (e) => (typeof e.data === 'string' ? this.#onServerError(e) : this.#onFailure(url)));
    this.#source = source;
    this.#opened = false;
  }

  #streamUrl(channels) {
    const url = new URL(this.#opts.url, globalThis.location?.href);
    url.searchParams.set('channels', channels.join(','));
    if (this.#opts.level) url.searchParams.set('level', this.#opts.level);
    // EventSource sends Last-Event-ID only on its own reconnects; ours carry the cursor here.
    // With no cursor yet (the first connect), `tail` asks for recent history; a reconnect
    // resumes from the cursor instead, so the tail is never sent twice.
    if (this.#cursor) url.searchParams.set('last_event_id', this.#cursor);
    else if (this.#opts.tail > 0) url.searchParams.set('tail', String(this.#opts.tail));
    return url.href;
  }

  #closeSource() {
    this.#generation += 1;
    this.#source?.close();
    this.#source = null;
  }

  #onReady(event) {
    const data = parseData(event);
    if (event.lastEventId) this.#cursor = event.lastEventId;
    this.#attempt = 0;
    this.#restored.clear(); // restored entries no subscriber claimed by now are let go
    this.#setStatus('connected', { connection: data.connection, channels: data.channels });
    this.#persistSoon();
  }

  #onLog(event) {
    if (event.lastEventId) this.#cursor = event.lastEventId;
    this.#deliver(parseData(event));
    this.#persistSoon();
  }

  #onGap(event) {
    // Its id resumes after the loss it reports: kept as the cursor, a connection cut before
    // the next entry (or with none after it at this level) does not report the loss again.
    if (event.lastEventId) this.#cursor = event.lastEventId;
    const gap = parseData(event);
    for (const listener of this.#gapListeners) safeCall(listener, gap);
    this.#persistSoon();
  }

  #onShutdown(event) {
    const data = parseData(event);
    this.#closeSource();
    const wait = Number(data.retry_ms) > 0 ? Number(data.retry_ms) : this.#opts.minDelayMs;
    this.#retry({ reason: 'shutdown', message: data.message ?? 'server draining' }, wait);
  }

  #onServerError(event) {
    const data = parseData(event);
    this.#closeSource();
    this.#retry({ reason: data.reason ?? 'server_error', message: data.message ?? 'stream error' });
  }

  #onFailure(url) {
    const opened = this.#opened;
    this.#closeSource();
    if (opened) {
      this.#retry({ reason: 'connection_lost', message: 'the stream was interrupted' });
      return;
    }
    // EventSource hides why it could not open; ask the same URL with fetch to find out.
    const gen = this.#generation;
    this.#probe(url).then(({ final, ...problem }) => {
      if (gen !== this.#generation || !this.#wanted) return;
      if (final) this.#setStatus('error', problem);
      else this.#retry(problem);
    });
  }

  async #probe(url) {
    const controller = new AbortController();
    try {
      const response = await fetch(url, {
        credentials: this.#opts.withCredentials ? 'include' : 'same-origin',
        headers: { Accept: 'text/event-stream' },
        cache: 'no-store',
        signal: controller.signal,
      });
      if (response.ok) {
        controller.abort();
        return { reason: 'stream_failed', message: 'the stream failed while opening', final: false };
      }
      const error = (await response.json().catch(() => null))?.error ?? {};
      return {
        reason: error.code ?? `http_${response.status}`,
        message: error.message ?? `the gateway answered HTTP ${response.status}`,
        httpStatus: response.status,
        final: FINAL_HTTP.has(response.status),
      };
    } catch {
      return { reason: 'unreachable', message: 'cannot reach the gateway', final: false };
    }
  }

  #retry(problem, fixedMs) {
    if (!this.#wanted) return;
    const { minDelayMs, maxDelayMs } = this.#opts;
    const delay =
      fixedMs === undefined
        ? backoffDelay(this.#attempt, minDelayMs, maxDelayMs)
        : backoffDelay(0, fixedMs, fixedMs);
    this.#attempt += 1;
    this.#setStatus('reconnecting', { ...problem, attempt: this.#attempt, retryInMs: delay });
    this.#clearTimer('retry');
    this.#timers.retry = setTimeout(() => {
      this.#timers.retry = 0;
      this.#open('reconnecting');
    }, delay);
  }

  /** The network is back: a waiting reconnect need not wait out its backoff. */
  #retryNow() {
    if (this.#wanted && this.#timers.retry) this.#open('reconnecting');
  }

  #clearTimer(name) {
    clearTimeout(this.#timers[name]);
    this.#timers[name] = 0;
  }

  #setStatus(state, detail = {}) {
    this.#status = Object.freeze({ state, ...detail });
    for (const listener of this.#statusListeners) safeCall(listener, this.#status);
  }

  // -- entries ------------------------------------------------------------------------

  #deliver(entry) {
    if (typeof entry.channel !== 'string') return;
    const key = entryKey(entry);
    if (this.#seen.has(key)) return;
    this.#remember(key);
    for (const sub of this.#route(entry.channel)) {
      sub.recent.push(entry);
      if (sub.recent.length > this.#opts.keep) sub.recent.shift();
      for (const listener of sub.listeners) safeCall(listener, entry);
    }
  }

  #route(channel) {
    let route = this.#routes.get(channel);
    if (!route) {
      route = [...this.#subs.values()].filter((s) => segmentsMatch(s.segments, channel));
      this.#routes.set(channel, route);
    }
    return route;
  }

  #remember(key) {
    this.#seen.set(key, true);
    if (this.#seen.size > MAX_SEEN) this.#seen.delete(this.#seen.keys().next().value);
  }

  // -- sessionStorage -----------------------------------------------------------------

  #restore() {
    let saved = null;
    try {
      saved = JSON.parse(this.#storage?.getItem(this.#opts.storageKey) ?? 'null');
    } catch {
      saved = null;
    }
    if (saved?.v !== 1) return;
    this.#cursor = typeof saved.cursor === 'string' ? saved.cursor : '';
    this.#wasConnected = saved.connected === true;
    for (const [pattern, entries] of Object.entries(saved.recent ?? {})) {
      if (!Array.isArray(entries)) continue;
      this.#restored.set(pattern, entries.slice(-this.#opts.keep));
      for (const entry of entries) this.#remember(entryKey(entry));
    }
  }

  #persistSoon() {
    if (!this.#storage || this.#timers.persist) return;
    this.#timers.persist = setTimeout(() => this.#persistNow(), PERSIST_DELAY_MS);
  }

  #persistNow() {
    this.#clearTimer('persist');
    if (!this.#storage) return;
    const recent = Object.fromEntries(this.#restored);
    for (const [pattern, sub] of this.#subs) recent[pattern] = sub.recent;
    const state = { v: 1, cursor: this.#cursor, connected: this.#wanted, recent };
    try {
      this.#storage.setItem(this.#opts.storageKey, JSON.stringify(state));
    } catch {
      // Storage full: keep the resume point at least.
      try {
        this.#storage.setItem(this.#opts.storageKey, JSON.stringify({ ...state, recent: {} }));
      } catch {
        /* storage unavailable: nothing survives a reload */
      }
    }
  }
}

function safeCall(listener, value) {
  try {
    listener(value);
  } catch (err) {
    console.error('logs-gateway listener failed', err);
  }
}
