#!/bin/sh
# Bring up the whole stack on this machine, for trying it out and for
# development: installs what is missing (Debian, as root), builds the server
# in build-dev/, and runs it behind nginx on http://127.0.0.1:8080/ with
# everything (config, data, logs, sockets) in run/ at the top of the source tree.
# The landing page (contrib/www) is served at /, and a stand-in identity
# provider with demo users (contrib/idp/s4s-idp.py) runs on 127.0.0.1:9100, so
# "Log in" on http://127.0.0.1:8080/ works at once.
#
#   contrib/up.sh           start (or restart, if it is already running)
#   contrib/up.sh stop      stop gracefully (requests in progress finish)
#   contrib/up.sh status    what is running
#
# run/s4s.conf and run/nginx.conf are rewritten at every start. Put settings
# of your own (KEY=VALUE, e.g. a real identity provider's OAUTH_*) in
# run/s4s.local.conf: it is appended, so its values win; when it sets
# OAUTH_AUTHORIZE_URL the stand-in provider is not started.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
run=$top/run
port=8080
url=http://127.0.0.1:$port
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)

say() { echo "up.sh: $*"; }
die() { echo "up.sh: $*" >&2; exit 1; }

# shellcheck disable=SC2101  # (a class inside a bracket expression)
case $top in
*[[:space:]\"\'\;\$\\{}#]*)
    die "the source tree's path '$top' holds spaces or characters that nginx and the config file would misread; move it elsewhere" ;;
esac

# The server binary: build-dev/, or the top itself if someone configured there
# (autoconf refuses a second, out-of-tree build of a configured tree).
if [ -f "$top/config.status" ]; then
    builddir=$top
else
    builddir=$top/build-dev
fi
s4s=$builddir/src/s4s-fcgi

# ---------------------------------------------------------------- processes

# pid_of FILE NAME: the pid in FILE if that process is alive and is NAME
# (its command name, or its program file's name, which a rebuild marks
# " (deleted)"), not some other process that got the same pid later.
pid_of() {
    [ -s "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    case $pid in '' | *[!0-9]*) return 1 ;; esac
    alive "$pid" || return 1
    if [ -r "/proc/$pid/comm" ]; then
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || comm=""
        exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || exe=""
        exe=${exe% (deleted)}
        [ "$comm" = "$2" ] || [ "${exe##*/}" = "$2" ] || return 1
    fi
    echo "$pid"
}

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    if [ -r "/proc/$1/stat" ]; then
        state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
        [ "$state" != Z ] || return 1
    fi
    return 0
}

# newer A B: file A was changed after file B (POSIX has no test -nt).
newer() { [ -n "$(find "$1" -prune -newer "$2" 2>/dev/null)" ]; }

nginx_ctl() {
    "$NGINX" -c "$run/nginx.conf" -p "$run/" -e "$run/nginx-error.log" "$@"
}

# The logs' sizes before a start, so that a failure shows only what it wrote.
size() { if [ -f "$1" ]; then wc -c <"$1"; else echo 0; fi; }
mark_logs() {
    m_out=$(size "$run/s4s.out")
    m_log=$(size "$run/s4s.log")
    m_nginx=$(size "$run/nginx-error.log")
}
show_new() {
    [ -f "$1" ] || return 0
    new=$(tail -c +$(($2 + 1)) "$1" | tail -n "$3")
    [ -n "$new" ] || return 0
    echo "---- $1 (last lines)" >&2
    printf '%s\n' "$new" >&2
}
logtail() {
    show_new "$run/s4s.out" "${m_out:-0}" 15
    show_new "$run/s4s.log" "${m_log:-0}" 15
    show_new "$run/nginx-error.log" "${m_nginx:-0}" 5
}

# ======================================================================
# >>> EXTRAS: the stand-in identity provider and the landing page.
# extras_config appends KEY=VALUE lines to run/s4s.conf; extras_nginx prints
# extra nginx "location" blocks (the landing page in contrib/www is already
# served at / by write_nginx); extras_check runs before anything starts;
# extras_start starts helper processes (after the server and nginx are up);
# extras_stop stops them; extras_status reports on them; extras_urls prints
# lines for the summary after a start.
#
# The stand-in provider (contrib/idp/s4s-idp.py) runs on 127.0.0.1:9100 with
# demo users, unless run/s4s.local.conf names a real provider
# (OAUTH_AUTHORIZE_URL=...): then it is not started.
idp_port=9100
idp_url=http://127.0.0.1:$idp_port
idp_client_id="s4s-dev"
idp_client_secret="s4s-dev-secret"

# A real provider configured in run/s4s.local.conf replaces the stand-in.
idp_wanted() {
    ! grep -q '^[[:space:]]*OAUTH_AUTHORIZE_URL[[:space:]]*=' "$run/s4s.local.conf" 2>/dev/null
}

# idp_pid: the stand-in provider's pid if run/idp.pid names a live one.
idp_pid() {
    pid=$(pid_of "$run/idp.pid" python3) || return 1
    # pid_of knows it is python3; make sure it is this script.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 's4s-idp\.py' || return 1
    echo "$pid"
}

# The SECRET_KEY, made once and kept in run/ so that sessions survive restarts.
secret_key() {
    if [ ! -s "$run/secret_key" ]; then
        (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$run/secret_key.tmp") &&
            mv "$run/secret_key.tmp" "$run/secret_key"
    fi
    cat "$run/secret_key"
}

extras_config() {
    echo "SECRET_KEY=$(secret_key)"
    idp_wanted || return 0
    echo "# The stand-in identity provider started by up.sh (contrib/idp/s4s-idp.py)"
    echo "OAUTH_CLIENT_ID=$idp_client_id"
    echo "OAUTH_CLIENT_SECRET=$idp_client_secret"
    echo "OAUTH_AUTHORIZE_URL=$idp_url/authorize"
    echo "OAUTH_TOKEN_URL=$idp_url/token"
    echo "OAUTH_USERINFO_URL=$idp_url/userinfo"
    echo "OAUTH_REDIRECT_URI=$url/backend/authorize"
    echo "ROLE_TEACHER=lehrer"
    echo "ROLE_ADMIN=admins"
}

extras_nginx() { :; }

extras_check() {
    # A provider left over from a start whose server has since died.
    if pid=$(idp_pid); then
        extras_stop
    fi
    idp_wanted || return 0
    rc=0
    curl -s -o /dev/null --max-time 2 "$idp_url/" || rc=$?
    [ "$rc" = 7 ] || die "something else is using port $idp_port, which the stand-in identity provider needs (curl -v $idp_url/ shows what)"
}

extras_start() {
    idp_wanted || return 0
    m_idp=$(size "$run/idp.log")
    say "starting the stand-in identity provider on $idp_url/"
    nohup python3 "$top/contrib/idp/s4s-idp.py" --port "$idp_port" \
        --client-id "$idp_client_id" --client-secret "$idp_client_secret" \
        </dev/null >>"$run/idp.log" 2>&1 &
    idp_started=$!
    echo "$idp_started" >"$run/idp.pid"
    deadline=$(($(date +%s) + 10))
    until curl -fsS -o /dev/null --max-time 2 "$idp_url/_control" 2>/dev/null; do
        # (Not idp_pid: until nohup has exec'd python3 the process has another name.)
        if ! alive "$idp_started" || [ "$(date +%s)" -ge "$deadline" ]; then
            show_new "$run/idp.log" "$m_idp" 15
            (stop) >/dev/null 2>&1 || true
            die "the stand-in identity provider did not start (see $run/idp.log)"
        fi
        sleep 0.2
    done
}

extras_stop() {
    # idp_started: the one this very run started, maybe not yet exec'd.
    if pid=$(idp_pid) || { [ -n "${idp_started:-}" ] && alive "$idp_started" && pid=$idp_started; }; then
        say "stopping the stand-in identity provider (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        waited=0
        while alive "$pid"; do
            if [ "$waited" -ge 50 ]; then
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    fi
    rm -f "$run/idp.pid"
}

extras_status() {
    if ! idp_wanted; then
        echo "idp:      not used (run/s4s.local.conf names a provider)"
    elif pid=$(idp_pid); then
        echo "idp:      stand-in provider running (pid $pid) on $idp_url/, log $run/idp.log"
    else
        echo "idp:      stand-in provider not running"
        rc=3
    fi
}

extras_urls() {
    if idp_wanted; then
        cat <<EOF
  log in:    open $url/ in a browser, click "Log in" and pick a demo user:
             anna, ben (Klasse 7a), clara (Klasse 7b), lehmann (teacher), admin
  provider:  stand-in identity provider on $idp_url/  (log: $run/idp.log)
EOF
    else
        echo "  log in:    open $url/ in a browser and click \"Log in\""
    fi
}
# <<< EXTRAS
# ======================================================================

# ---------------------------------------------------------------- steps

build() {
    sh "$top/contrib/deps.sh"
    cd "$top"
    if [ ! -x configure ] || [ ! -f Makefile.in ] ||
       newer configure.ac configure || newer Makefile.am Makefile.in; then
        say "autoreconf -fi"
        autoreconf -fi
    fi
    mkdir -p "$builddir"
    cd "$builddir"
    if [ ! -f Makefile ]; then
        say "configuring in $builddir"
        "$top/configure" -q
    fi
    say "building in $builddir"
    make -s -j"$(nproc 2>/dev/null || echo 2)" || die "the build failed (see above)"
    cd "$top"
    [ -x "$s4s" ] || die "the build made no $s4s"
}

write_config() {
    mkdir -p "$run/data" "$run/nginx-tmp"
    {
        echo "# Written by contrib/up.sh at every start: edit run/s4s.local.conf instead."
        echo "DATA_DIR=$run/data"
        echo "LISTEN=unix:$run/s4s.sock"
        echo "LISTEN_MODE=0666"
        echo "LOG_FILE=$run/s4s.log"
        echo "FRONTEND_URL=$url/"
        echo "SENDFILE=x-accel-redirect"
        extras_config
        if [ -f "$run/s4s.local.conf" ]; then
            echo "# ---- from run/s4s.local.conf"
            cat "$run/s4s.local.conf"
        fi
    } >"$run/s4s.conf.tmp"
    mv "$run/s4s.conf.tmp" "$run/s4s.conf"
}

write_nginx() {
    user_line=""
    [ "$(id -u)" != 0 ] || user_line="user root;"
    mime=""
    [ ! -f /etc/nginx/mime.types ] || mime="include /etc/nginx/mime.types;"
    if [ -d "$top/contrib/www" ]; then
        front="location / {
            root $top/contrib/www;
            index index.html;
            try_files \$uri \$uri/ =404;
        }"
    else
        front="location = / {
            default_type text/html;
            return 200 '<!doctype html><meta charset=utf-8><title>Scratch4School (development)</title><h1>Scratch4School backend is running</h1><p>Status: <a href=\"/backend/api/status\">/backend/api/status</a></p>';
        }"
    fi
    cat >"$run/nginx.conf.tmp" <<EOF
# Written by contrib/up.sh at every start.
$user_line
worker_processes 1;
error_log $run/nginx-error.log warn;
pid $run/nginx.pid;
events { worker_connections 1024; }
http {
    $mime
    default_type application/octet-stream;
    access_log $run/nginx-access.log;
    client_body_temp_path $run/nginx-tmp/body;
    fastcgi_temp_path $run/nginx-tmp/fastcgi;
    proxy_temp_path $run/nginx-tmp/proxy;
    uwsgi_temp_path $run/nginx-tmp/uwsgi;
    scgi_temp_path $run/nginx-tmp/scgi;
    client_max_body_size 17m;
    fastcgi_read_timeout 75s;
    server {
        listen 127.0.0.1:$port;
        location /backend/ {
            include /etc/nginx/fastcgi_params;
            fastcgi_pass unix:$run/s4s.sock;
        }
        location /_s4s_blobs/ {
            internal;
            alias $run/data/blobs/;
            # nginx keeps only a few of the server's headers after X-Accel-Redirect: restore them.
            etag off;  # the server's ETag (version or MD5) is the one clients revalidate with
            if_modified_since off;  # blob files' mtimes say nothing about a project URL's version
            add_header ETag \$upstream_http_etag;
            add_header Content-Security-Policy \$upstream_http_content_security_policy;
            add_header X-Content-Type-Options nosniff;
            add_header Access-Control-Allow-Origin \$upstream_http_access_control_allow_origin;
            add_header Access-Control-Allow-Credentials \$upstream_http_access_control_allow_credentials;
            add_header Vary \$upstream_http_vary;
        }
        # A worker killed mid-request (REQUEST_TIMEOUT) or no server running: JSON, not HTML.
        error_page 502 504 @unavailable;
        location @unavailable {
            default_type application/json;
            return 502 '{"error":"The server could not complete this request, please try again"}';
        }
        error_page 413 @too_large;
        location @too_large {
            default_type application/json;
            return 413 '{"error":"Request body too large"}';
        }
        $front
$(extras_nginx)
    }
}
EOF
    mv "$run/nginx.conf.tmp" "$run/nginx.conf"
}

stop() {
    extras_stop
    s4s_pid=$(pid_of "$run/s4s.pid" s4s-fcgi) || s4s_pid=""
    nginx_pid=$(pid_of "$run/nginx.pid" nginx) || nginx_pid=""
    if [ -z "$s4s_pid$nginx_pid" ]; then
        rm -f "$run/s4s.pid" "$run/nginx.pid"
        say "not running"
        return 0
    fi
    if [ -n "$nginx_pid" ]; then
        say "stopping nginx (pid $nginx_pid)"
        if [ -f "$run/nginx.conf" ]; then
            nginx_ctl -s quit 2>/dev/null || kill -QUIT "$nginx_pid" 2>/dev/null || true
        else
            kill -QUIT "$nginx_pid" 2>/dev/null || true
        fi
    fi
    if [ -n "$s4s_pid" ]; then
        say "stopping s4s-fcgi (pid $s4s_pid; requests in progress finish first)"
        kill -QUIT "$s4s_pid" 2>/dev/null || true
    fi
    # A worker gets STOP_TIMEOUT (30 s by default) to finish; then TERM.
    waited=0
    while { [ -n "$s4s_pid" ] && alive "$s4s_pid"; } ||
          { [ -n "$nginx_pid" ] && alive "$nginx_pid"; }; do
        if [ "$waited" = 40 ]; then
            say "still running after 40 s: sending TERM"
            for p in $s4s_pid $nginx_pid; do kill -TERM "$p" 2>/dev/null || true; done
        elif [ "$waited" = 50 ]; then
            die "could not stop pid(s) $s4s_pid $nginx_pid; see the logs in $run"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    rm -f "$run/s4s.pid" "$run/nginx.pid"
    say "stopped"
}

start() {
    build
    if pid_of "$run/s4s.pid" s4s-fcgi >/dev/null || pid_of "$run/nginx.pid" nginx >/dev/null; then
        say "already running: restarting"
        stop
    fi
    # curl's exit status 7: nothing listens there (good).
    rc=0
    curl -s -o /dev/null --max-time 2 "$url/" || rc=$?
    [ "$rc" = 7 ] || die "something else is using port $port (curl -v $url/ shows what)"
    extras_check
    write_config
    write_nginx
    # Check both configurations before starting anything.
    "$s4s" -t -c "$run/s4s.conf" >/dev/null
    nginx_ctl -t -q

    mark_logs
    say "starting s4s-fcgi"
    # It puts itself in the background; until then its errors go to s4s.out.
    if ! "$s4s" -c "$run/s4s.conf" -p "$run/s4s.pid" </dev/null >>"$run/s4s.out" 2>&1; then
        logtail
        die "s4s-fcgi did not start"
    fi
    say "starting nginx on $url/"
    if ! nginx_ctl </dev/null; then
        logtail
        (stop) >/dev/null 2>&1 || true
        die "nginx did not start (is something else using port $port?)"
    fi

    deadline=$(($(date +%s) + 15))
    until answer=$(curl -fsS --max-time 2 "$url/backend/api/status" 2>/dev/null) &&
          pid_of "$run/s4s.pid" s4s-fcgi >/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "last answer: $(curl -sS -o /dev/null -w 'HTTP %{http_code}' --max-time 2 \
                "$url/backend/api/status" 2>&1 || true)" >&2
            logtail
            (stop) >/dev/null 2>&1 || true
            die "no answer from $url/backend/api/status within 15 s"
        fi
        sleep 0.2
    done
    extras_start

    cat <<EOF

Scratch4School is up at $url/
  backend:   $url/backend/api/status  ->  $answer
  logs:      $run/s4s.log  (server)
             $run/nginx-access.log, $run/nginx-error.log
  config:    $run/s4s.conf  (add your own settings in $run/s4s.local.conf)
  data:      $run/data
EOF
    extras_urls
    cat <<EOF
  stop:      $top/contrib/up.sh stop
EOF
}

status() {
    rc=0
    if pid=$(pid_of "$run/s4s.pid" s4s-fcgi); then
        echo "s4s-fcgi: running (pid $pid), log $run/s4s.log"
    else
        echo "s4s-fcgi: not running"
        rc=3
    fi
    if pid=$(pid_of "$run/nginx.pid" nginx); then
        echo "nginx:    running (pid $pid) on $url/"
    else
        echo "nginx:    not running"
        rc=3
    fi
    if answer=$(curl -fsS --max-time 2 "$url/backend/api/status" 2>/dev/null); then
        echo "backend:  $url/backend/api/status -> $answer"
    else
        echo "backend:  no answer at $url/backend/api/status"
        rc=3
    fi
    extras_status
    return "$rc"
}

case ${1:-start} in
start | restart) start ;;
stop) stop ;;
status) status ;;
-h | --help | help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' ;;
*) echo "usage: contrib/up.sh [start | stop | status]" >&2; exit 2 ;;
esac
