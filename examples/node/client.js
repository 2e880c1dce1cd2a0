#!/usr/bin/env node
// ws-broadcaster example client on the OddsBoard library (clients/js): keeps
// a board of the prices its filter matches and prints each change on one
// line, with the connection's status (resumed or resynced after a drop).
//
//   node client.js [URL] [--sports a,b] [--events a,b] [--markets a,b] [--books a,b]
//                  [--conflate-ms N] [--token JWT]
//
// URL defaults to $WS_URL, else ws://localhost:8080/ws; the token to
// $ODDS_TOKEN.  An omitted filter list means "all".  Stop with Ctrl-C.

import WebSocket from 'ws';
import { OddsBoard } from '@ws-broadcaster/oddsboard';

function usage(code) {
  const out = code === 0 ? console.log : console.error;
  out('usage: node client.js [URL] [--sports a,b] [--events a,b] [--markets a,b] [--books a,b]');
  out('                      [--conflate-ms N] [--token JWT]');
  out('  URL defaults to $WS_URL, else ws://localhost:8080/ws; a missing list means all');
  process.exit(code);
}

function parseArgs(argv) {
  const opts = {
    url: process.env.WS_URL || 'ws://localhost:8080/ws',
    filter: {},
    conflateMs: 0,
    token: process.env.ODDS_TOKEN || undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') usage(0);
    // Both "--books a,b" and "--books=a,b".
    const m = /^--(sports|events|markets|books|conflate-ms|token)(?:=(.*))?$/.exec(arg);
    if (m) {
      let value = m[2];
      if (value === undefined) {
        if (i + 1 >= argv.length) usage(2);
        value = argv[++i];
      }
      if (m[1] === 'conflate-ms') {
        opts.conflateMs = Number(value);
        if (!Number.isInteger(opts.conflateMs) || opts.conflateMs < 0) usage(2);
      } else if (m[1] === 'token') {
        opts.token = value;
      } else {
        opts.filter[m[1]] = value.split(',').map((s) => s.trim()).filter(Boolean);
      }
    } else if (arg.startsWith('-')) {
      console.error(`unknown option ${arg}`);
      usage(2);
    } else {
      opts.url = arg;
    }
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

function now() {
  return new Date().toISOString().slice(11, 23); // HH:MM:SS.mmm
}

function signed(n) {
  if (n === null || n === undefined) return '';
  return n > 0 ? `+${n}` : `${n}`;
}

function pct(x) {
  return typeof x === 'number' ? `${(x * 100).toFixed(1)}%` : '-';
}

// "12:34:56.789 odds  h2h      fanduel     Los Angeles Lakers -110 (was -115) | fair -100 edge -2.4% | evt abc123"
function formatOdds(p, previous) {
  const point = p.point === null || p.point === undefined ? '' : ` ${signed(p.point)}`;
  const was = previous && previous.price !== p.price ? ` (was ${signed(previous.price)})` : '';
  return [
    `${now()} odds  ${String(p.market_key).padEnd(8)} ${String(p.book_key).padEnd(11)}`,
    `${p.outcome_name}${point} ${signed(p.price)}${was}`,
    `| fair ${signed(p.fair_price)} edge ${pct(p.edge)} | evt ${p.event_id}`,
  ].join(' ');
}

function formatOpportunity(p) {
  const point = p.point === null || p.point === undefined ? '' : ` ${signed(p.point)}`;
  return `${now()} OPP   ${p.type || 'opportunity'} ${p.market_key} ${p.book_key} ${p.outcome_name}${point} ${signed(p.price)} | edge ${pct(p.edge)} | evt ${p.event_id}`;
}

let stopping = false;
console.log(`${now()} connecting to ${opts.url}`);
// Node 18 and 20 have no global WebSocket: the `ws` package stands in.
const board = new OddsBoard(opts.url, {
  filter: opts.filter,
  token: opts.token,
  conflateMs: opts.conflateMs,
  WebSocket,
});

board.on('snapshot', ({ size, reason, epoch }) =>
  console.log(`${now()} board of ${size} prices (epoch ${epoch}${reason ? `, ${reason}` : ''})`));
board.on('update', ({ kind, value, previous, conflated }) =>
  console.log((kind === 'odds' ? formatOdds(value, previous) : formatOpportunity(value)) +
              (conflated ? ' [conflated]' : '')));
board.on('status', ({ status, attempt, delay, code, reason }) => {
  const why = code !== undefined ? ` after close ${code}${reason ? ` (${reason})` : ''}` : '';
  const when = attempt !== undefined ? `: attempt ${attempt} in ${delay} ms` : '';
  console.log(`${now()} ${status}${why}${when}`);
  // closed without Ctrl-C: the client gave up (the error says why)
  if (status === 'closed') process.exit(stopping ? 0 : 1);
});
board.on('error', ({ code, message, fatal }) =>
  console.error(`${now()} error ${code}: ${message}${fatal ? ' (giving up)' : ''}`));

function stop() {
  if (stopping) process.exit(130); // a second Ctrl-C: do not wait
  stopping = true;
  console.log(`${now()} closing: ${JSON.stringify(board.stats)}`);
  board.close();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
