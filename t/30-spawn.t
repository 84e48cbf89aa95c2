#!/usr/bin/env python3
# Started the ways other deployments start FastCGI apps: by spawn-fcgi
# (socket handed over on fd 0, behind nginx), by lighttpd's bin-path (lighttpd
# binds and spawns), and as an external socket behind lighttpd.
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import S4S_FCGI, Stack, Tap, free_port, request, multipart, sha256  # noqa: E402

t = Tap()
SPAWN = shutil.which("spawn-fcgi") or "/usr/bin/spawn-fcgi"
LIGHTTPD = shutil.which("lighttpd") or "/usr/sbin/lighttpd"


def wait_status(port, path="/backend/api/status", timeout=10):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            r = request(port, "GET", path, timeout=2)
            if r.status == 200:
                return r
            last = r
        except Exception as e:
            last = e
        time.sleep(0.05)
    return last


# spawn-fcgi binds the socket and execs us with it on fd 0.
s = Stack(workers=2)
del s.config["LISTEN"]
s.write_config()
s.master = subprocess.Popen([SPAWN, "-n", "-s", s.sock, "-M", "0666", "--", S4S_FCGI, "-c", s.conf_path],
                            env=s.env, stdin=subprocess.DEVNULL,
                            stdout=open(os.path.join(s.dir, "master.out"), "ab"), stderr=subprocess.STDOUT)
s.start_nginx()
try:
    r = wait_status(s.port)
    t.ok(getattr(r, "status", None) == 200, "spawn-fcgi: serves /api/status through nginx", s.logs() if getattr(r, "status", None) != 200 else None)
    st = s.status()
    t.eq(len(st["workers"]), 2, "spawn-fcgi: the master forked its 2 workers")
    t.ok("inherited on fd 0" in s.log_text(), "spawn-fcgi: the inherited socket is logged")
    s.signal(signal.SIGQUIT)
    s.master.wait(timeout=10)
    t.eq(s.master.returncode, 0, "spawn-fcgi: graceful stop")
finally:
    s.stop()

LIGHTTPD_CONF = """
server.document-root = "{dir}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{dir}/lighttpd-error.log"
server.pid-file = "{dir}/lighttpd.pid"
server.modules += ( "mod_fastcgi" )
fastcgi.server = ( "/backend/" => ((
{backend}
    "check-local" => "disable",
    "max-procs" => 1,
)))
"""

# lighttpd bin-path: lighttpd binds the socket and spawns s4s-fcgi on it.
for mode in ("bin-path", "socket"):
    s = Stack(workers=2)
    if mode == "bin-path":
        del s.config["LISTEN"]
        backend = ('    "socket" => "{sock}",\n    "bin-path" => "{bin} -c {conf}",\n'
                   '    "bin-environment" => ( "S4S_TEST_ROUTES" => "1" ),\n').format(
                       sock=os.path.join(s.dir, "lt.sock"), bin=S4S_FCGI, conf=s.conf_path)
    else:
        backend = '    "socket" => "{sock}",\n'.format(sock=s.sock)
    s.write_config()
    conf = os.path.join(s.dir, "lighttpd.conf")
    with open(conf, "w") as f:
        f.write(LIGHTTPD_CONF.format(dir=s.dir, port=s.port, backend=backend))
    if mode == "socket":
        s.start_master()
    lt = subprocess.Popen([LIGHTTPD, "-D", "-f", conf], stdin=subprocess.DEVNULL,
                          stdout=open(os.path.join(s.dir, "lighttpd.out"), "ab"), stderr=subprocess.STDOUT)
    try:
        r = wait_status(s.port)
        ok = getattr(r, "status", None) == 200
        t.ok(ok, "lighttpd %s: serves /api/status" % mode,
             None if ok else "%r\n%s" % (r, open(os.path.join(s.dir, "lighttpd-error.log")).read()[-2000:] if os.path.exists(os.path.join(s.dir, "lighttpd-error.log")) else s.logs()))
        r = request(s.port, "GET", "/backend/api/nope")
        t.eq((r.status, r.json()), (404, {"error": "Not found"}), "lighttpd %s: routing below BASE_PATH" % mode)
        payload = os.urandom(300000)
        body, ctype = multipart({"a": "b"}, {"f": ("f.bin", payload, "application/octet-stream")})
        r = request(s.port, "POST", "/backend/_test/upload", body=body, headers={"Content-Type": ctype})
        t.eq(((r.json() or {}).get("files") or [{}])[0].get("sha256"), sha256(payload),
             "lighttpd %s: multipart upload streamed into the blob store" % mode)
    finally:
        lt.send_signal(signal.SIGTERM)
        try:
            lt.wait(timeout=10)
        except subprocess.TimeoutExpired:
            lt.kill()
        # lighttpd stops the backend it spawned; make sure nothing is left either way.
        time.sleep(0.3)
        s.stop()
        subprocess.run(["pkill", "-f", s.conf_path], capture_output=True)

t.done()
