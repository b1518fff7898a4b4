// A TypeScript consumer of the whole public surface, compiled with `tsc --noEmit --strict`
// (tests/web_package/test_web_package.py): a type that stops matching the code's use fails.
import * as React from 'react';
import {
  LogsClient,
  backoffDelay,
  entryKey,
  parsePattern,
  segmentsMatch,
  type LogEntry,
  type LogsClientOptions,
  type LogsGap,
  type LogsState,
  type LogsStatus,
} from 'logs-gateway-client';
import { createLogsReact, type LogsSubscription } from 'logs-gateway-client/react';

const options: LogsClientOptions = {
  url: '/api/dapadmin/faas/sse/logs/stream?workspace_id=ws1&function_id=fn1',
  withCredentials: true,
  level: 'warn',
  tail: 100,
  keep: 200,
  storage: null,
  storageKey: 'my-app-logs',
  minDelayMs: 500,
  maxDelayMs: 10_000,
};
const client = new LogsClient(options);

function describe(status: LogsStatus): string {
  switch (status.state) {
    case 'connecting':
      return `connecting to ${status.channels.join(', ')}`;
    case 'connected':
      return `connected as ${status.connection}: ${status.channels.length} channels`;
    case 'reconnecting':
      return `${status.reason}: retry ${status.attempt} in ${status.retryInMs} ms (${status.httpStatus ?? '-'})`;
    case 'disconnected':
      return status.reason === 'no_channels' ? 'nothing to follow' : (status.message ?? status.reason);
    case 'error':
      return `${status.httpStatus} ${status.reason}: ${status.message}`;
    default: {
      const never: never = status; // every state is handled
      return never;
    }
  }
}

const show = (entry: LogEntry): string =>
  `${entry.time} ${entry.level.toUpperCase()} [${entry.source}] ${entry.message} ` +
  `${entry.channel}#${entry.offset} sev ${entry.severity} ${entry.trace_id ?? ''} ` +
  `${Object.keys(entry.attributes).length}`;

const off: () => void = client.subscribe('logs:etl:ws1:>', (entry) => console.log(show(entry)));
const offStatus = client.onStatus((status) => console.log(describe(status)));
const offGap = client.onGap((gap: LogsGap) => {
  const lost: number = gap.lost;
  const reason: 'trimmed' | 'expired' | 'reset' = gap.reason;
  console.log(gap.channel, lost, reason, gap.channels ?? 0);
});
client.connect();
const state: LogsState = client.status.state;
const channels: string[] = client.channels;
const restored: boolean = client.wasConnected;
const kept: LogEntry[] = client.recent('logs:etl:ws1:>');
console.log(state, channels, restored, kept.length);
off();
offStatus();
offGap();
client.disconnect();

const segments: string[] = parsePattern('logs:*:ws1:>');
const matches: boolean = segmentsMatch(segments, 'logs:etl:ws1:wf1');
const first = kept[0];
const key: string | undefined = first && entryKey(first);
const delay: number = backoffDelay(3, 1000, 30_000, () => 0.5);
console.log(matches, key, delay);

// @ts-expect-error a status state that does not exist
const wrong: LogsState = 'open';
// @ts-expect-error tail is a number of entries
new LogsClient({ tail: '100' });
// @ts-expect-error listeners get one entry
client.subscribe('logs:etl:ws1', (a: LogEntry, b: LogEntry) => [a, b]);
console.log(wrong);

// React: the bindings take the app's React.
const { LogsSSEProvider, useLogsSubscription, useLogsStatus, useLogsClient, ClientContext } =
  createLogsReact(React);

function EtlLogs({ workflow }: { workflow: string }): React.ReactElement {
  const { entries, status }: LogsSubscription = useLogsSubscription(`logs:etl:ws1:${workflow}`, {
    limit: 500,
  });
  const again: LogsStatus = useLogsStatus();
  const shared: LogsClient = useLogsClient();
  return React.createElement(
    'ul',
    { title: `${status.state} ${again.state} ${shared.channels.length}` },
    entries.map((e) => React.createElement('li', { key: entryKey(e) }, e.message)),
  );
}

export const app: React.ReactElement = React.createElement(
  LogsSSEProvider,
  { options: { url: '/api/logs/stream', tail: 50 } },
  React.createElement(EtlLogs, { workflow: 'wf1' }),
);
export const withClient = React.createElement(LogsSSEProvider, { client }, null);
export const context: React.Context<LogsClient | null> = ClientContext;
