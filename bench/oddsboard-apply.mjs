// What the JavaScript client costs per update: OddsBoard's handling of a
// server message (parse, validate, stale check, apply, position, event)
// against a baseline measured in the same run, JSON.parse alone of the same
// messages, which any client pays.
//
//   node bench/oddsboard-apply.mjs [--updates N] [--keys K] [--runs R]
//
// Prints the median of R runs of each, in updates/s, and the ratio.
import { OddsBoard } from '../clients/js/oddsboard.js';

function arg(name, dflt) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const UPDATES = arg('updates', 200000);
const KEYS = arg('keys', 2000);
const RUNS = arg('runs', 7);
const STREAM = 'odds.normalized.basketball_nba';

// Messages as the service sends them (README "WebSocket protocol"), ids
// increasing, keys cycling over the board.
const messages = [];
const t0 = 1764750000000;
for (let i = 0; i < UPDATES; i++) {
  const k = i % KEYS;
  messages.push(JSON.stringify({
    type: 'odds_update',
    payload: {
      event_id: `ev${Math.floor(k / 8)}`, sport_key: 'basketball_nba', market_key: ['h2h', 'spreads'][k % 2],
      book_key: ['fanduel', 'draftkings', 'betmgm', 'caesars'][(k >> 1) % 4], outcome_name: `team ${k % 8 < 4 ? 'A' : 'B'}`,
      price: -110 - (i % 20), point: null, decimal_odds: 1.909, implied_probability: 0.5238,
      novig_probability: 0.5, fair_price: -100, edge: 0.024, normalized_at: '2025-11-07T12:34:56.123Z',
    },
    stream: STREAM,
    id: `${t0 + i}-0`,
    timestamp: '2025-11-07T12:34:56.130Z',
  }));
}

function board() {
  const b = new OddsBoard('ws://127.0.0.1:9/ws', { autoConnect: false });
  let changed = 0;
  b.on('update', () => { changed++; });
  // The board as it stands after a snapshot: positions known, keys empty.
  b._applySnapshot({ epoch: 'e', positions: { [STREAM]: `${t0 - 1}-0` }, items: new Map(), reason: undefined });
  return { b, changed: () => changed };
}

function timeIt(fn) {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const parseRates = [];
const boardRates = [];
for (let r = 0; r < RUNS; r++) {
  let sink = 0;
  parseRates.push(UPDATES / timeIt(() => { for (const m of messages) sink += JSON.parse(m).payload.price; }));
  const { b, changed } = board();
  boardRates.push(UPDATES / timeIt(() => { for (const m of messages) b._received(m); }));
  if (changed() !== UPDATES || b.size !== KEYS || sink === 0)
    throw new Error(`applied ${changed()} of ${UPDATES}, ${b.size} keys`);
}
const p = median(parseRates), o = median(boardRates);
console.log(`updates ${UPDATES}, keys ${KEYS}, runs ${RUNS} (medians), node ${process.version}`);
console.log(`JSON.parse alone   ${Math.round(p).toLocaleString('en')} updates/s`);
console.log(`OddsBoard          ${Math.round(o).toLocaleString('en')} updates/s (${(p / o).toFixed(2)}x the cost of parsing alone)`);
