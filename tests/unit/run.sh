#!/bin/sh
# Run every unit test binary given (under valgrind if VALGRIND is set), then
# print one summary line.  A binary
# that crashes or prints no summary counts as one failure, so a broken test
# can never look green.
passed=0
failed=0
for t in "$@"; do
    name=$(basename "$t")
    if [ -n "${VALGRIND:-}" ]; then
        out=$(valgrind --quiet --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=definite --show-possibly-lost=no "$t" 2>&1)
    else
        out=$("$t" 2>&1)
    fi
    rc=$?
    summary=$(printf '%s\n' "$out" | sed -n 's/^# \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' | tail -n 1)
    if [ -z "$summary" ]; then
        printf '%s\n' "$out"
        echo "FAIL $name: exited $rc without a summary"
        failed=$((failed + 1))
        continue
    fi
    p=${summary% *}
    f=${summary#* }
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        printf '%s\n' "$out" | grep -v '^ok '
        echo "FAIL $name ($p passed, $f failed, exit $rc)"
        [ "$f" -eq 0 ] && failed=$((failed + 1))
    else
        echo "ok   $name ($p passed)"
    fi
done
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
