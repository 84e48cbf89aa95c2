"""Integration-test harness: TAP output, and a real stack on loopback.

A Stack is a temporary directory holding a config file, a data directory,
an nginx configuration and logs; start() launches the real s4s-fcgi master
(foreground) on a unix socket and a real nginx in front of it on a free
loopback port. Tests talk HTTP to nginx only, as the frontend does.
Standard library only: these run on a fresh Debian with python3.
"""
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
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
        if not cond and diag is not None:
            for line in str(diag).splitlines()[:40]:
                print("#   " + line, flush=True)
        return cond

    def eq(self, got, want, name):
        return self.ok(got == want, name, "got:  %r\nwant: %r" % (got, want))

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


# ---------------------------------------------------------------- the stack
NGINX_CONF = """
{user_line}
worker_processes 1;
error_log {dir}/nginx-error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/nginx-access.log;
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
        self.master = subprocess.Popen([S4S_FCGI, "-F", "-c", self.conf_path] + list(extra_args),
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
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if report:
            raise RuntimeError("sanitizer report in the server's output:\n" + report)

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
