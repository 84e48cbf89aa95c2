#!/bin/sh
# fuzz/run.sh [SECONDS] — build every libFuzzer target in fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined; the server's sources compiled
# directly, pkg-config for the libraries) into a build directory outside the
# source tree, run each for SECONDS (default 60) on a copy of its seed
# corpus (fuzz/corpus/<name>/), and print executions and crashes per target.
# Exit status 1 when any target crashed; the crashing inputs are kept in
# the build directory's crashes/ (add one to fuzz/corpus/<name>/ once fixed).
#
#   sh fuzz/run.sh            60 s per target (`make fuzz` runs this)
#   sh fuzz/run.sh 10         what CI runs
#   FUZZ_TARGETS="multipart base64" sh fuzz/run.sh 120     only some targets
#   S4S_FUZZ_BUILD=/path      the build directory (default ${TMPDIR:-/tmp}/s4s-fuzz)
#
# Reproduce a crash: $S4S_FUZZ_BUILD/bin/<name> $S4S_FUZZ_BUILD/crashes/<name>-crash-…
set -eu
seconds=${1:-60}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${S4S_FUZZ_BUILD:-${TMPDIR:-/tmp}/s4s-fuzz}
CC=${FUZZ_CC:-clang}
jobs=$(nproc 2>/dev/null || echo 2)

command -v "$CC" >/dev/null 2>&1 || {
    echo "fuzz/run.sh: $CC not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
}
pkgs="fcgi sqlite3 libpq libcjson libmagic libcrypto libcurl libzip"
pkg_cflags=$(pkg-config --cflags $pkgs)
pkg_libs=$(pkg-config --libs $pkgs)
# The library code gets coverage instrumentation (fuzzer-no-link); only the
# drivers link libFuzzer's main.
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-std=c11 -D_GNU_SOURCE -g -O1 $san -I$top/src -I$build/obj $pkg_cflags"

mkdir -p "$build/obj" "$build/bin" "$build/corpus" "$build/crashes" "$build/logs"

# ---- the server's code as one archive (everything but the two mains) ----
# Both dialects' migrations, regenerated only when they changed (keeps the .o).
embed() { # embed OUT.c [-n ARRAY] FILES…
    out=$1
    shift
    sh "$top/sql/embed-migrations.sh" "$@" >"$out.tmp"
    cmp -s "$out.tmp" "$out" 2>/dev/null || mv "$out.tmp" "$out"
    rm -f "$out.tmp"
}
embed "$build/obj/migrations_gen.c" "$top"/sql/[0-9]*.sql
embed "$build/obj/migrations_pg_gen.c" -n s4s_pg_migrations "$top"/sql/pg/[0-9]*.sql
newest_header=$(ls -t "$top"/src/*.h | head -n 1)
# The sources of src/libs4s.a as Makefile.am lists them (the server minus main.c).
srcs=$(sed -n '/^src_libs4s_a_SOURCES *=/,/[^\\]$/p' "$top/Makefile.am" | tr ' \t\\' '\n\n\n' |
    grep '^src/.*\.c$' | sed "s|^|$top/|")
srcs="$srcs $build/obj/migrations_gen.c $build/obj/migrations_pg_gen.c"
echo "fuzz: compiling the server's sources into $build/obj"
# shellcheck disable=SC2086
printf '%s\n' $srcs | xargs -P "$jobs" -I{} sh -c '
    src={}; obj="$0/obj/$(basename "$src" .c).o"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$1" -nt "$obj" ]; then
        $2 $3 -fsanitize=fuzzer-no-link -c "$src" -o "$obj" || exit 255
    fi' "$build" "$newest_header" "$CC" "$cflags"
rm -f "$build/obj/libs4s-fuzz.a"
ar rcs "$build/obj/libs4s-fuzz.a" "$build"/obj/*.o

# ---- the targets ----
targets=${FUZZ_TARGETS:-$(for f in "$top"/fuzz/*.c; do basename "$f" .c; done)}
for t in $targets; do
    echo "fuzz: building $t"
    # shellcheck disable=SC2086
    $CC $cflags -fsanitize=fuzzer -I"$top/fuzz" "$top/fuzz/$t.c" "$build/obj/libs4s-fuzz.a" \
        $pkg_libs -lm -o "$build/bin/$t"
done

# ---- run ----
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
summary=""
for t in $targets; do
    work="$build/corpus/$t"
    mkdir -p "$work"
    seeds="$top/fuzz/corpus/$t"
    [ -d "$seeds" ] || seeds=""
    rm -f "$build/crashes/$t-"*
    echo "fuzz: running $t for ${seconds}s"
    set +e
    # shellcheck disable=SC2086
    "$build/bin/$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$build/crashes/$t-" \
        "$work" $seeds >"$build/logs/$t.log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/logs/$t.log" | tail -n 1)
    crashes=$(find "$build/crashes" -name "$t-*" -type f | wc -l)
    [ "$rc" -eq 0 ] || [ "$crashes" -gt 0 ] || crashes=1 # died without an artifact
    if [ "$crashes" -gt 0 ]; then
        failed=1
        echo "fuzz: $t FAILED (exit $rc), see $build/logs/$t.log"
        grep -m 5 -E "ERROR|runtime error|fuzz property|SUMMARY" "$build/logs/$t.log" || true
    fi
    summary="$summary$(printf '%-16s %12s %8s' "$t" "${execs:-?}" "$crashes")
"
done
printf '\n%-16s %12s %8s\n' target executions crashes
printf '%s' "$summary"
exit $failed
