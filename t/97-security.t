#!/usr/bin/env python3
# The security review's claims (docs/SECURITY.md), tested:
#   - secrets at rest and in logs: a login through a provider whose tokens the
#     test knows, a renewal, uploads and a logout at LOG_LEVEL=debug; then the
#     session token, both generations of provider tokens, OAUTH_CLIENT_SECRET
#     and SECRET_KEY appear in no log line and nowhere in the database files;
#     oauth_sessions.id is the token's SHA-256; provider tokens are sealed;
#   - the oauth_state cookie's flags, set and cleared;
#   - authentication by the route table: every AUTH_REQUIRED route of
#     src/routes.c answers 401 without or with a bogus token, and the routes
#     that are not AUTH_REQUIRED are exactly the reviewed list;
#   - ownership checks in the handlers: another student gets 403/404 and
#     changes nothing; teacher routes refuse students;
#   - ids validated before use: odd ids are 404 JSON, SQL-looking text is
#     stored as text;
#   - response headers: nosniff on every kind of answer, CSP on served SVGs,
#     Content-Disposition on downloads (streamed and via X-Accel-Redirect);
#   - blob names from the database are never followed outside DATA_DIR: rows
#     pointing at "../../canary" or a crafted asset sha256 answer 404 and the
#     canary file outside the store is never served.
# Privilege drop is t/22-user.t; the provider hanging or answering garbage
# is t/50-login.t.
import base64
import hashlib
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (SRCDIR, Stack, Tap, db_dump_text, db_rows, db_value, free_port, make_sb3, md5,  # noqa: E402
                 multipart, project_row, project_send, reload_stack, request, sample_png, sample_svg)

t = Tap()
CLIENT_SECRET = "sec-client-secret-" + os.urandom(6).hex()
SECRET_KEY = "sec-secret-key-" + os.urandom(8).hex()


# ---------------------------------------------------------------- a provider whose tokens we know
class Provider:
    """Token and userinfo endpoints issuing tokens this test records."""

    def __init__(self, ttl):
        self.ttl = ttl
        self.issued = []          # every access and refresh token handed out
        self.secrets_seen = []
        self.users = {}           # access token -> claims
        prov = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def send_json(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                f = dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))
                prov.secrets_seen.append(f.get("client_secret"))
                access = "prov-access-" + os.urandom(12).hex()
                refresh = "prov-refresh-" + os.urandom(12).hex()
                prov.issued += [access, refresh]
                prov.users[access] = {"uuid": "u-sec-1", "preferred_username": "secuser",
                                      "email": "sec@school.example",
                                      "groups": {"1": {"act": "klasse-7a", "name": "Klasse 7a"}}}
                self.send_json(200, {"access_token": access, "refresh_token": refresh,
                                     "expires_in": prov.ttl, "token_type": "Bearer"})

            def do_GET(self):
                tok = (self.headers.get("Authorization") or "")[7:]
                if tok in prov.users:
                    self.send_json(200, prov.users[tok])
                else:
                    self.send_json(401, {"error": "invalid_token"})

        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)


def login_via(s):
    """/login, then straight to /authorize with any code (the provider is ours)."""
    r = s.get("/backend/login")
    cookie = r.header("Set-Cookie")
    state = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.header("Location")).query))["state"]
    back = s.get("/backend/authorize?code=c0de&state=" + urllib.parse.quote(state),
                 headers={"Cookie": cookie.split(";")[0]})
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(back.header("Location") or "").query))
    return r, back, q.get("session_id")


def cookie_attrs(header):
    parts = [p.strip() for p in header.split(";")]
    name, _, value = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.lower()] = v
    return name, value, attrs


def secrets_run():
    prov = Provider(ttl=1)
    cfg = {"OAUTH_TOKEN_URL": prov.url("/token"), "OAUTH_USERINFO_URL": prov.url("/userinfo"),
           "OAUTH_CLIENT_SECRET": CLIENT_SECRET, "SECRET_KEY": SECRET_KEY, "LOG_LEVEL": "debug"}
    with Stack(workers=2, config=cfg) as s:
        r, back, token = login_via(s)
        t.ok(token and len(token) == 43, "logged in through the test's provider", back.header("Location"))
        t.eq(prov.secrets_seen[:1], [CLIENT_SECRET], "the client secret went to the token endpoint only")

        # Cookie flags: set by /login, cleared by /authorize.
        name, value, a = cookie_attrs(r.header("Set-Cookie"))
        t.ok(name == "oauth_state" and value and "httponly" in a and a.get("samesite") == "Lax" and
             a.get("max-age") == "600" and a.get("path") == "/" and "secure" not in a,
             "oauth_state cookie: HttpOnly, SameSite=Lax, Max-Age=600, Path=/ (Secure only for https)",
             r.header("Set-Cookie"))
        name, value, a = cookie_attrs(back.header("Set-Cookie") or "")
        t.ok(name == "oauth_state" and value == "" and a.get("max-age") == "0" and "httponly" in a,
             "/authorize clears it with the same flags", back.header("Set-Cookie"))

        # Tokens at rest.
        rows = db_rows(s, "SELECT id, access_token, refresh_token FROM oauth_sessions")
        t.eq([x[0] for x in rows], [hashlib.sha256(token.encode()).hexdigest()],
             "oauth_sessions.id is the SHA-256 of the token, not the token")
        t.ok(all(x[1] and x[1] not in prov.issued and x[2] and x[2] not in prov.issued for x in rows),
             "provider tokens stored sealed, not as issued", rows)

        # A session's life at debug level: renewal (the provider's token lived 1 s), every
        # way of presenting the token, uploads, then logout.
        time.sleep(1.2)
        r = s.get("/backend/session", headers={"X-Session-ID": token})
        t.ok(r.status == 200 and len(prov.issued) == 4, "expired session renewed at the provider", r)
        t.eq(s.get("/backend/api/user?session_id=" + token).status, 200, "token as ?session_id=")
        t.eq(s.get("/backend/api/user", headers={"Authorization": "Bearer " + token}).status, 200, "token as Bearer")
        r = project_send(s, "POST", "/backend/api/projects?title=Geheim", token, sb3=make_sb3("sec"))
        t.eq(r.status, 200, "project uploaded")
        pid = r.json()["id"]
        t.eq(s.get("/backend/api/projects/%d/download?session_id=%s" % (pid, token)).status, 200, "downloaded")
        body, ctype = multipart({"type": "costume", "format": "png"}, {"asset": ("a.png", sample_png(), "image/png")})
        t.eq(s.req("POST", "/backend/api/assets/", body=body,
                   headers={"Content-Type": ctype, "X-Session-ID": token}).status, 200, "asset uploaded")
        t.eq(s.get("/backend/api/user", headers={"X-Session-ID": token + "x"}).status, 401, "a bad token refused")
        rows = db_rows(s, "SELECT access_token, refresh_token FROM oauth_sessions")
        t.ok(rows and all(v not in prov.issued for x in rows for v in x), "renewed provider tokens sealed too")
        t.eq(s.req("POST", "/backend/logout", headers={"X-Session-ID": token}).status, 200, "logged out")

        secrets = {"the session token": token, "OAUTH_CLIENT_SECRET": CLIENT_SECRET, "SECRET_KEY": SECRET_KEY}
        for i, tok in enumerate(prov.issued):
            secrets["provider token %d" % (i + 1)] = tok
        logs = ""
        for name in ("s4s.log", "master.out"):
            with open(os.path.join(s.dir, name), errors="replace") as f:
                logs += f.read()
        t.ok(len(logs.splitlines()) > 20 and "debug" in logs, "a debug-level log to search (%d lines)" %
             len(logs.splitlines()))
        t.eq([k for k, v in secrets.items() if v in logs], [], "no secret in the server's log")
        if s.pg_uri:
            dump = db_dump_text(s)  # pg_dump: every row of every table
            t.ok("COPY public.oauth_sessions" in dump and "\tGeheim\t" in dump,
                 "a dump of the database to search (it holds the project uploaded above)")
            t.eq([k for k, v in secrets.items() if v in dump], [], "no secret anywhere in the database (pg_dump)")
        else:
            raw = b""
            for suffix in ("", "-wal", "-shm"):
                p = os.path.join(s.data, "main.db" + suffix)
                if os.path.exists(p):
                    with open(p, "rb") as f:
                        raw += f.read()
            t.eq([k for k, v in secrets.items() if v.encode() in raw], [],
                 "no secret anywhere in the database files (main.db, -wal, -shm)")


# ---------------------------------------------------------------- the route table
PUBLIC = {  # the routes that are not AUTH_REQUIRED, reviewed (docs/SECURITY.md)
    ("GET", "/api/status"), ("GET", "/login"), ("GET", "/authorize"), ("GET", "/session"),
    ("GET", "/logout"), ("POST", "/logout"), ("GET", "/api/projects/can-save"),
    ("GET", "/api/projects/:id/thumbnail"), ("GET", "/api/assets/:name"),
    ("GET", "/status"), ("GET", "/metrics"), ("GET", "/_test/sleep"), ("POST", "/_test/upload"),
}


def routes():
    with open(os.path.join(SRCDIR, "src", "routes.c")) as f:
        text = f.read()
    return re.findall(r'\{"(GET|POST|PUT|DELETE)", "([^"]+)", (\w+), (AUTH_\w+)\}', text)


def fill(pattern):
    return (pattern.replace(":id", "1").replace(":v", "1").replace(":name", md5(b"x") + ".png")
            .replace(":", ""))


def auth_table(s):
    table = routes()
    t.ok(len(table) >= 30, "%d routes read from src/routes.c" % len(table))
    required = [(m, p) for m, p, _, a in table if a == "AUTH_REQUIRED"]
    others = {(m, p) for m, p, _, a in table if a != "AUTH_REQUIRED"}
    t.eq(sorted(others - PUBLIC), [], "every route without AUTH_REQUIRED is on the reviewed list")
    bad = []
    for m, p in required:
        for hdr, want in (({}, "Authentication required"), ({"X-Session-ID": "bogus" * 9}, "Invalid session")):
            r = s.req(m, "/backend" + fill(p), body=b"{}" if m in ("POST", "PUT") else None,
                      headers=dict(hdr, **{"Content-Type": "application/json"}))
            if r.status != 401 or (r.json() or {}).get("error") != want:
                bad.append("%s %s %s: %d %r" % (m, p, hdr and "bogus" or "none", r.status, r.body[:80]))
    t.eq(bad, [], "all %d AUTH_REQUIRED routes answer 401 without a token and with a bogus one" % len(required))
    r = s.get("/backend/_test/sleep?ms=1")
    t.eq(r.status, 404, "test routes do not exist without S4S_TEST_ROUTES=1")


def ownership(s):
    anna, ben = s.login("anna"), s.login("ben")
    sb3 = make_sb3("mine")
    pid = project_send(s, "POST", "/backend/api/projects?title=Privat", anna, sb3=sb3).json()["id"]
    gid = db_value(s, "SELECT id FROM groups WHERE external_id = 'klasse-7a'")
    row = project_row(s, pid)
    j = {"Content-Type": "application/json"}
    put_body, put_type = multipart({}, {"project_file": ("p.sb3", make_sb3("evil"), "application/zip")})
    thumb_body, thumb_type = multipart({}, {"thumbnail": ("t.png", sample_png(), "image/png")})
    tries = [
        ("GET metadata", "GET", "/api/projects/%d/metadata" % pid, None, j),
        ("GET download", "GET", "/api/projects/%d/download" % pid, None, j),
        ("GET sharing", "GET", "/api/projects/%d/sharing" % pid, None, j),
        ("GET thumbnail", "GET", "/api/projects/%d/thumbnail" % pid, None, j),
        ("GET versions", "GET", "/api/projects/%d/versions" % pid, None, j),
        ("GET version 1", "GET", "/api/projects/%d/versions/1/download" % pid, None, j),
        ("POST copy", "POST", "/api/projects/%d/copy" % pid, None, j),
        ("PUT", "PUT", "/api/projects/%d" % pid, put_body, {"Content-Type": put_type}),
        ("POST thumbnail", "POST", "/api/projects/%d/thumbnail" % pid, thumb_body, {"Content-Type": thumb_type}),
        ("POST share", "POST", "/api/projects/%d/share" % pid, json.dumps({"group_ids": [gid]}).encode(), j),
        ("POST restore", "POST", "/api/projects/%d/versions/1/restore" % pid, None, j),
        ("DELETE", "DELETE", "/api/projects/%d" % pid, None, j),
    ]
    got = {}
    for name, m, p, body, h in tries:
        r = s.req(m, "/backend" + p, body=body, headers=dict(h, **s.auth(ben)))
        got[name] = r.status
    t.ok(all(v in (403, 404) for v in got.values()),
         "another student's private project: every route refuses (403/404)", got)
    t.eq(project_row(s, pid), row, "and nothing changed")
    t.eq(db_value(s, "SELECT COUNT(*) FROM projects"), 1, "no copy was made")
    r = s.get("/backend/api/projects", headers=s.auth(ben))
    t.eq(r.json()["projects"], [], "ben's list holds only ben's projects")
    r = s.get("/backend/api/teacher/students", headers=s.auth(ben))
    t.eq((r.status, r.json()), (403, {"error": "Admin or Teacher privileges required"}), "teacher view refuses students")
    item = {"type": "costume", "mime": "image/png", "name": "x", "body": base64.b64encode(sample_png()).decode(),
            "thumbnail": ""}
    iid = s.req("POST", "/backend/api/backpack", body=json.dumps(item).encode(),
                headers=dict(s.auth(anna), **{"Content-Type": "application/json"})).json()["id"]
    r = s.req("DELETE", "/backend/api/backpack/" + iid, headers=s.auth(ben))
    t.eq((r.status, r.json()), (404, {"error": "Item not found or you do not have permission to delete it"}),
         "another student's backpack item cannot be deleted")
    t.eq(db_value(s, "SELECT COUNT(*) FROM backpack_items"), 1, "the item is still there")
    return anna, pid


def odd_ids(s, anna, pid):
    bad = []
    for p in ["/api/projects/abc/metadata", "/api/projects/-1/metadata", "/api/projects/0/download",
              "/api/projects/1e3/metadata", "/api/projects/99999999999999999999999/metadata",
              "/api/projects/0x1/metadata", "/api/projects/+1/metadata", "/api/projects/%20/metadata",
              "/api/projects/%d/versions/abc/download" % pid, "/api/projects/%d/versions/-1/download" % pid,
              "/api/teacher/students/%27%20OR%20%271%27=%271/projects", "/api/assets/..%2F..%2Fetc%2Fpasswd",
              "/api/assets/" + "a" * 31 + "g", "/api/assets/" + "A" * 32 + ".svg/x",
              "/api/projects/%d%%2F..%%2F1/metadata" % pid]:
        r = s.get("/backend" + p, headers=s.auth(anna))
        if r.status not in (400, 403, 404) or not isinstance((r.json() or {}).get("error"), str):
            bad.append("%s: %d %r" % (p, r.status, r.body[:80]))
    r = s.req("DELETE", "/backend/api/backpack/" + "x" * 5000, headers=s.auth(anna))
    if r.status != 404:
        bad.append("DELETE backpack long id: %d" % r.status)
    t.eq(bad, [], "odd ids and paths: 400/403/404 with a JSON error, never 500 or a file")
    evil = "Robert'); DROP TABLE projects;--"
    r = project_send(s, "PUT", "/backend/api/projects/%d?title=%s" % (pid, urllib.parse.quote(evil)), anna)
    t.ok(r.status == 200 and r.json()["title"] == evil and project_row(s, pid)[1] == evil,
         "SQL-looking title stored as text", r)


def headers(s, anna, pid):
    svg = sample_svg("csp")
    s.req("POST", "/backend/api/assets/%s.svg" % md5(svg), body=svg,
          headers=dict(s.auth(anna), **{"Content-Type": "image/svg+xml"}))
    answers = {
        "JSON 200": s.get("/backend/api/status"),
        "JSON 404": s.get("/backend/api/nothing"),
        "JSON 401": s.get("/backend/api/user"),
        "302 redirect": s.get("/backend/login"),
        "204 preflight": s.req("OPTIONS", "/backend/api/projects"),
        "project download": s.get("/backend/api/projects/%d/download" % pid, headers=s.auth(anna)),
        "version download": s.get("/backend/api/projects/%d/versions/1/download" % pid, headers=s.auth(anna)),
        "default thumbnail": s.get("/backend/api/projects/%d/thumbnail" % pid),
        "SVG asset": s.get("/backend/api/assets/%s.svg" % md5(svg)),
    }
    missing = [k for k, r in answers.items() if r.header("X-Content-Type-Options") != "nosniff"]
    t.eq(missing, [], "X-Content-Type-Options: nosniff on every kind of answer")
    r = answers["SVG asset"]
    t.ok(r.status == 200 and r.body == svg and "default-src 'none'" in (r.header("Content-Security-Policy") or "")
         and "sandbox" in r.header("Content-Security-Policy"), "served SVG carries a sandboxing CSP",
         r.headers)
    for k in ("project download", "version download"):
        cd = answers[k].header("Content-Disposition") or ""
        t.ok(answers[k].status == 200 and cd.startswith("attachment;"), "%s: Content-Disposition attachment (%s)"
             % (k, cd))


def blob_names(s, anna, pid):
    canary = os.path.join(s.dir, "canary")
    with open(canary, "wb") as f:
        f.write(b"CANARY-OUTSIDE-THE-STORE")
    # DATA_DIR/blobs/<2>/<rest>: ".." + "../canary" would be DATA_DIR/blobs/../../canary = the canary.
    evil = ["..../canary", "../../canary", "/" + canary, "..%s" % canary, "a" * 63 + "/", "A" * 64]
    png = sample_png(5, 5, seed=9)
    s.req("POST", "/backend/api/assets/%s.png" % md5(png), body=png,
          headers=dict(s.auth(anna), **{"Content-Type": "image/png"}))
    saved = (db_rows(s, "SELECT sb3_sha256, thumbnail_sha256 FROM projects WHERE id = ?", (pid,))[0],
             db_rows(s, "SELECT version, sha256 FROM project_versions WHERE project_id = ?", (pid,)),
             db_value(s, "SELECT sha256 FROM assets WHERE asset_id = ?", (md5(png),)))
    leaks = []
    for name in evil:
        db_rows(s, "UPDATE projects SET sb3_sha256 = ?, thumbnail_sha256 = ? WHERE id = ?", (name, name, pid))
        db_rows(s, "UPDATE project_versions SET sha256 = ? WHERE project_id = ?", (name, pid))
        db_rows(s, "UPDATE assets SET sha256 = ? WHERE asset_id = ?", (name, md5(png)))
        for what, path in (("download", "/api/projects/%d/download" % pid),
                           ("thumbnail", "/api/projects/%d/thumbnail" % pid),
                           ("version", "/api/projects/%d/versions/1/download" % pid),
                           ("asset", "/api/assets/" + md5(png))):
            r = s.get("/backend" + path, headers=s.auth(anna))
            if r.status != 404 or b"CANARY" in r.body or r.header("X-Accel-Redirect"):
                leaks.append("%s %r: %d %r" % (what, name, r.status, r.body[:40]))
    db_rows(s, "UPDATE projects SET sb3_sha256 = ?, thumbnail_sha256 = ? WHERE id = ?", saved[0] + (pid,))
    for v, sha in saved[1]:
        db_rows(s, "UPDATE project_versions SET sha256 = ? WHERE project_id = ? AND version = ?", (sha, pid, v))
    db_rows(s, "UPDATE assets SET sha256 = ? WHERE asset_id = ?", (saved[2], md5(png)))
    r = s.get("/backend/api/projects/%d/download" % pid, headers=s.auth(anna))
    if r.status != 200 or not r.body.startswith(b"PK"):
        leaks.append("the restored rows do not serve again: %r" % r)
    return leaks


# ---------------------------------------------------------------- run
secrets_run()
with Stack(workers=2, env={"S4S_TEST_ROUTES": "0"}) as s:
    auth_table(s)
    anna, pid = ownership(s)
    odd_ids(s, anna, pid)
    headers(s, anna, pid)
    leaks = blob_names(s, anna, pid)
    t.eq(leaks, [], "crafted blob names in projects, project_versions and assets rows: 404, nothing read "
                    "(SENDFILE=off)")
    # The same answers when nginx sends the files (X-Accel-Redirect).
    s.config["SENDFILE"] = "x-accel-redirect"
    reload_stack(s)
    t.diag("SENDFILE=x-accel-redirect")
    headers(s, anna, pid)
    leaks = blob_names(s, anna, pid)
    t.eq(leaks, [], "crafted blob names: 404, no X-Accel-Redirect, nothing read (SENDFILE=x-accel-redirect)")
t.done()
