#!/usr/bin/env python3
# The backpack (API.md "Backpack"): items of every kind posted as base64 and
# data: URLs, stored as assets checked by content and served back byte for
# byte; the item shape; paging and its validation; the empty-thumbnail
# convention; bad input refused with nothing stored; other users' items
# invisible and undeletable; simultaneous posts sharing one asset; and
# bounded memory while decoding a large body.
import base64
import io
import json
import os
import re
import sys
import wave

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (S4S_FCGI, Stack, Tap, parallel, sha256, md5, files_in, db_rows, db_value,  # noqa: E402
                 sample_png, sample_svg, sample_wav, sample_mp3, sample_zip, SAMPLE_JPEG, SAMPLE_GIF)

t = Tap()
NO_THUMB = "d41d8cd98f00b204e9800998ecf8427e"  # MD5 of zero bytes
KEYS = sorted(["id", "type", "name", "mime", "body", "thumbnail", "created_at", "updated_at",
               "thumbnailUrl", "bodyUrl"])
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def b64(data):
    return base64.b64encode(data).decode()


def data_url(mime, data):
    return "data:%s;base64,%s" % (mime, b64(data))


def post(s, tok, item, raw=None):
    h = {"Content-Type": "application/json"}
    if tok:
        h.update(s.auth(tok))
    return s.req("POST", "/backend/api/backpack", body=raw if raw is not None else json.dumps(item).encode(),
                 headers=h)


def listing(s, tok, query=""):
    return s.get("/backend/api/backpack" + query, headers=s.auth(tok))


def state(s):
    return (db_value(s, "SELECT COUNT(*) FROM assets"), db_value(s, "SELECT COUNT(*) FROM backpack_items"),
            files_in(os.path.join(s.data, "blobs")), files_in(os.path.join(s.data, "tmp")))


def worker_hwm_kb(s):
    """Peak resident memory of each worker (VmHWM), by pid."""
    out = {}
    for pid in s.worker_pids():
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    out[pid] = int(line.split()[1])
    return out


def asan_build():
    """Peak RSS says nothing under AddressSanitizer (freed memory is quarantined)."""
    with open(S4S_FCGI, "rb") as f:
        return b"__asan_init" in f.read()


def is_iso(v):
    return isinstance(v, str) and re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$", v) is not None


# ---- bounded memory: base64 is decoded into the blob store in chunks. On
# one worker, a request that stops right after parsing the JSON sets the
# peak (the request body and cJSON's copy of it); a request that also
# decodes a 6 MiB body (and then fails on its thumbnail, before any content
# check) must not raise that peak by a decoded copy.
with Stack(workers=1) as s:
    anna = s.login("anna")
    frames = io.BytesIO()
    with wave.open(frames, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(os.urandom(6 * 1024 * 1024))
    big = frames.getvalue()
    item = {"type": "sound", "mime": "audio/x-wav", "name": "big", "body": b64(big), "thumbnail": ""}
    parse_only = json.dumps(dict(item, type="../")).encode()
    decode_only = json.dumps(dict(item, thumbnail="@@")).encode()
    whole = json.dumps(item).encode()
    pid = s.worker_pids()[0]
    for _ in range(2):  # the second time the allocator's layout is settled
        r = post(s, anna, None, raw=parse_only)
    t.eq(r.status, 400, "an %.1f MiB item refused after parsing" % (len(parse_only) / 2**20))
    hwm_parse = worker_hwm_kb(s)[pid]
    r = post(s, anna, None, raw=decode_only)
    t.eq((r.status, r.json()), (400, {"error": "Invalid base64 data in field: thumbnail"}),
         "the same with the body decoded, refused for its thumbnail")
    hwm_decode = worker_hwm_kb(s)[pid]
    t.diag("worker peak RSS: %.1f MiB after parsing %.1f MiB of JSON, +%.1f MiB after decoding %.1f MiB"
           % (hwm_parse / 1024, len(parse_only) / 2**20, (hwm_decode - hwm_parse) / 1024, len(big) / 2**20))
    if asan_build():
        t.ok(True, "decoding adds no decoded copy # SKIP ASan's allocator holds freed memory back")
    else:
        t.ok((hwm_decode - hwm_parse) * 1024 < len(big) / 4,
             "decoding added less than a quarter of the decoded size", "grew %d kB" % (hwm_decode - hwm_parse))
    t.eq(files_in(os.path.join(s.data, "tmp")), [], "no temp file left by the refused item")
    r = post(s, anna, None, raw=whole)
    t.eq(r.status, 200, "the whole item: 200")
    g = s.get((r.json() or {}).get("bodyUrl", "/nope"))
    t.ok(g.status == 200 and g.body == big, "the large sound reads back byte for byte")
    t.diag("worker peak RSS after storing it (content check included): %.1f MiB"
           % (worker_hwm_kb(s)[pid] / 1024))
    t.eq(files_in(os.path.join(s.data, "tmp")), [], "no temp files")

with Stack(workers=2) as s:
    anna = s.login("anna")
    ben = s.login("ben")

    # ---- every kind of item round-trips
    png, jpg_thumb, png_thumb = sample_png(3, 3, seed=7), SAMPLE_JPEG, sample_png(1, 1, seed=99)
    svg, wav, mp3 = sample_svg("backpack"), sample_wav(seed=11), sample_mp3(3)
    zipped, script = sample_zip(), b'[{"opcode":"event_whenflagclicked"}]'
    cases = [
        # (type, mime sent, body as sent, bytes, thumbnail as sent, thumbnail bytes, stored mime, body field, url ext)
        ("costume", "image/png", data_url("image/png", png), png, data_url("image/jpeg", jpg_thumb), jpg_thumb,
         "image/png", md5(png) + ".png", "png"),
        ("costume", "image/svg+xml", b64(svg), svg, b64(jpg_thumb), jpg_thumb, "image/svg+xml", md5(svg) + ".svg",
         "svg+xml"),
        ("sound", "audio/x-wav", data_url("audio/x-wav", wav), wav, "", b"", "audio/wav", md5(wav) + ".wav", "wav"),
        ("sound", "audio/mpeg", base64.encodebytes(mp3).decode(), mp3, "data:image/png;base64,", b"",
         "audio/mpeg", md5(mp3) + ".mpeg", "mpeg"),
        ("sprite", "application/zip", data_url("application/zip", zipped), zipped, data_url("image/png", png_thumb),
         png_thumb, "application/zip", md5(zipped), "zip"),
        ("script", "application/json", b64(script), script, data_url("image/jpeg", jpg_thumb), jpg_thumb,
         "application/json", md5(script), "json"),
    ]
    posted = []
    for typ, mime, body, data, thumb, tdata, smime, bfield, ext in cases:
        name = "Übung %s" % typ
        r = post(s, anna, {"type": typ, "mime": mime, "name": name, "body": body, "thumbnail": thumb})
        j = r.json() or {}
        t.eq(r.status, 200, "POST %s (%s): 200" % (typ, mime))
        t.eq(sorted(j), KEYS, "%s: the item's keys" % typ)
        tmd5 = md5(tdata) if tdata else NO_THUMB
        t.eq({k: j.get(k) for k in ("type", "name", "mime", "body", "thumbnail", "thumbnailUrl", "bodyUrl")},
             {"type": typ, "name": name, "mime": smime, "body": bfield, "thumbnail": tmd5,
              "thumbnailUrl": "/backend/api/assets/" + tmd5,
              "bodyUrl": "/backend/api/assets/%s.%s" % (md5(data), ext)}, "%s: the item" % typ)
        t.ok(UUID4.match(j.get("id", "")) and is_iso(j.get("created_at")) and j.get("updated_at") == j.get("created_at"),
             "%s: a UUID v4 id and ISO timestamps" % typ, j)
        g = s.get(j.get("bodyUrl", "/x"))
        t.ok(g.status == 200 and g.body == data, "%s: bodyUrl serves the bytes" % typ, g)
        if mime == "image/svg+xml":
            t.eq((g.header("Content-Type"), g.header("Content-Security-Policy") is not None),
                 ("image/svg+xml", True), "svg body: image/svg+xml under a CSP")
        t.eq(db_rows(s, "SELECT asset_type, data_format, size, sha256 FROM assets WHERE md5 = ?", (md5(data),)),
             [(typ, {"image/png": "png", "image/svg+xml": "svg", "audio/x-wav": "wav", "audio/mpeg": "mpeg",
                     "application/zip": "zip", "application/json": "json"}[mime], len(data), sha256(data))],
             "%s: the body is an asset of type %s" % (typ, typ))
        if tdata:
            g = s.get(j["thumbnailUrl"])
            # API.md serves every thumbnail asset as image/jpeg, PNG ones too.
            t.ok(g.status == 200 and g.body == tdata and g.header("Content-Type") == "image/jpeg",
                 "%s: thumbnailUrl serves the thumbnail" % typ, g)
            t.eq(db_rows(s, "SELECT asset_type, data_format FROM assets WHERE md5 = ?", (tmd5,)),
                 [("thumbnail", "png" if tdata == png_thumb else "jpg")],
                 "%s: the thumbnail is an asset of type thumbnail" % typ)
        else:
            t.eq(db_rows(s, "SELECT COUNT(*) FROM assets WHERE md5 = ?", (NO_THUMB,)), [(0,)],
                 "%s: no thumbnail: %s stored, no asset for it" % (typ, NO_THUMB))
            t.eq(s.get(j["thumbnailUrl"]).status, 404, "%s: its thumbnailUrl is 404" % typ)
        t.eq(db_rows(s, "SELECT type, name, mime, body, thumbnail FROM backpack_items WHERE id = ?", (j.get("id"),)),
             [(typ, name, smime, md5(data), tmd5)], "%s: the row (body is the bare MD5)" % typ)
        posted.append(j)
    t.eq(files_in(os.path.join(s.data, "tmp")), [], "no temp files")

    # ---- the list: newest first, paged
    r = listing(s, anna)
    j = r.json() or {}
    t.eq(r.status, 200, "GET /api/backpack: 200")
    t.eq((j.get("offset"), j.get("limit"), j.get("total"), j.get("hasMore")), (0, 20, len(posted), False),
         "defaults: offset 0, limit 20; total and hasMore")
    t.eq(j.get("items"), posted[::-1], "items newest first, as POST answered them")
    j = listing(s, anna, "?limit=2&offset=1").json() or {}
    t.eq(([i["id"] for i in j.get("items", [])], j.get("offset"), j.get("limit"), j.get("hasMore")),
         ([posted[-2]["id"], posted[-3]["id"]], 1, 2, True), "limit=2&offset=1: the second page")
    j = listing(s, anna, "?limit=2&offset=4").json() or {}
    t.eq((len(j.get("items", [])), j.get("hasMore")), (2, False), "the last page: hasMore false")
    j = listing(s, anna, "?limit=1000").json() or {}
    t.eq((j.get("limit"), len(j.get("items", []))), (100, len(posted)), "limit=1000 is capped at 100")
    j = listing(s, anna, "?offset=99999999&original_id=3").json() or {}
    t.eq((j.get("items"), j.get("total"), j.get("hasMore")), ([], len(posted), False),
         "an offset past the end: no items; unknown parameters ignored")
    for q, msg in (("?limit=abc", "limit must be a non-negative integer"),
                   ("?limit=", "limit must be a non-negative integer"),
                   ("?limit=-5", "limit must be a non-negative integer"),
                   ("?limit=1e3", "limit must be a non-negative integer"),
                   ("?limit=" + "9" * 30, "limit must be a non-negative integer"),
                   ("?offset=-1", "offset must be a non-negative integer"),
                   ("?offset=x", "offset must be a non-negative integer"),
                   ("?offset=" + "9" * 20, "offset must be a non-negative integer")):
        r = listing(s, anna, q)
        t.eq((r.status, r.json()), (400, {"error": msg}), "GET /api/backpack%s: 400" % q[:30])

    # ---- other users: invisible and undeletable
    j = listing(s, ben).json() or {}
    t.eq((j.get("items"), j.get("total")), ([], 0), "ben sees none of anna's items")
    victim = posted[0]["id"]
    gone = {"error": "Item not found or you do not have permission to delete it"}
    r = s.req("DELETE", "/backend/api/backpack/" + victim, headers=s.auth(ben))
    t.eq((r.status, r.json()), (404, gone), "ben cannot delete anna's item")
    t.eq(db_value(s, "SELECT COUNT(*) FROM backpack_items WHERE id = ?", (victim,)), 1, "it is still there")
    r = s.req("DELETE", "/backend/api/backpack/" + victim, headers=s.auth(anna))
    t.eq((r.status, r.json()), (200, {"status": "success", "message": "Backpack item deleted successfully",
                                      "id": victim}), "anna deletes her item")
    t.eq(db_value(s, "SELECT COUNT(*) FROM backpack_items WHERE id = ?", (victim,)), 0, "the row is gone")
    t.eq(s.get(posted[0]["bodyUrl"]).status, 200, "its assets stay (content-addressed, maybe shared)")
    for who, iid in ((anna, victim), (anna, "no-such-item"), (anna, "x" * 300), (anna, "%27%20OR%201=1--")):
        r = s.req("DELETE", "/backend/api/backpack/" + iid, headers=s.auth(who))
        t.eq((r.status, r.json()), (404, gone), "DELETE %s: 404" % iid[:30])
    r = s.req("DELETE", "/backend/api/backpack/" + posted[1]["id"])
    t.eq(r.status, 401, "DELETE without a session: 401")
    t.eq(listing(s, anna).json()["total"], len(posted) - 1, "anna has one item fewer")

    # ---- bad input: a 4xx each, nothing stored
    good = {"type": "costume", "mime": "image/png", "name": "x", "body": b64(sample_png(2, 1, seed=42)),
            "thumbnail": b64(jpg_thumb)}
    before = state(s)
    bad = []
    for field in ("type", "mime", "name", "body", "thumbnail"):
        bad.append(({k: v for k, v in good.items() if k != field}, 400, "Missing required field: " + field))
    bad += [
        ({}, 400, "Missing required field: type"),
        (dict(good, name=5), 400, "Field name must be a string"),
        (dict(good, body=None), 400, "Field body must be a string"),
        (dict(good, type="../x"), 400, "Invalid field: type"),
        (dict(good, type="x" * 21), 400, "Invalid field: type"),
        (dict(good, name="n" * 256), 400, "Field name is too long (at most 255 characters)"),
        (dict(good, mime="image png"), 400, "Invalid field: mime"),
        (dict(good, mime=""), 400, "Invalid field: mime"),
        (dict(good, mime="image/png; x=1"), 400, "Invalid field: mime"),
        (dict(good, mime="application/x-foo"), 415, "Unsupported asset format 'x-foo'"),
        (dict(good, mime="image/svg+xml"), 415,
         "Declared format 'svg' does not match the content (detected image/png)"),
        (dict(good, body=""), 400, "Empty file"),
        (dict(good, body="data:image/png;base64,"), 400, "Empty file"),
        (dict(good, thumbnail=b64(SAMPLE_GIF)), 415, "Thumbnail must be a PNG or JPEG image"),
        (dict(good, body="data:image/png;base64" + good["body"]), 400, "Invalid data URL in field: body"),
        (dict(good, body="data:image/svg+xml,<svg/>"), 400, "Invalid data URL in field: body"),
        (dict(good, thumbnail="data:image/jpeg"), 400, "Invalid data URL in field: thumbnail"),
    ]
    for broken in ("abc$", "YQ", "YQ=", "Y", "YQ==YQ==", "YWJj-ZA==", "YWJjZA=x", "====", good["body"] + "A",
                   good["body"][:-4] + "\u00e4" + good["body"][-3:], "ab\x00cd"):
        bad.append((dict(good, body=broken), 400, "Invalid base64 data in field: body"))
    bad.append((dict(good, thumbnail="YQ=="[:3]), 400, "Invalid base64 data in field: thumbnail"))
    for item, status, msg in bad:
        r = post(s, anna, item)
        t.eq((r.status, r.json()), (status, {"error": msg}), "bad item: %d %s" % (status, msg[:60]))
    for raw, msg in ((b'{"type": ', "Invalid JSON"), (b"[1,2]", "Expected a JSON object"), (b"", "Invalid JSON")):
        r = post(s, anna, None, raw=raw)
        t.eq((r.status, r.json()), (400, {"error": msg}), "body %r: 400 %s" % (raw[:12], msg))
    r = post(s, None, good)
    t.eq((r.status, r.json()), (401, {"error": "Authentication required"}), "POST without a session: 401")
    t.eq(state(s), before, "refused items stored nothing (assets, items, blobs, temp files)")

    # A collision: the body's MD5 is seeded pointing at other bytes.
    body = sample_png(2, 2, seed=77)
    stored = b"other bytes with the same (pretended) MD5"
    h = sha256(stored)
    os.makedirs(os.path.join(s.data, "blobs", h[:2]), exist_ok=True)
    with open(os.path.join(s.data, "blobs", h[:2], h[2:]), "wb") as f:
        f.write(stored)
    db_rows(s, "INSERT INTO assets (asset_id, asset_type, data_format, size, md5, owner_id, file_path, created_at, "
               "sha256) SELECT ?, 'costume', 'png', ?, ?, id, ?, NULL, ? FROM users WHERE username = 'ben'",
            (md5(body), len(stored), md5(body), "blob:" + h, h))
    before = state(s)
    r = post(s, anna, dict(good, body=b64(body)))
    t.eq((r.status, r.json()), (409, {"error": "Asset %s already exists with different content" % md5(body)}),
         "a body whose MD5 names other bytes: 409")
    t.eq(state(s), before, "nothing stored (not even the thumbnail)")
    t.eq(s.get("/backend/api/assets/" + md5(body)).body, stored, "the stored asset is unchanged")

    # ---- 16 simultaneous posts of the same item: 16 items, one asset each
    same = dict(good, body=b64(sample_png(6, 6, seed=123)), name="twin")
    a0, i0, b0, _ = state(s)
    res = parallel(16, lambda i: post(s, anna, same))
    t.eq([r.status if hasattr(r, "status") else repr(r) for r in res], [200] * 16, "16 simultaneous posts: all 200")
    t.eq(len({(r.json() or {}).get("id") for r in res}), 16, "16 distinct item ids")
    a1, i1, b1, tmp = state(s)
    t.eq((a1 - a0, i1 - i0, len(b1) - len(b0), tmp), (1, 16, 1, []),
         "one new asset row and one new blob (the thumbnail existed), 16 rows, no temp files")

    # Names: 255 characters of any script are fine.
    r = post(s, anna, dict(good, name="ü" * 255))
    t.eq((r.status, (r.json() or {}).get("name")), (200, "ü" * 255), "a 255-character name is kept")

t.done()
