// The demo page (examples/web) in a real browser against the real service:
// the board it draws equals what Redis holds, a price change shows within a
// second, and a worker killed under it is a resume, not a reload.
//
// Needs Debian's chromium at /usr/bin/chromium (driven by playwright-core);
// without it the test fails, unless WSB_SKIP_BROWSER=1, when it is skipped.
// The screenshot goes to $WSB_TEST_OUTPUT, else clients/js/test-output/.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import {
  REPO_ROOT, oddsFields, publish, publishMany, scoped, startRedis, startService, truth, waitUntil,
} from './harness.mjs';

const CHROMIUM = '/usr/bin/chromium';
// Without the background-networking flags Chromium phones home at start-up,
// and on a closed network those failures can refuse its other connections.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const OUTPUT_DIR = process.env.WSB_TEST_OUTPUT || path.join(REPO_ROOT, 'clients', 'js', 'test-output');
const SERVE = path.join(REPO_ROOT, 'examples', 'web', 'serve.mjs');

const haveBrowser = existsSync(CHROMIUM);
const skip = !haveBrowser && process.env.WSB_SKIP_BROWSER === '1'
  ? `${CHROMIUM} not found (WSB_SKIP_BROWSER=1)` : false;

const nowIso = () => new Date().toISOString();

// Two games, three markets, four books: a board like the demo feed's.
const GAMES = [
  { event: 'g1celticsknicks', teams: ['Boston Celtics', 'New York Knicks'], spread: 2.5, total: 224.5 },
  { event: 'g2nuggetslakers', teams: ['Denver Nuggets', 'Los Angeles Lakers'], spread: -1.5, total: 229.5 },
];
const BOOKS = ['betmgm', 'caesars', 'draftkings', 'fanduel'];

function american(decimal) {
  return decimal >= 2 ? Math.round((decimal - 1) * 100) : Math.round(-100 / (decimal - 1));
}

function boardEntries(sport, stream) {
  const entries = [];
  for (const g of GAMES) {
    BOOKS.forEach((book, b) => {
      const sides = [
        ['h2h', g.teams[0], '', 1.8 + b * 0.03], ['h2h', g.teams[1], '', 2.05 - b * 0.02],
        ['spreads', g.teams[0], g.spread, 1.91 + b * 0.01], ['spreads', g.teams[1], -g.spread, 1.9 - b * 0.01],
        ['totals', 'Over', g.total, 1.87 + b * 0.02], ['totals', 'Under', g.total, 1.95 - b * 0.02],
      ];
      for (const [market, outcome, point, dec] of sides) {
        entries.push([stream, oddsFields(sport, {
          event: g.event, market, book, outcome, point, price: american(dec), decimal_odds: dec.toFixed(3),
          implied_probability: (1 / dec).toFixed(4), novig_probability: '0.5', fair_price: '-100',
          edge: (dec * 0.5 - 1).toFixed(4), normalized_at: nowIso(),
        })]);
      }
    });
  }
  return entries;
}

// serve.mjs on a free port; resolves once it has said where.
function startServe(wsUrl) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [SERVE, '0', '--ws', wsUrl], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`serve.mjs did not print its address within 5 s: ${out}${err}`));
    }, 5000);
    proc.stderr.on('data', (d) => { err += d; });
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /^demo page: (http:\/\/127\.0\.0\.1:(\d+)\/)/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, base: m[1], port: Number(m[2]) });
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve.mjs exited (${code}): ${err}`));
    });
  });
}

// What the page shows: every price cell of the board.
function readCells(page) {
  return page.$$eval('#board-body td[data-key]', (tds) =>
    tds.map((td) => ({ key: td.dataset.key, text: td.textContent, id: td.dataset.id })));
}

// Differences between the page's cells and the truth of the odds stream
// (at most a few, for the message): empty when they agree.
async function cellDiff(page, expected) {
  const cells = await readCells(page);
  const diffs = [];
  const seen = new Set();
  for (const c of cells) {
    if (seen.has(c.key)) diffs.push(`${c.key} drawn twice`);
    seen.add(c.key);
    const t = expected.get(c.key);
    if (!t) diffs.push(`extra cell ${c.key}`);
    else if (c.text !== String(t.fields.price) || c.id !== t.id) {
      diffs.push(`${c.key}: page ${c.text} (${c.id}) != truth ${t.fields.price} (${t.id})`);
    }
  }
  for (const key of expected.keys()) if (!seen.has(key)) diffs.push(`missing cell ${key}`);
  return diffs.slice(0, 5);
}

async function waitCellsEqualTruth(page, client, stream, timeout = 10000) {
  let diffs = [];
  try {
    await waitUntil(async () => {
      diffs = await cellDiff(page, await truth(client, [stream]));
      return diffs.length === 0;
    }, { timeout, interval: 100, message: 'the page to show the truth' });
  } catch (e) {
    e.message += `; first differences:\n  ${diffs.join('\n  ')}`;
    throw e;
  }
}

const statusOf = (page) => page.$eval('#status', (el) => ({ status: el.dataset.status, history: el.dataset.history }));

test('demo page: board equals the truth, shows a change within 1 s, resumes after a worker is killed',
  { skip, timeout: 90000 }, scoped(async (t) => {
    assert.ok(haveBrowser, `${CHROMIUM} not found: install Debian's chromium (apt-get install chromium), ` +
      'or set WSB_SKIP_BROWSER=1 to skip this test');

    const redis = await startRedis();
    const client = redis.client;
    const svc = await startService(redis.url, { WORKERS: '1' });
    const { stream, oppStream } = svc;
    const sport = svc.sport;

    await publishMany(client, boardEntries(sport, stream));
    // A line that moved since: the latest value of its key is what counts.
    await publish(client, stream, oddsFields(sport, {
      event: GAMES[0].event, market: 'spreads', book: 'fanduel', outcome: GAMES[0].teams[0],
      point: 3, price: -120, decimal_odds: '1.833', normalized_at: nowIso(),
    }));
    await publish(client, oppStream, {
      ...oddsFields(sport, {
        event: GAMES[1].event, market: 'h2h', book: 'caesars', outcome: GAMES[1].teams[1],
        price: 115, decimal_odds: '2.15', edge: '0.031', normalized_at: nowIso(),
      }),
      type: 'positive_ev',
      detected_at: nowIso(),
    });

    const serve = await startServe(svc.wsUrl);
    t.after(() => serve.proc.kill('SIGTERM'));

    const profile = mkdtempSync(path.join(os.tmpdir(), 'wsb-chromium-'));
    t.after(() => rmSync(profile, { recursive: true, force: true }));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1400, height: 1000 },
      timeout: 30000,
    });
    t.after(() => context.close());
    const page = context.pages()[0] ?? await context.newPage();
    page.setDefaultTimeout(10000);
    const consoleErrors = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') consoleErrors.push(`console: ${msg.text()} ${JSON.stringify(msg.location())}`);
    });
    page.on('pageerror', (e) => consoleErrors.push(`page error: ${e.stack || e.message}`));

    await page.goto(`${serve.base}?ws=${encodeURIComponent(svc.wsUrl)}`, { timeout: 10000 });
    await page.waitForSelector('#status[data-status="connected"]', { state: 'attached', timeout: 10000 });

    // The first board: every cell the truth, the size and the epoch shown.
    await waitCellsEqualTruth(page, client, stream);
    const all = await truth(client, [stream, oppStream]);
    await waitUntil(async () => (await page.textContent('#board-size')) === String(all.size),
      { timeout: 5000, message: `#board-size == ${all.size}` });
    const epoch = await page.textContent('#epoch');
    assert.match(epoch, /\S/);
    assert.notEqual(epoch, '–');
    assert.equal(await page.locator('#opps li[data-key]').count(), 1, 'the opportunity is listed');
    const title = await page.getAttribute('#board-body td[data-key]', 'title');
    assert.match(title, /decimal .* implied .*\nno-vig .* fair .* edge /s, 'a cell carries its details');

    // A change shows within a second (a bounded wait, not a timing measure).
    const target = { event: GAMES[1].event, market: 'h2h', book: 'draftkings', outcome: GAMES[1].teams[0] };
    const key = [target.event, target.market, target.book, target.outcome].join('|');
    const cell = page.locator(`#board-body td[data-key="${key}"]`);
    assert.notEqual(await cell.textContent(), '150');
    const changedId = await publish(client, stream, oddsFields(sport, {
      ...target, price: 150, decimal_odds: '2.5', normalized_at: nowIso(),
    }));
    await page.waitForFunction(([k, id]) => {
      const td = document.querySelector(`#board-body td[data-key="${CSS.escape(k)}"]`);
      return td !== null && td.textContent === '150' && td.dataset.id === id;
    }, [key, changedId], { timeout: 1000 });
    await waitUntil(async () => /median -?\d+ ms/.test(await page.textContent('#latency')),
      { timeout: 2000, message: 'a latency read-out' });

    // The worker dies (the supervisor starts another on the same listener):
    // the page reconnects and resumes, and what was published meanwhile
    // arrives as the missed updates.
    const [worker] = svc.workerPids();
    assert.ok(worker, 'a worker pid');
    process.kill(worker, 'SIGKILL');
    const during = boardEntries(sport, stream).slice(0, 12).map(([s, f], i) => [s, { ...f, price: String(200 + i) }]);
    await publishMany(client, during);
    await page.waitForSelector('#status[data-status="resumed"]', { state: 'attached', timeout: 15000 });
    await waitUntil(() => svc.workerPids().some((p) => p !== worker), { timeout: 5000, message: 'a new worker' });

    await publishMany(client, boardEntries(sport, stream).slice(12, 30)
      .map(([s, f], i) => [s, { ...f, price: String(-300 - i), normalized_at: nowIso() }]));
    await waitCellsEqualTruth(page, client, stream);
    const { status, history } = await statusOf(page);
    assert.equal(status, 'resumed');
    assert.equal(history, 'connecting connected reconnecting resumed');
    assert.equal(await page.textContent('#epoch'), epoch, 'the same history');

    // The flashes fade first, so the picture shows the board at rest.
    await page.waitForFunction(() => document.getAnimations().length === 0, null, { timeout: 5000 });
    mkdirSync(OUTPUT_DIR, { recursive: true });
    const shot = path.join(OUTPUT_DIR, 'demo-page.png');
    await page.screenshot({ path: shot, fullPage: true, timeout: 10000 });
    t.diagnostic(`screenshot: ${shot}`);

    // The filter form narrows the board to the chosen books.
    await page.check('#f-books input[value="fanduel"]');
    await page.check('#f-books input[value="draftkings"]');
    await page.click('#filters button[type=submit]');
    const filter = { books: ['draftkings', 'fanduel'] };
    let diffs = [];
    await waitUntil(async () => {
      diffs = await cellDiff(page, await truth(client, [stream], filter));
      return diffs.length === 0;
    }, { timeout: 10000, message: 'the filtered board' }).catch((e) => {
      e.message += `; ${diffs.join('; ')}`;
      throw e;
    });
    assert.deepEqual(await page.$$eval('#board-head th.book', (ths) => ths.map((th) => th.textContent)),
      ['draftkings', 'fanduel']);
    assert.match(page.url(), /books=draftkings,fanduel/);

    assert.deepEqual(consoleErrors, [], 'no errors in the browser console');
  }));
