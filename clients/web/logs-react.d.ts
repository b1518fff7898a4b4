// Types of logs-react.js, written by hand (see logs-client.d.ts). They need @types/react,
// which a TypeScript React app has; the module itself imports no React.
import type * as React from 'react';
import type { LogEntry, LogsClient, LogsClientOptions, LogsStatus } from './logs-client.js';

/** What createLogsReact uses of the React passed in (React 18 or 19). */
export type ReactLike = Pick<
  typeof React,
  | 'createContext'
  | 'createElement'
  | 'useCallback'
  | 'useContext'
  | 'useEffect'
  | 'useState'
  | 'useSyncExternalStore'
>;

export interface LogsSSEProviderProps {
  /** A client to share; without one the provider makes one from `options`. */
  client?: LogsClient | null;
  /** LogsClient options for the client the provider makes (read once, on mount). */
  options?: LogsClientOptions;
  children?: React.ReactNode;
}

export interface LogsSubscriptionOptions {
  /** Entries kept by the hook (the newest); default 500. */
  limit?: number;
}

export interface LogsSubscription {
  /** The last `limit` entries of the channel, oldest first, restored ones first. */
  entries: LogEntry[];
  status: LogsStatus;
}

export interface LogsReact {
  /** One LogsClient (one EventSource) for its subtree; connects on mount, disconnects on
   * unmount. */
  LogsSSEProvider: (props: LogsSSEProviderProps) => React.ReactElement;
  /** Follow `channel` (added to the connection on mount, removed on unmount); arrivals
   * re-render once per animation frame. */
  useLogsSubscription: (channel: string, options?: LogsSubscriptionOptions) => LogsSubscription;
  /** The connection status; re-renders on every change. */
  useLogsStatus: () => LogsStatus;
  /** The provider's client; throws without a provider above. */
  useLogsClient: () => LogsClient;
  ClientContext: React.Context<LogsClient | null>;
}

/** Bind the provider and hooks to the React your app uses. */
export function createLogsReact(react: ReactLike): LogsReact;
