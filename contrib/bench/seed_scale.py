#!/usr/bin/env python3
"""seed_scale.py — fill a migrated s4s database with a school district's worth
of rows, fast, for contrib/bench/bench.py --scale.

    python3 contrib/bench/seed_scale.py DATA_DIR [--projects 100000] [--assets 1000000]
                                        [--users 50000] [--groups 5000]

DATA_DIR holds main.db (migrated: `s4s-admin migrate` first) and blobs/. Run it
while the server is stopped. Everything goes in with executemany in one
transaction (synchronous=OFF for this connection only: it is a generator, not
the server). Rows follow the server's conventions (sql/*.sql): timestamps as
'YYYY-MM-DD HH:MM:SS.ffffff' UTC, assets.asset_id = md5 with file_path
'blob:<sha256>', one project_versions row per project. The rows' files are a
few real blobs written into blobs/ (projects share four .sb3 blobs, every
asset row points at one PNG blob under its own distinct MD5), so
`s4s-admin check` finds what they point at.
"""
import argparse
import hashlib
import os
import random
import sqlite3
import sys
import time


def ts(epoch):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(epoch))) + ".%06d" % int((epoch % 1) * 1e6)


def put_blob(data_dir, data):
    """Store bytes as the blob store does (content-addressed, 0640); returns the SHA-256."""
    sha = hashlib.sha256(data).hexdigest()
    d = os.path.join(data_dir, "blobs", sha[:2])
    os.makedirs(d, mode=0o750, exist_ok=True)
    path = os.path.join(d, sha[2:])
    if not os.path.exists(path):
        tmp = os.path.join(data_dir, "tmp", "seed-%d-%s" % (os.getpid(), sha[:16]))
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o640)
        os.link(tmp, path)
        os.unlink(tmp)
    return sha


def minimal_sb3(seed):
    import io
    import json
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("project.json", json.dumps({"targets": [{"isStage": True, "name": "Stage"}],
                                               "meta": {"semver": "3.0.0", "agent": "seed %d" % seed}}))
        z.writestr("pad.bin", random.Random(seed).randbytes(2048), zipfile.ZIP_STORED)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("--projects", type=int, default=100000)
    ap.add_argument("--assets", type=int, default=1000000)
    ap.add_argument("--users", type=int, default=50000)
    ap.add_argument("--groups", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    db_path = os.path.join(a.data_dir, "main.db")
    if not os.path.exists(db_path):
        sys.exit("seed_scale.py: %s missing: run s4s-admin migrate first" % db_path)
    os.makedirs(os.path.join(a.data_dir, "tmp"), exist_ok=True)
    rng = random.Random(a.seed)
    now = time.time()
    year = 365 * 86400

    sb3_blobs = [(put_blob(a.data_dir, b), len(b)) for b in (minimal_sb3(i) for i in range(4))]
    png = (b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
           b"\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef"
           b"\x00\x00\x00\x00IEND\xaeB`\x82")
    png_sha = put_blob(a.data_dir, png)

    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA foreign_keys=OFF")  # rows go in parent-first anyway
    t0 = time.time()
    conn.execute("BEGIN IMMEDIATE")

    users = ["scale-u%06d" % i for i in range(a.users)]
    conn.executemany(
        "INSERT INTO users (id, username, email, role, created_at, last_login, user_data) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((u, "user%06d" % i, "user%06d@school.example" % i, "teacher" if i % 25 == 0 else "student",
          ts(now - rng.random() * year), ts(now - rng.random() * 86400 * 30),
          '{"uuid":"%s","preferred_username":"user%06d"}' % (u, i)) for i, u in enumerate(users)))
    conn.executemany(
        "INSERT INTO groups (name, external_id, description, created_at) VALUES (?, ?, ?, ?)",
        (("Klasse %d" % i, "scale-g%05d" % i, None, ts(now - year)) for i in range(a.groups)))
    first_group = conn.execute("SELECT MIN(id) FROM groups WHERE external_id LIKE 'scale-g%'").fetchone()[0]
    member = {}  # user index -> its groups

    def memberships():
        for i, u in enumerate(users):
            gs = sorted(set(first_group + rng.randrange(a.groups) for _ in range(2)))
            member[i] = gs
            for g in gs:
                yield (u, g, ts(now - year))
    conn.executemany("INSERT INTO user_groups (user_id, group_id, joined_at) VALUES (?, ?, ?)", memberships())
    conn.executemany(
        "INSERT INTO oauth_sessions (id, user_id, access_token, refresh_token, expires_at, created_at, last_accessed) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((hashlib.sha256(b"scale-session-%d" % i).hexdigest(), u, "s4s1:seeded", None, ts(now + 43200),
          ts(now - 3600), ts(now - 60)) for i, u in enumerate(users)))

    first_project = (conn.execute("SELECT COALESCE(MAX(id), 0) FROM projects").fetchone()[0]) + 1
    owners = [rng.randrange(a.users) for _ in range(a.projects)]
    published = [rng.random() < 0.2 for _ in range(a.projects)]
    versions = [rng.randrange(1, 6) for _ in range(a.projects)]

    def projects():
        for n in range(a.projects):
            created = now - rng.random() * year
            sha, size = sb3_blobs[n % len(sb3_blobs)]
            yield (first_project + n, "Projekt %d" % n, None, None, None, versions[n], users[owners[n]], ts(created),
                   ts(created + rng.random() * (now - created)), 1 if published[n] else 0, sha, size, None, None,
                   ts(now - 86400) if rng.random() < 0.02 else None)
    conn.executemany(
        "INSERT INTO projects (id, name, description, sb3_file_path, thumbnail_path, version, owner_id, created_at, "
        "updated_at, is_published, sb3_sha256, sb3_size, thumbnail_sha256, thumbnail_type, deleted_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", projects())
    conn.executemany(
        "INSERT INTO project_versions (project_id, version, sha256, size, created_by, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        ((first_project + n, versions[n], sb3_blobs[n % len(sb3_blobs)][0], sb3_blobs[n % len(sb3_blobs)][1],
          users[owners[n]], ts(now - 86400)) for n in range(a.projects)))
    conn.executemany(
        "INSERT INTO project_groups (project_id, group_id, published_at) VALUES (?, ?, ?)",
        ((first_project + n, member[owners[n]][0], ts(now - 86400)) for n in range(a.projects) if published[n]))

    def assets():
        for n in range(a.assets):
            md5 = hashlib.md5(b"scale-asset-%d" % n).hexdigest()
            yield (md5, "costume" if n % 3 else "sound", "png" if n % 3 else "wav", len(png), md5,
                   users[rng.randrange(a.users)], "blob:" + png_sha, ts(now - rng.random() * year), png_sha)
    conn.executemany(
        "INSERT INTO assets (asset_id, asset_type, data_format, size, md5, owner_id, file_path, created_at, sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", assets())
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = {t: conn.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0]
              for t in ("users", "groups", "user_groups", "oauth_sessions", "projects", "project_versions",
                        "project_groups", "assets")}
    conn.close()
    print("# seed_scale: %s in %.1f s (%d MB)" % (", ".join("%d %s" % (n, t) for t, n in counts.items()),
                                                  time.time() - t0, os.path.getsize(db_path) >> 20))


if __name__ == "__main__":
    main()
