#!/usr/bin/env python3
# Sessions through real nginx: the token lookup order (query, X-Session-ID,
# Bearer; first found wins), missing / unknown / expired answers, expiry from
# the provider's expires_in, renewal with the refresh token (alone and by 8
# requests at once: one claims the renewal, one refresh at the provider,
# all served; also while the database's write lock is held 1.5 s), a refused
# refresh (401 at once, the expiry put back), a hanging provider (the other
# requests of that session are served meanwhile), logout, last_accessed touched at most
# once a minute, and a database dump holding no usable token.
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (Stack, Tap, db_dump_text, db_rows, db_value, lock_database, parallel, request,  # noqa: E402
                 sha256)

t = Tap()
SESSION_TTL = 7200


def ts_epoch(db_ts):
    """A database timestamp ('YYYY-MM-DD HH:MM:SS.ffffff', UTC) as epoch seconds."""
    from datetime import datetime, timezone
    return datetime.strptime(db_ts, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()


def iso_epoch(iso):
    from datetime import datetime
    return datetime.fromisoformat(iso).timestamp()


def row(s, token, cols):
    return db_rows(s, "SELECT %s FROM oauth_sessions WHERE id = ?" % cols, (sha256(token.encode()),))[0]


def expire(s, token):
    """Move the session's expiry into the past (as if its access token ran out)."""
    db_rows(s, "UPDATE oauth_sessions SET expires_at = '2020-01-01 00:00:00.000000' WHERE id = ?",
            (sha256(token.encode()),))


def idp_stats(s):
    return request(s.idp_port, "GET", "/_control").json()["stats"]


def err(r):
    return (r.status, r.json())


with Stack(workers=4, config={"SESSION_TTL": str(SESSION_TTL)}) as s:
    anna = s.login("anna")
    ben = s.login("ben")
    U = "/backend/api/user"

    # ---- lookup order: query session_id, X-Session-ID, Authorization: Bearer
    def who(path, headers=None):
        r = s.get(path, headers=headers or {})
        return r.status, (r.json() or {}).get("user", {}).get("user_id") or (r.json() or {}).get("error")

    t.eq(who(U + "?session_id=" + anna), (200, "u-anna-0001"), "query session_id alone")
    t.eq(who(U, {"X-Session-ID": anna}), (200, "u-anna-0001"), "X-Session-ID alone")
    t.eq(who(U, {"Authorization": "Bearer " + anna}), (200, "u-anna-0001"), "Bearer alone")
    t.eq(who(U + "?session_id=" + anna, {"X-Session-ID": "garbage", "Authorization": "Bearer garbage"}),
         (200, "u-anna-0001"), "valid query + garbage headers: the query wins")
    t.eq(who(U + "?session_id=garbage", {"X-Session-ID": anna}), (401, "Invalid session"),
         "garbage query + valid X-Session-ID: the query wins → Invalid session")
    t.eq(who(U, {"X-Session-ID": ben, "Authorization": "Bearer " + anna}), (200, "u-ben-0002"),
         "X-Session-ID before Bearer")
    t.eq(who(U, {"X-Session-ID": "garbage", "Authorization": "Bearer " + anna}), (401, "Invalid session"),
         "garbage X-Session-ID + valid Bearer → Invalid session")
    t.eq(who(U + "?session_id=", {"X-Session-ID": anna}), (200, "u-anna-0001"),
         "an empty session_id counts as absent")
    t.eq(who(U + "?session_id=" + urllib.parse.quote(anna) + "&x=1"), (200, "u-anna-0001"),
         "URL-encoded query token, other parameters ignored")
    t.eq(who(U, {"Authorization": "Basic " + anna}), (401, "Authentication required"),
         "Authorization other than Bearer is no token")
    t.eq(who(U, {"Authorization": "Bearer "}), (401, "Authentication required"), "an empty Bearer is no token")

    t.eq(err(s.get(U)), (401, {"error": "Authentication required"}), "no token → 401 Authentication required")
    t.eq(err(s.get(U, headers=s.auth("x" * 43))), (401, {"error": "Invalid session"}),
         "unknown token → 401 Invalid session")
    t.eq(err(s.get(U, headers=s.auth("x" * 5000))), (401, {"error": "Invalid session"}),
         "a very long token → 401 Invalid session")
    t.eq(err(s.get("/backend/session")), (400, {"error": "No session ID provided"}),
         "/session without a token → 400")
    t.eq(err(s.get("/backend/session", headers=s.auth("nope"))), (401, {"error": "Invalid session"}),
         "/session with an unknown token → 401")
    r = s.get("/backend/session?session_id=" + anna)
    j = r.json() or {}
    t.eq((r.status, j.get("session", {}).get("id"), j.get("authenticated")), (200, anna, True),
         "/session: session.id is the presented token")
    t.eq(sorted(j.get("user", {})), ["avatar_url", "email", "groups", "id", "role", "username"], "/session user keys")

    # ---- expiry from the provider's expires_in, without a refresh token
    s.idp_control(token_ttl=1)
    t0 = time.time()
    short = s.login("clara")
    s.idp_control(token_ttl=3600)
    exp, created = row(s, short, "expires_at, created_at")
    t.ok(abs(ts_epoch(exp) - ts_epoch(created) - 1) < 0.5, "a new session expires with the provider's token",
         (exp, created))
    t.eq(s.get(U, headers=s.auth(short)).status, 200, "valid before the provider's expiry")
    db_rows(s, "UPDATE oauth_sessions SET refresh_token = NULL WHERE id = ?", (sha256(short.encode()),))
    while time.time() < ts_epoch(exp) + 0.05:  # wait for the stored expiry, not a guess
        time.sleep(0.05)
    want = (401, {"error": "Session expired", "renewal_required": True})
    t.eq(err(s.get(U, headers=s.auth(short))), want, "expired, no refresh token → 401 renewal_required")
    t.eq(err(s.get("/backend/session", headers=s.auth(short))), want, "/session too")
    t.diag("session expiry observed %.2f s after login" % (time.time() - t0))

    # ---- renewal with the refresh token
    s.idp_control(reset_stats=True)
    tok = s.login("ben")
    acc0, ref0 = row(s, tok, "access_token, refresh_token")
    expire(s, tok)
    t0 = time.time()
    r = s.get("/backend/session", headers=s.auth(tok))
    renew_ms = (time.time() - t0) * 1000
    j = r.json() or {}
    t.eq((r.status, j.get("session", {}).get("id")), (200, tok), "expired with a refresh token → renewed (200)")
    new_exp = iso_epoch(j.get("session", {}).get("expires_at", "1970-01-01T00:00:00+00:00"))
    t.ok(abs(new_exp - (time.time() + SESSION_TTL)) < 10, "renewed to now + SESSION_TTL", j.get("session"))
    t.eq(idp_stats(s)["refresh"], 1, "one refresh at the provider")
    acc1, ref1 = row(s, tok, "access_token, refresh_token")
    t.ok(acc1 != acc0 and ref1 != ref0, "new access and refresh tokens stored")
    t.eq(s.get(U, headers=s.auth(tok)).status, 200, "the renewed session keeps working")
    t.eq(idp_stats(s)["refresh"], 1, "no further refresh while valid")
    t.diag("renewal at the provider: %.1f ms" % renew_ms)

    # ---- 8 requests at once on one expired session, 5 rounds: one request
    # claims the renewal; the others find the session valid
    s.idp_control(reset_stats=True)
    failed, per_round = [], []
    for rnd in range(5):
        expire(s, tok)
        before = idp_stats(s)["refresh"]
        res = parallel(8, lambda i: s.get(U, headers=s.auth(tok)))
        failed += ["round %d: %r" % (rnd, r) for r in res if isinstance(r, Exception) or r.status != 200]
        per_round.append(idp_stats(s)["refresh"] - before)
    t.ok(not failed, "8 simultaneous requests on an expired session, 5 times: all 200", "\n".join(failed))
    t.eq(per_round, [1] * 5, "one refresh at the provider per round (one claims it, the others are served)")
    n_refresh = idp_stats(s)["refresh"]
    t.eq(s.get(U, headers=s.auth(tok)).status, 200, "the session works afterwards")
    # The stored refresh token is the newest one: the provider rotates them
    # (each is single-use), so another expiry is renewed only if it is.
    expire(s, tok)
    t.eq(s.get(U, headers=s.auth(tok)).status, 200, "a later expiry is renewed again (the newest token was kept)")
    t.eq(idp_stats(s)["refresh"], n_refresh + 1, "with one more refresh")
    t.diag("8 parallel requests on an expired session: refresh calls at the provider per round %s" % per_round)

    # ---- the same while another process holds the database's write lock
    # for 1.5 s: the claims wait for it (DB_BUSY_TIMEOUT), then one renews.
    expire(s, tok)
    release = lock_database(s)
    res = []
    th = threading.Thread(target=lambda: res.extend(parallel(4, lambda i: s.get(U, headers=s.auth(tok)))))
    t0 = time.time()
    th.start()
    time.sleep(1.5)
    release()
    th.join()
    took = time.time() - t0
    t.ok(len(res) == 4 and all(not isinstance(r, Exception) and r.status == 200 for r in res),
         "4 requests at once on an expired session while the write lock is held 1.5 s: all 200 (%.1f s)" % took,
         "\n".join(repr(r) for r in res))

    # ---- the refresh fails
    expire(s, tok)
    s.idp_control(mode="error500")
    try:
        t0 = time.time()
        r = s.get(U, headers=s.auth(tok))
        refused_s = time.time() - t0
        r2 = s.get("/backend/session", headers=s.auth(tok))
        expiry_after = row(s, tok, "expires_at")[0]
    finally:
        s.idp_control(mode="normal")
    t.eq(err(r), want, "refresh refused by the provider → 401 renewal_required")
    t.ok(refused_s < 2, "… at once (%.2f s)" % refused_s)
    t.eq(err(r2), want, "/session too")
    t.eq(expiry_after, "2020-01-01 00:00:00.000000", "the claim's expiry was put back")
    t.ok("exploded" not in r.body.decode() + r2.body.decode(), "the provider's error body is not shown")
    t.eq(s.get(U, headers=s.auth(tok)).status, 200, "once the provider is back the session renews")

    # ---- the provider hangs during a renewal: the claimer waits for it (up to
    # the call timeout, then 401); the session's other requests are served.
    expire(s, tok)
    s.idp_control(mode="hang")
    hung = []
    th = threading.Thread(target=lambda: hung.append(s.get(U, headers=s.auth(tok), timeout=30)))
    try:
        th.start()
        deadline = time.time() + 5
        while row(s, tok, "expires_at")[0].startswith("2020") and time.time() < deadline:
            time.sleep(0.02)  # until the renewal is claimed
        t0 = time.time()
        others = [s.get(U, headers=s.auth(tok)) for _ in range(3)]
        others_s = time.time() - t0
        th.join()
    finally:
        s.idp_control(mode="normal")
    t.ok([r.status for r in others] == [200] * 3 and others_s < 2,
         "while the provider hangs, the session's other requests are served (%.2f s)" % others_s, others)
    t.eq(err(hung[0]) if hung else None, want, "the claimer's request ends in 401 after the call timeout")
    t.eq(row(s, tok, "expires_at")[0], "2020-01-01 00:00:00.000000", "and the expiry is put back")
    t.eq(s.get(U, headers=s.auth(tok)).status, 200, "the provider back: renewed")

    # ---- logout
    before = db_value(s, "SELECT COUNT(*) FROM oauth_sessions")
    r = s.req("POST", "/backend/logout", headers=s.auth(tok))
    t.eq((r.status, r.json()), (200, {"success": True, "message": "Successfully logged out"}), "POST /logout")
    t.eq(db_value(s, "SELECT COUNT(*) FROM oauth_sessions"), before - 1, "the session row is gone")
    t.eq(err(s.get(U, headers=s.auth(tok))), (401, {"error": "Invalid session"}), "a logged-out token → 401")
    t.eq(err(s.get("/backend/session", headers=s.auth(tok))), (401, {"error": "Invalid session"}),
         "/session with a logged-out token → 401")
    r = s.get("/backend/logout?session_id=" + ben)
    t.eq((r.status, r.json()), (200, {"success": True, "message": "Successfully logged out"}), "GET /logout")
    t.eq(s.get(U, headers=s.auth(ben)).status, 401, "GET /logout ended that session")
    t.eq(s.get(U, headers=s.auth(anna)).status, 200, "other sessions are untouched")
    for m in ("GET", "POST"):
        r = s.req(m, "/backend/logout")
        t.eq((r.status, r.json()), (400, {"success": False, "message": "No session ID provided"}),
             "%s /logout without a token → 400 in the Flask shape" % m)

    # ---- last_accessed: touched at most once a minute
    la0 = row(s, anna, "last_accessed")[0]
    s.get(U, headers=s.auth(anna))
    s.get(U, headers=s.auth(anna))
    t.eq(row(s, anna, "last_accessed")[0], la0, "two requests in a row leave last_accessed unchanged")
    old = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime(time.time() - 120))
    db_rows(s, "UPDATE oauth_sessions SET last_accessed = ? WHERE id = ?", (old, sha256(anna.encode())))
    s.get(U, headers=s.auth(anna))
    la1 = row(s, anna, "last_accessed")[0]
    t.ok(abs(ts_epoch(la1) - time.time()) < 5, "2 minutes old: one request moves it to now", (old, la1))

    # ---- a dump of the database holds no usable token
    dump = db_dump_text(s)  # SQLite: iterdump of main.db; PostgreSQL: pg_dump's data
    tokens = [anna, short]
    t.ok(not any(x in dump for x in tokens), "no session token in the dump")
    t.ok(all(sha256(x.encode()) in dump for x in tokens), "only their SHA-256 (hex) is stored")
    stored = db_rows(s, "SELECT access_token, refresh_token FROM oauth_sessions")
    t.ok(stored and all(a.startswith("s4s1:") and (rf is None or rf.startswith("s4s1:")) for a, rf in stored),
         "provider tokens are stored sealed (s4s1:…)", stored[:2])
    t.ok(any(rf for _, rf in stored), "a sealed refresh token is among them")
    t.eq(len({a for a, _ in stored}), len(stored), "sealing is randomised (no two equal ciphertexts)")

t.done()
