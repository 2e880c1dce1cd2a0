// The npm package: `npm pack` makes a tarball that installs into a project
// of its own and exports the library and its types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = dirname(dirname(fileURLToPath(import.meta.url)));

test('npm pack makes an installable package exporting OddsBoard and its types', () => {
  const work = mkdtempSync(join(tmpdir(), 'oddsboard-pack-'));
  try {
    const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work],
                                           { cwd: pkgDir, encoding: 'utf8' }));
    const files = packed[0].files.map((f) => f.path).sort();
    assert.deepEqual(files, ['README.md', 'oddsboard.d.ts', 'oddsboard.js', 'package.json']);

    const app = join(work, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', type: 'module' }));
    execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', join(work, packed[0].filename)],
                 { cwd: app, encoding: 'utf8' });
    const installed = join(app, 'node_modules', '@ws-broadcaster', 'oddsboard');
    assert.ok(existsSync(join(installed, 'oddsboard.d.ts')));
    const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
    assert.equal(manifest.exports['.'].types, './oddsboard.d.ts');

    const out = execFileSync('node', ['--input-type=module', '-e', `
      import { OddsBoard, boardKey, compareIds, backoffDelay, tokenExpiry, isOddsStream } from '@ws-broadcaster/oddsboard';
      const b = new OddsBoard('ws://127.0.0.1:9/ws', { autoConnect: false });
      console.log(JSON.stringify([typeof OddsBoard, b.status, compareIds('10-0', '9-5'),
        boardKey({ event_id: 'e', market_key: 'h2h', book_key: 'b', outcome_name: 'A', stream: 'odds.normalized.x' }),
        typeof backoffDelay, typeof tokenExpiry, isOddsStream('opportunities')]));`],
    { cwd: app, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out), ['function', 'closed', 1, 'e|h2h|b|A', 'function', 'function', false]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
