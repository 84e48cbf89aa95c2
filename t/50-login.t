#!/usr/bin/env python3
# Login through the stand-in identity provider, through real nginx: the
# round trip (authorize URL, state cookie, PKCE checked by the provider,
# session), every failure path (state, cookie, provider down / 500 / garbage /
# no user id / hanging / PKCE mismatch / error parameter / replayed code) →
# 302 to FRONTEND_URL?error=… with nothing created and no provider text
# leaked; Secure cookie and closed token port after a reload; simultaneous
# logins (no duplicates); the claims mapping fallbacks and role derivation.
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from s4s import (Stack, Tap, db_rows, db_value, free_port, login_begin, parallel,  # noqa: E402
                 redirect_query, reload_stack, request)

t = Tap()


def counts(s):
    return tuple(db_value(s, "SELECT COUNT(*) FROM " + tab)
                 for tab in ("users", "groups", "user_groups", "oauth_sessions"))


def cookie_attrs(set_cookie):
    parts = [p.strip() for p in set_cookie.split(";")]
    name, _, value = parts[0].partition("=")
    attrs = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.lower()] = v
    return name, value, attrs


def finish(s, path, cookie):
    return s.get(path, headers={"Cookie": cookie} if cookie else {})


with Stack(workers=2) as s:
    front = s.config["FRONTEND_URL"]

    # ---- the round trip
    s.idp_control(reset_stats=True)
    t0 = time.time()
    r = s.get("/backend/login")
    t.eq(r.status, 302, "/login redirects")
    loc = urllib.parse.urlsplit(r.header("Location"))
    q = dict(urllib.parse.parse_qsl(loc.query))
    t.eq("%s://%s%s" % (loc.scheme, loc.netloc, loc.path), s.config["OAUTH_AUTHORIZE_URL"],
         "to OAUTH_AUTHORIZE_URL")
    t.eq(sorted(q), sorted(["response_type", "client_id", "redirect_uri", "scope", "state",
                            "code_challenge", "code_challenge_method"]), "authorize URL parameters")
    t.eq((q.get("response_type"), q.get("client_id"), q.get("redirect_uri"), q.get("scope"),
          q.get("code_challenge_method")),
         ("code", s.config["OAUTH_CLIENT_ID"], s.config["OAUTH_REDIRECT_URI"],
          "openid profile uuid email groups", "S256"), "authorize URL values")
    t.ok(len(q.get("code_challenge", "")) == 43 and "=" not in q["code_challenge"],
         "code_challenge is base64url SHA-256 (43 chars)", q)
    t.ok(len(q.get("state", "")) >= 43, "state is long and random", q)
    name, value, attrs = cookie_attrs(r.header("Set-Cookie"))
    t.eq((name, value), ("oauth_state", q.get("state")), "oauth_state cookie holds the state")
    t.eq((attrs.get("max-age"), attrs.get("path"), "httponly" in attrs, attrs.get("samesite")),
         ("600", "/", True, "Lax"), "cookie: Max-Age=600, Path=/, HttpOnly, SameSite=Lax")
    t.ok("secure" not in attrs, "no Secure while FRONTEND_URL is http", attrs)
    r2 = s.get("/backend/login")
    t.ok(redirect_query(r2).get("state") != q.get("state"), "every /login gets a new state")

    path, cookie, _ = login_begin(s, "anna")
    t1 = time.time()
    r = finish(s, path, cookie)
    authorize_ms = (time.time() - t1) * 1000
    t.eq(r.status, 302, "/authorize redirects")
    t.ok(r.header("Location").startswith(front + "?session_id="), "to FRONTEND_URL?session_id=",
         r.header("Location"))
    token = redirect_query(r).get("session_id", "")
    t.ok(len(token) == 43 and all(c.isalnum() or c in "-_" for c in token), "token: 32 bytes base64url", token)
    name, value, attrs = cookie_attrs(r.header("Set-Cookie") or "")
    t.eq((name, value, attrs.get("max-age")), ("oauth_state", "", "0"), "the state cookie is cleared")
    st = request(s.idp_port, "GET", "/_control").json()["stats"]
    t.eq((st["token"], st["pkce_checked"], st["userinfo"]), (1, 1, 1),
         "the provider checked PKCE on the code exchange, userinfo called once")
    t.eq(counts(s), (1, 1, 1, 1), "one user, one group, one membership, one session")
    r = s.get("/backend/session", headers=s.auth(token))
    j = r.json() or {}
    t.eq((r.status, j.get("user", {}).get("id"), j.get("user", {}).get("role"), j.get("authenticated")),
         (200, "u-anna-0001", "student", True), "the new session works")
    login_ms = (time.time() - t0) * 1000
    t.diag("login round trip (4 requests + provider) %.1f ms; /authorize alone %.1f ms" % (login_ms, authorize_ms))

    # Replaying the same code: the provider refuses, nothing new.
    before = counts(s)
    r = finish(s, path, cookie)
    t.eq(redirect_query(r).get("error"), "The identity provider refused the login", "replayed code refused")
    t.eq(counts(s), before, "replayed code: nothing created")

    # ---- failures: each → FRONTEND_URL?error=<message>, nothing created
    def failing(label, msg, mode=None, user="ben", cookie_of=None, query_of=None, tamper=None,
                leak=("exploded", "Internal Server Error", "invalid_grant", "not json", "<html")):
        before = counts(s)
        path, cookie, _ = login_begin(s, user, tamper=tamper)
        if query_of:
            path = query_of(path)
        if cookie_of:
            cookie = cookie_of(cookie)
        if mode:
            s.idp_control(mode=mode)
        t0 = time.time()
        try:
            r = finish(s, path, cookie)
        finally:
            if mode:
                s.idp_control(mode="normal")
        took = time.time() - t0
        loc = r.header("Location") or ""
        t.eq(r.status, 302, label + ": 302")
        t.ok(loc.startswith(front + "?error="), label + ": to FRONTEND_URL?error=", loc)
        t.eq(redirect_query(r).get("error"), msg, label + ": message")
        t.ok(not any(x.lower() in urllib.parse.unquote_plus(loc).lower() for x in leak),
             label + ": nothing of the provider's answer in the redirect", loc)
        t.eq(counts(s), before, label + ": no user, group, membership or session created")
        return took

    failing("state mismatch", "Invalid login state; please try again",
            cookie_of=lambda c: "oauth_state=" + "A" * 43)
    failing("missing state cookie", "Invalid login state; please try again", cookie_of=lambda c: None)
    failing("empty state cookie", "Invalid login state; please try again", cookie_of=lambda c: "oauth_state=")
    failing("state missing from the query", "Invalid login state; please try again",
            query_of=lambda p: p.replace("state=", "x="))
    failing("no code", "No authorization code received", query_of=lambda p: p.replace("code=", "x="))
    failing("provider error parameter", "The identity provider did not authorize the login",
            query_of=lambda p: p + "&error=access_denied&error_description=exploded",
            leak=("access_denied", "exploded"))
    before_pkce = request(s.idp_port, "GET", "/_control").json()["stats"]["pkce_checked"]
    failing("PKCE challenge not matching the verifier", "The identity provider refused the login",
            tamper=lambda q: q.update(code_challenge=q["code_challenge"][::-1]), leak=("PKCE", "invalid_grant"))
    t.eq(request(s.idp_port, "GET", "/_control").json()["stats"]["pkce_checked"], before_pkce,
         "the provider did not accept a wrong verifier")
    failing("token endpoint down (connection closed)", "The identity provider could not be reached",
            mode="down_token")
    failing("provider 500 with an HTML body", "The identity provider refused the login", mode="error500")
    failing("provider answers garbage", "The identity provider gave an invalid answer", mode="garbage")
    failing("claims without a user id", "The identity provider did not say who you are (no user id)",
            mode="no_user_id", leak=("u-ben-0002", "Ben Meyer"))

    # A hanging provider: the login fails after the call timeout, and the
    # other worker keeps serving meanwhile.
    box = {}

    def hanging():
        box["took"] = failing("provider hangs", "The identity provider could not be reached", mode="hang")

    th = threading.Thread(target=hanging)
    th.start()
    deadline = time.time() + 3
    busy = None
    while time.time() < deadline and not busy:
        st = s.status()
        busy = [w for w in st["workers"] if w["state"] == "busy" and "/authorize" in (w.get("current") or "")]
        if not busy:
            time.sleep(0.05)
    t.ok(busy, "a worker is busy in /authorize while the provider hangs", s.status())
    t0 = time.time()
    r = s.get("/backend/api/status", timeout=3)
    other_ms = (time.time() - t0) * 1000
    t.ok(r.status == 200 and other_ms < 1000, "another request is served meanwhile (%.1f ms)" % other_ms)
    th.join()
    took = box.get("took", 99)
    t.ok(4.0 < took < 6.5, "a hanging provider fails the login in %.2f s (call timeout 5 s)" % took)
    r = s.get("/backend/api/status")
    t.eq(r.status, 200, "the worker is free again after the timeout")
    t.diag("hang: login failed after %.2f s; other request %.1f ms" % (took, other_ms))

    # ---- after a reload: https frontend (Secure cookie), token endpoint on a closed port
    s.config["FRONTEND_URL"] = "https://school.example/app/"
    s.config["OAUTH_TOKEN_URL"] = "http://127.0.0.1:%d/token" % free_port()
    reload_stack(s)
    r = s.get("/backend/login")
    name, value, attrs = cookie_attrs(r.header("Set-Cookie"))
    t.ok("secure" in attrs and attrs.get("samesite") == "Lax" and "httponly" in attrs,
         "Secure is added when FRONTEND_URL is https", r.header("Set-Cookie"))
    front = s.config["FRONTEND_URL"]
    failing("token endpoint on a closed port", "The identity provider could not be reached")

with Stack(workers=8) as s:
    # ---- 16 simultaneous first logins of one new user in two groups
    s.idp_control(users={"neu": {"uuid": "u-neu-1", "preferred_username": "neu", "email": "neu@x.example",
                                 "groups": {"1": {"act": "ag-robotik", "name": "AG Robotik"},
                                            "2": {"act": "ag-theater", "name": "AG Theater"}}}})
    legs = [login_begin(s, "neu")[:2] for _ in range(16)]
    t0 = time.time()
    res = parallel(16, lambda i: finish(s, *legs[i]))
    conc_ms = (time.time() - t0) * 1000
    ok = [r for r in res if not isinstance(r, Exception) and "session_id" in redirect_query(r)]
    t.ok(len(ok) == 16, "16 simultaneous first logins of one user all succeed",
         [r if isinstance(r, Exception) else r.header("Location") for r in res])
    t.eq(db_value(s, "SELECT COUNT(*) FROM users WHERE id = 'u-neu-1'"), 1, "exactly one user row")
    t.eq(db_value(s, "SELECT COUNT(*) FROM groups WHERE external_id IN ('ag-robotik', 'ag-theater')"), 2,
         "two group rows")
    t.eq(db_value(s, "SELECT COUNT(*) FROM user_groups WHERE user_id = 'u-neu-1'"), 2, "two memberships")
    t.eq(db_value(s, "SELECT COUNT(*) FROM oauth_sessions WHERE user_id = 'u-neu-1'"), 16, "16 sessions")
    t.eq(len({redirect_query(r)["session_id"] for r in ok}), 16, "16 different tokens")
    t.diag("16 simultaneous /authorize of one new user: %.0f ms" % conc_ms)

    # ---- 16 simultaneous logins of different users sharing groups
    users = {}
    for i in range(16):
        users["kind%d" % i] = {"uuid": "u-kind-%02d" % i, "preferred_username": "kind%d" % i,
                               "groups": {"1": {"act": "schule-alle", "name": "Alle"},
                                          "2": {"act": "team-%d" % (i % 4), "name": "Team %d" % (i % 4)}}}
    s.idp_control(users=users)
    legs = [login_begin(s, "kind%d" % i)[:2] for i in range(16)]
    res = parallel(16, lambda i: finish(s, *legs[i]))
    ok = [r for r in res if not isinstance(r, Exception) and "session_id" in redirect_query(r)]
    t.eq(len(ok), 16, "16 simultaneous logins of different users all succeed")
    t.eq(db_value(s, "SELECT COUNT(*) FROM users WHERE id LIKE 'u-kind-%'"), 16, "16 users")
    t.eq(db_rows(s, "SELECT external_id, COUNT(*) FROM groups WHERE external_id = 'schule-alle' "
                    "OR external_id LIKE 'team-%' GROUP BY external_id ORDER BY external_id"),
         [("schule-alle", 1), ("team-0", 1), ("team-1", 1), ("team-2", 1), ("team-3", 1)],
         "shared groups created once each")
    t.eq(db_value(s, "SELECT COUNT(*) FROM user_groups WHERE user_id LIKE 'u-kind-%'"), 32, "32 memberships")
    t.eq(db_value(s, "SELECT COUNT(*) FROM user_groups ug JOIN groups g ON g.id = ug.group_id "
                     "WHERE g.external_id = 'schule-alle'"), 16, "16 members of the shared group")

    # ---- claims mapping
    s.idp_control(users={
        "by-id": {"id": "id-only-1", "username": "by_username", "name": "Not This",
                  "email": "id@x.example", "picture": "https://img.example/p.png",
                  "groups": [{"act": "liste-1", "name": "Liste 1"}, {"act": "liste-2", "name": "Liste 2"},
                             {"act": "liste-1", "name": "Liste 1 again"}, {"name": "no act"}]},
        "by-sub": {"sub": "sub-only-1", "name": "Name Only"},
        "uuid-wins": {"uuid": "uuid-1", "id": "id-1", "sub": "sub-1", "preferred_username": "pref",
                      "username": "un", "name": "nm", "groups": {}},
        "numeric": {"id": 4711, "username": "num"},
        "both-roles": {"uuid": "u-both", "preferred_username": "both",
                       "groups": {"a": {"act": "lehrer", "name": "Lehrer"},
                                  "b": {"act": "admins", "name": "Admins"}}},
    })

    def whoami(user):
        tok = s.login(user)
        j = s.get("/backend/session", headers=s.auth(tok)).json() or {}
        u = j.get("user", {})
        return tok, u

    _, u = whoami("by-id")
    t.eq((u.get("id"), u.get("username"), u.get("email"), u.get("role"), u.get("avatar_url")),
         ("id-only-1", "by_username", "id@x.example", "student", "https://img.example/p.png"),
         "id from id, username from username, email, picture → avatar_url")
    t.eq(sorted((g["external_id"], g["name"]) for g in u.get("groups", [])),
         [("liste-1", "Liste 1"), ("liste-2", "Liste 2")],
         "groups as a list; duplicates and entries without act dropped")
    t.eq(sorted(u.get("groups", [{}])[0].keys()), ["description", "external_id", "id", "name"], "group object keys")
    _, u = whoami("by-sub")
    t.eq((u.get("id"), u.get("username"), u.get("email"), u.get("groups"), u.get("avatar_url")),
         ("sub-only-1", "Name Only", None, [], None), "id from sub, username from name, no email/groups")
    _, u = whoami("uuid-wins")
    t.eq((u.get("id"), u.get("username")), ("uuid-1", "pref"), "uuid before id before sub; preferred_username first")
    _, u = whoami("numeric")
    t.eq((u.get("id"), u.get("username")), ("4711", "num"), "a numeric id becomes its decimal text")
    _, u = whoami("both-roles")
    t.eq(u.get("role"), "admin", "in ROLE_ADMIN and ROLE_TEACHER → admin")
    _, u = whoami("admin")
    t.eq(u.get("role"), "admin", "ROLE_ADMIN group → admin")
    old_tok, u = whoami("lehmann")
    t.eq((u.get("role"), len(u.get("groups", []))), ("teacher", 3), "ROLE_TEACHER group → teacher, 3 groups")

    # A re-login with fewer groups replaces the memberships (and the role).
    s.idp_control(users={"lehmann": {"uuid": "u-lehmann-0100", "preferred_username": "lehmann",
                                     "groups": {"1": {"act": "klasse-7a", "name": "Klasse 7a"}}}})
    tok, u = whoami("lehmann")
    t.eq(([g["external_id"] for g in u.get("groups", [])], u.get("role")), (["klasse-7a"], "student"),
         "re-login with fewer groups: memberships replaced, role derived again")
    t.eq(db_value(s, "SELECT COUNT(*) FROM user_groups WHERE user_id = 'u-lehmann-0100'"), 1,
         "one membership row left")
    t.eq(db_value(s, "SELECT COUNT(*) FROM groups WHERE external_id IN ('klasse-7b', 'lehrer')"), 2,
         "the groups themselves stay")
    j = s.get("/backend/api/groups", headers=s.auth(old_tok)).json() or {}
    t.eq([g["external_id"] for g in j.get("groups", [])], ["klasse-7a"], "an older session sees the new groups too")
    t.eq(db_value(s, "SELECT COUNT(*) FROM users"), 16 + 1 + 5 + 2, "one row per distinct user id")

t.done()
