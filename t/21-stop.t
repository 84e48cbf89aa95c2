#!/usr/bin/env python3
# Stopping: SIGQUIT lets in-flight requests finish, then every process is
# gone within 10 s; SIGTERM and SIGINT stop everything within 2 s; the
# unix socket is removed; `s4s-fcgi -t` checks a configuration.
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import S4S_FCGI, Stack, Tap  # noqa: E402

t = Tap()


def all_gone(pids, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(os.path.exists("/proc/%d" % p) and open("/proc/%d/stat" % p).read().split()[2] != "Z"
                   for p in pids):
            return True
        time.sleep(0.02)
    return False


# QUIT: graceful. Slow requests in flight complete with 200.
with Stack(workers=2) as s:
    pids = [s.master.pid] + s.worker_pids()
    results = []

    def slow():
        try:
            results.append(s.get("/backend/_test/sleep?ms=1500", timeout=20).status)
        except Exception as e:
            results.append(repr(e))

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for th in threads:
        th.start()
    time.sleep(0.4)  # both are now in flight
    t0 = time.time()
    s.signal(signal.SIGQUIT)
    for th in threads:
        th.join()
    t.eq(results, [200, 200], "in-flight requests finish during a graceful stop")
    t.ok(all_gone(pids, 10), "master and workers gone within 10 s of QUIT (%.1f s)" % (time.time() - t0))
    s.master.wait(timeout=5)
    t.eq(s.master.returncode, 0, "master exits 0 after QUIT")
    t.ok(not os.path.exists(s.sock), "unix socket removed")

for sig, name in ((signal.SIGTERM, "TERM"), (signal.SIGINT, "INT")):
    with Stack(workers=3) as s:
        pids = [s.master.pid] + s.worker_pids()
        # one worker busy on a long request must not delay a fast stop
        th = threading.Thread(target=lambda: s.get("/backend/_test/sleep?ms=8000", timeout=20) if True else None)
        th.daemon = True
        th.start()
        time.sleep(0.3)
        t0 = time.time()
        s.signal(sig)
        t.ok(all_gone(pids, 2.0), "SIG%s: every process gone within 2 s (%.2f s)" % (name, time.time() - t0))
        t.ok("ignored TERM" not in s.log_text(), "SIG%s: workers die on TERM without escalation to KILL" % name)

# -t: configuration check.
with Stack(workers=1) as s:
    s.write_config()
    r = subprocess.run([S4S_FCGI, "-t", "-c", s.conf_path], capture_output=True, text=True)
    t.eq(r.returncode, 0, "-t accepts a good configuration")
    with open(s.conf_path, "a") as f:
        f.write("WROKERS=4\n")
    r = subprocess.run([S4S_FCGI, "-t", "-c", s.conf_path], capture_output=True, text=True)
    t.eq(r.returncode, 1, "-t rejects an unknown key")
    t.ok("WROKERS" in r.stderr, "and names it", r.stderr)
    r = subprocess.run([S4S_FCGI, "-t", "-c", s.conf_path.replace("s4s.conf", "nope.conf")],
                       capture_output=True, text=True)
    t.eq(r.returncode, 1, "-t rejects a missing file")
    r = subprocess.run([S4S_FCGI, "-t", "-n", "0"], capture_output=True, text=True,
                       env=dict(os.environ, DATA_DIR=s.data))
    t.eq(r.returncode, 1, "-n 0 is refused")
    t.ok("WORKERS" in r.stderr, "naming WORKERS", r.stderr)

t.done()
