#!/usr/bin/env python3
# The process model: a SIGKILLed worker is replaced and serving within 2 s;
# SIGHUP under a request loop fails no request and brings a new generation;
# a worker stuck past REQUEST_TIMEOUT is killed, logged with its request,
# and replaced; MAX_REQUESTS recycles workers; workers dying at start are
# respawned with backoff; USR1 reopens the log file; never a zombie.
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import Stack, Tap, parallel  # noqa: E402

t = Tap()

with Stack(workers=3, config={"REQUEST_TIMEOUT": "2", "MAX_REQUESTS": "0"}) as s:
    pids = s.worker_pids()
    t.eq(len(pids), 3, "three workers running")
    victim = pids[0]
    os.kill(victim, signal.SIGKILL)
    t0 = time.time()
    replaced = False
    while time.time() - t0 < 2.0:
        now = s.worker_pids()
        if victim not in now and len(now) == 3:
            replaced = True
            break
        time.sleep(0.02)
    t.ok(replaced, "SIGKILLed worker replaced within 2 s (%.2f s)" % (time.time() - t0))
    res = parallel(12, lambda i: s.get("/backend/api/status").status)
    t.eq(res, [200] * 12, "all workers serve after the replacement")
    st = s.status()
    t.eq(st["restarts"], 1, "/status counts the restart")

    # Zombies: the master reaps every child.
    zombies = [p for p, state in s.children_of(s.master.pid) if state == "Z"]
    t.eq(zombies, [], "no zombie children")

    # HUP under a steady request loop: not one request fails.
    stop = threading.Event()
    results = []

    def loop():
        while not stop.is_set():
            try:
                results.append(s.get("/backend/_test/sleep?ms=20").status)
            except Exception as e:  # a refused connection is a failure too
                results.append(repr(e))

    threads = [threading.Thread(target=loop) for _ in range(6)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    old = set(s.worker_pids())
    gen_before = s.status()["generation"]
    with open(s.conf_path, "a") as f:
        f.write("WORKERS=2\n")  # the reload re-reads the file
    s.signal(signal.SIGHUP)
    time.sleep(2.0)
    s.signal(signal.SIGHUP)  # a second reload while the first generation may still drain
    time.sleep(1.5)
    stop.set()
    for th in threads:
        th.join()
    bad = [x for x in results if x != 200]
    t.ok(len(results) > 50 and not bad, "SIGHUP twice under load: %d requests, %d failed" % (len(results), len(bad)), bad[:5])
    st = s.status()
    t.eq(st["generation"], gen_before + 2, "two reloads, two new generations")
    new = set(w["pid"] for w in st["workers"] if w["state"] in ("idle", "busy"))
    t.eq(len(new), 2, "the reloaded config (WORKERS=2) is in force")
    t.eq(old & new, set(), "every old worker was replaced")
    t.eq([p for p, state in s.children_of(s.master.pid) if state == "Z"], [], "no zombies after reloads")
    t.eq(len(s.children_of(s.master.pid)), 2, "old generations have exited")

    # A lone client across reloads: an old worker woken for a connection
    # (EPOLLEXCLUSIVE wakes one) must serve it, not exit and leave it queued.
    stuck = []
    worst = 0.0
    for i in range(20):
        s.signal(signal.SIGHUP)
        until = time.time() + 0.3
        while time.time() < until:
            t0 = time.time()
            try:
                s.get("/backend/status", timeout=2)
            except Exception as e:
                stuck.append((i, repr(e)))
                break
            worst = max(worst, time.time() - t0)
    t.eq(stuck, [], "a lone client is never left waiting across 20 reloads (worst %.0f ms)" % (worst * 1000))
    t.ok(worst < 1.0, "each request answered within 1 s across reloads (%.0f ms)" % (worst * 1000))

    # A worker stuck past REQUEST_TIMEOUT (2 s) is killed and replaced.
    t0 = time.time()
    r = s.get("/backend/_test/sleep?ms=8000", timeout=20)
    took = time.time() - t0
    t.eq(r.status, 502, "the stuck request gets a gateway error")
    t.ok("error" in (r.json() or {}), "as JSON (nginx error_page)", r)
    t.ok(took < 4.5, "and is cut at about REQUEST_TIMEOUT (%.1f s)" % took)
    time.sleep(0.5)
    t.eq(len(s.worker_pids()), 2, "the killed worker was replaced")
    log = s.log_text()
    t.ok("exceeded REQUEST_TIMEOUT" in log and "GET /_test/sleep" in log,
         "the kill is logged with the request it was on")
    t.eq(s.status()["timeouts"], 1, "/status counts the timeout")

    # USR1: logrotate moved the file; the master and workers reopen it.
    rotated = s.log_path + ".1"
    os.rename(s.log_path, rotated)
    s.signal(signal.SIGUSR1)
    time.sleep(0.5)
    for _ in range(6):
        s.get("/backend/api/status")
    t.ok(os.path.exists(s.log_path), "USR1 made a fresh log file")
    with open(s.log_path) as f:
        fresh = f.read()
    t.ok("access[" in fresh, "workers write to the reopened file")
    t.ok("log file reopened" in fresh, "master writes to the reopened file")

# Recycling after MAX_REQUESTS, and backoff for workers that die at start.
with Stack(workers=1, config={"MAX_REQUESTS": "5"}) as s:
    first = s.worker_pids()
    codes = [s.get("/backend/api/status").status for _ in range(23)]
    t.eq(codes, [200] * 23, "no request fails across recycling")
    time.sleep(0.3)
    st = s.status()
    t.ok(st["recycled"] >= 3, "workers recycled after MAX_REQUESTS (%d)" % st["recycled"], st)
    t.ok(s.worker_pids() != first, "a different worker serves now")
    t.eq(st["restarts"], 0, "recycling is not counted as a crash")

    open(os.path.join(s.data, ".test-fail-start"), "w").close()
    os.kill(s.worker_pids()[0], signal.SIGKILL)
    time.sleep(3.0)
    log = s.log_text()
    attempts = log.count("failing at start (test hook)")
    t.ok(2 <= attempts <= 6, "dying workers are retried with backoff, not in a tight loop (%d tries in 3 s)" % attempts)
    t.ok("died at start" in log, "backoff logged")
    os.unlink(os.path.join(s.data, ".test-fail-start"))
    deadline = time.time() + 10
    ok = False
    while time.time() < deadline:
        try:
            if s.get("/backend/api/status", timeout=2).status == 200:
                ok = True
                break
        except Exception:
            pass
        time.sleep(0.2)
    t.ok(ok, "serving again once the cause is gone")

t.done()
