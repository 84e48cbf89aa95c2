#!/bin/sh
# The whole test suite: install what is missing, build (warnings are errors),
# run the C unit tests and the integration tests (real nginx, the real
# prefork server, real signals) under prove. With --sanitize the same suite
# runs against an ASan+UBSan build.
#
#   contrib/test.sh              build in build-test/ and run everything
#   contrib/test.sh --sanitize   the same with -fsanitize=address,undefined
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh contrib/deps.sh --test

builddir=build-test
configure_flags="--enable-werror"
if [ "${1:-}" = "--sanitize" ]; then
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
make -s check
