// The React test page: two components, two channels, one provider (so one EventSource).
// Query: ?gateway=<gateway origin>&channels=<channel A>,<channel B>
import * as React from 'react';
import { createRoot } from 'react-dom/client';
import { createLogsReact } from '../../../clients/web/logs-react.js';

const { LogsSSEProvider, useLogsSubscription } = createLogsReact(React);
const h = React.createElement;

function Panel({ name, channel }) {
  const { entries, status } = useLogsSubscription(channel, { limit: 100 });
  return h(
    'section',
    { id: name, 'data-state': status.state, 'data-channels': (status.channels ?? []).join(',') },
    h('h2', null, `${name} (${channel})`),
    h(
      'ul',
      null,
      entries.map((e) => h('li', { key: `${e.channel}|${e.offset}|${e.time}` }, e.message)),
    ),
  );
}

function App({ gateway, channels }) {
  const [showA, setShowA] = React.useState(true);
  const options = { url: `${gateway}/api/logs/stream`, storage: null };
  return h(
    LogsSSEProvider,
    { options },
    h('button', { id: 'unmount-a', onClick: () => setShowA(false) }, 'Unmount A'),
    showA ? h(Panel, { name: 'a', channel: channels[0] }) : null,
    h(Panel, { name: 'b', channel: channels[1] }),
  );
}

const params = new URLSearchParams(location.search);
const props = { gateway: params.get('gateway'), channels: params.get('channels').split(',') };
createRoot(document.getElementById('root')).render(h(React.StrictMode, null, h(App, props)));
