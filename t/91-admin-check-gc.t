#!/usr/bin/env python3
# s4s-admin check and gc on a live stack.
# check: all well after real API writes; a flipped byte in a blob, a deleted
# blob, a dangling reference and a foreign-key violation each make it fail,
# naming the item in its text and in --json; orphans and temp files are
# listed without failing.
# gc: under a concurrent loop of uploads (some re-uploading the very bytes of
# old orphans, so they are found already stored and touched) and with
# --grace 0 run again and again, it never removes a blob that ends up
# referenced, while it does remove the old orphans nobody re-used; the
# floor it puts under --grace; soft-deleted projects past the retention
# purged with everything hanging off them, recent ones kept; expired
# sessions; stale temp files; --dry-run changes nothing.
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (Stack, Tap, admin, admin_json, blob_path, db_dump_text, db_rows, db_value,  # noqa: E402
                 make_sb3, md5, multipart, project_send, sample_png, sample_svg, sha256)

t = Tap()
OLD = time.time() - 100000


def test_upload(s, data):
    """A blob with no row pointing at it (the test-only route stores and forgets)."""
    body, ctype = multipart({}, {"f": ("f.bin", data, "application/octet-stream")})
    r = s.req("POST", "/backend/_test/upload", body=body, headers={"Content-Type": ctype})
    assert r.status == 200, r
    return sha256(data)


def post_asset(s, token, data):
    body, ctype = multipart({"type": "costume", "format": "svg"}, {"asset": ("a.svg", data, "image/svg+xml")})
    return s.req("POST", "/backend/api/assets/", body=body, headers={"Content-Type": ctype, "X-Session-ID": token})


def flip(path):
    with open(path, "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 0x01]))


# REQUEST_TIMEOUT=6: gc's floor under --grace is REQUEST_TIMEOUT + 2 s = 8 s.
# (With 1 s, a project save that waited over a second for fsync on a loaded CI
# machine was killed as stuck, and the upload loop below saw a 502; with 3 s,
# so did one under contrib/slowsync's 1.2 s stalls.)
with Stack(workers=3, config={"REQUEST_TIMEOUT": "6"}) as s:
    anna = s.login("anna")
    anna_id = db_value(s, "SELECT id FROM users WHERE username = 'anna'")
    pids = []
    for i in range(3):
        r = project_send(s, "POST", "/backend/api/projects?title=C%d" % i, anna, sb3=make_sb3("check-%d" % i),
                         thumb=sample_png(2, 2, seed=i))
        pids.append(r.json()["id"])
    asset_data = sample_svg("check-asset")
    t.eq(post_asset(s, anna, asset_data).status, 200, "setup: projects and an asset through the API")
    asset_row = db_rows(s, "SELECT id, sha256 FROM assets WHERE asset_id = ?", (md5(asset_data),))[0]

    rc, j, err = admin_json(s, "check", "--json")
    t.ok(rc == 0 and j and j["ok"] is True and j["problems"] == 0, "check: all is well after API writes", err)
    t.eq((j["blobs"]["count"], j["references"]["blobs"]), (7, 7), "check: 3 .sb3 + 3 thumbnails + 1 asset verified")

    # A flipped byte.
    sb3_sha = db_value(s, "SELECT sb3_sha256 FROM projects WHERE id = ?", (pids[0],))
    flip(blob_path(s, sb3_sha))
    rc, out, err = admin(s, "check")
    t.ok(rc == 1 and ("DAMAGED blob %s" % sb3_sha) in out and "projects.sb3_sha256 of row %d" % pids[0] in out,
         "check: a flipped byte fails, naming the blob and the row", out + err)
    rc, j, err = admin_json(s, "check", "--json")
    t.ok(rc == 1 and j["ok"] is False and [d["sha256"] for d in j["blobs"]["damaged"]] == [sb3_sha],
         "check --json: the damaged blob", j)
    broken = sorted((b["table"], b["id"], b["problem"]) for b in j["references"]["broken"])
    t.eq(broken, [("project_versions", "%d/1" % pids[0], "damaged"), ("projects", str(pids[0]), "damaged")],
         "check --json: the rows pointing at it")
    flip(blob_path(s, sb3_sha))

    # A deleted blob.
    with open(blob_path(s, asset_row[1]), "rb") as f:
        saved = f.read()
    os.unlink(blob_path(s, asset_row[1]))
    rc, out, err = admin(s, "check")
    t.ok(rc == 1 and "MISSING blob %s: assets.sha256 of row %d" % (asset_row[1], asset_row[0]) in out,
         "check: a deleted blob fails, naming it and its row", out + err)
    rc, j, err = admin_json(s, "check", "--json")
    t.eq([(b["table"], b["column"], b["id"], b["sha256"], b["problem"]) for b in j["references"]["broken"]],
         [("assets", "sha256", str(asset_row[0]), asset_row[1], "missing")], "check --json: the missing blob's row")
    with open(blob_path(s, asset_row[1]), "wb") as f:
        f.write(saved)

    # A dangling reference.
    ghost = "ab" * 32
    db_rows(s, "UPDATE projects SET thumbnail_sha256 = ? WHERE id = ?", (ghost, pids[1]))
    rc, out, err = admin(s, "check")
    t.ok(rc == 1 and "MISSING blob %s: projects.thumbnail_sha256 of row %d" % (ghost, pids[1]) in out,
         "check: a row pointing at no blob fails, naming table and id", out + err)
    rc, j, err = admin_json(s, "check", "--json")
    t.eq([(b["table"], b["id"]) for b in j["references"]["broken"]], [("projects", str(pids[1]))],
         "check --json: the dangling reference")
    t.eq(len(j["orphans"]["blobs"]), 1, "check --json: the thumbnail no longer referenced is an orphan")
    db_rows(s, "UPDATE projects SET thumbnail_sha256 = ? WHERE id = ?", (j["orphans"]["blobs"][0]["sha256"], pids[1]))

    if s.pg_uri:
        # PostgreSQL enforces foreign keys at every statement: the violation cannot be stored.
        try:
            db_rows(s, "INSERT INTO project_groups (project_id, group_id) VALUES (?, 999999)", (pids[2],))
            refused = None
        except RuntimeError as e:
            refused = str(e)
        t.ok(refused and "violates foreign key constraint" in refused,
             "PostgreSQL refuses a foreign key violation", refused)
        rc, j, err = admin_json(s, "check", "--json")
        t.ok(rc == 0 and j["database"]["foreign_key_violations"] == [], "check: no foreign key violation", j)
        # Its integrity verdict: the data checksum failures pg_stat_database counted.
        t.eq(j["database"]["integrity_check"], ["ok"], "check --json: PostgreSQL's checksum verdict")
    else:
        # A foreign key violation (Python's sqlite3 does not enforce them).
        db_rows(s, "INSERT INTO project_groups (project_id, group_id) VALUES (?, 999999)", (pids[2],))
        rc, j, err = admin_json(s, "check", "--json")
        t.ok(rc == 1 and [v["table"] for v in j["database"]["foreign_key_violations"]] == ["project_groups"],
             "check: a foreign key violation fails", j)
        db_rows(s, "DELETE FROM project_groups WHERE group_id = 999999")
        t.eq(j["database"]["integrity_check"], ["ok"], "check --json: PRAGMA integrity_check's verdict")

    # Orphans and temp files are listed but all is well.
    orphan = test_upload(s, os.urandom(1000))
    with open(os.path.join(s.data, "tmp", "up-leftover"), "wb") as f:
        f.write(b"x" * 10)
    rc, j, err = admin_json(s, "check", "--json")
    t.ok(rc == 0 and [o["sha256"] for o in j["orphans"]["blobs"]] == [orphan]
         and [f["name"] for f in j["temp_files"]["files"]] == ["up-leftover"],
         "check: an orphan and a temp file are listed, and all is well", j)

    # ---- gc: soft-deleted projects, sessions, temp files; --dry-run first.
    old_p = project_send(s, "POST", "/backend/api/projects?title=Old", anna, sb3=make_sb3("purge-me")).json()
    t.eq(s.req("POST", "/backend/api/projects/%d/share" % old_p["id"], body=b'{"group_ids":[%d]}'
               % db_value(s, "SELECT id FROM groups WHERE external_id = 'klasse-7a'"),
               headers={"Content-Type": "application/json", "X-Session-ID": anna}).status, 200,
         "setup: a project shared with a group")
    new_p = project_send(s, "POST", "/backend/api/projects?title=Recent", anna, sb3=make_sb3("keep-me")).json()
    for p in (old_p, new_p):
        t.eq(s.req("DELETE", "/backend/api/projects/%d" % p["id"], headers={"X-Session-ID": anna}).status, 200,
             "setup: project %d deleted through the API" % p["id"])
    db_rows(s, "UPDATE projects SET deleted_at = '2001-01-01 00:00:00.000000' WHERE id = ?", (old_p["id"],))
    db_rows(s, "INSERT INTO conflict_copies (session_id, project_id, copy_id) VALUES ('x', ?, ?)",
            (pids[0], old_p["id"]))
    purge_sha = db_value(s, "SELECT sb3_sha256 FROM projects WHERE id = ?", (old_p["id"],))
    os.utime(blob_path(s, purge_sha), (OLD, OLD))
    os.utime(blob_path(s, orphan), (OLD, OLD))
    os.utime(os.path.join(s.data, "tmp", "up-leftover"), (OLD, OLD))
    with open(os.path.join(s.data, "tmp", "up-fresh"), "wb") as f:
        f.write(b"y")
    sess = [("e-no-refresh", "2001-01-01 00:00:00", None), ("e-refresh", "", "r"),
            ("e-refresh-old", "2001-01-01 00:00:00.5", "r"), ("live", "2999-01-01 00:00:00.000000", None)]
    recent = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() - 3600)) + ".000000"
    for sid, exp, ref in sess:
        db_rows(s, "INSERT INTO oauth_sessions (id, user_id, access_token, refresh_token, expires_at) "
                   "VALUES (?, ?, 'a', ?, ?)", (sid, anna_id, ref, exp or recent))
    db_rows(s, "INSERT INTO session_project_versions (session_id, project_id, version) VALUES ('e-no-refresh', ?, 1)",
            (pids[0],))

    before = db_dump_text(s)
    rc, out, err = admin(s, "gc", "--dry-run")
    t.ok(rc == 0 and "would remove 1 deleted" in out and "1 version(s) and 1 share(s)" in out and "would remove 2 expired" in out
         and "would remove 1 unreferenced" in out and "would remove 1 file" in out,
         "gc --dry-run says what it would do", out + err)
    t.ok(db_dump_text(s) == before and os.path.exists(blob_path(s, orphan))
         and os.path.exists(os.path.join(s.data, "tmp", "up-leftover")), "gc --dry-run changes nothing")

    rc, out, err = admin(s, "gc")
    t.eq(rc, 0, "gc: exit 0")
    t.ok("removed 1 deleted" in out and "with 1 version" in out, "gc reports the purge", out)
    t.eq(db_value(s, "SELECT count(*) FROM projects WHERE id = ?", (old_p["id"],)), 0,
         "gc: a project deleted longer ago than the retention is purged")
    t.eq([db_value(s, "SELECT count(*) FROM %s WHERE %s = ?" % tc, (old_p["id"],)) for tc in
          (("project_versions", "project_id"), ("project_groups", "project_id"),
           ("session_project_versions", "project_id"), ("conflict_copies", "copy_id"))], [0, 0, 0, 0],
         "gc: with its versions, shares, per-session rows and conflict-copy links")
    t.eq(db_value(s, "SELECT deleted_at IS NOT NULL FROM projects WHERE id = ?", (new_p["id"],)), 1,
         "gc: a project deleted recently is kept (still soft-deleted)")
    t.ok(not os.path.exists(blob_path(s, purge_sha)) and not os.path.exists(blob_path(s, orphan)),
         "gc: the purged project's blob and the old orphan are removed in the same run")
    t.eq(sorted(r[0] for r in db_rows(s, "SELECT id FROM oauth_sessions WHERE user_id = ? AND length(id) < 20",
                                      (anna_id,))), ["e-refresh", "live"],
         "gc: sessions expired without a refresh token, or for over 30 days, are removed")
    t.eq(db_value(s, "SELECT count(*) FROM session_project_versions WHERE session_id = 'e-no-refresh'"), 0,
         "gc: with their per-session rows")
    t.ok(s.get("/backend/api/user", headers={"X-Session-ID": anna}).status == 200, "gc: the live login still works")
    t.eq(sorted(os.listdir(os.path.join(s.data, "tmp"))), ["up-fresh"], "gc: stale temp files removed, fresh kept")
    t.ok("removed 2 unreferenced" in out and "removed 1 file" in out, "gc reports blobs and temp files", out)

    rc, out, err = admin(s, "gc", "--grace", "0")
    t.ok(rc == 0 and "raised from 0 to 8 s" in out, "gc: --grace below REQUEST_TIMEOUT + 2 s is raised, saying so",
         out + err)
    t.ok(admin(s, "gc", "--grace", "soon")[0] == 2, "gc: a bad --grace is a usage error")

    # ---- gc --grace 0, again and again, under a loop of uploads.
    reused = [make_sb3("reused-%d" % i) for i in range(8)]
    reused_sha = [test_upload(s, d) for d in reused]
    plain_sha = [test_upload(s, os.urandom(500 + i)) for i in range(8)]
    for h in reused_sha + plain_sha:
        os.utime(blob_path(s, h), (OLD, OLD))   # old orphans: gc candidates from the start
    stop = threading.Event()
    acked, errors, lock = [], [], threading.Lock()

    def loop(k):
        i = k
        while not stop.is_set():
            if i % 3 == 0:
                data = sample_svg("gc-%d" % i)
                r = post_asset(s, anna, data)
                ok = r.status == 200
                item = ("asset", md5(data), data)
            else:
                # Every other upload is bytes an old orphan holds: found already stored.
                sb3 = reused[(i // 3) % len(reused)] if i % 3 == 1 else make_sb3("gc-new-%d" % i)
                r = project_send(s, "POST", "/backend/api/projects?title=G%d" % i, anna, sb3=sb3,
                                 thumb=sample_png(1, 1, seed=i % 200))
                ok = r.status == 200
                item = ("project", (r.json() or {}).get("id"), sb3)
            with lock:
                (acked if ok else errors).append(item if ok else (r.status, r.body[:120]))
            i += 3

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(3)]
    for th in threads:
        th.start()
    runs, removed, deadline, gc_log = 0, 0, time.time() + 6, []
    while time.time() < deadline:
        rc, out, err = admin(s, "gc", "--verbose", "--grace", "0")
        gc_log.append(out)
        if rc != 0:
            t.diag(out + err)
        runs += 1
        for line in out.splitlines():
            if line.startswith("blobs:"):
                removed += int(line.split("removed ")[1].split()[0])
        time.sleep(0.2)
    stop.set()
    for th in threads:
        th.join()
    t.diag("%d gc runs removed %d blobs during %d acknowledged uploads" % (runs, removed, len(acked)))
    t.ok(errors == [], "the upload loop had no failures",
         "%r\n%s" % (errors[:5], "\n".join(l for l in s.log_text().splitlines()
                                           if "REQUEST_TIMEOUT" in l or "error" in l.lower())))
    t.diag("\n".join(l for l in "".join(gc_log).splitlines() if l.startswith("  kept")))
    rc, j, err = admin_json(s, "check", "--json")
    t.ok(rc == 0 and j["references"]["broken"] == [], "after gc under load: every referenced blob exists", j)
    bad = []
    for kind, key, data in acked:
        r = s.get("/backend/api/assets/%s" % key if kind == "asset" else "/backend/api/projects/%d/download" % key,
                  headers={"X-Session-ID": anna})
        if r.status != 200 or r.body != data:
            bad.append((kind, key, r.status))
    t.eq(bad, [], "every acknowledged upload downloads byte for byte (%d)" % len(acked))
    # Removed before an upload used them (then stored afresh) or kept: either way there now.
    used = {sha256(data) for kind, key, data in acked if kind == "project"}
    t.ok(all(os.path.exists(blob_path(s, h)) for h in reused_sha if h in used)
         and len(used & set(reused_sha)) >= 1, "old orphans that acknowledged uploads re-used exist (%d of %d)"
         % (len(used & set(reused_sha)), len(reused_sha)))
    t.ok(not any(os.path.exists(blob_path(s, h)) for h in plain_sha), "old orphans nobody re-used were removed")
    t.ok(removed >= len(plain_sha), "gc --grace 0 was aggressive (%d blobs removed)" % removed)

t.done()
