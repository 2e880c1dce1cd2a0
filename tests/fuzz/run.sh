#!/bin/sh
# Run libFuzzer harnesses, then print one summary line.
#
#   run.sh fuzz SECONDS BIN...   fuzz each BIN for SECONDS on a scratch copy of
#                                its seed corpus, build/fuzz/corpus/<name>
#   run.sh regress BIN...        run each BIN once on every committed input
#
# A harness fails if it crashes, times out, runs out of memory, or executes
# nothing, so a run that tested nothing cannot look green.  Inputs that
# crash are written to tests/fuzz/findings/<name>/ (not committed).
here=$(dirname "$0")
scratch_root=build/fuzz/corpus
findings_root=$here/findings
passed=0
failed=0

mode=$1
shift
if [ "$mode" = fuzz ]; then
    seconds=$1
    shift
elif [ "$mode" != regress ]; then
    echo "usage: $0 fuzz SECONDS BIN... | regress BIN..." >&2
    exit 2
fi

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

# The lines of a libFuzzer log that say what went wrong.
show_failure() {
    sed -n '/^note: \|property failed\|==ERROR\|runtime error\|deadly signal\|libFuzzer: /,$p' "$1" |
        grep -av '^#[0-9]' | head -n 60
}

fuzz_one() {
    bin=$1
    name=$(basename "$bin")
    seeds=$here/corpus/$name
    scratch=$scratch_root/$name
    findings=$findings_root/$name
    log=build/fuzz/$name.log
    dict=
    [ -f "$here/$name.dict" ] && dict=-dict=$here/$name.dict

    mkdir -p "$scratch" "$findings"
    [ -d "$seeds" ] && cp -R "$seeds/." "$scratch/"
    start=$(date +%s)
    "$bin" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$findings/" $dict "$scratch" >"$log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)$/\1/p' "$log" | tail -n 1)
    execs=${execs:-0}
    files=$(find "$scratch" -type f | wc -l)
    if [ "$rc" -eq 0 ] && [ "$execs" -gt 0 ]; then
        echo "ok   $name: $execs executions in ${secs}s, corpus $files inputs"
        passed=$((passed + 1))
    else
        show_failure "$log"
        input=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        echo "FAIL $name: exit $rc after $execs executions in ${secs}s; input: ${input:-none}; log: $log"
        failed=$((failed + 1))
    fi
}

# All inputs in one process; if that fails, one process per input, so that
# every crashing input is named, not only the first.
regress_one() {
    bin=$1
    name=$(basename "$bin")
    seeds=$here/corpus/$name
    log=build/fuzz/$name.regress.log
    inputs=$(find "$seeds" -type f 2>/dev/null | sort)
    want=$(printf '%s' "$inputs" | grep -c .)
    bad=

    mkdir -p build/fuzz
    # shellcheck disable=SC2086 # corpus file names hold no spaces
    "$bin" -timeout=10 -rss_limit_mb=2048 $inputs >"$log" 2>&1
    rc=$?
    ran=$(grep -ac '^Executed ' "$log")
    if [ "$rc" -ne 0 ] || [ "$ran" -ne "$want" ]; then
        : >"$log"
        for input in $inputs; do
            if ! "$bin" -timeout=10 -rss_limit_mb=2048 "$input" >"$log.one" 2>&1; then
                show_failure "$log.one"
                bad="$bad $input"
            fi
            cat "$log.one" >>"$log"
        done
        rm -f "$log.one"
        [ -n "$bad" ] || bad=" none, but exit $rc"
    fi
    if [ "$want" -gt 0 ] && [ -z "$bad" ]; then
        echo "ok   $name: $want inputs"
        passed=$((passed + 1))
    else
        echo "FAIL $name: $want inputs, crashing:${bad:- none (no inputs)}; log: $log"
        failed=$((failed + 1))
    fi
}

for bin in "$@"; do
    if [ "$mode" = fuzz ]; then
        fuzz_one "$bin"
    else
        regress_one "$bin"
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
