#!/usr/bin/env python3
"""A stand-in for a school's identity provider (OAuth 2.0 authorization code
flow with PKCE, client_secret_post, a userinfo endpoint with IServ-style
claims), for development and tests. Not for production: users are demo
users, tokens live in memory.

  s4s-idp.py --port 9100 --client-id s4s --client-secret dev-secret

Endpoints (the URLs the server's OAUTH_* settings point at):
  GET  /authorize   a page to pick a demo user (or ?login_hint=<user> to skip it)
  POST /token       grant_type=authorization_code (PKCE S256 checked) or refresh_token
  GET  /userinfo    the claims of the bearer token's user
Test control (loopback only, like everything here):
  POST /_control    JSON: {"mode": "normal|error500|hang|garbage|no_user_id|down_token",
                           "token_ttl": seconds, "users": {name: claims}, "reset_stats": true}
  GET  /_control    JSON: the current mode and counters
"""
import argparse
import base64
import hashlib
import html
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEMO_USERS = {
    "anna": {"uuid": "u-anna-0001", "preferred_username": "anna", "name": "Anna Schmidt",
             "email": "anna@school.example", "groups": {"1": {"act": "klasse-7a", "name": "Klasse 7a"}}},
    "ben": {"uuid": "u-ben-0002", "preferred_username": "ben", "name": "Ben Meyer",
            "email": "ben@school.example", "groups": {"1": {"act": "klasse-7a", "name": "Klasse 7a"}}},
    "clara": {"uuid": "u-clara-0003", "preferred_username": "clara", "name": "Clara Wolf",
              "email": "clara@school.example", "groups": {"1": {"act": "klasse-7b", "name": "Klasse 7b"}}},
    "lehmann": {"uuid": "u-lehmann-0100", "preferred_username": "lehmann", "name": "Frau Lehmann",
                "email": "lehmann@school.example",
                "groups": {"1": {"act": "klasse-7a", "name": "Klasse 7a"},
                           "2": {"act": "klasse-7b", "name": "Klasse 7b"},
                           "3": {"act": "lehrer", "name": "Lehrer"}}},
    "admin": {"uuid": "u-admin-0999", "preferred_username": "admin", "name": "Admin",
              "email": "admin@school.example", "groups": {"1": {"act": "admins", "name": "Administratoren"}}},
}


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.users = json.loads(json.dumps(DEMO_USERS))
        self.codes = {}      # code -> dict(user, challenge, redirect_uri, client_id, expires)
        self.access = {}     # access token -> (user, expires)
        self.refresh = {}    # refresh token -> user
        self.mode = "normal"
        self.token_ttl = args.token_ttl
        self.stats = {"authorize": 0, "token": 0, "refresh": 0, "userinfo": 0, "pkce_checked": 0}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Handler(BaseHTTPRequestHandler):
    server_version = "s4s-idp/1"

    def log_message(self, fmt, *a):
        if self.server.state.args.verbose:
            super().log_message(fmt, *a)

    # -- helpers
    def send(self, status, body, ctype="application/json", headers=()):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, status, obj):
        self.send(status, json.dumps(obj))

    def form(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode() if n else ""
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}

    def failure_mode(self):
        """Apply the test-controlled failure mode; True when the answer was sent."""
        st = self.server.state
        if st.mode == "error500":
            self.send(500, "<html><body>Internal Server Error: provider exploded</body></html>", "text/html")
            return True
        if st.mode == "hang":
            time.sleep(60)
            self.send_json(200, {})
            return True
        if st.mode == "garbage":
            self.send(200, "this is not json {", "application/json")
            return True
        return False

    # -- routes
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == "/authorize":
            return self.authorize_page(q)
        if url.path == "/userinfo":
            return self.userinfo()
        if url.path == "/_control":
            st = self.server.state
            return self.send_json(200, {"mode": st.mode, "token_ttl": st.token_ttl, "stats": st.stats,
                                        "users": sorted(st.users)})
        self.send_json(404, {"error": "not_found"})

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/token":
            return self.token()
        if url.path == "/authorize":
            return self.authorize_page(self.form())
        if url.path == "/_control":
            return self.control()
        self.send_json(404, {"error": "not_found"})

    def authorize_page(self, q):
        st = self.server.state
        st.stats["authorize"] += 1
        for need in ("response_type", "client_id", "redirect_uri", "state", "code_challenge"):
            if not q.get(need):
                return self.send_json(400, {"error": "invalid_request", "error_description": "missing " + need})
        if q["response_type"] != "code" or q.get("code_challenge_method") != "S256":
            return self.send_json(400, {"error": "invalid_request", "error_description": "code + S256 only"})
        if q["client_id"] != st.args.client_id:
            return self.send_json(400, {"error": "unauthorized_client"})
        user = q.get("login_hint") or q.get("user")
        if user:
            if user not in st.users:
                return self.send_json(400, {"error": "unknown user " + user})
            code = secrets.token_urlsafe(24)
            with st.lock:
                st.codes[code] = {"user": user, "challenge": q["code_challenge"],
                                  "redirect_uri": q["redirect_uri"], "client_id": q["client_id"],
                                  "expires": time.time() + 120}
            sep = "&" if "?" in q["redirect_uri"] else "?"
            loc = q["redirect_uri"] + sep + urllib.parse.urlencode({"code": code, "state": q["state"]})
            return self.send(302, "", "text/plain", [("Location", loc)])
        # The page a person sees: pick a demo user.
        hidden = "".join('<input type="hidden" name="%s" value="%s">' % (html.escape(k), html.escape(v))
                         for k, v in q.items() if k not in ("user", "login_hint"))
        rows = []
        for name, claims in sorted(st.users.items()):
            groups = claims.get("groups") or {}
            gnames = ", ".join(g.get("name", "") for g in (groups.values() if isinstance(groups, dict) else groups))
            rows.append('<li><button name="user" value="%s">%s</button> <small>%s</small></li>'
                        % (html.escape(name), html.escape(claims.get("name", name)), html.escape(gnames)))
        page = ("<!doctype html><meta charset=utf-8><title>Demo school login</title>"
                "<style>body{font-family:sans-serif;max-width:36em;margin:3em auto}li{margin:.5em 0}"
                "button{min-width:12em;padding:.4em}</style>"
                "<h1>Demo school login</h1><p>This stand-in identity provider is for trying "
                "the server out. Pick who you are:</p><form method=post action=/authorize>%s<ul>%s</ul></form>"
                % (hidden, "".join(rows)))
        self.send(200, page, "text/html; charset=utf-8")

    def token(self):
        st = self.server.state
        st.stats["token"] += 1
        if st.mode == "down_token":
            self.close_connection = True
            self.connection.close()
            return
        if self.failure_mode():
            return
        f = self.form()
        if f.get("client_id") != st.args.client_id or f.get("client_secret") != st.args.client_secret:
            return self.send_json(401, {"error": "invalid_client"})
        grant = f.get("grant_type")
        with st.lock:
            if grant == "authorization_code":
                c = st.codes.pop(f.get("code", ""), None)
                if not c or c["expires"] < time.time():
                    return self.send_json(400, {"error": "invalid_grant"})
                if f.get("redirect_uri") != c["redirect_uri"]:
                    return self.send_json(400, {"error": "invalid_grant", "error_description": "redirect_uri"})
                verifier = f.get("code_verifier", "")
                if b64url(hashlib.sha256(verifier.encode()).digest()) != c["challenge"]:
                    return self.send_json(400, {"error": "invalid_grant", "error_description": "PKCE"})
                st.stats["pkce_checked"] += 1
                user = c["user"]
            elif grant == "refresh_token":
                st.stats["refresh"] += 1
                user = st.refresh.pop(f.get("refresh_token", ""), None)  # rotated: one use only
                if not user:
                    return self.send_json(400, {"error": "invalid_grant"})
            else:
                return self.send_json(400, {"error": "unsupported_grant_type"})
            access = secrets.token_urlsafe(32)
            refresh = secrets.token_urlsafe(32)
            st.access[access] = (user, time.time() + max(st.token_ttl, 1) + 3600)
            st.refresh[refresh] = user
            ttl = st.token_ttl
        body = {"access_token": access, "token_type": "Bearer", "expires_in": ttl, "refresh_token": refresh,
                "scope": "openid profile uuid email groups"}
        self.send_json(200, body)

    def userinfo(self):
        st = self.server.state
        st.stats["userinfo"] += 1
        if self.failure_mode():
            return
        auth = self.headers.get("Authorization", "")
        tok = auth[7:] if auth.startswith("Bearer ") else ""
        with st.lock:
            entry = st.access.get(tok)
        if not entry or entry[1] < time.time():
            return self.send_json(401, {"error": "invalid_token"})
        claims = dict(st.users[entry[0]])
        if st.mode == "no_user_id":
            for k in ("uuid", "id", "sub"):
                claims.pop(k, None)
        self.send_json(200, claims)

    def control(self):
        st = self.server.state
        n = int(self.headers.get("Content-Length") or 0)
        try:
            req = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.send_json(400, {"error": "bad json"})
        with st.lock:
            if "mode" in req:
                st.mode = req["mode"]
            if "token_ttl" in req:
                st.token_ttl = int(req["token_ttl"])
            for name, claims in (req.get("users") or {}).items():
                st.users[name] = claims
            if req.get("reset_stats"):
                st.stats = {k: 0 for k in st.stats}
        self.send_json(200, {"mode": st.mode, "token_ttl": st.token_ttl})


def main():
    ap = argparse.ArgumentParser(description="Stand-in OAuth identity provider for s4s (development/tests)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--client-id", default="s4s-dev")
    ap.add_argument("--client-secret", default="s4s-dev-secret")
    ap.add_argument("--token-ttl", type=int, default=3600, help="expires_in of issued access tokens")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    # Simultaneous logins: the default backlog of 5 drops connections (clients retry after 1 s).
    ThreadingHTTPServer.request_queue_size = 128
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(args)
    print("s4s-idp listening on http://%s:%d" % (args.host, srv.server_address[1]), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
