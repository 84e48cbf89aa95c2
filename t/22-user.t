#!/usr/bin/env python3
# Privilege drop: started as root with -u nobody, the master binds first and
# then every process runs as nobody; files it creates belong to nobody.
import os
import pwd
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import Stack, Tap  # noqa: E402

t = Tap()
if os.geteuid() != 0:
    print("1..0 # SKIP privilege drop needs root")
    sys.exit(0)

nobody = pwd.getpwnam("nobody")


def uids(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    return None


s = Stack(workers=2, config={"RUN_AS": "nobody"})
# The log file is opened before the drop; the data directory is the new user's.
os.makedirs(s.data)
os.chown(s.data, nobody.pw_uid, nobody.pw_gid)
with s:
    t.eq(uids(s.master.pid), [nobody.pw_uid] * 4, "master runs as nobody (real, effective, saved, fs)")
    for pid in s.worker_pids():
        t.eq(uids(pid), [nobody.pw_uid] * 4, "worker %d runs as nobody" % pid)
    st = os.stat(s.sock)
    t.eq(st.st_uid, 0, "the socket was bound before the drop (owned by root)")
    t.eq(oct(st.st_mode & 0o777), "0o666", "LISTEN_MODE applied")
    if s.pg_uri:
        t.skip("the database was created by nobody", "PostgreSQL: the database is no file in DATA_DIR")
    else:
        db = os.path.join(s.data, "main.db")
        t.eq(os.stat(db).st_uid, nobody.pw_uid, "the database was created by nobody")
    t.eq(os.stat(os.path.join(s.data, "blobs")).st_uid, nobody.pw_uid, "the blob store was created by nobody")
    t.eq(s.get("/backend/api/status").status, 200, "serves after the drop")
    t.ok("running as nobody" in s.log_text(), "the drop is logged")

t.done()
