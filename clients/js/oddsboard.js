// oddsboard.js: a client of ws-broadcaster that keeps a correct odds board.
//
// The protocol (the service's README, "WebSocket protocol" and
// "Consistency") gives a board in two parts: a snapshot of the latest value
// of every key, then every update after it, each carrying its Redis stream
// and entry id.  This module turns that into a Map that stays equal to the
// truth across reconnects: it remembers the epoch and, per stream, the id up
// to which its board is complete, and on reconnect asks the server to resume
// from there (only the missed updates are sent) or, when that cannot be
// done, replaces the board with the snapshot that follows.
//
// One file, no dependencies, no build step: browsers use their WebSocket,
// Node >= 22 its global one, older Node the `ws` package (an optional peer
// dependency, loaded only when needed).  Types: oddsboard.d.ts.

const ODDS_STREAM_PREFIX = 'odds.normalized.';
const ID_RE = /^(\d+)-(\d+)$/;
// setTimeout cannot wait longer than this (a token valid for weeks).
const MAX_TIMER_MS = 2147483647;

const DEFAULT_BACKOFF = { base: 250, cap: 30000, resetAfter: 30000 };
const DEFAULT_PING_INTERVAL = 30000;
const DEFAULT_REFRESH_MARGIN = 30000;
const DEFAULT_CONNECT_TIMEOUT = 10000;
// After a policy close (1008: too slow, over a rate) the next attempt waits at
// least this long, and after this many in a row without a complete board in
// between the client gives up: retrying at once would only repeat it.
const POLICY_PAUSE_MS = 5000;
const POLICY_MAX_IN_ROW = 3;

const CLOSE_UNAUTHORIZED = 4001;
const CLOSE_POLICY = 1008;
const CLOSE_CLIENT_GONE = 4000; // ours, for a connection we declared dead

/** Whether a stream carries odds (`odds.normalized.<sport>`) rather than opportunities. */
export function isOddsStream(stream) {
  return typeof stream === 'string' && stream.startsWith(ODDS_STREAM_PREFIX);
}

function keyPart(v) {
  return v === undefined || v === null ? '' : String(v);
}

/**
 * The board key of an item, as the server keys it (README "Consistency"):
 * event, market, book and outcome, so that a moved line replaces the old
 * one; opportunities in a key space of their own.  null for an item the
 * server keeps no key for (no event_id or outcome_name).
 */
export function boardKey(item) {
  if (item === null || typeof item !== 'object' || item.event_id === undefined ||
      item.event_id === null || typeof item.outcome_name !== 'string')
    return null;
  const key = keyPart(item.event_id) + '|' + keyPart(item.market_key) + '|' +
    keyPart(item.book_key) + '|' + item.outcome_name;
  return isOddsStream(item.stream) ? key : 'opportunity|' + key;
}

// Decimal digit strings compare by length, then text, once leading zeros
// are gone: ids are 64-bit numbers, beyond what a Number holds exactly.
function compareDigits(a, b) {
  if (a.length > 1 && a[0] === '0')
    a = a.replace(/^0+(?=\d)/, '');
  if (b.length > 1 && b[0] === '0')
    b = b.replace(/^0+(?=\d)/, '');
  if (a.length !== b.length)
    return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Compares two Redis stream ids ("<ms>-<seq>"): negative, 0 or positive. */
export function compareIds(a, b) {
  if (!isId(a) || !isId(b))
    throw new TypeError(`not a stream id: ${isId(a) ? b : a}`);
  const i = a.indexOf('-'), j = b.indexOf('-');
  return compareDigits(a.slice(0, i), b.slice(0, j)) || compareDigits(a.slice(i + 1), b.slice(j + 1));
}

function isId(v) {
  return typeof v === 'string' && ID_RE.test(v);
}

/**
 * The delay before reconnect attempt `attempt` (1, 2, ...), "full jitter":
 * uniform in [0, min(cap, base * 2^(attempt-1))), so that clients cut at the
 * same moment (a worker restart) come back spread out instead of together.
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const base = options.base ?? DEFAULT_BACKOFF.base;
  const cap = options.cap ?? DEFAULT_BACKOFF.cap;
  const n = Math.max(1, Math.floor(attempt));
  const ceiling = Math.min(cap, base * Math.pow(2, Math.min(n - 1, 52)));
  return Math.floor(random() * ceiling);
}

function base64UrlDecode(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
  if (typeof atob === 'function') {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++)
      bytes[i] = bin.charCodeAt(i);
    return new TextDecoder().decode(bytes);
  }
  return Buffer.from(b64, 'base64').toString('utf8');
}

function tokenClaims(token) {
  if (typeof token !== 'string')
    return null;
  const parts = token.split('.');
  if (parts.length !== 3)
    return null;
  try {
    const claims = JSON.parse(base64UrlDecode(parts[1]));
    return claims !== null && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

/** The `exp` claim of a JWT, in seconds, or null if it has none or is not a JWT. */
export function tokenExpiry(token) {
  const claims = tokenClaims(token);
  return claims !== null && typeof claims.exp === 'number' && Number.isFinite(claims.exp)
    ? claims.exp : null;
}

const systemClock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle),
  now: () => Date.now(),
};

let wsPackage = null;

// The WebSocket constructor: the one given, the platform's, else `ws`.
async function webSocketClass(given) {
  if (given)
    return given;
  if (typeof globalThis.WebSocket === 'function')
    return globalThis.WebSocket;
  if (wsPackage === null) {
    try {
      wsPackage = (await import('ws')).default;
    } catch {
      throw new Error('no WebSocket here: use Node >= 22, install the "ws" package, or pass options.WebSocket');
    }
  }
  return wsPackage;
}

function cleanFilter(filter) {
  const out = {};
  for (const name of ['sports', 'events', 'markets', 'books']) {
    const list = filter?.[name];
    if (list === undefined || list === null)
      continue;
    if (!Array.isArray(list) || list.some((v) => typeof v !== 'string'))
      throw new TypeError(`filter.${name} must be a list of strings`);
    if (list.length > 0)
      out[name] = [...list];
  }
  return out;
}

/**
 * A live odds board.  See oddsboard.d.ts for the options and events, and the
 * README's "Clients" section for an example.
 */
export class OddsBoard {
  constructor(url, options = {}) {
    this.url = String(url);
    new URL(this.url); // a TypeError now rather than retries forever
    this._options = options;
    this._filter = cleanFilter(options.filter);
    this._backoff = { ...DEFAULT_BACKOFF, ...(options.backoff ?? {}) };
    this._pingInterval = options.pingInterval ?? DEFAULT_PING_INTERVAL;
    this._connectTimeout = options.connectTimeout ?? Math.min(DEFAULT_CONNECT_TIMEOUT, 2 * this._pingInterval);
    this._random = options.random ?? Math.random;
    this._clock = options.clock ?? systemClock;
    this._listeners = new Map();

    this._board = new Map();
    this._epoch = null;
    this._positions = {};
    // The board is complete for the current filter up to _positions, so a
    // reconnect may resume from there.
    this._resumable = false;
    this._everComplete = false;
    this._snapshot = null; // the parts of a snapshot being received
    this._awaitingAck = false;
    this._snapshotReason = undefined;
    this._awaitingResync = false;

    this._status = 'closed';
    this._ws = null;
    this._connectSeq = 0;
    this._attempt = 0;
    this._reconnectTimer = null;
    this._openedAt = 0;
    this._lastReceived = 0;
    this._heartbeatSent = false;
    this._watchdog = null;
    this._policyInRow = 0;
    this._stopped = false;

    this._token = options.token ?? null;
    this._authRetried = false;
    this._refreshTimer = null;

    this.stats = { updates: 0, staleDropped: 0, malformed: 0, unknownTypes: 0, snapshots: 0, reconnects: 0 };

    this.ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    // A caller that never awaits `ready` must not see an unhandled rejection.
    this.ready.catch(() => {});

    this._onOnline = () => this._retryNow();
    this._onVisible = () => {
      if (globalThis.document?.visibilityState === 'visible')
        this._retryNow();
    };

    if (options.autoConnect !== false)
      this.connect();
  }

  get status() { return this._status; }
  get epoch() { return this._epoch; }
  get positions() { return { ...this._positions }; }
  get filter() { return structuredClone(this._filter); }
  get size() { return this._board.size; }

  get(key) { return this._board.get(key); }
  has(key) { return this._board.has(key); }
  keys() { return [...this._board.keys()]; }

  values(predicate) {
    const out = [];
    for (const [key, item] of this._board)
      if (predicate === undefined || predicate(item, key))
        out.push(item);
    return out;
  }

  on(event, listener) {
    if (!this._listeners.has(event))
      this._listeners.set(event, new Set());
    this._listeners.get(event).add(listener);
    return this;
  }

  off(event, listener) {
    this._listeners.get(event)?.delete(listener);
    return this;
  }

  _emit(event, detail) {
    for (const listener of [...(this._listeners.get(event) ?? [])]) {
      try {
        listener(detail);
      } catch (err) {
        // As an EventTarget does: a listener's exception is reported, and
        // neither the other listeners nor the board suffer from it.
        this._clock.setTimeout(() => { throw err; }, 0);
      }
    }
  }

  _setStatus(status, extra = {}) {
    this._status = status;
    this._emit('status', { status, epoch: this._epoch, positions: this.positions, ...extra });
  }

  _error(code, message, fatal = false, closeCode = undefined) {
    const detail = { code, message, fatal };
    if (closeCode !== undefined)
      detail.closeCode = closeCode;
    this._emit('error', detail);
  }

  /** Starts connecting (done by the constructor unless autoConnect is false). */
  connect() {
    if (this._stopped || this._ws !== null || this._reconnectTimer !== null)
      return;
    if (typeof globalThis.addEventListener === 'function')
      globalThis.addEventListener('online', this._onOnline);
    globalThis.document?.addEventListener?.('visibilitychange', this._onVisible);
    this._setStatus('connecting');
    this._open();
  }

  /** Replaces the filter; the board is replaced by the new filter's snapshot. */
  setFilter(filter) {
    const next = cleanFilter(filter);
    this._filterBefore = { filter: this._filter, resumable: this._resumable };
    this._filter = next;
    // The positions belong to the old filter's board: nothing to resume.
    this._resumable = false;
    this._snapshot = null;
    this._snapshotReason = 'resubscribed';
    if (this._isOpen())
      this._subscribe();
  }

  // A refused subscribe (invalid_filter, forbidden) leaves the previous
  // filter in force on the server: so it is here, with its board.
  _subscribeRefused() {
    const prev = this._filterBefore;
    this._awaitingAck = false;
    if (prev === undefined)
      return;
    this._filterBefore = undefined;
    this._filter = prev.filter;
    this._resumable = prev.resumable;
    this._snapshotReason = undefined;
  }

  /** Closes the connection for good. */
  close() {
    if (this._stopped)
      return;
    this._stopped = true;
    this._clearTimers();
    if (typeof globalThis.removeEventListener === 'function')
      globalThis.removeEventListener('online', this._onOnline);
    globalThis.document?.removeEventListener?.('visibilitychange', this._onVisible);
    this._dropSocket(1000, 'closed by the client');
    this._setStatus('closed');
    this._rejectReady(new Error('closed before the board was complete'));
  }

  _clearTimers() {
    for (const name of ['_reconnectTimer', '_watchdog', '_refreshTimer']) {
      if (this[name] !== null) {
        this._clock.clearTimeout(this[name]);
        this[name] = null;
      }
    }
  }

  _isOpen() {
    return this._ws !== null && this._ws.readyState === 1;
  }

  // Forget the socket: its late events are ignored from here on.  With a
  // code, close it too (without, it is closed already).
  _dropSocket(code, reason) {
    const ws = this._ws;
    if (ws === null)
      return;
    this._ws = null;
    ws.onopen = ws.onmessage = ws.onclose = null;
    // `ws` reports closing a socket that is still connecting as an error,
    // which must have a listener or it takes the process down.
    ws.onerror = () => {};
    if (code === undefined)
      return;
    try {
      if (typeof ws.terminate === 'function' && code === CLOSE_CLIENT_GONE)
        ws.terminate(); // `ws`: no close handshake with a dead peer
      else
        ws.close(code, reason);
    } catch {
      // already closed
    }
  }

  async _tokenForConnect() {
    const { getToken } = this._options;
    const exp = this._token !== null ? tokenExpiry(this._token) : null;
    const expired = exp !== null && exp * 1000 <= this._clock.now();
    if ((this._token === null || expired) && typeof getToken === 'function')
      this._token = await getToken();
    return this._token;
  }

  async _open() {
    const seq = ++this._connectSeq;
    let url;
    let WS;
    try {
      url = new URL(this.url);
    } catch {
      this._error('connect_failed', `not a URL: ${this.url}`, true);
      this._giveUp({ reason: 'not a URL' });
      return;
    }
    try {
      const token = await this._tokenForConnect();
      WS = await webSocketClass(this._options.WebSocket);
      if (token)
        url.searchParams.set('token', token);
    } catch (err) {
      if (seq !== this._connectSeq || this._stopped)
        return;
      this._error('connect_failed', err?.message ?? String(err));
      this._scheduleReconnect({});
      return;
    }
    if (seq !== this._connectSeq || this._stopped)
      return;

    let ws;
    try {
      ws = new WS(url.toString());
    } catch (err) {
      this._error('connect_failed', err?.message ?? String(err), true);
      this._giveUp({});
      return;
    }
    this._ws = ws;
    this._httpStatus = 0;
    // A peer that takes the TCP connection and never answers the upgrade (a
    // proxy whose backend is gone) must not hold the board in `connecting`.
    this._watchdog = this._clock.setTimeout(() => {
      this._watchdog = null;
      if (this._ws !== ws || ws.readyState === 1)
        return;
      this._dropSocket(CLOSE_CLIENT_GONE, 'no answer to the upgrade');
      this._lost(1006, 'no answer to the upgrade');
    }, this._connectTimeout);
    ws.onopen = () => this._opened();
    ws.onmessage = (ev) => this._received(ev.data);
    ws.onerror = (ev) => {
      // Only the `ws` package says why an upgrade failed (401, 429); a
      // browser reports a close with code 1006 and nothing more.
      const m = /Unexpected server response: (\d+)/.exec(ev?.message ?? ev?.error?.message ?? '');
      if (m)
        this._httpStatus = Number(m[1]);
    };
    ws.onclose = (ev) => this._closed(ev?.code ?? 1006, ev?.reason ?? '');
  }

  _opened() {
    if (this._watchdog !== null)
      this._clock.clearTimeout(this._watchdog);
    this._openedAt = this._clock.now();
    this._lastReceived = this._openedAt;
    this._heartbeatSent = false;
    this._armWatchdog();
    this._subscribe();
  }

  _subscribe() {
    const payload = { ...this._filter };

    if (this._options.conflateMs)
      payload.conflate_ms = this._options.conflateMs;
    this._resuming = this._resumable && this._epoch !== null;
    if (this._resuming)
      payload.resume = { epoch: this._epoch, positions: { ...this._positions } };
    this._snapshot = null;
    // Parts still on their way from the previous subscribe are not this
    // board's: snapshot parts count only after the acknowledgement.
    this._awaitingAck = this._send({ type: 'subscribe', payload });
  }

  _send(message) {
    if (!this._isOpen())
      return false;
    this._ws.send(JSON.stringify(message));
    return true;
  }

  // Silence for a ping interval gets a heartbeat (a quiet filter is not a
  // dead connection: the reply proves it); silence for two is a dead
  // connection, whatever TCP thinks.
  _armWatchdog() {
    const tick = Math.max(10, Math.floor(this._pingInterval / 4));
    this._watchdog = this._clock.setTimeout(() => {
      this._watchdog = null;
      if (this._ws === null)
        return;
      const idle = this._clock.now() - this._lastReceived;
      if (idle >= 2 * this._pingInterval) {
        this._dropSocket(CLOSE_CLIENT_GONE, 'no message for two ping intervals');
        this._lost(CLOSE_CLIENT_GONE, 'heartbeat timeout');
        return;
      }
      if (idle >= this._pingInterval && !this._heartbeatSent)
        this._heartbeatSent = this._send({ type: 'heartbeat', payload: {} });
      this._armWatchdog();
    }, tick);
  }

  _closed(code, reason) {
    this._dropSocket();
    if (this._stopped)
      return;
    if (code === 1006 && this._httpStatus === 401) {
      code = CLOSE_UNAUTHORIZED;
      reason = 'token refused (HTTP 401)';
    } else if (code === 1006 && this._httpStatus === 429) {
      code = CLOSE_POLICY;
      reason = 'too many connections (HTTP 429)';
    }
    this._lost(code, reason);
  }

  // The connection is gone: decide whether and when to come back.
  _lost(code, reason) {
    if (this._watchdog !== null) {
      this._clock.clearTimeout(this._watchdog);
      this._watchdog = null;
    }
    this._snapshot = null;
    const now = this._clock.now();
    if (this._openedAt !== 0 && now - this._openedAt >= this._backoff.resetAfter)
      this._attempt = 0;
    this._openedAt = 0;

    if (code === CLOSE_UNAUTHORIZED) {
      const giveUp = this._authRetried || typeof this._options.getToken !== 'function';
      this._error('unauthorized_close', reason || 'token refused', giveUp, code);
      if (giveUp) {
        this._giveUp({ code, reason });
        return;
      }
      // One new token, then one more try; a second 4001 ends it.
      this._authRetried = true;
      this._token = null;
      this._scheduleReconnect({ code, reason, minDelay: 0 });
      return;
    }
    if (code === CLOSE_POLICY) {
      this._policyInRow++;
      this._error('policy_close', reason || 'closed by policy', this._policyInRow >= POLICY_MAX_IN_ROW, code);
      if (this._policyInRow >= POLICY_MAX_IN_ROW) {
        this._giveUp({ code, reason });
        return;
      }
      this._scheduleReconnect({ code, reason, minDelay: POLICY_PAUSE_MS });
      return;
    }
    this._scheduleReconnect({ code, reason });
  }

  _scheduleReconnect({ code, reason, minDelay = 0 }) {
    if (this._stopped)
      return;
    this._attempt++;
    this.stats.reconnects++;
    const hinted = this._reconnectAfter;
    this._reconnectAfter = undefined;
    const delay = hinted !== undefined
      ? hinted : minDelay + backoffDelay(this._attempt, this._backoff, this._random);
    const extra = { attempt: this._attempt, delay };
    if (code !== undefined) {
      extra.code = code;
      extra.reason = reason;
    }
    this._setStatus('reconnecting', extra);
    this._reconnectTimer = this._clock.setTimeout(() => {
      this._reconnectTimer = null;
      this._open();
    }, delay);
  }

  // A browser that comes back online or to the foreground tries at once
  // instead of sleeping out its backoff.
  _retryNow() {
    if (this._stopped || this._reconnectTimer === null)
      return;
    this._clock.clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    this._open();
  }

  _giveUp(extra) {
    this._stopped = true;
    this._clearTimers();
    this._dropSocket(1000, 'giving up');
    this._setStatus('closed', extra);
    this._rejectReady(new Error(`gave up: ${extra.reason || extra.code || 'cannot connect'}`));
  }

  // ---- messages

  _received(data) {
    this._lastReceived = this._clock.now();
    this._heartbeatSent = false;
    let msg;
    try {
      if (typeof data !== 'string')
        throw new Error('a binary message');
      msg = JSON.parse(data);
      if (msg === null || typeof msg !== 'object' || Array.isArray(msg) || typeof msg.type !== 'string')
        throw new Error('not a message object');
    } catch (err) {
      this._malformed(`unreadable message: ${err.message}`);
      return;
    }
    const payload = msg.payload;
    switch (msg.type) {
    case 'odds_update':
    case 'opportunity':
      this._update(msg);
      break;
    case 'snapshot':
      this._snapshotPart(payload);
      break;
    case 'subscribed':
      this._subscribed(payload);
      break;
    case 'authenticated':
    case 'refreshed':
      this._scheduleRefresh();
      break;
    case 'error':
      if (payload?.code === 'invalid_filter' || payload?.code === 'forbidden')
        this._subscribeRefused();
      this._error(typeof payload?.code === 'string' ? payload.code : 'error',
                  typeof payload?.message === 'string' ? payload.message : '');
      break;
    case 'reconnect':
      // The service is draining: it says when to come back, spread over a
      // window so that its clients do not all return in one second.
      if (Number.isFinite(payload?.after_ms) && payload.after_ms >= 0)
        this._reconnectAfter = Math.min(payload.after_ms, this._backoff.cap);
      break;
    case 'heartbeat':
    case 'unsubscribed':
      break;
    default:
      // A newer server's message: a client that ignores it keeps working.
      this.stats.unknownTypes++;
    }
  }

  _malformed(message) {
    this.stats.malformed++;
    this._error('malformed_message', message);
  }

  _subscribed(payload) {
    if (payload === null || typeof payload !== 'object') {
      this._malformed('subscribed without a payload');
      return;
    }
    this._authRetried = false;
    this._awaitingAck = false;
    this._filterBefore = undefined;
    this._scheduleRefresh();
    if (this._resuming && payload.resumed === true) {
      this._resuming = false;
      this._policyInRow = 0;
      this._setStatus('resumed');
      return;
    }
    if (this._resuming) {
      // resumed: false: the snapshot that follows replaces the board.
      this._snapshotReason = typeof payload.reason === 'string' ? payload.reason : 'resume_refused';
      this._awaitingResync = true;
    } else if (this._everComplete &&
               (this._status === 'reconnecting' || this._snapshotReason !== 'resubscribed')) {
      // back after a drop without a board to resume from (the filter
      // changed meanwhile, say): the snapshot makes it right again
      this._awaitingResync = true;
    }
    this._resuming = false;
  }

  _snapshotPart(payload) {
    if (payload === null || typeof payload !== 'object' || typeof payload.epoch !== 'string' ||
        payload.positions === null || typeof payload.positions !== 'object' ||
        !Array.isArray(payload.items)) {
      this._malformed('a snapshot part without epoch, positions or items');
      return;
    }
    if (this._awaitingAck)
      return;
    if (this._snapshot === null) {
      this._snapshot = {
        epoch: payload.epoch,
        positions: {},
        items: new Map(),
        reason: typeof payload.reason === 'string' ? payload.reason : this._snapshotReason,
      };
      for (const [stream, id] of Object.entries(payload.positions))
        if (isId(id))
          this._snapshot.positions[stream] = id;
    }
    const snap = this._snapshot;
    for (const item of payload.items) {
      if (item === null || typeof item !== 'object' || typeof item.stream !== 'string' || !isId(item.id))
        continue;
      const key = boardKey(item);
      if (key === null)
        continue;
      const cur = snap.items.get(key);
      if (cur === undefined || compareIds(item.id, cur.id) > 0)
        snap.items.set(key, item);
    }
    if (payload.last === true)
      this._applySnapshot(snap);
  }

  _applySnapshot(snap) {
    this._snapshot = null;
    this._board = snap.items;
    this._epoch = snap.epoch;
    this._positions = snap.positions;
    this._resumable = true;
    this._policyInRow = 0;
    this.stats.snapshots++;
    const first = !this._everComplete;
    const reason = snap.reason;
    this._snapshotReason = undefined;
    this._everComplete = true;
    const detail = { epoch: snap.epoch, positions: this.positions, size: this._board.size };
    if (reason !== undefined)
      detail.reason = reason;
    this._emit('snapshot', detail);
    if (first) {
      this._awaitingResync = false;
      this._setStatus('connected');
      this._resolveReady();
    } else if (this._awaitingResync || (reason !== undefined && reason !== 'resubscribed')) {
      // after a reconnect whose resume was refused, or a fresh snapshot the
      // server sent on its own (lapped, epoch_changed, history_loaded)
      this._awaitingResync = false;
      this._setStatus('resynced', reason !== undefined ? { reason } : {});
    }
  }

  _update(msg) {
    const value = msg.payload;
    if (value === null || typeof value !== 'object' || Array.isArray(value) ||
        typeof msg.stream !== 'string' || !isId(msg.id)) {
      this._malformed(`${msg.type} without a payload, stream or id`);
      return;
    }
    // The parsed payload is ours: it becomes the board's value, with the
    // message's stream and id in it (as in a snapshot item).
    const item = value;
    item.stream = msg.stream;
    item.id = msg.id;
    const conflated = msg.conflated === true;
    const key = boardKey(item);
    // An update while a snapshot is arriving belongs after it.
    const board = this._snapshot !== null ? this._snapshot.items : this._board;
    const previous = key !== null ? board.get(key) : undefined;
    if (previous !== undefined && compareIds(item.id, previous.id) <= 0) {
      this.stats.staleDropped++;
      return;
    }
    // A conflated update stands where an older one of its key was queued,
    // ahead of other keys' older entries: the board is complete only up to
    // the last unconflated id, so that is where a resume must start (what
    // comes twice is dropped above).
    if (!conflated && this._snapshot === null) {
      const pos = this._positions[item.stream];
      if (pos === undefined || compareIds(item.id, pos) > 0)
        this._positions[item.stream] = item.id;
    }
    if (key !== null)
      board.set(key, item);
    if (board !== this._board)
      return;
    this.stats.updates++;
    this._emit('update', {
      key,
      kind: isOddsStream(item.stream) ? 'odds' : 'opportunity',
      previous,
      value: item,
      conflated,
    });
  }

  // ---- tokens

  // getToken() is asked for a new token `margin` before the current one
  // expires, and the new token is sent as a `refresh`: the connection (and
  // the board) stays.
  _scheduleRefresh() {
    if (this._refreshTimer !== null) {
      this._clock.clearTimeout(this._refreshTimer);
      this._refreshTimer = null;
    }
    const { getToken } = this._options;
    const exp = this._token !== null ? tokenExpiry(this._token) : null;
    if (exp === null || typeof getToken !== 'function' || this._stopped)
      return;
    const now = this._clock.now();
    const claims = tokenClaims(this._token);
    const issued = typeof claims?.iat === 'number' ? claims.iat * 1000 : now;
    const lifetime = Math.max(0, exp * 1000 - issued);
    const margin = this._options.refreshMargin ?? Math.min(DEFAULT_REFRESH_MARGIN, lifetime / 10);
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, exp * 1000 - margin - now));
    this._refreshTimer = this._clock.setTimeout(() => {
      this._refreshTimer = null;
      this._refresh(exp);
    }, delay);
  }

  async _refresh(oldExp) {
    let token;
    try {
      token = await this._options.getToken();
    } catch (err) {
      this._error('token_refresh_failed', err?.message ?? String(err));
      // Try again while the old token lasts.
      const left = oldExp * 1000 - this._clock.now();
      if (left > 1000 && !this._stopped)
        this._refreshTimer = this._clock.setTimeout(() => {
          this._refreshTimer = null;
          this._refresh(oldExp);
        }, Math.min(5000, left / 2));
      return;
    }
    if (this._stopped || typeof token !== 'string' || token === '')
      return;
    this._token = token;
    // Not connected: the next connection presents it in its upgrade.
    this._send({ type: 'refresh', payload: { token } });
  }
}
