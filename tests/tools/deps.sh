#!/bin/sh
# Install the Debian packages needed to build, run and test ws-broadcaster,
# skipping those already installed.  `make deps` runs it.
#
#   sh tests/tools/deps.sh           install what is missing (as root, else via sudo)
#   sh tests/tools/deps.sh --check   only list what is missing; exit 1 if anything is
#
# With everything present it only asks dpkg, so it is cheap to run every time.
set -eu

PACKAGES="build-essential pkg-config libhiredis-dev libwebsockets-dev libev-dev libmsgpack-dev
libcjson-dev libsystemd-dev libjwt-dev redis-server redis-tools python3 python3-pytest
python3-websockets python3-redis python3-jwt python3-cryptography openssl curl chromium
prometheus"

# The JavaScript client's tests need Node.js and npm.  A Node.js installed
# from elsewhere (its own npm inside) is kept: Debian's npm would replace it.
command -v node >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs"
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"

check_only=0
case "${1:-}" in
'') ;;
--check) check_only=1 ;;
-h | --help)
    sed -n '2,8s/^# \{0,1\}//p' "$0"
    exit 0
    ;;
*)
    echo "deps.sh: unknown option '$1' (use --check or nothing)" >&2
    exit 2
    ;;
esac

missing=""
for pkg in $PACKAGES; do
    # "install ok installed" is the only state in which the files are there;
    # "deinstall ok config-files" and friends count as missing.
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing="$missing $pkg"
    fi
done
missing=${missing# }

if [ -z "$missing" ]; then
    echo "deps: all packages present"
    exit 0
fi

if [ "$check_only" -eq 1 ]; then
    echo "deps: missing: $missing"
    echo "deps: run 'make deps' to install them"
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "deps: missing: $missing" >&2
    echo "deps: not root and no sudo; install them as root:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends $missing" >&2
    exit 1
fi

echo "deps: installing: $missing"
DEBIAN_FRONTEND=noninteractive
export DEBIAN_FRONTEND
# sudo drops the environment by default, so pass the variable through env.
# $as_root and $missing are unquoted on purpose: empty prefix / word list.
# shellcheck disable=SC2086
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update
# shellcheck disable=SC2086
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
echo "deps: done"
