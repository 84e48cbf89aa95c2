#!/bin/sh
# Run a command with fsync() and fdatasync() made slow (contrib/slowsync/slowsync.c),
# e.g. the test suite as a slow CI disk would run it:
#
#   sh contrib/slowsync/run.sh 10 sh contrib/test.sh
#   sh contrib/slowsync/run.sh 10 sh contrib/test.sh --pg
#
# The first argument is how many calls in a thousand stall 1.2 s (the others
# take 0–39 ms longer). The servers the command starts inherit the shim
# (nginx, s4s-fcgi, PostgreSQL), so every commit and blob fsync is slowed.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 PERMIL COMMAND [ARG...]" >&2; exit 2; }
permil=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
${CC:-cc} -std=c11 -O2 -Wall -Wextra -shared -fPIC -o "$out/slowsync.so" "$here/slowsync.c" -ldl
SLOWSYNC_PERMIL=$permil LD_PRELOAD="$out/slowsync.so${LD_PRELOAD:+:$LD_PRELOAD}" "$@"
