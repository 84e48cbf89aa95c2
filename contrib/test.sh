#!/bin/sh
# The whole test suite: install what is missing, build (warnings are errors),
# run the C unit tests and the integration tests (real nginx, the real
# prefork server, real signals) under prove. With --sanitize the same suite
# runs against an ASan+UBSan build. With --pg every test stack keeps its data
# in a database of its own on a throwaway PostgreSQL cluster (contrib/pg.sh,
# in a temporary directory, on a free port; removed afterwards) instead of SQLite.
#
#   contrib/test.sh              build in build-test/ and run everything
#   contrib/test.sh --sanitize   the same with -fsanitize=address,undefined
#   contrib/test.sh --pg         the same against PostgreSQL (S4S_TEST_PG)
#   contrib/test.sh --sanitize --pg
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

sanitize=""
pg=""
for arg in "$@"; do
    case $arg in
    --sanitize) sanitize=1 ;;
    --pg) pg=1 ;;
    *)
        echo "usage: contrib/test.sh [--sanitize] [--pg]" >&2
        exit 2
        ;;
    esac
done

sh contrib/deps.sh --test

builddir=build-test
configure_flags="--enable-werror"
if [ -n "$sanitize" ]; then
    builddir=build-sanitize
    configure_flags="$configure_flags --enable-sanitizers"
    # Leak checks at exit of every worker would drown the output in libfcgi's
    # process-lifetime allocations; leaks per request are checked by the unit tests.
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
[ -x configure ] && [ configure -nt configure.ac ] && [ configure -nt Makefile.am ] || autoreconf -fi >/dev/null
mkdir -p "$builddir"
cd "$builddir"
[ -f Makefile ] && [ Makefile -nt ../Makefile.am ] || ../configure $configure_flags >/dev/null
make -s -j"$(nproc)"

if [ -n "$pg" ]; then
    # Directly under TMPDIR (not in a mktemp -d directory, which the postgres
    # user could not enter).
    pgdir=${TMPDIR:-/tmp}/s4s-pg-$$
    cleanup() {
        sh "$top/contrib/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true
        rm -rf "$pgdir"
    }
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # A port the kernel has no listener on right now.
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    S4S_TEST_PG=$(sh "$top/contrib/pg.sh" start "$pgdir" "$port")
    export S4S_TEST_PG
    echo "test.sh: PostgreSQL at $S4S_TEST_PG (cluster in $pgdir)"
fi
make -s check
