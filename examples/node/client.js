#!/usr/bin/env node
// ws-broadcaster example client: subscribes, prints every update on one line,
// sends a heartbeat every 30 s, and reconnects with backoff when the
// connection drops.
//
//   node client.js [URL] [--sports a,b] [--events a,b] [--markets a,b] [--books a,b]
//                  [--heartbeat SECONDS]
//
// URL defaults to $WS_URL, else ws://localhost:8080/ws.  An omitted filter
// list means "all".  --heartbeat sets the heartbeat period (default 30 s).
// Stop with Ctrl-C.

'use strict';

const WebSocket = require('ws');

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30000;

function usage(code) {
  const out = code === 0 ? console.log : console.error;
  out('usage: node client.js [URL] [--sports a,b] [--events a,b] [--markets a,b] [--books a,b]');
  out('                      [--heartbeat SECONDS]');
  out('  URL defaults to $WS_URL, else ws://localhost:8080/ws; a missing list means all;');
  out('  a heartbeat goes out every 30 s unless --heartbeat says otherwise');
  process.exit(code);
}

function parseArgs(argv) {
  const filter = { sports: [], events: [], markets: [], books: [] };
  let url = process.env.WS_URL || 'ws://localhost:8080/ws';
  let heartbeatMs = 30000;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') usage(0);
    const hb = /^--heartbeat(?:=(.*))?$/.exec(arg);
    if (hb) {
      const value = hb[1] !== undefined ? hb[1] : argv[++i];
      const seconds = Number(value);
      if (!(seconds > 0)) {
        console.error('--heartbeat needs a positive number of seconds');
        usage(2);
      }
      heartbeatMs = seconds * 1000;
      continue;
    }
    // Both "--books a,b" and "--books=a,b".
    const m = /^--(sports|events|markets|books)(?:=(.*))?$/.exec(arg);
    if (m) {
      let value = m[2];
      if (value === undefined) {
        if (i + 1 >= argv.length) usage(2);
        value = argv[++i];
      }
      filter[m[1]] = value.split(',').map((s) => s.trim()).filter(Boolean);
    } else if (arg.startsWith('-')) {
      console.error(`unknown option ${arg}`);
      usage(2);
    } else {
      url = arg;
    }
  }
  return { url, filter, heartbeatMs };
}

const { url, filter, heartbeatMs } = parseArgs(process.argv.slice(2));

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

// "12:34:56.789 odds  h2h         fanduel     Los Angeles Lakers -110 | fair -100 edge -2.4% | evt abc123"
function formatOdds(p) {
  const point = p.point === null || p.point === undefined ? '' : ` ${signed(p.point)}`;
  return [
    `${now()} odds  ${String(p.market_key).padEnd(8)} ${String(p.book_key).padEnd(11)}`,
    `${p.outcome_name}${point} ${signed(p.price)}`,
    `| fair ${signed(p.fair_price)} edge ${pct(p.edge)} | evt ${p.event_id}`,
  ].join(' ');
}

function formatOpportunity(p) {
  if (Array.isArray(p.legs)) {
    const legs = p.legs
      .map((l) => `${l.outcome_name} ${signed(l.price)} @${l.book_key}`)
      .join(' + ');
    return `${now()} OPP   ${p.type || 'opportunity'} ${p.market_key} ${legs} | margin ${pct(p.edge)} | evt ${p.event_id}`;
  }
  const point = p.point === null || p.point === undefined ? '' : ` ${signed(p.point)}`;
  return `${now()} OPP   ${p.type || 'opportunity'} ${p.market_key} ${p.book_key} ${p.outcome_name}${point} ${signed(p.price)} | edge ${pct(p.edge)} | evt ${p.event_id}`;
}

let ws = null;
let heartbeatTimer = null;
let reconnectTimer = null;
let backoff = BACKOFF_MIN_MS;
let stopping = false;
let received = 0;

function connect() {
  console.log(`${now()} connecting to ${url}`);
  ws = new WebSocket(url);

  ws.on('open', () => {
    backoff = BACKOFF_MIN_MS;
    console.log(`${now()} connected`);
    ws.send(JSON.stringify({ type: 'subscribe', payload: filter }));
    heartbeatTimer = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: 'heartbeat', payload: {} }));
      }
    }, heartbeatMs);
  });

  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let msg;
    try {
      msg = JSON.parse(data.toString());
    } catch (e) {
      console.error(`${now()} unparsable message: ${data.toString().slice(0, 200)}`);
      return;
    }
    received++;
    const p = msg.payload || {};
    switch (msg.type) {
      case 'odds_update':
        console.log(formatOdds(p));
        break;
      case 'opportunity':
        console.log(formatOpportunity(p));
        break;
      case 'subscribed':
        console.log(`${now()} subscribed ${JSON.stringify(p)}`);
        break;
      case 'unsubscribed':
        console.log(`${now()} unsubscribed`);
        break;
      case 'heartbeat':
        console.log(
          `${now()} heartbeat client ${p.client_id} sent ${p.messages_sent} received ${p.messages_received}` +
            ` buffer ${p.buffer_utilization}% of ${p.buffer_size} (we got ${received})`
        );
        break;
      case 'error':
        console.error(`${now()} error ${p.code}: ${p.message}`);
        break;
      default:
        console.log(`${now()} ${msg.type} ${JSON.stringify(p)}`);
    }
  });

  ws.on('error', (err) => {
    // 'close' follows; reconnecting is decided there.
    console.error(`${now()} websocket error: ${err.message}`);
  });

  ws.on('close', (code, reason) => {
    clearInterval(heartbeatTimer);
    heartbeatTimer = null;
    if (stopping) return;
    const why = reason && reason.length ? ` (${reason.toString()})` : '';
    // Jitter keeps many clients from reconnecting in lockstep after a restart.
    const delay = Math.round(backoff * (0.75 + Math.random() * 0.5));
    console.log(`${now()} disconnected, code ${code}${why}; reconnecting in ${delay} ms`);
    reconnectTimer = setTimeout(connect, delay);
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  });
}

function stop() {
  if (stopping) process.exit(130); // a second Ctrl-C: do not wait
  stopping = true;
  clearTimeout(reconnectTimer);
  clearInterval(heartbeatTimer);
  console.log(`${now()} closing (${received} messages received)`);
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.close(1000, 'client exit');
    // Give the close handshake a moment, then leave regardless.
    setTimeout(() => process.exit(0), 1000).unref();
    ws.on('close', () => process.exit(0));
  } else {
    process.exit(0);
  }
}

process.on('SIGINT', stop);
process.on('SIGTERM', stop);

connect();
