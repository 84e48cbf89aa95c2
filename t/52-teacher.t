#!/usr/bin/env python3
# Every route of the Login/General/Teacher sections against every kind of
# caller (no token, unknown, expired, student, teacher, admin), and the
# teacher view's contents: who is listed for whom, project counts (one
# grouped query; soft-deleted projects not counted), a student's projects
# newest first, 403/404 answers.
import io
import json
import os
import random
import sys
import time
import urllib.parse
import zipfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import Stack, Tap, db_rows, db_value, multipart, sha256  # noqa: E402

t = Tap()
FORBIDDEN = (403, {"error": "Admin or Teacher privileges required"})
NOT_FOUND = (404, {"error": "Student not found"})
EXPIRED = (401, {"error": "Session expired", "renewal_required": True})


def err(r):
    return (r.status, r.json())


def sb3(title):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("project.json", json.dumps({"targets": [], "meta": {"semver": "3.0.0", "title": title}}))
    return buf.getvalue()


with Stack(workers=2) as s:
    tok = {u: s.login(u) for u in ("anna", "ben", "clara", "lehmann", "admin")}
    s.idp_control(users={"huber": {"uuid": "u-huber-0101", "preferred_username": "Huber",
                                   "groups": {"1": {"act": "lehrer", "name": "Lehrer"}}}})
    tok["huber"] = s.login("huber")  # a second teacher
    ids = {"anna": "u-anna-0001", "ben": "u-ben-0002", "clara": "u-clara-0003",
           "lehmann": "u-lehmann-0100", "admin": "u-admin-0999", "huber": "u-huber-0101"}

    # An expired session that cannot be renewed (no refresh token).
    expired = s.login("ben")
    db_rows(s, "UPDATE oauth_sessions SET expires_at = '2020-01-01 00:00:00.000000', refresh_token = NULL "
               "WHERE id = ?", (sha256(expired.encode()),))

    # ---- seed projects through the API (a real .sb3: a zip holding project.json)
    def seed(user, title, deleted=False):
        body, ctype = multipart({}, {"project_file": ("p.sb3", sb3(title), "application/octet-stream")})
        r = s.req("POST", "/backend/api/projects?title=" + urllib.parse.quote_plus(title), body=body,
                  headers=dict(s.auth(tok[user]), **{"Content-Type": ctype}))
        pid = (r.json() or {}).get("id")
        if r.status != 200 or not pid:
            raise RuntimeError("seeding %s: %r" % (title, r))
        if deleted:
            d = s.req("DELETE", "/backend/api/projects/%d" % pid, headers=s.auth(tok[user]))
            if d.status != 200:
                raise RuntimeError("deleting %s: %r" % (title, d))
        return pid

    anna_pids = [seed("anna", "Anna %d" % i) for i in range(3)]
    seed("anna", "Anna deleted", deleted=True)
    # A save of the oldest makes it the newest (order is by updated_at, not id).
    body, ctype = multipart({}, {"project_file": ("p.sb3", sb3("Anna 0 v2"), "application/octet-stream")})
    r = s.req("PUT", "/backend/api/projects/%d" % anna_pids[0], body=body,
              headers=dict(s.auth(tok["anna"]), **{"Content-Type": ctype, "If-Match": '"1"'}))
    if r.status != 200:
        raise RuntimeError("updating Anna 0: %r" % r)
    anna_order = [anna_pids[0], anna_pids[2], anna_pids[1]]
    seed("ben", "Ben 1")
    seed("lehmann", "Lehmann 1")
    seed("lehmann", "Lehmann 2")
    seed("clara", "Clara gone", deleted=True)
    want_counts = {"anna": 3, "ben": 1, "clara": 0, "lehmann": 2, "huber": 0}

    # ---- auth outcomes of every route
    def outcome(path, who):
        if who == "none":
            return s.get(path)
        if who == "unknown":
            return s.get(path, headers=s.auth("not-a-session"))
        if who == "expired":
            return s.get(path, headers=s.auth(expired))
        return s.get(path, headers=s.auth(tok[who]))

    ANNA_P = "/backend/api/teacher/students/%s/projects" % ids["anna"]
    for path in ("/backend/api/user", "/backend/api/groups", "/backend/api/teacher/students", ANNA_P):
        t.eq(err(outcome(path, "none")), (401, {"error": "Authentication required"}), path + ": no token → 401")
        t.eq(err(outcome(path, "unknown")), (401, {"error": "Invalid session"}), path + ": unknown → 401")
        t.eq(err(outcome(path, "expired")), EXPIRED, path + ": expired → 401 renewal_required")
    for who in ("anna", "lehmann", "admin"):
        r = outcome("/backend/api/user", who)
        u = (r.json() or {}).get("user", {})
        t.eq((r.status, u.get("user_id"), u.get("session_id"), u.get("username"), u.get("role")),
             (200, ids[who], tok[who], who, {"anna": "student", "lehmann": "teacher", "admin": "admin"}[who]),
             "/api/user for " + who)
        t.eq(sorted(u), ["email", "role", "session_id", "user_id", "username"], "/api/user keys for " + who)
    r = outcome("/backend/api/groups", "lehmann")
    t.eq((r.status, sorted(g["external_id"] for g in (r.json() or {}).get("groups", []))),
         (200, ["klasse-7a", "klasse-7b", "lehrer"]), "/api/groups: the caller's groups")
    r = outcome("/backend/api/groups", "anna")
    t.eq([g["external_id"] for g in (r.json() or {}).get("groups", [])], ["klasse-7a"], "/api/groups for anna")

    CS = "/backend/api/projects/can-save"
    no = {"canSave": False, "userId": None, "username": None}
    t.eq(err(outcome(CS, "none")), (200, no), "can-save without a token → canSave false")
    t.eq(err(outcome(CS, "unknown")), (200, no), "can-save with an unknown token → 200 canSave false")
    t.eq(err(outcome(CS, "expired")), (200, no), "can-save with an expired token → 200 canSave false")
    t.eq(err(outcome(CS, "anna")), (200, {"canSave": True, "userId": ids["anna"], "username": "anna"}),
         "can-save with a valid session")

    for path in ("/backend/api/teacher/students", ANNA_P, "/backend/api/teacher/students/nobody/projects"):
        t.eq(err(outcome(path, "anna")), FORBIDDEN, path + ": student → 403")

    # ---- who sees whom
    def listing(who):
        r = outcome("/backend/api/teacher/students", who)
        j = r.json() or {}
        return r.status, j

    st, j = listing("lehmann")
    got = {x["id"]: x for x in j.get("students", [])}
    t.eq(st, 200, "teacher: 200")
    t.eq(sorted(got), sorted(ids[u] for u in ("anna", "ben", "clara")), "a teacher sees the students, all of them")
    t.eq(j.get("count"), len(j.get("students", [])), "count is the list's length")
    t.eq({x["username"]: x["project_count"] for x in j.get("students", [])},
         {u: want_counts[u] for u in ("anna", "ben", "clara")}, "project counts (deleted projects not counted)")
    t.eq(sorted(j.get("students", [{}])[0]), ["id", "project_count", "username"], "student entry keys")
    st, j = listing("admin")
    got = {x["id"]: x["project_count"] for x in j.get("students", [])}
    t.eq(sorted(got), sorted(ids[u] for u in ("anna", "ben", "clara", "lehmann", "huber")),
         "an admin sees students and teachers (not admins)")
    t.eq(got, {ids[u]: want_counts[u] for u in want_counts}, "admin: counts, teachers' projects too")
    t.eq([x["username"] for x in j.get("students", [])], ["anna", "ben", "clara", "Huber", "lehmann"],
         "sorted by username, case-insensitively")

    # ---- one student's projects
    r = outcome(ANNA_P, "lehmann")
    j = r.json() or {}
    t.eq((r.status, j.get("student"), j.get("count")), (200, {"id": ids["anna"], "username": "anna"}, 3),
         "teacher: a student's projects")
    projects = j.get("projects", [])
    t.eq([p.get("id") for p in projects], anna_order, "newest updated_at first, deleted and others' excluded")
    t.eq(db_value(s, "SELECT COUNT(*) FROM projects WHERE owner_id = ? AND deleted_at IS NOT NULL", (ids["anna"],)),
         1, "(the deleted one is still a row, soft-deleted)")
    t.eq([(p.get("title"), p.get("version")) for p in projects], [("Anna 0", 2), ("Anna 2", 1), ("Anna 1", 1)],
         "titles and versions")
    t.eq(sorted(projects[0]) if projects else None,
         ["created_at", "description", "id", "thumbnail_url", "title", "updated_at", "version"], "summary keys")
    t.ok(all(p["thumbnail_url"] == "/backend/api/projects/%d/thumbnail" % p["id"] for p in projects),
         "thumbnail_url under BASE_PATH", projects)
    t.ok(all(p["created_at"].endswith("+00:00") and "T" in p["updated_at"]
             and p["description"].startswith("Created on ") for p in projects), "ISO times, description",
         projects)
    r = outcome(ANNA_P, "admin")
    t.eq((r.status, [p["id"] for p in (r.json() or {}).get("projects", [])]), (200, anna_order),
         "admin: the same list")
    r = outcome("/backend/api/teacher/students/%s/projects" % ids["clara"], "lehmann")
    t.eq((r.status, (r.json() or {}).get("projects"), (r.json() or {}).get("count")), (200, [], 0),
         "a student whose only project is deleted: empty list")
    LEH_P = "/backend/api/teacher/students/%s/projects" % ids["lehmann"]
    r = outcome(LEH_P, "admin")
    t.eq((r.status, (r.json() or {}).get("count")), (200, 2), "admin: a teacher's projects")
    t.eq(err(outcome(LEH_P, "huber")), NOT_FOUND, "teacher: another teacher is not a student → 404")
    t.eq(err(outcome("/backend/api/teacher/students/%s/projects" % ids["admin"], "admin")), NOT_FOUND,
         "admin: an admin is not listed → 404")
    for bad in ("nobody", "u-anna-0001%27%20OR%20%271%27=%271", "%E2%98%83", "x" * 300):
        t.eq(err(outcome("/backend/api/teacher/students/%s/projects" % bad, "lehmann")), NOT_FOUND,
             "unknown student %s… → 404" % bad[:20])

    # ---- many students: counts from one grouped query, adopted rows without a role
    rnd = random.Random(7)
    many = {"u-seed-%03d" % i: rnd.randint(0, 3) for i in range(300)}
    db_rows(s, "INSERT INTO users (id, username, role) VALUES ('u-old-1', 'altbestand', NULL)")
    db_rows(s, "INSERT INTO users (id, username, role) VALUES ('u-old-2', 'leer', '')")
    # One multi-row INSERT each (db_rows: SQLite or PostgreSQL alike).
    db_rows(s, "INSERT INTO users (id, username, role) VALUES " + ", ".join(["(?, ?, 'student')"] * len(many)),
            [x for u in many for x in (u, u.replace("u-", ""))])
    rows = []
    for u, n in many.items():
        rows += [(u, "p%d" % k, None) for k in range(n)]
        rows.append((u, "deleted", "2026-01-02 00:00:00.000000"))
    db_rows(s, "INSERT INTO projects (owner_id, name, version, created_at, updated_at, deleted_at) VALUES " +
            ", ".join(["(?, ?, 1, '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000', ?)"] * len(rows)),
            [x for r in rows for x in r])
    t0 = time.time()
    st, j = listing("lehmann")
    list_ms = (time.time() - t0) * 1000
    got = {x["id"]: x["project_count"] for x in j.get("students", [])}
    t.eq(j.get("count"), 3 + 300 + 2, "305 students listed")
    t.eq({u: got.get(u) for u in many}, many, "300 seeded students: every count right")
    t.eq((got.get("u-old-1"), got.get("u-old-2")), (0, 0), "rows without a role count as students")
    t.eq(err(outcome("/backend/api/teacher/students/u-old-1/projects", "lehmann"))[0], 200,
         "and their projects can be opened")
    t.diag("teacher list of 305 students (%d projects): %.1f ms" % (sum(many.values()) + 6, list_ms))

t.done()
