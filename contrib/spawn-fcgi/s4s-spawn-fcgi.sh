#!/bin/sh
# Start s4s-fcgi under spawn-fcgi: spawn-fcgi creates the socket, switches to
# the web server's user and runs s4s-fcgi with the socket on fd 0. Run as root.
#
#   contrib/spawn-fcgi/s4s-spawn-fcgi.sh
#
# which is this command (the same can go straight into a runit/daemontools
# "run" script or an init script):
#
#   spawn-fcgi -n -s /run/s4s/s4s.sock -M 0660 -U www-data -G www-data \
#       -u www-data -g www-data -- /usr/bin/s4s-fcgi -c /etc/s4s/s4s.conf
#
# /etc/s4s/s4s.conf must not set LISTEN (nor RUN_AS): the server then uses
# the socket on fd 0 and stays in the foreground by itself, so -n keeps the
# whole thing in the foreground for a supervisor (and Ctrl-C stops it).
# LISTEN_OWNER and LISTEN_MODE are spawn-fcgi's -U/-G/-M here.
# Stop: SIGQUIT to s4s-fcgi (graceful), SIGTERM (fast). Reload: SIGHUP.
#
# The settings below can be changed from the environment, e.g.
#   S4S_USER=s4s S4S_GROUP=www-data contrib/spawn-fcgi/s4s-spawn-fcgi.sh
set -eu

S4S_BIN=${S4S_BIN:-/usr/bin/s4s-fcgi}
S4S_CONF=${S4S_CONF:-/etc/s4s/s4s.conf}
S4S_SOCKET=${S4S_SOCKET:-/run/s4s/s4s.sock}
S4S_USER=${S4S_USER:-www-data}           # the server runs as this user
S4S_GROUP=${S4S_GROUP:-www-data}
S4S_WEB_USER=${S4S_WEB_USER:-www-data}   # the web server: owns the socket
S4S_WEB_GROUP=${S4S_WEB_GROUP:-www-data}

if [ "$(id -u)" != 0 ]; then
    echo "$0: run as root (spawn-fcgi switches to $S4S_USER itself)" >&2
    exit 1
fi
# Catch a bad setting now, with a clear message, rather than in a log.
"$S4S_BIN" -t -c "$S4S_CONF" >/dev/null
# A non-empty LISTEN= line (or environment variable) would make the server
# bind its own socket and ignore spawn-fcgi's.
listen_set="^[[:space:]]*(export[[:space:]]+)?LISTEN[[:space:]]*=[[:space:]]*([^[:space:]#\"']|[\"'][^\"'])"
if [ -n "${LISTEN:-}" ] || grep -Eq "$listen_set" "$S4S_CONF"; then
    echo "$0: LISTEN is set (in $S4S_CONF or the environment); remove it to use spawn-fcgi's socket" >&2
    exit 1
fi

install -d -o "$S4S_USER" -g "$S4S_GROUP" -m 0755 "$(dirname "$S4S_SOCKET")"

exec spawn-fcgi -n -s "$S4S_SOCKET" -M 0660 \
    -U "$S4S_WEB_USER" -G "$S4S_WEB_GROUP" \
    -u "$S4S_USER" -g "$S4S_GROUP" \
    -- "$S4S_BIN" -c "$S4S_CONF"
