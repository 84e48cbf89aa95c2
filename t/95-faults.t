#!/usr/bin/env python3
# Fault injection: the disk fills up, and the database stays locked.
#
# Disk full (as root: DATA_DIR is an 8 MiB tmpfs, filled to the last page):
# every upload (project create and update, both asset routes, backpack) and
# a database-only write (share: SQLITE_FULL) answer 507 with a JSON error;
# nothing is half-stored (no temp file, no new blob, no row, the project
# unchanged); a login fails with a redirect, not a 500; reads keep being
# served; once space returns the same writes succeed and `s4s-admin check`
# is clean.
#
# Database locked (another process holds BEGIN EXCLUSIVE on main.db longer
# than DB_BUSY_TIMEOUT): writes answer 503 with Retry-After after the
# retries, which share one budget of DB_BUSY_TIMEOUT; nothing changes, a
# login fails cleanly; reads still succeed (WAL: a writer does not block
# readers); s4s_db_busy_retries_total
# counts the retries; after the lock is released the same writes succeed,
# each stored exactly once.
#
# PostgreSQL mode (S4S_TEST_PG): the database is not on DATA_DIR's disk, so
# of the full disk only the blob store's writes apply (the database-only
# cases are skipped); the lock is held by a psql session (LOCK TABLE … IN
# EXCLUSIVE MODE on what the writes touch: plain reads pass, as in WAL), and
# the server's statements run into lock_timeout (= DB_BUSY_TIMEOUT).
#
# A hanging or garbage-answering identity provider is t/50-login.t's
# "provider hangs" / "provider answers garbage" (login fails within the call
# timeout, other requests served meanwhile).
import base64
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (Stack, Tap, admin, db_value, files_in, lock_database, make_sb3, md5, multipart,  # noqa: E402
                 parallel, project_row, project_send, sample_png, stored_sb3)

t = Tap()
BUSY = {"error": "The server is busy, please try again"}
NOT_ON_DISK = "PostgreSQL: the database is not on DATA_DIR's disk, which alone is full"


def metric(s, name):
    text = s.get("/backend/metrics").body.decode()
    m = re.search(r"^%s(?:\{[^}]*\})? (\d+)" % re.escape(name), text, re.M)
    return int(m.group(1)) if m else None


def asset_multipart(s, tok, data):
    body, ctype = multipart({"type": "costume", "format": "png"},
                            {"asset": ("a.png", data, "image/png")})
    return s.req("POST", "/backend/api/assets/", body=body,
                 headers=dict(s.auth(tok), **{"Content-Type": ctype}))


def asset_raw(s, tok, data):
    return s.req("POST", "/backend/api/assets/%s.png" % md5(data), body=data,
                 headers=dict(s.auth(tok), **{"Content-Type": "application/octet-stream"}))


def backpack_post(s, tok, data):
    item = {"type": "costume", "mime": "image/png", "name": "Katze",
            "body": base64.b64encode(data).decode(), "thumbnail": ""}
    return s.req("POST", "/backend/api/backpack", body=json.dumps(item).encode(),
                 headers=dict(s.auth(tok), **{"Content-Type": "application/json"}))


def share(s, tok, pid, groups):
    return s.req("POST", "/backend/api/projects/%d/share" % pid, body=json.dumps({"group_ids": groups}).encode(),
                 headers=dict(s.auth(tok), **{"Content-Type": "application/json"}))


def counts(s):
    return {tbl: db_value(s, "SELECT COUNT(*) FROM %s" % tbl)
            for tbl in ("users", "projects", "project_versions", "assets", "backpack_items", "project_groups")}


def fill(path):
    """Write zeros to path until the file system says ENOSPC; returns the bytes written."""
    n = 0
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                n += f.write(chunk)
            except OSError:
                break
        while True:  # the last partial page
            try:
                if not f.write(b"\0"):
                    break
                n += 1
            except OSError:
                break
    return n


# ---------------------------------------------------------------- disk full
def disk_full():
    s = Stack(workers=2)
    os.makedirs(s.data)
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "s4s-test-full", s.data],
        stderr=subprocess.DEVNULL).returncode == 0
    if not mounted:
        t.ok(True, "disk full # skip mounting a tmpfs needs root (mount -t tmpfs refused)")
        shutil.rmtree(s.dir, ignore_errors=True)
        return
    try:
        with s:
            run_disk_full(s)
    finally:
        subprocess.run(["umount", "-l", s.data])
        if not os.environ.get("S4S_KEEP_TMP"):
            shutil.rmtree(s.dir, ignore_errors=True)


def run_disk_full(s):
    anna = s.login("anna")
    sb3 = make_sb3("full-1")
    r = project_send(s, "POST", "/backend/api/projects?title=Voll", anna, sb3=sb3)
    t.eq(r.status, 200, "a project stored while there is space")
    pid = r.json()["id"]
    png = sample_png(4, 4, seed=1)
    t.eq(asset_multipart(s, anna, png).status, 200, "an asset stored while there is space")
    t.eq(s.get("/backend/api/projects/%d/metadata" % pid, headers=s.auth(anna)).status, 200,
         "metadata read (the session has seen version 1)")
    gid = db_value(s, "SELECT g.id FROM groups g JOIN user_groups ug ON ug.group_id = g.id "
                      "JOIN users u ON u.id = ug.user_id WHERE u.username = 'anna' LIMIT 1")

    if s.pg_uri:
        t.skip("WAL checkpointed and truncated", NOT_ON_DISK)
    else:
        # An empty WAL: the next database write needs new pages, which the full disk refuses.
        with sqlite3.connect(os.path.join(s.data, "main.db")) as c:
            busy = c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        t.eq(busy, 0, "WAL checkpointed and truncated")
    filler = os.path.join(s.data, "filler")
    written = fill(filler)
    st = os.statvfs(s.data)
    t.ok(st.f_bavail == 0, "DATA_DIR is full (%d bytes of filler, %d blocks free)" % (written, st.f_bavail))

    before = counts(s)
    blobs = files_in(os.path.join(s.data, "blobs"))
    row = project_row(s, pid)

    new_sb3 = make_sb3("full-2")
    png2 = sample_png(8, 8, seed=2)
    attempts = [
        ("POST /api/projects", lambda: project_send(s, "POST", "/backend/api/projects?title=Neu", anna, sb3=new_sb3)),
        ("PUT /api/projects/<id>", lambda: project_send(s, "PUT", "/backend/api/projects/%d" % pid, anna,
                                                        sb3=new_sb3, thumb=png2)),
        ("POST /api/assets/", lambda: asset_multipart(s, anna, png2)),
        ("POST /api/assets/<md5>.png", lambda: asset_raw(s, anna, png2)),
        ("POST /api/backpack", lambda: backpack_post(s, anna, png2)),
        ("POST /api/projects/<id>/share (database only: SQLITE_FULL)", lambda: share(s, anna, pid, [gid])),
    ]
    if s.pg_uri:
        name = attempts.pop()[0]
        t.skip("%s on a full disk: 507 with a JSON error" % name, NOT_ON_DISK)
    for name, fn in attempts:
        r = fn()
        j = r.json() or {}
        t.ok(r.status == 507 and isinstance(j.get("error"), str) and j["error"],
             "%s on a full disk: 507 with a JSON error (%d %s)" % (name, r.status, j.get("error")), r)
        t.eq(files_in(os.path.join(s.data, "tmp")), [], "%s: no temp file left" % name)

    t.eq(files_in(os.path.join(s.data, "blobs")), blobs, "no new blob")
    t.eq(counts(s), before, "no new or changed row count")
    t.eq(project_row(s, pid), row, "the project row unchanged (version, content, thumbnail, sharing)")
    if s.pg_uri:  # a login writes rows only
        t.skip("a login on a full disk ends in the frontend's error redirect", NOT_ON_DISK)
    else:
        loc = s.login_flow("ben")
        t.ok("error=" in loc and "session_id=" not in loc,
             "a login on a full disk ends in the frontend's error redirect: %s" % redirect_query_of(loc))
        t.eq(db_value(s, "SELECT COUNT(*) FROM users WHERE username = 'ben'"), 0, "no user row for the failed login")

    # Reads that need no write keep working.
    r = s.get("/backend/api/projects", headers=s.auth(anna))
    t.ok(r.status == 200 and [p["id"] for p in r.json()["projects"]] == [pid], "project list served", r)
    r = s.get("/backend/api/projects/%d/download" % pid, headers=s.auth(anna))
    t.ok(r.status == 200 and r.body == sb3, "download served, same bytes", r)
    r = s.get("/backend/api/projects/%d/metadata" % pid, headers=s.auth(anna))
    t.ok(r.status == 200 and r.json()["version"] == 1, "metadata served", r)
    r = s.get("/backend/api/assets/" + md5(png))
    t.ok(r.status == 200 and r.body == png, "asset served, same bytes", r)
    t.eq(s.get("/backend/api/backpack", headers=s.auth(anna)).status, 200, "backpack list served")
    t.eq(s.get("/backend/api/status").status, 200, "/api/status served")

    # Space returns: the same writes succeed.
    os.unlink(filler)
    r = project_send(s, "PUT", "/backend/api/projects/%d" % pid, anna, sb3=new_sb3, thumb=png2)
    t.ok(r.status == 200 and r.json()["version"] == 2, "after freeing space the PUT succeeds (version 2)", r)
    t.eq(stored_sb3(s, pid), new_sb3, "its bytes are stored")
    r = project_send(s, "POST", "/backend/api/projects?title=Neu", anna, sb3=new_sb3)
    t.eq(r.status, 200, "a new project is stored")
    t.eq(asset_raw(s, anna, png2).json(), {"status": "ok", "content-name": md5(png2)}, "the asset is stored")
    t.eq(backpack_post(s, anna, png2).status, 200, "the backpack item is stored")
    r = share(s, anna, pid, [gid])
    t.ok(r.status == 200 and r.json()["version"] == 3, "the share is stored (version 3)", r)
    t.ok("session_id=" in s.login_flow("ben"), "ben can log in")
    after = counts(s)
    t.eq((after["projects"] - before["projects"], after["assets"] - before["assets"],
          after["backpack_items"] - before["backpack_items"], after["users"] - before["users"]),
         (1, 1, 1, 1), "exactly one new project, asset, backpack item and user")
    rc, out, err = admin(s, "check")
    t.ok(rc == 0, "s4s-admin check is clean after the full disk", out + err)


def redirect_query_of(loc):
    from urllib.parse import parse_qs, urlsplit
    return parse_qs(urlsplit(loc).query)


# ---------------------------------------------------------------- database locked
def db_locked():
    with Stack(workers=5, config={"DB_BUSY_TIMEOUT": "200"}) as s:
        anna = s.login("anna")
        sb3 = make_sb3("lock-1")
        r = project_send(s, "POST", "/backend/api/projects?title=Gesperrt", anna, sb3=sb3)
        pid = r.json()["id"]
        gid = db_value(s, "SELECT g.id FROM groups g JOIN user_groups ug ON ug.group_id = g.id "
                          "JOIN users u ON u.id = ug.user_id WHERE u.username = 'anna' LIMIT 1")
        t.eq(s.get("/backend/api/projects/%d/metadata" % pid, headers=s.auth(anna)).status, 200, "metadata read")
        retries_before = metric(s, "s4s_db_busy_retries_total")
        t.ok(retries_before is not None, "s4s_db_busy_retries_total is in /metrics (%r)" % retries_before)
        before = counts(s)
        row = project_row(s, pid)

        new_sb3 = make_sb3("lock-2")
        png = sample_png(3, 3, seed=7)
        writes = [
            ("PUT /api/projects/<id>", lambda: project_send(s, "PUT", "/backend/api/projects/%d" % pid, anna,
                                                            sb3=new_sb3)),
            ("POST /api/assets/<md5>.png", lambda: asset_raw(s, anna, png)),
            ("POST /api/backpack", lambda: backpack_post(s, anna, png)),
            ("POST /api/projects/<id>/share", lambda: share(s, anna, pid, [gid])),
        ]
        release = lock_database(s)
        try:
            t0 = time.time()
            results = parallel(len(writes) + 1, lambda i: timed(writes[i][1]) if i < len(writes)
                               else timed(lambda: s.login_flow("clara")))
            # Reads while the lock is held (WAL mode: readers are not blocked by a writer).
            r_meta = s.get("/backend/api/projects/%d/metadata" % pid, headers=s.auth(anna))
            r_dl = s.get("/backend/api/projects/%d/download" % pid, headers=s.auth(anna))
            held = time.time() - t0
        finally:
            release()
        for (name, _), (r, secs) in zip(writes, results):
            t.ok(r.status == 503 and r.json() == BUSY and r.header("Retry-After") == "1",
                 "%s while the database is locked: 503 busy with Retry-After after %.1f s" % (name, secs), r)
            t.ok(secs >= 0.2, "%s waited at least the busy timeout (%.2f s)" % (name, secs))
            # The retries share one budget of DB_BUSY_TIMEOUT (at least one retry):
            # not one full lock wait per retry (that was 20 x 0.2 s).
            t.ok(secs < 2.5, "%s did not wait much longer (%.2f s)" % (name, secs))
        loc, secs = results[-1]
        t.ok("error=" in loc and "session_id=" not in loc,
             "a login while the database is locked ends in an error redirect after %.1f s" % secs, loc)
        t.ok(r_meta.status == 200 and r_meta.json()["version"] == 1, "metadata is read while locked", r_meta)
        t.ok(r_dl.status == 200 and r_dl.body == sb3, "download is served while locked", r_dl)
        t.diag("lock held %.1f s; writes answered 503 after %s s" %
               (held, ", ".join("%.1f" % sec for _, sec in results[:-1])))
        t.eq(counts(s), before, "nothing stored while locked")
        t.eq(project_row(s, pid), row, "the project unchanged")
        retries = metric(s, "s4s_db_busy_retries_total")
        t.ok(retries is not None and retries > retries_before,
             "s4s_db_busy_retries_total counted the retries (%r → %r)" % (retries_before, retries))

        # Released: the same writes succeed, each stored once.
        for name, fn in writes:
            r = fn()
            t.eq(r.status, 200, "%s after the release: 200" % name)
        t.ok("session_id=" in s.login_flow("clara"), "clara can log in after the release")
        after = counts(s)
        t.eq((after["projects"], after["project_versions"] - before["project_versions"],
              after["assets"] - before["assets"], after["backpack_items"] - before["backpack_items"],
              after["users"] - before["users"], after["project_groups"] - before["project_groups"]),
             (before["projects"], 1, 1, 1, 1, 1),
             "exactly one new version, asset, backpack item, user and share; no conflict copy")
        t.eq(stored_sb3(s, pid), new_sb3, "the project holds the retried bytes")
        t.eq(project_row(s, pid)[0], 3, "version 3 (PUT, then share)")


def timed(fn):
    t0 = time.time()
    r = fn()
    return r, time.time() - t0


disk_full()
db_locked()
t.done()
