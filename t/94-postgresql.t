#!/usr/bin/env python3
# What only the PostgreSQL driver has to get right (runs when S4S_TEST_PG
# names a server, as `contrib/test.sh --pg` and CI do):
# - a worker whose connection is cut (pg_terminate_backend) answers that one
#   request with a clean 503 JSON error and reconnects for the next; nothing is
#   lost and the worker is the same process;
# - a database server that stops and comes back (a private cluster) costs 503s
#   quickly, never a hung or dead worker; requests that need no database are
#   served meanwhile;
# - six `s4s-admin migrate` started at once on a fresh database (hosts
#   starting together): all succeed, exactly one applies the migrations;
# - SERIALIZABLE writes under contention: 24 simultaneous saves of one project
#   with one expected version give exactly one 200, 409 for the rest, no 5xx,
#   one new version row; 16 simultaneous first uploads of one asset give one row.
import hashlib
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (PG, S4S_ADMIN, SRCDIR, Stack, Tap, db_rows, db_value, free_port, make_sb3, multipart,  # noqa: E402
                 parallel, pg_exec, project_send, sample_png)

if not PG:
    print("1..0 # SKIP no PostgreSQL (S4S_TEST_PG is not set)")
    sys.exit(0)

t = Tap()
P = "/backend/api/projects"

with Stack(workers=1) as s:
    tok = s.login("anna")
    r = project_send(s, "POST", P + "?title=Kept", tok, make_sb3("kept"))
    t.eq(r.status, 200, "a project is created")
    pid = r.json()["id"]
    worker = s.worker_pids()

    cut = s.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    t.ok(str(cut).strip().endswith("1"), "the worker's connection was terminated (%r)" % cut)
    r = s.get(P, headers=s.auth(tok))
    t.eq(r.status, 503, "the request that finds its connection gone: 503")
    t.eq(r.json(), {"error": "The server is busy, please try again"}, "… as a JSON error")
    t.eq(r.header("Retry-After"), "1", "… with Retry-After")
    r = s.get(P, headers=s.auth(tok))
    t.eq(r.status, 200, "the next request reconnects and succeeds")
    t.eq([p["id"] for p in r.json()["projects"]], [pid], "… with the data intact")
    t.eq(s.worker_pids(), worker, "the same worker process served both")
    t.ok("db: postgresql: reconnected" in s.log_text(), "the reconnect is logged")

    # Writes after a cut: the cut hits a write, the retry by the client lands once.
    s.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    r = project_send(s, "PUT", "%s/%d" % (P, pid), tok, make_sb3("after-cut"), headers={"If-Match": '"1"'})
    t.eq(r.status, 503, "a save whose connection was cut: 503, not 500")
    t.eq(db_value(s, "SELECT version FROM projects WHERE id = ?", (pid,)), 1, "… and nothing changed")
    r = project_send(s, "PUT", "%s/%d" % (P, pid), tok, make_sb3("after-cut"), headers={"If-Match": '"1"'})
    t.eq((r.status, r.json().get("version")), (200, 2), "the client's retry saves it as version 2")

# Hosts starting at once on a fresh database take turns on the migration lock.
fresh = "s4s_t94_migrate_%d" % os.getpid()
pg_exec(PG, "CREATE DATABASE %s" % fresh)
try:
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write("DATA_DIR=%s\nDATABASE_URI=%s\n" % (tempfile.mkdtemp(prefix="s4s-t94-"),
                                                     PG.rsplit("/", 1)[0] + "/" + fresh))
    conf.close()
    procs = [subprocess.Popen([S4S_ADMIN, "-c", conf.name, "migrate"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    t.eq([p.returncode for p in procs], [0] * 6, "six simultaneous migrate runs all succeed")
    t.eq(sorted("applied 3" in o for o in outs), [False] * 5 + [True],
         "exactly one applied the migrations, the others found them done")
    t.eq(pg_exec(PG.rsplit("/", 1)[0] + "/" + fresh, "SELECT COUNT(*) FROM schema_migrations").strip(), "3",
         "each migration recorded once")
finally:
    pg_exec(PG, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % fresh)

# Serializable writes under contention, through nginx with 6 workers.
with Stack(workers=6) as s:
    tok = s.login("anna")
    pid = project_send(s, "POST", P + "?title=Race", tok, make_sb3("v1")).json()["id"]
    res = parallel(24, lambda i: project_send(s, "PUT", "%s/%d" % (P, pid), tok, make_sb3("race-%d" % i),
                                              headers={"If-Match": '"1"'}).status)
    t.eq(sorted(res), [200] + [409] * 23, "24 simultaneous saves with one expected version: one 200, 23× 409")
    t.eq(db_rows(s, "SELECT version, COUNT(*) FROM project_versions WHERE project_id = ? GROUP BY version "
                    "ORDER BY version", (pid,)), [(1, 1), (2, 1)], "exactly one version row per version")
    png = sample_png(8, 8, seed=94)
    body, ctype = multipart({"type": "costume", "format": "png"},
                            {"asset": ("a.png", png, "application/octet-stream")})
    res = parallel(16, lambda i: s.req("POST", "/backend/api/assets/", body=body,
                                       headers={"Content-Type": ctype, "X-Session-ID": tok}))
    t.eq(sorted(r.status for r in res), [200] * 16, "16 simultaneous uploads of new bytes: all 200")
    t.eq({(r.json() or {}).get("assetId") for r in res}, {hashlib.md5(png).hexdigest()},
         "… all with the same id")
    t.eq(db_value(s, "SELECT COUNT(*) FROM assets"), 1, "… one asset row")
    t.ok(" 5" not in "".join(" %d" % r.status for r in res), "no 5xx anywhere")

# The database server goes away and comes back: a private cluster.
pgdir = tempfile.mkdtemp(prefix="s4s-pg94-")
port = free_port()
pg = os.path.join(SRCDIR, "contrib", "pg.sh")


def cluster(cmd):
    return subprocess.run(["sh", pg, cmd, pgdir] + ([str(port)] if cmd == "start" else []),
                          capture_output=True, text=True, timeout=120)


try:
    admin_uri = cluster("start").stdout.strip()
    pg_exec(admin_uri, "CREATE DATABASE s4s94")
    uri = admin_uri.rsplit("/", 1)[0] + "/s4s94"
    with Stack(workers=2, config={"DATABASE_URI": uri, "DB_BUSY_TIMEOUT": "1000"}) as s:
        tok = s.login("ben")
        t.eq(s.get(P, headers=s.auth(tok)).status, 200, "private cluster: served")
        workers = sorted(s.worker_pids())
        t.eq(cluster("stop").returncode, 0, "the database server is stopped")
        t0 = time.time()
        codes = [s.get(P, headers=s.auth(tok), timeout=20).status for _ in range(4)]
        took = time.time() - t0
        t.eq(codes, [503] * 4, "while it is down every database request gets 503")
        t.ok(took < 8, "… quickly (4 requests in %.2f s)" % took)
        t.eq(s.get("/backend/api/status").status, 200, "requests without the database are served meanwhile")
        t.eq(sorted(s.worker_pids()), workers, "no worker died")
        t.eq(cluster("start").returncode, 0, "the database server is back")
        deadline = time.time() + 10
        codes = []
        while time.time() < deadline:
            codes.append(s.get(P, headers=s.auth(tok)).status)
            if codes[-3:] == [200, 200, 200]:
                break
        t.eq(codes[-3:], [200, 200, 200], "served again once it is back (%s)" % codes)
        t.ok(all(c in (200, 503) for c in codes), "nothing but 200 and 503 on the way")
finally:
    cluster("stop")
    subprocess.run(["rm", "-rf", pgdir])

t.done()
