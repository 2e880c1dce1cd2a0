#!/bin/sh
# Run ws-broadcaster for development: `make run`, or `make demo` (DEMO=1).
#
#  1. Exports the KEY=VALUE lines of .env, if there is one (variables already
#     set in the environment win, so `REDIS_URL=... make run` still works).
#  2. Finds the Redis the service will use: REDIS_URL and REDIS_PASSWORD from
#     the environment, else from the config file, else localhost:6379.  If it
#     does not answer PING and is local (localhost, 127.0.0.1, ::1 or a unix
#     socket path), starts a throwaway redis-server there (no persistence,
#     data and log in a temporary directory) and waits for it.  A remote
#     Redis that does not answer is reported; the service retries on its own.
#  3. With DEMO=1, starts tests/tools/demo_feed.py against that Redis
#     (DEMO_RATE entries/s, default 20), and, when node is installed, the
#     web page's server examples/web/serve.mjs (127.0.0.1, port
#     DEMO_HTTP_PORT, default 8000; 0 = any free port), printing the page's URL.
#  4. Runs the service in the foreground: $WSB_BIN (default bin/ws-broadcaster)
#     -c $CONFIG (default etc/ws-broadcaster.conf).
#
# Ctrl-C or SIGTERM stops the service, then the demo feed, the page server
# and the Redis this script started; a Redis it did not start is left alone.
set -u

cd "$(dirname "$0")/../.." || exit 1

WSB_BIN=${WSB_BIN:-bin/ws-broadcaster}
CONFIG=${CONFIG:-etc/ws-broadcaster.conf}
PY=/usr/bin/python3

say() {
    printf 'run: %s\n' "$*" >&2
}

# Print KEY<TAB>VALUE for each setting line of a KEY=VALUE file, parsed the
# way the service parses its config: '#' comment lines and blank lines
# skipped, an optional "export " prefix, spaces around key and value
# trimmed, one pair of matching surrounding quotes removed.
kv_lines() {
    awk '
        { sub(/\r$/, ""); sub(/^[ \t]+/, ""); sub(/[ \t]+$/, "") }
        $0 == "" || substr($0, 1, 1) == "#" { next }
        { sub(/^export[ \t]+/, "") }
        {
            i = index($0, "=")
            if (i == 0) next
            k = substr($0, 1, i - 1); sub(/[ \t]+$/, "", k)
            if (k !~ /^[A-Za-z_][A-Za-z0-9_]*$/) next
            v = substr($0, i + 1); sub(/^[ \t]+/, "", v)
            q = substr(v, 1, 1)
            if (length(v) >= 2 && (q == "\"" || q == "\047") && substr(v, length(v), 1) == q)
                v = substr(v, 2, length(v) - 2)
            printf "%s\t%s\n", k, v
        }' "$1"
}

# Export the pairs of .env that the environment does not already set.
load_env_file() {
    [ -f "$1" ] || return 0
    pairs=$(kv_lines "$1") || return 1
    n=0
    tab=$(printf '\t')
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        key=${line%%"$tab"*}
        value=${line#*"$tab"}
        # key is a checked identifier, so eval only ever sees a name.
        if eval "[ -z \"\${$key+set}\" ]"; then
            export "$key=$value"
            n=$((n + 1))
        fi
    done <<EOF
$pairs
EOF
    say "loaded $n setting(s) from $1"
}

# The effective value of a setting: the environment, else the config file,
# else the given default.
setting() {
    if eval "[ -n \"\${$1+set}\" ]"; then
        eval "printf '%s' \"\$$1\""
        return
    fi
    if [ -r "$CONFIG" ]; then
        found=$(kv_lines "$CONFIG" | awk -F '\t' -v k="$1" '
            $1 == k { v = substr($0, length(k) + 2); f = 1 }
            END { if (f) print v; exit !f }') && {
            printf '%s' "$found"
            return
        }
    fi
    printf '%s' "$2"
}

# Split a REDIS_URL (host:port, [v6]:port, redis://[:password@]host:port[/db],
# a socket path, unix://path) into r_sock, r_host, r_port and r_urlpass.
parse_redis_url() {
    url=$1
    r_sock="" r_host="" r_port=6379 r_urlpass=""
    case $url in
    unix://*) url=${url#unix://} ;;
    esac
    case $url in
    /* | ./*)
        r_sock=$url
        return 0
        ;;
    redis://*)
        url=${url#redis://}
        url=${url%%/*} # drop /db: PING does not need it
        case $url in
        *@*)
            cred=${url%@*}
            url=${url##*@}
            case $cred in
            *:*) r_urlpass=${cred#*:} ;;
            *) r_urlpass=$cred ;;
            esac
            ;;
        esac
        ;;
    esac
    case $url in
    \[*\]:*)
        r_host=${url%%]*}
        r_host=${r_host#[}
        r_port=${url##*]:}
        ;;
    \[*\])
        r_host=${url#[}
        r_host=${r_host%]}
        ;;
    *:*:*) r_host=$url ;; # bare IPv6 address, default port
    *:*)
        r_host=${url%:*}
        r_port=${url##*:}
        ;;
    *) r_host=$url ;;
    esac
    [ -n "$r_host" ] || r_host=localhost
    case $r_port in
    '' | *[!0-9]*)
        say "REDIS_URL '$1': bad port '$r_port'"
        return 1
        ;;
    esac
    return 0
}

redis_where() {
    if [ -n "$r_sock" ]; then
        printf 'unix socket %s' "$r_sock"
    else
        printf '%s:%s' "$r_host" "$r_port"
    fi
}

# PING the Redis at r_*: 0 = PONG, 1 = nothing answers, 2 = something
# answers but not with PONG (a wrong password, say); the reply is in ping_out.
redis_ping() {
    if [ -n "$r_sock" ]; then
        set -- -s "$r_sock"
    else
        set -- -h "$r_host" -p "$r_port"
    fi
    # The password goes through the environment, not the command line.
    ping_out=$(
        if [ -n "$r_pass" ]; then
            REDISCLI_AUTH=$r_pass
            export REDISCLI_AUTH
        else
            unset REDISCLI_AUTH
        fi
        with_timeout redis-cli "$@" PING 2>&1 </dev/null
    )
    rc=$?
    case $ping_out in
    PONG) return 0 ;;
    '' | *"Could not connect"* | *"Connection refused"* | *"No such file"*) return 1 ;;
    esac
    [ "$rc" -eq 124 ] && return 1 # timed out: treat as unreachable
    return 2
}

# Run a command, for at most 3 s when coreutils' timeout is there (a
# firewalled remote host would otherwise hang the start-up).
with_timeout() {
    if [ "$have_timeout" = 1 ]; then
        timeout 3 "$@"
    else
        "$@"
    fi
}

is_local() {
    [ -n "$r_sock" ] && return 0
    case $r_host in
    localhost | 127.0.0.1 | ::1) return 0 ;;
    esac
    return 1
}

# Replace the calling (background) subshell with a helper, so $! is the
# helper's pid.  The helper gets its own session when setsid exists, so the
# terminal's Ctrl-C reaches only the service and this script, which then stop
# the helpers in order (Redis last, after the service has let go of it).
exec_detached() {
    if command -v setsid >/dev/null 2>&1; then
        exec setsid "$@"
    fi
    exec "$@"
}

redis_tmp=""
redis_pid=""
feed_pid=""
page_pid=""
page_tmp=""
page_url=""
wsb_pid=""

# shellcheck disable=SC2317 # called from the EXIT trap
stop_pid() {
    # $1 pid, $2 name; TERM, then KILL after about 5 s.
    kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1" 2>/dev/null
    i=0
    while kill -0 "$1" 2>/dev/null && [ "$i" -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if kill -0 "$1" 2>/dev/null; then
        say "$2 (pid $1) ignored SIGTERM; killing it"
        kill -KILL "$1" 2>/dev/null
    fi
    wait "$1" 2>/dev/null
    return 0
}

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
    trap '' INT TERM HUP
    if [ -n "$wsb_pid" ]; then
        stop_pid "$wsb_pid" ws-broadcaster
    fi
    if [ -n "$feed_pid" ]; then
        stop_pid "$feed_pid" "demo feed"
        say "demo feed stopped"
    fi
    if [ -n "$page_pid" ]; then
        stop_pid "$page_pid" "page server"
    fi
    if [ -n "$page_tmp" ]; then
        rm -rf "$page_tmp"
    fi
    if [ -n "$redis_pid" ]; then
        stop_pid "$redis_pid" redis-server
        say "redis-server (pid $redis_pid) stopped"
    fi
    if [ -n "$redis_tmp" ]; then
        rm -rf "$redis_tmp"
    fi
}

start_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        say "redis-server is not installed (make deps); continuing without Redis"
        return 0
    fi
    redis_tmp=$(mktemp -d "${TMPDIR:-/tmp}/ws-broadcaster-redis.XXXXXX") || return 1
    # Settings go in a file of our own: the password stays off the command
    # line, and the file can be read back when something goes wrong.
    {
        echo "save \"\""
        echo "appendonly no"
        echo "dir $redis_tmp"
        echo "logfile $redis_tmp/redis.log"
        echo "pidfile $redis_tmp/redis.pid"
        echo "daemonize no"
        if [ -n "$r_sock" ]; then
            echo "port 0"
            echo "unixsocket $r_sock"
            echo "unixsocketperm 700"
        else
            echo "port $r_port"
            case $r_host in
            localhost) echo "bind 127.0.0.1 -::1" ;;
            *) echo "bind $r_host" ;;
            esac
        fi
        if [ -n "$r_pass" ]; then
            echo "requirepass \"$r_pass\""
        fi
    } >"$redis_tmp/redis.conf"
    chmod 600 "$redis_tmp/redis.conf"
    if [ -n "$r_sock" ]; then
        mkdir -p "$(dirname "$r_sock")"
    fi

    (exec_detached redis-server "$redis_tmp/redis.conf") >>"$redis_tmp/redis.log" 2>&1 </dev/null &
    redis_pid=$!
    i=0
    while :; do
        if redis_ping; then
            break
        fi
        if ! kill -0 "$redis_pid" 2>/dev/null; then
            wait "$redis_pid" 2>/dev/null
            say "redis-server failed to start on $(redis_where); its log:"
            tail -n 20 "$redis_tmp/redis.log" >&2
            redis_pid=""
            return 1
        fi
        i=$((i + 1))
        if [ "$i" -ge 100 ]; then
            say "redis-server (pid $redis_pid) did not answer PING within 10 s; its log:"
            tail -n 20 "$redis_tmp/redis.log" >&2
            return 1
        fi
        sleep 0.1
    done
    # The pidfile holds the real pid should setsid have had to fork.
    if [ -s "$redis_tmp/redis.pid" ]; then
        redis_pid=$(cat "$redis_tmp/redis.pid")
    fi
    say "started redis-server (pid $redis_pid) on $(redis_where), data in $redis_tmp"
}

# Start examples/web/serve.mjs in the background and wait for the line
# saying where it listens (the port may be taken, or 0 = any free one).
start_page_server() {
    page_tmp=$(mktemp -d "${TMPDIR:-/tmp}/ws-broadcaster-page.XXXXXX") || return 1
    (exec_detached node examples/web/serve.mjs --ws "ws://$base/ws") \
        >"$page_tmp/out" 2>&1 </dev/null &
    page_pid=$!
    i=0
    while [ "$i" -lt 50 ]; do
        page_url=$(sed -n 's/^demo page: //p' "$page_tmp/out")
        [ -n "$page_url" ] && return 0
        kill -0 "$page_pid" 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    say "the page server did not start: $(cat "$page_tmp/out")"
    stop_pid "$page_pid" "page server"
    page_pid=""
    return 1
}

# ---------------------------------------------------------------- main

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

load_env_file .env || exit 1

if [ ! -x "$WSB_BIN" ]; then
    say "$WSB_BIN not found or not executable; build it with 'make'"
    exit 1
fi
if [ ! -r "$CONFIG" ]; then
    say "config file $CONFIG not found (set CONFIG=path)"
    exit 1
fi

have_timeout=0
if command -v timeout >/dev/null 2>&1; then
    have_timeout=1
fi

redis_url=$(setting REDIS_URL localhost:6379)
r_pass=$(setting REDIS_PASSWORD "")
parse_redis_url "$redis_url" || exit 1
[ -n "$r_pass" ] || r_pass=$r_urlpass

if ! command -v redis-cli >/dev/null 2>&1; then
    say "redis-cli is not installed (make deps); not checking Redis at $redis_url"
else
    redis_ping
    case $? in
    0) say "Redis at $(redis_where) answers" ;;
    2) say "Redis at $(redis_where) answers, but not PONG: $ping_out" ;;
    *)
        if is_local; then
            start_redis || exit 1
        else
            say "Redis at $(redis_where) does not answer; starting anyway (the service keeps retrying)"
        fi
        ;;
    esac
fi

if [ "${DEMO:-0}" = 1 ]; then
    sports=$(setting SPORTS basketball_nba)
    sport=${sports%%,*}
    sport=$(printf '%s' "$sport" | tr -d ' \t')
    opp=$(setting OPPORTUNITIES_STREAM opportunities)
    (
        REDIS_PASSWORD=$r_pass
        export REDIS_PASSWORD
        exec_detached "$PY" tests/tools/demo_feed.py --redis-url "$redis_url" \
            --sport "${sport:-basketball_nba}" --opportunities-stream "$opp" \
            --rate "${DEMO_RATE:-20}"
    ) </dev/null &
    feed_pid=$!
fi

server_addr=$(setting SERVER_ADDR :8080)
port=${server_addr##*:}
host=${server_addr%:*}
case $host in
'' | 0.0.0.0 | '[::]' | '*') host=localhost ;;
esac
base="$host:$port"

serve_cmd="node examples/web/serve.mjs --ws ws://$base/ws"
if [ "${DEMO:-0}" = 1 ] && command -v node >/dev/null 2>&1; then
    start_page_server
fi
if [ -n "$page_url" ]; then
    page_line=$page_url
elif command -v node >/dev/null 2>&1; then
    page_line="$serve_cmd [PORT], then open the URL it prints"
else
    # The page imports the client library, which a browser loads only over HTTP.
    page_line="needs Node.js to be served (apt-get install nodejs), then: $serve_cmd
              (or without Node: examples/web/README.md)"
fi

cat >&2 <<EOF

  ws-broadcaster  config $CONFIG, Redis $redis_url
  WebSocket   ws://$base/ws
  Health      http://$base/health
  Metrics     http://$base/metrics
  Web page    $page_line
  Node client cd examples/node && npm install && node client.js ws://$base/ws
  Stop        Ctrl-C

EOF

if [ -z "$redis_pid" ] && [ -z "$feed_pid" ] && [ -z "$page_pid" ]; then
    # Nothing of ours to clean up afterwards: let the service take over.
    trap - EXIT INT TERM HUP
    exec "$WSB_BIN" -c "$CONFIG"
fi

"$WSB_BIN" -c "$CONFIG" &
wsb_pid=$!
# An asynchronous command of a non-interactive shell starts with SIGINT
# ignored, so Ctrl-C is turned into the SIGTERM the service stops on.
trap 'kill -TERM "$wsb_pid" 2>/dev/null' INT TERM HUP
while :; do
    wait "$wsb_pid"
    status=$?
    # wait also returns when a trapped signal arrives; a process that
    # still exists (perhaps as a zombie) has not been waited for yet.
    kill -0 "$wsb_pid" 2>/dev/null || break
done
wsb_pid=""
if [ "$status" -ne 0 ]; then
    say "ws-broadcaster exited with status $status"
fi
exit "$status"
