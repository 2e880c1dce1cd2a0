#!/usr/bin/env node
// Serves the odds board page for local use: the files of examples/web at /
// and the client library at /oddsboard.js, so the page's
// `import ... from './oddsboard.js'` works without a build step or a copy.
// A browser will not load ES modules from file://, hence a server at all.
//
//   node examples/web/serve.mjs [PORT] [--host HOST] [--ws URL]
//
// PORT: argument, else $DEMO_HTTP_PORT, else 8000; 0 picks a free port.
// HOST: --host, else $DEMO_HTTP_HOST, else 127.0.0.1 (this is a development
// server: it is not meant to face a network).
// --ws (else $DEMO_WS_URL): only used in the printed link.
//
// Prints "demo page: http://HOST:PORT/?ws=URL" once listening.

import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const LIBRARY = resolve(here, '../../clients/js/oddsboard.js');
const SELF = basename(fileURLToPath(import.meta.url));

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

function usage(message) {
  process.stderr.write(`serve.mjs: ${message}\nusage: node serve.mjs [PORT] [--host HOST] [--ws URL]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    port: process.env.DEMO_HTTP_PORT || '8000',
    host: process.env.DEMO_HTTP_HOST || '127.0.0.1',
    ws: process.env.DEMO_WS_URL || 'ws://127.0.0.1:8080/ws',
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const value = () => (eq > 0 && a.startsWith('--') ? a.slice(eq + 1) : argv[++i]);
    if (name === '--host') opts.host = value();
    else if (name === '--ws') opts.ws = value();
    else if (name === '--port') opts.port = value();
    else if (name === '-h' || name === '--help') usage('serves examples/web and the client library');
    else if (!a.startsWith('-')) opts.port = a;
    else usage(`unknown option ${a}`);
    if (opts.host === undefined || opts.ws === undefined || opts.port === undefined) usage(`${name} needs a value`);
  }
  if (!/^\d+$/.test(String(opts.port)) || Number(opts.port) > 65535) usage(`bad port ${opts.port}`);
  opts.port = Number(opts.port);
  return opts;
}

// The file a URL path names, or null. Only plain names directly in this
// directory (and the library) are served: no dot files, no subdirectories,
// no "..", nothing whose type is not listed above.
function fileFor(pathname) {
  if (pathname === '/oddsboard.js') return LIBRARY;
  let name;
  try {
    name = decodeURIComponent(pathname.slice(1));
  } catch {
    return null;
  }
  if (name === '') name = 'index.html';
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(name)) return null;
  if (name === SELF || !MIME[extname(name)]) return null;
  return join(here, name);
}

function reply(res, status, text, headers = {}) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
  res.end(text + '\n');
}

async function handle(req, res) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return reply(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
  }
  let pathname;
  try {
    pathname = new URL(req.url, 'http://localhost').pathname;
  } catch {
    return reply(res, 400, 'bad request');
  }
  const file = fileFor(pathname);
  if (!file) return reply(res, 404, 'not found');
  let body;
  try {
    if (!(await stat(file)).isFile()) return reply(res, 404, 'not found');
    body = await readFile(file);
  } catch (e) {
    if (file === LIBRARY && e.code === 'ENOENT') return reply(res, 404, `not found: ${LIBRARY}`);
    return reply(res, e.code === 'ENOENT' ? 404 : 500, e.code === 'ENOENT' ? 'not found' : 'cannot read file');
  }
  res.writeHead(200, {
    'Content-Type': MIME[extname(file)],
    'Content-Length': body.length,
    // Edits to the page or the library show on the next reload.
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

const opts = parseArgs(process.argv.slice(2));
const server = createServer((req, res) => {
  handle(req, res).catch(() => {
    if (!res.headersSent) reply(res, 500, 'internal error');
    else res.destroy();
  });
});
server.on('error', (e) => {
  process.stderr.write(`serve.mjs: cannot listen on ${opts.host}:${opts.port}: ${e.message}\n`);
  process.exit(1);
});
server.listen(opts.port, opts.host, () => {
  const { port } = server.address();
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  process.stdout.write(`demo page: http://${host}:${port}/?ws=${opts.ws}\n`);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
