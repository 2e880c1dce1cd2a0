// The live odds board page. OddsBoard keeps the board right (snapshot, then
// updates, resumed across reconnects); this file only draws it, so nothing
// here tracks ids, epochs or reconnect timing itself.
import { OddsBoard, boardKey, isOddsStream } from './oddsboard.js';

const KNOWN_MARKETS = ['h2h', 'spreads', 'totals', 'player_props'];
const KNOWN_BOOKS = ['draftkings', 'fanduel', 'betmgm', 'caesars'];
const MARKET_ORDER = { h2h: 0, spreads: 1, totals: 2 };
const MAX_OPPORTUNITIES = 50;
const MAX_LOG = 30;
const WINDOW_MS = 5000; // latency and rate are over the last few seconds
const FLASH_MS = 1200;
const FLASH_COLORS = { up: '#1f9d55', down: '#d64545', moved: '#d69e2e', tick: '#4ea1ff' };

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------ parameters

function defaultWsUrl() {
  const given = params.get('ws');
  if (given) return given;
  // The demo server serves the page on its own port; the service listens
  // on 8080 of the same host.
  if (location.protocol === 'http:' || location.protocol === 'https:') {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.hostname}:8080/ws`;
  }
  return 'ws://localhost:8080/ws';
}

function list(text) {
  return (text || '').split(',').map((s) => s.trim()).filter(Boolean);
}

function paramList(name) {
  return params.getAll(name).flatMap(list);
}

// ----------------------------------------------------------- filter form

function addCheckboxes(fieldset, values, checked) {
  for (const v of values) {
    const label = document.createElement('label');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.value = v;
    box.checked = checked.includes(v);
    label.append(box, ' ' + v);
    fieldset.append(label);
  }
}

function initFilterForm() {
  const markets = paramList('markets');
  const books = paramList('books');
  // Preset values the page does not know of still get a box, ticked.
  addCheckboxes($('f-markets'), [...new Set([...KNOWN_MARKETS, ...markets])], markets);
  addCheckboxes($('f-books'), [...new Set([...KNOWN_BOOKS, ...books])], books);
  $('f-sports').value = paramList('sports').join(', ');
  $('f-events').value = paramList('events').join(', ');
}

function checkedValues(fieldset) {
  return [...fieldset.querySelectorAll('input:checked')].map((b) => b.value);
}

function formFilter() {
  return {
    sports: list($('f-sports').value),
    events: list($('f-events').value),
    markets: checkedValues($('f-markets')),
    books: checkedValues($('f-books')),
  };
}

function describeFilter(f) {
  const part = (name, v) => `${name}: ${v && v.length ? v.join(', ') : 'all'}`;
  return [part('sports', f.sports), part('markets', f.markets), part('books', f.books),
    part('events', f.events)].join(' · ');
}

// The form shows the filter in force (after a refused one, the previous).
function showFilter(f) {
  for (const [name, fieldset] of [['markets', $('f-markets')], ['books', $('f-books')]]) {
    const values = f[name] || [];
    const boxes = [...fieldset.querySelectorAll('input')];
    for (const box of boxes) box.checked = values.includes(box.value);
    addCheckboxes(fieldset, values.filter((v) => !boxes.some((b) => b.value === v)), values);
  }
  $('f-sports').value = (f.sports || []).join(', ');
  $('f-events').value = (f.events || []).join(', ');
}

// A reload keeps the filter in force: it goes into the address bar.
function rememberFilter(f) {
  const q = new URLSearchParams(location.search);
  for (const name of ['sports', 'events', 'markets', 'books']) {
    if (f[name] && f[name].length) q.set(name, f[name].join(','));
    else q.delete(name);
  }
  // Commas, colons and slashes need no escaping in a query: keep it readable.
  history.replaceState(null, '', '?' + q.toString().replace(/%2C/gi, ',').replace(/%3A/gi, ':').replace(/%2F/gi, '/'));
}

// -------------------------------------------------------------- formatting

function fmtAmerican(n) {
  if (typeof n !== 'number') return '–';
  return n > 0 ? '+' + n : String(n);
}

function fmtPoint(market, n) {
  if (typeof n !== 'number') return '';
  if (market === 'totals') return String(n);
  return n > 0 ? '+' + n : String(n);
}

function pct(x, digits = 1) {
  return typeof x === 'number' ? (x * 100).toFixed(digits) + '%' : '–';
}

// Prices compare by what the page shows, the American price; decimal_odds
// only stands in for a missing one.
function decimalOf(item) {
  const p = item.price;
  if (typeof p === 'number' && (p >= 100 || p <= -100)) return p > 0 ? 1 + p / 100 : 1 + 100 / -p;
  return typeof item.decimal_odds === 'number' ? item.decimal_odds : null;
}

// ------------------------------------------------------------------ board

// What is drawn: boardKey -> price <td>, and the rows that hold them.
const cellByKey = new Map();
let rows = []; // [{ id, tr, cells: Map(book -> td) }]
const rowByTr = new Map();
let bookColumns = [];
let layoutDirty = true;     // a key, row or book appeared, or a snapshot came
let flashAfterLayout = null; // Map key -> id drawn before a fresh snapshot
const pending = new Map();  // key -> flash kind, for the next frame

function str(v) {
  return v === undefined || v === null ? '' : String(v);
}

function rowIdOf(item) {
  return JSON.stringify([str(item.event_id), str(item.market_key), str(item.outcome_name)]);
}

function eventLabels(items) {
  const teams = new Map();
  for (const it of items) {
    if (it.market_key !== 'h2h' && it.market_key !== 'spreads') continue;
    const ev = str(it.event_id);
    if (!teams.has(ev)) teams.set(ev, new Set());
    teams.get(ev).add(str(it.outcome_name));
  }
  const labels = new Map();
  for (const [ev, names] of teams) labels.set(ev, [...names].sort().slice(0, 2).join(' / '));
  return labels;
}

function fillCell(td, item, book, outcome) {
  td.className = 'price';
  td.textContent = '';
  if (!item) {
    td.classList.add('empty');
    delete td.dataset.key;
    delete td.dataset.id;
    delete td.dataset.point;
    td.title = '';
    return;
  }
  td.dataset.key = boardKey(item);
  td.dataset.id = item.id;
  const pt = fmtPoint(item.market_key, item.point);
  if (pt) td.dataset.point = pt;
  else delete td.dataset.point;
  if (item.price === null || item.price === undefined) {
    td.classList.add('noprice');
  } else {
    const span = document.createElement('span');
    span.textContent = String(item.price);
    if (typeof item.price === 'number' && item.price > 0) span.className = 'pos';
    td.append(span);
  }
  td.title = `${book} · ${outcome}${pt ? ' ' + pt : ''} · ${fmtAmerican(item.price)}\n` +
    `decimal ${item.decimal_odds ?? '–'} · implied ${pct(item.implied_probability)}\n` +
    `no-vig ${pct(item.novig_probability)} · fair ${fmtAmerican(item.fair_price)} · edge ${pct(item.edge)}\n` +
    `normalized ${item.normalized_at ?? '–'}\n${item.stream} ${item.id}`;
}

// The best price of a row: the highest decimal odds among the books on the
// row's most common line, so a book hanging a different spread is not "best".
function markBest(row) {
  const quotes = [];
  for (const [book, td] of row.cells) {
    const item = td.dataset.key ? board.get(td.dataset.key) : undefined;
    if (item) quotes.push({ book, td, item });
  }
  const lines = new Map();
  for (const q of quotes) lines.set(q.item.point, (lines.get(q.item.point) || 0) + 1);
  let mainLine;
  let most = 0;
  for (const [line, n] of lines) if (n > most) { mainLine = line; most = n; }
  let best = null;
  for (const q of quotes) {
    const d = decimalOf(q.item);
    if (q.item.point === mainLine && d !== null && (best === null || d > best.d)) best = { td: q.td, d };
  }
  for (const q of quotes) q.td.classList.toggle('best', quotes.length > 1 && best !== null && q.td === best.td);
}

function rebuild() {
  const items = board ? board.values((it) => isOddsStream(it.stream)) : [];
  const labels = eventLabels(items);
  const books = new Set();
  const byRow = new Map();
  for (const it of items) {
    books.add(str(it.book_key));
    const id = rowIdOf(it);
    let row = byRow.get(id);
    if (!row) {
      row = { id, event: str(it.event_id), market: str(it.market_key), outcome: str(it.outcome_name), items: new Map() };
      byRow.set(id, row);
    }
    row.items.set(str(it.book_key), it);
  }
  bookColumns = [...books].sort();
  const sorted = [...byRow.values()].sort((a, b) =>
    (labels.get(a.event) || a.event).localeCompare(labels.get(b.event) || b.event) ||
    a.event.localeCompare(b.event) ||
    (MARKET_ORDER[a.market] ?? 9) - (MARKET_ORDER[b.market] ?? 9) ||
    a.market.localeCompare(b.market) ||
    a.outcome.localeCompare(b.outcome));

  const head = $('board-head');
  head.textContent = '';
  for (const name of ['Event', 'Market', 'Outcome']) {
    const th = document.createElement('th');
    th.textContent = name;
    head.append(th);
  }
  for (const b of bookColumns) {
    const th = document.createElement('th');
    th.className = 'book';
    th.textContent = b;
    head.append(th);
  }

  const body = $('board-body');
  const fragment = document.createDocumentFragment();
  cellByKey.clear();
  rowByTr.clear();
  rows = [];
  let lastEvent = null;
  let lastMarket = null;
  for (const r of sorted) {
    const tr = document.createElement('tr');
    const newEvent = r.event !== lastEvent;
    if (newEvent) tr.className = 'event-start';
    tr.dataset.event = r.event;
    tr.dataset.market = r.market;
    const tdEvent = document.createElement('td');
    tdEvent.className = 'event';
    if (newEvent) {
      tdEvent.textContent = labels.get(r.event) || r.event;
      if (labels.has(r.event)) {
        const small = document.createElement('small');
        small.textContent = r.event;
        tdEvent.append(small);
      }
    }
    const tdMarket = document.createElement('td');
    tdMarket.className = 'market';
    tdMarket.textContent = newEvent || r.market !== lastMarket ? r.market : '';
    const tdOutcome = document.createElement('td');
    tdOutcome.textContent = r.outcome;
    tr.append(tdEvent, tdMarket, tdOutcome);
    const row = { id: r.id, tr, cells: new Map() };
    for (const b of bookColumns) {
      const td = document.createElement('td');
      const item = r.items.get(b);
      fillCell(td, item, b, r.outcome);
      if (item) cellByKey.set(td.dataset.key, td);
      row.cells.set(b, td);
      tr.append(td);
    }
    markBest(row);
    rows.push(row);
    rowByTr.set(tr, row);
    fragment.append(tr);
    lastEvent = r.event;
    lastMarket = r.market;
  }
  body.replaceChildren(fragment);
  $('board-empty').style.display = rows.length ? 'none' : '';
  layoutDirty = false;
}

function flash(td, kind) {
  td.dataset.flash = kind;
  td.animate([{ backgroundColor: FLASH_COLORS[kind] }, { backgroundColor: 'transparent' }],
    { duration: FLASH_MS, easing: 'ease-out' });
}

function flashKind(previous, value) {
  if (!previous) return 'moved';
  if (previous.point !== value.point) return 'moved';
  const a = decimalOf(previous);
  const b = decimalOf(value);
  if (a !== null && b !== null && b > a) return 'up';
  if (a !== null && b !== null && b < a) return 'down';
  return 'tick';
}

function rowOfCell(td) {
  return rowByTr.get(td.parentElement);
}

function render() {
  renderScheduled = false;
  if (layoutDirty) {
    rebuild();
    if (flashAfterLayout) {
      // A fresh snapshot replaced the board: show which prices it moved.
      for (const [key, td] of cellByKey) {
        const before = flashAfterLayout.get(key);
        if (before !== undefined && before !== td.dataset.id) flash(td, 'tick');
      }
      flashAfterLayout = null;
    }
    for (const [key, kind] of pending) {
      const td = cellByKey.get(key);
      if (td) flash(td, kind);
    }
  } else {
    const touched = new Set();
    for (const [key, kind] of pending) {
      const td = cellByKey.get(key);
      const item = board.get(key);
      if (!td || !item) continue;
      const row = rowOfCell(td);
      fillCell(td, item, str(item.book_key), str(item.outcome_name));
      flash(td, kind);
      if (row) touched.add(row);
    }
    for (const row of touched) markBest(row);
  }
  pending.clear();
  showPositions();
  showCounts();
}

// Updates can come hundreds a second; the board is drawn once a frame.
let renderScheduled = false;
function scheduleRender() {
  if (renderScheduled) return;
  renderScheduled = true;
  requestAnimationFrame(render);
}

// --------------------------------------------------------- opportunities

function describeOpportunity(p) {
  const pt = fmtPoint(p.market_key, p.point);
  if (Array.isArray(p.legs)) {
    const legs = p.legs.map((l) => `${l.outcome_name} ${fmtAmerican(l.price)} @ ${l.book_key}`).join('  +  ');
    return `${p.market_key}${pt ? ' ' + pt : ''}: ${legs}`;
  }
  return `${p.market_key}: ${p.outcome_name ?? ''}${pt ? ' ' + pt : ''} ${fmtAmerican(p.price)} @ ${p.book_key ?? '?'}` +
    (typeof p.fair_price === 'number' ? ` (fair ${fmtAmerican(p.fair_price)})` : '');
}

let labelsForOpps = new Map();

function opportunityItem(key, p) {
  const li = document.createElement('li');
  li.dataset.key = key;
  li.dataset.id = p.id;
  const top = document.createElement('div');
  top.className = 'top';
  const badge = document.createElement('span');
  const type = String(p.type || 'opportunity');
  badge.className = 'badge ' + type.replace(/[^a-z_]/gi, '');
  badge.textContent = type.replace('_', ' ');
  const when = document.createElement('span');
  when.textContent = str(p.detected_at || p.normalized_at).slice(11, 19);
  top.append(badge, when);

  const what = document.createElement('div');
  what.textContent = describeOpportunity(p);
  const game = document.createElement('div');
  game.className = 'top';
  const name = document.createElement('span');
  name.textContent = p.event_id !== undefined ? (labelsForOpps.get(str(p.event_id)) || str(p.event_id)) : '';
  const edge = document.createElement('span');
  edge.className = 'edge';
  edge.textContent = typeof p.edge === 'number' ? (type === 'arbitrage' ? 'margin ' : 'edge ') + pct(p.edge) : '';
  game.append(name, edge);
  li.append(top, what, game);
  return li;
}

function addOpportunity(key, p, isNew) {
  const ul = $('opps');
  // One entry per key, as on the board: a newer value replaces the old one.
  for (const li of ul.children) {
    if (li.dataset.key === key) {
      li.remove();
      break;
    }
  }
  const li = opportunityItem(key, p);
  ul.prepend(li);
  if (isNew) li.animate([{ backgroundColor: FLASH_COLORS.moved }, { backgroundColor: 'transparent' }], { duration: 1500 });
  while (ul.children.length > MAX_OPPORTUNITIES) ul.lastChild.remove();
  $('opps-empty').style.display = ul.children.length ? 'none' : '';
}

function redrawOpportunities() {
  labelsForOpps = eventLabels(board.values((it) => isOddsStream(it.stream)));
  $('opps').textContent = '';
  const opps = board.values((it) => !isOddsStream(it.stream));
  opps.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)); // oldest first: each goes on top
  for (const p of opps.slice(-MAX_OPPORTUNITIES)) addOpportunity(boardKey(p), p, false);
  $('opps-empty').style.display = opps.length ? 'none' : '';
}

// ------------------------------------------------ status, counters, latency

const statusHistory = [];

function logLine(text, strong) {
  const li = document.createElement('li');
  const t = new Date().toISOString().slice(11, 23);
  li.append(t + ' ');
  const b = document.createElement('b');
  b.textContent = strong;
  li.append(b, text ? ' ' + text : '');
  const ul = $('log');
  ul.prepend(li);
  while (ul.children.length > MAX_LOG) ul.lastChild.remove();
}

function showStatus(ev) {
  const el = $('status');
  el.dataset.status = ev.status;
  // Consecutive repeats (one "reconnecting" per attempt) collapse into one.
  if (statusHistory[statusHistory.length - 1] !== ev.status) statusHistory.push(ev.status);
  el.dataset.history = statusHistory.join(' ');
  let detail = '';
  if (ev.status === 'reconnecting') {
    const parts = [];
    if (ev.code !== undefined) parts.push(`closed ${ev.code}${ev.reason ? ' ' + ev.reason : ''}`);
    if (ev.attempt !== undefined) parts.push(`attempt ${ev.attempt} in ${((ev.delay || 0) / 1000).toFixed(1)} s`);
    detail = parts.join(', ');
  } else if (ev.status === 'closed' && ev.code !== undefined) {
    detail = `code ${ev.code}${ev.reason ? ' ' + ev.reason : ''}`;
  }
  el.textContent = ev.status;
  el.title = detail;
  $('epoch').textContent = ev.epoch || '–';
  logLine(detail, ev.status);
  showPositions();
}

function showPositions() {
  if (!board) return;
  const el = $('positions');
  const entries = Object.entries(board.positions).sort(([a], [b]) => a.localeCompare(b));
  const nodes = entries.map(([stream, id]) => {
    const span = document.createElement('span');
    span.dataset.stream = stream;
    const code = document.createElement('code');
    code.textContent = id;
    span.append(stream + ' ', code);
    return span;
  });
  if (!nodes.length) {
    const code = document.createElement('code');
    code.textContent = '–';
    nodes.push(code);
  }
  el.replaceChildren(...nodes);
  if (board.epoch) $('epoch').textContent = board.epoch;
}

const samples = []; // [arrival ms, latency ms, whole-second timestamp?]
const arrivals = []; // arrival ms of each update, for the rate

function noteLatency(item) {
  const at = item.normalized_at;
  if (typeof at !== 'string') return;
  const t = Date.parse(at);
  if (Number.isNaN(t)) return;
  const now = Date.now();
  samples.push([now, now - t, !/\.\d/.test(at)]);
}

// Cheap figures, drawn with the board.
function showCounts() {
  if (!board) return;
  const s = board.stats;
  $('c-updates').textContent = s.updates;
  $('c-snapshots').textContent = s.snapshots;
  $('c-reconnects').textContent = s.reconnects;
  $('c-stale').textContent = s.staleDropped;
  $('board-size').textContent = board.size;
}

// Figures over the last few seconds, drawn twice a second.
function showRates() {
  const cutoff = Date.now() - WINDOW_MS;
  while (samples.length && samples[0][0] < cutoff) samples.shift();
  while (arrivals.length && arrivals[0] < cutoff) arrivals.shift();
  $('c-rate').textContent = (arrivals.length / (WINDOW_MS / 1000)).toFixed(1);
  if (!samples.length) {
    $('latency').textContent = '–';
    return;
  }
  const lat = samples.map((x) => x[1]).sort((a, b) => a - b);
  const median = lat[Math.floor(lat.length / 2)];
  const coarse = samples.some((x) => x[2]) ? ' (±1 s: whole-second timestamps)' : '';
  $('latency').textContent = `median ${median} ms, max ${lat[lat.length - 1]} ms${coarse}`;
}

// ------------------------------------------------------------- the client

let board = null;

function start(url) {
  if (board) board.close();
  const filter = formFilter();
  const token = params.get('token') || undefined;
  let b;
  try {
    b = new OddsBoard(url, { filter, token, autoConnect: false });
  } catch (e) {
    $('message').textContent = `cannot connect to ${url}: ${e.message}`;
    return;
  }
  board = b;
  // exposed for the browser's console
  window.oddsBoard = b;
  // Listeners of a board replaced by Connect must not draw over the new one.
  const mine = (fn) => (ev) => { if (board === b) fn(ev); };

  b.on('status', mine((ev) => {
    if (ev.status === 'resumed') $('message').textContent = '';
    showStatus(ev);
  }));
  b.on('snapshot', mine((ev) => {
    // The library has replaced its board: redraw all of it.
    if (ev.reason) {
      flashAfterLayout = new Map([...cellByKey].map(([key, td]) => [key, td.dataset.id]));
      logLine(`${ev.size} keys`, `snapshot (${ev.reason})`);
    } else {
      logLine(`${ev.size} keys`, 'snapshot');
    }
    $('message').textContent = '';
    if (ev.reason === 'resubscribed') {
      // the server took the new filter
      rememberFilter(b.filter);
      $('filter-state').textContent = describeFilter(b.filter);
    }
    pending.clear();
    layoutDirty = true;
    redrawOpportunities();
    scheduleRender();
  }));
  b.on('update', mine((ev) => {
    arrivals.push(Date.now());
    noteLatency(ev.value);
    if (ev.kind === 'opportunity') {
      // An arbitrage with legs has no board key: each is its own entry.
      addOpportunity(ev.key ?? `${ev.value.stream}/${ev.value.id}`, ev.value, true);
      return;
    }
    if (ev.key === null) return; // no outcome: nowhere on the board to show it
    if (!cellByKey.has(ev.key)) layoutDirty = true;
    pending.set(ev.key, flashKind(ev.previous, ev.value));
    scheduleRender();
  }));
  b.on('error', mine((ev) => {
    const text = `${ev.code}: ${ev.message}${ev.closeCode !== undefined ? ` (close ${ev.closeCode})` : ''}`;
    if (ev.code === 'invalid_filter' || ev.code === 'forbidden') {
      $('filter-state').textContent = `filter refused, ${text}; the previous filter stays`;
      showFilter(b.filter);
    }
    $('message').textContent = ev.fatal ? `stopped: ${text}` : text;
    logLine(text, ev.fatal ? 'error (fatal)' : 'error');
  }));
  // Giving up is reported by the error and status events; an unhandled
  // rejection would only add noise to the console.
  b.ready.then(() => { if (board === b) $('message').textContent = ''; }, () => {});

  $('filter-state').textContent = describeFilter(filter);
  $('url').value = url;
  layoutDirty = true;
  pending.clear();
  try {
    b.connect();
  } catch (e) {
    $('message').textContent = `cannot connect to ${url}: ${e.message}`;
  }
  scheduleRender();
}

$('connect').addEventListener('click', () => start($('url').value.trim()));

$('filters').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const f = formFilter();
  $('filter-state').textContent = `applying ${describeFilter(f)}`;
  try {
    board.setFilter(f);
  } catch (e) {
    $('filter-state').textContent = `bad filter: ${e.message}`;
  }
});

initFilterForm();
setInterval(() => { showRates(); showCounts(); }, 500);
start(defaultWsUrl());
