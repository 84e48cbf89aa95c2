#!/usr/bin/env python3
# Versioned compare-and-swap on every project write (API.md): the four
# sources of the expected version (If-Match, `version` as query parameter
# or multipart field, the session's last-seen version, none), 409 bodies,
# two devices of one student, one device saving many times in a row, 32
# simultaneous writers with one expected version, 16 simultaneous shares,
# conflict copies (one per session and project, also under parallel
# conflicting saves), and a worker SIGKILLed in the middle of a large PUT.
# Files are answered with X-Accel-Redirect here (SENDFILE), so that path is
# exercised too.
import json
import os
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import s4s  # noqa: E402
from s4s import (Stack, Tap, db_rows, db_value, files_in, make_sb3, multipart, parallel,  # noqa: E402
                 project_row, project_send, sample_png, sha256, stored_sb3)

t = Tap()
P = "/backend/api/projects"
CONFLICT = "Project was modified by another user. Please refresh and try again."


def conflicts_total(s):
    for line in s.get("/backend/metrics").body.decode().splitlines():
        if line.startswith("s4s_version_conflicts_total "):
            return int(line.split()[1])
    return None


# ---- a FastCGI client, to hold a request body half-sent at the worker (nginx
# would buffer the whole body before passing the request on)
def fcgi_record(kind, content, rid=1):
    return struct.pack(">BBHHBB", 1, kind, rid, len(content), 0, 0) + content


def fcgi_params(params):
    out = b""
    for k, v in params.items():
        k, v = k.encode(), v.encode()
        for x in (k, v):
            out += bytes([len(x)]) if len(x) < 128 else struct.pack(">I", len(x) | 0x80000000)
        out += k + v
    return out


def fcgi_begin(sock_path, method, uri, headers, body_len):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(sock_path)
    params = {"REQUEST_METHOD": method, "REQUEST_URI": uri, "QUERY_STRING": "", "SCRIPT_NAME": uri,
              "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(body_len)}
    params.update(headers)
    c.sendall(fcgi_record(1, struct.pack(">HB5x", 1, 0)) + fcgi_record(4, fcgi_params(params)) +
              fcgi_record(4, b""))
    return c


def fcgi_stdin(c, data):
    for i in range(0, len(data), 32768):
        c.sendall(fcgi_record(5, data[i:i + 32768]))


# With X-Accel-Redirect nginx would replace the server's ETag ("<version>")
# by its own (mtime-size of the blob file) and answer If-Modified-Since from
# the blob's mtime, though one URL points at different blobs over time (a
# restore points it at an older file). The blob location needs these lines
# (as contrib/nginx/s4s.conf should have them).
if "etag off" not in s4s.NGINX_CONF:
    s4s.NGINX_CONF = s4s.NGINX_CONF.replace(
        "internal;", "internal;\n            etag off;\n            if_modified_since off;\n"
        "            add_header ETag $upstream_http_etag;", 1)

with Stack(workers=4, config={"SENDFILE": "x-accel-redirect", "VERSION_RETENTION": "100"}) as s:
    dev1, dev2 = s.login("anna"), s.login("anna")  # two devices, two sessions of one student
    anna_id = s.get("/backend/api/user", headers=s.auth(dev1)).json()["user"]["user_id"]

    def put(token, pid, data, query="", headers=None, fields=None, thumb=None, **kw):
        return project_send(s, "PUT", "%s/%d%s" % (P, pid, query), token, data, thumb, fields, headers, **kw)

    def create(token, title, data):
        r = project_send(s, "POST", "%s?title=%s" % (P, title), token, data)
        if r.status != 200:
            raise RuntimeError("create: %r" % r)
        return r.json()["id"]

    def seen(token, pid):
        return db_value(s, "SELECT version FROM session_project_versions WHERE session_id = ? AND project_id = ?",
                        (sha256(token.encode()), pid))

    def count_projects():
        return db_value(s, "SELECT COUNT(*) FROM projects WHERE owner_id = ?", (anna_id,))

    # ---- the client's expected version: If-Match, then `version` (query, multipart field)
    pid = create(dev1, "Explicit", make_sb3("e1"))
    t.eq(seen(dev1, pid), 1, "create: the session's last-seen version is 1")
    r = put(dev1, pid, make_sb3("e2"), headers={"If-Match": '"1"'})
    t.eq((r.status, r.json().get("version")), (200, 2), "If-Match current: 200, version 2")
    t.eq(seen(dev1, pid), 2, "a successful write advances the session's last-seen version")
    before = (project_row(s, pid), stored_sb3(s, pid))
    body, ctype = multipart({}, {"thumbnail": ("t.png", sample_png(seed=5), "image/png")})
    r = s.req("POST", "%s/%d/thumbnail" % (P, pid), body=body,
              headers={"X-Session-ID": dev1, "Content-Type": ctype, "If-Match": '"1"'})
    t.eq((r.status, r.json()), (409, {"error": CONFLICT, "current_version": 2}),
         "stale If-Match on a thumbnail write: 409 with current_version, no conflict copy")
    r = s.req("POST", "%s/%d/share" % (P, pid), body=b'{"group_ids":[]}',
              headers={"X-Session-ID": dev1, "Content-Type": "application/json", "If-Match": '"1"'})
    t.eq((r.status, r.json()), (409, {"error": CONFLICT, "current_version": 2}), "stale If-Match on share: 409")
    r = s.req("DELETE", "%s/%d?version=1" % (P, pid), headers={"X-Session-ID": dev1})
    t.eq((r.status, r.json()), (409, {"error": CONFLICT, "current_version": 2}), "stale version on delete: 409")
    t.eq((project_row(s, pid), stored_sb3(s, pid)), before, "after three conflicts: row, file, thumbnail unchanged")
    nproj = count_projects()
    r = put(dev1, pid, make_sb3("stale-ifmatch"), headers={"If-Match": '"1"'})
    j = r.json() or {}
    t.eq((r.status, j.get("error"), j.get("current_version")), (409, CONFLICT, 2), "stale If-Match on PUT: 409")
    copy_dev1 = j.get("conflict_copy_id")
    t.ok(isinstance(copy_dev1, int) and copy_dev1 != pid, "a PUT conflict names its conflict copy", j)
    t.eq(stored_sb3(s, copy_dev1), make_sb3("stale-ifmatch"), "the conflict copy holds the rejected bytes")
    r = put(dev1, pid, make_sb3("stale-query"), query="?version=1")
    t.eq((r.status, r.json().get("current_version"), r.json().get("conflict_copy_id")), (409, 2, copy_dev1),
         "stale version query parameter: 409, the same conflict copy")
    r = put(dev1, pid, make_sb3("stale-field"), fields={"version": "1"})
    t.eq((r.status, r.json().get("conflict_copy_id")), (409, copy_dev1), "stale version multipart field: 409")
    t.eq(stored_sb3(s, copy_dev1), make_sb3("stale-field"), "the copy holds the latest rejected bytes")
    t.eq(count_projects(), nproj + 1, "three conflicting saves of one session: one conflict copy")
    r = s.req("POST", "%s/%d/versions/1/restore" % (P, pid), headers={"X-Session-ID": dev1, "If-Match": '"1"'})
    t.eq((r.status, r.json().get("conflict_copy_id")), (409, copy_dev1), "stale restore: 409 into the same copy")
    t.eq(stored_sb3(s, copy_dev1), make_sb3("e1"), "a restore's conflict copy holds that version's content")
    t.eq((project_row(s, pid), stored_sb3(s, pid)), before, "the original untouched by all of it")
    t.eq(seen(dev1, pid), 2, "conflicts do not advance the last-seen version")
    r = put(dev1, pid, make_sb3("e3"), fields={"version": "2"})
    t.eq((r.status, r.json().get("version")), (200, 3), "current version as a multipart field: 200")
    r = put(dev1, pid, make_sb3("e4"), query="?version=1", headers={"If-Match": '"3"'})
    t.eq((r.status, r.json().get("version")), (200, 4), "If-Match wins over the version parameter")
    r = put(dev1, pid, make_sb3("e5"), headers={"If-Match": "*"})
    t.eq((r.status, r.json().get("version")), (200, 5), "If-Match: * writes over whatever is current")
    t.eq(stored_sb3(s, pid), make_sb3("e5"), "bytes of the last accepted write")
    dev4 = s.login("anna")  # a session that never read the project: nothing known but the current version
    r = put(dev4, pid, make_sb3("e6"))
    t.eq((r.status, r.json().get("version"), seen(dev4, pid)), (200, 6, 6),
         "no version known: the one read inside the transaction, then remembered")

    # ---- two devices of one student: both load v1, the first save wins, the second gets a copy
    qid = create(dev1, "Zwei+Ger%C3%A4te", make_sb3("q1"))
    for tok in (dev1, dev2):
        s.get("%s/%d/metadata" % (P, qid), headers=s.auth(tok))
        r = s.get("%s/%d/download" % (P, qid), headers=s.auth(tok))
    t.eq((r.status, r.body, r.header("Content-Type"), r.header("ETag"), r.header("Cache-Control")),
         (200, make_sb3("q1"), "application/octet-stream", '"1"', "private, no-cache"),
         "download through X-Accel-Redirect: bytes, type, ETag, Cache-Control")
    t.ok(r.header("Content-Disposition") == 'attachment; filename="Zwei_Ger_te.sb3"; '
         "filename*=UTF-8''Zwei_Ger%C3%A4te.sb3", "X-Accel-Redirect keeps Content-Disposition", r.headers)
    t.eq((seen(dev1, qid), seen(dev2, qid)), (1, 1), "both sessions have seen version 1")
    res = [put(dev1, qid, make_sb3("d1-%d" % i)) for i in range(10)]
    t.eq([(r.status, r.json().get("version")) for r in res], [(200, v) for v in range(2, 12)],
         "one session saving ten times in a row (no version sent): never a conflict")
    nproj = count_projects()
    thumb_b = sample_png(2, 2, seed=7)
    r = put(dev2, qid, make_sb3("d2-a"), thumb=thumb_b)
    j = r.json() or {}
    t.eq((r.status, j.get("error"), j.get("current_version")), (409, CONFLICT, 11),
         "the second device's stale autosave: 409 (its last-seen version was 1)")
    cc = j.get("conflict_copy_id")
    t.eq(count_projects(), nproj + 1, "one conflict copy created")
    row = project_row(s, cc) if cc else None
    t.eq((row[0], row[1], row[4]) if row else None, (1, "Zwei Geräte (conflict copy)", 0),
         "the copy: version 1, '<title> (conflict copy)', unpublished")
    t.eq(db_value(s, "SELECT owner_id FROM projects WHERE id = ?", (cc,)), anna_id, "the copy is the student's")
    t.eq(stored_sb3(s, cc), make_sb3("d2-a"), "the copy holds device 2's bytes")
    t.eq(s.get("%s/%d/thumbnail" % (P, cc), headers=s.auth(dev2)).body, thumb_b, "and device 2's thumbnail")
    t.eq((project_row(s, qid)[0], stored_sb3(s, qid)), (11, make_sb3("d1-9")), "the original keeps device 1's work")
    r = put(dev2, qid, make_sb3("d2-b"))
    t.eq((r.status, r.json().get("conflict_copy_id")), (409, cc), "the next stale autosave: 409, the same copy")
    t.eq((project_row(s, cc)[0], stored_sb3(s, cc)), (2, make_sb3("d2-b")),
         "the copy got a normal versioned write with the new bytes")
    t.eq(s.get("%s/%d/thumbnail" % (P, cc), headers=s.auth(dev2)).body, thumb_b, "the copy keeps its thumbnail")
    t.eq([v["version"] for v in s.get("%s/%d/versions" % (P, cc), headers=s.auth(dev2)).json()["versions"]],
         [2, 1], "the copy's history has both saves")
    t.eq(count_projects(), nproj + 1, "no new project for later conflicts")
    t.eq(seen(dev2, qid), 1, "device 2's last-seen version stays 1 after conflicts")
    t.eq(db_rows(s, "SELECT copy_id FROM conflict_copies WHERE session_id = ? AND project_id = ?",
                 (sha256(dev2.encode()), qid)), [(cc,)], "conflict_copies: one row for (session, project)")
    r = s.get("%s/%d/metadata" % (P, qid), headers=s.auth(dev2))
    t.eq((r.json().get("version"), seen(dev2, qid)), (11, 11), "device 2 reloads: last-seen version 11")
    r = put(dev2, qid, make_sb3("d2-c"))
    t.eq((r.status, r.json().get("version")), (200, 12), "after reloading, device 2 saves: 200")
    r = put(dev1, qid, make_sb3("d1-late"))
    t.eq((r.status, r.json().get("current_version")), (409, 12), "now device 1 is the stale one")
    t.eq(stored_sb3(s, qid), make_sb3("d2-c"), "stored bytes are device 2's")
    t.eq(s.get("%s/%d/download" % (P, cc), headers=s.auth(dev1)).status, 200, "the copy opens like any project")

    # ---- parallel conflicting saves from one session: still one copy
    dev3 = s.login("anna")
    rid = create(dev1, "Parallel", make_sb3("p1"))
    s.get("%s/%d/download" % (P, rid), headers=s.auth(dev3))
    put(dev1, rid, make_sb3("p2"))
    nproj = count_projects()
    datas = [make_sb3("p3-%d" % i) for i in range(8)]
    res = parallel(8, lambda i: put(dev3, rid, datas[i], timeout=60))
    t.eq(sorted(getattr(r, "status", r) for r in res), [409] * 8, "8 parallel stale saves of one session: all 409")
    ids = set(r.json().get("conflict_copy_id") for r in res if hasattr(r, "json"))
    t.eq(len(ids), 1, "they all name the same conflict copy")
    t.eq(count_projects(), nproj + 1, "exactly one new project")
    cp = ids.pop() if ids else None
    t.ok(stored_sb3(s, cp) in datas and project_row(s, cp)[0] == 8, "the copy: one of the 8, version 8 (1 + 7)")
    t.eq((project_row(s, rid)[0], stored_sb3(s, rid)), (2, make_sb3("p2")), "the original untouched")

    # ---- 32 simultaneous PUTs with the same expected version: exactly one wins
    wid = create(dev1, "Race", make_sb3("w1"))
    c0 = conflicts_total(s)
    datas = [make_sb3("race-%d" % i) for i in range(32)]
    res = parallel(32, lambda i: put(dev1 if i % 2 else dev2, wid, datas[i], headers={"If-Match": '"1"'},
                                     timeout=60))
    statuses = [getattr(r, "status", r) for r in res]
    t.eq(sorted(statuses), [200] + [409] * 31, "32 simultaneous PUTs expecting version 1: one 200, 31 × 409")
    win = [i for i, st in enumerate(statuses) if st == 200]
    t.ok(win and stored_sb3(s, wid) == datas[win[0]], "the stored bytes are the winner's")
    t.eq(project_row(s, wid)[0], 2, "the project is at version 2")
    t.eq(set(r.json().get("current_version") for r in res if getattr(r, "status", 0) == 409), {2},
         "every loser was told version 2")
    t.eq(conflicts_total(s) - c0, 31, "metrics counted 31 version conflicts")
    t.eq(db_value(s, "SELECT COUNT(*) FROM conflict_copies WHERE project_id = ?", (wid,)), 2,
         "one conflict copy per losing session")
    t.eq(db_value(s, "SELECT COUNT(*) FROM project_versions WHERE project_id = ?", (wid,)), 2,
         "the project's history: versions 1 and 2 only")

    # ---- 16 simultaneous shares: the groups always match one request, filtered
    s.idp_control(users={"dora": {"uuid": "u-dora-0042", "preferred_username": "dora",
                                  "groups": {"1": {"act": "klasse-7a", "name": "Klasse 7a"},
                                             "2": {"act": "klasse-7b", "name": "Klasse 7b"},
                                             "3": {"act": "ag-robotik", "name": "AG Robotik"}}}})
    dora = s.login("dora")
    admin = s.login("admin")
    mine = sorted(g["id"] for g in s.get("/backend/api/groups", headers=s.auth(dora)).json()["groups"])
    foreign = [g["id"] for g in s.get("/backend/api/groups", headers=s.auth(admin)).json()["groups"]] + [424242]
    sid = create(dora, "Geteilt", make_sb3("s1"))
    asks = [[mine[j] for j in range(3) if (i >> j) & 1] + foreign[: i % 3] for i in range(16)]
    res = parallel(16, lambda i: s.req("POST", "%s/%d/share" % (P, sid),
                                       body=json.dumps({"group_ids": asks[i]}).encode(),
                                       headers={"X-Session-ID": dora, "Content-Type": "application/json"},
                                       timeout=60))
    t.eq([getattr(r, "status", r) for r in res], [200] * 16,
         "16 simultaneous shares from one session: each sees the last one's version, all 200")
    got = [(r.json()["version"], sorted(g["id"] for g in r.json()["shared_with_groups"])) for r in res]
    t.eq(sorted(v for v, _ in got), list(range(2, 18)), "versions 2..17, each exactly once")
    t.eq([g for _, g in got], [sorted(set(a) & set(mine)) for a in asks], "each answer: its request ∩ dora's groups")
    last = max(got)[1]
    final = sorted(x[0] for x in db_rows(s, "SELECT group_id FROM project_groups WHERE project_id = ?", (sid,)))
    t.eq(final, last, "the stored groups are those of the last write")
    t.eq((project_row(s, sid)[0], project_row(s, sid)[4]), (17, 1 if last else 0), "version 17, published iff groups")

    # ---- a worker SIGKILLed in the middle of a large PUT: nothing changes
    kid = create(dev1, "Kill", make_sb3("k1"))
    before = (project_row(s, kid), stored_sb3(s, kid))
    blobs = files_in(os.path.join(s.data, "blobs"))
    restarts = s.status()["restarts"]
    big = make_sb3(files={"project.json": b'{"targets": []}', "noise.wav": os.urandom(4 * 1024 * 1024)})
    body, ctype = multipart({}, {"project_file": ("big.sb3", big, "application/octet-stream")})
    conn = fcgi_begin(s.sock, "PUT", "%s/%d" % (P, kid), {"CONTENT_TYPE": ctype, "HTTP_X_SESSION_ID": dev1},
                      len(body))
    fcgi_stdin(conn, body[: len(body) // 2])
    victim, deadline = None, time.time() + 10
    while victim is None and time.time() < deadline:
        for w in s.status()["workers"]:
            if w["state"] == "busy" and w.get("current") == "PUT /api/projects/%d" % kid:
                victim = w["pid"]
        time.sleep(0.01)
    t.ok(victim is not None, "a worker is busy reading the large PUT's body")
    if victim:
        os.kill(victim, signal.SIGKILL)
    conn.close()
    deadline = time.time() + 10
    while time.time() < deadline and (s.status()["restarts"] == restarts or len(s.worker_pids()) < 4):
        time.sleep(0.02)
    t.ok(victim not in s.worker_pids() and len(s.worker_pids()) == 4, "the master replaced the killed worker")
    t.eq((project_row(s, kid), stored_sb3(s, kid)), before, "killed mid-upload: row and bytes unchanged")
    t.eq(files_in(os.path.join(s.data, "blobs")), blobs, "killed mid-upload: no blob stored")
    r = put(dev1, kid, make_sb3("k2"))
    t.eq((r.status, r.json().get("version")), (200, 2), "the next request succeeds")
    t.eq(stored_sb3(s, kid), make_sb3("k2"), "with its bytes")

t.done()
