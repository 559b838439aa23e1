#!/usr/bin/env python3
"""End to end over STARTTLS: the same cases as test_e2e_implicit.py
(byte-for-byte arrival, empty spool, TLS named in the log), against Exim's
plain SMTP port where STARTTLS is advertised, and with the smarthost named
"localhost" so host name verification uses the certificate's DNS name."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_e2e_implicit import E2ECases  # noqa: E402


class StartTLS(E2ECases, harness.IntegrationTest):
    TLS_MODE = "starttls"
    HOST = "localhost"

    def test_exim_saw_starttls_not_implicit_tls(self):
        sent = harness.make_message("starttls", "via STARTTLS\r\n")
        self.deliver(sent, ["bob@example.net"])
        (ln,) = self.exim.arrival_lines()
        self.assertIn(" P=esmtps ", ln)
        self.assertRegex(ln, r" I=\[[^\]]+\]:%d " % self.exim.starttls_port)
        self.assertStoppedCleanly(self.sq)


if __name__ == "__main__":
    harness.main()
