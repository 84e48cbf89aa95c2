#!/usr/bin/env python3
# Two hosts on one PostgreSQL and one blob directory (runs when S4S_TEST_PG
# names a server): two independent server instances — two masters, two
# sockets, two scoreboards — behind one nginx upstream, sharing DATABASE_URI
# and DATA_DIR, as a multi-host deployment shares them.
# - both instances serve (each one's access log shows requests);
# - 24 simultaneous saves of one project with one expected version, spread
#   over both: exactly one 200, the others 409, one version row;
# - 16 simultaneous uploads of the same new asset over both: one row, one blob,
#   no temp leftovers;
# - one instance SIGKILLed (master and workers, as a host dies) in the middle
#   of a save loop: the other keeps serving, every acknowledged save is in the
#   database with its bytes, and only requests in flight on the dead instance
#   failed (502 from nginx, never acknowledged).
import atexit
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (PG, S4S_FCGI, Stack, Tap, db_rows, db_value, files_in, make_sb3, multipart,  # noqa: E402
                 parallel, project_send, sample_png, stored_sb3)

if not PG:
    print("1..0 # SKIP no PostgreSQL (S4S_TEST_PG is not set)")
    sys.exit(0)

t = Tap()
P = "/backend/api/projects"


def count_access(path, needle):
    with open(path, errors="replace") as f:
        return sum(1 for line in f if "access[" in line and needle in line)


stack = Stack(workers=2)
# Host B: its own master, socket, scoreboard and log; the same database and blobs.
b_sock = os.path.join(stack.dir, "s4s-b.sock")
b_log = os.path.join(stack.dir, "s4s-b.log")
b_conf = os.path.join(stack.dir, "s4s-b.conf")
stack.extra_upstreams = ["unix:" + b_sock]
# B starts first and is waited for, so nginx never finds its socket missing
# (nginx would sideline it for fail_timeout, and the test would see one host).
# B migrates the fresh database; A then finds it done. (Masters migrating at
# the same moment are t/94's case.)
cfg = dict(stack.config, LISTEN="unix:" + b_sock, LOG_FILE=b_log)
with open(b_conf, "w") as f:
    f.write("".join("%s=%s\n" % kv for kv in cfg.items()))
b = subprocess.Popen([S4S_FCGI, "-F", "-c", b_conf], env=stack.env, stdin=subprocess.DEVNULL,
                     stdout=open(os.path.join(stack.dir, "b.out"), "ab"), stderr=subprocess.STDOUT)


def stop_b():
    # Also when the test dies early: B must not outlive it (its workers follow its master).
    if b.poll() is None:
        b.send_signal(signal.SIGTERM)
        try:
            b.wait(timeout=10)
        except subprocess.TimeoutExpired:
            b.kill()
            b.wait()


atexit.register(stop_b)


def listening(log):
    try:
        with open(log, errors="replace") as f:
            return "listening on" in f.read()
    except FileNotFoundError:
        return False


deadline = time.time() + 60
while time.time() < deadline and not listening(b_log) and b.poll() is None:
    time.sleep(0.05)
with stack as s:
    try:
        # nginx found a server ready, but that may have been B alone: wait for both.
        deadline = time.time() + 30
        while time.time() < deadline and not (listening(s.log_path) and listening(b_log)):
            time.sleep(0.05)
        t.ok(listening(s.log_path) and listening(b_log), "hosts A and B listen, each on its own socket")
        logs = s.log_text() + open(b_log, errors="replace").read()
        t.eq(logs.count("applied migration 001_upstream_schema"), 1,
             "two masters on one fresh database: one applied the migrations")
        t.ok("schema is up to date" in logs, "… the other found them applied")

        tok = s.login("anna")
        # nginx sidelines a server for fail_timeout (10 s) when a connection to
        # it fails; one that was not up yet when nginx started may be sidelined:
        # wait until both have answered something.
        deadline = time.time() + 20
        while time.time() < deadline and not (count_access(s.log_path, "GET /api/status") and
                                               count_access(b_log, "GET /api/status")):
            s.get("/backend/api/status")
            time.sleep(0.1)
        res = parallel(8, lambda i: [s.get(P, headers=s.auth(tok)).status for _ in range(10)])
        t.eq(sorted(set(c for r in res for c in r)), [200], "80 list requests over both hosts: all 200")
        a_n, b_n = count_access(s.log_path, "GET /api/projects"), count_access(b_log, "GET /api/projects")
        if not t.ok(a_n > 0 and b_n > 0, "both hosts served them (A %d, B %d)" % (a_n, b_n)):
            # On stderr: prove shows it without -v.
            for name in ("s4s.log", "master.out", "s4s-b.log", "b.out", "nginx-error.log"):
                try:
                    with open(os.path.join(s.dir, name), errors="replace") as f:
                        sys.stderr.write("== %s (end)\n%s" % (name, "".join(f.readlines()[-25:])))
                except OSError as e:
                    sys.stderr.write("== %s: %s\n" % (name, e))

        # ---- concurrent saves of one project from both hosts
        pid = project_send(s, "POST", P + "?title=Shared", tok, make_sb3("v1")).json()["id"]
        before_b = count_access(b_log, "PUT /api/projects/")
        res = parallel(24, lambda i: project_send(s, "PUT", "%s/%d" % (P, pid), tok, make_sb3("race-%d" % i),
                                                  headers={"If-Match": '"1"'}))
        codes = sorted(r.status for r in res)
        t.eq(codes, [200] + [409] * 23, "24 simultaneous saves, one expected version: one 200, 23× 409")
        t.ok(count_access(b_log, "PUT /api/projects/") > before_b and
             count_access(s.log_path, "PUT /api/projects/") > 0, "… the saves reached both hosts")
        t.eq(db_rows(s, "SELECT version FROM project_versions WHERE project_id = ? ORDER BY version", (pid,)),
             [(1,), (2,)], "one version row per version")
        winner = [r for r in res if r.status == 200][0]
        t.eq(winner.json().get("version"), 2, "the winner made version 2")
        t.eq(s.get("%s/%d/download" % (P, pid), headers=s.auth(tok)).body, stored_sb3(s, pid),
             "the stored bytes are the winner's, served through either host")

        # ---- concurrent identical asset uploads over both hosts
        png = sample_png(9, 9, seed=98)
        body, ctype = multipart({"type": "costume", "format": "png"},
                                {"asset": ("a.png", png, "application/octet-stream")})
        res = parallel(16, lambda i: s.req("POST", "/backend/api/assets/", body=body,
                                           headers={"Content-Type": ctype, "X-Session-ID": tok}))
        t.eq(sorted(r.status for r in res), [200] * 16, "16 simultaneous identical uploads: all 200")
        md5 = hashlib.md5(png).hexdigest()
        t.eq({(r.json() or {}).get("assetId") for r in res}, {md5}, "… one id")
        t.eq(db_value(s, "SELECT COUNT(*) FROM assets WHERE md5 = ?", (md5,)), 1, "… one row")
        sha = hashlib.sha256(png).hexdigest()
        t.eq([f for f in files_in(os.path.join(s.data, "blobs")) if f.endswith(sha[2:])],
             [os.path.join(s.data, "blobs", sha[:2], sha[2:])], "… one blob")
        t.eq(files_in(os.path.join(s.data, "tmp")), [], "… no temp leftovers")

        # ---- host B dies in the middle of a save loop
        users = ["anna", "ben", "clara"]
        toks = {u: s.login(u) for u in users}
        pids = {u: project_send(s, "POST", P + "?title=Loop", toks[u], make_sb3(u + "-1")).json()["id"]
                for u in users}
        acked = {u: (1, make_sb3(u + "-1")) for u in users}
        failures = {u: [] for u in users}
        stop = threading.Event()

        def loop(u):
            n = 1
            while not stop.is_set():
                n += 1
                data = make_sb3("%s-%d" % (u, n))
                version = acked[u][0]
                try:
                    r = project_send(s, "PUT", "%s/%d" % (P, pids[u]), toks[u], data,
                                     headers={"If-Match": '"%d"' % version}, timeout=30)
                except Exception as e:
                    failures[u].append(repr(e))
                    continue
                if r.status == 200:
                    acked[u] = (r.json()["version"], data)
                elif r.status == 409:
                    # A save that died with host B after committing: read the truth and go on.
                    acked[u] = (r.json()["current_version"], None)
                else:
                    failures[u].append(r.status)

        threads = [threading.Thread(target=loop, args=(u,)) for u in users]
        for th in threads:
            th.start()
        b_before = count_access(b_log, "PUT /api/projects/")
        time.sleep(1.5)
        t.ok(count_access(b_log, "PUT /api/projects/") > b_before, "host B was taking saves when it died")
        victims = [b.pid] + [p for p, _ in s.children_of(b.pid)]
        for p in victims:
            os.kill(p, signal.SIGKILL)
        b.wait()
        killed_at = time.time()
        time.sleep(2.0)
        stop.set()
        for th in threads:
            th.join()
        saves = {u: acked[u][0] for u in users}
        t.ok(all(v > 3 for v in saves.values()), "the loop saved on (versions %s)" % saves)
        bad = [f for u in users for f in failures[u]]
        t.ok(all(f == 502 for f in bad) and len(bad) <= len(victims),
             "only requests in flight on the dead host failed (%s)" % bad)
        for u in users:
            row = db_rows(s, "SELECT version FROM projects WHERE id = ?", (pids[u],))[0]
            version, data = acked[u]
            t.eq(row[0], version, "%s: the database holds the last acknowledged version %d" % (u, version))
            if data is not None:
                t.eq(stored_sb3(s, pids[u]), data, "%s: … with the acknowledged bytes" % u)
        after = [s.get(P, headers=s.auth(toks["ben"])).status for _ in range(20)]
        t.eq(after, [200] * 20, "host A alone serves everything after the kill")
        t.ok(time.time() - killed_at < 30, "no request hung")
        t.eq(db_rows(s, "SELECT COUNT(*) FROM projects p WHERE NOT EXISTS (SELECT 1 FROM project_versions v "
                        "WHERE v.project_id = p.id AND v.version = p.version)"), [(0,)],
             "every project's current version has its version row")
    finally:
        stop_b()

t.done()
