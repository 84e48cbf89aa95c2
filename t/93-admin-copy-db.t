#!/usr/bin/env python3
# s4s-admin copy-db, the move from SQLite to PostgreSQL: a server on an
# SQLite file is filled through the real API (students and a teacher logged
# in through the stand-in provider, two sessions of one student, projects
# with .sb3 files, thumbnails and several versions, a share, a conflict
# copy, a soft-deleted project, assets, backpack items) plus a few values
# the API never writes but old databases hold (NULL beside ''), then copied
# into a new PostgreSQL database while that server still runs. Every table
# then holds the same rows on both sides (read with sqlite3 and psql, NULL
# and '' apart), as copy-db's own comparison says. A server on the copy,
# with the same DATA_DIR, serves the old session, the same listings and
# byte-identical files, and new projects, assets and groups get ids after
# the copied ones. A non-empty target is refused unchanged without --force
# and replaced with it; an unmigrated or missing source is refused; and the
# copy goes back from PostgreSQL into a new SQLite file row for row.
#
# Needs a PostgreSQL server: S4S_TEST_PG is its admin URI
# (postgresql://postgres@127.0.0.1:PORT/postgres, contrib/pg.sh).
import base64
import json
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import s4s  # noqa: E402
from s4s import (Stack, Tap, admin, make_sb3, md5, multipart, project_send,  # noqa: E402
                 sample_png, sample_svg, sample_wav)

PG_ADMIN = os.environ.get("S4S_TEST_PG")
if not PG_ADMIN:
    print("1..0 # SKIP no PostgreSQL (S4S_TEST_PG)")
    sys.exit(0)

t = Tap()
P = "/backend/api/projects"
TABLES = ["users", "groups", "user_groups", "oauth_sessions", "projects", "project_groups",
          "project_versions", "session_project_versions", "conflict_copies", "assets", "backpack_items"]


# ---- psql through the harness's helpers, but without its PostgreSQL mode: the
# source stack must stay on SQLite.
def psql(uri, sql):
    return s4s.pg_exec(uri, sql)


def db_uri(dbname):
    return s4s.pg_database_uri(PG_ADMIN, dbname)


def create_db():
    name = "s4s_copydb_" + secrets.token_hex(6)
    psql(PG_ADMIN, "CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8'" % name)
    return name


def drop_db(name):
    try:
        psql(PG_ADMIN, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)
    except RuntimeError as e:
        print("# could not drop %s: %s" % (name, e))


# ---- every row of every table, on either side: {table: sorted [tuple in column order]}
def sqlite_columns(path):
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'")]
        return {n: [r[1] for r in conn.execute("PRAGMA table_info(%s)" % n)] for n in names}
    finally:
        conn.close()


def sqlite_dump(path, cols):
    conn = sqlite3.connect(path)
    try:
        return {n: sorted(conn.execute("SELECT %s FROM %s" % (", ".join(c), n)).fetchall(), key=repr)
                for n, c in cols.items()}
    finally:
        conn.close()


def pg_dump(uri, cols):
    # One JSON array per table: numbers stay numbers, NULL is null, '' is "".
    sql = "".join("SELECT coalesce(json_agg(json_build_array(%s)), '[]') FROM %s;\n" % (", ".join(c), n)
                  for n, c in cols.items())
    lines = psql(uri, sql).splitlines()
    return {n: sorted((tuple(r) for r in json.loads(line)), key=repr) for n, line in zip(cols, lines)}


def pg_columns(uri):
    out = {}
    for line in psql(uri, "SELECT table_name, column_name FROM information_schema.columns WHERE "
                          "table_schema = current_schema() AND table_name <> 'schema_migrations' "
                          "ORDER BY table_name, ordinal_position").splitlines():
        tb, col = line.split("|")
        out.setdefault(tb, []).append(col)
    return out


def counts(dump):
    return {n: len(rows) for n, rows in dump.items()}


def report_counts(out):
    """copy-db's per-table lines: {table: (rows, identical?)}."""
    found = {}
    for m in re.finditer(r"^\s+(\w+)\s+(\d+) rows\s+(identical|DIFFERENT)$", out, re.M):
        found[m.group(1)] = (int(m.group(2)), m.group(3) == "identical")
    return found


def stop_server(s):
    """Stop nginx and the master but keep the stack's directory (its DATA_DIR lives on)."""
    for p, sig in ((s.nginx, signal.SIGQUIT), (s.master, signal.SIGTERM)):
        if p and p.poll() is None:
            p.send_signal(sig)
            p.wait(timeout=15)


work = tempfile.mkdtemp(prefix="s4s-copydb-")
src_db = os.path.join(work, "main.db")
target = create_db()
target_uri = db_uri(target)
try:
    a = Stack(workers=2, config={"DATABASE_URI": "sqlite:///" + src_db, "VERSION_RETENTION": "5"})
    # The harness's PostgreSQL mode leaves a stack alone that names its database; say it again anyway.
    a.config["DATABASE_URI"] = "sqlite:///" + src_db
    with a:
        # ---- seed through the API
        tok = {u: a.login(u) for u in ("anna", "ben", "clara", "lehmann")}
        anna2 = a.login("anna")  # her second device
        a.idp_control(users={"nora": {"uuid": "u-nora-0004", "preferred_username": "nora",
                                      "groups": {"1": {"act": "ag-robotik", "name": "AG Robotik"}}}})
        tok["nora"] = a.login("nora")

        def call(method, path, token, body=None, headers=None):
            h = {"X-Session-ID": token}
            h.update(headers or {})
            return a.req(method, path, body=body, headers=h)

        def create(token, title, sb3, thumb=None):
            r = project_send(a, "POST", "%s?title=%s" % (P, urllib.parse.quote(title)), token, sb3, thumb)
            if r.status != 200:
                raise RuntimeError("create: %r" % r)
            return r.json()["id"]

        gid = {g["external_id"]: g["id"] for g in call("GET", "/backend/api/groups", tok["anna"]).json()["groups"]}
        sb3 = {}
        p1 = create(tok["anna"], "Übung 1: \"Katze\" & 'Hund' \\ ✓", make_sb3("p1-v1"), sample_png(4, 3, seed=1))
        sb3[p1] = (tok["anna"], make_sb3("p1-v2"))
        r = project_send(a, "PUT", "%s/%d" % (P, p1), tok["anna"], sb3[p1][1], sample_png(2, 2, seed=2),
                         headers={"If-Match": '"1"'})
        t.eq(r.status, 200, "seed: PUT a second version")
        r = call("POST", "%s/%d/share" % (P, p1), tok["anna"], json.dumps({"group_ids": [gid["klasse-7a"]]}).encode(),
                 {"Content-Type": "application/json"})
        t.eq(r.status, 200, "seed: share with klasse-7a")
        p2 = create(tok["anna"], "Zwei Geräte", make_sb3("p2-v1"))
        r = project_send(a, "PUT", "%s/%d" % (P, p2), anna2, make_sb3("p2-other-device"))
        t.eq(r.status, 200, "seed: the second device saves")
        r = project_send(a, "PUT", "%s/%d" % (P, p2), tok["anna"], make_sb3("p2-stale"))
        copy_id = (r.json() or {}).get("conflict_copy_id")
        t.ok(r.status == 409 and isinstance(copy_id, int), "seed: the first device's stale save makes a conflict copy",
             r)
        sb3[p2] = (tok["anna"], make_sb3("p2-other-device"))
        sb3[copy_id] = (tok["anna"], make_sb3("p2-stale"))
        p3 = create(tok["anna"], "Weg damit", make_sb3("p3"))
        t.eq(call("DELETE", "%s/%d" % (P, p3), tok["anna"]).status, 200, "seed: a soft-deleted project")
        pb = create(tok["ben"], "Bens Spiel", make_sb3("ben"), sample_png(3, 3, seed=3))
        sb3[pb] = (tok["ben"], make_sb3("ben"))
        r = call("POST", "%s/%d/copy" % (P, p1), tok["ben"])
        t.eq(r.status, 201, "seed: ben copies anna's shared project")
        sb3[r.json()["id"]] = (tok["ben"], sb3[p1][1])

        svg, wav = sample_svg("copy-db"), sample_wav(seed=4)
        for data, typ, fmt in ((svg, "costume", "svg"), (wav, "sound", "wav")):
            body, ctype = multipart({"type": typ, "format": fmt}, {"asset": ("a." + fmt, data, "application/octet-stream")})
            r = call("POST", "/backend/api/assets/", tok["anna"], body, {"Content-Type": ctype})
            t.eq((r.status, (r.json() or {}).get("assetId")), (200, md5(data)), "seed: asset %s" % fmt)
        png = sample_png(5, 5, seed=5)
        r = call("POST", "/backend/api/assets/%s.png" % md5(png), tok["clara"], png,
                 {"Content-Type": "application/octet-stream"})
        t.eq(r.status, 200, "seed: a raw asset POST")
        for token, item in ((tok["anna"], {"type": "costume", "mime": "image/svg+xml", "name": "Katze ✓",
                                           "body": base64.b64encode(svg).decode(),
                                           "thumbnail": base64.b64encode(png).decode()}),
                            (tok["ben"], {"type": "sound", "mime": "audio/x-wav", "name": "Miau",
                                          "body": base64.b64encode(wav).decode(), "thumbnail": ""})):
            r = call("POST", "/backend/api/backpack", token, json.dumps(item).encode(),
                     {"Content-Type": "application/json"})
            t.eq(r.status, 200, "seed: backpack item %s" % item["name"])

        # Values the API does not write but imported databases hold: '' beside NULL.
        conn = sqlite3.connect(src_db, timeout=10)
        with conn:
            conn.execute("UPDATE groups SET description = '' WHERE external_id = 'klasse-7b'")
            conn.execute("UPDATE users SET email = '' WHERE username = 'clara'")
        conn.close()

        # What the clients see, recorded before the copy (reads may record last-seen versions).
        seen = {
            "user": call("GET", "/backend/api/user", tok["anna"]).json(),
            "projects": call("GET", P, tok["anna"]).json(),
            "shared": call("GET", P + "/shared", tok["ben"]).json(),
            "versions": call("GET", "%s/%d/versions" % (P, p1), tok["anna"]).json(),
            "backpack": call("GET", "/backend/api/backpack", tok["anna"]).json(),
            "students": call("GET", "/backend/api/teacher/students", tok["lehmann"]).json(),
        }
        thumb1 = call("GET", "%s/%d/thumbnail" % (P, p1), tok["anna"]).body
        version1 = call("GET", "%s/%d/versions/1/download" % (P, p1), tok["anna"]).body

        cols = sqlite_columns(src_db)
        t.eq(sorted(cols), sorted(TABLES), "the SQLite schema has exactly the tables copy-db copies")
        before = sqlite_dump(src_db, cols)
        t.eq([n for n in TABLES if not before[n]], [], "every table holds rows to copy")
        flat = [v for rows in before.values() for row in rows for v in row]
        t.ok(None in flat and "" in flat, "the source holds both NULL and '' values")

        # ---- the copy, while the server still runs
        rc, out, err = admin(a, "copy-db", "--from", "sqlite:///" + src_db, "--to", target_uri)
        t.eq(rc, 0, "copy-db SQLite → PostgreSQL: exit 0")
        if rc != 0:
            t.diag(out + err)
        t.eq(report_counts(out), {n: (len(before[n]), True) for n in TABLES},
             "copy-db reports every table with the source's row count, identical")
        t.ok("blobs are not copied" in out and "DATA_DIR" in out, "it says the blobs stay in DATA_DIR", out)
        t.eq({n: sorted(c) for n, c in pg_columns(target_uri).items()}, {n: sorted(c) for n, c in cols.items()},
             "the target has the same tables and columns")
        copied = pg_dump(target_uri, cols)
        t.eq(counts(copied), counts(before), "per-table row counts: PostgreSQL = SQLite")
        for n in TABLES:
            t.eq(copied[n], before[n], "%s: every row and value the same (NULL and '' apart)" % n)
        t.eq(psql(target_uri, "SELECT email IS NULL, email FROM users WHERE username = 'clara';"
                              "SELECT email IS NULL FROM users WHERE username = 'nora'").split(),
             ["f|", "t"], "'' stayed '' and NULL stayed NULL")
        t.eq(sqlite_dump(src_db, cols), before, "the source is unchanged")

        # ---- a target with rows: refused unchanged, then replaced with --force
        rc, out, err = admin(a, "copy-db", "--from", src_db, "--to", target_uri)
        t.ok(rc == 1 and "already holds rows" in err and "--force" in err,
             "a target with rows: exit 1, says so and names --force", (rc, out, err))
        t.eq(pg_dump(target_uri, cols), copied, "the refused target is unchanged")
        psql(target_uri, "DELETE FROM backpack_items WHERE name = 'Miau';"
                         "UPDATE projects SET name = 'verändert' WHERE id = %d" % p1)
        rc, out, err = admin(a, "copy-db", "--from", src_db, "--to", target_uri, "--force", "--json")
        try:
            j = json.loads(out)
        except ValueError:
            j = {}
        t.eq(rc, 0, "--force: exit 0")
        t.eq((j.get("identical"), j.get("tables_different"), j.get("blobs_copied")), (True, 0, False),
             "--force --json: identical, blobs not copied")
        t.eq({x["name"]: (x["source_rows"], x["target_rows"], x["identical"]) for x in j.get("tables", [])},
             {n: (len(before[n]), len(before[n]), True) for n in TABLES}, "--json: every table's rows, identical")
        t.eq({x["name"]: x["rows_deleted_first"] for x in j.get("tables", [])},
             {n: len(before[n]) - (1 if n == "backpack_items" else 0) for n in TABLES},
             "--json: the rows --force deleted first")
        t.ok(all(x["source_sha256"] == x["target_sha256"] and re.match("^[0-9a-f]{64}$", x["source_sha256"])
                 for x in j.get("tables", [])), "--json: the digests")
        t.eq(pg_dump(target_uri, cols), before, "--force: the target holds the source's rows again")

        # ---- sources that cannot be copied
        rc, out, err = admin(a, "copy-db", "--from", os.path.join(work, "nope.db"), "--to", target_uri)
        t.ok(rc == 1 and "No such file" in err and not os.path.exists(os.path.join(work, "nope.db")),
             "a missing source: exit 1, said, not created", (rc, err))
        old = os.path.join(work, "old.db")
        conn = sqlite3.connect(old)
        conn.execute("CREATE TABLE users (id VARCHAR(128) NOT NULL, username VARCHAR(128) NOT NULL, PRIMARY KEY (id))")
        conn.execute("INSERT INTO users VALUES ('x', 'x')")
        conn.commit()
        conn.close()
        rc, out, err = admin(a, "copy-db", "--from", "sqlite:///" + old, "--to", target_uri, "--force")
        t.ok(rc == 1 and "lacks 3 migration(s)" in err and "s4s-admin migrate" in err,
             "an unmigrated source: exit 1, tells to run s4s-admin migrate", (rc, err))
        t.eq(list(sqlite_columns(old)), ["users"], "the unmigrated source is left alone")
        t.eq(pg_dump(target_uri, cols), before, "and the target is untouched")
        rc, out, err = admin(a, "copy-db", "--from", src_db, "--to", "sqlite:///" + src_db, "--force")
        t.ok(rc == 1 and "same database" in err, "a database onto itself: refused", (rc, err))
        rc, out, err = admin(a, "copy-db", "--from", src_db)
        t.eq(rc, 2, "no --to: usage, exit 2")

        max_id = {n: max(r[0] for r in before[n]) for n in ("projects", "groups", "assets")}
        stop_server(a)

        # ---- a server on the copy, with the same DATA_DIR
        b = Stack(workers=2, config={"DATABASE_URI": target_uri, "DATA_DIR": a.data})
        b.config["DATABASE_URI"] = target_uri
        b.data = a.data
        with b:
            def bcall(method, path, token, body=None, headers=None):
                h = {"X-Session-ID": token}
                h.update(headers or {})
                return b.req(method, path, body=body, headers=h)

            t.eq(bcall("GET", "/backend/api/user", tok["anna"]).json(), seen["user"],
                 "the student's session still works on PostgreSQL")
            t.eq(bcall("GET", P, tok["anna"]).json(), seen["projects"], "her projects list the same")
            t.eq(bcall("GET", P + "/shared", tok["ben"]).json(), seen["shared"], "ben's shared list the same")
            t.eq(bcall("GET", "%s/%d/versions" % (P, p1), tok["anna"]).json(), seen["versions"], "the versions")
            t.eq(bcall("GET", "/backend/api/backpack", tok["anna"]).json(), seen["backpack"], "her backpack")
            t.eq(bcall("GET", "/backend/api/teacher/students", tok["lehmann"]).json(), seen["students"],
                 "the teacher's view")
            for pid, (owner, data) in sorted(sb3.items()):
                r = bcall("GET", "%s/%d/download" % (P, pid), owner)
                t.eq((r.status, r.body == data), (200, True), "project %d downloads byte for byte" % pid)
            t.eq(bcall("GET", "%s/%d/thumbnail" % (P, p1), tok["anna"]).body, thumb1, "the thumbnail")
            t.eq(bcall("GET", "%s/%d/versions/1/download" % (P, p1), tok["anna"]).body, version1, "an old version")
            t.eq(b.get("/backend/api/assets/%s.svg" % md5(svg)).body, svg, "an asset")
            t.eq(bcall("GET", "%s/%d/download" % (P, p3), tok["anna"]).status, 404, "the deleted project stays deleted")

            # Identity sequences continue after the copied ids.
            r = project_send(b, "POST", P + "?title=Neu", tok["anna"], make_sb3("new"))
            new_id = (r.json() or {}).get("id")
            t.ok(r.status == 200 and new_id > max_id["projects"],
                 "a new project: id %r after the copied %d" % (new_id, max_id["projects"]), r)
            t.eq(bcall("GET", "%s/%d/download" % (P, new_id), tok["anna"]).body, make_sb3("new"), "and it downloads")
            new_png = sample_png(6, 6, seed=6)
            r = bcall("POST", "/backend/api/assets/%s.png" % md5(new_png), tok["anna"], new_png,
                      {"Content-Type": "application/octet-stream"})
            t.eq(r.status, 200, "a new asset")
            b.idp_control(users={"otto": {"uuid": "u-otto-0005", "preferred_username": "otto",
                                          "groups": {"1": {"act": "ag-theater", "name": "AG Theater"}}}})
            b.login("otto")
            ids = psql(target_uri, "SELECT id FROM assets WHERE md5 = '%s';"
                                   "SELECT id FROM groups WHERE external_id = 'ag-theater'" % md5(new_png)).split()
            t.ok(len(ids) == 2 and int(ids[0]) > max_id["assets"] and int(ids[1]) > max_id["groups"],
                 "new asset and group ids after the copied ones", (ids, max_id))
        now = pg_dump(target_uri, cols)

        # ---- and back: PostgreSQL → a new SQLite file, row for row
        back = os.path.join(work, "back.db")
        rc, out, err = admin(a, "copy-db", "--from", target_uri, "--to", "sqlite:///" + back)
        t.eq(rc, 0, "copy-db PostgreSQL → SQLite: exit 0")
        t.eq(report_counts(out), {n: (len(now[n]), True) for n in TABLES}, "every table identical")
        t.eq(sqlite_dump(back, cols), now, "the SQLite copy holds PostgreSQL's rows")
finally:
    drop_db(target)
    shutil.rmtree(work, ignore_errors=True)

t.done()
