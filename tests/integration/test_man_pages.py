#!/usr/bin/env python3
"""The manual pages (daemon/man/): every option of sendqd, sendq and
sendqctl --help is in its page and the other way round, every key of
conf/sendq.ini is in sendq.ini.5 (tests/tools/check_man.py, run against
the binaries of SENDQ_BUILD_DIR), the checker does notice a missing or
extra entry, and every page formats without a warning."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CHECK_MAN = os.path.join(harness.SOURCE_DIR, "tests", "tools",
                         "check_man.py")
MAN_DIR = os.path.join(harness.SOURCE_DIR, "daemon", "man")
PAGES = ("sendqd.8", "sendq.1", "sendqctl.8", "sendq.ini.5",
         "sendq-maildrop.5")


def run_check(source_dir=harness.SOURCE_DIR):
    for name in ("sendqd", "sendq", "sendqctl"):
        harness.sendq_binary(name)      # a clear error when not built
    return subprocess.run(
        [sys.executable, CHECK_MAN, "--build-dir", harness.BUILD_DIR,
         "--source-dir", source_dir],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120,
        universal_newlines=True)


class ManPagesTest(unittest.TestCase):

    def copy_of_the_sources(self):
        """A source tree with what check_man.py reads, to be spoilt."""
        d = tempfile.mkdtemp(prefix="sendq-man-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        shutil.copytree(MAN_DIR, os.path.join(d, "daemon", "man"))
        shutil.copy(os.path.join(harness.SOURCE_DIR, "daemon", "config.c"),
                    os.path.join(d, "daemon"))
        os.makedirs(os.path.join(d, "conf"))
        shutil.copy(os.path.join(harness.SOURCE_DIR, "conf", "sendq.ini"),
                    os.path.join(d, "conf"))
        return d

    def edit(self, path, old, new):
        with open(path) as f:
            text = f.read()
        self.assertIn(old, text)
        with open(path, "w") as f:
            f.write(text.replace(old, new, 1))

    def test_pages_match_help_and_the_configuration_reference(self):
        p = run_check()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_checker_reports_an_option_missing_from_a_page(self):
        d = self.copy_of_the_sources()
        self.edit(os.path.join(d, "daemon", "man", "sendqd.8"),
                  ".TP\n.BR \\-d \", \" \\-\\-debug\n", "")
        p = run_check(d)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("sendqd.8: option --debug is in --help", p.stdout)
        self.assertIn("sendqd.8: option -d is in --help", p.stdout)

    def test_checker_reports_an_option_not_in_help(self):
        d = self.copy_of_the_sources()
        self.edit(os.path.join(d, "daemon", "man", "sendqctl.8"),
                  ".SH OPTIONS\n", ".SH OPTIONS\n.TP\n.B \\-\\-force\n"
                  "Not an option.\n")
        p = run_check(d)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("sendqctl.8: option --force is in the man page's "
                      "OPTIONS section but not in --help", p.stdout)

    def test_checker_reports_a_configuration_key_not_described(self):
        d = self.copy_of_the_sources()
        self.edit(os.path.join(d, "conf", "sendq.ini"),
                  "[queue]\n", "[queue]\n;flush_interval = 1m\n")
        self.edit(os.path.join(d, "daemon", "man", "sendq.ini.5"),
                  ".TP\n.B idle_timeout\n", ".TP\n.B idle_timer\n")
        p = run_check(d)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("key flush_interval of conf/sendq.ini is not "
                      "described", p.stdout)
        self.assertIn("key idle_timeout of conf/sendq.ini is not "
                      "described", p.stdout)
        self.assertIn("idle_timer is described as a key", p.stdout)

    def test_every_page_formats_without_warnings(self):
        env = dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80",
                   LC_ALL="C.UTF-8")
        if shutil.which("man"):
            cmd = ["man", "--warnings", "-l"]
        else:
            cmd = [harness.require_tool("groff", "man-db (groff-base)"),
                   "-man", "-ww", "-z"]
        for page in PAGES:
            path = os.path.join(MAN_DIR, page)
            p = subprocess.run(cmd + [path], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, timeout=60,
                               universal_newlines=True)
            self.assertEqual(p.returncode, 0, (page, p.stderr))
            self.assertEqual(p.stderr, "", page)
            if cmd[0] == "man":
                self.assertIn("NAME", p.stdout, page)
            if shutil.which("mandoc"):
                p = subprocess.run(["mandoc", "-Tlint", "-W", "warning",
                                    path], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, timeout=60,
                                   universal_newlines=True)
                self.assertEqual(p.stdout, "", page)


if __name__ == "__main__":
    harness.main()
