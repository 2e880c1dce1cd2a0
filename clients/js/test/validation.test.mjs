// What the board does with messages the service would not send, from a fake
// server: malformed ones are reported and skipped, unknown types ignored,
// and an update that is not newer than the key's value is dropped.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { boardKey } from '../oddsboard.js';
import { eventsOf, oddsFields, openBoard, scoped, startFakeServer, typedFields, waitUntil } from './harness.mjs';

const STREAM = 'odds.normalized.nba';

const item = (event, id, over = {}) => ({ ...typedFields(oddsFields('nba', { event, ...over })), stream: STREAM, id });

/** A board on a fake server whose snapshot holds event A at id 1000-9. */
async function fakeBoard() {
  const fake = await startFakeServer();
  const board = openBoard(fake.url);
  const conn = await fake.next();
  const a = item('A', '1000-9');
  await fake.acceptSubscribe(conn, { positions: { [STREAM]: '1000-9' }, items: [a] });
  await board.ready;
  const key = boardKey(a);
  assert.equal(board.get(key).id, '1000-9');

  const update = (event, id, over = {}) => {
    fake.send(conn, 'odds_update', typedFields(oddsFields('nba', { event, ...over })), { stream: STREAM, id });
  };
  // Messages are handled in order: once a later update is on the board,
  // everything sent before it has been handled.
  let n = 0;
  const sync = async () => {
    const id = `5000-${n++}`;
    update('sentinel', id);
    const k = boardKey(item('sentinel', id));
    await waitUntil(() => board.get(k)?.id === id, { timeout: 5000, message: `sentinel ${id}` });
  };
  return { fake, conn, board, key, update, sync };
}

test('a malformed message is an error event and the board goes on', { timeout: 15000 }, scoped(async () => {
  const { fake, conn, board, key, update, sync } = await fakeBoard();
  conn.ws.send('{"type": "odds_update", "payload": {');
  conn.ws.send('[1, 2, 3]');
  conn.ws.send('{"payload": {}}');
  fake.send(conn, 'odds_update', { event_id: 'B' }); // no stream nor id
  await sync();

  const errors = eventsOf(board, 'error');
  assert.equal(errors.length, 4, JSON.stringify(errors));
  for (const e of errors) {
    assert.equal(e.code, 'malformed_message');
    assert.equal(e.fatal, false);
    assert.equal(typeof e.message, 'string');
  }
  assert.equal(board.stats.malformed, 4);
  assert.equal(board.status, 'connected');
  assert.equal(board.stats.reconnects, 0);

  update('A', '1000-10', { price: '150' });
  await waitUntil(() => board.get(key).id === '1000-10');
  assert.equal(board.get(key).price, 150);
}));

test('a message of an unknown type is ignored and counted', { timeout: 15000 }, scoped(async () => {
  const { fake, conn, board, key, sync } = await fakeBoard();
  const before = board.get(key);
  fake.send(conn, 'odds_forecast', { event_id: 'A', price: 1 }, { stream: STREAM, id: '2000-0' });
  fake.send(conn, 'something_new', {});
  await sync();

  assert.equal(board.stats.unknownTypes, 2);
  assert.equal(board.stats.malformed, 0);
  assert.deepEqual(eventsOf(board, 'error'), []);
  assert.deepEqual(board.get(key), before);
  assert.equal(board.status, 'connected');
}));

test('an update whose id is not greater than the key\'s is dropped; the newer value stays', { timeout: 15000 }, scoped(async () => {
  const { board, key, update, sync } = await fakeBoard();
  const updates = [];
  board.on('update', (u) => updates.push(u));

  update('A', '1000-9', { price: '1' }); // the same id
  update('A', '1000-8', { price: '2' }); // older
  update('A', '999-99', { price: '3' }); // older, though greater as text
  await sync();
  assert.equal(board.stats.staleDropped, 3);
  assert.equal(board.get(key).id, '1000-9');
  assert.equal(board.get(key).price, -110);
  assert.deepEqual(updates.map((u) => u.key), [boardKey(item('sentinel', '5000-0'))], 'no update event for a dropped one');

  update('A', '1000-10', { price: '4' }); // newer, though smaller as text
  await sync();
  assert.equal(board.get(key).id, '1000-10');
  assert.equal(board.get(key).price, 4);
  const last = updates.find((u) => u.key === key);
  assert.equal(last.previous.id, '1000-9');
  assert.equal(last.value.price, 4);
  assert.equal(board.stats.staleDropped, 3);
  assert.equal(board.positions[STREAM], '5000-1');
}));

test('a snapshot the server sends on its own (lapped) replaces the board', { timeout: 15000 }, scoped(async () => {
  const { fake, conn, board, key, sync } = await fakeBoard();
  await sync();
  assert.equal(board.size, 2);
  const b = item('B', '6000-0');
  fake.send(conn, 'snapshot', { epoch: 'e1', positions: { [STREAM]: '6000-0' }, items: [], last: false, reason: 'lapped' });
  fake.send(conn, 'snapshot', { epoch: 'e1', positions: { [STREAM]: '6000-0' }, items: [b], last: true });
  await waitUntil(() => board.stats.snapshots === 2, { timeout: 5000, message: 'the second snapshot' });

  assert.deepEqual(board.keys(), [boardKey(b)]);
  assert.equal(board.has(key), false);
  assert.deepEqual(board.positions, { [STREAM]: '6000-0' });
  const snap = eventsOf(board, 'snapshot').at(-1);
  assert.equal(snap.reason, 'lapped');
  assert.equal(snap.size, 1);
  assert.equal(board.status, 'resynced');
}));

test("a draining service's reconnect hint is the next attempt's delay, and the board resumes", { timeout: 15000 }, scoped(async () => {
  const { fake, conn, board } = await fakeBoard();
  fake.send(conn, 'reconnect', { after_ms: 700 });
  conn.ws.close(1001, 'server shutting down');
  await waitUntil(() => board.status === 'reconnecting', { timeout: 5000, message: 'reconnecting' });
  const ev = eventsOf(board, 'status').find((e) => e.status === 'reconnecting');
  assert.equal(ev.code, 1001);
  assert.equal(ev.delay, 700, 'the delay the service asked for, not the backoff');

  const again = await fake.next();
  const sub = await fake.acceptSubscribe(again, { resumed: true });
  assert.deepEqual(sub.payload.resume, { epoch: 'e1', positions: board.positions });
  await waitUntil(() => board.status === 'resumed', { timeout: 5000, message: 'resumed' });

  // The hint was for that one close: the next drop is back to the backoff.
  again.ws.close(1001, 'again'); // without a hint this time
  await waitUntil(() => eventsOf(board, 'status').filter((e) => e.status === 'reconnecting').length === 2,
                  { timeout: 5000, message: 'second reconnecting' });
  const second = eventsOf(board, 'status').filter((e) => e.status === 'reconnecting')[1];
  assert.equal(second.attempt, 2);
  assert.ok(second.delay < 500, `the backoff's bound for attempt 2, got ${second.delay}`);
}));
