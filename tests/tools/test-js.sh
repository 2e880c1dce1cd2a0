#!/bin/sh
# The JavaScript client's tests (`make test-js`): Node's test runner over
# clients/js/test, against the real binary ($WSB_BIN) and a real Redis, with
# a headless Chromium (Debian's chromium) for the demo page's test.  The
# npm packages the tests use (ws, redis, playwright-core: devDependencies of
# clients/js) are installed first when they are missing or older than
# package.json.
set -eu

cd "$(dirname "$0")/../.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "test-js: node and npm are needed; 'make deps' installs them" >&2
    exit 1
fi

stamp=clients/js/node_modules/.installed
if [ ! -f "$stamp" ] || [ clients/js/package.json -nt "$stamp" ]; then
    (cd clients/js && npm install --no-audit --no-fund --loglevel=error)
    touch "$stamp"
fi

WSB_BIN=$(realpath "${WSB_BIN:-bin/ws-broadcaster}")
export WSB_BIN
cd clients/js
# One test file at a time: each starts its own service and Redis, and two
# cores shared by several would only make the waits longer.
if node --help | grep -q -- --test-concurrency; then
    exec node --test --test-concurrency=1 test/*.test.mjs
fi
exec node --test test/*.test.mjs
