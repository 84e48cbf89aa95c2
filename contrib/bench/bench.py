#!/usr/bin/env python3
"""bench.py — throughput and latency of s4s-fcgi through nginx, with nginx's
own ceiling measured in the same run.

    python3 contrib/bench/bench.py [-r N] [-d SECONDS] [-w WORKERS] [-c 1,16,64]
                                   [--sendfile x-accel-redirect|off] [--builddir DIR]
                                   [--scale] [--only status,list,...] [--json FILE]

It builds nothing: it runs the s4s-fcgi of an existing build (--builddir,
default build-test/ or build-dev/ at the top of the tree). It starts a
throw-away stack on loopback with t/lib/s4s.py's Stack (nginx, the prefork
server with WORKERS workers, the stand-in identity provider), seeds it
through the API (a user with 20 projects of ~298 KB real .sb3, a second user
with 256 projects for the write path, one 49 KB PNG asset), and runs wrk
through nginx against each endpoint at each connection count. Beside them,
with the same wrk settings, it measures nginx alone: `return 200`, and the
same PNG and .sb3 as static files. See contrib/bench/README.md.

--scale also fills a second database with 100,000 projects, 1,000,000
assets, 50,000 users and 5,000 groups (contrib/bench/seed_scale.py, before
that server starts) and compares its latencies with the small database's.
"""
import argparse
import hashlib
import io
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(os.path.dirname(HERE))

# The Flask backend on the same kind of machine (2 cores, nginx, 2 sync
# workers), from the issue: req/s of each endpoint, and the worst p99 at 64
# connections it quotes (740 ms, the slowest endpoint: the PUT).
FLASK_RPS = {"status": 2900, "list": 136, "metadata": 275, "asset_get": 1270, "download": 266,
             "put": 115, "asset_post": 179}
FLASK_PUT_P99_MS = 740.0

# name: (what, ceiling it is compared with, target ratio)
ENDPOINTS = [
    ("status", "GET /api/status", "return200", 0.30),
    ("list", "GET /api/projects (20)", "return200", 0.12),
    ("metadata", "GET …/metadata", "return200", 0.15),
    ("asset_get", "GET /api/assets/<md5> 49K", "static_png", 0.50),
    ("download", "GET …/download 298K", "static_sb3", 0.50),
    ("put", "PUT /api/projects/<id> 298K new", "flask", 10.0),
    ("asset_post", "POST /api/assets/ (dedupe)", "flask", 50.0),
]
CEILINGS = [
    ("return200", "nginx return 200"),
    ("static_png", "nginx static 49K PNG"),
    ("static_sb3", "nginx static 298K .sb3"),
]
SB3_SIZE = 298 * 1024
PNG_SIZE = 49 * 1024
LIST_PROJECTS = 20
WRITE_PROJECTS = 256


def die(msg):
    print("bench.py: " + msg, file=sys.stderr)
    sys.exit(2)


def default_builddir():
    for d in ("build-test", "build-dev", "."):
        p = os.path.join(SRCDIR, d)
        if os.access(os.path.join(p, "src", "s4s-fcgi"), os.X_OK):
            return p
    return None


def parse_args():
    ap = argparse.ArgumentParser(description="Benchmark s4s-fcgi through nginx (see contrib/bench/README.md)")
    ap.add_argument("-r", "--repeats", type=int, default=1, help="repeat the whole run N times; medians are reported")
    ap.add_argument("-d", "--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("-w", "--workers", type=int, default=2, help="server workers (default 2)")
    ap.add_argument("-c", "--connections", default="1,16,64", help="connection counts (default 1,16,64)")
    ap.add_argument("--sendfile", default="x-accel-redirect", choices=["x-accel-redirect", "off"],
                    help="SENDFILE setting of the server (default x-accel-redirect)")
    ap.add_argument("--builddir", help="build directory holding src/s4s-fcgi (default build-test/ or build-dev/)")
    ap.add_argument("--nginx-workers", default="auto",
                    help="nginx worker_processes (default auto, as Debian's nginx.conf)")
    ap.add_argument("--nginx-body-buffer", metavar="SIZE",
                    help="nginx client_body_buffer_size (default: nginx's, 16k: larger bodies go to a temp file)")
    ap.add_argument("--max-requests", type=int, default=0,
                    help="MAX_REQUESTS of the server (default 0: workers are never replaced, so RSS growth shows)")
    ap.add_argument("--only", help="comma-separated endpoints to run (%s)" % ",".join(e[0] for e in ENDPOINTS))
    ap.add_argument("--no-ceilings", action="store_true", help="skip nginx's own ceilings")
    ap.add_argument("--scale", action="store_true",
                    help="also run against a database of 100k projects, 1M assets, 50k users, 5k groups and compare")
    ap.add_argument("--scale-only", action="store_true", help="with --scale: skip the small database run")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds of rest between wrk runs (default 1)")
    ap.add_argument("--pg", metavar="ADMIN_URI",
                    help="run against PostgreSQL: a fresh database is made on this server (e.g. the URI "
                         "`sh contrib/pg.sh start DIR` prints) and dropped afterwards; --scale is SQLite only")
    ap.add_argument("--json", help="also write every measurement to this file")
    ap.add_argument("--keep", action="store_true", help="keep the stack's temporary directory")
    ap.add_argument("--hold", action="store_true",
                    help="after seeding, print the stack's URLs and wait for Enter (for profiling by hand)")
    a = ap.parse_args()
    a.conns = [int(x) for x in a.connections.split(",") if x.strip()]
    if not a.conns or min(a.conns) < 1:
        die("-c wants connection counts like 1,16,64")
    names = [e[0] for e in ENDPOINTS]
    a.endpoints = names if not a.only else [x.strip() for x in a.only.split(",") if x.strip()]
    for e in a.endpoints:
        if e not in names:
            die("unknown endpoint %r (known: %s)" % (e, ", ".join(names)))
    a.builddir = os.path.abspath(a.builddir) if a.builddir else default_builddir()
    if not a.builddir or not os.access(os.path.join(a.builddir, "src", "s4s-fcgi"), os.X_OK):
        die("no built server found: build first (sh contrib/test.sh, or make in build-dev/), or pass --builddir DIR")
    return a


ARGS = parse_args()
os.environ["S4S_BUILDDIR"] = ARGS.builddir
os.environ.setdefault("S4S_SRCDIR", SRCDIR)
sys.path.insert(0, os.path.join(SRCDIR, "t", "lib"))
import s4s  # noqa: E402  (reads S4S_BUILDDIR when imported)

WRK = shutil.which("wrk")
BENCH_TMP = os.path.join(tempfile.gettempdir(), "s4s-bench")


# ---------------------------------------------------------------- test data
UNIQUE = b"s4s-bench-" + b"0" * 30  # a zip comment the PUT script rewrites per request


def make_sb3(seed, size=SB3_SIZE, comment=b""):
    """A Scratch 3 project as the editor saves it: project.json (deflated) plus
    two costumes and a sound whose bytes are incompressible (PNGs and MP3s
    already are), stored; the sound is sized so the zip is `size` bytes."""
    def build(sound_len):
        files = {}
        for i, (ext, n) in enumerate((("png", 96 * 1024), ("png", 64 * 1024), ("wav", sound_len))):
            data = random.Random("sb3-%d-%d-%d" % (seed, i, n)).randbytes(n)
            files[hashlib.md5(data).hexdigest() + "." + ext] = data
        names = list(files)
        stage = {"isStage": True, "name": "Stage", "variables": {}, "lists": {}, "broadcasts": {},
                 "blocks": {}, "comments": {}, "currentCostume": 0, "costumes": [], "sounds": [],
                 "volume": 100, "layerOrder": 0}
        sprite = {"isStage": False, "name": "Sprite1", "variables": {}, "lists": {}, "broadcasts": {},
                  "comments": {}, "currentCostume": 0, "volume": 100, "layerOrder": 1, "visible": True,
                  "x": 0, "y": 0, "size": 100, "direction": 90, "draggable": False,
                  "rotationStyle": "all around",
                  "blocks": {"b%03d" % i: {"opcode": "motion_movesteps", "next": None, "parent": None,
                                           "inputs": {"STEPS": [1, [4, str(i)]]}, "fields": {},
                                           "shadow": False, "topLevel": True, "x": i, "y": i}
                             for i in range(40)},
                  "costumes": [{"name": "c%d" % i, "assetId": n.split(".")[0], "md5ext": n, "dataFormat": "png",
                                "rotationCenterX": 0, "rotationCenterY": 0} for i, n in enumerate(names[:2])],
                  "sounds": [{"name": "s", "assetId": names[2].split(".")[0], "md5ext": names[2],
                              "dataFormat": "wav", "rate": 22050, "sampleCount": 1000}]}
        project = {"targets": [stage, sprite], "monitors": [], "extensions": [],
                   "meta": {"semver": "3.0.0", "vm": "0.2.0", "agent": "bench %d" % seed}}
        buf = io.BytesIO()
        stamp = (2024, 1, 1, 0, 0, 0)
        with zipfile.ZipFile(buf, "w") as z:
            z.comment = comment
            z.writestr(zipfile.ZipInfo("project.json", stamp), json.dumps(project), zipfile.ZIP_DEFLATED)
            for n, data in files.items():
                z.writestr(zipfile.ZipInfo(n, stamp), data, zipfile.ZIP_STORED)
        return buf.getvalue()
    first = build(64 * 1024)
    return build(64 * 1024 + size - len(first))


def make_png(seed, size=PNG_SIZE):
    """A valid PNG of `size` bytes: one IDAT of stored (incompressible) pixels
    plus a private ancillary chunk that pads to the exact size."""
    import struct
    import zlib
    rng = random.Random("png-%d" % seed)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    w, h = 64, 64
    rows = b"".join(b"\x00" + rng.randbytes(w * 3) for _ in range(h))
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    idat = chunk(b"IDAT", zlib.compress(rows, 0))
    tail = chunk(b"IEND", b"")
    pad = size - len(head) - len(idat) - len(tail) - 12
    if pad < 0:
        raise ValueError("PNG size too small")
    return head + chunk(b"bnCh", rng.randbytes(pad)) + idat + tail


# ---------------------------------------------------------------- the stack
BENCH_LOCATIONS = """        location = /bench/return200 {{ return 200 "ok"; }}
        location /bench/static/ {{ alias {static}/; }}
"""


class BenchStack(s4s.Stack):
    """Stack, with nginx as Debian's nginx.conf sets it up (worker_processes
    auto, sendfile, tcp_nopush) and the ceiling locations beside /backend/."""

    def __init__(self, nginx_workers="auto", body_buffer=None, **kw):
        super().__init__(**kw)
        self.nginx_workers = nginx_workers
        self.body_buffer = body_buffer
        self.static = os.path.join(self.dir, "static")
        os.makedirs(self.static, exist_ok=True)

    def write_nginx(self, **kw):
        path = super().write_nginx(**kw)
        with open(path) as f:
            conf = f.read()
        marker = "        location = /nginx-ok"
        for needle in (marker, "worker_processes 1;", "http {\n"):
            if needle not in conf:
                raise RuntimeError("Stack's nginx.conf changed: %r not found" % needle)
        conf = conf.replace(marker, BENCH_LOCATIONS.format(static=self.static) + marker, 1)
        conf = conf.replace("worker_processes 1;", "worker_processes %s;" % self.nginx_workers, 1)
        extra = "    sendfile on;\n    tcp_nopush on;\n"
        if self.body_buffer:
            extra += "    client_body_buffer_size %s;\n" % self.body_buffer
        conf = conf.replace("http {\n", "http {\n" + extra, 1)
        with open(path, "w") as f:
            f.write(conf)
        return path


def stack_config(a):
    return {"SENDFILE": a.sendfile, "MAX_REQUESTS": str(a.max_requests), "LOG_LEVEL": "info",
            "REQUEST_TIMEOUT": "60"}


BENCH_USERS = {
    "bench": {"uuid": "u-bench-0001", "preferred_username": "bench", "name": "Bench Reader",
              "email": "bench@school.example", "groups": {"1": {"act": "klasse-7a", "name": "Klasse 7a"}}},
    "writer": {"uuid": "u-bench-0002", "preferred_username": "writer", "name": "Bench Writer",
               "email": "writer@school.example", "groups": {"1": {"act": "klasse-7a", "name": "Klasse 7a"}}},
}


def check(cond, msg):
    if not cond:
        raise RuntimeError(msg)


def pool(n, items, fn):
    """fn(item) for every item in n threads; the results in order (raises the first error)."""
    out = [None] * len(items)
    lock = threading.Lock()
    it = iter(range(len(items)))

    def run():
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            try:
                out[i] = fn(items[i])
            except Exception as e:  # reported below
                out[i] = e
    ts = [threading.Thread(target=run) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for x in out:
        if isinstance(x, Exception):
            raise x
    return out


class Seeded:
    pass


def seed(s):
    """Users, projects and the asset, through the API as the frontend makes them."""
    d = Seeded()
    s.idp_control(users=BENCH_USERS)
    d.reader = s.login("bench")
    d.writer = s.login("writer")

    def create(args):
        token, seed_no = args
        body, ctype = s4s.project_form(make_sb3(seed_no))
        r = s.req("POST", "/backend/api/projects?title=Bench%%20%d" % seed_no, body=body,
                  headers={"Content-Type": ctype, "X-Session-ID": token}, timeout=60)
        check(r.status == 200, "creating a project: %r" % r)
        return r.json()["id"]
    d.list_ids = pool(4, [(d.reader, i) for i in range(LIST_PROJECTS)], create)
    d.write_ids = pool(4, [(d.writer, 1000 + i) for i in range(WRITE_PROJECTS)], create)

    d.sb3 = make_sb3(0)  # the same bytes as the reader's first project
    d.png = make_png(1)
    d.md5 = hashlib.md5(d.png).hexdigest()
    body, ctype = s4s.multipart({"type": "costume", "format": "png"}, {"asset": ("costume.png", d.png, "image/png")})
    r = s.req("POST", "/backend/api/assets/", body=body, headers={"Content-Type": ctype, "X-Session-ID": d.reader})
    check(r.status == 200 and r.json().get("assetId") == d.md5, "storing the asset: %r" % r)
    d.asset_body, d.asset_ctype = body, ctype

    # What the read endpoints will answer, checked once before timing them.
    r = s.get("/backend/api/projects", headers=s.auth(d.reader))
    check(r.status == 200 and r.json()["count"] == LIST_PROJECTS, "the list: %r" % r)
    r = s.get("/backend/api/projects/%d/download" % d.list_ids[0], headers=s.auth(d.reader))
    check(r.status == 200 and r.body == d.sb3, "download of project %d: %r" % (d.list_ids[0], r))
    r = s.get("/backend/api/assets/%s.png" % d.md5)
    check(r.status == 200 and r.body == d.png, "asset GET: %r" % r)
    # The PUT body: a 298 KB .sb3 whose zip comment the wrk script makes
    # unique per request, so every PUT stores (and fsyncs) a new blob, as an
    # autosave of a changed project does.
    d.put_body, d.put_ctype = s4s.project_form(make_sb3(999999, comment=UNIQUE))
    check(d.put_body.count(UNIQUE) == 1, "the PUT body's marker")
    # nginx's ceilings serve the very same bytes.
    with open(os.path.join(s.static, "asset.png"), "wb") as f:
        f.write(d.png)
    with open(os.path.join(s.static, "project.sb3"), "wb") as f:
        f.write(d.sb3)
    r = s.get("/bench/static/project.sb3")
    check(r.status == 200 and r.body == d.sb3, "nginx static file: %r" % r)
    return d


# ---------------------------------------------------------------- wrk
LUA = r"""
-- Generated by contrib/bench/bench.py.
local method = %(method)s
local paths = %(paths)s
local headers = %(headers)s
local body_file = %(body_file)s
local nthreads = %(nthreads)d
local count_status = %(count_status)s
local unique = %(unique)s

local threads = {}
local reqs = {}
local n = 0
local sent = 0
local pre, post = {}, nil
bad = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads - 1)
end

function init(args)
  local body = nil
  if body_file then
    local f = assert(io.open(body_file, "rb"))
    body = f:read("*a")
    f:close()
  end
  -- Each thread its own slice of the paths, so that no two threads (and,
  -- with enough paths, no two connections) have one project in flight.
  local per = math.max(1, math.floor(#paths / nthreads))
  local first = (tid * per) %% #paths
  for i = 0, per - 1 do
    reqs[#reqs + 1] = wrk.format(method, paths[(first + i) %% #paths + 1], headers, body)
  end
  if unique then
    -- Each request whole but for the marker: one concatenation per request.
    for i, req in ipairs(reqs) do
      local at = assert(req:find(unique, 1, true))
      pre[i], post = req:sub(1, at - 1), req:sub(at + #unique)
    end
  end
end

function request()
  n = n %% #reqs + 1
  if not unique then
    return reqs[n]
  end
  -- New bytes every time: the marker becomes thread id and a counter.
  sent = sent + 1
  return pre[n] .. string.format("s4s-bench-%%02d-%%027d", tid, sent) .. post
end

if count_status then
  function response(status, hdrs, body)
    if status < 200 or status > 299 then bad = bad + 1 end
  end
end

function done(summary, latency, requests)
  local non2xx = -1
  if count_status then
    non2xx = 0
    for _, t in ipairs(threads) do non2xx = non2xx + (t:get("bad") or 0) end
  end
  io.write(string.format('BENCHJSON {"requests":%%d,"duration_us":%%d,"bytes":%%d,' ..
    '"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d,' ..
    '"p50":%%d,"p90":%%d,"p99":%%d,"max":%%d,"mean":%%.1f,"non2xx":%%d}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean, non2xx))
end
"""


def lua_str(x):
    return "nil" if x is None else json.dumps(x)


def lua_table(d):
    if isinstance(d, dict):
        return "{" + ", ".join("[%s] = %s" % (json.dumps(k), json.dumps(v)) for k, v in d.items()) + "}"
    return "{" + ", ".join(json.dumps(v) for v in d) + "}"


class Job:
    def __init__(self, name, what, method, paths, headers=None, body=None, count_status=False, route=None,
                 unique=None):
        self.name, self.what, self.method, self.paths = name, what, method, paths
        self.unique = unique  # a marker in the body made unique per request
        self.headers = headers or {}
        self.body = body
        self.count_status = count_status
        self.route = route  # the server's metrics label, for its own count of non-2xx answers


def jobs_for(s, d):
    auth = {"X-Session-ID": d.reader}
    body_dir = os.path.join(s.dir, "bench-bodies")
    os.makedirs(body_dir, exist_ok=True)

    def body(name, data):
        p = os.path.join(body_dir, name)
        with open(p, "wb") as f:
            f.write(data)
        return p
    api = "/backend/api"
    jobs = {
        "return200": Job("return200", "nginx return 200", "GET", ["/bench/return200"]),
        "static_png": Job("static_png", "nginx static 49K PNG", "GET", ["/bench/static/asset.png"]),
        "static_sb3": Job("static_sb3", "nginx static 298K .sb3", "GET", ["/bench/static/project.sb3"]),
        "status": Job("status", "", "GET", [api + "/status"], route="GET /api/status"),
        "list": Job("list", "", "GET", [api + "/projects"], auth, route="GET /api/projects"),
        "metadata": Job("metadata", "", "GET", ["%s/projects/%d/metadata" % (api, i) for i in d.list_ids], auth,
                        route="GET /api/projects/:id/metadata"),
        "asset_get": Job("asset_get", "", "GET", ["%s/assets/%s.png" % (api, d.md5)],
                         route="GET /api/assets/:name"),
        "download": Job("download", "", "GET", ["%s/projects/%d/download" % (api, i) for i in d.list_ids], auth,
                        route="GET /api/projects/:id/download"),
        # No If-Match: the unmodified frontend's PUT (the server uses the
        # session's last-seen version, read inside the write transaction).
        "put": Job("put", "", "PUT", ["%s/projects/%d" % (api, i) for i in d.write_ids],
                   {"X-Session-ID": d.writer, "Content-Type": d.put_ctype}, body("put.body", d.put_body),
                   count_status=True, route="PUT /api/projects/:id", unique=UNIQUE),
        "asset_post": Job("asset_post", "", "POST", [api + "/assets/"],
                          {"X-Session-ID": d.reader, "Content-Type": d.asset_ctype},
                          body("asset.body", d.asset_body), count_status=True, route="POST /api/assets/"),
    }
    for name, what, _, _ in ENDPOINTS:
        jobs[name].what = what
    return jobs


def server_counts(s):
    """{route: {status: n}} from the server's /metrics."""
    r = s.get("/backend/metrics")
    out = {}
    for m in re.finditer(r's4s_requests_total\{route="([^"]*)",status="([^"]*)"\} (\d+)', r.body.decode()):
        out.setdefault(m.group(1), {})[m.group(2)] = int(m.group(3))
    return out


def non2xx_of(counts, route):
    return sum(n for st, n in counts.get(route, {}).items() if not st.startswith("2"))


def run_lua(s, job, threads):
    """Write job's wrk script; returns its path."""
    script = os.path.join(s.dir, "bench-%s.lua" % job.name)
    with open(script, "w") as f:
        f.write(LUA % {"method": lua_str(job.method), "paths": lua_table(job.paths),
                       "headers": lua_table(job.headers), "body_file": lua_str(job.body),
                       "nthreads": threads, "count_status": "true" if job.count_status else "false",
                       "unique": lua_str(job.unique.decode() if job.unique else None)})
    return script


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """utime + stime of pids (those still alive), in seconds."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            total += int(rest[11]) + int(rest[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def stack_pids(s):
    """(server workers, nginx master and workers): whose CPU time a run is charged."""
    workers = [pid for pid, _ in worker_rss(s)]
    nginx = [s.nginx.pid] + [pid for pid, _ in s.children_of(s.nginx.pid)]
    return workers, nginx


def run_wrk(s, job, conns, a):
    threads = 1 if conns == 1 else min(2, conns)
    script = run_lua(s, job, threads)
    before = server_counts(s) if job.route else None
    workers, nginx = stack_pids(s)
    cpu0 = (cpu_seconds(workers), cpu_seconds(nginx), resource.getrusage(resource.RUSAGE_CHILDREN))
    cmd = [WRK, "-t%d" % threads, "-c%d" % conns, "-d%ds" % a.duration, "--timeout", "30s",
           "-s", script, "http://127.0.0.1:%d" % s.port]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.duration + 120)
    m = re.search(r"^BENCHJSON (\{.*\})$", p.stdout, re.M)
    if p.returncode != 0 or not m:
        raise RuntimeError("wrk failed (%d): %s\n%s" % (p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = json.loads(m.group(1))
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    # CPU time per request (µs): who used the 2 cores. wrk is the only child
    # reaped meanwhile; a worker replaced during the run is not counted.
    n = max(1, res["requests"])
    res["cpu_server_us"] = (cpu_seconds(workers) - cpu0[0]) / n * 1e6
    res["cpu_nginx_us"] = (cpu_seconds(nginx) - cpu0[1]) / n * 1e6
    res["cpu_wrk_us"] = (ru.ru_utime + ru.ru_stime - cpu0[2].ru_utime - cpu0[2].ru_stime) / n * 1e6
    res["sockerr"] = res["connect"] + res["read"] + res["write"] + res["timeout"]
    if job.route:
        res["server_non2xx"] = non2xx_of(server_counts(s), job.route) - non2xx_of(before, job.route)
    else:
        res["server_non2xx"] = 0
    # What the client got: exact where the script counts statuses (writes);
    # else wrk's own count, of statuses >= 400 (no request here can get a 3xx).
    # The server's count may be higher by the uploads wrk abandons when it
    # stops at the deadline (their truncated bodies are answered 400).
    res["bad"] = res["non2xx"] if res["non2xx"] >= 0 else res["status"]
    return res


def worker_rss(s):
    """[(pid, RSS kB from /backend/status)] of the live workers."""
    st = s.status()
    return sorted(((w["pid"], w["rss_kb"]) for w in st["workers"] if w["state"] in ("idle", "busy")))


def worker_mem(s):
    """[(pid, RSS, private, PSS) in kB]: RSS from /backend/status; private
    (pages no other process maps) and PSS from /proc/PID/smaps_rollup."""
    out = []
    for pid, rss in worker_rss(s):
        fields = {}
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[1].isdigit():
                        fields[parts[0].rstrip(":")] = int(parts[1])
        except OSError:
            pass
        private = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
        out.append((pid, rss, private, fields.get("Pss", 0)))
    return out


def durability(s, d, n_writes=5):
    """What keeps a write durable, as the running server does it: the journal
    mode from the database file, and the fsyncs a worker really makes per PUT
    (PRAGMA synchronous is per connection, so it cannot be read from outside).
    On PostgreSQL the server's own settings, read from it."""
    if s.pg_uri:
        rows = s4s.pg_rows(s.pg_uri, "SELECT name, setting FROM pg_settings WHERE name IN "
                                     "('fsync', 'synchronous_commit', 'full_page_writes', 'wal_sync_method') "
                                     "ORDER BY name")
        return ["PostgreSQL " + ", ".join("%s=%s" % r for r in rows) +
                "; writes are SERIALIZABLE transactions (src/db_pg.c); blobs fsync'd as with SQLite"]
    import sqlite3
    conn = sqlite3.connect(os.path.join(s.data, "main.db"), timeout=10)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    lines = ["journal_mode=%s (read from the database file)" % mode]

    def put(pid):
        body = d.put_body.replace(UNIQUE, b"s4s-bench-probe-%024d" % pid)
        r = s.req("PUT", "/backend/api/projects/%d" % pid, body=body,
                  headers={"Content-Type": d.put_ctype, "X-Session-ID": d.writer})
        check(r.status == 200, "PUT: %r" % r)
    strace = shutil.which("strace")
    if not strace:
        lines.append("synchronous=FULL per src/db_sqlite.c (no strace: fsyncs per write not counted)")
        return lines
    log = os.path.join(s.dir, "strace.out")
    cmd = [strace, "-f", "-qq", "-e", "trace=fsync,fdatasync", "-o", log]
    for pid, _ in worker_rss(s):
        cmd += ["-p", str(pid)]
    tr = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 5
        while time.time() < deadline and not os.path.exists(log):
            time.sleep(0.05)
        time.sleep(0.3)  # attached to every worker
        for pid in d.write_ids[:n_writes]:
            put(pid)
    finally:
        tr.terminate()
        tr.wait()
    with open(log) as f:
        text = f.read()
    n = len(re.findall(r"\b(?:fsync|fdatasync)\(", text))
    lines.append("synchronous=FULL (src/db_sqlite.c); strace counts %.1f fsync/fdatasync calls per PUT "
                 "(temp file, blob directory, WAL commit)" % (n / n_writes))
    return lines


# ---------------------------------------------------------------- running
def run_suite(s, d, a, label):
    """Every repeat of every job; returns (results, rss samples)."""
    jobs = jobs_for(s, d)
    order = [] if a.no_ceilings else [c[0] for c in CEILINGS]
    order += a.endpoints
    results = {}  # (name, conns) -> [result per repeat]
    rss = [("before", worker_mem(s))]
    for rep in range(a.repeats):
        for conns in a.conns:
            for name in order:
                time.sleep(a.pause)
                res = run_wrk(s, jobs[name], conns, a)
                results.setdefault((name, conns), []).append(res)
                print("# %s repeat %d: %-11s c=%-3d %9.0f req/s  p50 %7.2f ms  p99 %7.2f ms  "
                      "non-2xx %d (server: %d)%s" % (
                    label, rep + 1, name, conns, res["rps"], res["p50"] / 1000, res["p99"] / 1000, res["bad"],
                    res["server_non2xx"],
                    ("  socket errors %d" % res["sockerr"]) if res["sockerr"] else ""), flush=True)
        rss.append(("after repeat %d" % (rep + 1), worker_mem(s)))
    return results, rss


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def summarize(results, a):
    """Medians per (name, conns), and each endpoint's ratio to its ceiling (median of per-repeat ratios)."""
    out = {}
    for (name, conns), rs in results.items():
        out[(name, conns)] = {"rps": med([r["rps"] for r in rs]), "p50": med([r["p50"] for r in rs]) / 1000,
                              "p99": med([r["p99"] for r in rs]) / 1000, "bad": sum(r["bad"] for r in rs),
                              "sockerr": sum(r["sockerr"] for r in rs), "n": len(rs),
                              "cpu": [med([r[k] for r in rs]) for k in ("cpu_server_us", "cpu_nginx_us", "cpu_wrk_us")],
                              "server_non2xx": sum(r["server_non2xx"] for r in rs)}
    for name, _, ceiling, target in ENDPOINTS:
        for conns in a.conns:
            if (name, conns) not in out:
                continue
            o = out[(name, conns)]
            if ceiling == "flask":
                o["ratio"] = o["rps"] / FLASK_RPS[name]
                o["vs"] = "Flask %d" % FLASK_RPS[name]
            elif (ceiling, conns) in results:
                pairs = zip(results[(name, conns)], results[(ceiling, conns)])
                o["ratio"] = med([e["rps"] / c["rps"] for e, c in pairs])
                o["vs"] = ceiling
            else:
                o["ratio"], o["vs"] = None, ceiling
            o["target"] = target
            ok = o["ratio"] is not None and o["ratio"] >= target
            if name == "put" and conns == 64:
                ok = ok and o["p99"] <= FLASK_PUT_P99_MS / 10
            o["ok"] = ok if conns >= 16 else None
    return out


def fmt_ratio(o):
    if o.get("ratio") is None:
        return "-"
    if o["vs"].startswith("Flask"):
        return "%.1fx %s" % (o["ratio"], o["vs"])
    return "%.0f%% of %s" % (o["ratio"] * 100, o["vs"])


def fmt_target(o):
    if "target" not in o:
        return ""
    t = ("%gx" % o["target"]) if o["vs"].startswith("Flask") else ("%d%%" % round(o["target"] * 100))
    if o["ok"] is None:
        return "(>=%s)" % t
    return ("ok" if o["ok"] else "MISS") + " (>=%s)" % t


def print_table(summary, a, title):
    print()
    print(title)
    hdr = "%-30s %5s %10s %9s %9s %8s  %-24s %s" % ("endpoint", "conns", "req/s", "p50 ms", "p99 ms", "non-2xx",
                                                    "vs ceiling", "target (c>=16)")
    print(hdr)
    print("-" * len(hdr))
    names = ([] if a.no_ceilings else [c[0] for c in CEILINGS]) + a.endpoints
    what = dict((c[0], c[1]) for c in CEILINGS)
    what.update((e[0], e[1]) for e in ENDPOINTS)
    for name in names:
        for conns in a.conns:
            o = summary.get((name, conns))
            if not o:
                continue
            bad = "%d" % o["bad"] + ("+%d sock" % o["sockerr"] if o["sockerr"] else "")
            print("%-30s %5d %10.0f %9.2f %9.2f %8s  %-24s %s" % (
                what[name], conns, o["rps"], o["p50"], o["p99"], bad, fmt_ratio(o) if "vs" in o else "",
                fmt_target(o)))
    print()
    print("CPU time per request (µs, medians; 2 cores = %d µs of CPU per wall second): where the time went" % (
        2 * 1000000))
    print("%-30s %5s %10s %10s %10s %12s" % ("endpoint", "conns", "server", "nginx", "wrk", "cores busy"))
    for name in names:
        for conns in a.conns:
            o = summary.get((name, conns))
            if not o:
                continue
            srv, ngx, wrk = o["cpu"]
            print("%-30s %5d %10.1f %10.1f %10.1f %12.2f" % (what[name], conns, srv, ngx, wrk,
                                                            (srv + ngx + wrk) * o["rps"] / 1e6))
    extra = [(what[n], c, o["server_non2xx"] - o["bad"]) for (n, c), o in sorted(summary.items())
             if o.get("server_non2xx", 0) > o["bad"]]
    for w, c, k in extra:
        print("note: %s at %d connections: the server answered %d more non-2xx than wrk saw: uploads wrk "
              "abandoned when it stopped at the deadline (truncated bodies, answered 400)" % (w, c, k))
    put64 = summary.get(("put", 64))
    if put64:
        print("PUT p99 at 64 connections: %.1f ms (target <= %.0f ms, 1/10 of Flask's %.0f ms)" % (
            put64["p99"], FLASK_PUT_P99_MS / 10, FLASK_PUT_P99_MS))


def print_rss(rss):
    print()
    print("Memory per worker, kB: RSS (from /backend/status; counts shared library pages in full) / "
          "private (this worker's own pages) / PSS (shared pages divided among their users):")
    for label, workers in rss:
        print("  %-16s %s" % (label, "   ".join("pid %d: %d / %d / %d" % w for w in workers)))
    pids = [tuple(w[0] for w in ws) for _, ws in rss]
    if len(set(pids)) > 1:
        print("  (workers were replaced during the run: compare with care)")
    if len(rss) >= 2:
        first, last = dict((w[0], w) for w in rss[0][1]), dict((w[0], w) for w in rss[-1][1])
        grown = ["pid %d: RSS %+d, private %+d" % (p, last[p][1] - first[p][1], last[p][2] - first[p][2])
                 for p in sorted(set(first) & set(last))]
        print("  growth over the run: " + "; ".join(grown))


def machine():
    out = {"nproc": os.cpu_count()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        m = re.search(r"Model name:\s*(.*)", lscpu)
        out["cpu"] = m.group(1).strip() if m else "?"
    except OSError:
        out["cpu"] = "?"
    with open("/proc/loadavg") as f:
        out["load"] = " ".join(f.read().split()[:3])
    return out


def start_stack(a, scale=False):
    # Its own parent directory: a sweep of /tmp/s4s-test-* by a test run on the
    # same machine must not pull the stack out from under the benchmark.
    os.makedirs(BENCH_TMP, exist_ok=True)
    tempfile.tempdir = BENCH_TMP
    if a.pg:
        s4s.PG = a.pg  # the harness's PostgreSQL mode: a fresh database per stack
    s = BenchStack(nginx_workers=a.nginx_workers, body_buffer=a.nginx_body_buffer, workers=a.workers,
                   config=stack_config(a))
    if scale:
        s.write_config()
        rc, out, err = s4s.admin(s, "migrate")
        check(rc == 0, "s4s-admin migrate: %s%s" % (out, err))
        t0 = time.time()
        subprocess.run([sys.executable, os.path.join(HERE, "seed_scale.py"), s.data], check=True)
        print("# scale database seeded in %.1f s" % (time.time() - t0), flush=True)
    s.start()
    return s


def bench_once(a, scale):
    label = "scale" if scale else "small"
    s = start_stack(a, scale)
    try:
        t0 = time.time()
        d = seed(s)
        print("# %s: seeded through the API in %.1f s (stack in %s)" % (label, time.time() - t0, s.dir), flush=True)
        dur = durability(s, d)
        if a.hold:
            hold = os.path.join(s.dir, "hold.json")
            jobs = jobs_for(s, d)
            for name in list(jobs):
                run_lua(s, jobs[name], 2)
            with open(hold, "w") as f:
                json.dump({"port": s.port, "dir": s.dir, "reader": d.reader, "writer": d.writer,
                           "workers": worker_rss(s), "list_ids": d.list_ids, "md5": d.md5}, f)
            print("# holding: the stack is up, see %s (bench-*.lua beside it are wrk scripts for -t2);"
                  " remove that file to go on" % hold, flush=True)
            while os.path.exists(hold):
                time.sleep(0.5)
        results, rss = run_suite(s, d, a, label)
        rss.append(("after the run", worker_mem(s)))
        return results, rss, dur
    finally:
        if a.keep:
            os.environ["S4S_KEEP_TMP"] = "1"
        s.stop()


def main():
    a = ARGS
    if not WRK:
        die("wrk is not installed: apt-get install wrk")
    if a.pg and a.scale:
        die("--scale seeds SQLite directly; run it without --pg")
    m = machine()
    print("# s4s-fcgi from %s; %d workers; SENDFILE=%s; MAX_REQUESTS=%d; nginx worker_processes %s, "
          "client_body_buffer_size %s" % (a.builddir, a.workers, a.sendfile, a.max_requests, a.nginx_workers,
                                          a.nginx_body_buffer or "default (16k)"))
    print("# machine: %s CPUs, %s; load average at start %s" % (m["nproc"], m["cpu"], m["load"]))
    print("# database: %s" % ("PostgreSQL (a fresh database on %s)" % re.sub(r":[^:@/]*@", ":***@", a.pg)
                              if a.pg else "SQLite"))
    print("# wrk: -t1 at 1 connection, -t2 above; -d%ds; %d repeat(s), medians reported" % (a.duration, a.repeats))
    runs = {}
    if not (a.scale and a.scale_only):
        runs["small"] = bench_once(a, False)
    if a.scale:
        runs["scale"] = bench_once(a, True)
    summaries = {}
    for label, (results, rss, dur) in runs.items():
        summaries[label] = summarize(results, a)
        print_table(summaries[label], a, "== %s database: medians of %d repeat(s), %d s each ==" % (
            label, a.repeats, a.duration))
        print_rss(rss)
        print()
        print("Durability in force: " + "; ".join(dur) + "; blobs: temp file fsync'd before link(), "
              "then the directory (always)")
    if "small" in summaries and "scale" in summaries:
        print()
        print("== scale (100k projects, 1M assets, 50k users, 5k groups) vs small database ==")
        print("%-30s %5s %12s %12s %12s" % ("endpoint", "conns", "req/s ratio", "p50 ratio", "p99 ratio"))
        for name, what, _, _ in ENDPOINTS:
            for conns in a.conns:
                sm, sc = summaries["small"].get((name, conns)), summaries["scale"].get((name, conns))
                if sm and sc:
                    print("%-30s %5d %12.2f %12.2f %12.2f%s" % (
                        what, conns, sc["rps"] / sm["rps"], sc["p50"] / sm["p50"], sc["p99"] / sm["p99"],
                        "" if sc["p50"] / sm["p50"] <= 1.5 else "   (> 1.5x)"))
    print()
    print("# load average at end %s" % machine()["load"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": m, "args": {k: v for k, v in vars(a).items()},
                       "runs": {label: {"results": {"%s@%d" % k: v for k, v in res.items()}, "rss": rss,
                                        "durability": dur}
                                for label, (res, rss, dur) in runs.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
