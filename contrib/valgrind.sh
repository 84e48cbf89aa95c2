#!/bin/sh
# contrib/valgrind.sh [OUTDIR] — run a representative part of the integration
# suite with the server under valgrind memcheck (master and every worker:
# S4S_VALGRIND=1 makes t/lib/s4s.py start the master as
#   valgrind --trace-children=yes --leak-check=full --errors-for-leak-kinds=definite
#            --error-exitcode=99 --log-file=OUTDIR/vg/vg-%p.log s4s-fcgi …),
# then scan the logs: memcheck errors and definite leaks per process, and
# requests served (from the kept stacks' access logs). Exit status 1 when
# any process had an error or a definite leak.
#
# Not part of CI (it takes several minutes). Under valgrind the tests that
# measure time or worker memory may fail an assertion; the verdict here is
# valgrind's. Uses the build in S4S_BUILDDIR (default build-test/).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${TMPDIR:-/tmp}/s4s-valgrind}
export S4S_BUILDDIR="${S4S_BUILDDIR:-$top/build-test}"
export S4S_SRCDIR="$top"
tests=${VALGRIND_TESTS:-"t/10-http.t t/40-concurrency.t t/50-login.t t/51-sessions.t t/52-teacher.t t/60-projects.t
    t/61-projects-cas.t t/70-assets.t t/71-backpack.t t/95-faults.t t/97-security.t"}

command -v valgrind >/dev/null 2>&1 || { echo "valgrind.sh: apt-get install valgrind" >&2; exit 2; }
[ -x "$S4S_BUILDDIR/src/s4s-fcgi" ] || { echo "valgrind.sh: build first ($S4S_BUILDDIR)" >&2; exit 2; }
rm -rf "$out"
mkdir -p "$out/vg" "$out/stacks"
export S4S_VALGRIND=1 S4S_VALGRIND_DIR="$out/vg" S4S_KEEP_TMP=1 TMPDIR="$out/stacks"

for t in $tests; do
    printf '%-28s ' "$t"
    start=$(date +%s)
    if python3 "$top/$t" >"$out/$(basename "$t").tap" 2>&1; then res=ok; else res="FAILED (see $out/$(basename "$t").tap)"; fi
    echo "$res  $(($(date +%s) - start)) s, $(grep -c '^ok' "$out/$(basename "$t").tap") ok, $(grep -c '^not ok' "$out/$(basename "$t").tap") not ok"
done

# ---- the verdict ----
procs=0 errors=0 leaked_procs=0 leaked_bytes=0
for f in "$out"/vg/vg-*.log; do
    [ -f "$f" ] || continue
    procs=$((procs + 1))
    e=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$f" | tail -n 1 | tr -d ,)
    d=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$f" | tail -n 1 | tr -d ,)
    errors=$((errors + ${e:-0}))
    if [ "${d:-0}" -gt 0 ]; then
        leaked_procs=$((leaked_procs + 1))
        leaked_bytes=$((leaked_bytes + d))
        echo "definite leak: $f"
    fi
    [ "${e:-0}" -eq 0 ] || echo "errors: $f"
done
requests=$(cat "$out"/stacks/*/s4s.log 2>/dev/null | grep -c ' access\[' || true)
echo
echo "valgrind: $procs processes (master and workers), $requests requests served"
echo "valgrind: $errors memcheck errors, $leaked_bytes bytes definitely lost in $leaked_procs processes"
echo "valgrind: logs in $out/vg, kept stacks in $out/stacks"
[ "$errors" -eq 0 ] && [ "$leaked_procs" -eq 0 ]
