#!/bin/sh
# contrib/pg.sh — a throwaway PostgreSQL cluster for the test suite
# (contrib/test.sh --pg exports its URI as S4S_TEST_PG). Not for real data:
# trust authentication, 127.0.0.1 only.
#
#   sh contrib/pg.sh start DIR [PORT]  create DIR's cluster if absent, start it on
#                                      PORT (default 55432), wait until it accepts
#                                      connections, print the admin URI
#   sh contrib/pg.sh stop DIR          stop it (fast: open sessions are ended)
#   sh contrib/pg.sh status DIR        pg_ctl status (exit 3: not running)
#
# DIR holds the cluster (DIR/data), the unix socket and the server log (DIR/log).
# As root the server runs as the postgres user (PostgreSQL refuses root), so DIR is
# made the postgres user's, mode 0700.
set -eu

usage() {
    echo "usage: sh contrib/pg.sh start DIR [PORT] | stop DIR | status DIR" >&2
    exit 2
}
[ $# -ge 2 ] || usage
cmd=$1
dir=$2
port=${3:-55432}
case $port in '' | *[!0-9]*) usage ;; esac

missing() {
    echo "pg.sh: $1; install the Debian packages postgresql postgresql-client" \
        "(sh contrib/deps.sh --test does)" >&2
    exit 1
}

# A tool from PATH, else from the newest /usr/lib/postgresql/*/bin (Debian keeps
# initdb and pg_ctl there, off PATH).
pgbin() {
    if command -v "$1" >/dev/null 2>&1; then
        command -v "$1"
        return 0
    fi
    best=""
    for d in /usr/lib/postgresql/*/bin; do
        v=${d#/usr/lib/postgresql/}
        v=${v%/bin}
        case $v in '' | *[!0-9]*) continue ;; esac
        if [ -x "$d/$1" ] && { [ -z "$best" ] || [ "$v" -gt "$best" ]; }; then
            best=$v
        fi
    done
    [ -n "$best" ] || return 1
    echo "/usr/lib/postgresql/$best/bin/$1"
}

# Run a PostgreSQL tool as the user that owns the cluster.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_ctl=$(pgbin pg_ctl) || missing "pg_ctl not found"
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    missing "no postgres user (the server package creates it)"
fi

case $dir in /*) ;; *) dir=$(pwd)/$dir ;; esac
data=$dir/data
# Relative paths would be taken from the working directory, which the postgres
# user may not be allowed to enter (root's home).
cd /

# Let the postgres user pass through DIR's parents (a mktemp -d directory is
# 0700): top down, search permission only (o+x), and say so.
grant_search() {
    [ "$1" = / ] && return 0
    grant_search "$(dirname "$1")"
    if ! as_pg test -x "$1"; then
        chmod o+x "$1"
        echo "pg.sh: gave $1 search permission (o+x) for the postgres user" >&2
    fi
}

running() {
    [ -f "$data/PG_VERSION" ] && as_pg "$pg_ctl" -D "$data" status >/dev/null 2>&1
}

case $cmd in
start)
    initdb=$(pgbin initdb) || missing "initdb not found"
    pg_isready=$(pgbin pg_isready) || missing "pg_isready not found"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown postgres:postgres "$dir"
        grant_search "$(dirname "$dir")"
    fi
    chmod 0700 "$dir"
    if ! as_pg test -w "$dir/."; then
        echo "pg.sh: the postgres user cannot write to $dir" >&2
        exit 1
    fi
    if running; then
        # Already up (a second start): report the port it listens on.
        port=$(sed -n 4p "$data/postmaster.pid")
    else
        if [ ! -f "$data/PG_VERSION" ]; then
            as_pg "$initdb" -D "$data" --auth=trust -U postgres -E UTF8 --locale=C \
                >"$dir/initdb.log" 2>&1 || {
                cat "$dir/initdb.log" >&2
                exit 1
            }
            # Appended last, so these win over initdb's defaults. Many stacks at once,
            # each with a master and several workers holding a connection.
            sq=$(printf '%s' "$dir" | sed "s/'/''/g")
            cat >>"$data/postgresql.conf" <<EOF

# contrib/pg.sh: a test cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sq'
max_connections = 200
EOF
        fi
        # -w: pg_ctl waits for the server's own "ready" before returning.
        if ! as_pg "$pg_ctl" -D "$data" -l "$dir/log" -o "-p $port" -w -t 60 start >/dev/null; then
            echo "pg.sh: the server did not start; the end of $dir/log:" >&2
            tail -n 20 "$dir/log" >&2 || true
            exit 1
        fi
    fi
    # And until TCP connections are accepted, which is what the tests use.
    tries=0
    until "$pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 2; do
        tries=$((tries + 1))
        if [ "$tries" -ge 30 ]; then
            echo "pg.sh: 127.0.0.1:$port does not accept connections; see $dir/log" >&2
            exit 1
        fi
        sleep 1
    done
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    if ! running; then
        echo "pg.sh: no cluster running in $dir" >&2
        exit 0
    fi
    as_pg "$pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null
    ;;
status)
    [ -f "$data/PG_VERSION" ] || {
        echo "pg.sh: no cluster in $dir" >&2
        exit 4
    }
    as_pg "$pg_ctl" -D "$data" status
    ;;
*)
    usage
    ;;
esac
