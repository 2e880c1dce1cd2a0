// The board against the real service: snapshot plus updates make the truth
// (the latest entry of every key in Redis) under a steady feed, and a new
// filter replaces the board.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { compareIds } from '../oddsboard.js';
import {
  Publisher, eventsOf, makeKeys, normalize, oddsFields, openBoard, publishMany, scoped,
  startRedis, startService, truth, typedFields, waitBoardEqualsTruth,
} from './harness.mjs';

let redis;
before(async () => {
  redis = await startRedis();
});

test('snapshot and updates equal the truth while about 1,000 entries/s are published', { timeout: 60000 }, scoped(async () => {
  // A snapshot in several parts.
  const svc = await startService(redis.url, { SNAPSHOT_CHUNK: '60' });
  const keys = makeKeys(200);
  // Every key has a value before the board connects, so the snapshot is the whole board.
  await publishMany(redis.client, keys.map((k) => [svc.stream, oddsFields(svc.sport, { ...k, price: '101' })]));
  // Opportunities share the board, in a key space of their own (the same keys as odds).
  const opportunities = keys.slice(0, 5).map((k) => [svc.oppStream, oddsFields(svc.sport, { ...k, edge: '0.05' })]);
  await publishMany(redis.client, opportunities);
  const publisher = await new Publisher(redis.url, svc.stream, svc.sport, keys, { rate: 1000 }).start();
  await publisher.waitFor(300);

  const board = openBoard(svc.wsUrl, { filter: { sports: [svc.sport] } });
  const updates = [];
  board.on('update', (u) => updates.push(u));
  await board.ready;
  const [snap] = eventsOf(board, 'snapshot');
  assert.equal(snap.size, keys.length + opportunities.length, 'the first snapshot holds every key');
  assert.equal(board.values((item) => item.stream === svc.oppStream).length, opportunities.length);
  const from = snap.positions[svc.stream];
  assert.ok(from && from !== '0-0', `snapshot position of ${svc.stream}: ${from}`);

  // While the feed runs, every value on the board is an entry Redis holds
  // under that id, typed as the service types it.
  for (let round = 0; round < 3; round++) {
    await publisher.waitFor(publisher.ids.length + 300);
    const items = board.values();
    assert.equal(items.length, keys.length + opportunities.length);
    const multi = redis.client.multi();
    for (const item of items) multi.xRange(item.stream, item.id, item.id);
    const entries = await multi.execAsPipeline();
    items.forEach((item, i) => {
      assert.equal(entries[i].length, 1, `entry ${item.id} is in ${item.stream}`);
      const expected = normalize({ fields: typedFields(entries[i][0].message), stream: item.stream, id: item.id });
      assert.deepEqual(normalize(item), expected);
    });
  }

  const published = await publisher.stop();
  assert.ok(published.length >= 1000, `published ${published.length}`);
  await waitBoardEqualsTruth(board, redis.client, svc.streams);
  assert.equal(board.status, 'connected');

  // Nothing missed, nothing twice: the updates are exactly the entries after
  // the snapshot's position (unless the service had to conflate them).
  assert.ok(updates.length > 0, 'updates came after the snapshot');
  if (!updates.some((u) => u.conflated)) {
    const after = (await redis.client.xRange(svc.stream, `(${from}`, '+')).map((e) => e.id);
    assert.deepEqual(updates.filter((u) => u.value.stream === svc.stream).map((u) => u.value.id), after);
  }
  for (const u of updates) {
    assert.equal(u.kind, 'odds');
    if (u.previous) assert.ok(compareIds(u.value.id, u.previous.id) > 0, `${u.key}: ${u.previous.id} -> ${u.value.id}`);
  }
  assert.equal(board.stats.staleDropped, 0);
  assert.equal(board.stats.malformed, 0);
}));

test('setFilter replaces the board with the new filter\'s snapshot', { timeout: 30000 }, scoped(async () => {
  const svc = await startService(redis.url);
  const keys = makeKeys(40);
  await publishMany(redis.client, keys.map((k) => [svc.stream, oddsFields(svc.sport, k)]));

  const board = openBoard(svc.wsUrl, { filter: { sports: [svc.sport], books: ['fanduel'] } });
  await board.ready;
  await waitBoardEqualsTruth(board, redis.client, [svc.stream]);
  assert.ok(board.size > 0);
  assert.ok(board.values().every((item) => item.book_key === 'fanduel'));

  board.setFilter({ sports: [svc.sport], books: ['draftkings', 'betmgm'] });
  assert.deepEqual(board.filter.books, ['draftkings', 'betmgm']);
  const expected = await truth(redis.client, [svc.stream], board.filter);
  await waitBoardEqualsTruth(board, redis.client, [svc.stream]);
  assert.equal(board.size, expected.size);
  assert.ok(board.values().every((item) => item.book_key !== 'fanduel'), 'no key of the old filter is left');
  const snaps = eventsOf(board, 'snapshot');
  assert.equal(snaps.length, 2, 'one snapshot for each filter');
  assert.equal(snaps[1].size, expected.size);

  // Updates follow the new filter.
  await publishMany(redis.client, [
    [svc.stream, oddsFields(svc.sport, { ...keys[1], price: '333' })], // draftkings
    [svc.stream, oddsFields(svc.sport, { ...keys[0], price: '444' })], // fanduel
  ]);
  await waitBoardEqualsTruth(board, redis.client, [svc.stream]);
  assert.ok(board.values().some((item) => item.price === 333));
  assert.ok(!board.values().some((item) => item.price === 444));
}));
