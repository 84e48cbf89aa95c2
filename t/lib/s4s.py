"""Integration-test harness: TAP output, and a real stack on loopback.

A Stack is a temporary directory holding a config file, a data directory,
an nginx configuration and logs; start() launches the real s4s-fcgi master
(foreground) on a unix socket and a real nginx in front of it on a free
loopback port. Tests talk HTTP to nginx only, as the frontend does.
Standard library only: these run on a fresh Debian with python3.

PostgreSQL mode: when S4S_TEST_PG holds the admin URI of a running cluster
(contrib/pg.sh, contrib/test.sh --pg), every Stack creates a database of its
own, points DATABASE_URI at it and drops it when stopped; db_rows() then
talks to it through psql.
"""
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

SRCDIR = os.environ.get("S4S_SRCDIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.environ.get("S4S_BUILDDIR") or SRCDIR
S4S_FCGI = os.path.join(BUILDDIR, "src", "s4s-fcgi")
S4S_ADMIN = os.path.join(BUILDDIR, "src", "s4s-admin")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
IDP = os.path.join(SRCDIR, "contrib", "idp", "s4s-idp.py")
OAUTH_CLIENT_ID = "s4s-test"
OAUTH_CLIENT_SECRET = "s4s-test-secret"
# The admin URI of a throwaway PostgreSQL cluster, or None: SQLite.
PG = os.environ.get("S4S_TEST_PG")


# ---------------------------------------------------------------- TAP
class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, diag=None):
        self.n += 1
        if not cond:
            self.failed += 1
        print(("ok" if cond else "not ok") + " %d - %s" % (self.n, name), flush=True)
        if not cond:
            # On stderr, as Test::More does: prove shows it even when not verbose,
            # so a CI log says what failed, not only its number.
            print("#   Failed test %d - %s" % (self.n, name), file=sys.stderr, flush=True)
            for line in ([] if diag is None else str(diag).splitlines()[:40]):
                print("#   " + line, file=sys.stderr, flush=True)
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got:  %r\nwant: %r" % (got, want))

    def skip(self, name, reason):
        """A check that has no meaning in this configuration (e.g. a SQLite
        file when the database is PostgreSQL): counted, reported, not run."""
        self.n += 1
        print("ok %d - %s # skip %s" % (self.n, name, reason), flush=True)

    def diag(self, msg):
        for line in str(msg).splitlines():
            print("# " + line, flush=True)

    def done(self):
        print("1..%d" % self.n, flush=True)
        sys.exit(1 if self.failed else 0)


# ---------------------------------------------------------------- HTTP
class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        try:
            return json.loads(self.body.decode("utf-8"))
        except Exception:
            return None

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:200])


def request(port, method, path, body=None, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.getheaders(), data)
    finally:
        conn.close()


def multipart(fields=None, files=None, boundary=None):
    """Build a multipart/form-data body. files: {name: (filename, bytes, type)}."""
    boundary = boundary or "----s4stest" + uuid.uuid4().hex
    out = []
    for k, v in (fields or {}).items():
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n" % (boundary, k)).encode())
        out.append(v.encode() if isinstance(v, str) else v)
        out.append(b"\r\n")
    for k, (fn, data, ctype) in (files or {}).items():
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: %s\r\n\r\n" % (boundary, k, fn, ctype)).encode())
        out.append(data)
        out.append(b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def files_in(d):
    """Every file below d, sorted (to compare blob and temp directories)."""
    out = []
    for root, _, names in os.walk(d):
        out += [os.path.join(root, n) for n in names]
    return sorted(out)


# ---------------------------------------------------------------- the stack
NGINX_CONF = """
{user_line}
worker_processes 1;
error_log {dir}/nginx-error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    log_format timed '$remote_addr [$time_local] "$request" $status $body_bytes_sent rt=$request_time';
    access_log {dir}/nginx-access.log timed;
    client_body_temp_path {dir}/nginx-tmp/body;
    fastcgi_temp_path {dir}/nginx-tmp/fastcgi;
    proxy_temp_path {dir}/nginx-tmp/proxy;
    uwsgi_temp_path {dir}/nginx-tmp/uwsgi;
    scgi_temp_path {dir}/nginx-tmp/scgi;
    client_max_body_size {nginx_body_limit};
    fastcgi_read_timeout 120s;
    upstream s4s {{ server {upstream}; }}
    server {{
        listen 127.0.0.1:{port};
        location /backend/ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_pass s4s;
        }}
        location /_s4s_blobs/ {{
            internal;
            alias {data}/blobs/;
            # nginx keeps only a few of the server's headers after X-Accel-Redirect: restore them.
            etag off;  # the server's ETag (version or MD5) is the one clients revalidate with
            if_modified_since off;  # blob files' mtimes say nothing about a project URL's version
            add_header ETag $upstream_http_etag;
            add_header Content-Security-Policy $upstream_http_content_security_policy;
            add_header X-Content-Type-Options nosniff;
            add_header Access-Control-Allow-Origin $upstream_http_access_control_allow_origin;
            add_header Access-Control-Allow-Credentials $upstream_http_access_control_allow_credentials;
            add_header Vary $upstream_http_vary;
        }}
        location = /nginx-ok {{ return 200 "ok"; }}
        error_page 502 504 @unavailable;
        location @unavailable {{
            default_type application/json;
            return 502 '{{"error":"The server could not complete this request, please try again"}}';
        }}
        error_page 413 @too_large;
        location @too_large {{
            default_type application/json;
            return 413 '{{"error":"Request body too large"}}';
        }}
    }}
    # The same backend seen from a non-loopback client address (for /status access checks).
    server {{
        listen 127.0.0.1:{ext_port};
        location /backend/ {{
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param HTTP_AUTHORIZATION $http_authorization;
            fastcgi_param REMOTE_ADDR 203.0.113.9;
            fastcgi_pass s4s;
        }}
    }}
}}
"""


class Stack:
    def __init__(self, workers=2, config=None, env=None, tcp=False, idp=True):
        self.dir = tempfile.mkdtemp(prefix="s4s-test-")
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "s4s.sock")
        self.port = free_port()
        self.ext_port = free_port()
        self.tcp_port = free_port() if tcp else None
        self.workers = workers
        self.conf_path = os.path.join(self.dir, "s4s.conf")
        self.log_path = os.path.join(self.dir, "s4s.log")
        self.config = {
            "DATA_DIR": self.data,
            "LISTEN": ("127.0.0.1:%d" % self.tcp_port) if tcp else ("unix:" + self.sock),
            "LISTEN_MODE": "0666",
            "WORKERS": str(workers),
            "LOG_FILE": self.log_path,
            "LOG_LEVEL": "info",
            "FRONTEND_URL": "http://127.0.0.1:%d/" % self.port,
            "REQUEST_TIMEOUT": "30",
            "STOP_TIMEOUT": "10",
        }
        self.idp_port = free_port() if idp else None
        self.idp = None
        if idp:
            idp_url = "http://127.0.0.1:%d" % self.idp_port
            self.config.update({
                "OAUTH_CLIENT_ID": OAUTH_CLIENT_ID,
                "OAUTH_CLIENT_SECRET": OAUTH_CLIENT_SECRET,
                "OAUTH_AUTHORIZE_URL": idp_url + "/authorize",
                "OAUTH_TOKEN_URL": idp_url + "/token",
                "OAUTH_USERINFO_URL": idp_url + "/userinfo",
                "OAUTH_REDIRECT_URI": "http://127.0.0.1:%d/backend/authorize" % self.port,
                "ROLE_TEACHER": "lehrer",
                "ROLE_ADMIN": "admins",
                "SECRET_KEY": "test-secret-key-not-for-production",
            })
        self.config.update(config or {})
        # PostgreSQL mode: a fresh database per stack, unless the test names one.
        self.pg_db = None
        self.pg_uri = None
        if PG and "DATABASE_URI" not in (config or {}):
            self.pg_db = "s4s_t_" + secrets.token_hex(8)
            pg_exec(PG, "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
                    % self.pg_db)
            self.pg_uri = pg_database_uri(PG, self.pg_db)
            self.config["DATABASE_URI"] = self.pg_uri
        self.env = dict(os.environ)
        self.env["S4S_TEST_ROUTES"] = "1"
        self.env.update(env or {})
        self.master = None
        self.nginx = None

    # -- files
    def write_config(self):
        with open(self.conf_path, "w") as f:
            for k, v in self.config.items():
                f.write("%s=%s\n" % (k, v))

    def write_nginx(self, nginx_body_limit="64m"):
        os.makedirs(os.path.join(self.dir, "nginx-tmp"), exist_ok=True)
        upstream = ("127.0.0.1:%d" % self.tcp_port) if self.tcp_port else ("unix:" + self.sock)
        # More servers in the upstream block (t/98: a second instance on its own socket).
        for extra in getattr(self, "extra_upstreams", ()):
            upstream += "; server " + extra
        conf = NGINX_CONF.format(dir=self.dir, port=self.port, ext_port=self.ext_port,
                                 upstream=upstream, data=self.data,
                                 nginx_body_limit=nginx_body_limit,
                                 user_line="user root;" if os.geteuid() == 0 else "")
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return path

    # -- processes
    def start(self, wait=True):
        self.write_config()
        if self.idp_port:
            self.start_idp()
        self.start_master()
        self.start_nginx()
        if wait:
            self.wait_ready()
        return self

    def start_master(self, extra_args=()):
        cmd = [S4S_FCGI, "-F", "-c", self.conf_path] + list(extra_args)
        if os.environ.get("S4S_VALGRIND") == "1":  # contrib/valgrind.sh: memcheck on master and workers
            cmd = ["valgrind", "--trace-children=yes", "--leak-check=full", "--errors-for-leak-kinds=definite",
                   "--error-exitcode=99",
                   "--log-file=%s/vg-%%p.log" % os.environ.get("S4S_VALGRIND_DIR", self.dir)] + cmd
        self.master = subprocess.Popen(cmd,
                                       env=self.env, stdin=subprocess.DEVNULL,
                                       stdout=open(os.path.join(self.dir, "master.out"), "ab"),
                                       stderr=subprocess.STDOUT)

    def start_idp(self):
        self.idp = subprocess.Popen([sys.executable, IDP, "--port", str(self.idp_port),
                                     "--client-id", OAUTH_CLIENT_ID, "--client-secret", OAUTH_CLIENT_SECRET],
                                    stdin=subprocess.DEVNULL,
                                    stdout=open(os.path.join(self.dir, "idp.out"), "ab"),
                                    stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                request(self.idp_port, "GET", "/_control", timeout=1)
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("stand-in identity provider did not start")

    def idp_control(self, **kw):
        r = request(self.idp_port, "POST", "/_control", body=json.dumps(kw).encode(),
                    headers={"Content-Type": "application/json"})
        return r.json()

    def login_flow(self, user):
        """The browser's round trip: /login → provider → /authorize. Returns the
        final redirect's Location (FRONTEND_URL?session_id=… or ?error=…)."""
        r = self.get("/backend/login")
        if r.status != 302:
            raise RuntimeError("/login answered %r" % r)
        loc = r.header("Location")
        cookie = r.header("Set-Cookie").split(";")[0]
        u = urllib.parse.urlsplit(loc)
        r = request(u.port, "GET", u.path + "?" + u.query + "&login_hint=" + urllib.parse.quote(user))
        if r.status != 302:
            raise RuntimeError("provider answered %r" % r)
        back = urllib.parse.urlsplit(r.header("Location"))
        r = self.get(back.path + "?" + back.query, headers={"Cookie": cookie})
        if r.status != 302:
            raise RuntimeError("/authorize answered %r" % r)
        return r.header("Location")

    def login(self, user):
        """Log a demo (or _control-added) user in; returns the session token."""
        loc = self.login_flow(user)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)
        if "session_id" not in q:
            raise RuntimeError("login of %s failed: %s" % (user, loc))
        return q["session_id"][0]

    def auth(self, token):
        return {"X-Session-ID": token}

    def start_nginx(self):
        conf = self.write_nginx()
        self.nginx = subprocess.Popen([NGINX, "-c", conf, "-p", self.dir, "-g", "daemon off;"],
                                      stdin=subprocess.DEVNULL,
                                      stdout=open(os.path.join(self.dir, "nginx.out"), "ab"),
                                      stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=15):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                r = self.get("/backend/api/status", timeout=2)
                if r.status == 200:
                    st = self.status()
                    if st and sum(1 for w in st["workers"] if w["state"] in ("idle", "busy")) >= self.workers:
                        return
                last = r
            except Exception as e:  # not up yet
                last = e
            time.sleep(0.05)
        raise RuntimeError("stack did not come up: %r\n%s" % (last, self.logs()))

    def status(self):
        r = self.get("/backend/status")
        return r.json() if r.status == 200 else None

    def worker_pids(self, states=("idle", "busy")):
        st = self.status()
        return sorted(w["pid"] for w in st["workers"] if w["state"] in states)

    def get(self, path, **kw):
        return request(self.port, "GET", path, **kw)

    def req(self, method, path, body=None, headers=None, **kw):
        return request(self.port, method, path, body=body, headers=headers, **kw)

    def signal(self, sig):
        self.master.send_signal(sig)

    def logs(self):
        out = []
        for name in ("s4s.log", "master.out", "nginx-error.log"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out.append("== %s ==\n%s" % (name, f.read()[-4000:]))
        return "\n".join(out)

    def log_text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def children_of(self, pid):
        """Live child pids of pid and their states, from /proc."""
        kids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except OSError:
                continue
            rest = stat[stat.rfind(")") + 2:].split()
            state, ppid = rest[0], int(rest[1])
            if ppid == pid:
                kids.append((int(d), state))
        return kids

    def stop(self):
        for p, sig in ((self.nginx, signal.SIGQUIT), (self.master, signal.SIGTERM), (self.idp, signal.SIGTERM)):
            if p and p.poll() is None:
                p.send_signal(sig)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        report = self.sanitizer_reports()
        if os.environ.get("S4S_KEEP_TMP") or report:
            print("# kept " + self.dir)
            if self.pg_db:
                print("# kept database " + self.pg_uri)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.drop_database()
        if report:
            raise RuntimeError("sanitizer report in the server's output:\n" + report)

    def drop_database(self):
        """PostgreSQL mode: drop the stack's database (sessions still on it are ended)."""
        if not self.pg_db:
            return
        try:
            pg_exec(PG, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.pg_db)
            self.pg_db = None
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            print("# could not drop database %s: %s" % (self.pg_db, str(e).replace("\n", " ")), flush=True)

    def psql(self, sql):
        """Run sql (any number of statements) on the stack's PostgreSQL database
        with psql; returns psql's unaligned, tuples-only output."""
        if not self.pg_uri:
            raise RuntimeError("psql: the stack is not in PostgreSQL mode (S4S_TEST_PG unset)")
        return pg_exec(self.pg_uri, sql)

    def sanitizer_reports(self):
        """ASan/UBSan findings the server (or a worker) wrote to its logs."""
        found = []
        for name in ("s4s.log", "master.out"):
            p = os.path.join(self.dir, name)
            if not os.path.exists(p):
                continue
            with open(p, errors="replace") as f:
                for line in f:
                    if "AddressSanitizer" in line or "runtime error:" in line or "LeakSanitizer" in line:
                        found.append(name + ": " + line.rstrip())
        return "\n".join(found[:20])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is not None:
            print("# stack logs:\n# " + self.logs().replace("\n", "\n# "))
        self.stop()


def parallel(n, fn):
    """Run fn(i) in n threads at once; return the results in order."""
    results = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# ---------------------------------------------------------------- login & sessions (t/5x tests)
def db_rows(s, sql, args=()):
    """Run one statement (? placeholders) on the stack's database, committed;
    returns its rows as a list of tuples, as sqlite3's fetchall() does. In
    PostgreSQL mode through psql (see pg_rows)."""
    if getattr(s, "pg_uri", None):
        return pg_rows(s.pg_uri, sql, args)
    import sqlite3
    conn = sqlite3.connect(os.path.join(s.data, "main.db"), timeout=10)
    try:
        with conn:
            return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def db_value(s, sql, args=()):
    rows = db_rows(s, sql, args)
    return rows[0][0] if rows else None


# What the server's writes and a login touch: PostgreSQL's EXCLUSIVE mode blocks
# every write to them and lets plain reads through, as a writer holding an
# SQLite database in WAL mode does.
PG_LOCKED = ("users", "groups", "user_groups", "oauth_sessions", "projects", "project_versions",
             "project_groups", "assets", "backpack_items", "session_project_versions", "conflict_copies")


def lock_database(s):
    """Another process takes the database's write lock and holds it until the
    returned function is called: BEGIN EXCLUSIVE on main.db, or in PostgreSQL
    mode a psql session's LOCK TABLE (it waits, untimed, for the server's
    transactions in flight; its locks are granted when this returns)."""
    if not s.pg_uri:
        c = sqlite3.connect(os.path.join(s.data, "main.db"), isolation_level=None, timeout=10)
        c.execute("BEGIN EXCLUSIVE")

        def release_sqlite():
            c.execute("ROLLBACK")
            c.close()
        return release_sqlite
    p = subprocess.Popen([_psql_path(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", s.pg_uri],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    p.stdin.write(("BEGIN;\nLOCK TABLE %s IN EXCLUSIVE MODE;\n" % ", ".join(PG_LOCKED)).encode())
    p.stdin.flush()

    def release_pg():
        try:
            p.stdin.write(b"ROLLBACK;\n")
            p.stdin.close()
        except BrokenPipeError:
            pass  # it has ended already: its exit status says how
        err = p.stderr.read().decode()
        if p.wait(timeout=30) != 0:
            raise RuntimeError("the locking psql session failed: " + err)
    deadline = time.time() + 30
    held = 0
    while held != len(PG_LOCKED):
        if p.poll() is not None or time.time() > deadline:
            p.kill()
            err = p.communicate()[1].decode()
            raise RuntimeError("the locking psql session did not get its locks (%d held): %s" % (held, err))
        time.sleep(0.05)
        held = db_value(s, "SELECT count(*) FROM pg_locks WHERE locktype = 'relation' AND mode = 'ExclusiveLock' "
                           "AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
    return release_pg


# ---------------------------------------------------------------- PostgreSQL mode (S4S_TEST_PG)
_PSQL = []


def _psql_path():
    """psql from the newest /usr/lib/postgresql/N/bin, else from PATH. Debian's
    /usr/bin/psql is a Perl wrapper that costs ~35 ms a call."""
    if not _PSQL:
        best = None
        root = "/usr/lib/postgresql"
        for d in os.listdir(root) if os.path.isdir(root) else []:
            p = os.path.join(root, d, "bin", "psql")
            if d.isdigit() and os.access(p, os.X_OK) and (best is None or int(d) > best[0]):
                best = (int(d), p)
        found = best[1] if best else shutil.which("psql")
        if not found:
            raise RuntimeError("psql not found: install the Debian package postgresql-client")
        _PSQL.append(found)
    return _PSQL[0]


def pg_database_uri(admin_uri, dbname):
    """admin_uri with its database replaced by dbname (user, host, port and query kept)."""
    u = urllib.parse.urlsplit(admin_uri)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))


def pg_exec(uri, sql, timeout=120):
    """Run sql (fed on stdin: no argument length limit) with psql on uri, stopping
    at the first error; returns the unaligned, tuples-only output. An error
    raises RuntimeError with psql's message."""
    env = dict(os.environ)
    env.update(PGCLIENTENCODING="UTF8", PGTZ="UTC", PGCONNECT_TIMEOUT="10")
    # pg_literal's quoting assumes backslashes are plain characters in '…'.
    env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c standard_conforming_strings=on").strip()
    p = subprocess.run([_psql_path(), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", uri, "-f", "-"],
                       input=sql.encode("utf-8"), capture_output=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("psql failed (exit %d): %s\n-- the SQL: %s"
                           % (p.returncode, p.stderr.decode("utf-8", "replace").strip(), sql[:2000]))
    return p.stdout.decode("utf-8")


def pg_literal(v):
    """v as a PostgreSQL literal, for the ? placeholders of db_rows."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        # Untyped, so it fits a BOOLEAN column and an INTEGER one alike (sqlite3 binds 1/0).
        return "'1'" if v else "'0'"
    if isinstance(v, int):
        return "(%d)" % v if v < 0 else "%d" % v  # parenthesised: "x - -1" would start a comment
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return "'%s'::float8" % ("NaN" if v != v else "Infinity" if v > 0 else "-Infinity")
        return "(%r)" % v if v < 0 else "%r" % v
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "'\\x%s'::bytea" % bytes(v).hex()
    if isinstance(v, str):
        if "\0" in v:
            raise ValueError("PostgreSQL text cannot hold NUL characters")
        return "'" + v.replace("'", "''") + "'"
    raise TypeError("no PostgreSQL literal for %r" % type(v).__name__)


# Where a piece of SQL that is not plain code starts, and how it ends.
_SQL_QUOTED = re.compile(r"""[eE]'|'|"|--|/\*|\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$|\?""")


def pg_bind(sql, args):
    """sql with each ? placeholder (outside literals, quoted identifiers and
    comments) replaced by the literal of the next argument. Returns the bound
    text and the code only (literals and comments blanked, for keyword tests)."""
    out, code, i, n, used = [], [], 0, len(sql), 0
    while True:
        m = _SQL_QUOTED.search(sql, i)
        if not m:
            out.append(sql[i:])
            code.append(sql[i:])
            break
        start, tok = m.start(), m.group()
        if tok[0] in "eE" and start > 0 and (sql[start - 1].isalnum() or sql[start - 1] in "_$"):
            # The end of an identifier such as "name'": only the quote starts a literal.
            start, tok = start + 1, "'"
        out.append(sql[i:start])
        code.append(sql[i:start])
        if tok == "?":
            if used >= len(args):
                raise ValueError("db_rows: more ? placeholders than the %d arguments" % len(args))
            lit = pg_literal(args[used])
            used += 1
            out.append(lit)
            code.append(" " * len(lit))
            i = start + 1
            continue
        if tok.startswith("$") and start > 0 and (sql[start - 1].isalnum() or sql[start - 1] == "_"):
            out.append(tok[0])  # a $ inside an identifier, not a dollar quote
            code.append(tok[0])
            i = start + 1
            continue
        j = start + len(tok)
        if tok in ("'", "E'", "e'"):
            while True:  # '' is a quote inside the literal; in E'…' so is \\'
                if j >= n:
                    raise ValueError("db_rows: unterminated string literal in %r" % sql)
                if tok != "'" and sql[j] == "\\":
                    j += 2
                elif sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                    else:
                        j += 1
                        break
                else:
                    j += 1
        elif tok == '"':
            while True:
                k = sql.find('"', j)
                if k < 0:
                    raise ValueError("db_rows: unterminated quoted identifier in %r" % sql)
                j = k + 1
                if not sql.startswith('"', j):
                    break
                j += 1
        elif tok == "--":
            k = sql.find("\n", j)
            j = n if k < 0 else k
        elif tok == "/*":
            depth = 1  # PostgreSQL's block comments nest
            while depth:
                a, b = sql.find("/*", j), sql.find("*/", j)
                if b < 0:
                    raise ValueError("db_rows: unterminated comment in %r" % sql)
                if 0 <= a < b:
                    depth, j = depth + 1, a + 2
                else:
                    depth, j = depth - 1, b + 2
        else:  # $tag$ … $tag$
            k = sql.find(tok, j)
            if k < 0:
                raise ValueError("db_rows: unterminated dollar quote in %r" % sql)
            j = k + len(tok)
        out.append(sql[start:j])
        code.append(" " * (j - start))
        i = j
    if used != len(args):
        raise ValueError("db_rows: %d ? placeholders but %d arguments" % (used, len(args)))
    return "".join(out), "".join(code)


def _json_rows(text):
    """The rows in psql's output of `SELECT row_to_json(q) …`: one JSON object a
    row. Each row is a list of (value, its JSON text) in column order: names
    may repeat, and json columns are wanted as the text they hold."""
    dec = json.JSONDecoder()
    ws = re.compile(r"\s*")
    rows, i = [], ws.match(text, 0).end()
    while i < len(text):
        if text[i] != "{":
            raise ValueError("db_rows: unexpected psql output at %d: %r" % (i, text[i:i + 80]))
        i = ws.match(text, i + 1).end()
        row = []
        if text[i] == "}":
            i += 1
        else:
            while True:
                _, i = dec.raw_decode(text, i)  # the column name
                i = ws.match(text, i).end()
                if text[i] != ":":
                    raise ValueError("db_rows: unexpected psql output at %d" % i)
                i = ws.match(text, i + 1).end()
                value, j = dec.raw_decode(text, i)
                row.append((value, text[i:j]))
                i = ws.match(text, j).end()
                if text[i] == ",":
                    i = ws.match(text, i + 1).end()
                elif text[i] == "}":
                    i += 1
                    break
                else:
                    raise ValueError("db_rows: unexpected psql output at %d" % i)
        rows.append(row)
        i = ws.match(text, i).end()
    return rows


def _pg_value(value, raw, pgtype):
    """A column value from row_to_json as sqlite3 would return it."""
    if value is None:
        return None
    if pgtype in ("json", "jsonb"):
        return raw  # the text, as SQLite's JSON (text) column gives it
    if isinstance(value, bool):
        return int(value)  # SQLite has no booleans: 1/0
    if pgtype == "bytea":
        return bytes.fromhex(value[2:])  # "\\x…"
    if pgtype and pgtype.startswith("timestamp"):
        return value.replace("T", " ", 1)  # row_to_json writes ISO 8601; PostgreSQL's text form has a space
    return value


_GDESC_END = "@@s4s-db_rows-types-end@@"


def pg_rows(uri, sql, args=()):
    """db_rows in PostgreSQL mode: bind the arguments as literals and run the
    statement with psql. Statements yielding rows (SELECT, WITH, VALUES, or
    RETURNING) are wrapped in row_to_json, so the values come back typed; the
    result column types (psql's \\gdesc) say which JSON strings are timestamps,
    bytea or JSON text. Others run as they are and give []."""
    bound, code = pg_bind(sql, tuple(args))
    # A trailing ; would end the statement inside the wrapper.
    stripped = code.rstrip()
    if stripped.endswith(";"):
        bound = bound[:len(stripped) - 1] + bound[len(stripped):]
        code = stripped[:-1]
    first = re.match(r"[\s(]*([A-Za-z]*)", code).group(1).upper()
    returning = re.search(r"\bRETURNING\b", code, re.IGNORECASE) is not None
    if returning:
        wrapped = "WITH s4s_q AS (\n%s\n) SELECT row_to_json(s4s_q) FROM s4s_q" % bound
    elif first in ("SELECT", "WITH", "VALUES", "TABLE"):
        wrapped = "SELECT row_to_json(s4s_q) FROM (\n%s\n) s4s_q" % bound
    else:
        pg_exec(uri, bound + "\n;\n")
        return []
    out = pg_exec(uri, "%s\n\\gdesc\n\\echo %s\n%s\n;\n" % (bound, _GDESC_END, wrapped))
    desc, sep, data = out.partition(_GDESC_END + "\n")
    if not sep:
        raise RuntimeError("db_rows: unexpected psql output: %r" % out[:200])
    types = [line.rsplit("|", 1)[-1] for line in desc.split("\n") if line]
    result = []
    for row in _json_rows(data):
        t = types if len(types) == len(row) else [None] * len(row)
        result.append(tuple(_pg_value(v, raw, ty) for (v, raw), ty in zip(row, t)))
    return result


def login_begin(s, user, tamper=None):
    """The browser's first two legs: /login, then the provider's consent for
    user. Returns (the /authorize path with code and state, the oauth_state
    cookie pair, the /login response). tamper(query dict) may alter the
    authorize URL's parameters before the provider sees them."""
    r = s.get("/backend/login")
    if r.status != 302:
        raise RuntimeError("/login answered %r" % r)
    cookie = r.header("Set-Cookie").split(";")[0]
    u = urllib.parse.urlsplit(r.header("Location"))
    q = dict(urllib.parse.parse_qsl(u.query))
    if tamper:
        tamper(q)
    q["login_hint"] = user
    p = request(u.port, "GET", u.path + "?" + urllib.parse.urlencode(q))
    if p.status != 302:
        raise RuntimeError("provider answered %r" % p)
    back = urllib.parse.urlsplit(p.header("Location"))
    return back.path + "?" + back.query, cookie, r


def redirect_query(resp):
    """The query of a redirect's Location as a dict (session_id or error)."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.header("Location") or "").query))


def reload_stack(s, timeout=10):
    """Write s.config, SIGHUP the master and wait until every worker is of the new generation."""
    s.write_config()
    old = set(s.worker_pids())
    s.signal(signal.SIGHUP)
    deadline = time.time() + timeout
    while time.time() < deadline:
        pids = set(s.worker_pids())
        if len(pids) == s.workers and not (pids & old):
            return
        time.sleep(0.05)
    raise RuntimeError("reload did not replace the workers")


# ---------------------------------------------------------------- assets & backpack (t/70, t/71)
def sample_png(w=1, h=1, seed=0):
    """A valid RGB PNG built with zlib and struct; seed varies the pixels."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes(((x * 7 + y * 13 + seed) & 0xFF) for x in range(w * 3))
                    for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def sample_svg(tag="x"):
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
            '<rect width="10" height="10" fill="red"/><!-- %s --></svg>' % tag).encode()


# SOI, an APP0 JFIF segment, EOI: a JPEG start as libmagic knows it.
SAMPLE_JPEG = bytes([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10]) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + \
    bytes([0xFF, 0xD9])
SAMPLE_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
              b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def sample_bmp():
    """A 1x1 24-bit BMP."""
    import struct
    pixel_row = b"\x00\x00\xff\x00"  # one BGR pixel, padded to 4 bytes
    return (b"BM" + struct.pack("<IHHI", 14 + 40 + len(pixel_row), 0, 0, 54) +
            struct.pack("<IiiHHIIiiII", 40, 1, 1, 1, 24, 0, len(pixel_row), 2835, 2835, 0, 0) + pixel_row)


def sample_wav(frames=8, seed=0):
    import io
    import wave
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(((i * 31 + seed) & 0xFF) for i in range(frames * 2)))
    return buf.getvalue()


def sample_mp3(frames=2):
    """MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz: 417 bytes each), silent."""
    return (b"\xff\xfb\x90\x64" + b"\x00" * 413) * frames


def sample_ogg():
    """The first page of an Ogg Vorbis stream (identification header)."""
    import struct
    ident = b"\x01vorbis" + struct.pack("<IBIiii", 0, 1, 44100, 0, 128000, 0) + b"\xb8\x01"
    return (b"OggS\x00\x02" + b"\x00" * 8 + struct.pack("<III", 1, 0, 0) +
            bytes([1, len(ident)]) + ident)


def sample_zip(names=None):
    """A sprite3-like zip: sprite.json and a costume."""
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in (names or {"sprite.json": b'{"name":"Sprite1","costumes":[]}',
                                     "costume.svg": sample_svg("zip")}).items():
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def md5(data):
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------- projects (t/60, t/61)
def make_sb3(tag="x", files=None):
    """A real .sb3: a zip holding project.json and an SVG costume; tag varies the
    bytes. files replaces the members ({name: bytes})."""
    import io
    import zipfile
    if files is None:
        files = {"project.json": json.dumps({"targets": [{"isStage": True, "name": "Stage"}],
                                             "meta": {"semver": "3.0.0", "tag": tag}}).encode(),
                 "cd21514d0531fdffb22204e0ec5ed84a.svg": sample_svg(tag)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def project_form(sb3=None, thumb=None, fields=None, sb3_name="project.sb3"):
    """The multipart body the frontend sends: project_file and an optional thumbnail."""
    files = {}
    if sb3 is not None:
        files["project_file"] = (sb3_name, sb3, "application/x.scratch.sb3")
    if thumb is not None:
        files["thumbnail"] = ("thumbnail.png", thumb, "image/png")
    return multipart(fields or {}, files)


def project_send(s, method, path, token, sb3=None, thumb=None, fields=None, headers=None, **kw):
    body, ctype = project_form(sb3, thumb, fields)
    h = {"Content-Type": ctype}
    if token:
        h["X-Session-ID"] = token
    h.update(headers or {})
    return s.req(method, path, body=body, headers=h, **kw)


def project_row(s, pid):
    """(version, name, sb3_sha256, thumbnail_sha256, is_published, deleted_at) straight from the database."""
    rows = db_rows(s, "SELECT version, name, sb3_sha256, thumbnail_sha256, is_published, deleted_at "
                      "FROM projects WHERE id = ?", (pid,))
    return rows[0] if rows else None


def blob_bytes(s, sha):
    with open(os.path.join(s.data, "blobs", sha[:2], sha[2:]), "rb") as f:
        return f.read()


def stored_sb3(s, pid):
    """The .sb3 bytes the database points the project at."""
    row = project_row(s, pid)
    return blob_bytes(s, row[2]) if row and row[2] else None


# ---------------------------------------------------------------- s4s-admin (t/9x)
def admin(s, *args, env=None, timeout=120):
    """Run s4s-admin with the stack's configuration; returns (exit status, stdout, stderr)."""
    s.write_config()
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([S4S_ADMIN, "-c", s.conf_path] + [str(a) for a in args], env=e,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def admin_json(s, *args, **kw):
    """s4s-admin with --json: (exit status, parsed output or None, stderr)."""
    rc, out, err = admin(s, *args, **kw)
    try:
        return rc, json.loads(out), err
    except ValueError:
        return rc, None, err + out


def blob_path(s, sha):
    return os.path.join(s.data, "blobs", sha[:2], sha[2:])


def db_dump(path):
    """Every row of every table of an SQLite file, sorted: for before/after comparisons."""
    import sqlite3
    conn = sqlite3.connect(path, timeout=10)
    try:
        out = {}
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                    "AND name NOT LIKE 'sqlite_%' ORDER BY name"):
            out[name] = sorted(conn.execute('SELECT * FROM "%s"' % name).fetchall(), key=repr)
        return out
    finally:
        conn.close()


def db_dump_text(s):
    """The stack's whole database as text, to search for what must not be
    stored in clear and to compare before/after: SQLite's iterdump of main.db,
    or in PostgreSQL mode pg_dump's plain data, made comparable: the rows of
    each table sorted (equal contents, equal text, whatever their physical
    order), without the per-run \\restrict key and without sequence positions
    (not rows: an INSERT that meets a conflict still advances them)."""
    if not getattr(s, "pg_uri", None):
        import sqlite3
        conn = sqlite3.connect(os.path.join(s.data, "main.db"), timeout=10)
        try:
            return "\n".join(conn.iterdump())
        finally:
            conn.close()
    # pg_dump from where psql was found (the newest /usr/lib/postgresql/N/bin).
    tool = os.path.join(os.path.dirname(_psql_path()), "pg_dump")
    env = dict(os.environ, PGCLIENTENCODING="UTF8", PGTZ="UTC", PGCONNECT_TIMEOUT="10")
    p = subprocess.run([tool, "--data-only", "--format=plain", "--no-owner", "--no-privileges", "-d", s.pg_uri],
                       stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("pg_dump failed (exit %d): %s" % (p.returncode, p.stderr.decode("utf-8", "replace")))
    out, rows = [], None
    for line in p.stdout.decode("utf-8").split("\n"):
        if rows is not None and line != "\\.":
            rows.append(line)
            continue
        if rows is not None:
            out += sorted(rows)
            rows = None
        elif line.startswith("COPY ") and line.endswith(" FROM stdin;"):
            rows = []
        elif line.startswith(("\\restrict ", "\\unrestrict ", "SELECT pg_catalog.setval(")):
            continue
        out.append(line)
    return "\n".join(out)
