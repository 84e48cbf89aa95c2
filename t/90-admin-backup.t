#!/usr/bin/env python3
# s4s-admin backup and restore: a backup taken while a loop of clients keeps
# creating and updating projects and uploading assets through the real API,
# restored into a fresh data directory, a server started on it: everything
# acknowledged before the backup began is there byte for byte (downloaded
# through nginx with a session that was itself restored), and check passes
# on the restored copy. Also: the manifest's numbers, hard links vs
# --copy, restore refusing a non-empty DATA_DIR and a damaged backup.
# With S4S_TEST_PG the same through pg_dump's snapshot: the dump is restored
# with pg_restore into a fresh database and compared, and the snapshot is
# checked for consistency against what the writers were acknowledged (in both
# modes); restore refuses a database holding rows and a backup of the other
# kind of database.
import atexit
import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (PG, Stack, Tap, admin, admin_json, db_dump, db_rows, db_value,  # noqa: E402
                 make_sb3, md5, multipart, pg_database_uri, pg_exec, pg_rows, project_send,
                 sample_png, sample_svg)

t = Tap()


def pg_tool(name):
    """A PostgreSQL client program: the newest /usr/lib/postgresql/N/bin one, else PATH's."""
    root = "/usr/lib/postgresql"
    best = None
    for d in os.listdir(root) if os.path.isdir(root) else []:
        p = os.path.join(root, d, "bin", name)
        if d.isdigit() and os.access(p, os.X_OK) and (best is None or int(d) > best[0]):
            best = (int(d), p)
    found = best[1] if best else shutil.which(name)
    if not found:
        raise RuntimeError("%s not found: install the Debian package postgresql-client" % name)
    return found


def pg_db_dump(uri):
    """db_dump for a PostgreSQL database: every row of every table of its schema, sorted."""
    out = {}
    for (name,) in pg_rows(uri, "SELECT tablename FROM pg_catalog.pg_tables "
                                "WHERE schemaname = current_schema() ORDER BY tablename"):
        out[name] = sorted(pg_rows(uri, 'SELECT * FROM "%s"' % name), key=repr)
    return out


def pg_restore_fresh(dump_path):
    """pg_restore a dump into a new database; returns (its name, its URI, pg_restore's result)."""
    name = "s4s_t_" + secrets.token_hex(8)
    pg_exec(PG, "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'" % name)
    atexit.register(pg_drop, name)  # also when a failure ends the test early
    uri = pg_database_uri(PG, name)
    p = subprocess.run([pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction",
                        "--exit-on-error", "-d", uri, dump_path], capture_output=True, timeout=120)
    return name, uri, p


def pg_drop(name):
    try:
        pg_exec(PG, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print("# could not drop database %s: %s" % (name, str(e).replace("\n", " ")), flush=True)


def pg_table_count(uri):
    return int(pg_exec(uri, "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()"))


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
    ref_sqls = ("SELECT sb3_sha256 FROM projects", "SELECT thumbnail_sha256 FROM projects",
                "SELECT sha256 FROM project_versions", "SELECT sha256 FROM assets")
    if PG:
        # The dump is restored into a fresh database: that is the copy to compare.
        copy_db = os.path.join(backup_dir, "database.pgdump")
        with open(copy_db, "rb") as f:
            data = f.read()
        t.eq(man["database"]["sha256"], hashlib.sha256(data).hexdigest(), "manifest: the database file's sha256")
        copy_name, copy_uri, p = pg_restore_fresh(copy_db)
        t.ok(p.returncode == 0, "pg_restore restores the dump into a fresh database", p.stderr.decode())
        dump = pg_db_dump(copy_uri)
        t.eq(man["tables"], {k: len(v) for k, v in dump.items()}, "manifest: rows per table match the copy")
        refs = set()
        for sql in ref_sqls:
            refs |= {r[0] for r in pg_rows(copy_uri, sql) if r[0]}
        t.eq((data[:5], man["database"]["driver"], man["database"]["file"], man["database"]["pg_dump_major"] >= 10,
              man["source"]["database"]),
             (b"PGDMP", "postgresql", "database.pgdump", True, s.pg_uri),
             "the copy is one pg_dump archive (custom format), and the manifest says so")

        def copy_rows(sql):
            return pg_rows(copy_uri, sql)
    else:
        copy_db = os.path.join(backup_dir, "main.db")
        with open(copy_db, "rb") as f:
            t.eq(man["database"]["sha256"], hashlib.sha256(f.read()).hexdigest(), "manifest: the database file's sha256")
        dump = db_dump(copy_db)
        t.eq(man["tables"], {k: len(v) for k, v in dump.items()}, "manifest: rows per table match the copy")
        refs = set()
        c = sqlite3.connect(copy_db)
        for sql in ref_sqls:
            refs |= {r[0] for r in c.execute(sql) if r[0]}
        jm = c.execute("PRAGMA journal_mode").fetchone()[0]
        c.close()
        t.eq(jm, "delete", "the copy is a self-contained file (rollback journal, no -wal needed)")

        def copy_rows(sql):
            conn = sqlite3.connect(copy_db)
            try:
                return conn.execute(sql).fetchall()
            finally:
                conn.close()
    t.eq(man["database"].get("driver"), "postgresql" if PG else "sqlite", "manifest: the database's driver")

    # One snapshot although the writers went on: every project's current version
    # is among its versions with the same content, every version held is one a
    # writer was acknowledged, with the bytes sent, and the versions are 1..current.
    projects = {r[0]: r[1:] for r in copy_rows("SELECT id, version, sb3_sha256 FROM projects")}
    versions = {}
    for pid, v, sha in copy_rows("SELECT project_id, version, sha256 FROM project_versions"):
        versions.setdefault(pid, {})[v] = sha
    bad = []
    for pid, (v, sha) in sorted(projects.items()):
        acked = {h[1]: hashlib.sha256(h[2]).hexdigest() for h in w.projects.get(pid, [])}
        if versions.get(pid, {}).get(v) != sha:
            bad.append((pid, "current version %d not among its versions" % v))
        if sorted(versions.get(pid, {})) != list(range(1, v + 1)):
            bad.append((pid, "versions %r, current %d" % (sorted(versions.get(pid, {})), v)))
        for ver, vsha in versions.get(pid, {}).items():
            if acked.get(ver) != vsha:
                bad.append((pid, "version %d is not what the writer sent" % ver))
    t.eq(bad, [], "the copy is one consistent snapshot: %d projects, each with versions 1..current, "
                  "each version's content the bytes acknowledged" % len(projects))
    t.eq(sorted(versions), sorted(projects), "the copy has no versions of projects it lacks")
    sent = {m: hashlib.sha256(d).hexdigest() for _, m, d in w.assets}
    asset_rows = copy_rows("SELECT md5, sha256 FROM assets")
    t.ok(len(asset_rows) >= 5 and [r for r in asset_rows if sent.get(r[0]) != r[1]] == [],
         "every asset in the copy (%d) is one a writer uploaded, with its content" % len(asset_rows))
    # Rows nobody changed after the snapshot are the source's rows as they are now.
    now_assets = {r[0]: r for r in db_rows(s, "SELECT * FROM assets")}
    t.eq([r for r in copy_rows("SELECT * FROM assets") if now_assets.get(r[0]) != r], [],
         "every asset row of the copy equals the source's")
    now_versions = {(r[0], r[1]): r for r in db_rows(s, "SELECT * FROM project_versions")}
    t.eq([r for r in copy_rows("SELECT * FROM project_versions") if now_versions.get((r[0], r[1])) != r], [],
         "every version row of the copy equals the source's")
    now_projects = {r[0]: r for r in db_rows(s, "SELECT * FROM projects")}
    same = [r for r in copy_rows("SELECT * FROM projects") if now_projects.get(r[0]) == r]
    unchanged = [pid for pid, (v, _) in projects.items()
                 if db_value(s, "SELECT version FROM projects WHERE id = ?", (pid,)) == v]
    t.eq(sorted(r[0] for r in same), sorted(unchanged),
         "every project row not updated since the snapshot equals the source's (%d of %d)"
         % (len(unchanged), len(projects)))
    if PG:
        pg_drop(copy_name)
        rc, st, err = admin_json(s, "stats", "--json")
        size = db_value(s, "SELECT pg_database_size(current_database())")
        got = (st or {}).get("storage", {})
        t.ok(rc == 0 and got.get("database_driver") == "postgresql" and got.get("database") == s.pg_uri
             and abs(got.get("database_bytes", 0) - size) < (1 << 20),
             "stats: the PostgreSQL database's URI and pg_database_size (%s, %s)"
             % (got.get("database_bytes"), size), err)
    else:
        t.skip("stats: the database's size", "SQLite's file size is checked in t/92")
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
    if PG:
        # A password in DATABASE_URI reaches pg_dump through its environment, not
        # its command line, and stays out of the manifest (the cluster trusts us:
        # any password is accepted).
        u = urllib.parse.urlsplit(s.pg_uri)
        with_pw = urllib.parse.urlunsplit((u.scheme, "%s:sekrit-pw@%s" % (u.username, u.netloc.split("@")[-1]),
                                           u.path, u.query, u.fragment))
        sp = Stack(workers=1, idp=False, config={"DATABASE_URI": with_pw, "DATA_DIR": s.data})
        d3 = os.path.join(s.dir, "backup-3")
        rc, out, err = admin(sp, "backup", d3)
        with open(os.path.join(d3, "manifest.json")) as f:
            text = f.read()
        t.ok(rc == 0 and "sekrit-pw" not in text + out + err and ":***@" in text,
             "backup with a password in DATABASE_URI; the manifest shows it as ***", out + err)
        sp.stop()

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
    t.eq(pg_db_dump(s2.pg_uri) if PG else db_dump(os.path.join(s2.data, "main.db")), dump,
         "the restored database holds exactly the backup's rows")
    if PG:
        # "Not empty" is the database too: its rows, even with an empty DATA_DIR.
        s5 = Stack(workers=1, idp=False, config={"DATABASE_URI": s2.pg_uri})
        rc, out, err = admin(s5, "restore", os.path.join(s.dir, "backup-2"))
        t.ok(rc != 0 and "PostgreSQL database %s" % s2.pg_db in err and "not empty" in err
             and not os.path.exists(os.path.join(s5.data, "blobs")),
             "restore refuses a PostgreSQL database holding rows, before writing a blob", err)
        s5.stop()
        # A database a server already migrated (tables, no rows) is empty: pg_restore --clean.
        s6 = Stack(workers=1, idp=False)
        rc, out, err = admin(s6, "migrate")
        rc2, out, err2 = admin(s6, "restore", os.path.join(s.dir, "backup-2"))
        counts = {k: len(v) for k, v in pg_db_dump(s6.pg_uri).items()}
        t.ok(rc == 0 and rc2 == 0 and counts == man2["tables"],
             "restore into a migrated but empty PostgreSQL database; the rows per table are the manifest's",
             err + err2)
        s6.stop()

    with s2:
        # anna's session was in the backup: the same token works on the restored server.
        r = s2.get("/backend/api/user", headers={"X-Session-ID": anna})
        t.eq(r.status, 200, "a session from before the backup works on the restored server")
        r = project_send(s2, "POST", "/backend/api/projects?title=after", anna, sb3=make_sb3("after-restore"))
        t.ok(r.status == 200 and (r.json() or {}).get("id", 0) > max(projects),
             "a new project on the restored server gets a new id (identity sequences restored)", r)
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

    # A backup restores only into a database of its own kind.
    s3 = Stack(workers=1, idp=False)
    if PG:
        lite = Stack(workers=1, idp=False, config={"DATABASE_URI": "sqlite:///" + os.path.join(s.dir, "lite.db")})
        admin(lite, "migrate")
        rc, out, err = admin(lite, "restore", os.path.join(s.dir, "backup-2"))
        t.ok(rc != 0 and "PostgreSQL" in err and "copy-db" in err,
             "restore refuses a PostgreSQL backup into SQLite, pointing at copy-db", err)
        rc, out, err = admin(lite, "backup", os.path.join(s.dir, "backup-lite"))
        rc2, out, err2 = admin(s3, "restore", os.path.join(s.dir, "backup-lite"))
        t.ok(rc == 0 and rc2 != 0 and "SQLite" in err2 and "copy-db" in err2 and pg_table_count(s3.pg_uri) == 0,
             "restore refuses an SQLite backup into PostgreSQL, pointing at copy-db", err + err2)
        lite.stop()
    else:
        fake = os.path.join(s.dir, "backup-pg")
        os.mkdir(fake)
        with open(os.path.join(fake, "database.pgdump"), "wb") as f:
            f.write(b"PGDMP")
        with open(os.path.join(fake, "manifest.json"), "w") as f:
            json.dump(dict(man2, database=dict(man2["database"], driver="postgresql", file="database.pgdump",
                                               sha256=hashlib.sha256(b"PGDMP").hexdigest())), f)
        rc, out, err = admin(s3, "restore", fake)
        t.ok(rc != 0 and "PostgreSQL" in err and "copy-db" in err and not os.path.exists(s3.data),
             "restore refuses a PostgreSQL backup into SQLite, pointing at copy-db", err)
        # Manifests from before the driver field are SQLite backups.
        old = os.path.join(s.dir, "backup-old")
        shutil.copytree(os.path.join(s.dir, "backup-2"), old)
        with open(os.path.join(old, "manifest.json"), "w") as f:
            json.dump(dict(man2, database={k: v for k, v in man2["database"].items() if k != "driver"}), f)
        s4 = Stack(workers=1, idp=False)
        rc, out, err = admin(s4, "restore", old)
        t.ok(rc == 0 and db_dump(os.path.join(s4.data, "main.db")) == db_dump(os.path.join(old, "main.db")),
             "restore accepts a manifest without a driver (an SQLite backup)", out + err)
        s4.stop()

    # A damaged backup is refused before anything is touched.
    with open(copy_db, "r+b") as f:
        f.seek(200)
        b = f.read(1)
        f.seek(200)
        f.write(bytes([b[0] ^ 0xFF]))
    rc, out, err = admin(s3, "restore", backup_dir)
    untouched = pg_table_count(s3.pg_uri) == 0 if PG else not os.path.exists(os.path.join(s3.data, "main.db"))
    t.ok(rc != 0 and "damaged" in err and untouched,
         "restore refuses a backup whose database does not match its manifest", err)
    rc, out, err = admin(s3, "restore", os.path.join(s.dir, "nope"))
    t.ok(rc != 0 and "manifest.json" in err, "restore refuses a directory that is not a finished backup", err)
    s3.stop()

t.done()
