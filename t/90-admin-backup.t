#!/usr/bin/env python3
# s4s-admin backup and restore: a backup taken while a loop of clients keeps
# creating and updating projects and uploading assets through the real API,
# restored into a fresh data directory, a server started on it: everything
# acknowledged before the backup began is there byte for byte (downloaded
# through nginx with a session that was itself restored), and check passes
# on the restored copy. Also: the manifest's numbers, hard links vs
# --copy, restore refusing a non-empty DATA_DIR and a damaged backup.
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (Stack, Tap, admin, db_dump, make_sb3, md5, multipart,  # noqa: E402
                 project_send, sample_png, sample_svg)

t = Tap()


class Writer:
    """Clients writing through the API until stopped; every acknowledged write is
    recorded with the time its answer arrived."""

    def __init__(self, s, token):
        self.s, self.token = s, token
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.projects = {}   # id -> [(ack_time, version, sb3 bytes, thumbnail bytes or None)]
        self.assets = []     # (ack_time, md5, bytes)
        self.errors = []
        self.n = 0
        self.mine = {}       # thread -> the project ids it created (only it updates them)

    def create(self, i, k):
        sb3 = make_sb3("create-%d-%s" % (i, os.urandom(4).hex()))
        thumb = sample_png(2, 2, seed=i) if i % 2 else None
        r = project_send(self.s, "POST", "/backend/api/projects?title=P%d" % i, self.token, sb3=sb3, thumb=thumb)
        if r.status != 200:
            self.errors.append(("create", r.status, r.body[:200]))
            return
        j = r.json()
        with self.lock:
            self.projects[j["id"]] = [(time.time(), j["version"], sb3, thumb)]
            self.mine.setdefault(k, []).append(j["id"])

    def update(self, i, k):
        with self.lock:
            if not self.mine.get(k):
                return
            pid = self.mine[k][i % len(self.mine[k])]
            hist = self.projects[pid]
            version = hist[-1][1]
            thumb = hist[-1][3]
        sb3 = make_sb3("update-%d-%s" % (i, os.urandom(4).hex()))
        r = project_send(self.s, "PUT", "/backend/api/projects/%d" % pid, self.token, sb3=sb3,
                         headers={"If-Match": '"%d"' % version})
        if r.status != 200:
            self.errors.append(("update", r.status, r.body[:200]))
            return
        with self.lock:
            self.projects[pid].append((time.time(), r.json()["version"], sb3, thumb))

    def asset(self, i, k):
        data = sample_svg("asset-%d-%s" % (i, os.urandom(4).hex()))
        body, ctype = multipart({"type": "costume", "format": "svg"}, {"asset": ("a.svg", data, "image/svg+xml")})
        r = self.s.req("POST", "/backend/api/assets/", body=body,
                       headers={"Content-Type": ctype, "X-Session-ID": self.token})
        if r.status != 200 or (r.json() or {}).get("assetId") != md5(data):
            self.errors.append(("asset", r.status, r.body[:200]))
            return
        with self.lock:
            self.assets.append((time.time(), md5(data), data))

    def run(self, k):
        i = k
        while not self.stop.is_set():
            (self.create, self.update, self.asset)[i % 3](i, k)
            i += 2
            self.n += 1


with Stack(workers=3) as s:
    anna = s.login("anna")
    w = Writer(s, anna)
    threads = [threading.Thread(target=w.run, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    while w.n < 30:          # some history first
        time.sleep(0.02)

    backup_dir = os.path.join(s.dir, "backup-1")
    began = time.time()
    t0 = time.time()
    rc, out, err = admin(s, "backup", backup_dir)
    backup_s = time.time() - t0
    n_at_end = w.n
    while w.n < n_at_end + 15:  # the loop goes on after the backup, too
        time.sleep(0.02)
    w.stop.set()
    for th in threads:
        th.join()
    t.eq(rc, 0, "backup while the API takes writes: exit 0")
    t.ok("hard-linked" in out, "backup says what it did", out + err)
    during = sum(1 for h in w.projects.values() for x in h if began <= x[0] <= began + backup_s) + \
        sum(1 for a in w.assets if began <= a[0] <= began + backup_s)
    t.diag("backup under load took %.2f s, %d writes acknowledged meanwhile; %d writes in all"
           % (backup_s, during, w.n))
    t.eq(w.errors, [], "the write loop had no failures")

    # The manifest agrees with the copy it describes.
    with open(os.path.join(backup_dir, "manifest.json")) as f:
        man = json.load(f)
    copy_db = os.path.join(backup_dir, "main.db")
    with open(copy_db, "rb") as f:
        t.eq(man["database"]["sha256"], hashlib.sha256(f.read()).hexdigest(), "manifest: the database file's sha256")
    dump = db_dump(copy_db)
    t.eq(man["tables"], {k: len(v) for k, v in dump.items()}, "manifest: rows per table match the copy")
    refs = set()
    c = sqlite3.connect(copy_db)
    for sql in ("SELECT sb3_sha256 FROM projects", "SELECT thumbnail_sha256 FROM projects",
                "SELECT sha256 FROM project_versions", "SELECT sha256 FROM assets"):
        refs |= {r[0] for r in c.execute(sql) if r[0]}
    jm = c.execute("PRAGMA journal_mode").fetchone()[0]
    c.close()
    t.eq(jm, "delete", "the copy is a self-contained file (rollback journal, no -wal needed)")
    in_backup = set()
    for root, _, names in os.walk(os.path.join(backup_dir, "blobs")):
        for n in names:
            in_backup.add(os.path.basename(root) + n)
    t.eq(in_backup, refs, "the backup holds exactly the blobs its database references")
    t.eq((man["blobs"]["count"], man["blobs"]["linked"], man["blobs"]["missing"]), (len(refs), len(refs), []),
         "manifest: blob count; same file system, so every blob hard-linked")
    t.eq(man["blobs"]["bytes"], sum(os.path.getsize(os.path.join(backup_dir, "blobs", h[:2], h[2:])) for h in refs),
         "manifest: blob bytes")
    some = sorted(refs)[0]
    t.eq(os.stat(os.path.join(backup_dir, "blobs", some[:2], some[2:])).st_ino,
         os.stat(os.path.join(s.data, "blobs", some[:2], some[2:])).st_ino, "a linked blob shares its inode")

    # What was acknowledged before the backup began, as the backup has it.
    before_projects = {}
    for pid, hist in w.projects.items():
        acked = [h for h in hist if h[0] < began]
        if acked:
            before_projects[pid] = (acked[-1], {h[1]: h for h in hist})
    before_assets = [a for a in w.assets if a[0] < began]
    t.ok(len(before_projects) >= 5 and len(before_assets) >= 5,
         "enough writes were acknowledged before the backup began (%d projects, %d assets)"
         % (len(before_projects), len(before_assets)))

    rc, out, err = admin(s, "backup", "--copy", os.path.join(s.dir, "backup-2"))
    with open(os.path.join(s.dir, "backup-2", "manifest.json")) as f:
        man2 = json.load(f)
    t.ok(rc == 0 and man2["blobs"]["copied"] == man2["blobs"]["count"] > 0 and man2["blobs"]["linked"] == 0,
         "backup --copy copies every blob", out + err)
    rc, out, err = admin(s, "backup", backup_dir)
    t.ok(rc != 0 and "not empty" in err, "backup refuses a directory that is not empty", err)

    # Restore into a fresh data directory and run a server on it.
    s2 = Stack(workers=2)
    rc, out, err = admin(s2, "restore", backup_dir)
    t.eq(rc, 0, "restore into an empty DATA_DIR")
    t.ok("restored" in out, "restore reports", out + err)
    rc, out, err = admin(s2, "check")
    t.ok(rc == 0 and "RESULT: all is well" in out, "check passes on the restored copy", out + err)
    rc, out, err = admin(s2, "restore", backup_dir)
    t.ok(rc != 0 and "not empty" in err, "restore refuses a DATA_DIR that holds data", err)
    rc, out, err = admin(s2, "restore", "--force", backup_dir)
    t.eq(rc, 0, "restore --force replaces it (server stopped)")
    t.eq(db_dump(os.path.join(s2.data, "main.db")), dump, "the restored database holds exactly the backup's rows")

    with s2:
        # anna's session was in the backup: the same token works on the restored server.
        r = s2.get("/backend/api/user", headers={"X-Session-ID": anna})
        t.eq(r.status, 200, "a session from before the backup works on the restored server")
        bad = []
        for pid, (last, by_version) in sorted(before_projects.items()):
            r = s2.get("/backend/api/projects/%d/download" % pid, headers={"X-Session-ID": anna})
            etag = r.header("ETag") or '""'
            v = int(etag.strip('"') or 0)
            if r.status != 200 or v < last[1] or v not in by_version or r.body != by_version[v][2]:
                bad.append((pid, r.status, v, last[1]))
                continue
            thumb = by_version[v][3]
            if thumb is not None:
                r = s2.get("/backend/api/projects/%d/thumbnail" % pid, headers={"X-Session-ID": anna})
                if r.status != 200 or r.body != thumb:
                    bad.append((pid, "thumbnail", r.status))
        t.eq(bad, [], "every project acknowledged before the backup: its latest acknowledged version (or "
                      "later) downloads byte for byte")
        bad = []
        for _, m, data in before_assets:
            r = s2.get("/backend/api/assets/%s" % m)
            if r.status != 200 or r.body != data:
                bad.append((m, r.status))
        t.eq(bad, [], "every asset acknowledged before the backup is served byte for byte")

    # A damaged backup is refused before anything is touched.
    with open(copy_db, "r+b") as f:
        f.seek(200)
        b = f.read(1)
        f.seek(200)
        f.write(bytes([b[0] ^ 0xFF]))
    s3 = Stack(workers=1, idp=False)
    rc, out, err = admin(s3, "restore", backup_dir)
    t.ok(rc != 0 and "damaged" in err and not os.path.exists(os.path.join(s3.data, "main.db")),
         "restore refuses a backup whose database does not match its manifest", err)
    rc, out, err = admin(s3, "restore", os.path.join(s.dir, "nope"))
    t.ok(rc != 0 and "manifest.json" in err, "restore refuses a directory that is not a finished backup", err)
    s3.stop()

t.done()
