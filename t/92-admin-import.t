#!/usr/bin/env python3
# s4s-admin import and migrate against databases the Python backend made:
# built here with Python's sqlite3 from the schema in UPSTREAM-DATA.md (one
# of them older, without projects.version), with users, groups,
# memberships, projects whose .sb3 and thumbnails lie under uploads/ (both
# thumbnail names, the newer one winning either way; one .sb3 missing),
# shares, assets, a backpack item and sessions, its paths recorded for
# another machine. Afterwards every row is there with its values, the files
# are byte-identical through the API, an imported session's old UUID token
# works through nginx, the missing file is reported, the originals are
# untouched, and a second run changes nothing. migrate adds the version
# column to the old database in place and is idempotent.
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (SAMPLE_JPEG, Stack, Tap, admin, db_dump, db_dump_text, db_rows, db_value,  # noqa: E402
                 make_sb3, md5, project_send, sample_png, sample_svg, sample_wav, sha256)

t = Tap()

SCHEMA = """
CREATE TABLE users (
	id VARCHAR(128) NOT NULL, 
	username VARCHAR(128) NOT NULL, 
	email VARCHAR(128), 
	role VARCHAR(50), 
	created_at DATETIME, 
	last_login DATETIME, 
	user_data JSON, 
	PRIMARY KEY (id)
);
CREATE TABLE groups (
	id INTEGER NOT NULL, 
	name VARCHAR(128) NOT NULL, 
	external_id VARCHAR(255) NOT NULL, 
	description TEXT, 
	created_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (external_id)
);
CREATE TABLE user_groups (
	user_id VARCHAR(128) NOT NULL, 
	group_id INTEGER NOT NULL, 
	joined_at DATETIME, 
	PRIMARY KEY (user_id, group_id), 
	FOREIGN KEY(user_id) REFERENCES users (id), 
	FOREIGN KEY(group_id) REFERENCES groups (id)
);
CREATE TABLE oauth_sessions (
	id VARCHAR(36) NOT NULL, 
	user_id VARCHAR(128) NOT NULL, 
	access_token TEXT NOT NULL, 
	refresh_token TEXT, 
	expires_at DATETIME NOT NULL, 
	created_at DATETIME, 
	last_accessed DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(user_id) REFERENCES users (id)
);
CREATE TABLE projects (
	id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	description TEXT, 
	sb3_file_path VARCHAR(255), 
	thumbnail_path VARCHAR(255), 
	version INTEGER NOT NULL, 
	owner_id VARCHAR(128) NOT NULL, 
	created_at DATETIME, 
	updated_at DATETIME, 
	is_published BOOLEAN, 
	PRIMARY KEY (id), 
	FOREIGN KEY(owner_id) REFERENCES users (id)
);
CREATE TABLE assets (
	id INTEGER NOT NULL, 
	asset_id VARCHAR(128) NOT NULL, 
	asset_type VARCHAR(50) NOT NULL, 
	data_format VARCHAR(10) NOT NULL, 
	size INTEGER NOT NULL, 
	md5 VARCHAR(32) NOT NULL, 
	owner_id VARCHAR(128) NOT NULL, 
	file_path VARCHAR(255) NOT NULL, 
	created_at DATETIME, 
	PRIMARY KEY (id), 
	CONSTRAINT _md5_type_uc UNIQUE (md5, asset_type), 
	UNIQUE (asset_id), 
	FOREIGN KEY(owner_id) REFERENCES users (id)
);
CREATE INDEX ix_assets_md5 ON assets (md5);
CREATE TABLE backpack_items (
	id VARCHAR(36) NOT NULL, 
	type VARCHAR(20) NOT NULL, 
	name VARCHAR(255) NOT NULL, 
	mime VARCHAR(50) NOT NULL, 
	body VARCHAR(128) NOT NULL, 
	thumbnail VARCHAR(128) NOT NULL, 
	owner_id VARCHAR(128) NOT NULL, 
	created_at DATETIME, 
	updated_at DATETIME, 
	PRIMARY KEY (id), 
	FOREIGN KEY(owner_id) REFERENCES users (id)
);
CREATE TABLE project_groups (
	project_id INTEGER NOT NULL, 
	group_id INTEGER NOT NULL, 
	published_at DATETIME, 
	PRIMARY KEY (project_id, group_id), 
	FOREIGN KEY(project_id) REFERENCES projects (id), 
	FOREIGN KEY(group_id) REFERENCES groups (id)
);
"""
OLD_SCHEMA = SCHEMA.replace("\tversion INTEGER NOT NULL, \n", "")
assert OLD_SCHEMA != SCHEMA
OLD_ROOT = "/srv/scratch4school/backend/uploads"   # where the old machine kept them


class Upstream:
    """A Python deployment: main.db and uploads/ in one directory."""

    def __init__(self, root, schema):
        self.root = root
        self.uploads = os.path.join(root, "uploads")
        os.makedirs(self.uploads)
        self.db = os.path.join(root, "main.db")
        self.conn = sqlite3.connect(self.db)
        self.conn.executescript(schema)
        self.files = {}

    def put(self, rel, data, mtime=None):
        path = os.path.join(self.uploads, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        if mtime:
            os.utime(path, (mtime, mtime))
        self.files[rel] = data
        return OLD_ROOT + "/" + rel

    def rows(self, sql, rows):
        self.conn.executemany(sql, rows)
        self.conn.commit()


def tree(d):
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, d)] = (hashlib.sha256(f.read()).hexdigest(), os.stat(p).st_mtime)
    return out


T0 = 1700000000
with Stack(workers=2) as s:
    # ---------------------------------------------------------------- deployment A (current schema)
    A = Upstream(os.path.join(s.dir, "python-a"), SCHEMA)
    A.rows("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)", [
        ("py-anna", "anna", "anna@school.example", "student", "2024-02-01 08:00:00.123456",
         "2024-03-01 09:30:00.654321", '{"uuid": "py-anna", "groups": {"1": {"act": "klasse-7a"}}}'),
        ("py-ben", "ben", None, "student", "2024-02-01 08:05:00", None, None),
        ("py-lehrer", "lehrer", "l@school.example", "teacher", "2024-01-15 07:00:00.000001", None, "{}"),
    ])
    A.rows("INSERT INTO groups VALUES (?, ?, ?, ?, ?)", [
        (1, "Klasse 7a", "klasse-7a", None, "2024-01-15 07:00:00.5"),
        (2, "Lehrer", "lehrer", "Kollegium", "2024-01-15 07:00:01"),
    ])
    A.rows("INSERT INTO user_groups VALUES (?, ?, ?)", [
        ("py-anna", 1, "2024-02-01 08:00:00"), ("py-ben", 1, None), ("py-lehrer", 1, None),
        ("py-lehrer", 2, "2024-01-15 07:00:00"),
    ])
    sb3 = {i: make_sb3("python-project-%d" % i) for i in range(1, 6)}
    thumbs = {k: sample_png(3, 2, seed=n) for n, k in enumerate(("1a", "2a", "2b", "3a", "3b"))}
    p1 = A.put("projects/1_py-anna.sb3", sb3[1])
    t1 = A.put("thumbnails/thumb_py-anna_1.png", thumbs["1a"])
    p2 = A.put("projects/2_py-anna.sb3", sb3[2])
    t2 = A.put("thumbnails/thumb_py-anna_2.png", thumbs["2a"], mtime=T0)          # older
    A.put("thumbnails/thumb__py-anna_2.png", thumbs["2b"], mtime=T0 + 60)        # newer: wins
    p3 = A.put("projects/3_py-ben.sb3", sb3[3])
    A.put("thumbnails/thumb_py-ben_3.png", thumbs["3a"], mtime=T0 + 60)          # newer: wins
    t3 = A.put("thumbnails/thumb__py-ben_3.png", thumbs["3b"], mtime=T0)         # recorded, older
    p4 = OLD_ROOT + "/projects/4_py-anna.sb3"                                     # never written
    p5 = A.put("projects/5_py-anna.sb3", sb3[5])
    A.put("thumbnails/default.png", sample_png(1, 1, seed=99))
    A.rows("INSERT INTO projects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        (1, "Katze", "Created on 2024-02-02", p1, t1, 3, "py-anna", "2024-02-02 10:00:00.000001",
         "2024-02-09 11:00:00.5", 1),
        (2, "Übung 1 & 2", None, p2, t2, 7, "py-anna", "2024-02-03 10:00:00", "2024-02-10 12:00:00", 0),
        (3, "Pong", "", p3, t3, 1, "py-ben", "2024-02-04 10:00:00", "2024-02-04 10:00:00", 1),
        (4, "Verloren", None, p4, None, 2, "py-anna", "2024-02-05 10:00:00", "2024-02-05 10:00:00", 0),
        (5, "Alt", None, p5, OLD_ROOT + "/thumbnails/default.png", 1, "py-anna", "2023-12-01 10:00:00",
         "2023-12-01 10:00:00", None),
    ])
    A.rows("INSERT INTO project_groups VALUES (?, ?, ?)", [(1, 1, "2024-02-09 11:00:00"), (3, 1, None)])
    svg, wav, jpg = sample_svg("python-costume"), sample_wav(16, seed=3), SAMPLE_JPEG
    A.rows("INSERT INTO assets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        (1, md5(svg), "costume", "svg", len(svg), md5(svg), "py-anna",
         A.put("costume/%s.svg" % md5(svg), svg), "2024-02-02 10:00:00"),
        (2, md5(wav), "sound", "wav", len(wav), md5(wav), "py-ben",
         A.put("sound/%s.wav" % md5(wav), wav), "2024-02-03 10:00:00"),
        (5, md5(jpg), "thumbnail", "jpg", len(jpg), md5(jpg), "py-anna",
         A.put("thumbnail/%s.jpg" % md5(jpg), jpg), None),
    ])
    bp_id = str(uuid.uuid4())
    A.rows("INSERT INTO backpack_items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        (bp_id, "costume", "Katze", "image/svg+xml", md5(svg), md5(jpg), "py-anna",
         "2024-02-02 10:00:00", "2024-02-02 10:00:00"),
    ])
    tok_anna, tok_ben, tok_lehrer = (str(uuid.uuid4()) for _ in range(3))
    A.rows("INSERT INTO oauth_sessions VALUES (?, ?, ?, ?, ?, ?, ?)", [
        (tok_anna, "py-anna", "provider-access-anna", None, "2999-01-01 00:00:00.000000",
         "2024-03-01 09:30:00", "2024-03-01 09:30:00"),
        (tok_ben, "py-ben", "provider-access-ben", None, "2001-01-01 00:00:00", None, None),
        (tok_lehrer, "py-lehrer", "provider-access-l", "provider-refresh-l", "2001-01-01 00:00:00", None, None),
    ])
    A.conn.close()
    upstream_before = tree(A.root)

    # ---------------------------------------------------------------- import A
    rc, out, err = admin(s, "import", A.root)
    t.diag(out)
    t.eq(rc, 0, "import of a Python deployment: exit 0")
    t.ok("project 4: .sb3 file missing (%s)" % p4 in out, "the missing .sb3 is reported with its row", out + err)
    t.ok("nothing new" not in out, "the first run imports", out)
    dump1 = db_dump_text(s)
    rc, out2, err = admin(s, "import", os.path.join(A.root, "main.db"))   # the file form of PATH
    t.ok(rc == 0 and "nothing new" in out2, "a second run imports nothing new and says so", out2 + err)
    t.eq(db_dump_text(s), dump1, "a second run changes no row")
    t.eq(tree(A.root), upstream_before, "the upstream database and files are untouched (adopted, not moved)")

    q = lambda sql, a=(): db_rows(s, sql, a)  # noqa: E731
    t.eq(q("SELECT id, username, email, role, created_at, last_login, user_data FROM users "
           "WHERE id LIKE 'py-%' ORDER BY id"),
         [("py-anna", "anna", "anna@school.example", "student", "2024-02-01 08:00:00.123456",
           "2024-03-01 09:30:00.654321", '{"uuid": "py-anna", "groups": {"1": {"act": "klasse-7a"}}}'),
          ("py-ben", "ben", None, "student", "2024-02-01 08:05:00", None, None),
          ("py-lehrer", "lehrer", "l@school.example", "teacher", "2024-01-15 07:00:00.000001", None, "{}")],
         "users: every row and value, timestamps in the upstream text form")
    t.eq(q("SELECT id, name, external_id, description, created_at FROM groups ORDER BY id"),
         [(1, "Klasse 7a", "klasse-7a", None, "2024-01-15 07:00:00.5"),
          (2, "Lehrer", "lehrer", "Kollegium", "2024-01-15 07:00:01")], "groups: ids kept")
    t.eq(q("SELECT user_id, group_id, joined_at FROM user_groups ORDER BY user_id, group_id"),
         [("py-anna", 1, "2024-02-01 08:00:00"), ("py-ben", 1, None), ("py-lehrer", 1, None),
          ("py-lehrer", 2, "2024-01-15 07:00:00")], "memberships")
    t.eq(q("SELECT id, name, description, version, owner_id, created_at, updated_at, is_published, deleted_at "
           "FROM projects ORDER BY id"),
         [(1, "Katze", "Created on 2024-02-02", 3, "py-anna", "2024-02-02 10:00:00.000001", "2024-02-09 11:00:00.5", 1, None),
          (2, "Übung 1 & 2", None, 7, "py-anna", "2024-02-03 10:00:00", "2024-02-10 12:00:00", 0, None),
          (3, "Pong", "", 1, "py-ben", "2024-02-04 10:00:00", "2024-02-04 10:00:00", 1, None),
          (4, "Verloren", None, 2, "py-anna", "2024-02-05 10:00:00", "2024-02-05 10:00:00", 0, None),
          (5, "Alt", None, 1, "py-anna", "2023-12-01 10:00:00", "2023-12-01 10:00:00", 0, None)],
         "projects: ids, titles, versions, owners, timestamps kept; is_published NULL is 0")
    t.eq(q("SELECT id, sb3_sha256, sb3_size, thumbnail_sha256, thumbnail_type, sb3_file_path, thumbnail_path "
           "FROM projects ORDER BY id"),
         [(1, sha256(sb3[1]), len(sb3[1]), sha256(thumbs["1a"]), "image/png", None, None),
          (2, sha256(sb3[2]), len(sb3[2]), sha256(thumbs["2b"]), "image/png", None, None),
          (3, sha256(sb3[3]), len(sb3[3]), sha256(thumbs["3a"]), "image/png", None, None),
          (4, None, None, None, None, p4, None),
          (5, sha256(sb3[5]), len(sb3[5]), None, None, None, OLD_ROOT + "/thumbnails/default.png")],
         "projects: content by hash; of the two thumbnail names the newer wins; default.png is no thumbnail")
    t.eq(q("SELECT project_id, version, sha256, size, created_by, created_at FROM project_versions ORDER BY 1"),
         [(1, 3, sha256(sb3[1]), len(sb3[1]), "py-anna", "2024-02-09 11:00:00.5"),
          (2, 7, sha256(sb3[2]), len(sb3[2]), "py-anna", "2024-02-10 12:00:00"),
          (3, 1, sha256(sb3[3]), len(sb3[3]), "py-ben", "2024-02-04 10:00:00"),
          (5, 1, sha256(sb3[5]), len(sb3[5]), "py-anna", "2023-12-01 10:00:00")],
         "one project_versions row for each project's current content")
    t.eq(q("SELECT project_id, group_id, published_at FROM project_groups ORDER BY 1"),
         [(1, 1, "2024-02-09 11:00:00"), (3, 1, None)], "shares")
    t.eq(q("SELECT asset_id, asset_type, data_format, size, md5, owner_id, created_at, sha256, file_path "
           "FROM assets ORDER BY asset_type"),
         sorted([(md5(svg), "costume", "svg", len(svg), md5(svg), "py-anna", "2024-02-02 10:00:00", sha256(svg),
                  "blob:" + sha256(svg)),
                 (md5(wav), "sound", "wav", len(wav), md5(wav), "py-ben", "2024-02-03 10:00:00", sha256(wav),
                  "blob:" + sha256(wav)),
                 (md5(jpg), "thumbnail", "jpg", len(jpg), md5(jpg), "py-anna", None, sha256(jpg),
                  "blob:" + sha256(jpg))], key=lambda r: r[1]),
         "assets: every row, content by hash")
    t.eq(q("SELECT * FROM backpack_items"),
         [(bp_id, "costume", "Katze", "image/svg+xml", md5(svg), md5(jpg), "py-anna",
           "2024-02-02 10:00:00", "2024-02-02 10:00:00")], "backpack items")
    t.eq(q("SELECT id, user_id, access_token, refresh_token, expires_at FROM oauth_sessions "
           "WHERE user_id LIKE 'py-%' ORDER BY user_id"),
         [(sha256(tok_anna.encode()), "py-anna", "provider-access-anna", None, "2999-01-01 00:00:00.000000"),
          (sha256(tok_lehrer.encode()), "py-lehrer", "provider-access-l", "provider-refresh-l",
           "2001-01-01 00:00:00")],
         "sessions: live and renewable ones, stored by the SHA-256 of their token; the dead one left out")

    # Through nginx, with the imported sessions.
    r = s.get("/backend/api/user", headers={"X-Session-ID": tok_anna})
    t.ok(r.status == 200 and (r.json() or {}).get("user", {}).get("user_id") == "py-anna",
         "an imported session's old UUID token works: GET /backend/api/user → 200", r)
    r = s.get("/backend/api/user", headers={"Authorization": "Bearer " + tok_anna})
    t.eq(r.status, 200, "… as a Bearer token too")
    t.eq(s.get("/backend/api/user", headers={"X-Session-ID": tok_ben}).status, 401,
         "an expired session that could not be renewed was not imported")
    bad = []
    for pid in (1, 2, 5):
        r = s.get("/backend/api/projects/%d/download" % pid, headers={"X-Session-ID": tok_anna})
        if r.status != 200 or r.body != sb3[pid] or r.header("ETag") != '"%d"' % {1: 3, 2: 7, 5: 1}[pid]:
            bad.append((pid, r.status, r.header("ETag")))
    t.eq(bad, [], ".sb3 files download byte-identical, with their kept versions")
    r = s.get("/backend/api/projects/4/download", headers={"X-Session-ID": tok_anna})
    t.eq((r.status, r.json()), (404, {"error": "No project data available for download"}),
         "the project whose file was missing is there, without content")
    got = {pid: s.get("/backend/api/projects/%d/thumbnail" % pid, headers={"X-Session-ID": tok_anna}).body
           for pid in (1, 2, 3)}
    t.eq(got, {1: thumbs["1a"], 2: thumbs["2b"], 3: thumbs["3a"]}, "thumbnails byte-identical (the newer file)")
    t.eq([s.get("/backend/api/assets/%s" % md5(d)).body == d for d in (svg, wav, jpg)], [True] * 3,
         "assets byte-identical")
    r = s.get("/backend/api/backpack", headers={"X-Session-ID": tok_anna})
    t.eq([i["id"] for i in (r.json() or {}).get("items", [])], [bp_id], "the backpack item is anna's")
    rc, out, err = admin(s, "check")
    t.ok(rc == 0 and "project has no .sb3 file" in out, "check passes after the import (the gap a warning)",
         out + err)

    # ---------------------------------------------------------------- deployment B (no version column)
    B = Upstream(os.path.join(s.dir, "python-b"), OLD_SCHEMA)
    B.rows("INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)",
           [("py-clara", "clara", None, "student", "2023-05-01 08:00:00", None, None)])
    B.rows("INSERT INTO groups VALUES (?, ?, ?, ?, ?)", [
        (7, "Klasse 7a", "klasse-7a", None, None),        # known here as group 1
        (2, "AG Theater", "ag-theater", None, None),     # id 2 is taken here by "lehrer"
    ])
    B.rows("INSERT INTO user_groups VALUES (?, ?, ?)", [("py-clara", 7, None), ("py-clara", 2, None)])
    clara_sb3 = make_sb3("clara")
    B.rows("INSERT INTO projects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        (100, "Alt und gut", None, B.put("projects/100_py-clara.sb3", clara_sb3), None, "py-clara",
         "2023-05-02 08:00:00", "2023-05-02 08:00:00", 1)])
    B.rows("INSERT INTO project_groups VALUES (?, ?, ?)", [(100, 7, None), (100, 2, None)])
    # Rows whose owner the old database lacks (it never enforced foreign keys).
    B.rows("INSERT INTO user_groups VALUES (?, ?, ?)", [("py-ghost", 7, None)])
    B.rows("INSERT INTO projects VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        (101, "Niemandes", None, None, None, "py-ghost", None, None, 0)])
    B.rows("INSERT INTO project_groups VALUES (?, ?, ?)", [(101, 7, None)])
    B.conn.close()
    old_copy = os.path.join(s.dir, "old-in-place.db")
    shutil.copy(B.db, old_copy)

    rc, out, err = admin(s, "import", B.root)
    t.ok(rc == 0 and "no version column" in out, "import of an old database without projects.version", out + err)
    t.eq(q("SELECT version, sb3_sha256 FROM projects WHERE id = 100"), [(1, sha256(clara_sb3))],
         "its project starts at version 1")
    theater = q("SELECT id FROM groups WHERE external_id = 'ag-theater'")[0][0]
    t.ok(theater not in (1, 2, 7) and "id 2 is taken here, imported as group %d" % theater in out,
         "a group whose id is taken gets a new one, reported", out)
    t.eq(q("SELECT group_id FROM user_groups WHERE user_id = 'py-clara' ORDER BY group_id"), [(1,), (theater,)],
         "memberships follow the groups (a known external id maps onto the existing group)")
    t.eq(q("SELECT group_id FROM project_groups WHERE project_id = 100 ORDER BY group_id"), [(1,), (theater,)],
         "shares follow the groups")
    t.ok(q("SELECT count(*) FROM projects WHERE id = 101") == [(0,)]
         and q("SELECT count(*) FROM user_groups WHERE user_id = 'py-ghost'") == [(0,)]
         and "projects 101: not imported: it refers to a row the upstream database lacks" in out
         and "memberships py-ghost in group 7: not imported" in out
         and "share of project 101 with group 7: not imported: the project was not imported" in out,
         "rows whose owner is missing upstream are left out, each reported, the rest imported", out)

    # ---------------------------------------------------------------- stats on what was imported
    rc, out, err = admin(s, "stats", "--json")
    st = json.loads(out) if rc == 0 else {}
    t.eq(st.get("counts"), {"users": 4, "groups": 3, "memberships": 6, "projects_live": 6,
                            "projects_deleted": 0, "project_versions": 5, "project_shares": 4,
                            "assets": 3, "backpack_items": 1, "sessions_live": 1, "sessions_expired": 1},
         "stats --json: counts")
    t.eq(st.get("users_by_role"), {"student": 3, "teacher": 1}, "stats --json: users by role")
    blobs = [os.path.join(r, n) for r, _, ns in os.walk(os.path.join(s.data, "blobs")) for n in ns]
    t.eq({k: st.get("storage", {}).get(k) for k in ("blobs", "blob_bytes", "blobs_referenced",
                                                   "blobs_unreferenced")},
         {"blobs": 11, "blob_bytes": sum(os.path.getsize(b) for b in blobs), "blobs_referenced": 11,
          "blobs_unreferenced": 0}, "stats --json: the blob store (5 .sb3, 3 thumbnails, 3 assets)")
    if s.pg_uri:
        t.eq(st.get("storage", {}).get("database_bytes"), db_value(s, "SELECT pg_database_size(current_database())"),
             "stats --json: the database's size (pg_database_size)")
    else:
        t.eq(st.get("storage", {}).get("database_bytes"), os.path.getsize(os.path.join(s.data, "main.db")),
             "stats --json: the database file's size")
    rc, out, err = admin(s, "stats")
    t.ok(rc == 0 and "users:     4 (3 student, 1 teacher)" in out and "sessions:  1 live, 1 expired" in out,
         "stats: plain text", out + err)

    # ---------------------------------------------------------------- ids the server generates afterwards
    # (PostgreSQL: the identity sequences were moved past the imported ids.)
    clara = s.login("clara")
    t.eq(q("SELECT id FROM groups WHERE external_id = 'klasse-7b'"), [(theater + 1,)],
         "a group a login creates after the import gets the next id after the imported ones")
    r = project_send(s, "POST", "/backend/api/projects?title=Neu", clara, sb3=make_sb3("after-import"))
    t.eq((r.status, (r.json() or {}).get("id")), (200, 101),
         "a project created after the import gets the next id after the imported ones")

    # ---------------------------------------------------------------- migrate, in place, on the old file
    env = {"DATABASE_URI": "sqlite:///" + old_copy}
    rc, out, err = admin(s, "migrate", "--status", env=env)
    t.ok(rc == 0 and "pending" in out and "applied" not in out, "migrate --status on a Python database: all pending",
         out + err)
    rc, out, err = admin(s, "migrate", env=env)
    t.ok(rc == 0 and "applied" in out, "migrate adopts the Python database in place", out + err)
    c = sqlite3.connect(old_copy)
    cols = [r[1] for r in c.execute("PRAGMA table_info(projects)")]
    rows = c.execute("SELECT id, version, name FROM projects").fetchall()
    c.close()
    t.ok("version" in cols and "sb3_sha256" in cols, "projects.version (and this server's columns) added", cols)
    t.eq(rows, [(100, 1, "Alt und gut"), (101, 1, "Niemandes")], "existing rows get version 1, the rest unchanged")
    before = db_dump(old_copy)
    rc, out, err = admin(s, "migrate", env=env)
    t.ok(rc == 0 and "up to date" in out and db_dump(old_copy) == before, "a second migrate changes nothing",
         out + err)
    rc, out, err = admin(s, "migrate", "--status", env=env)
    t.ok(rc == 0 and "pending" not in out and out.count("applied") >= 3, "migrate --status: every one applied", out)

t.done()
