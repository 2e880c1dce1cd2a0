// The board across failures of the real service: a worker killed, the whole
// service restarted, a reconnect that resumes, and Redis restarted empty
// (a new epoch).  Afterwards the board must equal the truth again.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  Publisher, eventsOf, makeKeys, nextEvent, oddsFields, openBoard, publishMany, scoped, startRedis,
  startService, truth, waitBoardEqualsTruth, waitUntil,
} from './harness.mjs';

const RECOVERED = new Set(['resumed', 'resynced']);

let redis;
before(async () => {
  redis = await startRedis();
});

/** A service with every key published once, a feed running, and a board that is complete. */
async function boardUnderFeed(settings = {}) {
  const svc = await startService(redis.url, settings);
  const keys = makeKeys(100);
  await publishMany(redis.client, keys.map((k) => [svc.stream, oddsFields(svc.sport, k)]));
  const publisher = await new Publisher(redis.url, svc.stream, svc.sport, keys, { rate: 500 }).start();
  const board = openBoard(svc.wsUrl, { filter: { sports: [svc.sport] } });
  await board.ready;
  return { svc, keys, publisher, board };
}

/** Statuses the board went through from index `from` on. */
const statusesSince = (board, from) => board.statuses.slice(from);

test('a worker killed while the feed runs: the board reconnects, recovers and equals the truth', { timeout: 40000 }, scoped(async (t) => {
  const { svc, publisher, board } = await boardUnderFeed({ WORKERS: '1' });
  await publisher.waitFor(200);
  const [worker] = svc.workerPids();
  assert.ok(worker, 'a worker process');
  const mark = board.statuses.length;
  const recovered = nextEvent(board, 'status', { filter: (e) => RECOVERED.has(e.status), timeout: 20000 });
  process.kill(worker, 'SIGKILL');
  await recovered;
  const seen = statusesSince(board, mark);
  t.diagnostic(`statuses: ${seen.join(' ')}`);
  assert.equal(seen[0], 'reconnecting', `statuses: ${seen}`);
  assert.ok(RECOVERED.has(seen.at(-1)), `statuses: ${seen}`);
  await waitUntil(() => svc.workerPids().some((p) => p !== worker), { message: 'a new worker' });

  await publisher.waitFor(publisher.ids.length + 200);
  await publisher.stop();
  await waitBoardEqualsTruth(board, redis.client, [svc.stream]);
  assert.ok(board.stats.reconnects >= 1);
}));

test('the whole service restarted on the same port: the board recovers and equals the truth', { timeout: 40000 }, scoped(async (t) => {
  const { svc, publisher, board } = await boardUnderFeed();
  await publisher.waitFor(200);
  const mark = board.statuses.length;
  const recovered = nextEvent(board, 'status', { filter: (e) => RECOVERED.has(e.status), timeout: 25000 });
  await svc.restart();
  await recovered;
  const seen = statusesSince(board, mark);
  t.diagnostic(`statuses: ${seen.join(' ')}`);
  assert.equal(seen[0], 'reconnecting', `statuses: ${seen}`);
  const closed = eventsOf(board, 'status').find((e) => e.status === 'reconnecting');
  assert.equal(closed.code, 1001, 'the service says it is going away');

  await publisher.waitFor(publisher.ids.length + 200);
  await publisher.stop();
  await waitBoardEqualsTruth(board, redis.client, [svc.stream]);
}));

test('a reconnect resumes: the entries missed while away come as updates, with no snapshot', { timeout: 30000 }, scoped(async () => {
  const svc = await startService(redis.url, { WORKERS: '1' });
  const keys = makeKeys(24);
  await publishMany(redis.client, keys.map((k) => [svc.stream, oddsFields(svc.sport, k)]));
  // The largest delay the backoff allows, so the board stays away a while.
  const board = openBoard(svc.wsUrl, { filter: { sports: [svc.sport] }, random: () => 0.999, backoff: { base: 800 } });
  await board.ready;
  await waitBoardEqualsTruth(board, redis.client, [svc.stream]);
  const snapshotsBefore = board.stats.snapshots;
  const eventsBefore = board.events.length;

  // Published between losing the connection and coming back.
  let missed = null;
  board.on('status', (e) => {
    if (e.status === 'reconnecting' && missed === null) {
      missed = publishMany(redis.client, keys.slice(0, 6).map((k, i) => [svc.stream, oddsFields(svc.sport, { ...k, price: String(500 + i) })]));
    }
  });
  const updates = [];
  board.on('update', (u) => updates.push(u));
  const back = nextEvent(board, 'status', { filter: (e) => RECOVERED.has(e.status), timeout: 20000 });
  process.kill(svc.workerPids()[0], 'SIGKILL');
  const status = await back;
  const ids = await missed;

  assert.equal(status.status, 'resumed');
  await waitBoardEqualsTruth(board, redis.client, [svc.stream]);
  assert.equal(board.stats.snapshots, snapshotsBefore, 'no snapshot after the reconnect');
  assert.deepEqual(board.events.slice(eventsBefore).filter(([name]) => name === 'snapshot'), []);
  assert.deepEqual(updates.map((u) => u.value.id), ids, 'exactly the missed entries, in order');
  assert.equal(board.positions[svc.stream], ids.at(-1));
}));

test('Redis restarted empty: the board is resynced to the new epoch and the old keys are gone', { timeout: 40000 }, scoped(async () => {
  const own = await startRedis({ own: true });
  const svc = await startService(own.url);
  const oldKeys = makeKeys(16, 'old');
  await publishMany(own.client, oldKeys.map((k) => [svc.stream, oddsFields(svc.sport, k)]));
  const board = openBoard(svc.wsUrl, { filter: { sports: [svc.sport] } });
  await board.ready;
  await waitBoardEqualsTruth(board, own.client, [svc.stream]);
  assert.equal(board.size, oldKeys.length);
  const oldEpoch = board.epoch;

  const resynced = nextEvent(board, 'status', { filter: (e) => e.status === 'resynced', timeout: 25000 });
  await own.restart();
  // The stream must exist again for the service to find its history gone
  // and start a new one; new keys prove the board follows it.
  const newKeys = makeKeys(8, 'new');
  await publishMany(own.client, newKeys.map((k) => [svc.stream, oddsFields(svc.sport, k)]));
  await resynced;
  assert.notEqual(board.epoch, oldEpoch);

  await waitBoardEqualsTruth(board, own.client, [svc.stream]);
  assert.equal(board.size, newKeys.length);
  assert.ok(board.keys().every((k) => !k.startsWith('old')), `keys: ${board.keys()}`);
  const expected = await truth(own.client, [svc.stream]);
  assert.equal(expected.size, newKeys.length);
}));
