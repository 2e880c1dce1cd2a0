// The TypeScript declarations compile, and describe a typical use
// (types-usage.ts) under --strict.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = dirname(dirname(fileURLToPath(import.meta.url)));
const tsc = join(pkgDir, 'node_modules', 'typescript', 'bin', 'tsc');

test('oddsboard.d.ts type-checks a typical use under --strict', () => {
  assert.ok(existsSync(tsc), 'typescript is a devDependency: npm install');
  const r = spawnSync('node', [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext',
                               '--moduleResolution', 'nodenext', join('test', 'types-usage.ts')],
                      { cwd: pkgDir, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
