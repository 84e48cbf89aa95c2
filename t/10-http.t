#!/usr/bin/env python3
# The request pipeline through real nginx: status, JSON errors for unknown
# routes and wrong methods, 413 before anything is stored, CORS and
# preflight, path tricks, the streaming multipart pipeline into the blob
# store, /status and /metrics access rules.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import Stack, Tap, files_in, multipart, sha256, request  # noqa: E402

t = Tap()


with Stack(workers=2, config={"MAX_CONTENT_LENGTH": "8M", "STATUS_TOKEN": "s3cret-token"}) as s:
    r = s.get("/backend/api/status")
    t.eq(r.status, 200, "GET /api/status is 200")
    j = r.json() or {}
    t.eq(j.get("status"), "ok", "status is ok")
    t.ok(isinstance(j.get("timestamp"), str) and j["timestamp"].endswith("+00:00") and "T" in j["timestamp"],
         "timestamp is ISO 8601 UTC", j)
    t.eq(r.header("Content-Type"), "application/json; charset=utf-8", "JSON content type")
    t.eq(r.header("X-Content-Type-Options"), "nosniff", "nosniff on every answer")
    origin = "http://127.0.0.1:%d" % s.port
    t.eq(r.header("Access-Control-Allow-Origin"), origin, "CORS origin is FRONTEND_URL's origin")
    t.eq(r.header("Access-Control-Allow-Credentials"), "true", "CORS credentials")

    r = s.get("/backend/api/nope")
    t.eq((r.status, r.json()), (404, {"error": "Not found"}), "unknown route: 404 JSON")
    r = s.get("/backend/")
    t.eq(r.status, 404, "prefix root: 404")
    t.eq(r.json(), {"error": "Not found"}, "prefix root: JSON body")
    r = s.req("DELETE", "/backend/api/status")
    t.eq((r.status, r.json()), (405, {"error": "Method not allowed"}), "wrong method: 405 JSON")
    t.eq(r.header("Allow"), "GET", "405 carries Allow")
    r = s.req("POST", "/backend/api/status", body=b'{"x":1}', headers={"Content-Type": "application/json"})
    t.eq(r.status, 405, "POST with a body to a GET route: 405 (body drained, no 502)")

    r = s.req("OPTIONS", "/backend/api/projects/12")
    t.eq(r.status, 204, "OPTIONS preflight is 204 on any route")
    t.eq(r.header("Access-Control-Allow-Methods"), "GET, POST, PUT, DELETE, OPTIONS", "preflight methods")
    t.eq(r.header("Access-Control-Allow-Headers"), "Authorization, X-Session-ID, Content-Type, If-Match",
         "preflight headers")
    t.eq(r.header("Access-Control-Allow-Origin"), origin, "preflight origin")

    for path in ("/backend/api/../api/status", "/backend/api/%2e%2e/api/status", "/backend/api//status",
                 "/backend/api/status%0a"):
        r = s.get(path)
        t.ok(r.status in (400, 404) and isinstance(r.json(), dict) and "error" in r.json(),
             "path trick %s: 4xx JSON" % path, r)
    r = s.get("/backend/api/status?x=%00%ff&&=&title=%C3%9Cbung+1")
    t.eq(r.status, 200, "odd query strings are harmless")

    # The multipart pipeline: file parts streamed into blobs, fields kept.
    payload = os.urandom(3 * 1024 * 1024 + 17)
    body, ctype = multipart({"title": "Übung 1 & 2", "version": "3"},
                            {"project_file": ("p.sb3", payload, "application/octet-stream"),
                             "thumbnail": ("t.png", b"\x89PNG\r\n\x1a\n" + b"x" * 100, "image/png")})
    r = s.req("POST", "/backend/_test/upload", body=body, headers={"Content-Type": ctype})
    j = r.json() or {}
    t.eq(r.status, 200, "multipart upload accepted")
    files = {f["name"]: f for f in j.get("files", [])}
    t.eq(files.get("project_file", {}).get("sha256"), sha256(payload), "file part hashed while streamed")
    t.eq(files.get("project_file", {}).get("size"), len(payload), "file part size")
    t.eq(j.get("fields", {}).get("title"), "Übung 1 & 2", "text field UTF-8 round trip")
    blob = os.path.join(s.data, "blobs", sha256(payload)[:2], sha256(payload)[2:])
    t.ok(os.path.exists(blob) and open(blob, "rb").read() == payload, "blob on disk holds the bytes")
    t.eq(files_in(os.path.join(s.data, "tmp")), [], "no temp files left after an upload")

    before = files_in(os.path.join(s.data, "blobs"))
    big = os.urandom(9 * 1024 * 1024)
    body, ctype = multipart({}, {"project_file": ("big.sb3", big, "application/octet-stream")})
    r = s.req("POST", "/backend/_test/upload", body=body, headers={"Content-Type": ctype})
    t.eq(r.status, 413, "body over MAX_CONTENT_LENGTH: 413")
    t.ok((r.json() or {}).get("error", "").startswith("Request body too large"), "413 has a JSON error", r)
    t.eq(files_in(os.path.join(s.data, "blobs")), before, "413: nothing stored")
    t.eq(files_in(os.path.join(s.data, "tmp")), [], "413: no temp file")

    r = s.req("POST", "/backend/_test/upload", body=b"--x\r\nContent-Disposition: form-data; name=\"a\"; filename=\"f\"\r\n\r\nabc",
              headers={"Content-Type": "multipart/form-data; boundary=x"})
    t.eq(r.status, 400, "truncated multipart: 400")
    t.ok("error" in (r.json() or {}), "truncated multipart: JSON error", r)
    t.eq(files_in(os.path.join(s.data, "tmp")), [], "truncated multipart: no temp file")
    r = s.req("POST", "/backend/_test/upload", body=b"hello", headers={"Content-Type": "text/plain"})
    t.eq(r.status, 400, "not multipart: 400")
    r = s.req("POST", "/backend/_test/upload", body=b"x", headers={"Content-Type": "multipart/form-data"})
    t.eq(r.status, 400, "multipart without boundary: 400")

    # Memory stays bounded whatever the upload size: RSS of every worker after
    # several large uploads stays small.
    big = os.urandom(7 * 1024 * 1024)
    body, ctype = multipart({}, {"f": ("x", big, "application/octet-stream")})
    for _ in range(4):
        s.req("POST", "/backend/_test/upload", body=body, headers={"Content-Type": ctype})
    st = s.status()
    rss = [w["rss_kb"] for w in st["workers"]]
    t.ok(all(0 < x < 40 * 1024 for x in rss), "worker RSS stays bounded after 7 MiB uploads: %s KiB" % rss, rss)

    # /status and /metrics: loopback allowed, others need the token.
    st = s.status()
    t.eq(len([w for w in st["workers"] if w["state"] in ("idle", "busy")]), 2, "/status lists 2 workers")
    t.ok(st["accepted"] > 5, "/status counts accepted requests", st)
    t.ok("listen_queue" in st and st["listen_queue"] >= 0, "/status has an honest listen queue", st)
    r = s.get("/backend/status?format=text")
    t.ok(r.status == 200 and r.header("Content-Type").startswith("text/plain") and b"accepted:" in r.body,
         "/status?format=text", r)
    r = request(s.ext_port, "GET", "/backend/status")
    t.eq((r.status, r.json()), (403, {"error": "Forbidden"}), "/status from elsewhere without token: 403")
    r = request(s.ext_port, "GET", "/backend/status", headers={"Authorization": "Bearer s3cret-token"})
    t.eq(r.status, 200, "/status from elsewhere with bearer STATUS_TOKEN: 200")
    r = request(s.ext_port, "GET", "/backend/metrics?token=s3cret-token")
    t.eq(r.status, 200, "/metrics with ?token=: 200")
    r = request(s.ext_port, "GET", "/backend/metrics?token=wrong")
    t.eq(r.status, 403, "/metrics with a wrong token: 403")
    r = s.get("/backend/metrics")
    text = r.body.decode()
    t.ok('s4s_requests_total{route="GET /api/status",status="200"}' in text, "metrics count requests by route and status")
    t.ok('s4s_requests_total{route="unrouted",status="404"}' in text, "metrics count unrouted 404s")
    t.ok('s4s_request_duration_seconds_bucket{route="GET /api/status",le="+Inf"}' in text, "latency histogram")
    for name in ("s4s_version_conflicts_total", "s4s_db_busy_retries_total", "s4s_uploaded_bytes_total",
                 's4s_workers{state="idle"}', "s4s_sqlite_wal_bytes", "s4s_blob_store_bytes",
                 "s4s_worker_restarts_total"):
        t.ok(name in text, "metrics has " + name)
    up = [l for l in text.splitlines() if l.startswith("s4s_uploaded_bytes_total ")]
    t.ok(up and int(up[0].split()[1]) > 3 * 1024 * 1024, "uploaded bytes counted", up)
    alive = s.get("/backend/api/status")
    t.eq(alive.status, 200, "server alive after the bad input")
    log = s.log_text()
    t.ok(" access[" in log and "/api/status 200" in log, "access log lines written")
    t.ok("database " in log and "migration" in log or "schema is up to date" in log, "master logged the database and migrations")
    t.ok("listening on unix:" in log, "master logged the listen address")

t.done()
