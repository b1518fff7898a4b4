// The packed client, imported by its package name, against a real gateway (Node's runner).
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { LogsClient } from 'logs-gateway-client';
import {
  GATEWAY,
  auth,
  channel,
  mint,
  openSources,
  outageProxy,
  publish,
  query,
  record,
  sources,
  statesOf,
  statusOf,
  when,
} from '../harness.js';

const FAST = { storage: null, minDelayMs: 20, maxDelayMs: 200 };
const clients = [];

function client(options = {}) {
  const made = new LogsClient({ url: `${GATEWAY}/api/logs/stream`, ...FAST, ...options });
  clients.push(made);
  return made;
}

afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
  auth.token = mint({ subscribe: ['logs:node:>'] });
  assert.equal(openSources().length, 0, 'an EventSource was left open');
});
auth.token = mint({ subscribe: ['logs:node:>'] });

test('subscribe: connecting, connected, live entries, disconnected', async () => {
  const c = client();
  const states = statesOf(c);
  const ch = channel('live');
  const log = record(c, ch);
  c.connect();
  const ready = await statusOf(c, 'connected');
  assert.deepEqual(ready.channels, [ch]);
  assert.match(ready.connection, /^c\d+$/);

  await publish(ch, 'one', 'two', 'three');
  assert.deepEqual(await log.count(3), ['one', 'two', 'three']);
  const [first] = log.entries;
  assert.equal(first.channel, ch);
  assert.equal(first.level, 'info');
  assert.equal(first.source, 'node');
  assert.match(first.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  assert.deepEqual(log.entries.map((e) => e.offset), [1, 2, 3].map((i) => first.offset + i - 1));
  assert.deepEqual(c.recent(ch).map((e) => e.message), ['one', 'two', 'three']);

  c.disconnect();
  assert.deepEqual(
    states.map((s) => s.state),
    ['connecting', 'connected', 'disconnected'],
  );
  assert.equal(c.status.reason, 'closed');
});

test('a cut connection is retried with backoff and resumes from the cursor', async () => {
  const proxy = await outageProxy();
  try {
    const c = client({ url: `${proxy.url}/api/logs/stream` });
    const ch = channel('resume');
    const log = record(c, ch);
    c.connect();
    await statusOf(c, 'connected');
    await publish(ch, 'before-1', 'before-2');
    await log.count(2);
    const made = sources.length;

    proxy.cut();
    const lost = await statusOf(c, 'reconnecting');
    assert.equal(lost.reason, 'connection_lost');
    assert.equal(lost.attempt, 1);
    // Published while the client cannot reach the gateway: it must get these on resume.
    await publish(ch, 'during-1', 'during-2');
    const unreachable = await when(
      (check) => c.onStatus(check),
      () => (c.status.reason === 'unreachable' ? c.status : undefined),
    );
    assert.equal(unreachable.state, 'reconnecting');
    assert.ok(unreachable.attempt >= 2 && unreachable.retryInMs <= FAST.maxDelayMs);

    proxy.restore();
    await statusOf(c, 'connected');
    assert.deepEqual(await log.count(4), ['before-1', 'before-2', 'during-1', 'during-2']);
    await publish(ch, 'after');
    assert.deepEqual((await log.count(5)).slice(4), ['after']);
    // The stream that connected again asked for what followed the last entry seen.
    const resumed = query(-1);
    assert.ok(sources.length > made);
    assert.match(resumed.get('last_event_id'), /^[0-9a-f]+-\d+$/);
    assert.equal(resumed.get('tail'), null);
  } finally {
    proxy.cut();
    await proxy.close();
  }
});

test('tail: the first connect starts with recent history, a reconnect resumes instead', async () => {
  const proxy = await outageProxy();
  try {
    const ch = channel('tail');
    await publish(ch, 'old-1', 'old-2', 'old-3', 'old-4');
    const c = client({ url: `${proxy.url}/api/logs/stream`, tail: 3 });
    const log = record(c, ch);
    c.connect();
    await statusOf(c, 'connected');
    assert.equal(query(-1).get('tail'), '3');
    assert.equal(query(-1).get('last_event_id'), null);
    assert.deepEqual(await log.count(3), ['old-2', 'old-3', 'old-4']); // oldest first
    await publish(ch, 'live-1');
    await log.count(4);

    proxy.cut();
    await statusOf(c, 'reconnecting');
    await publish(ch, 'away-1');
    proxy.restore();
    await statusOf(c, 'connected');
    assert.equal(query(-1).get('tail'), null);
    assert.ok(query(-1).get('last_event_id'));
    await publish(ch, 'live-2');
    // Exactly what was missed, after the tail and without it again.
    assert.deepEqual(await log.count(6), ['old-2', 'old-3', 'old-4', 'live-1', 'away-1', 'live-2']);
  } finally {
    proxy.cut();
    await proxy.close();
  }
});

test('gap: entries trimmed while away are reported, then the retained ones follow', async () => {
  // The Python test starts the gateway keeping 5 entries per channel.
  const c = client();
  const ch = channel('gap');
  const log = record(c, ch);
  const gaps = [];
  c.onGap((gap) => gaps.push(gap));
  c.connect();
  await statusOf(c, 'connected');
  await publish(ch, 'seen');
  await log.count(1);

  c.disconnect();
  await publish(ch, ...Array.from({ length: 8 }, (_, i) => `away-${i + 1}`));
  c.connect();
  const messages = await log.count(6);
  assert.deepEqual(messages, ['seen', 'away-4', 'away-5', 'away-6', 'away-7', 'away-8']);
  assert.deepEqual(gaps, [{ channel: ch, lost: 3, channels: 1, reason: 'trimmed' }]);
});

test('gap: reported once; a reconnect before the next entry resumes after it', async () => {
  // At `error` nothing follows the gap (the retained entries are `info`): only the gap's own
  // id can move the cursor on.
  const c = client({ level: 'error' });
  const ch = channel('gap-once');
  const log = record(c, ch);
  const gaps = [];
  c.onGap((gap) => gaps.push(gap));
  c.connect();
  await statusOf(c, 'connected');
  await publish(ch, { message: 'failed', level: 'error' });
  await log.count(1);

  c.disconnect();
  await publish(ch, ...Array.from({ length: 8 }, (_, i) => `away-${i + 1}`));
  c.connect();
  await when((check) => c.onGap(check), () => (gaps.length ? gaps : undefined), 10000, 'a gap');
  c.disconnect();
  c.connect();
  await statusOf(c, 'connected');
  await publish(ch, { message: 'after', level: 'error' });
  assert.deepEqual(await log.count(2), ['failed', 'after']);
  assert.deepEqual(gaps, [{ channel: ch, lost: 3, channels: 1, reason: 'trimmed' }]);
});

test('token expiry: reconnecting, then the refusal, then connect() resumes with a new token', async () => {
  auth.token = mint({ subscribe: ['logs:node:>'], ttlSeconds: 3 });
  const c = client();
  const ch = channel('expiry');
  const log = record(c, ch);
  c.connect();
  await statusOf(c, 'connected');
  await publish(ch, 'before');
  await log.count(1);

  const expired = await statusOf(c, 'reconnecting', 10000);
  assert.equal(expired.reason, 'token_expired');
  const refused = await statusOf(c, 'error');
  assert.equal(refused.httpStatus, 401);
  assert.equal(refused.reason, 'unauthenticated');
  assert.match(refused.message, /expired/);
  // A final refusal is not retried: no stream is left open.
  assert.equal(openSources().length, 0);

  await publish(ch, 'while-signed-out');
  auth.token = mint({ subscribe: ['logs:node:>'] }); // the page signs in again
  c.connect();
  await statusOf(c, 'connected');
  assert.deepEqual(await log.count(2), ['before', 'while-signed-out']);
});

test('no right to a channel: the error status carries the gateway code, no retries', async () => {
  const c = client();
  const states = statesOf(c);
  record(c, 'logs:secret:ws9');
  c.connect();
  const refused = await statusOf(c, 'error');
  assert.equal(refused.httpStatus, 403);
  assert.equal(refused.reason, 'permission_denied');
  assert.deepEqual(states.map((s) => s.state), ['connecting', 'error']);
});

test('channel changes made together reconnect once, with the cursor', async () => {
  const c = client();
  const [a, b, d] = [channel('a'), channel('b'), channel('d')];
  const logA = record(c, a);
  const logB = record(c, b);
  const made = sources.length;
  c.connect();
  assert.deepEqual((await statusOf(c, 'connected')).channels, [a, b].sort());
  assert.equal(sources.length, made + 1);
  await publish(b, 'b-1');
  await logB.count(1);

  logA.off();
  const logD = record(c, d);
  const states = statesOf(c);
  await when((check) => c.onStatus(check), () => (c.status.channels?.includes(d) ? true : undefined));
  await statusOf(c, 'connected');
  assert.equal(sources.length, made + 2, 'one reconnect for both changes');
  assert.deepEqual(c.status.channels, [b, d].sort());
  assert.deepEqual(states.map((s) => s.state), ['connecting', 'connected']);
  assert.ok(query(-1).get('last_event_id'));

  await publish(a, 'a-after');
  await publish(b, 'b-2');
  await publish(d, 'd-1');
  assert.deepEqual(await logB.count(2), ['b-1', 'b-2']);
  assert.deepEqual(await logD.count(1), ['d-1']);
  assert.deepEqual(logA.messages, []);
  assert.deepEqual(c.channels, [b, d].sort());
});
