// When and how the board reconnects: the backoff's bounds, attempts against
// a port where nothing listens (on a fake clock), the attempt count reset by
// a connection that lasted, and a silent connection declared dead.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { backoffDelay } from '../oddsboard.js';
import {
  FakeClock, eventsOf, freePort, openBoard, scoped, sleep, startFakeServer, waitUntil,
} from './harness.mjs';

const BASE = 250;
const CAP = 30000;
const bound = (attempt, base = BASE, cap = CAP) => Math.min(cap, base * 2 ** (attempt - 1));
const ALMOST_ONE = () => 0.999999;

test('backoffDelay: full jitter under min(cap, base * 2^(n-1)), growing to the cap', () => {
  let previous = -1;
  for (let n = 1; n <= 40; n++) {
    const d = backoffDelay(n, {}, ALMOST_ONE);
    assert.ok(d >= 0 && d < bound(n), `attempt ${n}: ${d} not in [0, ${bound(n)})`);
    assert.ok(d >= previous, `attempt ${n}: ${d} < ${previous}`);
    assert.ok(d >= bound(n) * 0.99, `attempt ${n}: ${d} is not near its bound ${bound(n)}`);
    previous = d;
  }
  assert.ok(backoffDelay(9, {}, ALMOST_ONE) >= CAP * 0.99, 'the cap is reached');
  for (const n of [1, 2, 5, 20, 1000]) assert.equal(backoffDelay(n, {}, () => 0), 0);

  assert.ok(backoffDelay(1, { base: 1000, cap: 1500 }, ALMOST_ONE) < 1000);
  assert.ok(backoffDelay(3, { base: 1000, cap: 1500 }, ALMOST_ONE) < 1500);
  // The default random: always inside the bounds.
  for (let n = 1; n <= 20; n++) {
    const d = backoffDelay(n);
    assert.ok(d >= 0 && d < bound(n), `attempt ${n}: ${d}`);
  }
});

/** The reconnecting status events a board opened with openBoard() has emitted. */
const reconnecting = (board) => eventsOf(board, 'status').filter((e) => e.status === 'reconnecting');

test('nothing listening: attempts on the injected clock, numbered 1, 2, ... with delays in bounds', { timeout: 20000 }, scoped(async () => {
  const port = await freePort();
  const clock = new FakeClock();
  const board = openBoard(`ws://127.0.0.1:${port}/ws`, { clock, random: ALMOST_ONE });
  assert.equal(board.statuses[0], 'connecting');

  for (let n = 1; n <= 10; n++) {
    await waitUntil(() => reconnecting(board).length >= n, { timeout: 5000, message: `attempt ${n} scheduled` });
    const ev = reconnecting(board)[n - 1];
    assert.equal(ev.attempt, n);
    assert.ok(ev.delay >= 0 && ev.delay < bound(n), `attempt ${n}: delay ${ev.delay} not in [0, ${bound(n)})`);
    if (n > 1) assert.ok(ev.delay >= reconnecting(board)[n - 2].delay, 'delays grow');
    // The attempt waits on the injected clock, not the real one.
    assert.ok(clock.pending().some((t) => t.ms === ev.delay), `a timer of ${ev.delay} ms on the fake clock`);
    await sleep(50);
    assert.equal(reconnecting(board).length, n, 'no attempt before the fake clock says so');
    clock.advance(ev.delay);
  }
  assert.ok(reconnecting(board).at(-1).delay >= CAP * 0.99, 'the delay reached the cap');
  assert.equal(board.stats.reconnects, 10);
  board.close();
  assert.equal(board.status, 'closed');
  await assert.rejects(board.ready);

  // random() = 0: no delay at all.
  const eager = openBoard(`ws://127.0.0.1:${port}/ws`, { clock: new FakeClock(), random: () => 0 });
  await waitUntil(() => reconnecting(eager).length >= 1, { timeout: 5000 });
  const first = reconnecting(eager)[0];
  assert.equal(first.delay, 0);
}));

test('a connection that stayed up longer than resetAfter restarts the attempt count at 1', { timeout: 20000 }, scoped(async () => {
  const fake = await startFakeServer();
  const clock = new FakeClock();
  const board = openBoard(fake.url, { clock, random: () => 0.5, backoff: { resetAfter: 5000 } });
  let conn = await fake.next();
  await fake.acceptSubscribe(conn);
  await board.ready;

  // Connections cut at once: the count goes on.
  for (const expected of [1, 2, 3]) {
    conn.ws.close(1011, 'going');
    await waitUntil(() => reconnecting(board).length >= expected, { timeout: 5000 });
    const ev = reconnecting(board).at(-1);
    assert.equal(ev.attempt, expected);
    assert.equal(ev.code, 1011);
    clock.advance(ev.delay);
    conn = await fake.next();
    const sub = await fake.acceptSubscribe(conn, { resumed: true });
    assert.equal(sub.payload.resume?.epoch, 'e1', 'the reconnect asks to resume');
    await waitUntil(() => board.status === 'resumed', { timeout: 5000 });
  }

  // This one lasts longer than resetAfter (on the board's clock).
  clock.advance(6000);
  conn.ws.close(1011, 'going');
  await waitUntil(() => reconnecting(board).length >= 4, { timeout: 5000 });
  const ev = reconnecting(board).at(-1);
  assert.equal(ev.attempt, 1);
  assert.ok(ev.delay < bound(1));
}));

test('a connection silent for two ping intervals is dropped and replaced; one that answers heartbeats stays', { timeout: 20000 }, scoped(async () => {
  const fake = await startFakeServer();
  const pingInterval = 300;
  const board = openBoard(fake.url, { pingInterval });
  const first = await fake.next();
  await fake.acceptSubscribe(first, { positions: { 'odds.normalized.nba': '7-0' } });
  await board.ready;

  // The fake server now says nothing and answers no heartbeat.
  const second = await fake.next(10000);
  assert.ok(first.messages.some((m) => m.type === 'heartbeat'), 'a heartbeat was sent into the silence');
  assert.ok(reconnecting(board).length >= 1);
  await waitUntil(() => first.closed !== null, { timeout: 5000, message: 'the dead connection to be closed' });
  const sub = await fake.message(second, 'subscribe');
  assert.deepEqual(sub.payload.resume, { epoch: 'e1', positions: { 'odds.normalized.nba': '7-0' } });

  // This server answers: the connection is kept.
  second.ws.on('message', (data) => {
    if (JSON.parse(String(data)).type === 'heartbeat') fake.send(second, 'heartbeat', { messages_sent: 0 });
  });
  await fake.acceptSubscribe(second, { resumed: true });
  await waitUntil(() => board.status === 'resumed', { timeout: 5000 });
  const attempts = reconnecting(board).length;
  await waitUntil(() => second.messages.filter((m) => m.type === 'heartbeat').length >= 3,
    { timeout: 10 * pingInterval * 3, message: 'three heartbeats answered' });
  assert.equal(reconnecting(board).length, attempts, 'no reconnect while the server answers');
  assert.equal(fake.connections.length, 2);
  assert.equal(second.closed, null);
}));

test('setFilter while reconnecting: the next connection subscribes afresh and the board is resynced', { timeout: 20000 }, scoped(async () => {
  const fake = await startFakeServer();
  const clock = new FakeClock();
  const board = openBoard(fake.url, { clock, random: () => 0.5, filter: { books: ['fanduel'] } });
  const stream = 'odds.normalized.nba';
  const item = (event, book, id) => ({ event_id: event, market_key: 'h2h', book_key: book, outcome_name: 'Home', price: 100, stream, id });
  let conn = await fake.next();
  await fake.acceptSubscribe(conn, { positions: { [stream]: '10-0' }, items: [item('e1', 'fanduel', '10-0')] });
  await board.ready;

  conn.ws.close(1011, 'going');
  await waitUntil(() => board.status === 'reconnecting', { timeout: 5000 });
  board.setFilter({ books: ['draftkings'] });
  clock.advance(reconnecting(board).at(-1).delay);
  conn = await fake.next();
  const sub = await fake.acceptSubscribe(conn, { positions: { [stream]: '20-0' }, items: [item('e2', 'draftkings', '20-0')] });
  assert.deepEqual(sub.payload.books, ['draftkings']);
  assert.equal(sub.payload.resume, undefined, 'no resume of the old filter\'s board');

  await waitUntil(() => eventsOf(board, 'snapshot').length === 2, { timeout: 5000, message: 'the new snapshot' });
  assert.deepEqual(board.values().map((v) => v.event_id), ['e2']);
  assert.deepEqual(board.positions, { [stream]: '20-0' });
  // Reconnected, and the board was replaced by a snapshot: resynced, not
  // still "reconnecting" with a live, complete board.
  assert.equal(board.status, 'resynced', `statuses: ${board.statuses.join(' ')}`);
}));

test('an upgrade that is never answered is given up and retried', { timeout: 20000 }, scoped(async (t) => {
  // Accepts TCP and then says nothing, as a proxy whose backend is gone may.
  const sockets = [];
  const server = net.createServer((sock) => {
    sock.on('data', () => {});
    sock.on('error', () => {});
    sockets.push(sock);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const sock of sockets) sock.destroy();
    server.close();
  });
  const board = openBoard(`ws://127.0.0.1:${server.address().port}/ws`, { pingInterval: 300 });
  await waitUntil(() => sockets.length >= 1, { timeout: 5000, message: 'the first attempt' });
  // Silence for far longer than two ping intervals: the attempt must not hang for ever.
  await waitUntil(() => sockets.length >= 2, { timeout: 5000, message: 'a second attempt' });
  assert.ok(reconnecting(board).length >= 1, `statuses: ${board.statuses.join(' ')}`);
}));

test('a browser back online, or back in the foreground, tries at once instead of sleeping out its backoff', { timeout: 20000 }, scoped(async (t) => {
  // What a browser's window and document give the board: their events.
  const win = new EventTarget();
  const doc = new EventTarget();
  doc.visibilityState = 'hidden';
  globalThis.addEventListener = win.addEventListener.bind(win);
  globalThis.removeEventListener = win.removeEventListener.bind(win);
  globalThis.document = doc;
  t.after(() => {
    delete globalThis.addEventListener;
    delete globalThis.removeEventListener;
    delete globalThis.document;
  });
  const port = await freePort();
  const clock = new FakeClock();
  const board = openBoard(`ws://127.0.0.1:${port}/ws`, { clock, random: ALMOST_ONE, backoff: { base: 60000, cap: 120000 } });
  await waitUntil(() => reconnecting(board).length >= 1, { timeout: 5000, message: 'attempt 1 scheduled' });
  assert.ok(reconnecting(board)[0].delay > 50000, 'a long wait is scheduled');

  win.dispatchEvent(new Event('online'));
  await waitUntil(() => reconnecting(board).length >= 2, { timeout: 5000, message: 'an attempt at once on online' });

  // Hidden → visible is a reason too; a page still hidden is not.
  doc.dispatchEvent(new Event('visibilitychange'));
  await sleep(300);
  assert.equal(reconnecting(board).length, 2, 'still hidden: no attempt');
  doc.visibilityState = 'visible';
  doc.dispatchEvent(new Event('visibilitychange'));
  await waitUntil(() => reconnecting(board).length >= 3, { timeout: 5000, message: 'an attempt at once on visible' });

  board.close();
  win.dispatchEvent(new Event('online'));
  await sleep(200);
  assert.equal(reconnecting(board).length, 3, 'a closed board ignores the events');
}));
