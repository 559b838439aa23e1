#!/usr/bin/env python3
"""sendq against a real Postfix (private instance, see harness.Postfix):
STARTTLS with the test CA, a pipelined transaction in which Postfix
refuses one recipient with 550 (the others are delivered, the refused one
is held in spool_dir/failed/), and a batch of 20 messages."""

import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

REJECTED = "rejected@example.net"


def read_env(path):
    """A sendq .env file as (recipients, {key: value}) ("rcpt ADDR" lines
    are the recipients; other lines are "key value")."""
    rcpts, fields = [], {}
    with open(path, errors="replace") as f:
        for ln in f.read().splitlines():
            key, _, value = ln.partition(" ")
            if key == "rcpt":
                rcpts.append(value)
            else:
                fields[key] = value
    return rcpts, fields


class PostfixSetup:
    """Mixin: a private Postfix (POSTFIX_EXTRA: more main.cf settings) and
    a sendqd relaying to it over STARTTLS, plus helpers."""

    POSTFIX_EXTRA = None

    def setUp(self):
        super().setUp()
        self.pf = self.start_postfix(reject_recipients=[REJECTED],
                                     extra_main=self.POSTFIX_EXTRA)
        # bounce = none: the refused recipient is kept in failed/ (with
        # the default, bounce = sender, a DSN goes out instead; the queue
        # engine tests cover that).
        self.sq = self.new_sendq(self.smarthost_for_postfix(self.pf),
                                 name="postfix",
                                 extra_queue={"bounce": "none"})
        self.sq.start()

    def verbs_before_first_reply(self):
        """The commands sendqd's debug log shows written from MAIL up to
        the first reply of the transaction.  It logs "relay=N >>> VERB"
        once per write that starts with a command (so a pipelined group
        shows only MAIL) and "<<<" for the RCPT and final replies."""
        log = self.sq.log_text().splitlines()
        start = next(i for i, ln in enumerate(log) if ">>> MAIL" in ln)
        verbs = []
        for ln in log[start:]:
            if "<<<" in ln:
                break
            m = re.search(r">>> (\w+)", ln)
            if m:
                verbs.append(m.group(1))
        return verbs

    def failed_dir(self):
        return os.path.join(self.sq.spool, "failed")

    def failed_envs(self):
        try:
            names = os.listdir(self.failed_dir())
        except FileNotFoundError:
            return []
        return sorted(n for n in names if re.match(r".+\.\d+\.env$", n))

    def send_three_one_refused(self):
        good = ["one@example.net", "two@example.net"]
        rcpts = [good[0], REJECTED, good[1]]
        msg = harness.make_message("three recipients", "one is refused\r\n",
                                   to=rcpts)
        self.sq.submit(msg, rcpts, sender="alice@example.org")
        return good

    def wait_failed_env(self):
        envs = harness.wait_for(self.failed_envs,
                                what=lambda: "a failed/ID.N.env (spool: %s)"
                                % self.sq.spool_files())
        self.assertEqual(len(envs), 1, envs)
        return read_env(os.path.join(self.failed_dir(), envs[0]))


class PostfixRelay(PostfixSetup, harness.IntegrationTest):

    def test_rejected_recipient_is_held_and_others_delivered_pipelined(self):
        good = self.send_three_one_refused()

        (arrival,) = self.pf.wait_messages(1)
        self.assertIn("from=<alice@example.org>", arrival)
        self.assertIn(" nrcpt=2 ", arrival)
        self.assertEqual(sorted(self.pf.recipients_received()), good)
        (reject,) = self.pf.reject_lines()
        self.assertIn("to=<%s>" % REJECTED, reject)
        self.assertIn(" 550 ", reject)
        # STARTTLS was used.
        self.assertRegex(self.pf.log_text(),
                         r"TLS connection established from "
                         r"localhost\[127\.0\.0\.1\]: TLSv1\.[23]")

        # The refused recipient is kept in failed/, the queue is empty.
        held, _ = self.wait_failed_env()
        self.assertEqual(held, [REJECTED])
        self.sq.wait_queue_empty()

        self.assertEqual(self.verbs_before_first_reply(), ["MAIL"],
                         "MAIL, RCPTs and DATA not written together")
        self.assertStoppedCleanly(self.sq)
        # Postfix took the pipelined group without complaint; its session
        # summary (logged when sendqd hangs up) counts the commands.
        harness.wait_for(lambda: re.search(
            r"disconnect from .* mail=1 rcpt=2/3 data=1 ",
            self.pf.log_text()), what="postfix's disconnect line")
        self.assertNotIn("improper command pipelining", self.pf.log_text())

    # The held recipient keeps the 550 Postfix gave its RCPT, not the
    # final 250 of the message that went to the others.
    def test_held_recipient_keeps_the_550_reply_as_its_error(self):
        self.send_three_one_refused()
        _, fields = self.wait_failed_env()
        self.assertRegex(fields.get("last_error", ""), r"^550 5\.1\.1 ")
        self.assertRegex(self.sq.log_text(),
                         r"failed msgid=\S+ rcpt=%s .*reason=\"550 " %
                         re.escape(REJECTED))

    def test_twenty_messages_all_arrive(self):
        n = 20
        for i in range(n):
            msg = harness.make_message("batch %d" % i, "message %d\r\n" % i,
                                       to=("r%d@example.net" % i,))
            self.sq.submit(msg, ["r%d@example.net" % i],
                           sender="alice@example.org")
        self.pf.wait_messages(n)
        self.sq.wait_queue_empty()
        self.assertEqual(len(self.pf.arrival_lines()), n)
        self.assertEqual(sorted(self.pf.recipients_received()),
                         sorted("r%d@example.net" % i for i in range(n)))
        self.assertEqual(len(self.pf.queue_ids()), n)
        self.assertEqual(self.failed_envs(), [])
        self.assertEqual(self.pf.reject_lines(), [])
        self.assertStoppedCleanly(self.sq)


class PostfixWithoutPipelining(PostfixSetup, harness.IntegrationTest):
    """The control for the pipelining check above: Postfix does not offer
    PIPELINING, so sendqd must write the commands one at a time (and the
    log check must see that), with the same outcome."""

    POSTFIX_EXTRA = {"smtpd_discard_ehlo_keywords": "pipelining"}

    def test_commands_go_one_by_one_and_the_refusal_is_still_held(self):
        good = self.send_three_one_refused()
        self.pf.wait_messages(1)
        self.assertEqual(sorted(self.pf.recipients_received()), good)
        held, _ = self.wait_failed_env()
        self.assertEqual(held, [REJECTED])
        self.sq.wait_queue_empty()
        self.assertEqual(self.verbs_before_first_reply(), ["MAIL", "RCPT"])
        self.assertStoppedCleanly(self.sq)


if __name__ == "__main__":
    harness.main()
