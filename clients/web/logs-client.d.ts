// Types of logs-client.js, written by hand. tests/web_package compiles a strict TypeScript
// consumer against them and checks that they declare exactly what the module exports.

/** One log entry, as the gateway sends it in `event: log`. */
export interface LogEntry {
  channel: string;
  /** Position in its channel; restarts when a gateway loses its history. */
  offset: number;
  /** RFC 3339 UTC with nanoseconds, e.g. `2026-11-27T01:51:19.043427000Z`. */
  time: string;
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
  /** OpenTelemetry severity number (1-24). */
  severity: number;
  message: string;
  source: string;
  attributes: Record<string, string | number | boolean>;
  /** Present on entries that came in over OTLP with a trace context. */
  trace_id?: string;
  span_id?: string;
}

/** `event: gap`: entries of `channel` (a subscribed channel or pattern) that were lost. */
export interface LogsGap {
  channel: string;
  /** How many entries were lost (for `expired`, at least this many). */
  lost: number;
  /** `trimmed`: past the history kept; `expired`: away longer than losses are remembered;
   * `reset`: the gateway lost its history (what is retained and live entries follow). */
  reason: 'trimmed' | 'expired' | 'reset';
  /** How many channels the loss was on (not sent for `reset`). */
  channels?: number;
}

export type LogsState = 'connecting' | 'connected' | 'reconnecting' | 'disconnected' | 'error';

/** Opening a stream for these channels (after connect() or a change of channels). */
export interface ConnectingStatus {
  state: 'connecting';
  channels: string[];
}

/** The gateway accepted the stream (`event: ready`). */
export interface ConnectedStatus {
  state: 'connected';
  /** The gateway's id of this connection. */
  connection: string;
  /** The channels and patterns the gateway streams. */
  channels: string[];
}

/** The stream ended or could not open; the client retries after `retryInMs`. */
export interface ReconnectingStatus {
  state: 'reconnecting';
  /** e.g. `connection_lost`, `shutdown`, `token_expired`, `unreachable`, `rate_limited`. */
  reason: string;
  message: string;
  /** Failed attempts so far (1 on the first retry). */
  attempt: number;
  retryInMs: number;
  /** The gateway's HTTP status when it refused the stream (429, 503). */
  httpStatus?: number;
}

/** Not connected: `idle` before connect(), `closed` after disconnect(), `no_channels`. */
export interface DisconnectedStatus {
  state: 'disconnected';
  reason: 'idle' | 'closed' | 'no_channels';
  message?: string;
}

/**
 * A refusal that retrying cannot fix (HTTP 400, 401, 403, 404): a bad channel, no or an
 * expired sign-in, no rights. The client waits for connect() or a change of channels.
 */
export interface ErrorStatus {
  state: 'error';
  /** The gateway's error code, e.g. `unauthenticated`, `permission_denied`. */
  reason: string;
  message: string;
  httpStatus: number;
}

export type LogsStatus =
  | ConnectingStatus
  | ConnectedStatus
  | ReconnectingStatus
  | DisconnectedStatus
  | ErrorStatus;

export interface LogsClientOptions {
  /** The stream, or a proxy route; default `/api/logs/stream` (relative to the page). */
  url?: string;
  /** Send cookies (`logs_gateway_token`) to a CORS-listed gateway too; default true. */
  withCredentials?: boolean;
  /** Minimum level for the whole connection, e.g. `warn`; default all. */
  level?: '' | LogEntry['level'];
  /** On the first connect only, start with the N most recent retained entries that match
   * (oldest first), then live ones; reconnects resume with the cursor. Default 0 (live). */
  tail?: number;
  /** Recent entries kept per channel, in memory and in sessionStorage; default 200. */
  keep?: number;
  /** `session` keeps recent entries and the cursor across reloads; null keeps nothing. */
  storage?: 'session' | null;
  /** The sessionStorage key; default `logs-gateway`. */
  storageKey?: string;
  /** First reconnect delay (default 1000), doubling per failed attempt up to maxDelayMs
   * (default 30000), each with jitter. */
  minDelayMs?: number;
  maxDelayMs?: number;
}

export type EntryListener = (entry: LogEntry) => void;
export type StatusListener = (status: LogsStatus) => void;
export type GapListener = (gap: LogsGap) => void;
/** Calling it removes what was added. */
export type Unsubscribe = () => void;

/** One EventSource for any number of channel subscriptions. */
export class LogsClient {
  constructor(options?: LogsClientOptions);
  readonly status: LogsStatus;
  /** The channels and patterns that have listeners, sorted. */
  readonly channels: string[];
  /** Whether this tab was connected before a reload (restored from sessionStorage). */
  readonly wasConnected: boolean;
  /** Follow a channel or pattern (`*` one segment, `>` the rest); throws TypeError if it is
   * not one. */
  subscribe(channel: string, listener: EntryListener): Unsubscribe;
  /** The kept entries of `channel`, oldest first, restored ones included. */
  recent(channel: string): LogEntry[];
  onStatus(listener: StatusListener): Unsubscribe;
  onGap(listener: GapListener): Unsubscribe;
  /** Open the stream (at the end of this task) and keep it open. */
  connect(): void;
  /** Close the stream and stop reconnecting; subscriptions stay. */
  disconnect(): void;
}

/** The segments of a channel or pattern; throws TypeError if it is not one. */
export function parsePattern(text: string): string[];
/** Whether the concrete `channel` is matched by the pattern `segments`. */
export function segmentsMatch(segments: readonly string[], channel: string): boolean;
/** The identity of an entry: channel, offset and time. */
export function entryKey(entry: Pick<LogEntry, 'channel' | 'offset' | 'time'>): string;
/** A reconnect delay in [cap/2, cap], cap = min(maxMs, minMs * 2^attempt). */
export function backoffDelay(
  attempt: number,
  minMs: number,
  maxMs: number,
  random?: () => number,
): number;
