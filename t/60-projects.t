#!/usr/bin/env python3
# The Projects section of API.md through real nginx: byte-exact round trips
# (create, update, download, copy, version download, restore), titles from
# the query string, listings, sharing, thumbnails (stored, default, public),
# ETags, version history and VERSION_RETENTION, soft delete, the
# authorization matrix of every route, and bad input that must leave the
# stored project exactly as it was.
import json
import os
import re
import struct
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (SAMPLE_JPEG, Stack, Tap, db_rows, db_value, files_in, make_sb3,  # noqa: E402
                 multipart, project_row, project_send, reload_stack, sample_png, stored_sb3)

t = Tap()
P = "/backend/api/projects"
USERS = ("anna", "ben", "clara", "lehmann", "admin")
SUMMARY = {"id", "title", "description", "created_at", "updated_at", "version"}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


def err(r):
    return (r.status, r.json())


def png_ok(data):
    """A structurally valid PNG: signature, IHDR first, every chunk's CRC right, IEND last."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos, kinds = 8, []
    while pos + 12 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            return False
        kinds.append(kind)
        pos += 12 + n
    return pos == len(data) and kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds


with Stack(workers=2, config={"MAX_CONTENT_LENGTH": "1M", "VERSION_RETENTION": "3"}) as s:
    tok = {u: s.login(u) for u in USERS}
    uid = {u: s.get("/backend/api/user", headers=s.auth(tok[u])).json()["user"]["user_id"] for u in USERS}
    gid = {g["external_id"]: g["id"] for u in USERS
           for g in s.get("/backend/api/groups", headers=s.auth(tok[u])).json()["groups"]}

    def call(method, path, who=None, body=None, headers=None):
        h = dict(s.auth(tok[who])) if who else {}
        h.update(headers or {})
        return s.req(method, path, body=body, headers=h)

    def share(who, pid, ids):
        return call("POST", "%s/%d/share" % (P, pid), who, json.dumps({"group_ids": ids}).encode(),
                    {"Content-Type": "application/json"})

    def state(pid):
        return (project_row(s, pid), stored_sb3(s, pid))

    # ---- create: title from the query, unknown parameters ignored, bytes stored as sent
    v1, thumb = make_sb3("v1"), sample_png(4, 3, seed=1)
    r = project_send(s, "POST", P + "?title=%C3%9Cbung+1+%26+2&original_id=7&is_copy=1&is_remix=0",
                     tok["anna"], v1, thumb)
    j = r.json() or {}
    t.eq(r.status, 200, "create: 200")
    t.eq(set(j), SUMMARY | {"success"}, "create: summary + success")
    pid = j.get("id")
    t.eq(j.get("title"), "Übung 1 & 2", "title: '+' is a space, %26 an ampersand, UTF-8 decoded")
    t.eq(j.get("version"), 1, "a new project is version 1")
    t.ok(re.match(r"^Created on \d{4}-\d\d-\d\d$", j.get("description", "")), "description 'Created on <date>'", j)
    t.ok(ISO.match(j.get("created_at", "")) and j["created_at"] == j["updated_at"], "ISO 8601 UTC timestamps", j)
    t.eq(stored_sb3(s, pid), v1, "create: the blob store holds the .sb3 byte for byte")
    t.eq(project_row(s, pid)[4], 0, "create: unpublished")
    r = call("GET", "%s/%d/download" % (P, pid), "anna")
    t.eq((r.status, r.body), (200, v1), "download: the bytes that were uploaded")
    t.eq(r.header("Content-Type"), "application/octet-stream", "download: application/octet-stream")
    t.eq(r.header("ETag"), '"1"', "download: ETag is the version")
    t.eq(r.header("Cache-Control"), "private, no-cache", "download: revalidated every time")
    t.eq(r.header("Content-Disposition"),
         "attachment; filename=\"_bung_1_&_2.sb3\"; filename*=UTF-8''%C3%9Cbung_1_%26_2.sb3",
         "download: filename from the title, spaces as _, non-ASCII as RFC 6266 filename*")
    r = call("GET", "%s/%d/thumbnail" % (P, pid), "anna")
    t.eq((r.status, r.header("Content-Type"), r.body), (200, "image/png", thumb), "thumbnail: the uploaded PNG")
    t.eq(r.header("Cache-Control"), "no-cache", "thumbnail: revalidated (its URL outlives a new thumbnail)")

    r = project_send(s, "POST", P + "?title=a%2Bb+%22c%22", tok["anna"], make_sb3("t2"))
    t.eq((r.json() or {}).get("title"), 'a+b "c"', "title: %2B is a plus, quotes kept")
    r = call("GET", "%s/%d/download" % (P, r.json()["id"]), "anna")
    t.eq(r.header("Content-Disposition"), "attachment; filename=\"a+b__c_.sb3\"; filename*=UTF-8''a%2Bb_%22c%22.sb3",
         "download: a quote never reaches the header unescaped")
    r = project_send(s, "POST", P, tok["anna"], make_sb3("t3"))
    t.eq((r.json() or {}).get("title"), "Untitled Project", "no title: Untitled Project")
    plain = r.json()["id"]
    r = project_send(s, "POST", P + "?title=" + "x" * 150, tok["anna"], make_sb3("t4"))
    t.eq(len((r.json() or {}).get("title", "")), 100, "a title is cut to 100 characters")
    r = call("GET", "%s/%d/download" % (P, plain), "anna")
    t.eq(r.header("Content-Disposition"), 'attachment; filename="Untitled_Project.sb3"',
         "download: plain ASCII filename")
    r = call("GET", "%s/%d/thumbnail" % (P, plain), "anna")
    t.ok(r.status == 200 and r.header("Content-Type") == "image/png" and png_ok(r.body) and len(r.body) < 200,
         "no thumbnail: the built-in default, a small valid PNG", r)

    # ---- update: content, title, thumbnail; versions grow by one
    v2 = make_sb3("v2")
    r = project_send(s, "PUT", "%s/%d?title=Neu+%%C3%%A4&original_id=3&is_copy=true" % (P, pid), tok["anna"], v2)
    j = r.json() or {}
    t.eq((r.status, j.get("version"), j.get("title"), j.get("success")), (200, 2, "Neu ä", True),
         "PUT: 200, version 2, new title")
    t.eq(set(j), SUMMARY | {"success"}, "PUT: summary + success")
    t.eq(call("GET", "%s/%d/download" % (P, pid), "anna").body, v2, "PUT: download gives the new bytes")
    t.eq(call("GET", "%s/%d/thumbnail" % (P, pid), "anna").body, thumb, "PUT without thumbnail keeps the thumbnail")
    r = call("PUT", "%s/%d?title=%%C3%%9Cbung+1+%%26+2" % (P, pid), "anna")
    t.eq(((r.json() or {}).get("version"), r.json().get("title")), (3, "Übung 1 & 2"),
         "PUT with only a title: version 3")
    t.eq(stored_sb3(s, pid), v2, "title-only PUT keeps the content")
    body, ctype = multipart({}, {"thumbnail": ("t.jpg", SAMPLE_JPEG, "image/jpeg")})
    r = call("POST", "%s/%d/thumbnail" % (P, pid), "anna", body, {"Content-Type": ctype})
    t.eq((r.status, r.json()), (200, {"success": True, "thumbnail_url": "/backend/api/projects/%d/thumbnail" % pid}),
         "POST thumbnail: 200 with thumbnail_url")
    r = call("GET", "%s/%d/thumbnail" % (P, pid))
    t.eq((r.header("Content-Type"), r.body), ("image/jpeg", SAMPLE_JPEG), "thumbnail served with its own type")
    t.eq(project_row(s, pid)[0], 4, "a thumbnail write is a version too")

    # ---- version history, version download, restore, retention
    r = call("GET", "%s/%d/versions" % (P, pid), "anna")
    vs = (r.json() or {}).get("versions", [])
    t.eq([v["version"] for v in vs], [2, 1], "versions: one entry per content write, newest first")
    t.eq(set(vs[0]) if vs else None, {"version", "size", "sha256", "created_at", "created_by"}, "version entry fields")
    t.ok(vs and vs[0]["size"] == len(v2) and vs[1]["size"] == len(v1) and vs[0]["created_by"] == uid["anna"]
         and ISO.match(vs[0]["created_at"]), "version entries carry size, author and time", vs)
    r = call("GET", "%s/%d/versions/1/download" % (P, pid), "anna")
    t.eq((r.status, r.body), (200, v1), "version 1 download: the first upload's bytes")
    t.eq(r.header("Content-Disposition"),
         "attachment; filename=\"_bung_1_&_2_v1.sb3\"; filename*=UTF-8''%C3%9Cbung_1_%26_2_v1.sb3", "version filename")
    t.eq(err(call("GET", "%s/%d/versions/9/download" % (P, pid), "anna")), (404, {"error": "Version not found"}),
         "unknown version: 404")
    t.eq(err(call("GET", "%s/%d/versions/x/download" % (P, pid), "anna")), (404, {"error": "Version not found"}),
         "non-numeric version: 404")
    r = call("POST", "%s/%d/versions/1/restore" % (P, pid), "anna")
    t.eq((r.status, set(r.json() or {}), r.json().get("version")), (200, SUMMARY, 5), "restore: 200 summary, version 5")
    t.eq(call("GET", "%s/%d/download" % (P, pid), "anna").body, v1, "restore: the old bytes are current again")
    vs = call("GET", "%s/%d/versions" % (P, pid), "anna").json()["versions"]
    t.eq([(v["version"], v["size"]) for v in vs], [(5, len(v1)), (2, len(v2)), (1, len(v1))],
         "restore adds a version entry")
    t.eq(err(call("POST", "%s/%d/versions/77/restore" % (P, pid), "anna")), (404, {"error": "Version not found"}),
         "restore of an unknown version: 404")
    t.eq(project_row(s, pid)[0], 5, "a failed restore changes nothing")
    blobs_before = len(files_in(os.path.join(s.data, "blobs")))
    for i in range(3):
        project_send(s, "PUT", "%s/%d" % (P, pid), tok["anna"], make_sb3("r%d" % i))
    vs = call("GET", "%s/%d/versions" % (P, pid), "anna").json()["versions"]
    t.eq([v["version"] for v in vs], [8, 7, 6], "VERSION_RETENTION=3 keeps the newest three")
    t.eq(db_value(s, "SELECT COUNT(*) FROM project_versions WHERE project_id = ?", (pid,)), 3,
         "older project_versions rows are deleted")
    t.eq(call("GET", "%s/%d/versions/5/download" % (P, pid), "anna").status, 404, "a dropped version is gone")
    t.eq(len(files_in(os.path.join(s.data, "blobs"))), blobs_before + 3, "one blob per new content")

    # ---- copy: shares blobs, owned by the caller, unpublished
    cur = stored_sb3(s, pid)
    blobs_before = files_in(os.path.join(s.data, "blobs"))
    r = call("POST", "%s/%d/copy" % (P, pid), "anna")
    j = r.json() or {}
    t.eq(r.status, 201, "copy: 201")
    t.eq(set(j), SUMMARY | {"thumbnail_url", "success"}, "copy: summary + thumbnail_url + success")
    cid = j.get("id")
    t.eq((j.get("title"), j.get("version"), j.get("thumbnail_url")),
         ("Copy of Übung 1 & 2", 1, "/backend/api/projects/%d/thumbnail" % cid),
         "copy: title, version 1, thumbnail_url")
    t.eq(call("GET", "%s/%d/download" % (P, cid), "anna").body, cur, "copy: the same bytes")
    t.eq(call("GET", "%s/%d/thumbnail" % (P, cid), "anna").body, SAMPLE_JPEG, "copy: the same thumbnail")
    t.eq(files_in(os.path.join(s.data, "blobs")), blobs_before, "copy: no byte copied (blobs shared)")
    t.eq(project_row(s, cid)[2:5], project_row(s, pid)[2:4] + (0,), "copy points at the same blobs, unpublished")
    t.eq([v["version"] for v in call("GET", "%s/%d/versions" % (P, cid), "anna").json()["versions"]], [1],
         "copy: its first version in the history")

    # ---- listings
    r = call("GET", P, "anna")
    j = r.json() or {}
    items = j.get("projects", [])
    t.eq((r.status, j.get("count"), j.get("success")), (200, len(items), True), "list: count and success")
    t.eq(set(items[0]) if items else None, SUMMARY | {"thumbnail_url", "is_published", "shared_with_groups"},
         "list item fields")
    ups = [i["updated_at"] for i in items]
    t.ok(ups == sorted(ups, reverse=True) and items[0]["id"] == cid, "list: newest updated_at first", ups)
    t.eq(sorted(i["id"] for i in items), sorted(x[0] for x in db_rows(
        s, "SELECT id FROM projects WHERE owner_id = ?", (uid["anna"],))), "list: exactly the caller's projects")
    r = call("GET", P + "/recent", "anna")
    t.eq((r.status, r.json().get("project", {}).get("id"), r.json()["project"].get("success")), (200, cid, True),
         "recent: the newest, summary + success inside project")
    t.eq(err(call("GET", P + "/recent", "ben")), (404, {"message": "No projects found for this user"}),
         "recent without projects: 404 with the Flask shape")
    t.eq(call("GET", P, "ben").json(), {"projects": [], "count": 0, "success": True}, "empty list")

    # ---- sharing: only the owner's groups are kept
    r = share("anna", pid, [gid["klasse-7b"], gid["klasse-7a"], 999999, gid["klasse-7a"]])
    j = r.json() or {}
    t.eq((r.status, set(j)), (200, {"id", "title", "shared_with_groups", "version"}), "share: 200 and its fields")
    t.eq(j.get("shared_with_groups"), [{"id": gid["klasse-7a"], "name": "Klasse 7a", "external_id": "klasse-7a"}],
         "share: groups the owner is not in are dropped")
    t.eq((j.get("version"), project_row(s, pid)[4]), (9, 1), "share: a version, and published")
    t.eq(call("GET", "%s/%d/sharing" % (P, pid), "anna").json(),
         {"id": pid, "is_published": True, "shared_with_groups": j.get("shared_with_groups")}, "GET sharing")
    for who, want in (("ben", [pid]), ("lehmann", [pid]), ("clara", []), ("anna", [])):
        r = call("GET", P + "/shared", who)
        t.eq([p["id"] for p in r.json()["projects"]], want, "shared list of %s" % who)
    item = call("GET", P + "/shared", "ben").json()["projects"][0]
    t.eq(set(item), SUMMARY | {"thumbnail_url", "owner", "is_published", "shared_with_groups"}, "shared item fields")
    t.eq((item["owner"], item["is_published"], [g["external_id"] for g in item["shared_with_groups"]]),
         ({"id": uid["anna"], "username": "anna"}, True, ["klasse-7a"]), "shared item: owner, published, groups")
    m = call("GET", "%s/%d/metadata" % (P, pid), "ben")
    t.eq(set(m.json()), SUMMARY | {"is_shared", "success", "is_published", "shared_with_groups"}, "metadata fields")
    t.eq((m.json()["is_shared"], m.header("ETag")), (True, '"9"'), "metadata via a group: is_shared, ETag")
    t.eq(call("GET", "%s/%d/metadata" % (P, pid), "anna").json()["is_shared"], False, "owner: is_shared false")
    t.eq(call("GET", "%s/%d/metadata" % (P, pid), "admin").json()["is_shared"], False, "admin: is_shared false")
    t.eq(call("GET", "%s/%d/metadata" % (P, pid), "lehmann").json()["is_shared"], True,
         "a teacher in the group: is_shared true")
    r = call("GET", "%s/%d/metadata" % (P, pid), "anna", headers={"If-None-Match": '"9"'})
    t.eq((r.status, r.body, r.header("ETag")), (304, b"", '"9"'), "metadata If-None-Match current: 304")
    t.eq(call("GET", "%s/%d/download" % (P, pid), "anna", headers={"If-None-Match": '"9"'}).status, 304,
         "download If-None-Match current: 304")
    t.eq(call("GET", "%s/%d/download" % (P, pid), "anna", headers={"If-None-Match": '"8"'}).status, 200,
         "download If-None-Match stale: 200")
    r = share("anna", pid, [])
    t.eq((r.json().get("shared_with_groups"), project_row(s, pid)[4]), ([], 0), "share with none: unpublished")
    t.eq(call("GET", P + "/shared", "ben").json()["projects"], [], "unpublished: gone from the shared list")

    # ---- the authorization matrix: every route, every kind of caller, published or not
    mid = project_send(s, "POST", P + "?title=Matrix", tok["anna"], make_sb3("m"), sample_png(seed=3)).json()["id"]
    callers = ("anna", "ben", "clara", "lehmann", "admin", None)
    for published in (True, False):
        share("anna", mid, [gid["klasse-7a"]] if published else [])
        group = 200 if published else 403  # ben's only path is the group share
        view = {"anna": 200, "ben": group, "clara": 403, "lehmann": 200, "admin": 200, None: 401}
        hist = {"anna": 200, "ben": 403, "clara": 403, "lehmann": 200, "admin": 200, None: 401}
        copy = {"anna": 201, "ben": group + 1 if published else 403, "clara": 403,
                "lehmann": 201 if published else 403, "admin": 403, None: 401}
        reads = (("GET", "metadata", view), ("GET", "download", view), ("GET", "sharing", view),
                 ("GET", "thumbnail", {**view, None: 200}), ("GET", "versions", hist),
                 ("GET", "versions/1/download", hist), ("POST", "copy", copy))
        before = project_row(s, mid)
        got, want = {}, {}
        for method, route, exp in reads:
            for who in callers:
                key = "%s %s as %s" % (method, route, who)
                got[key] = call(method, "%s/%d/%s" % (P, mid, route), who).status
                want[key] = exp[who]
        t.eq(got, want, "read routes × callers (%s)" % ("published" if published else "unpublished"))
        t.eq(project_row(s, mid)[:5], before[:5], "reads and copies leave the project unchanged")
    r = call("GET", "%s/%d/download" % (P, mid), "clara")
    t.eq(err(r), (403, {"error": "You do not have permission to download this project"}), "403 message (download)")
    t.eq(err(call("GET", "%s/%d/metadata" % (P, mid), "clara")),
         (403, {"error": "You do not have permission to view this project"}), "403 message (metadata)")
    t.eq(err(call("POST", "%s/%d/copy" % (P, mid), "admin")),
         (403, {"error": "You do not have permission to copy this project"}), "403 message (copy)")
    t.eq(err(call("GET", "%s/%d/versions" % (P, mid))), (401, {"error": "Authentication required"}), "401 message")

    share("anna", mid, [gid["klasse-7a"]])
    before = state(mid)
    writes = (("PUT", "", "You do not have permission to update this project", "sb3"),
              ("POST", "/thumbnail", "You do not have permission to update this project", "thumb"),
              ("POST", "/share", "You can only share projects that you own", "json"),
              ("DELETE", "", "You do not have permission to delete this project", None),
              ("POST", "/versions/1/restore", "You do not have permission to restore this project", None))
    got, want = {}, {}
    for method, route, msg, kind in writes:
        for who in ("ben", "clara", "lehmann", "admin", None):
            path = "%s/%d%s" % (P, mid, route)
            if kind == "sb3":
                r = project_send(s, method, path, tok[who] if who else None, make_sb3("evil"))
            elif kind == "thumb":
                r = project_send(s, method, path, tok[who] if who else None, thumb=sample_png(seed=9))
            elif kind == "json":
                r = call(method, path, who, b'{"group_ids":[]}', {"Content-Type": "application/json"})
            else:
                r = call(method, path, who)
            got["%s %s as %s" % (method, route, who)] = err(r)
            want["%s %s as %s" % (method, route, who)] = (
                (403, {"error": msg}) if who else (401, {"error": "Authentication required"}))
    t.eq(got, want, "write routes: everyone but the owner refused (403 / 401)")
    t.eq(state(mid), before, "refused writes changed nothing (row and bytes)")
    for path in (P, P + "/recent", P + "/shared"):
        t.eq(err(s.get(path)), (401, {"error": "Authentication required"}), "GET %s without token: 401" % path)
    t.eq(err(project_send(s, "POST", P, None, make_sb3("x"))), (401, {"error": "Authentication required"}),
         "create without token: 401")
    t.eq(err(s.get("%s/%d/thumbnail" % (P, mid), headers={"X-Session-ID": "bogus"})),
         (401, {"error": "Invalid session"}), "thumbnail with an unknown token: 401")

    # ---- bad input: a clear 4xx and the stored project exactly as it was
    before = state(pid)
    nproj = db_value(s, "SELECT COUNT(*) FROM projects")
    blobs = files_in(os.path.join(s.data, "blobs"))
    bad_sb3 = (
        (b"hello, this is not a zip", "Project file is not a zip archive (.sb3)"),
        (make_sb3(files={"other.json": b"{}"}), "Project file has no project.json"),
        (make_sb3(files={"project.json": b"{not json"}), "project.json is not valid JSON"),
        (make_sb3(files={"project.json": b"[1, 2]"}), "project.json is not a JSON object"),
        (b"", "Project file is not a zip archive (.sb3)"),
    )
    for data, msg in bad_sb3:
        t.eq(err(project_send(s, "PUT", "%s/%d" % (P, pid), tok["anna"], data)), (422, {"error": msg}),
             "PUT: %s → 422" % msg)
        t.eq(err(project_send(s, "POST", P, tok["anna"], data)), (422, {"error": msg}), "create: %s → 422" % msg)
    r = project_send(s, "PUT", "%s/%d" % (P, pid), tok["anna"], make_sb3("ok"), b"GIF89a not a png")
    t.eq(err(r), (415, {"error": "Thumbnail must be a PNG or JPEG image"}), "PUT with a non-image thumbnail: 415")
    r = project_send(s, "POST", P, tok["anna"], make_sb3("ok2"), b"<svg/>")
    t.eq(r.status, 415, "create with a non-image thumbnail: 415")
    body, ctype = multipart({}, {"thumbnail": ("t.png", b"plain text", "image/png")})
    t.eq(err(call("POST", "%s/%d/thumbnail" % (P, pid), "anna", body, {"Content-Type": ctype})),
         (415, {"error": "Thumbnail must be a PNG or JPEG image"}), "POST thumbnail not an image: 415")
    body, ctype = multipart({"x": "1"}, {})
    t.eq(err(call("POST", "%s/%d/thumbnail" % (P, pid), "anna", body, {"Content-Type": ctype})),
         (400, {"error": "No thumbnail provided"}), "POST thumbnail without one: 400")
    big = make_sb3(files={"project.json": b"{}", "noise.bin": os.urandom(1200 * 1024)})
    r = project_send(s, "PUT", "%s/%d" % (P, pid), tok["anna"], big)
    t.ok(r.status == 413 and (r.json() or {}).get("error", "").startswith("Request body too large"),
         "PUT over MAX_CONTENT_LENGTH: 413", r)
    r = call("PUT", "%s/%d" % (P, pid), "anna",
             b'--b\r\nContent-Disposition: form-data; name="project_file"; filename="p.sb3"\r\n\r\nPK\x03\x04abc',
             {"Content-Type": "multipart/form-data; boundary=b"})
    t.ok(r.status == 400 and "error" in (r.json() or {}), "truncated multipart: 400", r)
    body, ctype = multipart({}, {"project_file": ("", make_sb3("e"), "application/octet-stream")})
    t.eq(err(call("PUT", "%s/%d" % (P, pid), "anna", body, {"Content-Type": ctype})),
         (400, {"error": "No file selected"}), "empty filename: No file selected")
    t.eq(err(call("POST", P, "anna", body, {"Content-Type": ctype})), (400, {"error": "No file selected"}),
         "create with an empty filename: No file selected")
    body, ctype = multipart({"title": "x"}, {})
    t.eq(err(call("POST", P, "anna", body, {"Content-Type": ctype})), (400, {"error": "No project content provided"}),
         "create without a file: No project content provided")
    t.eq(err(call("POST", P, "anna")), (400, {"error": "No project content provided"}), "create without a body: 400")
    t.eq(err(call("PUT", "%s/%d" % (P, pid), "anna", body, {"Content-Type": ctype})),
         (400, {"error": "No project content provided"}), "PUT with nothing to change: 400")
    t.eq(err(project_send(s, "PUT", "%s/%d" % (P, pid), tok["anna"], make_sb3("ok3"), headers={"If-Match": "abc"})),
         (400, {"error": 'Invalid If-Match header: expected "<version>"'}), "malformed If-Match: 400")
    t.eq(err(project_send(s, "PUT", "%s/%d?version=x1" % (P, pid), tok["anna"], make_sb3("ok4"))),
         (400, {"error": "Invalid version parameter: expected a positive integer"}), "malformed version: 400")
    for body, msg in ((b"{nope", "Invalid JSON"), (b"{}", "Missing group_ids parameter"),
                      (b"[1]", "Missing group_ids parameter"),
                      (b'{"group_ids": "1"}', "group_ids must be a list of integers"),
                      (b'{"group_ids": [1.5]}', "group_ids must be a list of integers"),
                      (b'{"group_ids": ["1"]}', "group_ids must be a list of integers"),
                      (b'{"group_ids": null}', "group_ids must be a list of integers")):
        t.eq(err(call("POST", "%s/%d/share" % (P, pid), "anna", body, {"Content-Type": "application/json"})),
             (400, {"error": msg}), "share %s: 400 %s" % (body.decode(), msg))
    t.eq(state(pid), before, "after all the bad input: row and bytes unchanged")
    t.eq(db_value(s, "SELECT COUNT(*) FROM projects"), nproj, "bad creates made no project")
    t.eq(files_in(os.path.join(s.data, "blobs")), blobs, "bad input stored no blob")
    t.eq(files_in(os.path.join(s.data, "tmp")), [], "no temp file left behind")
    for method, path in (("GET", "/abc/metadata"), ("GET", "/1e3/download"), ("GET", "/-1/metadata"),
                         ("GET", "/99999/metadata"), ("GET", "/99999/thumbnail"), ("PUT", "/abc"),
                         ("DELETE", "/abc"), ("DELETE", "/99999"), ("POST", "/abc/copy"),
                         ("POST", "/99999/share"), ("GET", "/0x10/versions"), ("GET", "/%20%31/sharing"),
                         ("POST", "/99999/versions/1/restore")):
        t.eq(err(call(method, P + path, "anna")), (404, {"error": "Project not found"}), "%s %s: 404" % (method, path))

    # ---- soft delete: hidden everywhere at once, the row kept
    share("anna", mid, [gid["klasse-7a"]])
    v = project_row(s, mid)[0]
    r = call("DELETE", "%s/%d" % (P, mid), "anna")
    t.eq((r.status, r.json()), (200, {"success": True, "message": "Project successfully deleted", "id": mid}),
         "DELETE: 200")
    row = project_row(s, mid)
    t.ok(row and row[5] and row[0] == v + 1, "soft delete: row kept with deleted_at, version + 1", row)
    for who, method, route in (("anna", "GET", "/metadata"), ("anna", "GET", "/download"), ("ben", "GET", "/sharing"),
                               (None, "GET", "/thumbnail"), ("ben", "POST", "/copy"), ("anna", "DELETE", ""),
                               ("anna", "GET", "/versions"), ("admin", "GET", "/metadata")):
        t.eq(err(call(method, "%s/%d%s" % (P, mid, route), who)), (404, {"error": "Project not found"}),
             "deleted: %s %s as %s → 404" % (method, route, who))
    t.ok(mid not in [p["id"] for p in call("GET", P, "anna").json()["projects"]], "deleted: not listed")
    t.ok(mid not in [p["id"] for p in call("GET", P + "/shared", "ben").json()["projects"]], "deleted: not shared")

    # ---- PUBLIC_THUMBNAILS=off: a token is needed
    s.config["PUBLIC_THUMBNAILS"] = "off"
    reload_stack(s)
    t.eq(err(s.get("%s/%d/thumbnail" % (P, pid))), (401, {"error": "Authentication required"}),
         "PUBLIC_THUMBNAILS=off: no token → 401")
    t.eq(call("GET", "%s/%d/thumbnail" % (P, pid), "anna").status, 200, "PUBLIC_THUMBNAILS=off: owner → 200")
    t.eq(call("GET", "%s/%d/thumbnail" % (P, pid), "clara").status, 403, "PUBLIC_THUMBNAILS=off: others → 403")

t.done()
