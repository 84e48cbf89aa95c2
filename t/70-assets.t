#!/usr/bin/env python3
# Assets (API.md "Assets"): byte-exact round trips with the MIME type of every
# format, ETag/304 and caching headers, the raw upload route, one row and one
# blob per content under 32 simultaneous uploads, the MD5 collision answer,
# and bad input (wrong format, empty file, missing fields, path tricks in
# ids) refused with nothing stored. Then the same GET through nginx's
# X-Accel-Redirect (SENDFILE=x-accel-redirect).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import s4s  # noqa: E402
from s4s import (Stack, Tap, multipart, parallel, sha256, md5, files_in, db_rows, db_value,  # noqa: E402
                 sample_png, sample_svg, sample_bmp, sample_wav, sample_mp3, sample_ogg, sample_zip,
                 SAMPLE_JPEG, SAMPLE_GIF)

t = Tap()
CACHE = "public, max-age=31536000, immutable"
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

# (type, format, bytes, MIME served)
SAMPLES = [
    ("costume", "png", sample_png(2, 2), "image/png"),
    ("costume", "svg", sample_svg("round-trip"), "image/svg+xml"),
    ("costume", "jpg", SAMPLE_JPEG, "image/jpeg"),
    ("costume", "gif", SAMPLE_GIF, "image/gif"),
    ("costume", "bmp", sample_bmp(), "image/bmp"),
    ("sound", "wav", sample_wav(), "audio/wav"),
    ("sound", "mp3", sample_mp3(), "audio/mpeg"),
    ("sound", "ogg", sample_ogg(), "audio/ogg"),
    ("sprite", "sprite3", sample_zip(), "application/zip"),
    ("script", "json", b'{"opcode":"motion_movesteps","inputs":{}}', "application/json"),
]


def upload(s, tok, data, typ="costume", fmt="png", fields=None, filename="a.bin"):
    f = {"type": typ, "format": fmt} if fields is None else fields
    body, ctype = multipart(f, {"asset": (filename, data, "application/octet-stream")} if data is not None else {})
    h = {"Content-Type": ctype}
    if tok:
        h.update(s.auth(tok))
    return s.req("POST", "/backend/api/assets/", body=body, headers=h)


def raw(s, tok, name, data):
    h = {"Content-Type": "application/octet-stream"}
    if tok:
        h.update(s.auth(tok))
    return s.req("POST", "/backend/api/assets/" + name, body=data, headers=h)


def state(s):
    """What a refused request must leave unchanged: rows, blobs, temp files."""
    return (db_value(s, "SELECT COUNT(*) FROM assets"), files_in(os.path.join(s.data, "blobs")),
            files_in(os.path.join(s.data, "tmp")))


def blob_path(s, data):
    h = sha256(data)
    return os.path.join(s.data, "blobs", h[:2], h[2:])


with Stack(workers=4) as s:
    anna = s.login("anna")
    ben = s.login("ben")
    anna_id = s.get("/backend/api/user", headers=s.auth(anna)).json()["user"]["user_id"]
    ben_id = s.get("/backend/api/user", headers=s.auth(ben)).json()["user"]["user_id"]

    # ---- every format round-trips byte for byte, with its MIME type
    for typ, fmt, data, mime in SAMPLES:
        r = upload(s, anna, data, typ, fmt)
        t.eq((r.status, r.json()), (200, {"status": "ok", "assetId": md5(data)}), "upload %s/%s" % (typ, fmt))
        for suffix in ("", "." + fmt):
            g = s.get("/backend/api/assets/" + md5(data) + suffix)
            t.ok(g.status == 200 and g.body == data, "GET %s%s: the same bytes" % (fmt, suffix), g)
            t.eq(g.header("Content-Type"), mime, "GET %s%s: %s" % (fmt, suffix, mime))
        t.eq(g.header("ETag"), '"%s"' % md5(data), "%s: ETag is the quoted MD5" % fmt)
        t.eq(g.header("Cache-Control"), CACHE, "%s: cached for a year, immutable" % fmt)
        t.eq(g.header("Content-Security-Policy"), SVG_CSP if fmt == "svg" else None,
             "%s: %s" % (fmt, "SVG sandboxed by CSP" if fmt == "svg" else "no CSP"))
        row = db_rows(s, "SELECT asset_id, md5, asset_type, data_format, size, owner_id, sha256, file_path "
                         "FROM assets WHERE md5 = ?", (md5(data),))
        t.eq(row, [(md5(data), md5(data), typ, fmt, len(data), anna_id, sha256(data), "blob:" + sha256(data))],
             "%s: one row, blob by SHA-256, file_path blob:<sha256>" % fmt)
        t.ok(open(blob_path(s, data), "rb").read() == data, "%s: blob holds the bytes" % fmt)
    t.eq(files_in(os.path.join(s.data, "tmp")), [], "no temp files after the uploads")

    # ---- conditional GET
    png = SAMPLES[0][2]
    url = "/backend/api/assets/" + md5(png)
    for inm in ('"%s"' % md5(png), 'W/"%s"' % md5(png), '"other", "%s"' % md5(png), "*"):
        r = s.get(url, headers={"If-None-Match": inm})
        t.ok(r.status == 304 and r.body == b"", "If-None-Match %s: 304, no body" % inm, r)
    t.eq(r.header("ETag"), '"%s"' % md5(png), "304 carries the ETag")
    t.eq(r.header("Cache-Control"), CACHE, "304 carries Cache-Control")
    r = s.get(url, headers={"If-None-Match": '"%s"' % ("0" * 32)})
    t.ok(r.status == 200 and r.body == png, "another ETag: 200 with the bytes")
    r = s.get("/backend/api/assets/" + md5(png).upper() + ".PNG")
    t.ok(r.status == 200 and r.body == png and r.header("ETag") == '"%s"' % md5(png),
         "uppercase hex id is the same asset (read as lowercase)", r)

    # ---- the same bytes again: same id, first type and format stay
    before = state(s)
    r = upload(s, ben, png, "thumbnail", "png")
    t.eq((r.status, r.json()), (200, {"status": "ok", "assetId": md5(png)}), "same bytes, other type: same id")
    t.eq(state(s), before, "no new row, no new blob, no temp file")
    t.eq(db_rows(s, "SELECT asset_type, data_format, owner_id FROM assets WHERE md5 = ?", (md5(png),)),
         [("costume", "png", anna_id)], "the first upload's type, format and owner stay")

    # ---- the raw route (scratch-storage)
    raws = [("png", sample_png(3, 1, seed=5), "image/png"), ("wav", sample_wav(seed=3), "audio/wav"),
            ("json", b'{"raw":true}', "application/json"), ("zip", sample_zip({"a.json": b"{}"}), "application/zip"),
            ("jpeg", SAMPLE_JPEG + b"raw", "image/jpeg")]
    for ext, data, mime in raws:
        r = raw(s, anna, "%s.%s" % (md5(data), ext), data)
        t.eq((r.status, r.json()), (200, {"status": "ok", "content-name": md5(data)}), "raw POST .%s" % ext)
        g = s.get("/backend/api/assets/%s.%s" % (md5(data), ext))
        t.ok(g.status == 200 and g.body == data and g.header("Content-Type") == mime,
             "raw .%s round trip as %s" % (ext, mime), g)
    t.eq(db_rows(s, "SELECT asset_type, data_format FROM assets WHERE md5 = ?", (md5(raws[1][1]),)),
         [("sound", "wav")], "raw: type from the extension")
    data = sample_png(4, 1, seed=9)
    r = raw(s, anna, "%s.png" % md5(data).upper(), data)
    t.eq((r.status, r.json()), (200, {"status": "ok", "content-name": md5(data)}),
         "raw with an uppercase name: stored under the lowercase id")

    before = state(s)
    data = sample_png(5, 1, seed=1)
    checks = [
        (anna, "%s.png" % md5(b"other bytes"), data, 400, "The MD5 of the body does not match the asset name"),
        (anna, "%s.exe" % md5(data), data, 415, "Unsupported asset format 'exe'"),
        (anna, "%s" % md5(data), data, 415, "Unsupported asset format ''"),
        (anna, "%s.wav" % md5(data), data, 415, "Declared format 'wav' does not match the content (detected image/png)"),
        (anna, "%s.png" % md5(b""), b"", 400, "Empty file"),
        (anna, "%s.png" % md5(data)[:31], data, 404, "Asset not found"),
        (anna, "%sa.png" % md5(data), data, 404, "Asset not found"),
        (anna, "%s.p/ng" % md5(data), data, 404, "Not found"),
        (None, "%s.png" % md5(data), data, 401, "Authentication required"),
    ]
    for tok, name, body, status, msg in checks:
        r = raw(s, tok, name, body)
        t.eq((r.status, r.json()), (status, {"error": msg}), "raw %s: %d %s" % (name[:40], status, msg))
    t.eq(state(s), before, "refused raw uploads stored nothing")

    # ---- bad multipart uploads: a 4xx each, nothing stored
    svg = sample_svg("bad-input")
    bad = [
        (dict(data=png, fmt="svg"), 415, "Declared format 'svg' does not match the content (detected image/png)"),
        (dict(data=svg, fmt="png"), 415, "Declared format 'png' does not match the content (detected image/svg+xml)"),
        (dict(data=b"not json", typ="script", fmt="json"), 415,
         "Declared format 'json' does not match the content (not valid JSON)"),
        (dict(data=svg, fmt="exe"), 415, "Unsupported asset format 'exe'"),
        (dict(data=b"", fmt="png"), 400, "Empty file"),
        (dict(data=None), 400, "No asset file provided"),
        (dict(data=svg, fields={"format": "svg"}), 400, "Missing required field: type"),
        (dict(data=svg, fields={"type": "costume"}), 400, "Missing required field: format"),
        (dict(data=svg, fields={"type": "", "format": "svg"}), 400, "Missing required field: type"),
        (dict(data=svg, typ="../../etc", fmt="svg"), 400, "Invalid asset type"),
        (dict(data=svg, typ="x" * 51, fmt="svg"), 400, "Invalid asset type"),
    ]
    for kw, status, msg in bad:
        r = upload(s, anna, **kw)
        t.eq((r.status, r.json()), (status, {"error": msg}), "bad upload: %d %s" % (status, msg))
    r = upload(s, None, svg, "costume", "svg")
    t.eq((r.status, r.json()), (401, {"error": "Authentication required"}), "upload without a session: 401")
    r = s.req("POST", "/backend/api/assets/", body=b"type=costume", headers=dict(s.auth(anna), **{
        "Content-Type": "application/x-www-form-urlencoded"}))
    t.eq(r.status, 400, "not multipart: 400")
    t.eq(state(s), before, "refused uploads stored nothing (rows, blobs, temp files)")

    # ---- ids that are not 32 hex digits never reach the database or the disk
    h = md5(png)
    for path in (h[:31], h + "0", "g" * 32, h[:31] + "/", h + ".", h + "..png", h + "x.png",
                 h + ".<svg>", "..%2f" + h, "%2e%2e", "..", "0" * 32, h + "%2f..%2f" + h, h + ".p" + "n" * 40):
        r = s.get("/backend/api/assets/" + path)
        j = r.json() or {}
        t.ok(r.status in (400, 404) and "error" in j and r.body != png,
             "GET /api/assets/%s: %d %s" % (path[:48], r.status, j.get("error")), r)
        if r.status == 404 and path not in ("..", "%2e%2e"):
            t.eq(j, {"error": "Asset not found"}, "  ... says Asset not found")
    t.eq(s.get("/backend/api/assets/" + md5(b"never uploaded")).json(), {"error": "Asset not found"},
         "unknown id: Asset not found")

    # ---- 32 simultaneous identical uploads: one row, one blob, one id
    same = sample_svg("thirty-two at once " * 50)
    before_rows, before_blobs, _ = state(s)
    res = parallel(32, lambda i: upload(s, anna if i % 2 else ben, same, "costume", "svg"))
    t.eq([r.status if hasattr(r, "status") else repr(r) for r in res], [200] * 32, "32 identical uploads: all 200")
    t.eq({(r.json() or {}).get("assetId") for r in res if hasattr(r, "json")}, {md5(same)}, "all got the same id")
    rows, blobs, tmp = state(s)
    t.eq(rows, before_rows + 1, "one new row")
    t.eq(sorted(set(blobs) - set(before_blobs)), [blob_path(s, same)], "one new blob, named by SHA-256")
    t.eq(tmp, [], "no temp files left")
    res = parallel(16, lambda i: raw(s, anna, "%s.svg" % md5(same), same))
    t.eq([r.status if hasattr(r, "status") else repr(r) for r in res], [200] * 16,
         "16 raw uploads of the same bytes: all 200")
    t.eq(state(s), (rows, blobs, []), "still one row and one blob")

    # ---- 32 simultaneous different uploads: each its own row and blob
    many = [sample_png(2, 2, seed=100 + i) for i in range(32)]
    res = parallel(32, lambda i: upload(s, anna, many[i], "costume", "png"))
    t.eq([(r.status, (r.json() or {}).get("assetId")) if hasattr(r, "status") else repr(r) for r in res],
         [(200, md5(d)) for d in many], "32 different uploads: 200 with their own ids")
    rows2, blobs2, tmp = state(s)
    t.eq((rows2 - rows, len(blobs2) - len(blobs), tmp), (32, 32, []), "32 new rows, 32 new blobs, no temp files")
    t.ok(all(s.get("/backend/api/assets/" + md5(d)).body == d for d in many), "each reads back byte for byte")

    # ---- a collision: the MD5 already names other bytes
    newbytes = sample_svg("collision-new")
    stored = sample_svg("collision-stored-bytes")
    os.makedirs(os.path.dirname(blob_path(s, stored)), exist_ok=True)
    with open(blob_path(s, stored), "wb") as f:
        f.write(stored)
    db_rows(s, "INSERT INTO assets (asset_id, asset_type, data_format, size, md5, owner_id, file_path, "
               "created_at, sha256) VALUES (?, 'costume', 'svg', ?, ?, ?, ?, '2026-01-01 00:00:00.000000', ?)",
            (md5(newbytes), len(stored), md5(newbytes), ben_id, "blob:" + sha256(stored), sha256(stored)))
    before = state(s)
    seeded = db_rows(s, "SELECT * FROM assets WHERE md5 = ?", (md5(newbytes),))
    msg = {"error": "Asset %s already exists with different content" % md5(newbytes)}
    r = upload(s, anna, newbytes, "costume", "svg")
    t.eq((r.status, r.json()), (409, msg), "collision (multipart): 409")
    r = raw(s, anna, "%s.svg" % md5(newbytes), newbytes)
    t.eq((r.status, r.json()), (409, msg), "collision (raw): 409")
    t.eq(state(s), before, "collision: nothing stored, no blob of the new bytes")
    t.ok(not os.path.exists(blob_path(s, newbytes)), "the new bytes are not in the blob store")
    t.eq(db_rows(s, "SELECT * FROM assets WHERE md5 = ?", (md5(newbytes),)), seeded, "the seeded row is unchanged")
    g = s.get("/backend/api/assets/" + md5(newbytes))
    t.ok(g.status == 200 and g.body == stored, "the stored asset is still served unchanged", g)

    # An adopted row whose file is not in the blob store yet: 404, then an
    # upload of the bytes completes it.
    adopted = sample_svg("adopted")
    db_rows(s, "INSERT INTO assets (asset_id, asset_type, data_format, size, md5, owner_id, file_path, created_at) "
               "VALUES (?, 'costume', 'svg', ?, ?, ?, '/srv/uploads/costume/x.svg', NULL)",
            (md5(adopted), len(adopted), md5(adopted), ben_id))
    t.eq(s.get("/backend/api/assets/" + md5(adopted)).status, 404, "adopted row without a blob: 404")
    r = upload(s, anna, adopted, "sound", "svg")
    t.eq(r.status, 200, "uploading its bytes: 200")
    t.eq(db_rows(s, "SELECT asset_type, owner_id, sha256, file_path FROM assets WHERE md5 = ?", (md5(adopted),)),
         [("costume", ben_id, sha256(adopted), "/srv/uploads/costume/x.svg")],
         "the adopted row gains its SHA-256, keeps the rest")
    t.eq(s.get("/backend/api/assets/" + md5(adopted)).body, adopted, "and is served")

    # A row whose blob is missing (a store damaged by hand): 404 that is not
    # cached; uploading the bytes again puts the blob back.
    ghost = sample_svg("ghost")
    db_rows(s, "INSERT INTO assets (asset_id, asset_type, data_format, size, md5, owner_id, file_path, created_at, "
               "sha256) VALUES (?, 'costume', 'svg', ?, ?, ?, ?, NULL, ?)",
            (md5(ghost), len(ghost), md5(ghost), ben_id, "blob:" + sha256(ghost), sha256(ghost)))
    r = s.get("/backend/api/assets/" + md5(ghost))
    t.eq((r.status, r.json(), r.header_all("Cache-Control")), (404, {"error": "Asset not found"}, ["no-store"]),
         "a row whose blob is missing: 404, not cached")
    r = upload(s, anna, ghost, "costume", "svg")
    t.eq((r.status, s.get("/backend/api/assets/" + md5(ghost)).body), (200, ghost),
         "uploading its bytes again restores the blob")

    t.eq(files_in(os.path.join(s.data, "tmp")), [], "no temp files at the end")

# The same answers when nginx sends the file (X-Accel-Redirect). nginx keeps
# only a few of the server's headers on such an answer and puts its own ETag
# (mtime-size) on the file, so the internal location needs these lines (the
# recommended configuration; added here unless the harness has them).
XACCEL_LINES = """
            etag off;
            add_header ETag $upstream_http_etag;
            add_header Content-Security-Policy $upstream_http_content_security_policy;
            add_header X-Content-Type-Options nosniff;"""
if "$upstream_http_etag" not in s4s.NGINX_CONF:
    s4s.NGINX_CONF = s4s.NGINX_CONF.replace("alias {data}/blobs/;", "alias {data}/blobs/;" + XACCEL_LINES)
with Stack(workers=1, config={"SENDFILE": "x-accel-redirect"}) as s:
    anna = s.login("anna")
    for typ, fmt, data, mime in (SAMPLES[0], SAMPLES[1], SAMPLES[5]):
        t.eq(upload(s, anna, data, typ, fmt).status, 200, "x-accel: upload %s" % fmt)
        g = s.get("/backend/api/assets/%s.%s" % (md5(data), fmt))
        t.ok(g.status == 200 and g.body == data, "x-accel: %s bytes sent by nginx" % fmt, g)
        t.eq(g.header("Content-Type"), mime, "x-accel: %s Content-Type" % fmt)
        t.eq(g.header("Cache-Control"), CACHE, "x-accel: %s Cache-Control" % fmt)
        t.eq(g.header("ETag"), '"%s"' % md5(data), "x-accel: %s ETag" % fmt)
        t.eq(g.header("Content-Security-Policy"), SVG_CSP if fmt == "svg" else None, "x-accel: %s CSP" % fmt)
        t.eq(g.header("X-Content-Type-Options"), "nosniff", "x-accel: %s nosniff" % fmt)
        t.eq(g.header("X-Accel-Redirect"), None, "x-accel: the internal header does not leak")
        r = s.get("/backend/api/assets/" + md5(data), headers={"If-None-Match": '"%s"' % md5(data)})
        t.eq(r.status, 304, "x-accel: %s If-None-Match → 304" % fmt)

t.done()
