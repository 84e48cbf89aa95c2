#!/usr/bin/env python3
"""The 100-student soak: a school's afternoon through nginx, then an audit.

100 students in four classes and 5 teachers log in through the stand-in
identity provider. Every student autosaves a real .sb3 (a zip of 100-500 KB)
every few seconds, uploads costumes, fills the backpack, shares the project
with the class and looks at the class's shared projects; some students work
on two devices at once (two sessions saving the same project, so 409s with
conflict copies are expected); teachers list their students and open their
projects. A bounded pool of client threads keeps many requests in flight
without drowning a 2-core box.

Afterwards the audit checks: no 5xx; no lost acknowledged write (every
project holds the bytes of the 200 with the highest version; every 409'd
save's bytes are a version of that session's conflict copy; every
acknowledged asset and backpack item is there); s4s_version_conflicts_total
equals the 409s clients saw; no duplicate users, groups, memberships or
assets; `s4s-admin check` clean; worker RSS flat after warm-up (< 2 MB). It
prints a table: requests by kind with p50/p99 latency, 409s, conflict
copies, RSS.

    python3 contrib/soak/soak.py --minutes 3          # local run (build-test/ binaries)
    S4S_BUILDDIR=build-sanitize python3 contrib/soak/soak.py --minutes 1

t/99-soak.t runs a short variant (run_soak(..., seconds=25)) in the test suite.
Standard library only.
"""
import argparse
import hashlib
import heapq
import io
import json
import os
import random
import re
import sys
import threading
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
if not os.environ.get("S4S_BUILDDIR") and os.path.exists(os.path.join(TOP, "build-test", "src", "s4s-fcgi")):
    os.environ["S4S_BUILDDIR"] = os.path.join(TOP, "build-test")
sys.path.insert(0, os.path.join(TOP, "t", "lib"))
import s4s  # noqa: E402

CLASSES = ["klasse-5a", "klasse-5b", "klasse-5c", "klasse-5d"]
TEACHER_GROUP = "lehrer"


def sha(data):
    return hashlib.sha256(data).hexdigest()


def asan_build():
    """RSS says nothing about leaks under AddressSanitizer (freed memory is quarantined)."""
    with open(s4s.S4S_FCGI, "rb") as f:
        return b"__asan_init" in f.read()


def percentile(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


class Stats:
    """Requests by kind: statuses and latencies, shared by the client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.kinds = {}

    def add(self, kind, status, secs):
        with self.lock:
            k = self.kinds.setdefault(kind, {"statuses": {}, "ms": []})
            k["statuses"][status] = k["statuses"].get(status, 0) + 1
            k["ms"].append(secs * 1000.0)

    def count(self, pred):
        with self.lock:
            return sum(n for k in self.kinds.values() for st, n in k["statuses"].items() if pred(st))


class Student:
    """One student's work, shared by the student's devices (sessions)."""

    def __init__(self, name, klass, two_devices):
        self.name = name
        self.klass = klass
        self.two_devices = two_devices
        self.lock = threading.Lock()
        self.user_id = None
        self.group_id = None
        self.project = None        # id of the project both devices save
        self.created = threading.Event()
        self.best = (0, None)      # (version, sha256) of the content 200 with the highest version
        self.content_versions = {}  # version -> sha256 of every acknowledged content write
        self.shared = False
        self.conflicts = {}        # session token -> {"copy": id, "shas": [...], "last": sha}
        self.assets = {}           # md5 -> sha256 of acknowledged asset uploads
        self.backpack = {}         # item id -> body md5


class Device:
    """A logged-in browser: one session of a student or a teacher."""

    def __init__(self, soak, kind, owner, index, rng):
        self.soak = soak
        self.kind = kind            # "student" or "teacher"
        self.owner = owner          # a Student, or the teacher's name
        self.index = index          # 0: the student's first device, 1: the second
        self.rng = rng
        self.token = None
        self.opened = False         # the second device has loaded the project
        self.n = 0

    # -- HTTP
    def call(self, kind, method, path, body=None, headers=None):
        h = dict(headers or {})
        if self.token:
            h["X-Session-ID"] = self.token
        t0 = time.perf_counter()
        try:
            r = s4s.request(self.soak.stack.port, method, path, body=body, headers=h, timeout=120)
            status = r.status
        except Exception as e:  # counted as a failure of its own kind
            r, status = None, type(e).__name__
        self.soak.stats.add(kind, status, time.perf_counter() - t0)
        if r is not None and r.status >= 500:
            self.soak.problem("%s %s %s: %d %r" % (kind, method, path, r.status, r.body[:200]))
        return r

    def expect(self, r, kind, statuses=(200,)):
        if r is None or r.status not in statuses:
            self.soak.problem("%s: unexpected answer %r" % (kind, r))
            return False
        return True

    # -- content
    def sb3(self):
        """A real .sb3: project.json plus a stored (incompressible) sound of 100-500 KB."""
        self.n += 1
        sound = self.rng.randbytes(self.rng.randrange(100 * 1024, 500 * 1024))
        pj = json.dumps({"targets": [{"isStage": True, "name": "Stage", "sounds": [
            {"assetId": hashlib.md5(sound).hexdigest(), "dataFormat": "wav"}]}],
            "meta": {"semver": "3.0.0", "agent": "soak %s/%d/%d" % (self.owner.name, self.index, self.n)}})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(zipfile.ZipInfo("project.json", (2020, 1, 1, 0, 0, 0)), pj, zipfile.ZIP_DEFLATED)
            z.writestr(zipfile.ZipInfo(hashlib.md5(sound).hexdigest() + ".wav", (2020, 1, 1, 0, 0, 0)), sound)
        return buf.getvalue()

    def png(self):
        return s4s.sample_png(self.rng.randrange(2, 24), self.rng.randrange(2, 24), seed=self.rng.randrange(1 << 30))

    # -- actions; each returns the seconds until this device acts again
    def login(self):
        name = self.owner.name if self.kind == "student" else self.owner
        t0 = time.perf_counter()
        try:
            loc = self.soak.stack.login_flow(name)
            status = 200 if "session_id=" in loc else "login-error"
        except Exception as e:
            loc, status = "", type(e).__name__
        self.soak.stats.add("login", status, time.perf_counter() - t0)
        if status != 200:
            self.soak.problem("login of %s failed: %s %s" % (name, status, loc))
            return 1.0
        self.token = loc.split("session_id=")[1].split("&")[0]
        if self.kind == "student" and self.index == 0:
            r = self.call("groups", "GET", "/backend/api/groups")
            if self.expect(r, "groups"):
                gs = r.json()["groups"]
                with self.owner.lock:
                    self.owner.group_id = gs[0]["id"] if gs else None
            r = self.call("user", "GET", "/backend/api/user")
            if self.expect(r, "user"):
                self.owner.user_id = r.json()["user"]["user_id"]
        return self.rng.uniform(0.5, 2.0)

    def create(self):
        data = self.sb3()
        body, ctype = s4s.project_form(data, self.png())
        r = self.call("create", "POST", "/backend/api/projects?title=" + self.owner.name, body,
                      {"Content-Type": ctype})
        if self.expect(r, "create"):
            j = r.json()
            with self.owner.lock:
                self.owner.project = j["id"]
                self.ack_content(j["version"], sha(data))
            self.owner.created.set()

    def ack_content(self, version, digest):
        st = self.owner
        st.content_versions[version] = digest
        if version > st.best[0]:
            st.best = (version, digest)

    def autosave(self):
        """PUT without a version, as the unmodified frontend saves."""
        st = self.owner
        data = self.sb3()
        body, ctype = s4s.project_form(data)
        r = self.call("autosave", "PUT", "/backend/api/projects/%d" % st.project, body, {"Content-Type": ctype})
        if r is None:
            return
        if r.status == 200:
            with st.lock:
                self.ack_content(r.json()["version"], sha(data))
        elif r.status == 409:
            j = r.json() or {}
            self.soak.stats.add("autosave-409", 409, 0)
            if not st.two_devices:
                self.soak.problem("409 for %s, who works on one device: %r" % (st.name, j))
            with st.lock:
                c = st.conflicts.setdefault(self.token, {"copy": j.get("conflict_copy_id"), "shas": []})
                if c["copy"] != j.get("conflict_copy_id"):
                    self.soak.problem("%s: a second conflict copy for one session: %r" % (st.name, j))
                c["shas"].append(sha(data))
                c["last"] = sha(data)
            if self.rng.random() < 0.4:  # the student reloads the project and carries on from there
                self.open_project()
        else:
            self.expect(r, "autosave")

    def open_project(self):
        r = self.call("open", "GET", "/backend/api/projects/%d/download" % self.owner.project)
        if self.expect(r, "open"):
            self.opened = True

    def share(self):
        st = self.owner
        if st.group_id is None:
            return
        r = self.call("share", "POST", "/backend/api/projects/%d/share" % st.project,
                      json.dumps({"group_ids": [st.group_id]}).encode(), {"Content-Type": "application/json"})
        if r is not None and r.status == 409:  # the other device saved first: fine, try later
            self.soak.stats.add("share-409", 409, 0)
            return
        if self.expect(r, "share"):
            st.shared = True

    def asset(self):
        data = self.png()
        body, ctype = s4s.multipart({"type": "costume", "format": "png"}, {"asset": ("c.png", data, "image/png")})
        r = self.call("asset-upload", "POST", "/backend/api/assets/", body, {"Content-Type": ctype})
        if self.expect(r, "asset-upload"):
            with self.owner.lock:
                self.owner.assets[r.json()["assetId"]] = sha(data)

    def backpack(self):
        import base64
        data = self.png()
        item = {"type": "costume", "mime": "image/png", "name": "Kostüm %d" % self.n,
                "body": base64.b64encode(data).decode(),
                "thumbnail": "data:image/jpeg;base64," + base64.b64encode(s4s.SAMPLE_JPEG).decode()}
        r = self.call("backpack-add", "POST", "/backend/api/backpack", json.dumps(item).encode(),
                      {"Content-Type": "application/json"})
        if self.expect(r, "backpack-add"):
            j = r.json()
            with self.owner.lock:
                self.owner.backpack[j["id"]] = s4s.md5(data)
                self.owner.assets[s4s.md5(data)] = sha(data)
                self.owner.assets[s4s.md5(s4s.SAMPLE_JPEG)] = sha(s4s.SAMPLE_JPEG)

    def browse(self):
        kind, path = self.rng.choice([("backpack-list", "/backend/api/backpack?limit=20"),
                                      ("shared-list", "/backend/api/projects/shared"),
                                      ("my-projects", "/backend/api/projects")])
        self.expect(self.call(kind, "GET", path), kind)

    def teacher(self):
        r = self.call("teacher-students", "GET", "/backend/api/teacher/students")
        if not self.expect(r, "teacher-students"):
            return
        students = [x for x in r.json()["students"] if x["project_count"] > 0]
        if not students:
            return
        who = self.rng.choice(students)
        r = self.call("teacher-projects", "GET", "/backend/api/teacher/students/%s/projects" % who["id"])
        if not self.expect(r, "teacher-projects"):
            return
        projects = r.json()["projects"]
        if projects:
            p = self.rng.choice(projects)
            r = self.call("teacher-download", "GET", "/backend/api/projects/%d/download" % p["id"])
            if self.expect(r, "teacher-download") and not r.body.startswith(b"PK\x03\x04"):
                self.soak.problem("teacher download of %d is not a zip" % p["id"])

    def step(self):
        """Do the next thing this device would do; return seconds until the next one."""
        if self.token is None:
            return self.login()
        if self.kind == "teacher":
            self.teacher()
            return self.rng.uniform(2.0, 5.0)
        st = self.owner
        if self.index == 0 and st.project is None:
            self.create()
            return self.rng.uniform(*self.soak.autosave_every)
        if self.index == 1 and not self.opened:
            if st.created.is_set():
                self.open_project()
            return self.rng.uniform(0.5, 2.0)
        x = self.rng.random()
        if x < 0.70:
            self.autosave()
        elif x < 0.78 and self.index == 0 and not st.shared:
            self.share()
        elif x < 0.85:
            self.asset()
        elif x < 0.90:
            self.backpack()
        else:
            self.browse()
        return self.rng.uniform(*self.soak.autosave_every) * (1.0 if x < 0.70 else 0.4)


class Soak:
    def __init__(self, stack, students=100, teachers=5, two_device_share=0.1, threads=12,
                 autosave_every=(3.0, 8.0), seed=1):
        self.stack = stack
        self.stats = Stats()
        self.rng = random.Random(seed)
        self.threads = threads
        self.autosave_every = autosave_every
        self.problems = []
        self.plock = threading.Lock()
        self.students = []
        for i in range(students):
            self.students.append(Student("schueler%03d" % i, CLASSES[i % len(CLASSES)],
                                         self.rng.random() < two_device_share))
        self.teachers = ["lehrkraft%d" % i for i in range(teachers)]
        users = {}
        for st in self.students:
            users[st.name] = {"uuid": "u-" + st.name, "preferred_username": st.name,
                              "email": st.name + "@schule.example",
                              "groups": {"1": {"act": st.klass, "name": st.klass.replace("-", " ").title()}}}
        for name in self.teachers:
            groups = {str(i + 1): {"act": c, "name": c} for i, c in enumerate(CLASSES)}
            groups["9"] = {"act": TEACHER_GROUP, "name": "Lehrer"}
            users[name] = {"uuid": "u-" + name, "preferred_username": name, "email": name + "@schule.example",
                           "groups": groups}
        stack.idp_control(users=users)
        self.devices = []
        for st in self.students:
            for d in range(2 if st.two_devices else 1):
                self.devices.append(Device(self, "student", st, d, random.Random(self.rng.random())))
        for name in self.teachers:
            self.devices.append(Device(self, "teacher", name, 0, random.Random(self.rng.random())))

    def problem(self, msg):
        with self.plock:
            if len(self.problems) < 200:
                self.problems.append(msg)

    def rss(self):
        st = self.stack.status() or {"workers": []}
        return {w["pid"]: w["rss_kb"] for w in st["workers"]}

    def run(self, seconds, warmup=None):
        """Drive every device until seconds have passed; sample RSS after warm-up and at the end."""
        start = time.time()
        until = start + seconds
        warmup = warmup if warmup is not None else min(30.0, seconds * 0.3)
        heap = [(start + self.rng.uniform(0, min(5.0, seconds / 4)), i, d) for i, d in enumerate(self.devices)]
        heapq.heapify(heap)
        cv = threading.Condition()
        self.rss_start = None

        def worker():
            while True:
                with cv:
                    while True:
                        now = time.time()
                        if now >= until:
                            return
                        if heap and heap[0][0] <= now:
                            due, i, d = heapq.heappop(heap)
                            break
                        cv.wait(timeout=min(0.2, max(0.0, (heap[0][0] - now) if heap else 0.2)))
                try:
                    nxt = d.step()
                except Exception as e:
                    self.problem("client error: %r" % e)
                    nxt = 1.0
                with cv:
                    heapq.heappush(heap, (time.time() + nxt, i, d))
                    cv.notify()

        def sampler():
            time.sleep(warmup)
            if time.time() < until:
                self.rss_start = self.rss()

        ths = [threading.Thread(target=worker) for _ in range(self.threads)]
        ths.append(threading.Thread(target=sampler))
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        self.elapsed = time.time() - start
        self.rss_end = self.rss()

    # -- the audit
    def audit(self):
        """[(ok, name, detail)] — every check the soak makes."""
        s = self.stack
        checks = []

        def check(ok, name, detail=""):
            checks.append((bool(ok), name, detail))

        five = self.stats.count(lambda st: isinstance(st, int) and st >= 500)
        other = self.stats.count(lambda st: not isinstance(st, int))
        check(five == 0, "no 5xx answers (%d)" % five)
        check(other == 0, "no failed connections or logins (%d)" % other)
        check(not self.problems, "no unexpected answers (%d)" % len(self.problems), "\n".join(self.problems[:20]))

        lost, copies_bad, n_proj, n_copy_checks = [], [], 0, 0
        for st in self.students:
            if st.project is None:
                continue
            n_proj += 1
            stored = s4s.stored_sb3(s, st.project)
            if stored is None or sha(stored) != st.best[1]:
                lost.append("%s project %d: stored %s, last acknowledged v%d %s" % (
                    st.name, st.project, stored and sha(stored)[:12], st.best[0], (st.best[1] or "")[:12]))
            for tok, c in st.conflicts.items():
                n_copy_checks += len(c["shas"])
                kept = {r[0] for r in s4s.db_rows(s, "SELECT sha256 FROM project_versions WHERE project_id = ?",
                                                  (c["copy"],))}
                missing = [x for x in c["shas"] if x not in kept]
                cur = s4s.stored_sb3(s, c["copy"]) if c["copy"] else None
                if missing or cur is None or sha(cur) != c["last"]:
                    copies_bad.append("%s copy %s: %d of %d 409'd saves missing, current %s" % (
                        st.name, c["copy"], len(missing), len(c["shas"]), cur and sha(cur)[:12]))
        check(n_proj == len(self.students), "every student has a project (%d)" % n_proj)
        check(not lost, "every project holds the bytes of its highest-version 200", "\n".join(lost[:20]))
        check(not copies_bad, "every 409'd save (%d) is a version of its session's conflict copy" % n_copy_checks,
              "\n".join(copies_bad[:20]))

        seen_409 = sum(len(c["shas"]) for st in self.students for c in st.conflicts.values())
        text = s.get("/backend/metrics").body.decode()
        m = re.search(r"^s4s_version_conflicts_total (\d+)", text, re.M)
        metric_409 = int(m.group(1)) if m else None
        share_409 = self.kind_count("share-409")
        check(metric_409 == seen_409 + share_409,
              "s4s_version_conflicts_total (%r) equals the 409s clients saw (%d autosave + %d share)" % (
                  metric_409, seen_409, share_409))
        n_copies = s4s.db_value(s, "SELECT COUNT(*) FROM projects WHERE name LIKE '%(conflict copy)'")
        sessions_409 = sum(len(st.conflicts) for st in self.students)
        check(n_copies == sessions_409, "one conflict copy per session that saw a 409 (%r copies, %d sessions)" % (
            n_copies, sessions_409))
        self.n_copies = n_copies
        self.seen_409 = seen_409 + share_409

        bad_assets = []
        want_md5 = {}
        for st in self.students:
            want_md5.update(st.assets)
        for m5, digest in want_md5.items():
            row = s4s.db_rows(s, "SELECT sha256 FROM assets WHERE asset_id = ?", (m5,))
            if not row or row[0][0] != digest:
                bad_assets.append(m5)
        check(not bad_assets, "every acknowledged asset (%d) is stored with its bytes" % len(want_md5),
              " ".join(bad_assets[:10]))
        items = {r[0] for r in s4s.db_rows(s, "SELECT id FROM backpack_items")}
        want_items = {i for st in self.students for i in st.backpack}
        check(want_items <= items, "every acknowledged backpack item (%d) is stored" % len(want_items))

        nusers = len(self.students) + len(self.teachers)
        counts = s4s.db_rows(s, "SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(DISTINCT id) FROM users), "
                                "(SELECT COUNT(*) FROM groups), (SELECT COUNT(DISTINCT external_id) FROM groups), "
                                "(SELECT COUNT(*) FROM user_groups), "
                                "(SELECT COUNT(*) FROM assets), (SELECT COUNT(DISTINCT md5) FROM assets)")[0]
        check(counts[0] == counts[1] == nusers, "users: %d rows for %d people, no duplicate" % (counts[0], nusers))
        check(counts[2] == counts[3] == len(CLASSES) + 1, "groups: %d rows, no duplicate" % counts[2])
        want_members = len(self.students) + len(self.teachers) * (len(CLASSES) + 1)
        check(counts[4] == want_members, "memberships: %d rows, %d expected" % (counts[4], want_members))
        check(counts[5] == counts[6] == len(want_md5), "assets: %d rows, %d distinct MD5s, %d uploaded" % (
            counts[5], counts[6], len(want_md5)))

        rc, out, err = s4s.admin(s, "check", timeout=600)
        check(rc == 0, "s4s-admin check is clean", out + err)
        self.check_out = out

        growth = {pid: self.rss_end[pid] - kb for pid, kb in (self.rss_start or {}).items() if pid in self.rss_end}
        self.growth = growth
        check(self.rss_start and len(growth) == len(self.rss_end),
              "the same workers at warm-up and at the end (no restarts): %s → %s" % (
                  sorted(self.rss_start or {}), sorted(self.rss_end)))
        if asan_build():
            check(True, "worker RSS flat after warm-up # SKIP ASan's allocator holds freed memory back")
        else:
            check(growth and max(growth.values()) < 2048,
                  "worker RSS flat after warm-up: growth %s KB (< 2048)" % sorted(growth.values()))
        return checks

    def kind_count(self, kind):
        k = self.stats.kinds.get(kind)
        return sum(k["statuses"].values()) if k else 0

    def table(self):
        lines = []
        total = 0
        lines.append("%-18s %8s %9s %9s %9s  %s" % ("request", "count", "p50 ms", "p99 ms", "max ms", "statuses"))
        for kind in sorted(self.stats.kinds):
            k = self.stats.kinds[kind]
            n = sum(k["statuses"].values())
            if kind.endswith("-409"):
                lines.append("%-18s %8d %9s %9s %9s  (also counted above)" % (kind, n, "", "", ""))
                continue
            total += n
            sts = " ".join("%s:%d" % (st, c) for st, c in sorted(k["statuses"].items(), key=lambda x: str(x[0])))
            lines.append("%-18s %8d %9.1f %9.1f %9.1f  %s" % (kind, n, percentile(k["ms"], 50), percentile(k["ms"], 99),
                                                             max(k["ms"]), sts))
        lines.append("%-18s %8d   (%.1f requests/s over %.0f s)" % ("total", total, total / self.elapsed, self.elapsed))
        two = sum(1 for st in self.students if st.two_devices)
        lines.append("students %d (%d on two devices), teachers %d, client threads %d" % (
            len(self.students), two, len(self.teachers), self.threads))
        lines.append("409s seen by clients %d, conflict copies %s" % (self.seen_409, self.n_copies))
        for pid in sorted(self.rss_end):
            a = (self.rss_start or {}).get(pid)
            lines.append("worker %-7d RSS %s KB after warm-up → %d KB at the end (%s)" % (
                pid, a if a is not None else "?", self.rss_end[pid],
                "%+d KB" % (self.rss_end[pid] - a) if a is not None else "new"))
        return "\n".join(lines)


def stack_config(workers):
    # No recycling during the soak, so RSS is compared on the same processes;
    # every conflict-copy version kept, so every 409'd save can be found.
    return {"MAX_REQUESTS": "0", "VERSION_RETENTION": "100000", "WORKERS": str(workers)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--students", type=int, default=100)
    ap.add_argument("--teachers", type=int, default=5)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=12, help="client threads (requests in flight at most)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    stack = s4s.Stack(workers=args.workers, config=stack_config(args.workers))
    with stack:
        soak = Soak(stack, students=args.students, teachers=args.teachers, threads=args.threads, seed=args.seed)
        print("soak: %d students, %d teachers, %d workers, %.1f minutes ..." % (
            args.students, args.teachers, args.workers, args.minutes), flush=True)
        soak.run(args.minutes * 60)
        checks = soak.audit()
        print(soak.table())
        print()
        failed = 0
        for ok, name, detail in checks:
            print(("ok      " if ok else "FAILED  ") + name)
            if not ok and detail:
                print("        " + detail.replace("\n", "\n        "))
            failed += not ok
        print()
        print(soak.check_out.strip())
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
