// Type declarations for oddsboard.js: a client of ws-broadcaster that keeps
// a correct odds board (snapshot, then updates, resumed across reconnects).

/** A subscription filter: each list names the values wanted; empty or absent means all. */
export interface Filter {
  sports?: string[];
  events?: string[];
  markets?: string[];
  books?: string[];
}

/** One value on the board: the payload of the key's latest update plus the
 *  Redis `stream` and entry `id` it came from. */
export interface BoardItem {
  event_id?: string;
  sport_key?: string;
  market_key?: string;
  book_key?: string;
  outcome_name?: string;
  price?: number | null;
  point?: number | null;
  decimal_odds?: number | null;
  implied_probability?: number | null;
  novig_probability?: number | null;
  fair_price?: number | null;
  edge?: number | null;
  normalized_at?: string;
  stream: string;
  id: string;
  [field: string]: unknown;
}

export type Status =
  | 'connecting'    // first connection attempt under way
  | 'connected'     // subscribed, first board complete
  | 'reconnecting'  // connection lost; a new attempt is scheduled or under way
  | 'resumed'       // reconnected; only the missed updates were sent
  | 'resynced'      // reconnected (or lapped); the board was replaced by a snapshot
  | 'closed';       // close() was called, or the client gave up (see `error`)

export interface StatusEvent {
  status: Status;
  epoch: string | null;
  positions: Record<string, string>;
  /** reconnecting: the attempt about to be made (1, 2, ...) and its delay in ms */
  attempt?: number;
  delay?: number;
  /** reconnecting/closed: the close code and reason of the connection that ended */
  code?: number;
  reason?: string;
}

export interface SnapshotEvent {
  epoch: string;
  positions: Record<string, string>;
  /** number of keys on the board after the snapshot was applied */
  size: number;
  /** why the server sent it: undefined for the first board, else
   *  "lapped", "epoch_changed", "history_loaded", "too_old", "unknown_stream", "resubscribed" */
  reason?: string;
}

export interface UpdateEvent {
  /** null for an entry the server keys nothing for (no event_id or outcome_name,
   *  an arbitrage opportunity with legs, say): reported, but not on the board */
  key: string | null;
  kind: 'odds' | 'opportunity';
  previous: BoardItem | undefined;
  value: BoardItem;
  /** true when the server conflated this update (intermediate values skipped) */
  conflated: boolean;
}

export interface ErrorEvent {
  /** server error codes (invalid_filter, forbidden, unauthorized, ...), or
   *  malformed_message, unauthorized_close, policy_close, token_refresh_failed, connect_failed */
  code: string;
  message: string;
  /** true when the client stopped (it will not reconnect) */
  fatal: boolean;
  closeCode?: number;
}

export interface BoardStats {
  /** updates applied to the board */
  updates: number;
  /** updates dropped because their id was not greater than the key's current id */
  staleDropped: number;
  /** messages that were not valid JSON or not a message */
  malformed: number;
  /** messages of types this client does not know */
  unknownTypes: number;
  snapshots: number;
  reconnects: number;
}

export interface BackoffOptions {
  /** first delay's upper bound, ms (default 250) */
  base?: number;
  /** largest delay, ms (default 30000) */
  cap?: number;
  /** a connection that stayed up this long resets the attempt count, ms (default 30000) */
  resetAfter?: number;
}

export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export interface OddsBoardOptions {
  filter?: Filter;
  /** a token to present in the upgrade (`?token=`) */
  token?: string;
  /** called for the first token when `token` is absent, before `exp` to refresh it,
   *  and once after a 4001 close */
  getToken?: () => string | Promise<string>;
  /** ms before a token's `exp` at which getToken() is called (default: 30000, or a
   *  tenth of the token's lifetime if that is shorter) */
  refreshMargin?: number;
  /** ask the server for at most one update per key per conflateMs ms */
  conflateMs?: number;
  /** the server's PING_INTERVAL in ms (default 30000): after that much silence the
   *  client sends a heartbeat, after twice that it reconnects */
  pingInterval?: number;
  /** ms an upgrade may take before the attempt is abandoned and retried
   *  (default: 10000, or twice pingInterval if that is shorter) */
  connectTimeout?: number;
  backoff?: BackoffOptions;
  /** WebSocket constructor (default: globalThis.WebSocket, else the `ws` package) */
  WebSocket?: unknown;
  /** random number in [0, 1) for the jitter (default Math.random) */
  random?: () => number;
  /** timers (default the global ones), for tests */
  clock?: Clock;
  /** connect at once (default true); else call connect() */
  autoConnect?: boolean;
}

type Listener<T> = (event: T) => void;

export interface OddsBoardEvents {
  snapshot: SnapshotEvent;
  update: UpdateEvent;
  status: StatusEvent;
  error: ErrorEvent;
}

export declare class OddsBoard {
  /** throws a TypeError if url is not a URL */
  constructor(url: string, options?: OddsBoardOptions);
  readonly url: string;
  readonly status: Status;
  readonly epoch: string | null;
  /** per stream, the last id the board is known to be complete up to (what a resume sends) */
  readonly positions: Record<string, string>;
  readonly filter: Filter;
  readonly stats: BoardStats;
  /** number of keys on the board */
  readonly size: number;
  /** resolves once the first complete board is in (rejects if the client gives up first) */
  readonly ready: Promise<void>;

  connect(): void;
  get(key: string): BoardItem | undefined;
  has(key: string): boolean;
  keys(): string[];
  values(predicate?: (item: BoardItem, key: string) => boolean): BoardItem[];
  /** replace the filter: re-subscribes, and the board is replaced by the new snapshot */
  setFilter(filter: Filter): void;
  close(): void;

  on<E extends keyof OddsBoardEvents>(event: E, listener: Listener<OddsBoardEvents[E]>): this;
  off<E extends keyof OddsBoardEvents>(event: E, listener: Listener<OddsBoardEvents[E]>): this;
}

/** The board key of an item, as the server keys it: odds by event, market, book and
 *  outcome; opportunities the same, in a key space of their own. */
export declare function boardKey(item: BoardItem): string;

/** Whether a stream carries odds (`odds.normalized.<sport>`) rather than opportunities. */
export declare function isOddsStream(stream: string): boolean;

/** Compares two Redis stream ids ("<ms>-<seq>"): negative, 0 or positive. */
export declare function compareIds(a: string, b: string): number;

/** The delay before reconnect attempt `attempt` (1, 2, ...): full jitter,
 *  uniform in [0, min(cap, base * 2^(attempt-1))). */
export declare function backoffDelay(attempt: number, options?: BackoffOptions, random?: () => number): number;

/** The `exp` claim of a JWT, in seconds, or null if it has none or is not a JWT. */
export declare function tokenExpiry(token: string): number | null;
