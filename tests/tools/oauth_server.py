#!/usr/bin/env python3
"""oauth_server.py - a local HTTPS OAuth 2.0 token endpoint for the tests.

Listens on 127.0.0.1:--port (0 = any) with --cert/--key (a throwaway CA's
certificate, see harness.Certs) and prints "PORT <n>" once listening.

  POST /token  grant_type=refresh_token: the refresh token must be the
               current one (--state-dir/refresh, one line); answers a new
               access token valid --lifetime seconds and ROTATES the
               refresh token (the old one stops working at once).
               grant_type=urn:ietf:params:oauth:grant-type:device_code:
               authorization_pending, then slow_down, then the tokens
               (a new refresh token, which becomes the current one).
  POST /device the device authorization answer (interval 1 s).

Behaviour is switched by the file --state-dir/mode, read at every request:
  ok       (or no file) as above
  fail     503 with {"error":"temporarily_unavailable"}
  slow     log "slow PATH", wait --slow seconds, then as ok
  hold     log "held PATH", wait until the file --state-dir/release
           exists (at most --hold-max seconds), then as ok: a request in
           flight for as long as the test needs, not for a guessed time
  revoke   400 {"error":"invalid_grant"} for every refresh token (and the
           current one is forgotten; a device flow sets a new one)

Every access token issued is appended to --state-dir/tokens as "TOKEN
EXPIRY" (fake_smtp_server.py --oauth-tokens checks them); every request is
logged to --state-dir/log as one line ("refresh ok", "refresh 503",
"device_poll slow_down" ...).  Only the Python standard library is used.
Stop it by its PID.
"""

import argparse
import http.server
import json
import os
import secrets
import ssl
import threading
import time
import urllib.parse

LOCK = threading.Lock()


class State:
    def __init__(self, args):
        self.args = args
        self.dir = args.state_dir
        self.polls = {}         # device_code -> polls so far

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name, default=""):
        try:
            with open(self.path(name)) as f:
                return f.read().strip()
        except FileNotFoundError:
            return default

    def write(self, name, text):
        tmp = self.path(name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.rename(tmp, self.path(name))

    def log(self, text):
        with open(self.path("log"), "a") as f:
            f.write(text + "\n")

    def issue(self):
        """A new access token and a new current refresh token."""
        access = "at-" + secrets.token_hex(8)
        refresh = "rt-" + secrets.token_hex(8)
        with open(self.path("tokens"), "a") as f:
            f.write("%s %f\n" % (access,
                                 time.time() + self.args.lifetime))
        self.write("refresh", refresh)
        return {"access_token": access, "token_type": "Bearer",
                "expires_in": self.args.lifetime, "refresh_token": refresh}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        st = self.server.state
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        f = {k: v[0] for k, v in form.items()}
        mode = st.read("mode", "ok")
        if mode == "slow":
            with LOCK:
                st.log("slow %s" % self.path)
            time.sleep(st.args.slow)
        elif mode == "hold":
            with LOCK:
                st.log("held %s" % self.path)
            deadline = time.monotonic() + st.args.hold_max
            while not os.path.exists(st.path("release")) and \
                    time.monotonic() < deadline:
                time.sleep(0.02)        # poll the release file
        with LOCK:
            if self.path == "/device":
                code = "dc-" + secrets.token_hex(6)
                st.polls[code] = 0
                st.log("device_authorization client_id=%s" %
                       f.get("client_id"))
                return self.answer(200, {
                    "device_code": code, "user_code": "WDJB-MJHT",
                    "verification_uri": "https://127.0.0.1/device",
                    "expires_in": 120, "interval": 1})
            if self.path != "/token":
                return self.answer(404, {"error": "not_found"})
            grant = f.get("grant_type", "")
            if mode == "fail":
                st.log("%s 503" % grant)
                return self.answer(503, {"error": "temporarily_unavailable"})
            if grant == "refresh_token":
                cur = st.read("refresh")
                if mode == "revoke" or f.get("refresh_token") != cur:
                    if mode == "revoke":
                        st.write("refresh", "")
                    st.log("refresh invalid_grant")
                    return self.answer(400, {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or "
                                             "revoked."})
                st.log("refresh ok")
                return self.answer(200, st.issue())
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                code = f.get("device_code")
                if code not in st.polls:
                    return self.answer(400, {"error": "expired_token"})
                st.polls[code] += 1
                k = st.polls[code]
                if k == 1:
                    st.log("device_poll authorization_pending")
                    return self.answer(400,
                                       {"error": "authorization_pending"})
                if k == 2:
                    st.log("device_poll slow_down")
                    return self.answer(400, {"error": "slow_down"})
                del st.polls[code]
                if mode == "revoke":
                    st.write("mode", "ok")
                st.log("device_poll ok")
                return self.answer(200, st.issue())
            return self.answer(400, {"error": "unsupported_grant_type"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--lifetime", type=int, default=4)
    ap.add_argument("--slow", type=float, default=3.0)
    ap.add_argument("--hold-max", type=float, default=600.0)
    args = ap.parse_args()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.state = State(args)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
