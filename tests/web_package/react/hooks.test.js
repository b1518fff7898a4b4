// The React bindings from the packed package, under jsdom, against the real gateway.
import { act, cleanup, configure, render, screen, waitFor } from '@testing-library/react';
import * as React from 'react';
import { LogsClient } from 'logs-gateway-client';
import { createLogsReact } from 'logs-gateway-client/react';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { GATEWAY, auth, channel, mint, openSources, publish, sources, when } from '../harness.js';

const { LogsSSEProvider, useLogsSubscription } = createLogsReact(React);
const h = React.createElement;
const url = `${GATEWAY}/api/logs/stream`;
auth.token = mint({ subscribe: ['logs:node:>'] });
// A connection takes milliseconds; the margin is for a machine busy with other work.
configure({ asyncUtilTimeout: 5000 });

// Animation frames run when the test says (`frames.run()`), so renders can be counted.
const frames = {
  queue: new Map(),
  next: 1,
  run() {
    const due = [...this.queue.values()];
    this.queue.clear();
    for (const callback of due) callback(performance.now());
  },
};
// Timers set by the client module, still pending: a leak would stay here.
const clientTimers = new Set();
const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;

beforeEach(() => {
  globalThis.requestAnimationFrame = (callback) => {
    frames.queue.set(frames.next, callback);
    return frames.next++;
  };
  globalThis.cancelAnimationFrame = (id) => frames.queue.delete(id);
  globalThis.setTimeout = (callback, ms, ...args) => {
    if (!new Error().stack.includes('logs-gateway-client')) return realSetTimeout(callback, ms, ...args);
    const id = realSetTimeout(() => {
      clientTimers.delete(id);
      callback(...args);
    }, ms);
    clientTimers.add(id);
    return id;
  };
  globalThis.clearTimeout = (id) => {
    clientTimers.delete(id);
    realClearTimeout(id);
  };
});

afterEach(() => {
  cleanup();
  globalThis.setTimeout = realSetTimeout;
  globalThis.clearTimeout = realClearTimeout;
});

function Panel({ name, channel, limit = 100, onRender = () => {} }) {
  const { entries, status } = useLogsSubscription(channel, { limit });
  onRender();
  return h(
    'section',
    { 'data-testid': name, 'data-state': status.state, 'data-channels': (status.channels ?? []).join(',') },
    h('ul', null, entries.map((e) => h('li', { key: e.offset }, e.message))),
  );
}

const messages = (name) => [...screen.getByTestId(name).querySelectorAll('li')].map((li) => li.textContent);

async function connected(name, channels) {
  await waitFor(() => {
    const panel = screen.getByTestId(name);
    expect(panel.dataset.state).toBe('connected');
    expect(panel.dataset.channels).toBe([...channels].sort().join(','));
  });
}

test(`React ${process.env.LOGS_REACT ?? '19'} is the one rendering`, () => {
  expect(React.version.split('.')[0]).toBe(process.env.LOGS_REACT ?? '19');
});

test('many hooks share one connection', async () => {
  const [a, b, c] = [channel('ra'), channel('rb'), channel('rc')];
  const made = sources.length;
  render(
    h(
      React.StrictMode,
      null,
      h(
        LogsSSEProvider,
        { options: { url, storage: null } },
        h(Panel, { name: 'a', channel: a }),
        h(Panel, { name: 'b', channel: b }),
        h(Panel, { name: 'c', channel: c }),
        h(Panel, { name: 'a-again', channel: a }),
      ),
    ),
  );
  await connected('a', [a, b, c]);
  // StrictMode mounts effects twice; the client opens at the end of the task, once.
  expect(sources.length - made).toBe(1);
  expect(openSources()).toHaveLength(1);
  await publish(a, 'to a');
  await publish(b, 'to b');
  await publish(c, 'to c');
  await waitFor(() => {
    act(() => frames.run());
    expect(messages('c')).toEqual(['to c']);
  });
  expect(messages('a')).toEqual(['to a']);
  expect(messages('a-again')).toEqual(['to a']);
  expect(messages('b')).toEqual(['to b']);
});

test('mounting and unmounting hooks adds and removes channels, one reconnect each', async () => {
  const [a, b, c] = [channel('ma'), channel('mb'), channel('mc')];
  const app = (shown) =>
    h(
      LogsSSEProvider,
      { options: { url, storage: null } },
      shown.map((ch) => h(Panel, { key: ch, name: ch, channel: ch })),
    );
  const made = sources.length;
  const { rerender } = render(app([a, b]));
  await connected(a, [a, b]);

  rerender(app([a]));
  await connected(a, [a]);
  expect(sources.length - made).toBe(2);
  rerender(app([a, c]));
  await connected(a, [a, c]);
  expect(sources.length - made).toBe(3);
  expect(openSources()).toHaveLength(1);
  expect(screen.queryByTestId(b)).toBeNull();

  await publish(b, 'b, unwatched');
  await publish(c, 'to c');
  await waitFor(() => {
    act(() => frames.run());
    expect(messages(c)).toEqual(['to c']);
  });
});

test('a burst is applied in one render per animation frame', async () => {
  const ch = channel('burst');
  const client = new LogsClient({ url, storage: null });
  let renders = 0;
  render(h(LogsSSEProvider, { client }, h(Panel, { name: 'p', channel: ch, limit: 100, onRender: () => (renders += 1) })));
  await connected('p', [ch]);
  act(() => frames.run());
  const before = renders;

  const arrived = [];
  client.subscribe(ch, (entry) => arrived.push(entry));
  await publish(ch, ...Array.from({ length: 300 }, (_, i) => `m${i}`));
  await when((check) => client.subscribe(ch, check), () => (arrived.length === 300 ? true : undefined));
  expect(renders).toBe(before); // 300 arrivals, no render until the frame
  expect(frames.queue.size).toBe(1); // and one frame asked for

  act(() => frames.run());
  expect(renders).toBe(before + 1);
  expect(messages('p')).toEqual(Array.from({ length: 100 }, (_, i) => `m${200 + i}`));
});

test('unmounting closes the EventSource and leaves no timer or frame', async () => {
  const ch = channel('cleanup');
  const client = new LogsClient({ url, storage: null });
  const { unmount } = render(h(LogsSSEProvider, { client }, h(Panel, { name: 'p', channel: ch })));
  await connected('p', [ch]);
  await publish(ch, 'pending');
  await when((check) => client.subscribe(ch, check), () => (frames.queue.size ? true : undefined));

  unmount();
  expect(frames.queue.size).toBe(0); // the pending frame was cancelled
  expect(openSources()).toHaveLength(0);
  expect(client.status.state).toBe('disconnected');
  await waitFor(() => expect(clientTimers.size).toBe(0));
});

test('unmounting while waiting to reconnect cancels the retry', async () => {
  // Nothing listens on this port: the client waits a long backoff before its next try.
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  await new Promise((resolve) => server.close(resolve));
  const client = new LogsClient({ url: `http://127.0.0.1:${port}/api/logs/stream`, storage: null, minDelayMs: 60000, maxDelayMs: 60000 });
  const { unmount } = render(h(LogsSSEProvider, { client }, h(Panel, { name: 'p', channel: channel('gone') })));
  await waitFor(() => expect(screen.getByTestId('p').dataset.state).toBe('reconnecting'));
  expect(client.status.reason).toBe('unreachable');
  expect(clientTimers.size).toBe(1); // the retry, a minute away

  unmount();
  await waitFor(() => expect(clientTimers.size).toBe(0));
  expect(openSources()).toHaveLength(0);
});
