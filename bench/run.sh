#!/usr/bin/env bash
# Benchmark driver: for each scenario, RUNS rounds of every target in turn
# (A B C D, A B C D, ...), each run with its own redis-server and target on
# free ports.  Prints one table of medians and appends one JSON line per run
# to bench/results/<date>.jsonl.  See bench/README.md for the settings.
#
# It stops only the processes it started (by PID), also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIOS=${SCENARIOS:-"seed-1k seed-10k burst mixed ingest idle"}
TARGETS=${TARGETS:-"svc-w1 svc ceil-each ceil-coalesce"}
RUNS=${RUNS:-3}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
DRAIN=${DRAIN:-3}
PIN=${PIN:-0}
RAMP=${RAMP:-2000}
LOAD_THREADS=${LOAD_THREADS:-1}
SPORTS=${SPORTS:-basketball_nba,americanfootball_nfl,icehockey_nhl}
RESULTS_DIR=${RESULTS_DIR:-bench/results}
KEEP_TMP=${KEEP_TMP:-0}
# The probe measures what the machine can push, not a buffering policy: it
# drops a client only this far behind.
CEIL_MAX_BUFFER=${CEIL_MAX_BUFFER:-67108864}
# Extra service settings, KEY=VALUE separated by spaces (e.g. CLIENT_BUFFER=4096).
SVC_SETTINGS=${SVC_SETTINGS:-}
# Another build of the service (say, of the previous commit) for the targets
# "base" and "base-w1", measured in the same rounds as "svc" for a
# before/after comparison.
BASE_BIN=${BASE_BIN:-}
# The reconnect scenarios: a second wsb-load of RECONNECT_CLIENTS clients
# with RECONNECT_FILTER, whose clients all drop and reconnect RECONNECT_AT
# seconds into the window (default: half of it), RESUME_SHARE of them
# resuming.  The publisher makes RECONNECT_EVENTS events per sport and writes
# every key once before any client connects: 3 sports x 167 events x 5 books
# x 3 markets x 2 outcomes = 15,030 keys, 5,010 per sport.
RECONNECT_CLIENTS=${RECONNECT_CLIENTS:-1000}
RECONNECT_FILTER=${RECONNECT_FILTER:-'{"sports":["basketball_nba"]}'}
RECONNECT_EVENTS=${RECONNECT_EVENTS:-167}
RECONNECT_AT=${RECONNECT_AT:-$(awk -v d="$DURATION" 'BEGIN {print d / 2}')}
RESUME_SHARE=${RESUME_SHARE:-0.5}
# The slow scenarios: a second wsb-load of SLOW_CLIENTS clients that read at
# most SLOW_READ_RATE bytes/s each (SO_RCVBUF SLOW_RCVBUF, advertised MSS
# SLOW_MSS, 0 = the kernel's), subscribed to everything, checked against
# Redis after a drain of at most SLOW_DRAIN s that ends once they have all
# read nothing for SLOW_QUIET s.  The publisher makes SLOW_EVENTS events per
# sport: 3 sports x 2 events x 5 books x 3 markets x 2 outcomes = 180 keys,
# few enough that a conflated queue stays under CLIENT_BUFFER (256) keys.
SLOW_CLIENTS=${SLOW_CLIENTS:-100}
SLOW_READ_RATE=${SLOW_READ_RATE:-50000}
SLOW_RCVBUF=${SLOW_RCVBUF:-16384}
SLOW_MSS=${SLOW_MSS:-1460}
SLOW_EVENTS=${SLOW_EVENTS:-2}
SLOW_DRAIN=${SLOW_DRAIN:-120}
SLOW_QUIET=${SLOW_QUIET:-1}

BIN_SVC=bin/ws-broadcaster
BIN_LOAD=bin/wsb-load
BIN_PUB=bin/wsb-publish
BIN_CEIL=bin/wsb-ceiling

die() {
    echo "bench: $*" >&2
    exit 1
}

for b in "$BIN_SVC" "$BIN_LOAD" "$BIN_PUB" "$BIN_CEIL"; do
    [ -x "$b" ] || die "$b missing: run 'make all bench-tools' first"
done
command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
if [ "$PIN" = 1 ]; then
    command -v taskset >/dev/null || die "PIN=1 needs taskset (util-linux)"
    [ "$(nproc)" -ge 2 ] || die "PIN=1 needs two CPUs"
fi

# Scenario table: clients, entries/s in total, filter file ("" = all), idle.
# Override per scenario with CLIENTS_<name> / RATE_<name> (dashes as
# underscores, e.g. CLIENTS_seed_10k=5000), or for all with CLIENTS / RATE.
# board: the reconnect scenarios (prefilled board, a second wsb-load of
# reconnecting clients; storm 1 with the reconnects, 0 without).  `reconnect`
# runs both, each round: the one without is its baseline.  slow: the slow
# scenarios (SLOW_EVENTS events; slowc 1 with the slow clients, 0 without);
# `slow` runs both, each round, like `reconnect`.
scenario() {
    local name=$1 clients rate filters="" idle=0 board=0 storm=0 slow=0 slowc=0 var
    case $name in
    seed-1k) clients=1000 rate=10 ;;
    seed-10k) clients=10000 rate=10 ;;
    burst) clients=1000 rate=1000 ;;
    mixed) clients=10000 rate=1000 filters=bench/filters-mixed.txt ;;
    ingest) clients=200 rate=20000 ;;
    idle) clients=15000 rate=0 idle=1 ;;
    reconnect) clients=10000 rate=1000 filters=bench/filters-mixed.txt board=1 storm=1 ;;
    reconnect-base) clients=10000 rate=1000 filters=bench/filters-mixed.txt board=1 ;;
    slow) clients=1000 rate=1000 slow=1 slowc=1 ;;
    slow-base) clients=1000 rate=1000 slow=1 ;;
    *) die "unknown scenario '$name' (seed-1k seed-10k burst mixed ingest idle reconnect reconnect-base slow slow-base)" ;;
    esac
    # The baseline takes the settings of the scenario it is the baseline of.
    local key=${name%-base}
    var=CLIENTS_${key//-/_}
    clients=${!var:-${CLIENTS:-$clients}}
    var=RATE_${key//-/_}
    rate=${!var:-${RATE:-$rate}}
    [ "$idle" = 1 ] && rate=0
    SC_CLIENTS=$clients SC_RATE=$rate SC_FILTERS=$filters SC_IDLE=$idle
    SC_BOARD=$board SC_STORM=$storm SC_SLOW=$slow SC_SLOWC=$slowc
}

# ---- processes we own ---------------------------------------------------------

OWNED=()
TMP=$(mktemp -d "${TMPDIR:-/tmp}/wsb-bench.XXXXXX")

stop_pid() { # pid [grace seconds]
    local pid=$1 grace=${2:-10} i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "bench: pid $pid still running after ${grace}s; SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local i
    for ((i = ${#OWNED[@]} - 1; i >= 0; i--)); do
        stop_pid "${OWNED[i]}" 5
    done
    OWNED=()
    if [ "$KEEP_TMP" = 1 ]; then
        echo "bench: scratch files kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nobody listens on, below the ephemeral range the clients use.
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

# GET path from 127.0.0.1:port; prints the response (head and body).
http_get() {
    local port=$1 path=$2
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
        timeout 5 cat <&3 || true
    ) 2>/dev/null || true
}

wait_redis() {
    local port=$1 i
    for ((i = 0; i < 100; i++)); do
        if (
            exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
            printf 'PING\r\n' >&3
            read -r -t 1 line <&3 && [[ $line == +PONG* ]]
        ) 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

wait_health() {
    local port=$1 i
    for ((i = 0; i < 150; i++)); do
        if http_get "$port" /health | head -1 | grep -q ' 200'; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

# The PID and all its descendants.
tree_pids() {
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2; pids[NR] = $1 }
        END {
            keep[root] = 1; changed = 1
            while (changed) {
                changed = 0
                for (i in pids) { p = pids[i]
                    if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } }
            }
            for (p in keep) print p
        }'
}

# utime + stime of the tree, in clock ticks.
tree_cpu_ticks() {
    local total=0 pid rest
    for pid in $(tree_pids "$1"); do
        rest=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        # After "pid (comm) ", utime and stime are the 12th and 13th fields.
        total=$((total + $(awk '{print $12 + $13}' <<<"$rest")))
    done
    echo "$total"
}

# "rss_kb pss_kb hwm_kb" summed over the tree.
tree_mem_kb() {
    local pid rss=0 pss=0 hwm=0 v
    for pid in $(tree_pids "$1"); do
        v=$(awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {print r+0, h+0}' "/proc/$pid/status" 2>/dev/null) || continue
        rss=$((rss + ${v% *}))
        hwm=$((hwm + ${v#* }))
        v=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
        pss=$((pss + ${v:-0}))
    done
    echo "$rss $pss $hwm"
}

# Samples the tree's memory every 0.5 s into file until stopfile appears;
# leaves "peak_rss_kb peak_pss_kb last_hwm_kb".
mem_sampler() {
    local root=$1 out=$2 stopfile=$3 peak_rss=0 peak_pss=0 hwm=0 m r p h
    while [ ! -e "$stopfile" ] && kill -0 "$root" 2>/dev/null; do
        m=$(tree_mem_kb "$root")
        read -r r p h <<<"$m"
        ((r > peak_rss)) && peak_rss=$r
        ((p > peak_pss)) && peak_pss=$p
        ((h > 0)) && hwm=$h
        echo "$peak_rss $peak_pss $hwm" >"$out"
        sleep 0.5
    done
}

now_s() { date +%s.%N; }

# "busy softirq" clock ticks of the whole machine (all CPUs) since boot.
host_ticks() {
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9, $8; exit}' /proc/stat
}

# s as a JSON string (quotes and backslashes escaped).
json_str() {
    local v=${1//\\/\\\\}
    printf '"%s"' "${v//\"/\\\"}"
}

# Flat "key":number from a one-line JSON text.
jnum() {
    local v
    v=$(grep -o "\"$2\":[-0-9.eE+]*" <<<"$1" | head -1 | cut -d: -f2)
    echo "${v:-0}"
}

# A flat "key":{...} object (no nested braces) from a one-line JSON text, or {}.
jflat() {
    local v
    v=$(grep -o "\"$2\":{[^{}]*}" <<<"$1" | head -1)
    echo "${v#*:}" | sed 's/^$/{}/'
}

# Waits until the service's snapshot table holds at least n keys (the
# prefill went through the ingest); 1 after 30 s.
wait_snapshot_keys() {
    local port=$1 n=$2 i keys
    for ((i = 0; i < 300; i++)); do
        keys=$(jnum "$(http_get "$port" /metrics | tail -1)" keys)
        [ "${keys:-0}" -ge "$n" ] && return 0
        sleep 0.1
    done
    return 1
}

# Waits for file to appear while pid lives, at most timeout seconds.
wait_file() {
    local file=$1 pid=$2 timeout=$3 i
    for ((i = 0; i < timeout * 10; i++)); do
        [ -e "$file" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    [ -e "$file" ]
}

# ---- one run --------------------------------------------------------------------

FAILED_RUNS=0

# A run that cannot go on: say why, stop what it started, let the next run go.
fail_run() {
    local i
    echo "bench: $* -- run skipped" >&2
    for ((i = ${#OWNED[@]} - 1; i >= 0; i--)); do
        stop_pid "${OWNED[i]}" 5
    done
    OWNED=()
    FAILED_RUNS=$((FAILED_RUNS + 1))
}

TGT_PREFIX=()
GEN_PREFIX=()
if [ "$PIN" = 1 ]; then
    TGT_PREFIX=(taskset -c 0)
    GEN_PREFIX=(taskset -c 1)
fi

DATE=$(date -u +%Y-%m-%d)
mkdir -p "$RESULTS_DIR"
RESULTS="$RESULTS_DIR/$DATE.jsonl"
TSV="$TMP/runs.tsv"
: >"$TSV"
STORM_TSV="$TMP/storm.tsv"
: >"$STORM_TSV"
SLOW_TSV="$TMP/slow.tsv"
: >"$SLOW_TSV"
# The streams the slow clients' final state is checked against.
SLOW_STREAMS=$(tr ',' '\n' <<<"$SPORTS" | sed 's/^/odds.normalized./' | paste -sd, -)
HOSTDESC="$(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
CLK=$(getconf CLK_TCK)
SESSION=$(date -u +%Y%m%dT%H%M%SZ)
# Which service was measured: the commit, "+dirty" if src/ has local changes.
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$COMMIT" != unknown ] && ! git diff --quiet HEAD -- src 2>/dev/null; then
    COMMIT="$COMMIT+dirty"
fi

run_one() { # scenario target run
    local sc=$1 tgt=$2 run=$3 dir="$TMP/$1-$2-$3"
    local rport port redis_pid tgt_pid load_pid pub_pid="" sampler_pid
    local workers="" ready_timeout i cpu0 cpu1 lcpu0 lcpu1 t0 t1 hbusy0 hbusy1 hsirq0 hsirq1 metrics="" load_json pub_json="{}"
    if [ "$SC_BOARD" = 1 ] && [ "${tgt#ceil-}" != "$tgt" ]; then
        echo "bench: $sc: $tgt skipped (the probe has no snapshots and no resume)" >&2
        return 0
    fi
    if [ "$SC_SLOW" = 1 ] && [ "${tgt#ceil-}" != "$tgt" ]; then
        echo "bench: $sc: $tgt skipped (the probe does not conflate: it buffers up to CEIL_MAX_BUFFER)" >&2
        return 0
    fi
    mkdir -p "$dir"

    rport=$(free_port)
    "${GEN_PREFIX[@]}" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir" --logfile "$dir/redis.log" --maxmemory 4gb --maxmemory-policy noeviction &
    redis_pid=$!
    OWNED+=("$redis_pid")
    wait_redis "$rport" || { fail_run "redis-server did not answer on port $rport"; return 1; }

    port=$(free_port)
    case $tgt in
    svc | svc-w1 | base | base-w1 | svc-auth | svc-auth-w1)
        local bin=$BIN_SVC
        if [ "${tgt#base}" != "$tgt" ]; then
            [ -x "$BASE_BIN" ] || { fail_run "target $tgt needs BASE_BIN (an executable)"; return 1; }
            bin=$BASE_BIN
        fi
        workers=$([ "${tgt%-w1}" != "$tgt" ] && echo 1 || echo auto)
        local auth_lines=""
        if [ "${tgt#svc-auth}" != "$tgt" ]; then
            # AUTH=required, every client with a token; half of them "basic"
            # (the service encodes each entry twice: full and basic).
            head -c 48 /dev/urandom | base64 -w0 >"$dir/hs256.secret"
            if ! /usr/bin/python3 -c 'import sys, time, jwt
key = open(sys.argv[1]).read().strip()
exp = int(time.time()) + 24 * 3600
for fields in ("full", "basic"):
    print(jwt.encode({"sub": "bench-" + fields, "exp": exp, "opportunities": True,
                      "fields": fields}, key, algorithm="HS256"))' "$dir/hs256.secret" >"$dir/tokens"; then
                fail_run "cannot make tokens (python3-jwt)"
                return 1
            fi
            auth_lines="AUTH=required
AUTH_HS256_SECRET_FILE=$dir/hs256.secret"
        fi
        cat >"$dir/ws-broadcaster.conf" <<EOF
SERVER_ADDR=127.0.0.1:$port
REDIS_URL=127.0.0.1:$rport
SPORTS=$SPORTS
CONSUMER_ID=bench-$SESSION
WORKERS=$workers
LOG_LEVEL=warn
MAX_CLIENTS_PER_IP=1000000
MAX_CLIENTS=1000000
RATE_LIMIT=1000000
RATE_BURST=1000000
$auth_lines
EOF
        for kv in $SVC_SETTINGS; do echo "$kv"; done >>"$dir/ws-broadcaster.conf"
        "${TGT_PREFIX[@]}" "$bin" -c "$dir/ws-broadcaster.conf" >"$dir/target.log" 2>&1 &
        ;;
    ceil-each | ceil-coalesce)
        "${TGT_PREFIX[@]}" "$BIN_CEIL" --listen "127.0.0.1:$port" --redis "127.0.0.1:$rport" \
            --sports "$SPORTS" --mode "${tgt#ceil-}" --max-buffer "$CEIL_MAX_BUFFER" --json "$dir/ceiling.json" >"$dir/target.log" 2>&1 &
        ;;
    *)
        fail_run "unknown target '$tgt' (svc-w1 svc svc-auth-w1 svc-auth base-w1 base ceil-each ceil-coalesce)"
        return 1
        ;;
    esac
    tgt_pid=$!
    OWNED+=("$tgt_pid")
    if ! wait_health "$port"; then
        fail_run "$tgt did not become healthy on port $port: $(tail -3 "$dir/target.log" 2>/dev/null)"
        return 1
    fi
    sleep 0.5 # let every worker settle
    case $tgt in svc | base | svc-auth) workers=$(($(tree_pids "$tgt_pid" | wc -l) - 2)) ;; esac
    read -r base_rss _ _ <<<"$(tree_mem_kb "$tgt_pid")"

    local pub_events=() rload_pid="" rload_json=null prefill_json=null rcpu0=0 rcpu1=0 rload_cpu=0
    local sload_pid="" sload_json=null scpu0=0 scpu1=0 sload_cpu=0 sendq="0 0"
    [ "$SC_SLOW" = 1 ] && pub_events=(--events "$SLOW_EVENTS")
    if [ "$SC_BOARD" = 1 ]; then
        # Every key once, before any client: the board the reconnecting
        # clients load is complete from the start.
        pub_events=(--events "$RECONNECT_EVENTS")
        if ! "${GEN_PREFIX[@]}" "$BIN_PUB" --redis "127.0.0.1:$rport" --sports "$SPORTS" \
            "${pub_events[@]}" --prefill --json "$dir/prefill.json" --label "$sc/$tgt/$run" -q \
            >"$dir/prefill.out" 2>&1; then
            fail_run "prefill failed: $(tail -3 "$dir/prefill.out" 2>/dev/null)"
            return 1
        fi
        prefill_json=$(tail -1 "$dir/prefill.json")
        if ! wait_snapshot_keys "$port" "$(jnum "$prefill_json" prefilled)"; then
            fail_run "the service's snapshot table did not reach $(jnum "$prefill_json" prefilled) keys"
            return 1
        fi
    fi

    local load_args=(-u "ws://127.0.0.1:$port/ws" -c "$SC_CLIENTS" -t "$LOAD_THREADS" -r "$RAMP"
        --warmup "$WARMUP" --duration "$DURATION" --drain "$DRAIN" --ready-file "$dir/ready"
        --json "$dir/load.json" --label "$sc/$tgt/$run" -q)
    [ -n "$SC_FILTERS" ] && load_args+=(-f "$SC_FILTERS")
    [ "$SC_IDLE" = 1 ] && load_args+=(--idle)
    # With a board, the steady clients take no snapshot (10,000 of them,
    # 1,650 keys each on average, would be 7 GB of setup): live updates only.
    # Both wsb-loads start their clocks when the go file appears.
    [ "$SC_BOARD" = 1 ] && load_args+=(--no-snapshot --go-file "$dir/go")
    [ "$SC_SLOW" = 1 ] && load_args+=(--go-file "$dir/go")
    [ -s "$dir/tokens" ] && load_args+=(--tokens "$dir/tokens")
    "${GEN_PREFIX[@]}" "$BIN_LOAD" "${load_args[@]}" >"$dir/load.out" 2>&1 &
    load_pid=$!
    OWNED+=("$load_pid")
    ready_timeout=$((SC_CLIENTS / RAMP + 60))
    if ! wait_file "$dir/ready" "$load_pid" "$ready_timeout"; then
        fail_run "wsb-load never got ready: $(tail -3 "$dir/load.out" 2>/dev/null)"
        return 1
    fi
    if [ "$SC_BOARD" = 1 ]; then
        printf '%s\n' "$RECONNECT_FILTER" >"$dir/reconnect-filter.txt"
        local rload_args=(-u "ws://127.0.0.1:$port/ws" -c "$RECONNECT_CLIENTS" -r "$RAMP"
            -f "$dir/reconnect-filter.txt" --board --warmup "$WARMUP" --duration "$DURATION"
            --drain "$DRAIN" --go-file "$dir/go" --ready-file "$dir/rready"
            --json "$dir/rload.json" --label "$sc/$tgt/$run/reconnecting" -q)
        [ "$SC_STORM" = 1 ] && rload_args+=(--reconnect-at "$RECONNECT_AT" --resume-share "$RESUME_SHARE")
        "${GEN_PREFIX[@]}" "$BIN_LOAD" "${rload_args[@]}" >"$dir/rload.out" 2>&1 &
        rload_pid=$!
        OWNED+=("$rload_pid")
        if ! wait_file "$dir/rready" "$rload_pid" $((RECONNECT_CLIENTS / RAMP + 60)); then
            fail_run "the reconnecting wsb-load never got ready: $(tail -3 "$dir/rload.out" 2>/dev/null)"
            return 1
        fi
        touch "$dir/go"
    fi
    if [ "$SC_SLOW" = 1 ]; then
        if [ "$SC_SLOWC" = 1 ]; then
            # Its own process: its paced reading never delays the fast
            # clients' thread, and theirs never eats its budget.
            "${GEN_PREFIX[@]}" "$BIN_LOAD" -u "ws://127.0.0.1:$port/ws" -c "$SLOW_CLIENTS" -r "$RAMP" \
                --read-rate "$SLOW_READ_RATE" --rcvbuf "$SLOW_RCVBUF" --mss "$SLOW_MSS" \
                --final-check "127.0.0.1:$rport" --final-streams "$SLOW_STREAMS" \
                --warmup "$WARMUP" --duration "$DURATION" --drain "$SLOW_DRAIN" \
                --drain-quiet "$SLOW_QUIET" --go-file "$dir/go" --ready-file "$dir/sready" \
                --json "$dir/sload.json" --label "$sc/$tgt/$run/slow" -q >"$dir/sload.out" 2>&1 &
            sload_pid=$!
            OWNED+=("$sload_pid")
            if ! wait_file "$dir/sready" "$sload_pid" $((SLOW_CLIENTS / RAMP + 60)); then
                fail_run "the slow wsb-load never got ready: $(tail -3 "$dir/sload.out" 2>/dev/null)"
                return 1
            fi
        fi
        touch "$dir/go"
    fi

    mem_sampler "$tgt_pid" "$dir/mem" "$dir/mem.stop" &
    sampler_pid=$!
    OWNED+=("$sampler_pid")

    if [ "$SC_IDLE" != 1 ]; then
        "${GEN_PREFIX[@]}" "$BIN_PUB" --redis "127.0.0.1:$rport" --rate "$SC_RATE" \
            --duration "$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN {print w + d}')" \
            --sports "$SPORTS" "${pub_events[@]}" --json "$dir/publish.json" --label "$sc/$tgt/$run" -q \
            >"$dir/publish.out" 2>&1 &
        pub_pid=$!
        OWNED+=("$pub_pid")
        sleep "$WARMUP"
    fi
    # CPU of the target over the measured window only.
    cpu0=$(tree_cpu_ticks "$tgt_pid")
    lcpu0=$(tree_cpu_ticks "$load_pid")
    [ -n "$rload_pid" ] && rcpu0=$(tree_cpu_ticks "$rload_pid")
    [ -n "$sload_pid" ] && scpu0=$(tree_cpu_ticks "$sload_pid")
    read -r hbusy0 hsirq0 <<<"$(host_ticks)"
    t0=$(now_s)
    sleep "$DURATION"
    cpu1=$(tree_cpu_ticks "$tgt_pid")
    lcpu1=$(tree_cpu_ticks "$load_pid")
    [ -n "$rload_pid" ] && rcpu1=$(tree_cpu_ticks "$rload_pid")
    [ -n "$sload_pid" ] && scpu1=$(tree_cpu_ticks "$sload_pid")
    # What waits for the slow clients in the target's kernel, beyond any
    # conflation: the send queues of its SLOW_CLIENTS fullest sockets at the
    # end of the window (the fast clients' are near empty), median and max.
    if [ -n "$sload_pid" ] && command -v ss >/dev/null; then
        sendq=$(ss -tnH state established "( sport = :$port )" 2>/dev/null | awk '{print $2}' |
            sort -rn | head -n "$SLOW_CLIENTS" |
            awk '{a[NR] = $1} END {if (NR == 0) print "0 0"; else print a[int((NR + 1) / 2)], a[1]}')
    fi
    read -r hbusy1 hsirq1 <<<"$(host_ticks)"
    t1=$(now_s)
    [ -n "$pub_pid" ] && { wait "$pub_pid" || echo "bench: wsb-publish failed, see $dir/publish.out" >&2; }
    wait "$load_pid" || echo "bench: wsb-load exited non-zero, see $dir/load.out" >&2
    if [ -n "$rload_pid" ]; then
        wait "$rload_pid" || echo "bench: the reconnecting wsb-load exited non-zero, see $dir/rload.out" >&2
    fi
    # The slow clients read their backlog to the end, then compare with Redis.
    if [ -n "$sload_pid" ]; then
        wait "$sload_pid" || echo "bench: the slow wsb-load exited non-zero, see $dir/sload.out" >&2
    fi
    case $tgt in svc* | base*) metrics=$(http_get "$port" /metrics | tail -1) ;; esac
    [[ $metrics == "{"*"}" ]] || metrics=""
    touch "$dir/mem.stop"
    wait "$sampler_pid" 2>/dev/null || true
    stop_pid "$tgt_pid" 10
    stop_pid "$redis_pid" 10
    OWNED=()

    load_json=$(tail -1 "$dir/load.json" 2>/dev/null || echo '{}')
    [ -s "$dir/publish.json" ] && pub_json=$(tail -1 "$dir/publish.json")
    [ -s "$dir/ceiling.json" ] && metrics=$(tail -1 "$dir/ceiling.json")
    [ -s "$dir/rload.json" ] && rload_json=$(tail -1 "$dir/rload.json")
    [ -s "$dir/sload.json" ] && sload_json=$(tail -1 "$dir/sload.json")
    local peak_rss peak_pss hwm cpu_per_s load_cpu host_busy host_sirq rss_mb pss_mb subscribed published expected ratio_recv
    read -r peak_rss peak_pss hwm <<<"$(cat "$dir/mem" 2>/dev/null || echo "0 0 0")"
    cpu_per_s=$(awk -v a="$cpu0" -v b="$cpu1" -v t0="$t0" -v t1="$t1" -v k="$CLK" \
        'BEGIN {printf "%.3f", (b - a) / k / (t1 - t0)}')
    # The generator's own CPU: near LOAD_THREADS s/s, the run measured wsb-load.
    load_cpu=$(awk -v a="$lcpu0" -v b="$lcpu1" -v t0="$t0" -v t1="$t1" -v k="$CLK" \
        'BEGIN {printf "%.3f", (b - a) / k / (t1 - t0)}')
    # The whole machine: other processes and softirq work (loopback TCP) that
    # no process is charged for.  Near the CPU count, the machine was full.
    host_busy=$(awk -v a="$hbusy0" -v b="$hbusy1" -v t0="$t0" -v t1="$t1" -v k="$CLK" \
        'BEGIN {printf "%.2f", (b - a) / k / (t1 - t0)}')
    host_sirq=$(awk -v a="$hsirq0" -v b="$hsirq1" -v t0="$t0" -v t1="$t1" -v k="$CLK" \
        'BEGIN {printf "%.2f", (b - a) / k / (t1 - t0)}')
    rss_mb=$(awk -v k="$peak_rss" 'BEGIN {printf "%.1f", k / 1024}')
    pss_mb=$(awk -v k="$peak_pss" 'BEGIN {printf "%.1f", k / 1024}')
    subscribed=$(jnum "$load_json" subscribed)
    published=$(jnum "$pub_json" published)
    # Share of the offered deliveries that arrived, for subscribe-all scenarios.
    ratio_recv=null
    if [ -z "$SC_FILTERS" ] && [ "$SC_IDLE" != 1 ] && [ "$published" != 0 ]; then
        expected=$((published * subscribed))
        ratio_recv=$(awk -v d="$(jnum "$load_json" deliveries_total)" -v e="$expected" \
            'BEGIN {printf "%.4f", (e > 0 ? d / e : 0)}')
    fi
    [ -n "$rload_pid" ] && rload_cpu=$(awk -v a="$rcpu0" -v b="$rcpu1" -v t0="$t0" -v t1="$t1" \
        -v k="$CLK" 'BEGIN {printf "%.3f", (b - a) / k / (t1 - t0)}')
    # null if it had ended before the window did (all its clients cut):
    # a process that is gone has no CPU time to read.
    [ -n "$sload_pid" ] && sload_cpu=$(awk -v a="$scpu0" -v b="$scpu1" -v t0="$t0" -v t1="$t1" \
        -v k="$CLK" 'BEGIN {if (b < a) print "null"; else printf "%.3f", (b - a) / k / (t1 - t0)}')
    local per_conn_kb
    per_conn_kb=$(awk -v p="$peak_rss" -v b="$base_rss" -v n="$subscribed" \
        'BEGIN {printf "%.2f", (n > 0 ? (p - b) / n : 0)}')

    {
        printf '{"session":"%s","date":"%s","commit":"%s","machine":"%s","scenario":"%s","target":"%s",' \
            "$SESSION" "$DATE" "$COMMIT" "$HOSTDESC" "$sc" "$tgt"
        printf '"run":%d,"clients":%d,"rate":%s,"filters":"%s","pin":%d,"workers":"%s",' \
            "$run" "$SC_CLIENTS" "$SC_RATE" "$SC_FILTERS" "$PIN" "$workers"
        printf '"warmup_s":%s,"duration_s":%s,"load_threads":%d,' "$WARMUP" "$DURATION" "$LOAD_THREADS"
        printf '"host_busy_cpus":%s,"host_softirq_cpus":%s,' "$host_busy" "$host_sirq"
        printf '"cpu_s_per_s":%s,"load_cpu_s_per_s":%s,"rss_peak_mb":%s,"pss_peak_mb":%s,"rss_base_mb":%.1f,' \
            "$cpu_per_s" "$load_cpu" "$rss_mb" "$pss_mb" "$(awk -v k="$base_rss" 'BEGIN {print k / 1024}')"
        printf '"hwm_sum_mb":%.1f,"rss_per_conn_kb":%s,"received_ratio":%s,' \
            "$(awk -v k="$hwm" 'BEGIN {print k / 1024}')" "$per_conn_kb" "$ratio_recv"
        if [ "$SC_BOARD" = 1 ]; then
            printf '"events":%d,"reconnect_clients":%d,"reconnect_filter":%s,"resume_share":%s,' \
                "$RECONNECT_EVENTS" "$RECONNECT_CLIENTS" "$(json_str "$RECONNECT_FILTER")" "$RESUME_SHARE"
            printf '"reconnect_at_s":%s,"reconnect_load_cpu_s_per_s":%s,' \
                "$([ "$SC_STORM" = 1 ] && echo "$RECONNECT_AT" || echo null)" "$rload_cpu"
            printf '"prefill":%s,"reconnect_load":%s,' "$prefill_json" "$rload_json"
        fi
        if [ "$SC_SLOW" = 1 ]; then
            printf '"events":%d,"slow_clients":%d,"slow_read_rate":%d,"slow_rcvbuf":%d,"slow_mss":%d,' \
                "$SLOW_EVENTS" "$([ "$SC_SLOWC" = 1 ] && echo "$SLOW_CLIENTS" || echo 0)" \
                "$SLOW_READ_RATE" "$SLOW_RCVBUF" "$SLOW_MSS"
            printf '"slow_sendq_median_bytes":%d,"slow_sendq_max_bytes":%d,' ${sendq}
            printf '"slow_load_cpu_s_per_s":%s,"slow_load":%s,' "$sload_cpu" "$sload_json"
        fi
        printf '"load":%s,"publish":%s,"metrics":%s}\n' "$load_json" "$pub_json" "${metrics:-null}"
    } >>"$RESULTS"

    if [ "$SC_BOARD" = 1 ]; then
        # The reconnecting clients: the storm's own figures (zeros without one).
        local rc reasons
        rc=$(grep -o '"reconnect":{.*' <<<"$rload_json" || true)
        reasons=$(jflat "$rc" reasons)
        printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
            "$sc" "$tgt" "$run" "$(jnum "$load_json" lat_p99_us)" "$SC_STORM" \
            "$(jnum "$rc" board_p50_us)" "$(jnum "$rc" board_p99_us)" "$(jnum "$rc" resumed_p99_us)" \
            "$(jnum "$rc" snapshot_p99_us)" "$(jnum "$rc" ack_p99_us)" "$(jnum "$rc" resumed_true)" \
            "$(jnum "$rc" resumed_false)" "$(jnum "$rc" fresh)" "$(jnum "$rc" failed)" \
            "$(jnum "$rc" closed_by_server)" "$(jnum "$rc" incomplete)" "$(jnum "$rc" storm_s)" \
            "${reasons// /}" "$(jflat "$rload_json" close_codes)" "$(jflat "$load_json" close_codes)" \
            "$rload_cpu" "$(jnum "$rload_json" failed)" "$(jnum "$rc" complete_after_window)" >>"$STORM_TSV"
        if [ "$SC_STORM" = 1 ]; then
            printf 'bench: %-14s %-13s run %d: reconnecting %s: board p50 %s us p99 %s us, resumed %s/%s, fresh %s, reasons %s, failed %s, closed %s, incomplete %s, complete only after the window %s\n' \
                "$sc" "$tgt" "$run" "$(jnum "$rc" dropped)" "$(jnum "$rc" board_p50_us)" \
                "$(jnum "$rc" board_p99_us)" "$(jnum "$rc" resumed_true)" "$(jnum "$rc" resume_asked)" \
                "$(jnum "$rc" fresh)" "$reasons" "$(jnum "$rc" failed)" "$(jnum "$rc" closed_by_server)" \
                "$(jnum "$rc" incomplete)" "$(jnum "$rc" complete_after_window)" >&2
        fi
    fi

    if [ "$SC_SLOW" = 1 ]; then
        # Fast clients (load.json) and, with them, the slow ones (sload.json).
        local fin m=$metrics
        fin=$(grep -o '"final":{.*' <<<"$sload_json" || true)
        printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
            "$sc" "$tgt" "$run" "$(jnum "$load_json" lat_p99_us)" "$SC_SLOWC" \
            "$(jnum "$sload_json" subscribed)" "$(jnum "$sload_json" closed_by_server)" \
            "$(jnum "$fin" checked)" "$(jnum "$fin" all_right)" "$(jnum "$fin" correct)" \
            "$(jnum "$fin" stale)" "$(jnum "$fin" wrong)" "$(jnum "$fin" missing)" \
            "$(jnum "$sload_json" age_p50_us)" "$(jnum "$sload_json" age_p99_us)" \
            "$(jnum "$sload_json" conflated_rcvd)" "$(jnum "$m" conflated_updates)" \
            "$(jnum "$m" slow_disconnects_keys)" "$(jnum "$m" slow_disconnects_bytes)" \
            "$(jnum "$m" slow_disconnects_lag)" "$(jnum "$m" slow_disconnects_send_timeout)" \
            "$(jnum "$fin" drain_s)" "$(jflat "$sload_json" close_codes)" \
            "$(jnum "$load_json" conflated_rcvd)" "$(jnum "$sload_json" key_regress)" \
            "$(jnum "$fin" truth_keys)" "$sload_cpu" "$(jnum "$sload_json" age_max_us)" \
            ${sendq} >>"$SLOW_TSV"
        if [ "$SC_SLOWC" = 1 ]; then
            printf 'bench: %-14s %-13s run %d: slow clients %s: cut %s %s; final state: %s of %s checked all right (keys right %s stale %s wrong %s missing %s of %s each) after a drain of %s s; age p50 %s us p99 %s us; conflated %s received\n' \
                "$sc" "$tgt" "$run" "$(jnum "$sload_json" subscribed)" "$(jnum "$sload_json" closed_by_server)" \
                "$(jflat "$sload_json" close_codes)" "$(jnum "$fin" all_right)" "$(jnum "$fin" checked)" \
                "$(jnum "$fin" correct)" "$(jnum "$fin" stale)" "$(jnum "$fin" wrong)" "$(jnum "$fin" missing)" \
                "$(jnum "$fin" truth_keys)" "$(jnum "$fin" drain_s)" "$(jnum "$sload_json" age_p50_us)" \
                "$(jnum "$sload_json" age_p99_us)" "$(jnum "$sload_json" conflated_rcvd)" >&2
        fi
    fi

    printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sc" "$tgt" "$run" \
        "$(jnum "$load_json" deliveries_per_s)" "$(jnum "$load_json" lat_p50_us)" \
        "$(jnum "$load_json" lat_p90_us)" "$(jnum "$load_json" lat_p99_us)" \
        "$(jnum "$load_json" lat_p999_us)" "$(jnum "$load_json" lat_max_us)" "$cpu_per_s" \
        "$rss_mb" "$(jnum "$load_json" failed)" "$(jnum "$load_json" closed_by_server)" \
        "$ratio_recv" "$per_conn_kb" "$load_cpu" "$host_busy" >>"$TSV"
    printf 'bench: %-14s %-13s run %d: %s deliveries/s, p99 %s us, cpu %s s/s (generator %s, machine %s), rss %s MB, failed %s, closed %s, received %s\n' \
        "$sc" "$tgt" "$run" "$(jnum "$load_json" deliveries_per_s)" "$(jnum "$load_json" lat_p99_us)" \
        "$cpu_per_s" "$load_cpu" "$host_busy" "$rss_mb" "$(jnum "$load_json" failed)" "$(jnum "$load_json" closed_by_server)" \
        "$ratio_recv" >&2
    [ "$KEEP_TMP" = 1 ] || rm -rf "$dir"
}

# ---- main -----------------------------------------------------------------------

echo "bench: scenarios: $SCENARIOS; targets: $TARGETS; runs: $RUNS; warmup ${WARMUP}s," \
    "window ${DURATION}s; PIN=$PIN; service at $COMMIT; $HOSTDESC" >&2
for sc in $SCENARIOS; do
    # reconnect runs with its baseline, in the same rounds.
    variants=$sc
    [ "$sc" = reconnect ] && variants="reconnect reconnect-base"
    [ "$sc" = slow ] && variants="slow slow-base"
    scenario "$sc"
    echo "bench: $sc: $SC_CLIENTS clients, $SC_RATE entries/s${SC_FILTERS:+, filters $SC_FILTERS}" >&2
    if [ "$SC_BOARD" = 1 ]; then
        echo "bench: $sc: and $RECONNECT_CLIENTS clients with $RECONNECT_FILTER," \
            "$RECONNECT_EVENTS events per sport (board prefilled), steady clients without" \
            "snapshot; storm at ${RECONNECT_AT}s into the window, resume share $RESUME_SHARE" >&2
    fi
    if [ "$SC_SLOW" = 1 ]; then
        echo "bench: $sc: and $SLOW_CLIENTS clients reading $SLOW_READ_RATE B/s each (rcvbuf" \
            "$SLOW_RCVBUF, mss $SLOW_MSS), $SLOW_EVENTS events per sport; baseline slow-base" \
            "without them" >&2
    fi
    for ((run = 1; run <= RUNS; run++)); do
        for tgt in $TARGETS; do
            for v in $variants; do
                scenario "$v"
                run_one "$v" "$tgt" "$run" || true
            done
        done
    done
done

# median_of(arr, n): the median of arr[1..n] (numbers); ms(us), microseconds as milliseconds.  The
# report programs below all use them.
AWK_STATS='
function median_of(arr, n,    i, j, t, a) {
    for (i = 1; i <= n; i++) a[i] = arr[i] + 0
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function ms(us) { return sprintf("%.2f", us / 1000) }
'
# Medians per scenario and target, then the service against the ceilings.
awk -F'\t' "$AWK_STATS"'
function median(key, col,    n, i, a) {
    n = cnt[key]
    for (i = 1; i <= n; i++) a[i] = val[key, i, col]
    return median_of(a, n)
}
function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
{
    key = $1 SUBSEP $2
    if (!(key in cnt)) { order[++nkeys] = key; sc_of[key] = $1; tg_of[key] = $2 }
    n = ++cnt[key]
    for (c = 4; c <= 17; c++) val[key, n, c] = $c
    recv[key] = $14
}
END {
    printf "%-14s %-13s %4s %11s %8s %8s %8s %8s %9s %6s %6s %6s %8s %6s %6s %6s %11s %11s\n",
        "scenario", "target", "runs", "deliv/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms",
        "max ms", "cpu/s", "gen/s", "host/s", "rss MB", "fail", "closed", "recv", "vs each", "vs coalesce"
    for (i = 1; i <= nkeys; i++) {
        key = order[i]
        for (c = 4; c <= 17; c++) med[key, c] = median(key, c)
    }
    for (i = 1; i <= nkeys; i++) {
        key = order[i]; sc = sc_of[key]; tg = tg_of[key]
        ve = "-"; vc = "-"
        if (tg ~ /^(svc|base)/) {
            e = sc SUBSEP "ceil-each"; k = sc SUBSEP "ceil-coalesce"
            if (e in cnt) ve = ratio(med[key, 4], med[e, 4]) "/" ratio(med[key, 7], med[e, 7])
            if (k in cnt) vc = ratio(med[key, 4], med[k, 4]) "/" ratio(med[key, 7], med[k, 7])
        }
        printf "%-14s %-13s %4d %11.0f %8s %8s %8s %8s %9s %6.2f %6.2f %6.2f %8.1f %6d %6d %6s %11s %11s\n",
            sc, tg, cnt[key], med[key, 4], ms(med[key, 5]), ms(med[key, 6]), ms(med[key, 7]),
            ms(med[key, 8]), ms(med[key, 9]), med[key, 10], med[key, 16], med[key, 17], med[key, 11],
            med[key, 12],
            med[key, 13], (recv[key] == "null" ? "-" : sprintf("%.3f", med[key, 14])), ve, vc
    }
    print "cpu/s: target CPU seconds per second in the window (all its processes); gen/s: the same"
    print "for wsb-load (near its thread count: the generator, not the target, was the limit);"
    print "host/s: busy CPUs of the whole machine (all processes, softirq included; 2.00 = full)."
    print "recv: deliveries received / (entries published x clients), subscribe-all scenarios only."
    print "vs each / vs coalesce: service / ceiling, deliveries-per-second ratio / p99 ratio (medians)."
}' "$TSV"

# The reconnect storm, per target: medians of the storm runs, and the steady
# clients' p99 against the runs without a storm.
if [ -s "$STORM_TSV" ]; then
    echo
    awk -F'\t' "$AWK_STATS"'
{
    tg = $2
    if (!(tg in seen)) { seen[tg] = 1; order[++ntg] = tg }
    if ($5 == 1) {
        n = ++ns[tg]
        sp99[tg, n] = $4; bp50[tg, n] = $6; bp99[tg, n] = $7; rp99[tg, n] = $8; np99[tg, n] = $9
        ap99[tg, n] = $10; rtrue[tg, n] = $11; rfalse[tg, n] = $12; fresh[tg, n] = $13
        fail[tg, n] = $14; closed[tg, n] = $15; inc[tg, n] = $16; storm[tg, n] = $17
        late[tg, n] = $23
        notes[tg] = notes[tg] sprintf("  %s run %d: reasons %s, close codes (reconnecting) %s, (steady) %s\n", tg, $3, $18, $19, $20)
    } else {
        n = ++nb[tg]; base99[tg, n] = $4
    }
}
END {
    printf "%-13s %4s %11s %11s %6s %8s %8s %8s %8s %8s %7s %7s %6s %6s %6s %6s %6s %8s\n",
        "target", "runs", "steady p99", "base p99", "ratio", "board50", "board99", "res p99",
        "snap p99", "ack p99", "res ok", "res no", "fresh", "fail", "closed", "incomp", "late",
        "storm s"
    for (i = 1; i <= ntg; i++) {
        tg = order[i]; n = ns[tg] + 0; m = nb[tg] + 0
        for (k = 1; k <= m; k++) b[k] = base99[tg, k]
        bm = m > 0 ? median_of(b, m) : 0
        if (n == 0) {
            printf "%-13s %4d %11s %11s %6s\n", tg, 0, "-", (m > 0 ? ms(bm) : "-"), "-"
            continue
        }
        for (k = 1; k <= n; k++) {
            v1[k] = sp99[tg, k]; v2[k] = bp50[tg, k]; v3[k] = bp99[tg, k]; v4[k] = rp99[tg, k]
            v5[k] = np99[tg, k]; v6[k] = ap99[tg, k]; v7[k] = rtrue[tg, k]; v8[k] = rfalse[tg, k]
            v9[k] = fresh[tg, k]; v10[k] = fail[tg, k]; v11[k] = closed[tg, k]; v12[k] = inc[tg, k]
            v13[k] = storm[tg, k]; v14[k] = late[tg, k]
        }
        sm = median_of(v1, n)
        printf "%-13s %4d %11s %11s %6s %8s %8s %8s %8s %8s %7d %7d %6d %6d %6d %6d %6d %8.3f\n",
            tg, n, ms(sm), (m > 0 ? ms(bm) : "-"), (m > 0 && bm > 0 ? sprintf("%.2f", sm / bm) : "-"),
            ms(median_of(v2, n)), ms(median_of(v3, n)), ms(median_of(v4, n)), ms(median_of(v5, n)), ms(median_of(v6, n)),
            median_of(v7, n), median_of(v8, n), median_of(v9, n), median_of(v10, n), median_of(v11, n), median_of(v12, n), median_of(v14, n),
            median_of(v13, n)
    }
    print "steady p99: delivery p99 of the steady clients (ms) in the storm runs; base p99: the same"
    print "in the runs without a storm (reconnect-base); ratio = steady / base (medians).  board50,"
    print "board99: from the socket() of each reconnect to a complete board (ms), every client;"
    print "res p99 / snap p99: those that resumed / took a snapshot; ack p99: to the subscribe ack."
    print "res ok / res no: resumed true / false; fresh: fresh subscribes; fail: reconnects never"
    print "acked; closed: closed by the server after reconnecting; incomp: no complete board by the"
    print "end; late: complete only after the window, once the publisher had stopped (then board99"
    print "is bounded by the run, not measured); storm s: from the drop to the last complete board."
    print "Per run:"
    for (i = 1; i <= ntg; i++) printf "%s", notes[order[i]]
}' "$STORM_TSV"
fi
# Slow clients, per target: medians of the runs with them, the fast clients'
# p99 against the runs without (slow-base).
if [ -s "$SLOW_TSV" ]; then
    echo
    awk -F'\t' "$AWK_STATS"'
{
    tg = $2
    if (!(tg in seen)) { seen[tg] = 1; order[++ntg] = tg }
    if ($5 == 1) {
        n = ++ns[tg]
        for (c = 4; c <= 30; c++) if (c != 23) v[tg, n, c] = $c
        notes[tg] = notes[tg] sprintf("  %s run %d: slow clients %s, close codes %s, checked %s, all right %s, truth %s keys, key id regressions %s, fast clients conflated %s, slow wsb-load cpu %s s/s, age max %s ms, kernel send queue median %.0f KB max %.0f KB\n",
            tg, $3, $6, $23, $8, $9, $26, $25, $24, $27, ms($28), $29 / 1024, $30 / 1024)
    } else {
        n = ++nb[tg]; base99[tg, n] = $4
    }
}
END {
    printf "%-13s %4s %9s %9s %6s %5s %5s %11s %7s %6s %6s %7s %8s %8s %9s %9s %5s %5s %5s %5s %7s %6s\n",
        "target", "runs", "fast p99", "base p99", "ratio", "slow", "cut", "all right", "right",
        "stale", "wrong", "missing", "age p50", "age p99", "confl rx", "svc confl", "keys", "bytes",
        "lag", "sndto", "drain s", "kq KB"
    for (i = 1; i <= ntg; i++) {
        tg = order[i]; n = ns[tg] + 0; m = nb[tg] + 0
        for (k = 1; k <= m; k++) b[k] = base99[tg, k]
        bm = m > 0 ? median_of(b, m) : 0
        if (n == 0) {
            printf "%-13s %4d %9s %9s\n", tg, 0, "-", (m > 0 ? ms(bm) : "-")
            continue
        }
        for (c = 4; c <= 29; c++) {
            if (c == 23) continue
            for (k = 1; k <= n; k++) a[k] = v[tg, k, c]
            md[c] = median_of(a, n)
        }
        printf "%-13s %4d %9s %9s %6s %5d %5d %11s %7d %6d %6d %7d %8s %8s %9d %9d %5d %5d %5d %5d %7.2f %6.0f\n",
            tg, n, ms(md[4]), (m > 0 ? ms(bm) : "-"), (m > 0 && bm > 0 ? sprintf("%.2f", md[4] / bm) : "-"),
            md[6], md[7], sprintf("%d/%d", md[9], md[8]), md[10], md[11], md[12], md[13],
            ms(md[14]), ms(md[15]), md[16], md[17], md[18], md[19], md[20], md[21], md[22],
            md[29] / 1024
    }
    print "fast p99: delivery p99 of the fast clients (ms) in the runs with slow clients; base p99:"
    print "the same in the runs without them (slow-base); ratio = fast / base (medians).  slow: slow"
    print "clients subscribed; cut: closed by the server; all right: clients with every key right /"
    print "clients checked (connected to the end); right, stale, wrong, missing: keys summed over the"
    print "checked clients, against the last entry per key in Redis after the drain; age: receive"
    print "time - bench_ts of every update the slow clients got, window start to end of drain (ms);"
    print "confl rx: updates marked conflated they received; svc confl: conflated_updates of the"
    print "service (replaced, never sent); keys, bytes, lag, sndto: its slow_disconnects_keys,"
    print "_bytes, _lag, _send_timeout; drain s: window end to the slow clients going quiet; kq KB:"
    print "median over the slow clients of the target kernel send queue at the window end (KB)."
    print "Per run:"
    for (i = 1; i <= ntg; i++) printf "%s", notes[order[i]]
}' "$SLOW_TSV"
fi
echo "bench: one JSON line per run appended to $RESULTS" >&2
if [ "$FAILED_RUNS" -gt 0 ]; then
    echo "bench: $FAILED_RUNS run(s) failed and are missing from the table" >&2
    exit 1
fi
