#!/usr/bin/env python3
# Real concurrency through nginx: a burst far larger than the worker count is
# absorbed by the listen backlog (no 502); many clients uploading the same
# bytes at once end with one intact blob and no temp leftovers; different
# bytes all land.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import Stack, Tap, files_in, multipart, parallel, sha256  # noqa: E402

t = Tap()


with Stack(workers=2) as s:
    res = parallel(200, lambda i: s.get("/backend/api/status", timeout=60).status)
    t.eq(sorted(set(map(str, res))), ["200"], "200 simultaneous requests to 2 workers: all 200")

    same = os.urandom(512 * 1024)
    body, ctype = multipart({}, {"f": ("same.bin", same, "application/octet-stream")})
    res = parallel(32, lambda i: s.req("POST", "/backend/_test/upload", body=body,
                                        headers={"Content-Type": ctype}, timeout=60))
    ok = [r for r in res if getattr(r, "status", None) == 200]
    t.eq(len(ok), 32, "32 simultaneous identical uploads: all 200")
    t.eq(sorted(set(r.json()["files"][0]["sha256"] for r in ok)), [sha256(same)], "all got the same hash")
    blobs = files_in(os.path.join(s.data, "blobs"))
    t.eq(len(blobs), 1, "one blob on disk")
    t.ok(blobs and open(blobs[0], "rb").read() == same, "the blob is intact")
    t.eq(files_in(os.path.join(s.data, "tmp")), [], "no temp leftovers")

    datas = [os.urandom(64 * 1024 + i) for i in range(32)]

    def up(i):
        b, c = multipart({}, {"f": ("d%d.bin" % i, datas[i], "application/octet-stream")})
        return s.req("POST", "/backend/_test/upload", body=b, headers={"Content-Type": c}, timeout=60)

    res = parallel(32, up)
    t.eq([getattr(r, "status", r) for r in res], [200] * 32, "32 simultaneous different uploads: all 200")
    want = sorted([sha256(d) for d in datas] + [sha256(same)])
    got = sorted(os.path.basename(os.path.dirname(p)) + os.path.basename(p) for p in files_in(os.path.join(s.data, "blobs")))
    t.eq(got, want, "every upload became exactly one blob named by its SHA-256")
    bad = [p for p in files_in(os.path.join(s.data, "blobs"))
           if sha256(open(p, "rb").read()) != os.path.basename(os.path.dirname(p)) + os.path.basename(p)]
    t.eq(bad, [], "every blob's bytes match its name")
    t.eq(files_in(os.path.join(s.data, "tmp")), [], "still no temp leftovers")
    with open(os.path.join(s.dir, "nginx-error.log")) as f:
        errs = [l for l in f if "[error]" in l]
    t.eq(errs, [], "nginx logged no upstream errors")

t.done()
