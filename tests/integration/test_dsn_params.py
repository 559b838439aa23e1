#!/usr/bin/env python3
"""DSN parameters (RFC 3461) kept from intake to relay and bounce (issue 5
item 1): the real sendqd, its SMTP listener, and the harness's private
Exim as the smarthost (it refuses BAD with 550 5.1.1).

- smtplib gives NOTIFY=NEVER for BAD: the failure is logged, the message
  leaves the queue, and no DSN ever reaches the sender;
- NOTIFY=FAILURE + ORCPT + ENVID + RET=HDRS: the DSN that reaches the
  sender carries Original-Envelope-Id and Original-Recipient (read with
  Python's email package, and checked by tests/tools/check_dsn.py);
- when the Exim advertises DSN (dsn_advertise_hosts, set here), its
  spool shows the ENVID, RET, NOTIFY and ORCPT that sendq relayed; when
  it does not, none of them is sent (its spool has none) -- both are
  covered, by two tests;
- `sendq -N never -R hdrs -V ID` (no sendqd running): the message goes
  into the spool (a drop file could not keep them) with the documented
  envelope lines, and once sendqd runs no DSN is sent for BAD.
"""

import email
import email.policy
import os
import re
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import make_message, wait_for  # noqa: E402

SENDER = "alice@example.org"
GOOD = "good@example.net"
BAD = "bad@example.net"
CHECK_DSN = os.path.join(harness.SOURCE_DIR, "tests", "tools",
                         "check_dsn.py")


class DsnExim(harness.Exim):
    """The harness's Exim, advertising DSN when dsn is true (Exim only
    offers it to the hosts in dsn_advertise_hosts, none by default)."""

    def __init__(self, *a, dsn=True, **kw):
        self.dsn = dsn
        super().__init__(*a, **kw)

    def write_config(self):
        super().write_config()
        with open(self.config) as f:
            text = f.read()
        extra = "dsn_advertise_hosts = *\n" if self.dsn else ""
        text = text.replace("\nbegin acl\n", "\n" + extra + "\nbegin acl\n",
                            1)
        with open(self.config, "w") as f:
            f.write(text)

    def raw_h(self, msgid):
        with open(os.path.join(self.input_dir, msgid + "-H"), "rb") as f:
            return f.read().decode(errors="replace")


class IntakeSendq(harness.Sendq):
    """A Sendq with an [intake] listener on a loopback port."""

    def __init__(self, workdir, smarthost, port, **kw):
        self.port = port
        super().__init__(workdir, smarthost, **kw)

    def config_text(self):
        return super().config_text() + \
            "\n[intake]\nlisten = 127.0.0.1:%d\n" % self.port


class DsnParams(harness.IntegrationTest):

    def start_dsn_exim(self, dsn=True):
        cert, key = self.certs.good
        exim = DsnExim(os.path.join(self.dir, "exim-%d" % len(self._started)),
                       cert, key, reject_recipients=[BAD], dsn=dsn)
        os.makedirs(exim.dir, exist_ok=True)
        self._started.append(exim)
        return exim.start()

    def start_sendq(self, exim, start=True):
        port = harness.free_port()
        sq = IntakeSendq(self.dir, self.smarthost_for(exim, tls="implicit"),
                         port, extra_sendq={"control_socket": os.path.join(
                             self.dir, "control.sock")})
        self._started.append(sq)
        if start:
            sq.start()
            wait_for(lambda: harness.port_accepts(port),
                     what="the intake listener on port %d" % port)
            # The listener opens before the control socket: a `sendq`
            # run in between would find sendqd "not running".
            sq.wait_ready()
        return sq

    def exim_offers_dsn(self, exim):
        s = smtplib.SMTP("127.0.0.1", exim.starttls_port,
                         timeout=harness.DEFAULT_TIMEOUT)
        try:
            s.ehlo("probe.example")
            return s.has_extn("dsn")
        finally:
            s.quit()

    def send(self, sq, subject, mail_opts, rcpts):
        """One message over SMTP to sendq's listener: rcpts is a list of
        (address, [RCPT parameters])."""
        msg = make_message(subject, "DSN parameters.\r\n",
                           to=[a for a, _ in rcpts])
        s = smtplib.SMTP("127.0.0.1", sq.port,
                         timeout=harness.DEFAULT_TIMEOUT)
        self.addCleanup(s.close)
        code, _ = s.ehlo("client.example")
        self.assertEqual(code, 250)
        self.assertTrue(s.has_extn("dsn"), "sendq offers DSN")
        code, reply = s.mail(SENDER, mail_opts)
        self.assertEqual(code, 250, reply)
        for addr, opts in rcpts:
            code, reply = s.rcpt(addr, opts)
            self.assertEqual(code, 250, reply)
        code, reply = s.data(msg)
        self.assertEqual(code, 250, reply)
        s.quit()
        return msg

    def dsn_blocks(self, dsn_bytes):
        msg = email.message_from_bytes(dsn_bytes,
                                       policy=email.policy.default)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        parts = list(msg.iter_parts())
        self.assertEqual(parts[1].get_content_type(),
                         "message/delivery-status")
        return parts[1].get_payload()

    def run_check_dsn(self, dsn_bytes, rcpt):
        path = os.path.join(self.dir, "dsn.eml")
        with open(path, "wb") as f:
            f.write(dsn_bytes)
        p = subprocess.run([sys.executable, CHECK_DSN, path,
                            "--final-recipient", rcpt, "--status", "5.1.1",
                            "--action", "failed"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(p.returncode, 0, "check_dsn.py: %s" %
                         p.stdout.decode(errors="replace"))

    # ------------------------------------------------------------ tests

    def test_notify_never_for_a_550_rcpt_sends_no_dsn(self):
        exim = self.start_dsn_exim()
        sq = self.start_sendq(exim)
        self.send(sq, "never", [], [(GOOD, []), (BAD, ["NOTIFY=NEVER"])])
        sq.wait_log(r"failed msgid=\S+ rcpt=%s reason=\"550 5\.1\.1" %
                    re.escape(BAD))
        sq.wait_log(r"failed msgid=\S+ rcpt=%s dsn=none \(NOTIFY=NEVER\)" %
                    re.escape(BAD))
        # A DSN would be queued before the original leaves the queue, and
        # delivered before the queue is empty.
        sq.wait_queue_empty()
        msgs = exim.wait_messages(1)
        self.assertEqual([(m.sender, m.recipients) for m in msgs],
                         [(SENDER, [GOOD])])
        self.assertEqual(sq.spool_subdir_files("failed"), [])
        self.assertNotRegex(sq.log_text(), r"info: dsn msgid=")
        self.assertStoppedCleanly(sq)

    def check_failure_dsn_carries_envid_and_orcpt(self, dsn_offered):
        exim = self.start_dsn_exim(dsn=dsn_offered)
        self.assertEqual(self.exim_offers_dsn(exim), dsn_offered,
                         "the Exim's EHLO (dsn_advertise_hosts)")
        sq = self.start_sendq(exim)
        self.send(sq, "failure", ["RET=HDRS", "ENVID=QQ+2B42"], [
            (GOOD, ["NOTIFY=SUCCESS,FAILURE",
                    "ORCPT=rfc822;Good@example.net"]),
            (BAD, ["NOTIFY=FAILURE", "ORCPT=rfc822;Bad+2Bx@example.net"])])
        msgs = exim.wait_messages(2)
        sq.wait_queue_empty()
        self.assertEqual(len(exim.message_ids()), 2)
        (copy,) = [m for m in msgs if m.sender == SENDER]
        (dsn,) = [m for m in msgs if m.sender == ""]
        self.assertEqual(dsn.recipients, [SENDER])
        self.run_check_dsn(dsn.as_received(), BAD)
        blocks = self.dsn_blocks(dsn.as_received())
        self.assertEqual(str(blocks[0].get("Original-Envelope-Id")).strip(),
                         "QQ+42")
        self.assertEqual(len(blocks), 2, [dict(b) for b in blocks])
        self.assertEqual(" ".join(str(blocks[1].get("Original-Recipient"))
                                  .split()), "rfc822; Bad+x@example.net")
        self.assertEqual(" ".join(str(blocks[1].get("Final-Recipient"))
                                  .split()), "rfc822; %s" % BAD)
        # What the smarthost was told.
        h = exim.raw_h(copy.id)
        if dsn_offered:
            # Exim keeps ENVID as xtext, RET as 1 FULL / 2 HDRS, and per
            # recipient "ADDR ORCPT LEN,FLAGS" with NOTIFY in FLAGS
            # (SUCCESS 0x04 + FAILURE 0x08 = 12).
            self.assertIn("-dsn_envid QQ+2B42\n", h)
            self.assertIn("-dsn_ret 2\n", h)
            self.assertRegex(h, r"(?m)^%s rfc822;Good@example\.net 23,12 "
                             % re.escape(GOOD))
        else:
            self.assertNotIn("-dsn_", h)
            self.assertNotIn("rfc822;", h)
        self.assertStoppedCleanly(sq)

    def test_envid_orcpt_in_dsn_and_relayed_to_dsn_server(self):
        self.check_failure_dsn_carries_envid_and_orcpt(True)

    def test_envid_orcpt_in_dsn_not_sent_to_non_dsn_server(self):
        self.check_failure_dsn_carries_envid_and_orcpt(False)

    def test_sendq_N_R_V_kept_in_envelope_and_honoured(self):
        exim = self.start_dsn_exim()
        sq = self.start_sendq(exim)
        p = sq.sendq(["-v", "-N", "never", "-R", "hdrs", "-V", "id+1=2",
                      "-f", SENDER, BAD],
                     make_message("cli", "Via sendq.\r\n", to=(BAD,)))
        self.assertEqual(p.returncode, 0, p.stderr)
        # Streamed to sendqd with its DSN requests (a drop file could not
        # carry them).
        self.assertEqual(sq.spool_subdir_files("maildrop"), ["rejected",
                                                             "tmp"])
        qid = re.search(r"queued as (\w+), via sendqd",
                        p.stderr.decode()).group(1)
        sq.wait_log(r"failed msgid=%s rcpt=%s dsn=none \(NOTIFY=NEVER\)" %
                    (qid, re.escape(BAD)))
        sq.wait_queue_empty()
        self.assertEqual(exim.message_ids(), [])
        self.assertStoppedCleanly(sq)


if __name__ == "__main__":
    harness.main()
