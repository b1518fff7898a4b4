// A frontend app as a team would write it: the package by name, bundled by Vite.
// Two components, two channels, one provider (so one EventSource), under StrictMode.
// Query: ?gateway=<gateway origin>&channels=<channel A>,<channel B>&tail=<N>
import * as React from 'react';
import { createRoot } from 'react-dom/client';
import { entryKey } from 'logs-gateway-client';
import { createLogsReact } from 'logs-gateway-client/react';

const { LogsSSEProvider, useLogsSubscription } = createLogsReact(React);
const h = React.createElement;

function Panel({ name, channel }) {
  const { entries, status } = useLogsSubscription(channel, { limit: 100 });
  return h(
    'section',
    { id: name, 'data-state': status.state, 'data-channels': (status.channels ?? []).join(',') },
    h('h2', null, `${name} (${channel})`),
    h('ul', null, entries.map((e) => h('li', { key: entryKey(e) }, e.message))),
  );
}

function App({ gateway, channels, tail }) {
  const [showA, setShowA] = React.useState(true);
  const options = { url: `${gateway}/api/logs/stream`, storage: null, tail };
  return h(
    LogsSSEProvider,
    { options },
    h('button', { id: 'unmount-a', onClick: () => setShowA(false) }, 'Unmount A'),
    showA ? h(Panel, { name: 'a', channel: channels[0] }) : null,
    h(Panel, { name: 'b', channel: channels[1] }),
  );
}

const params = new URLSearchParams(location.search);
const props = {
  gateway: params.get('gateway'),
  channels: params.get('channels').split(','),
  tail: Number(params.get('tail') ?? 0),
};
createRoot(document.getElementById('root')).render(h(React.StrictMode, null, h(App, props)));
