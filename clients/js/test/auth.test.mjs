// Tokens against the real service with AUTH=required: a board refreshes its
// token before `exp` and keeps its connection; a board whose getToken() only
// has a bad token to give after a 4001 gives up.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { tokenExpiry } from '../oddsboard.js';
import {
  eventsOf, hs256Token, nextEvent, oddsFields, openBoard, publish, scoped, startFakeServer, startRedis,
  startService, waitBoardEqualsTruth, waitUntil, writeSecret,
} from './harness.mjs';

// Short-lived tokens keep the test short; no leeway, so `exp` is when the service closes.
const LIFETIME_S = 4;

let redis;
before(async () => {
  redis = await startRedis();
});

async function authService() {
  const secret = writeSecret();
  const svc = await startService(redis.url, {
    AUTH: 'required',
    AUTH_HS256_SECRET_FILE: secret.path,
    AUTH_LEEWAY: '0',
  });
  const mint = (key = secret.secret, life = LIFETIME_S) => {
    const now = Math.floor(Date.now() / 1000);
    return hs256Token(key, { sub: 'user-1', iat: now, exp: now + life, sports: [svc.sport] });
  };
  return { svc, mint };
}

test('a token refreshed before exp keeps the connection open past the first token\'s exp', { timeout: 30000 }, scoped(async () => {
  const { svc, mint } = await authService();
  await publish(redis.client, svc.stream, oddsFields(svc.sport, { event: 'before' }));
  const issued = [];
  const board = openBoard(svc.wsUrl, {
    filter: { sports: [svc.sport] },
    getToken: () => {
      issued.push(mint());
      return issued.at(-1);
    },
    refreshMargin: 2000,
  });
  await board.ready;
  assert.equal(issued.length, 1, 'the first token came from getToken()');
  const firstExp = tokenExpiry(issued[0]);
  assert.equal(typeof firstExp, 'number');

  // Well past the first token's exp (the service closes with 4001 at exp
  // when no refresh came).
  await waitUntil(() => Date.now() > firstExp * 1000 + 1500, { timeout: 15000, interval: 100, message: 'the first token to expire' });
  assert.ok(issued.length >= 2, `getToken() called ${issued.length} time(s)`);
  assert.deepEqual(board.statuses, ['connecting', 'connected'], 'no reconnect');
  assert.deepEqual(eventsOf(board, 'error'), []);
  assert.equal(board.stats.reconnects, 0);

  // The connection is still alive and delivering.
  await publish(redis.client, svc.stream, oddsFields(svc.sport, { event: 'after', price: '222' }));
  await waitBoardEqualsTruth(board, redis.client, [svc.stream]);
}));

test('after a 4001, a getToken() that returns a bad token makes the board give up', { timeout: 30000 }, scoped(async () => {
  const { svc, mint } = await authService();
  let calls = 0;
  const board = openBoard(svc.wsUrl, {
    filter: { sports: [svc.sport] },
    token: mint(undefined, 3),
    // Signed with another secret: refused by the service.
    getToken: () => {
      calls++;
      return mint('x'.repeat(48));
    },
    refreshMargin: 1000,
  });
  await board.ready;
  const closed = await nextEvent(board, 'status', { filter: (e) => e.status === 'closed', timeout: 20000 });
  const errors = eventsOf(board, 'error');
  assert.ok(calls >= 1, 'getToken() was asked');
  assert.ok(errors.some((e) => e.closeCode === 4001 || e.code === 'unauthorized_close'), `errors: ${JSON.stringify(errors)}`);
  assert.equal(board.status, 'closed');
  assert.ok(errors.some((e) => e.fatal === true),
    `a fatal error event when the board gives up; got ${JSON.stringify(errors)} and status ${JSON.stringify(closed)}`);
  // It stays down: no attempt after giving up.
  const reconnects = board.stats.reconnects;
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(board.stats.reconnects, reconnects);
  assert.equal(board.status, 'closed');
}));

test('a 4001 with no getToken() to ask: the board gives up with a fatal error', { timeout: 15000 }, scoped(async () => {
  const fake = await startFakeServer();
  const board = openBoard(fake.url, { token: hs256Token('s'.repeat(32), { sub: 'u', exp: 4102444800 }) });
  const conn = await fake.next();
  assert.match(conn.url, /[?&]token=/, 'the token is in the upgrade');
  await fake.acceptSubscribe(conn);
  await board.ready;
  conn.ws.close(4001, 'token expired');
  const closed = await nextEvent(board, 'status', { filter: (e) => e.status === 'closed' });
  assert.equal(closed.code, 4001);
  assert.equal(board.stats.reconnects, 0);
  assert.equal(fake.connections.length, 1);
  const errors = eventsOf(board, 'error');
  assert.ok(errors.some((e) => e.fatal === true && e.closeCode === 4001), `errors: ${JSON.stringify(errors)}`);
}));
