// Test harness for the oddsboard client: a real Redis, the real service
// binary, and a scriptable fake server, each stopped when the tests are done.
//
//   startRedis({own})             WSB_TEST_REDIS_URL if set (CI starts one), else a private
//                                 redis-server; {own: true} always starts a private one
//   startService(redisUrl, settings)
//                                 the binary (WSB_BIN, default <repo>/bin/ws-broadcaster),
//                                 with a config file like the Python integration tests write
//   startFakeServer()             a WebSocketServer (`ws` package) a test scripts by hand
//   openBoard(url, options)       an OddsBoard that records its events
//   new Publisher(...).start()    entries at a steady rate in the background
//   scoped(fn)                    wraps a test body: whatever it started is stopped when it
//                                 ends, and the service logs are printed when it fails
//
// Anything still running when a test file ends is stopped by an `after` hook
// registered here, and killed at process exit as a last resort, so a failing
// test never leaves a service or a Redis behind.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { createClient } from 'redis';
import { WebSocketServer } from 'ws';
import { OddsBoard, boardKey, isOddsStream } from '../oddsboard.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const SEED_FIELDS = [
  'event_id', 'sport_key', 'market_key', 'book_key', 'outcome_name', 'price', 'point',
  'decimal_odds', 'implied_probability', 'novig_probability', 'fair_price', 'edge', 'normalized_at',
];
export const NUMERIC_FIELDS = new Set([
  'price', 'point', 'decimal_odds', 'implied_probability', 'novig_probability', 'fair_price', 'edge',
]);

const READY_TIMEOUT = 10000;
const STOP_TIMEOUT = 5000;

// --------------------------------------------------------------------------
// small utilities

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function uid() {
  return randomBytes(5).toString('hex');
}

/** Polls predicate() (sync or async) until it returns a truthy value, which is returned. */
export async function waitUntil(predicate, { timeout = 10000, interval = 50, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await predicate();
    if (last) return last;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${message} (last: ${String(last)})`);
    }
    await sleep(interval);
  }
}

/** Resolves with the first event of that name an emitter-like object (on/off) emits. */
export function nextEvent(target, name, { timeout = 10000, filter = () => true } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      target.off(name, listener);
      reject(new Error(`no '${name}' event within ${timeout} ms`));
    }, timeout);
    const listener = (event) => {
      if (!filter(event)) return;
      clearTimeout(timer);
      target.off(name, listener);
      resolve(event);
    };
    target.on(name, listener);
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function tempDir(prefix) {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

function httpGet(port, urlPath, timeout = 2000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, timeout }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} timed out`)));
    req.on('error', reject);
  });
}

// --------------------------------------------------------------------------
// what runs, and its cleanup

// Every board, Redis, service and fake server started and not yet disposed of
// (each has dispose(), and kill() if it is a process).
const running = new Set();
// The services started, in order, so a failing test can print the logs of its own.
const services = [];

function track(resource) {
  running.add(resource);
  return resource;
}

async function stopAll(resources) {
  for (const r of [...resources].reverse()) {
    try {
      await r.dispose();
    } catch (err) {
      process.stderr.write(`cleanup: ${err.message}\n`);
    }
    running.delete(r);
  }
}

after(() => stopAll(running));

// A last resort for a runner that ends the process without running hooks
// (a test timeout cancelling everything, say): only synchronous calls here.
process.on('exit', () => {
  for (const r of running) r.kill?.();
});

/**
 * Wraps a test body: what it starts (services, Redis, fake servers) is
 * stopped when it ends, pass or fail, and when it fails the stderr of the
 * services it started is printed.
 */
export function scoped(fn) {
  return async (t) => {
    const before = new Set(running);
    const firstService = services.length;
    try {
      return await fn(t);
    } catch (err) {
      for (const svc of services.slice(firstService)) {
        process.stderr.write(`\n----- ws-broadcaster on port ${svc.port} (pid ${svc.pid}) stderr -----\n`);
        process.stderr.write(svc.stderr());
      }
      throw err;
    } finally {
      await stopAll([...running].filter((r) => !before.has(r)));
    }
  };
}

// --------------------------------------------------------------------------
// /proc: the service's processes

function procComm(pid) {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

function procChildren(pid) {
  const out = [];
  let tasks = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8');
      for (const p of text.split(/\s+/)) if (p) out.push(Number(p));
    } catch {
      // the task ended while we looked
    }
  }
  return out;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
function portOpen(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port }, () => {
      sock.destroy();
      resolve(true);
    });
    sock.on('error', () => resolve(false));
  });
}

// A zombie is not alive: where nothing reaps orphans, it never goes away.
function procAlive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

// --------------------------------------------------------------------------
// Redis

async function connectClient(url) {
  const client = createClient({
    url: `redis://${url}`,
    // A Redis a test stops on purpose must not make the client throw forever:
    // retry quickly, and say nothing (the test checks what it needs).
    socket: { reconnectStrategy: (retries) => Math.min(50 * (retries + 1), 500), connectTimeout: 5000 },
  });
  client.on('error', () => {});
  await client.connect();
  await client.ping();
  return client;
}

async function closeClient(client) {
  if (!client) return;
  try {
    if (client.isOpen) await client.quit();
  } catch {
    try {
      client.destroy?.() ?? client.disconnect?.();
    } catch {
      // already gone
    }
  }
}

class OwnRedis {
  constructor(port) {
    this.port = port;
    this.url = `127.0.0.1:${port}`;
    this.dir = tempDir('wsb-js-redis-');
    this.proc = null;
    this.client = null;
  }

  async start() {
    this.proc = spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.dir, '--daemonize', 'no', '--logfile', path.join(this.dir, 'redis.log'),
    ], { stdio: 'ignore' });
    const proc = this.proc;
    let exited = null;
    proc.on('exit', (code, sig) => {
      exited = sig ?? code;
    });
    proc.on('error', (err) => {
      exited = err.message;
    });
    // The client would wait for the port forever: wait here, where an exit is seen.
    await waitUntil(() => {
      if (exited !== null) throw new Error(`redis-server exited (${exited}) before listening`);
      return portOpen(this.port);
    }, { timeout: 10000, message: `redis-server to listen on port ${this.port}` });
    this.client = await connectClient(this.url);
    return this;
  }

  /** Stops the server and starts an empty one on the same port (a Redis restarted without data). */
  async restart() {
    await this.stopServer();
    await this.start();
    return this;
  }

  async stopServer() {
    await closeClient(this.client);
    this.client = null;
    const proc = this.proc;
    this.proc = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT);
    await exited;
    clearTimeout(timer);
  }

  async stop() {
    await this.stopServer();
  }

  async dispose() {
    await this.stopServer();
    rmSync(this.dir, { recursive: true, force: true });
  }

  kill() {
    this.proc?.kill('SIGKILL');
  }
}

class ExternalRedis {
  constructor(url) {
    const i = url.lastIndexOf(':');
    this.host = i > 0 ? url.slice(0, i) : '127.0.0.1';
    this.port = Number(url.slice(i + 1));
    this.url = `${this.host}:${this.port}`;
    this.client = null;
  }

  async start() {
    this.client = await connectClient(this.url);
    return this;
  }

  // The server is never stopped here (whoever started it, CI, owns it): only our client is closed.
  async stop() {
    await closeClient(this.client);
    this.client = null;
  }

  dispose() {
    return this.stop();
  }
}

/**
 * A Redis for a test: the one WSB_TEST_REDIS_URL names, else a private
 * redis-server on a free port.  {own: true} always starts a private one (a
 * test that restarts Redis must not restart a shared one); it has restart().
 */
export async function startRedis({ own = false } = {}) {
  const external = process.env.WSB_TEST_REDIS_URL;
  const r = !own && external ? new ExternalRedis(external) : new OwnRedis(await freePort());
  track(r);
  return r.start();
}

// --------------------------------------------------------------------------
// entries

/** A complete flat odds entry: the 13 seed fields as strings; a field given as null is left out. */
export function oddsFields(sport, { event = 'ev1', market = 'h2h', book = 'fanduel', outcome = 'Los Angeles Lakers', ...over } = {}) {
  const f = {
    event_id: event,
    sport_key: sport,
    market_key: market,
    book_key: book,
    outcome_name: outcome,
    price: '-110',
    point: '',
    decimal_odds: '1.909',
    implied_probability: '0.5238',
    novig_probability: '0.5',
    fair_price: '-100',
    edge: '0.024',
    normalized_at: '2025-11-07T12:34:56Z',
  };
  for (const [k, v] of Object.entries(over)) {
    if (v === null || v === undefined) delete f[k];
    else f[k] = String(v);
  }
  return f;
}

/** XADD one entry; resolves with its id. */
export function publish(client, stream, fields) {
  return client.xAdd(stream, '*', fields);
}

/** XADD many [stream, fields] entries in one pipeline; resolves with their ids, in order. */
export async function publishMany(client, entries) {
  if (entries.length === 0) return [];
  const multi = client.multi();
  for (const [stream, fields] of entries) multi.xAdd(stream, '*', fields);
  return multi.execAsPipeline();
}

/**
 * Entry fields typed the way the service types them (README "Streams in"):
 * numeric fields become numbers, "" or "null" becomes null; the rest stay strings.
 */
export function typedFields(fields) {
  const out = {};
  for (const [k, v] of Object.entries(fields)) {
    out[k] = NUMERIC_FIELDS.has(k) ? (v === '' || v === 'null' ? null : Number(v)) : v;
  }
  for (const k of NUMERIC_FIELDS) if (!(k in out)) out[k] = null;
  return out;
}

const isTruthEntry = (x) => Object.keys(x).length === 3 && typeof x.fields === 'object' && 'id' in x && 'stream' in x;

/** What of a board item (or a truth entry) a comparison looks at: the 13 seed fields, stream and id. */
export function normalize(itemOrTruth) {
  const src = isTruthEntry(itemOrTruth)
    ? { ...itemOrTruth.fields, stream: itemOrTruth.stream, id: itemOrTruth.id }
    : itemOrTruth;
  const out = {};
  for (const k of SEED_FIELDS) out[k] = src[k] ?? null;
  out.stream = src.stream;
  out.id = src.id;
  return out;
}

/**
 * Whether an entry of `stream` passes a subscription filter, as the service
 * decides it: an empty or absent list passes all, and a dimension an
 * opportunity lacks does not exclude it (README "Streams in").
 */
export function matchesFilter(fields, stream, filter = {}) {
  const lenient = !isOddsStream(stream);
  const pass = (list, v) => !list || list.length === 0 || list.includes(v) || (lenient && (v ?? '') === '');
  return pass(filter.sports, fields.sport_key) && pass(filter.events, fields.event_id) &&
    pass(filter.markets, fields.market_key) && pass(filter.books, fields.book_key);
}

/**
 * The latest entry of every key in the streams that passes `filter`, read
 * back with XRANGE: Map boardKey -> {fields (typed), id, stream}.  What a
 * correct board holds once it has caught up.
 */
export async function truth(client, streams, filter = {}) {
  const map = new Map();
  for (const stream of streams) {
    let start = '-';
    for (;;) {
      const batch = await client.xRange(stream, start, '+', { COUNT: 5000 });
      for (const { id, message } of batch) {
        const fields = typedFields(message);
        // An odds entry without a sport is the stream's sport.
        if (!fields.sport_key && isOddsStream(stream)) fields.sport_key = stream.slice('odds.normalized.'.length);
        const key = boardKey({ ...fields, stream, id });
        if (key !== null && matchesFilter(fields, stream, filter)) map.set(key, { fields, id, stream });
      }
      if (batch.length < 5000) break;
      start = `(${batch[batch.length - 1].id}`;
    }
  }
  return map;
}

/**
 * Differences between a board and the truth, at most `limit` of them (empty
 * when they are equal): keys missing on either side and items that differ.
 */
export function boardDiff(board, expected, limit = 5) {
  const diffs = [];
  const keys = new Set(board.keys());
  for (const [key, t] of expected) {
    if (diffs.length >= limit) break;
    const item = board.get(key);
    if (!item) {
      diffs.push(`missing ${key} (truth id ${t.id})`);
      continue;
    }
    const a = JSON.stringify(normalize(item));
    const b = JSON.stringify(normalize(t));
    if (a !== b) diffs.push(`${key}: board ${a} != truth ${b}`);
  }
  for (const key of keys) {
    if (diffs.length >= limit) break;
    if (!expected.has(key)) diffs.push(`extra ${key} (board id ${board.get(key)?.id})`);
  }
  return diffs;
}

/** Waits until the board equals the truth of the streams (what it should hold once caught up). */
export async function waitBoardEqualsTruth(board, client, streams, { filter = board.filter, timeout = 15000 } = {}) {
  let diffs = [];
  try {
    await waitUntil(async () => {
      diffs = boardDiff(board, await truth(client, streams, filter));
      return diffs.length === 0;
    }, { timeout, interval: 100, message: 'the board to equal the truth' });
  } catch (err) {
    err.message += `; size ${board.size}, status ${board.status}; first differences:\n  ${diffs.join('\n  ')}`;
    throw err;
  }
}

/**
 * Publishes about `rate` entries a second over `keys` ([{event, market, book,
 * outcome}]) to `stream` in the background, each with a fresh price, until
 * stop(), which resolves with the ids it published.  A separate Redis client
 * keeps its pipelines from queueing behind the test's own commands.
 */
export class Publisher {
  constructor(redisUrl, stream, sport, keys, { rate = 1000, tick = 20 } = {}) {
    Object.assign(this, { redisUrl, stream, sport, keys, rate, tick });
    this.ids = [];
    this.sent = 0;
    this.error = null;
  }

  async start() {
    this.client = await connectClient(this.redisUrl);
    this.started = Date.now();
    this.loop = this.run();
    track(this);
    return this;
  }

  async run() {
    let i = 0;
    while (!this.stopping) {
      const due = Math.floor(((Date.now() - this.started) * this.rate) / 1000) - this.sent;
      if (due > 0) {
        const entries = [];
        for (let n = 0; n < due; n++, i++) {
          const k = this.keys[i % this.keys.length];
          const price = String((i % 400) - 200 || 100);
          entries.push([this.stream, oddsFields(this.sport, { ...k, price, decimal_odds: (1 + (i % 97) / 10).toFixed(3) })]);
        }
        this.sent += due;
        try {
          this.ids.push(...(await publishMany(this.client, entries)));
        } catch (err) {
          // A Redis or service restart in the middle is the test's business;
          // keep publishing, remember the first failure for the curious.
          this.error ??= err;
        }
      }
      await sleep(this.tick);
    }
  }

  /** Waits until at least n entries are published. */
  waitFor(n, timeout = 10000) {
    return waitUntil(() => this.ids.length >= n, { timeout, message: `${n} entries published` });
  }

  async stop() {
    this.stopping = true;
    await this.loop;
    await closeClient(this.client);
    return this.ids;
  }

  dispose() {
    return this.stop();
  }
}

/** `count` distinct keys: [{event, market, book, outcome}], eight to an event. */
export function makeKeys(count, prefix = 'ev') {
  const books = ['fanduel', 'draftkings', 'betmgm', 'caesars'];
  const markets = ['h2h', 'spreads'];
  return Array.from({ length: count }, (_, i) => ({
    event: `${prefix}${Math.floor(i / 8)}`,
    market: markets[(i >> 2) & 1],
    book: books[i & 3],
    outcome: i & 1 ? 'Home' : 'Away',
  }));
}

// --------------------------------------------------------------------------
// tokens

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** An HS256 JSON Web Token for these claims. */
export function hs256Token(secret, claims) {
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

// --------------------------------------------------------------------------
// the service

// Every setting's name, from env.template: none may leak from the caller's
// environment into a test service (environment variables win over the file).
const CONF_KEYS = new Set(
  readFileSync(path.join(REPO_ROOT, 'env.template'), 'utf8')
    .split('\n')
    .map((line) => /^([A-Z][A-Z0-9_]*)=/.exec(line)?.[1])
    .filter(Boolean),
);

function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !CONF_KEYS.has(k)));
}

export function binaryPath() {
  const p = process.env.WSB_BIN || 'bin/ws-broadcaster';
  return path.isAbsolute(p) ? p : path.join(REPO_ROOT, p);
}

/** Settings like the Python integration tests' default_settings: unique streams and consumer. */
export async function defaultSettings(redisUrl) {
  const t = uid();
  return {
    SERVER_ADDR: `127.0.0.1:${await freePort()}`,
    REDIS_URL: redisUrl,
    SPORTS: `t${t}_nba`,
    OPPORTUNITIES_STREAM: `t${t}_opps`,
    CONSUMER_ID: `c${t}`,
    WORKERS: '2',
    LOG_LEVEL: 'info',
    // A stop drains its clients over DRAIN_SECONDS, and they are told to
    // come back within RECONNECT_JITTER_MS: short, so tests stay short.
    DRAIN_SECONDS: '1',
    RECONNECT_JITTER_MS: '500',
  };
}

class Service {
  constructor(settings, dir) {
    this.settings = settings;
    this.dir = dir;
    this.port = Number(settings.SERVER_ADDR.split(':').pop());
    this.wsUrl = `ws://127.0.0.1:${this.port}/ws`;
    this.sports = settings.SPORTS.split(',').map((s) => s.trim()).filter(Boolean);
    this.sport = this.sports[0];
    this.stream = `odds.normalized.${this.sport}`;
    this.oppStream = settings.OPPORTUNITIES_STREAM;
    this.configPath = path.join(dir, 'ws-broadcaster.conf');
    this.stderrPath = path.join(dir, 'stderr.log');
    this.proc = null;
    this.seen = new Set(); // every child pid seen, for the last-resort kill
    const lines = ['# generated by the oddsboard tests'];
    for (const [k, v] of Object.entries(settings)) if (v !== null && v !== undefined) lines.push(`${k}=${v}`);
    writeFileSync(this.configPath, `${lines.join('\n')}\n`);
  }

  get pid() {
    return this.proc?.pid;
  }

  /** All streams the service reads. */
  get streams() {
    return [...this.sports.map((s) => `odds.normalized.${s}`), ...(this.oppStream ? [this.oppStream] : [])];
  }

  async start() {
    if (!existsSync(binaryPath())) throw new Error(`${binaryPath()} does not exist: build it first (make)`);
    // Appended, so the log of a restarted service keeps what came before.
    const fd = openSync(this.stderrPath, 'a');
    const proc = spawn(binaryPath(), ['-c', this.configPath], {
      env: cleanEnv(),
      cwd: this.dir,
      stdio: ['ignore', 'ignore', fd],
    });
    closeSync(fd);
    this.proc = proc;
    this.exit = new Promise((resolve) => {
      proc.on('exit', (code, signal) => resolve({ code, signal }));
      proc.on('error', (err) => resolve({ code: null, signal: null, error: err }));
    });
    await this.waitReady();
    return this;
  }

  async waitReady(timeout = READY_TIMEOUT) {
    const proc = this.proc;
    let last = null;
    try {
      await waitUntil(async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) {
          throw new Error(`service exited (${proc.exitCode ?? proc.signalCode}) before /health said 200`);
        }
        try {
          last = (await httpGet(this.port, '/health')).status;
        } catch (err) {
          last = err.message;
        }
        return last === 200;
      }, { timeout, message: `GET /health == 200 on port ${this.port}` });
    } catch (err) {
      err.message += ` (last: ${last})\n${this.stderr()}`;
      throw err;
    }
    this.rememberChildren();
  }

  rememberChildren() {
    if (this.pid) for (const p of procChildren(this.pid)) this.seen.add(p);
  }

  children() {
    return this.pid ? procChildren(this.pid) : [];
  }

  /** pids of the worker processes now (wsb-worker-N). */
  workerPids() {
    this.rememberChildren();
    return this.children().filter((p) => procComm(p)?.startsWith('wsb-worker-'));
  }

  ingestPid() {
    this.rememberChildren();
    return this.children().find((p) => procComm(p) === 'wsb-ingest') ?? null;
  }

  signal(sig) {
    this.proc.kill(sig);
  }

  /** SIGTERM, and waits for the exit (SIGKILL after 5 s); resolves with {code, signal}. */
  async stop() {
    const proc = this.proc;
    if (!proc) return null;
    this.rememberChildren();
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    const timer = setTimeout(() => this.kill(), STOP_TIMEOUT);
    const result = await this.exit;
    clearTimeout(timer);
    this.proc = null;
    // The children die with the supervisor (PR_SET_PDEATHSIG); make sure
    // before the port is reused.
    await waitUntil(() => [...this.seen].every((p) => !procAlive(p)), {
      timeout: STOP_TIMEOUT,
      message: 'the service processes to exit',
    }).catch(() => this.kill());
    this.seen.clear();
    return result;
  }

  /** Stops, then starts again with the same settings and port, and waits for readiness. */
  async restart() {
    await this.stop();
    return this.start();
  }

  async dispose() {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  kill() {
    for (const p of this.seen) {
      try {
        if (procComm(p)?.startsWith('wsb-')) process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    this.proc?.kill('SIGKILL');
  }

  stderr() {
    try {
      return readFileSync(this.stderrPath, 'utf8');
    } catch {
      return '';
    }
  }

  async metrics() {
    const res = await httpGet(this.port, '/metrics');
    if (res.status !== 200) throw new Error(`/metrics -> ${res.status}`);
    return JSON.parse(res.body);
  }
}

/**
 * Starts the service against redisUrl ("host:port") and waits for GET
 * /health == 200.  `settings` override the defaults; a setting given as null
 * is left out of the config file.
 */
export async function startService(redisUrl, settings = {}) {
  const merged = { ...(await defaultSettings(redisUrl)), ...settings };
  for (const [k, v] of Object.entries(merged)) if (v === null || v === undefined) delete merged[k];
  const dir = tempDir('wsb-js-svc-');
  const svc = new Service(merged, dir);
  services.push(svc);
  track(svc);
  await svc.start();
  return svc;
}

/** Writes an HS256 secret (48 random bytes, base64) to a temp file: {secret, path}. */
export function writeSecret() {
  const dir = tempDir('wsb-js-secret-');
  const secret = randomBytes(48).toString('base64');
  const file = path.join(dir, 'hs256.secret');
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  track({ dispose: async () => rmSync(dir, { recursive: true, force: true }) });
  return { secret, path: file };
}

// --------------------------------------------------------------------------
// boards

/**
 * An OddsBoard that is closed when the test ends, with a record of what it
 * emitted: `events` ([name, detail] in order) and `statuses` (status names).
 */
export function openBoard(url, options = {}) {
  const board = new OddsBoard(url, { autoConnect: false, ...options });
  board.events = [];
  board.statuses = [];
  for (const name of ['snapshot', 'update', 'status', 'error']) {
    board.on(name, (detail) => {
      if (name !== 'update') board.events.push([name, detail]);
      if (name === 'status') board.statuses.push(detail.status);
    });
  }
  board.dispose = async () => board.close();
  track(board);
  if (options.autoConnect !== false) board.connect();
  return board;
}

/** The events of one name a board opened with openBoard() has emitted (updates are not kept). */
export function eventsOf(board, name) {
  return board.events.filter(([n]) => n === name).map(([, detail]) => detail);
}

// --------------------------------------------------------------------------
// a fake server

/**
 * A WebSocketServer on a free port that a test scripts: `connections` holds
 * every connection ({ws, messages, url}), `next()` resolves with the next
 * one, and `send(conn, type, payload, extra)` sends a server message.
 */
export class FakeServer {
  async start() {
    this.connections = [];
    this.taken = 0;
    this.waiting = [];
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve, reject) => {
      this.wss.once('listening', resolve);
      this.wss.once('error', reject);
    });
    this.port = this.wss.address().port;
    this.url = `ws://127.0.0.1:${this.port}/ws`;
    this.wss.on('connection', (ws, req) => {
      const conn = { ws, url: req.url, messages: [], closed: null };
      ws.on('message', (data) => {
        let msg;
        try {
          msg = JSON.parse(String(data));
        } catch {
          msg = { raw: String(data) };
        }
        conn.messages.push(msg);
      });
      ws.on('close', (code) => {
        conn.closed = code;
      });
      this.connections.push(conn);
      const w = this.waiting.shift();
      if (w) w(conn);
    });
    track(this);
    return this;
  }

  /** The next connection (one already made and not yet taken, or the next to come). */
  next(timeout = 10000) {
    if (this.taken < this.connections.length) return Promise.resolve(this.connections[this.taken++]);
    return new Promise((resolve, reject) => {
      const waiter = (conn) => {
        clearTimeout(timer);
        this.taken++;
        resolve(conn);
      };
      const timer = setTimeout(() => {
        this.waiting = this.waiting.filter((w) => w !== waiter);
        reject(new Error(`no connection within ${timeout} ms`));
      }, timeout);
      this.waiting.push(waiter);
    });
  }

  /** Waits for the first message of that type from the client on conn. */
  async message(conn, type, timeout = 5000) {
    return waitUntil(() => conn.messages.find((m) => m.type === type), { timeout, message: `a '${type}' message` });
  }

  send(conn, type, payload, extra = {}) {
    conn.ws.send(JSON.stringify({ type, payload, ...extra, timestamp: new Date().toISOString() }));
  }

  /** Answers the subscribe on conn: the ack, then a one-part snapshot of `items`. */
  async acceptSubscribe(conn, { epoch = 'e1', positions = {}, items = [], resumed } = {}) {
    const sub = await this.message(conn, 'subscribe');
    const ack = { sports: [], events: [], markets: [], books: [], ...sub.payload, epoch };
    delete ack.resume;
    delete ack.snapshot;
    if (resumed !== undefined) ack.resumed = resumed;
    this.send(conn, 'subscribed', ack);
    if (!resumed) this.send(conn, 'snapshot', { epoch, positions, items, last: true });
    return sub;
  }

  async dispose() {
    for (const c of this.connections) c.ws.terminate();
    await new Promise((resolve) => this.wss.close(() => resolve()));
  }
}

export async function startFakeServer() {
  return new FakeServer().start();
}

/** A fake clock for OddsBoard's `clock` option: timers fire only when the test says. */
export class FakeClock {
  constructor(start = 1_000_000) {
    this.time = start;
    this.timers = new Map();
    this.seq = 0;
  }

  now() {
    return this.time;
  }

  setTimeout(fn, ms) {
    const handle = ++this.seq;
    this.timers.set(handle, { fn, at: this.time + Math.max(0, Number(ms) || 0), ms });
    return handle;
  }

  clearTimeout(handle) {
    this.timers.delete(handle);
  }

  /** The pending timers, soonest first: [{handle, at, ms}]. */
  pending() {
    return [...this.timers.entries()].map(([handle, t]) => ({ handle, ...t })).sort((a, b) => a.at - b.at);
  }

  /** Moves time on by ms, running every timer that falls due (in order). */
  advance(ms) {
    const until = this.time + ms;
    for (;;) {
      const due = this.pending().find((t) => t.at <= until);
      if (!due) break;
      this.timers.delete(due.handle);
      this.time = Math.max(this.time, due.at);
      due.fn();
    }
    this.time = until;
  }
}
