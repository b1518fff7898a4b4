// What the consumer tests share: the gateway the Python test started (from the environment),
// tokens signed as it expects, publishing, an EventSource for Node that signs in with a
// header, and a TCP proxy that can cut the stream.
import { createHmac, randomUUID } from 'node:crypto';
import { createServer, connect as tcpConnect } from 'node:net';
import { EventSource as NodeEventSource } from 'eventsource';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: tests/web_package/test_web_package.py sets it`);
  return value;
}

export const GATEWAY = required('LOGS_GATEWAY_URL');
const SECRET = required('LOGS_GATEWAY_JWT_SECRET');
const ISSUER = process.env.LOGS_GATEWAY_ISSUER ?? 'logs-gateway';

const base64url = (value) => Buffer.from(value).toString('base64url');

/** An HS256 token like the gateway's own Signer mints (`ttlSeconds` from now). */
export function mint({ subscribe = [], publish = [], ttlSeconds = 3600, sub = 'node' } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    sub,
    iss: ISSUER,
    aud: ISSUER,
    iat: now,
    exp: now + ttlSeconds,
    jti: randomUUID(),
    logs: { publish, subscribe, admin: false },
  };
  const head = `${base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${base64url(JSON.stringify(claims))}`;
  return `${head}.${createHmac('sha256', SECRET).update(head).digest('base64url')}`;
}

const publisher = mint({ publish: ['logs:>'], sub: 'publisher' });
const plainFetch = globalThis.fetch;

/** Publish messages to `channel` over HTTP; resolves once the gateway has stored them. */
export async function publish(channel, ...messages) {
  const response = await plainFetch(`${GATEWAY}/api/logs/publish`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${publisher}`, 'Content-Type': 'application/json' },
    // Each a message, or an entry's fields ({ message, level }).
    body: JSON.stringify({
      entries: messages.map((m) => ({ channel, source: 'node', ...(typeof m === 'string' ? { message: m } : m) })),
    }),
  });
  if (!response.ok) throw new Error(`publish: HTTP ${response.status} ${await response.text()}`);
}

/**
 * The token the page would hold. Browsers send it as a cookie; a Node consumer (and this
 * test) sends `Authorization: Bearer`, on the stream and on the client's refusal probe.
 */
export const auth = { token: '' };
const withAuth = (init = {}) => {
  const headers = new Headers(init.headers);
  if (auth.token) headers.set('Authorization', `Bearer ${auth.token}`);
  return { ...init, headers };
};
globalThis.fetch = (input, init) => plainFetch(input, withAuth(init));

/** Every EventSource made, with its URL, to count connections and read their queries. */
export const sources = [];
globalThis.EventSource = class extends NodeEventSource {
  constructor(url, init) {
    super(url, { ...init, fetch: (input, options) => plainFetch(input, withAuth(options)) });
    sources.push(this);
  }
};

export const openSources = () => sources.filter((s) => s.readyState !== NodeEventSource.CLOSED);

/** The query of the `index`-th EventSource made (negative: from the end). */
export function query(index) {
  return new URL(sources.at(index).url).searchParams;
}

/** Resolves with the first value `probe()` returns that is not undefined, checked whenever
 * `subscribe(check)` reports a change; rejects after `ms`. */
export function when(subscribe, probe, ms = 10000, what = 'condition') {
  return new Promise((resolve, reject) => {
    let off = () => {};
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out waiting for ${what}`));
    }, ms);
    const check = () => {
      const value = probe();
      if (value === undefined) return;
      clearTimeout(timer);
      off();
      resolve(value);
    };
    off = subscribe(check);
    check();
  });
}

/** Resolves with the client's next status in `state` (or the current one, if it is). */
export function statusOf(client, state, ms) {
  return when(
    (check) => client.onStatus(check),
    () => (client.status.state === state ? client.status : undefined),
    ms,
    `status ${state} (now ${JSON.stringify(client.status)})`,
  );
}

/** Subscribes `channel` and records what arrives: `log.messages`, `log.entries`,
 * `await log.count(n)`. */
export function record(client, channel) {
  const entries = [];
  const waiting = new Set();
  const off = client.subscribe(channel, (entry) => {
    entries.push(entry);
    for (const check of waiting) check();
  });
  const count = (n) =>
    when(
      (check) => (waiting.add(check), () => waiting.delete(check)),
      () => (entries.length >= n ? entries.map((e) => e.message) : undefined),
      10000,
      `${n} entries on ${channel} (have ${entries.length})`,
    );
  return { entries, off, count, get messages() { return entries.map((e) => e.message); } };
}

/** Records every status of `client`. */
export function statesOf(client) {
  const states = [];
  client.onStatus((s) => states.push(s));
  return states;
}

/** A TCP proxy in front of the gateway: `cut()` drops every connection and refuses new ones
 * until `restore()`, as a network outage would. */
export async function outageProxy() {
  const target = new URL(GATEWAY);
  const sockets = new Set();
  let down = false;
  const server = createServer((client) => {
    if (down) return void client.destroy();
    const upstream = tcpConnect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      down = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      down = false;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

let counter = 0;
/** A channel of its own for each test. */
export const channel = (name) => `logs:node:${name}-${process.pid}-${(counter += 1)}`;
