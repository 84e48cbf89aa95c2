#!/bin/sh
# Install the Debian packages this project builds and runs with; with --test
# also what only the test suite needs (lighttpd, spawn-fcgi, headless Chromium,
# clang for the fuzz targets, PostgreSQL for contrib/test.sh --pg).
# Installs only what is missing; safe to run again. Needs root.
set -eu
PKGS="build-essential autoconf automake libtool pkg-config
      libfcgi-dev libsqlite3-dev sqlite3 libcjson-dev libmagic-dev libssl-dev
      libcurl4-openssl-dev libzip-dev libpq-dev
      nginx-light curl python3 perl"
if [ "${1:-}" = "--test" ]; then
    PKGS="$PKGS spawn-fcgi lighttpd chromium"
    PKGS="$PKGS clang libclang-rt-14-dev" # fuzz/run.sh (libFuzzer), which CI runs
    PKGS="$PKGS clang-format cppcheck"     # the lint .ci/run starts with
    PKGS="$PKGS postgresql postgresql-client" # contrib/pg.sh's throwaway cluster, psql for t/lib
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "deps.sh: missing Debian packages:$missing (run as root to install them)" >&2
        exit 1
    fi
    echo "deps.sh: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # The packaged web servers start on port 80 at install; this project runs its own.
    for svc in nginx lighttpd; do
        if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
            systemctl stop "$svc" || true
            systemctl disable "$svc" >/dev/null 2>&1 || true
        elif [ -x "/etc/init.d/$svc" ]; then
            "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
        fi
    done
fi
