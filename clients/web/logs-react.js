/**
 * React bindings for the logs-gateway client. No JSX and no import of React here: pass in
 * the React your app already uses, so this file needs no build step and no bundler config.
 *
 *   import * as React from 'react';
 *   import { createLogsReact } from 'logs-gateway-client/react'; // or /static/lib/logs-react.js
 *   const { LogsSSEProvider, useLogsSubscription } = createLogsReact(React);
 *
 *   function EtlLogs() {
 *     const { entries, status } = useLogsSubscription('logs:etl:workspace123:>', { limit: 500 });
 *     ...
 *   }
 *   // <LogsSSEProvider options={{ url: '/api/logs/stream' }}> ... </LogsSSEProvider>
 *
 * One provider holds one LogsClient, so the whole tree shares one EventSource; each hook
 * adds its channel to it and removes it on unmount (the client then reconnects once with
 * the channels still wanted, or closes when none are left).
 */

import { LogsClient } from './logs-client.js';

export function createLogsReact(React) {
  const { createContext, createElement, useCallback, useContext, useEffect, useState } = React;
  const ClientContext = createContext(null);

  /**
   * Provides one connection to its subtree: `client`, or one made from `options` (the
   * LogsClient options: e.g. `{ url, tail: 100 }` starts every hook below with up to the 100
   * most recent entries of the connection's channels, on the first connect only).
   */
  function LogsSSEProvider({ client = null, options = {}, children = null }) {
    const [shared] = useState(() => client ?? new LogsClient(options));
    useEffect(() => {
      shared.connect();
      return () => shared.disconnect();
    }, [shared]);
    return createElement(ClientContext.Provider, { value: shared }, children);
  }

  function useLogsClient() {
    const client = useContext(ClientContext);
    if (!client) throw new Error('logs-gateway hooks need a <LogsSSEProvider> above them');
    return client;
  }

  /** The connection status; re-renders on every change. */
  function useLogsStatus() {
    const client = useLogsClient();
    const subscribe = useCallback((onChange) => client.onStatus(onChange), [client]);
    return React.useSyncExternalStore(subscribe, () => client.status);
  }

  /**
   * The last `limit` entries of `channel` (restored ones first) and the connection status.
   * Entries arriving together are applied in one render per animation frame.
   */
  function useLogsSubscription(channel, { limit = 500 } = {}) {
    const client = useLogsClient();
    const status = useLogsStatus();
    const [entries, setEntries] = useState(() => client.recent(channel).slice(-limit));
    useEffect(() => {
      let pending = [];
      let frame = 0;
      const flush = () => {
        frame = 0;
        const batch = pending;
        pending = [];
        setEntries((previous) => previous.concat(batch).slice(-limit));
      };
      const unsubscribe = client.subscribe(channel, (entry) => {
        pending.push(entry);
        if (pending.length > limit) pending.shift();
        if (!frame) frame = requestAnimationFrame(flush);
      });
      setEntries(client.recent(channel).slice(-limit));
      return () => {
        unsubscribe();
        cancelAnimationFrame(frame);
      };
    }, [client, channel, limit]);
    return { entries, status };
  }

  return { LogsSSEProvider, useLogsSubscription, useLogsStatus, useLogsClient, ClientContext };
}
