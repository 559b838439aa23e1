"""harness - run sendq against real SMTP servers on loopback.

How it works: every test gets a temporary directory.  In it the harness
makes a throwaway CA and leaf certificates with certtool, starts a private
Exim (fetched by tests/tools/get-servers into REPO/.cache/servers, never
installed) that keeps every message it accepts in its own spool, writes a
sendq configuration whose spool lives in the same directory, and runs the
`sendq` and `sendqd` binaries from SENDQ_BUILD_DIR.  What Exim received is
read back from its spool files (SPOOL/input/ID-H and ID-D) so a test can
compare it byte for byte with what it submitted.  Nothing waits a fixed
time: every wait polls a condition until a deadline.  Everything the
harness starts is stopped by its PID, also when a test fails.

Only the Python standard library is used.  The package:
  proc.py     paths (SOURCE_DIR, BUILD_DIR ...), DEFAULT_TIMEOUT, scaled,
              sysexits, wait_for, free and closed ports,
              unix_socket_accepts, run, stop_pid, the server fetch lock,
              require_tool, hiding_path (checks that never skip)
  ca.py       CA and Certs (certtool)
  exim.py     Exim, EximMessage and its spool parser
  postfix.py  Postfix
  daemon.py   Daemon: a started daemon, its log, stop/kill by PID (Sendq
              and installed.Installed derive from it)
  sendq.py    Sendq (configuration, spool, sendqd), sendq_binary, parse_kv
  message.py  make_message, crlf_to_lf, remove_headers
  base.py     IntegrationTest (temp dirs, cleanup, diagnostics,
              assertions) and main()
  fake.py     FakeSmtp (tests/tools/fake_smtp_server.py on a free port)
  demo.py     the command line
Every public name is re-exported here: tests say `import harness` or
`from harness import X`, never the submodule.

Command line (also used by scripts/demo):
  python3 tests/integration/harness demo       the end-to-end demo
  python3 tests/integration/harness selftest   Exim + swaks check
"""

# The public names (and, as before the split, harness.unittest and the
# private helpers some tools reach for).
# flake8: noqa: F401
import unittest

from .proc import (BUILD_DIR, DEFAULT_TIMEOUT, EX_CONFIG, EX_DATAERR,
                   closed_port, tcp_socket_option,
                   EX_OK, EX_TEMPFAIL, EX_USAGE, GET_SERVERS, HERE,
                   SERVERS_DIR, SOURCE_DIR, HarnessError, _find_nss_wrapper,
                   fetch_servers, free_port, have_ipv6_loopback,
                   hiding_path, listening_ports, pid_alive, port_accepts,
                   require_tool, run, scaled, stop_pid,
                   unix_socket_accepts, unix_socket_request, wait_for)
from .ca import CA, Certs, _certtool
from .exim import (EXIM_CONFIG, Exim, EximMessage, _exim_env, exim_binary,
                   parse_exim_h, read_exim_message)
from .postfix import (POSTDROP_GID, POSTFIX_GID, POSTFIX_MAIN_CF,
                      POSTFIX_MASTER_CF, POSTFIX_UID, Postfix, _postfix_env,
                      postfix_root)
from .daemon import Daemon
from .sendq import Sendq, parse_kv, sendq_binary, valgrind_prefix
from .message import crlf_to_lf, make_message, remove_headers
from .base import IntegrationTest, main
from .fake import FAKE_SMTP_SERVER, FakeSmtp
from .demo import cli, demo, selftest
