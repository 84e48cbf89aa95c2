#!/usr/bin/env python3
# The 100-student soak, short: contrib/soak/soak.py's school (100 students in
# four classes, 5 teachers, some students on two devices) for 25 seconds
# through nginx, then its audit as TAP: no 5xx, no lost acknowledged write
# (projects, conflict copies, assets, backpack), the 409 metric equal to the
# 409s clients saw, no duplicate users/groups/memberships/assets, `s4s-admin
# check` clean, worker RSS flat after warm-up. `python3 contrib/soak/soak.py
# --minutes 3` is the long run.
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "contrib", "soak"))
from s4s import Stack, Tap  # noqa: E402
import soak  # noqa: E402

t = Tap()
SECONDS = float(os.environ.get("S4S_SOAK_SECONDS", "25"))

with Stack(workers=4, config=soak.stack_config(4)) as s:
    run = soak.Soak(s, students=100, teachers=5, threads=12, seed=99)
    run.run(SECONDS, warmup=SECONDS * 0.4)
    checks = run.audit()
    for ok, name, detail in checks:
        t.ok(ok, name, detail)
    t.ok(run.kind_count("autosave") >= 100, "the load ran: %d autosaves" % run.kind_count("autosave"))
    t.ok(run.seen_409 > 0, "two-device students met conflicts (%d 409s)" % run.seen_409)
    t.diag(run.table())

t.done()
