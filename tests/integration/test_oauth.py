#!/usr/bin/env python3
"""OAuth 2.0 built in (issue 13), end to end: sendqd against the local
HTTPS token endpoint tests/tools/oauth_server.py (certificate from a
throwaway CA, trusted through oauth_ca_file) and an SMTP server that
checks the XOAUTH2 token it receives (fake_smtp_server.py --oauth-tokens).

- tokens valid 2 s: mail keeps flowing across many expiries, each
  connection with a valid token, never a deferral, rotated refresh tokens
  stored in state_dir/oauth/NAME (mode 0600);
- a token the SMTP server refuses (334 error challenge, 535): one forced
  refresh, then delivered, no deferral;
- the endpoint holds the refresh (until the test releases it): the
  listener and the control socket answer meanwhile, and the message goes
  out with the token, no deferral;
- the endpoint answers 503: the message is deferred with the reason, and
  delivered once the endpoint recovers;
- the grant is revoked (invalid_grant): the mail is HELD (not tried, not
  bounced), logged at error priority with the fix, `sendqctl status`
  says HELD and exits 2; `sendqctl oauth init` (device flow through
  authorization_pending and slow_down) stores a new refresh token and the
  held mail goes out by itself; `sendqctl oauth status` reports it;
- a hanging token_command: the SMTP listener still greets and another
  relay delivers before the helper's 10 s timeout is logged, and the
  time limit is logged as a timeout (no AUTHENTICATION FAILED, no 900 s
  rest);
- `sendqctl oauth status` by a member of [sendq] admin_group (who cannot
  read state_dir/oauth) is answered by sendqd; a plain user gets 77.
Nothing waits a fixed time for a result: every wait polls a condition
with a deadline (the expiries are paced by the clock on purpose).
"""

import os
import pwd
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, wait_for  # noqa: E402
from test_faults import FakeServer  # noqa: E402

OAUTH_SERVER = os.path.join(harness.SOURCE_DIR, "tests", "tools",
                            "oauth_server.py")
SENDER = "alice@example.org"
RCPT = "bob@example.net"
WAIT = max(harness.DEFAULT_TIMEOUT, 40)


class OAuthServer:
    """tests/tools/oauth_server.py in workdir."""

    def __init__(self, workdir, certs, lifetime):
        self.dir = os.path.join(workdir, "oauth-server")
        os.makedirs(self.dir)
        self.set_refresh("rt-initial")
        cert, key = certs.good
        self._stderr = open(os.path.join(self.dir, "stderr"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, OAUTH_SERVER, "--cert", cert, "--key", key,
             "--state-dir", self.dir, "--lifetime", str(lifetime)],
            stdout=subprocess.PIPE, stderr=self._stderr,
            stdin=subprocess.DEVNULL)
        m = re.match(r"PORT (\d+)", self.proc.stdout.readline().decode())
        if not m:
            self.stop()
            raise harness.HarnessError("oauth_server did not start")
        self.port = int(m.group(1))
        self.url = "https://127.0.0.1:%d" % self.port
        self.tokens = os.path.join(self.dir, "tokens")

    def set_refresh(self, token):
        with open(os.path.join(self.dir, "refresh"), "w") as f:
            f.write(token + "\n")

    def refresh_token(self):
        with open(os.path.join(self.dir, "refresh")) as f:
            return f.read().strip()

    def mode(self, mode):
        with open(os.path.join(self.dir, "mode.tmp"), "w") as f:
            f.write(mode + "\n")
        os.rename(os.path.join(self.dir, "mode.tmp"),
                  os.path.join(self.dir, "mode"))

    def release(self):
        """End the hold of mode "hold" (every held request answers)."""
        with open(os.path.join(self.dir, "release"), "w"):
            pass

    def log(self):
        try:
            with open(os.path.join(self.dir, "log")) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc is not None:
            harness.stop_pid(self.proc.pid)
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
            self._stderr.close()


class OAuthTest(harness.IntegrationTest):

    def setup_relay(self, lifetime=2, more_smarthosts=(), extra_sendq=None,
                    name="mail", listen_port=None):
        self.oauth = OAuthServer(self.dir, self.certs, lifetime)
        self._started.append(self.oauth)
        self.fake = FakeServer(os.path.join(self.dir, "fake"),
                               ["--oauth-tokens", self.oauth.tokens],
                               "none", None)
        self._started.append(self.fake)
        self.state = os.path.join(self.dir, "state")
        os.makedirs(os.path.join(self.state, "oauth"), mode=0o700)
        path = os.path.join(self.state, "oauth", name)
        with open(path, "w") as f:
            f.write("rt-initial\n")
        os.chmod(path, 0o600)
        sh = {"host": "127.0.0.1", "port": self.fake.port, "tls": "none",
              "user": "alice@example.org",
              "oauth_token_endpoint": self.oauth.url + "/token",
              "oauth_device_endpoint": self.oauth.url + "/device",
              "oauth_client_id": "sendq-test",
              "oauth_ca_file": self.certs.ca.cert,
              "idle_timeout": "1s"}
        extra = {"state_dir": self.state,
                 "control_socket": os.path.join(self.dir, "ctl.sock")}
        extra.update(extra_sendq or {})
        self.sq = harness.Sendq(self.dir, sh, name=name, extra_sendq=extra,
                                more_smarthosts=more_smarthosts)
        if listen_port is not None:
            with open(self.sq.config, "a") as f:
                f.write("\n[intake]\nlisten = 127.0.0.1:%d\n" % listen_port)
        self._started.append(self.sq)
        self.name = name
        return self.sq.start()

    def sendqctl(self, *args):
        p = subprocess.run([harness.sendq_binary("sendqctl"), "-C",
                            self.sq.config] + list(args),
                           capture_output=True, text=True, timeout=120)
        self.sq.transcript.append("$ sendqctl %s -> exit %d\n%s%s" % (
            " ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def send(self, subject, rcpt=RCPT):
        self.sq.submit(make_message(subject, "Hello.\r\n", to=(rcpt,)),
                       [rcpt], sender=SENDER)

    def delivered(self, n):
        wait_for(lambda: len(self.fake.saved()) >= n, timeout=WAIT,
                 what="%d message(s) at the SMTP server" % n)

    def deferrals(self):
        return [ln for ln in self.sq.log_text().splitlines()
                if "result=deferred" in ln]

    def auth_events(self):
        return [e for e in self.fake.events() if len(e) > 1 and
                e[1] == "auth"]

    # ------------------------------------------------------------------

    def test_mail_flows_across_many_token_expiries(self):
        self.setup_relay(lifetime=2)
        for i in range(5):
            self.send("expiry %d" % i)
            self.delivered(i + 1)
            # Pace by the clock: the next one needs a newer token.
            t = time.monotonic() + 1.5
            wait_for(lambda: time.monotonic() >= t, timeout=5)
        self.assertEqual(self.deferrals(), [])
        refreshes = [ln for ln in self.oauth.log() if ln == "refresh ok"]
        self.assertGreaterEqual(len(refreshes), 3, self.oauth.log())
        self.assertNotIn("refresh invalid_grant", self.oauth.log())
        auths = self.auth_events()
        self.assertTrue(auths)
        self.assertTrue(all(e[2] == "ok" for e in auths), auths)
        self.assertGreaterEqual(len({e[4] for e in auths}), 3, auths)
        # The rotated refresh token is the one stored, mode 0600.
        path = os.path.join(self.state, "oauth", self.name)
        with open(path) as f:
            self.assertEqual(f.read().strip(), self.oauth.refresh_token())
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        p = self.sendqctl("oauth", "status", self.name)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("last result: ok", p.stdout)

    def test_refused_token_is_refreshed_once(self):
        self.setup_relay(lifetime=60)
        self.send("first")
        self.delivered(1)
        wait_for(lambda: any(e[1:] == ["end"] for e in self.fake.events()),
                 timeout=WAIT, what="the idle connection to close")
        # The provider revokes the access token (not the grant).
        open(self.oauth.tokens, "w").close()
        self.send("second")
        self.delivered(2)
        auths = [e[2] for e in self.auth_events()]
        self.assertEqual(auths, ["ok", "bad", "ok"])
        self.assertEqual(self.deferrals(), [])
        self.assertIn("refreshing it once", self.sq.log_text())

    def test_endpoint_5xx_defers_and_recovers(self):
        self.setup_relay(lifetime=60)
        self.oauth.mode("fail")
        self.send("during the outage")
        wait_for(lambda: self.deferrals(), timeout=WAIT,
                 what="a deferral while the endpoint fails")
        self.assertIn("HTTP 503", self.deferrals()[0])
        self.assertNotIn("AUTHENTICATION FAILED", self.sq.log_text())
        self.assertNotIn("resting", self.sq.log_text())
        self.assertEqual(len(self.fake.saved()), 0)
        self.oauth.mode("ok")
        self.delivered(1)
        wait_for(lambda: self.sq.queued() == [],
                 what="the spool to empty")

    def test_slow_endpoint_does_not_stall_the_daemon(self):
        """The token endpoint holds the refresh until the test releases
        it: the refresh runs on the event loop through curl multi, so
        while it is in flight the listener greets and the control socket
        answers; then the message goes out with the token, no deferral,
        no AUTHENTICATION FAILED."""
        port = harness.free_port()
        self.setup_relay(lifetime=60, listen_port=port)
        wait_for(lambda: harness.port_accepts(port), timeout=WAIT,
                 what="the listener")
        self.oauth.mode("hold")
        self.send("while the endpoint is slow")
        wait_for(lambda: "held /token" in self.oauth.log(), timeout=WAIT,
                 what="the refresh to reach the holding endpoint")
        # The endpoint answers nothing until release(): a loop that
        # waited for it could neither greet nor answer status before.
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=WAIT) as s:
            greeting = s.recv(512)
        self.assertTrue(greeting.startswith(b"220"), greeting)
        p = self.sendqctl("status")
        self.assertIn("mail", p.stdout)
        self.assertNotIn("refresh ok", self.oauth.log())
        self.assertEqual(len(self.fake.saved()), 0)
        self.oauth.release()
        self.delivered(1)
        self.assertIn("refresh ok", self.oauth.log())
        self.assertEqual(self.deferrals(), [])
        self.assertNotIn("AUTHENTICATION FAILED", self.sq.log_text())

    def test_revoked_grant_holds_and_oauth_init_releases(self):
        self.setup_relay(lifetime=60)
        self.oauth.mode("revoke")
        self.send("held one")
        self.send("held two")
        wait_for(lambda: "OAUTH HELD" in self.sq.log_text(), timeout=WAIT,
                 what="the held error")
        log = self.sq.log_text()
        self.assertIn("invalid_grant", log)
        self.assertIn("sendqctl oauth init %s" % self.name, log)
        self.assertEqual(log.count("OAUTH HELD"), 1, "once per change")
        p = self.sendqctl("status")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        self.assertIn("HELD", p.stdout)
        self.assertIn("sendqctl oauth init %s" % self.name, p.stdout)
        p = self.sendqctl("oauth", "status", self.name)
        self.assertEqual(p.returncode, 2, p.stdout)
        # Not tried, not bounced, nothing lost.
        self.assertEqual(len(self.sq.queued()), 2)
        self.assertEqual(self.deferrals(), [])
        self.assertEqual(len(self.fake.saved()), 0)
        p = self.sendqctl("oauth", "init", self.name)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("https://127.0.0.1/device", p.stdout)
        self.assertIn("WDJB-MJHT", p.stdout)
        self.assertIn("more slowly", p.stdout)
        polls = [ln for ln in self.oauth.log()
                 if ln.startswith("device_poll")]
        self.assertEqual(polls, ["device_poll authorization_pending",
                                 "device_poll slow_down", "device_poll ok"])
        self.delivered(2)
        wait_for(lambda: self.sq.queued() == [], timeout=WAIT,
                 what="the queue to empty")
        p = self.sendqctl("status")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("released", self.sq.log_text())

    def test_mail_flows_after_a_reload(self):
        """sendqctl reload gives the scheduler a new configuration: the
        OAuth smarthost keeps its tokens (no AUTH failure, no deferral)."""
        self.setup_relay(lifetime=60)
        self.send("before")
        self.delivered(1)
        p = self.sendqctl("reload")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        wait_for(lambda: "reload: " in self.sq.log_text() and
                 "applied" in self.sq.log_text(), timeout=WAIT,
                 what="the reload applied")
        self.send("after")
        self.delivered(2)
        log = self.sq.log_text()
        self.assertEqual(self.deferrals(), [])
        self.assertNotIn("AUTHENTICATION FAILED", log)
        self.assertNotIn("OAUTH HELD", log)

    def test_admin_group_member_reads_oauth_status_through_sendqd(self):
        """STATE_DIR/oauth is root's (sendqd's user's) alone: a member of
        [sendq] admin_group gets `sendqctl oauth status` from sendqd
        (oauth-status, an administrative request); another user gets 77.
        Users and group made for the test, removed even on failure."""
        if os.geteuid() != 0:
            self.skipTest("needs root to create users")
        tag = "sqo%d" % (os.getpid() % 1000000)
        group, member, plain = tag + "adm", tag + "m", tag + "u"

        def run(argv):
            return subprocess.run(argv, capture_output=True, text=True,
                                  timeout=60)

        def remove():
            for user in (member, plain):
                run(["userdel", user])
            run(["groupdel", group])
        self.addCleanup(remove)
        for argv in (["groupadd", group],
                     ["useradd", "--no-create-home", "--shell",
                      "/usr/sbin/nologin", "-G", group, member],
                     ["useradd", "--no-create-home", "--shell",
                      "/usr/sbin/nologin", plain]):
            p = run(argv)
            self.assertEqual(p.returncode, 0, "%s: %s" % (argv, p.stderr))
        self.setup_relay(lifetime=60, extra_sendq={"admin_group": group})
        self.send("one")
        self.delivered(1)
        for d in (self.class_dir, self.dir, self.state):
            os.chmod(d, 0o755)
        os.chmod(self.sq.config, 0o644)
        os.chmod(os.path.join(self.state, "oauth"), 0o700)

        def as_user(user):
            return run(["setpriv", "--reuid", user, "--regid",
                        str(pwd.getpwnam(user).pw_gid), "--init-groups",
                        "--", harness.sendq_binary("sendqctl"), "-C",
                        self.sq.config, "oauth", "status", self.name])
        p = as_user(member)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("(as sendqd says)", p.stdout)
        self.assertIn("refresh token stored:", p.stdout)
        self.assertIn("last result: ok", p.stdout)
        self.assertIn("access token expires in:", p.stdout)
        self.assertNotIn("rt-", p.stdout)      # no secret in it
        uid = pwd.getpwnam(member).pw_uid
        self.assertRegex(self.sq.log_text(), r"control command=oauth-status"
                         r" msgid=%s uid=%d .*result=ok" % (self.name, uid))
        p = as_user(plain)
        self.assertEqual(p.returncode, 77, p.stdout + p.stderr)
        self.assertIn("permission denied", p.stderr)
        self.assertNotIn("last result", p.stdout)

    def test_hanging_token_command_does_not_stall_the_daemon(self):
        fast = FakeServer(os.path.join(self.dir, "fast"), [], "none", None)
        self._started.append(fast)
        port = harness.free_port()
        marker = os.path.join(self.dir, "helper-started")
        slow = {"host": "127.0.0.1", "port": fast.port, "tls": "none",
                "auth": "xoauth2", "user": "u",
                "token_command": "echo starting >&2; touch %s; "
                                 "exec sleep 60" % marker,
                "match_recipient": "*@slow.example"}
        sh = {"host": "127.0.0.1", "port": fast.port, "tls": "none"}
        # The slow one first: its match_recipient is checked first.
        self.sq = harness.Sendq(self.dir, slow, name="slow",
                                more_smarthosts=[("fast", sh)])
        with open(self.sq.config, "a") as f:
            f.write("\n[intake]\nlisten = 127.0.0.1:%d\n" % port)
        self._started.append(self.sq)
        self.sq.start()
        wait_for(lambda: harness.port_accepts(port), timeout=WAIT,
                 what="the listener")
        self.sq.submit(make_message("slow", "x\r\n", to=("a@slow.example",)),
                       ["a@slow.example"], sender=SENDER)
        wait_for(lambda: os.path.exists(marker), timeout=WAIT,
                 what="the token_command to start")
        # While it hangs: the listener greets (a loop that waited for the
        # helper would greet only after its 10 s timeout, logged first) ...
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=WAIT) as s:
            greeting = s.recv(512)
        self.assertTrue(greeting.startswith(b"220"), greeting)
        self.assertNotIn("timed out", self.sq.log_text())
        # ... and the other relay delivers.
        self.sq.submit(make_message("fast", "y\r\n"), [RCPT], sender=SENDER)
        wait_for(lambda: len(fast.saved()) >= 1, timeout=WAIT,
                 what="delivery by the other relay")
        wait_for(lambda: "timed out" in self.sq.log_text(), timeout=WAIT,
                 what="the timeout in the log")
        # ... while the helper hung: sendqd logged the delivery before
        # the helper's 10 s timeout (one process, one log: the order of
        # its lines is the order of the events), not after it.
        lines = self.sq.log_text().splitlines()
        sent = [i for i, ln in enumerate(lines) if "delivery " in ln and
                "relay=fast" in ln and "result=sent" in ln]
        timeout = [i for i, ln in enumerate(lines)
                   if "token_command timed out" in ln]
        self.assertTrue(sent and timeout, "\n".join(lines))
        self.assertLess(sent[0], timeout[0], "the other relay delivered "
                        "only after the helper's timeout")
        # The policy (retry.c) sees a timeout in phase AUTH: the relay is
        # down like one that does not answer, not resting.
        wait_for(lambda: "relay slow: down (setup-failed): token_command "
                 "timed out" in self.sq.log_text(), timeout=WAIT,
                 what="the relay verdict for the timeout")
        log = self.sq.log_text()
        self.assertIn("token_command timed out after 10 s", log)
        self.assertIn("token_command stderr: starting", log)
        self.assertNotIn("AUTHENTICATION FAILED", log)
        self.assertNotIn("resting", log)
        self.assertEqual(len(self.sq.queued()), 1)


if __name__ == "__main__":
    harness.main()
