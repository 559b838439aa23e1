#!/usr/bin/env python3
"""harness.py - run sendq against real SMTP servers on loopback.

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

Only the Python standard library is used.

Command line (also used by scripts/demo):
  python3 tests/integration/harness.py demo       the end-to-end demo
  python3 tests/integration/harness.py selftest   Exim + swaks check
"""

import atexit
import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("SENDQ_SOURCE_DIR") or \
    os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("SENDQ_BUILD_DIR") or \
    os.path.join(SOURCE_DIR, "build-test")
SERVERS_DIR = os.environ.get("SENDQ_SERVERS_DIR") or \
    os.path.join(SOURCE_DIR, ".cache", "servers")
GET_SERVERS = os.path.join(SOURCE_DIR, "tests", "tools", "get-servers")

# Generous: sanitizer builds on a busy CI machine are slow.
DEFAULT_TIMEOUT = float(os.environ.get("SENDQ_TEST_TIMEOUT", "30"))

# sysexits.h
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_TEMPFAIL = 75
EX_CONFIG = 78


class HarnessError(Exception):
    """The test environment itself is broken (not a product failure)."""


# ---------------------------------------------------------------- waiting

def wait_for(predicate, timeout=DEFAULT_TIMEOUT, interval=0.02, what=None):
    """Call predicate() until it returns a true value and return that.

    Polls every `interval` seconds until `timeout` seconds have passed,
    then raises AssertionError naming `what` (so a test fails cleanly);
    `what` may be a callable, called then for an up-to-date description.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            if callable(what):
                what = what()
            raise AssertionError("timed out after %.1fs waiting for %s" %
                                 (timeout, what or getattr(
                                     predicate, "__name__", "condition")))
        time.sleep(interval)  # poll the condition until the deadline


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    # A zombie that is not our child counts as gone.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- ports

def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(ipv6_too=False):
    """A TCP port that is free on 127.0.0.1 (and ::1 with ipv6_too).

    The kernel picks it (bind to port 0); the port is released again, so a
    server started right after will normally get it.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if not ipv6_too:
                return port
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                    s6.bind(("::1", port))
            except OSError:
                continue
            return port
    raise HarnessError("no free port found")


def listening_ports():
    """The set of local TCP ports in LISTEN state (from /proc/net)."""
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":  # TCP_LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- processes

def run(argv, input=None, env=None, cwd=None, timeout=60, check=False):
    """Run a command to completion, capturing bytes stdout/stderr."""
    p = subprocess.run(argv, input=input, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, cwd=cwd,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise HarnessError("%s failed (%d): %s" % (
            " ".join(argv), p.returncode,
            p.stderr.decode(errors="replace").strip()))
    return p


def stop_pid(pid, sig=signal.SIGTERM, timeout=10):
    """Send sig to pid and wait until it is gone; SIGKILL after timeout.
    Returns True when it stopped on the first signal."""
    if not pid_alive(pid):
        return True
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    try:
        wait_for(lambda: not pid_alive(pid), timeout=timeout,
                 what="pid %d to exit" % pid)
        return True
    except AssertionError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for(lambda: not pid_alive(pid), timeout=10,
                 what="pid %d to die after SIGKILL" % pid)
        return False


# ---------------------------------------------------------------- certificates

class CA:
    """A throwaway certificate authority made with certtool."""

    def __init__(self, directory, name):
        self.dir = directory
        self.name = name
        self.key = os.path.join(directory, name + ".key")
        self.cert = os.path.join(directory, name + ".pem")
        tmpl = self._template(name + ".tmpl", [
            'cn = "sendq test CA %s"' % name,
            'organization = "sendq tests"',
            "serial = 1",
            "ca",
            "cert_signing_key",
            "crl_signing_key",
            "expiration_days = 3650",
        ])
        _certtool(["--generate-privkey", "--key-type=ecdsa",
                   "--outfile", self.key])
        _certtool(["--generate-self-signed", "--load-privkey", self.key,
                   "--template", tmpl, "--outfile", self.cert])
        self._serial = 1

    def _template(self, fname, lines):
        path = os.path.join(self.dir, fname)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def issue(self, name, cn, dns_names=(), ip_addresses=()):
        """A server certificate signed by this CA.  Returns (cert, key)."""
        self._serial += 1
        key = os.path.join(self.dir, name + ".key")
        cert = os.path.join(self.dir, name + ".pem")
        lines = ['cn = "%s"' % cn, 'organization = "sendq tests"',
                 "serial = %d" % self._serial,
                 "tls_www_server", "signing_key", "encryption_key",
                 "expiration_days = 365"]
        lines += ['dns_name = "%s"' % d for d in dns_names]
        lines += ['ip_address = "%s"' % i for i in ip_addresses]
        tmpl = self._template(name + ".tmpl", lines)
        _certtool(["--generate-privkey", "--key-type=ecdsa",
                   "--outfile", key])
        _certtool(["--generate-certificate", "--load-privkey", key,
                   "--load-ca-certificate", self.cert,
                   "--load-ca-privkey", self.key,
                   "--template", tmpl, "--outfile", cert])
        return cert, key


def _certtool(args):
    if not shutil.which("certtool"):
        raise HarnessError("certtool not found (apt-get install gnutls-bin)")
    run(["certtool"] + args, check=True)


class Certs:
    """The certificates the tests need, in one directory.

    ca            the CA the tests trust (ca.pem)
    good          localhost / 127.0.0.1 / ::1, signed by ca
    untrusted     the same names, signed by other_ca (not trusted)
    wrong_host    signed by ca, but for wrong.example.net only
    """

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.ca = CA(directory, "ca")
        self.other_ca = CA(directory, "other-ca")
        names = dict(dns_names=["localhost"],
                     ip_addresses=["127.0.0.1", "::1"])
        self.good = self.ca.issue("good", "localhost", **names)
        self.untrusted = self.other_ca.issue("untrusted", "localhost",
                                             **names)
        self.wrong_host = self.ca.issue("wrong-host", "wrong.example.net",
                                        dns_names=["wrong.example.net"])


# ---------------------------------------------------------------- exim

def _find_nss_wrapper():
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
              "/usr/lib64", "/usr/lib"):
        p = os.path.join(d, "libnss_wrapper.so")
        if os.path.exists(p):
            return p
    return None


def exim_binary():
    """Path of the private exim4 binary, fetching it once if needed."""
    path = os.path.join(SERVERS_DIR, "exim", "usr", "sbin", "exim4")
    marker = os.path.join(SERVERS_DIR, "exim", ".complete")
    if os.path.exists(marker) and os.access(path, os.X_OK):
        return path
    os.makedirs(SERVERS_DIR, exist_ok=True)
    # Several tests may start at once (ctest -j): fetch under a lock.
    with open(os.path.join(SERVERS_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(marker):
            p = run(["bash", GET_SERVERS], timeout=600)
            if p.returncode != 0:
                raise HarnessError("tests/tools/get-servers failed:\n" +
                                   p.stderr.decode(errors="replace"))
    if not os.access(path, os.X_OK):
        raise HarnessError("no exim binary at %s" % path)
    return path


def _exim_env(workdir):
    """Environment for the private Exim.

    Debian's exim4 is built with EXIM_USER=Debian-exim and looks that user
    up before reading its configuration.  Rather than adding a system user,
    nss_wrapper gives it a private passwd/group that has one (the config
    then says exim_user = root).  When the system has the user, nothing
    is wrapped.
    """
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
    try:
        import pwd
        pwd.getpwnam("Debian-exim")
        return env
    except KeyError:
        pass
    wrapper = _find_nss_wrapper()
    if not wrapper:
        raise HarnessError("user Debian-exim missing and libnss_wrapper.so "
                           "not found (apt-get install libnss-wrapper)")
    passwd = os.path.join(workdir, "passwd")
    group = os.path.join(workdir, "group")
    with open(passwd, "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n"
                "Debian-exim:x:64999:64999:exim:/nonexistent:"
                "/usr/sbin/nologin\n")
    with open(group, "w") as f:
        f.write("root:x:0:\nDebian-exim:x:64999:\n")
    env.update(LD_PRELOAD=wrapper, NSS_WRAPPER_PASSWD=passwd,
               NSS_WRAPPER_GROUP=group)
    return env


class EximMessage:
    """One message as Exim stored it.

    id          Exim's message id
    sender      envelope sender ("" for the null sender)
    recipients  envelope recipients, in order
    headers     [(flag, text)] with text as stored (LF line ends,
                continuation lines included, final LF included); flag is
                Exim's: " " plain, "P" Received, "F" From, "T" To, "I"
                Message-ID, "*" a header Exim marked deleted (kept here:
                the client did send it) ...
    body        bytes after the header/body separator (LF line ends)
    options     the "-name value" lines of the -H file, as a dict
    """

    def __init__(self, msgid, sender, recipients, headers, body, options):
        self.id = msgid
        self.sender = sender
        self.recipients = recipients
        self.headers = headers
        self.body = body
        self.options = options

    def header_names(self):
        return [h.split(b":", 1)[0].decode(errors="replace").lower()
                for _, h in self.headers]

    def header(self, name):
        """The unfolded value (str) of the first header called name
        (not counting ones Exim marked deleted), or None."""
        want = name.lower().encode()
        for flag, text in self.headers:
            key, sep, value = text.partition(b":")
            if flag != "*" and sep and key.strip().lower() == want:
                return re.sub(rb"\r?\n[ \t]+", b" ", value).strip().decode(
                    errors="replace")
        return None

    def original_headers(self):
        """The header lines as the client sent them: without the trace
        header Exim prepends (the first Received:, flagged P)."""
        hs = list(self.headers)
        if hs and hs[0][0] == "P" and hs[0][1].lower().startswith(
                b"received:"):
            hs = hs[1:]
        return [text for _, text in hs]

    def as_received(self):
        """The message as the client sent it, with LF line ends."""
        return b"".join(self.original_headers()) + b"\n" + self.body


def parse_exim_h(data):
    """Parse an Exim -H spool file (bytes).  Returns a dict with sender,
    recipients, headers [(flag, bytes)], options {name: value}."""
    pos = 0

    def line():
        nonlocal pos
        end = data.index(b"\n", pos)
        s = data[pos:end]
        pos = end + 1
        return s

    name = line()                       # ID-H
    if not name.endswith(b"-H"):
        raise ValueError("not an Exim -H file: %r" % name[:40])
    line()                              # login uid gid
    sender = line()
    if not (sender.startswith(b"<") and sender.endswith(b">")):
        raise ValueError("bad sender line %r" % sender)
    sender = sender[1:-1].decode()
    line()                              # received time, warning count
    options = {}
    while data[pos:pos + 1] == b"-":
        opt = line()[1:].decode(errors="replace")
        key, _, value = opt.partition(" ")
        options[key] = value
    # Optional non-recipients tree: "XX" for empty, else a tree of lines
    # starting with Y or N.
    while data[pos:pos + 1] in (b"X", b"Y", b"N"):
        line()
    count = int(line())
    recipients = []
    for _ in range(count):
        r = line().decode()
        # Flagged recipients look like "addr N,M#F"; plain ones are bare.
        m = re.match(r"^(.*) \d+,\d+#\d+$", r)
        if m:
            r = m.group(1)
        recipients.append(r)
    if line() != b"":
        raise ValueError("no blank line after the recipients")
    headers = []
    while pos < len(data):
        m = re.compile(rb"(\d+)(.) ").match(data, pos)
        if not m:
            raise ValueError("bad header entry at offset %d" % pos)
        length = int(m.group(1))
        flag = m.group(2).decode()
        start = m.end()
        headers.append((flag, data[start:start + length]))
        pos = start + length
    return dict(sender=sender, recipients=recipients, headers=headers,
                options=options)


def read_exim_message(input_dir, msgid):
    with open(os.path.join(input_dir, msgid + "-H"), "rb") as f:
        h = parse_exim_h(f.read())
    with open(os.path.join(input_dir, msgid + "-D"), "rb") as f:
        d = f.read()
    first = d.index(b"\n")
    if d[:first] != (msgid + "-D").encode():
        raise ValueError("bad -D file for %s" % msgid)
    return EximMessage(msgid, h["sender"], h["recipients"], h["headers"],
                       d[first + 1:], h["options"])


EXIM_CONFIG = """\
# Private Exim for sendq's integration tests (written by harness.py).
primary_hostname = exim.test
keep_environment =
exim_user = root
exim_group = root
never_users =
spool_directory = @DIR@/spool
log_file_path = @DIR@/log/%slog
pid_file_path = @DIR@/exim.pid
notifier_socket =
local_interfaces = @INTERFACES@
daemon_smtp_ports = @PORTS@
tls_on_connect_ports = @IMPLICIT_PORTS@
tls_advertise_hosts = @TLS_ADVERTISE@
tls_certificate = @CERT@
tls_privatekey = @KEY@
auth_advertise_hosts = ${if eq{$tls_in_cipher}{}{}{*}}
host_lookup =
rfc1413_hosts =
rfc1413_query_timeout = 0s
queue_only = true
acl_smtp_rcpt = acl_rcpt
log_selector = +received_recipients +tls_peerdn +smtp_connection \
  +incoming_interface

begin acl

acl_rcpt:
@REJECT_ACL@  accept

begin routers

begin transports

begin authenticators

plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = ${if and{{eq{$auth2}{@USER@}}{eq{$auth3}{@PASSWORD@}}}}
  server_set_id = $auth2

login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = User Name : Password
  server_condition = ${if and{{eq{$auth1}{@USER@}}{eq{$auth2}{@PASSWORD@}}}}
  server_set_id = $auth1
"""


class Exim:
    """A private Exim daemon in workdir that keeps what it accepts.

    starttls_port: plain SMTP, STARTTLS advertised unless
                   advertise_starttls is False.
    implicit_port: TLS from the first byte (SMTPS).
    """

    def __init__(self, workdir, cert, key, advertise_starttls=True,
                 user="sendq", password="secret", reject_recipients=(),
                 defer_recipients=()):
        self.dir = workdir
        # RCPT TO one of these gets "550 5.1.1 <ADDR>: no such user".
        self.reject_recipients = list(reject_recipients)
        # RCPT TO one of these gets "451 4.2.1 <ADDR>: mailbox busy, try
        # later" (a temporary refusal, every time).
        self.defer_recipients = list(defer_recipients)
        self.cert = cert
        self.key = key
        self.advertise_starttls = advertise_starttls
        self.user = user
        self.password = password
        self.pid = None
        self.ipv6 = have_ipv6_loopback()
        self.starttls_port = free_port(self.ipv6)
        self.implicit_port = free_port(self.ipv6)
        while self.implicit_port == self.starttls_port:
            self.implicit_port = free_port(self.ipv6)
        self.binary = exim_binary()
        self.config = os.path.join(workdir, "exim.conf")
        self.pidfile = os.path.join(workdir, "exim.pid")
        self.input_dir = os.path.join(workdir, "spool", "input")
        self.mainlog = os.path.join(workdir, "log", "mainlog")
        self.paniclog = os.path.join(workdir, "log", "paniclog")

    def write_config(self):
        os.makedirs(os.path.join(self.dir, "spool"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "log"), exist_ok=True)
        interfaces = "<; 127.0.0.1" + (" ; ::1" if self.ipv6 else "")
        values = dict(
            DIR=self.dir, INTERFACES=interfaces,
            PORTS="%d : %d" % (self.starttls_port, self.implicit_port),
            IMPLICIT_PORTS=str(self.implicit_port),
            TLS_ADVERTISE="*" if self.advertise_starttls else "",
            CERT=self.cert, KEY=self.key,
            USER=self.user, PASSWORD=self.password,
            REJECT_ACL=self._reject_acl())
        text = re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)],
                      EXIM_CONFIG)
        with open(self.config, "w") as f:
            f.write(text)

    def start(self, timeout=DEFAULT_TIMEOUT):
        """Start the daemon and wait until both ports listen."""
        self.write_config()
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)
        env = _exim_env(self.dir)
        p = run([self.binary, "-C", self.config, "-bd", "-oP",
                 self.pidfile], env=env, timeout=timeout)
        if p.returncode != 0:
            raise HarnessError("exim -bd failed (%d): %s%s" % (
                p.returncode, p.stderr.decode(errors="replace"),
                self.panic_text()))

        def started():
            try:
                with open(self.pidfile) as f:
                    pid = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                return None
            return pid
        try:
            self.pid = wait_for(started, timeout=timeout,
                                what="exim pid file")
            wait_for(lambda: {self.starttls_port, self.implicit_port} <=
                     listening_ports(), timeout=timeout,
                     what="exim to listen on %d and %d" % (
                         self.starttls_port, self.implicit_port))
        except AssertionError as e:
            raise HarnessError("%s\n%s%s" % (e, self.log_text(),
                                             self.panic_text()))
        return self

    def _reject_acl(self):
        """The acl_rcpt lines refusing reject_recipients (550) and
        deferring defer_recipients (451); "" if neither."""
        text = ""
        for r in self.reject_recipients + self.defer_recipients:
            if not re.match(r"^[\w.+-]+@[\w.-]+$", r):
                raise HarnessError("reject/defer_recipients: bad address "
                                   "%r" % r)
        if self.reject_recipients:
            text += ("  deny recipients = %s\n"
                     "       message = 550 5.1.1 <$local_part@$domain>: "
                     "no such user\n" % " : ".join(self.reject_recipients))
        if self.defer_recipients:
            text += ("  defer recipients = %s\n"
                     "       message = 451 4.2.1 <$local_part@$domain>: "
                     "mailbox busy, try later\n" %
                     " : ".join(self.defer_recipients))
        return text

    def stop(self):
        if self.pid is not None:
            stop_pid(self.pid)
            self.pid = None

    def running(self):
        return self.pid is not None and pid_alive(self.pid)

    def message_ids(self):
        """Ids of the messages Exim has accepted (complete -H files)."""
        try:
            names = os.listdir(self.input_dir)
        except FileNotFoundError:
            return []
        ids = [n[:-2] for n in names if n.endswith("-H")]
        return sorted(ids)

    def messages(self):
        """Every accepted message, in the order Exim received them."""
        msgs = [read_exim_message(self.input_dir, i)
                for i in self.message_ids()]
        msgs.sort(key=lambda m: (float(m.options.get(
            "received_time_complete", "0").replace(" ", ".") or 0), m.id))
        return msgs

    def wait_messages(self, n, timeout=DEFAULT_TIMEOUT):
        """Wait until exactly-or-more n messages arrived; return them."""
        wait_for(lambda: len(self.message_ids()) >= n, timeout=timeout,
                 what="exim to receive %d message(s)" % n)
        return self.messages()

    def log_text(self):
        try:
            with open(self.mainlog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def panic_text(self):
        try:
            with open(self.paniclog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def arrival_lines(self):
        """Main log lines of accepted messages ("<=")."""
        return [ln for ln in self.log_text().splitlines() if " <= " in ln]

    def connection_lines(self):
        """Main log lines of accepted SMTP connections, one per TCP
        connection ("SMTP connection from [127.0.0.1] I=[...]:PORT (TCP/IP
        connection count = N)"; the "closed by QUIT" / "lost" lines are
        not counted)."""
        return [ln for ln in self.log_text().splitlines()
                if "SMTP connection from " in ln and
                "TCP/IP connection count = " in ln]

    def connection_count(self):
        """How many SMTP connections Exim accepted so far."""
        return len(self.connection_lines())

    def max_concurrent_connections(self):
        """The highest "TCP/IP connection count" Exim logged: how many
        connections were open at once, at most (0 if none)."""
        counts = [int(m.group(1)) for m in (
            re.search(r"TCP/IP connection count = (\d+)", ln)
            for ln in self.connection_lines()) if m]
        return max(counts, default=0)


# ---------------------------------------------------------------- postfix

def postfix_root():
    """Root folder of the private Postfix (usr/sbin, usr/lib/postfix ...),
    fetching it once if needed."""
    root = os.path.join(SERVERS_DIR, "postfix")
    marker = os.path.join(root, ".complete")
    master = os.path.join(root, "usr", "lib", "postfix", "sbin", "master")
    if os.path.exists(marker) and os.access(master, os.X_OK):
        return root
    os.makedirs(SERVERS_DIR, exist_ok=True)
    with open(os.path.join(SERVERS_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(marker):
            p = run(["bash", GET_SERVERS], timeout=600)
            if p.returncode != 0:
                raise HarnessError("tests/tools/get-servers failed:\n" +
                                   p.stderr.decode(errors="replace"))
    if not os.access(master, os.X_OK):
        raise HarnessError("no postfix master at %s" % master)
    return root


# Users Postfix needs: mail_owner (not root) and setgid_group, with
# different ids.  Used only when the system lacks them (nss_wrapper).
POSTFIX_UID = 64998
POSTFIX_GID = 64998
POSTDROP_GID = 64997


def _postfix_env(workdir, root):
    """Environment for the private Postfix programs: its private libraries
    and, when the system has no postfix user / postdrop group, a private
    passwd/group through nss_wrapper (as _exim_env does for Exim).
    Returns (env, uid, gid, postdrop_gid)."""
    import grp
    import pwd
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C",
           "LD_LIBRARY_PATH": os.path.join(root, "usr", "lib", "postfix")}
    try:
        pw = pwd.getpwnam("postfix")
        return env, pw.pw_uid, pw.pw_gid, grp.getgrnam("postdrop").gr_gid
    except KeyError:
        pass
    wrapper = _find_nss_wrapper()
    if not wrapper:
        raise HarnessError("user postfix / group postdrop missing and "
                           "libnss_wrapper.so not found (apt-get install "
                           "libnss-wrapper)")
    passwd = os.path.join(workdir, "passwd")
    group = os.path.join(workdir, "group")
    with open(passwd, "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n"
                "postfix:x:%d:%d:postfix:/nonexistent:/usr/sbin/nologin\n"
                "nobody:x:65534:65534:nobody:/nonexistent:"
                "/usr/sbin/nologin\n" % (POSTFIX_UID, POSTFIX_GID))
    with open(group, "w") as f:
        f.write("root:x:0:\npostfix:x:%d:\npostdrop:x:%d:\n"
                "nogroup:x:65534:\n" % (POSTFIX_GID, POSTDROP_GID))
    env.update(LD_PRELOAD=wrapper, NSS_WRAPPER_PASSWD=passwd,
               NSS_WRAPPER_GROUP=group)
    return env, POSTFIX_UID, POSTFIX_GID, POSTDROP_GID


POSTFIX_MAIN_CF = """\
# Private Postfix for sendq's integration tests (written by harness.py).
compatibility_level = 3.6
config_directory = @DIR@/etc
queue_directory = @QUEUE@
data_directory = @DIR@/data
meta_directory = @DIR@/etc
command_directory = @ROOT@/usr/sbin
daemon_directory = @ROOT@/usr/lib/postfix/sbin
shlib_directory = @ROOT@/usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C
  LD_LIBRARY_PATH LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
maillog_file = @DIR@/maillog
maillog_file_prefixes = @DIR@
myhostname = postfix.test
mydomain = postfix.test
mydestination =
relay_domains =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP
smtpd_tls_cert_file = @CERT@
smtpd_tls_key_file = @KEY@
smtpd_tls_security_level = may
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtpd_recipient_restrictions =
  check_recipient_access texthash:@DIR@/etc/recipient_access
  permit_mynetworks reject_unauth_destination
smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination
# Keep every message: the smtp transport is deferred, so each recipient
# gets a "status=deferred (deferred transport)" log line and the message
# stays in the deferred queue.
defer_transports = smtp, relay
queue_run_delay = 3600s
minimal_backoff_time = 3600s
maximal_backoff_time = 3600s
bounce_queue_lifetime = 1d
maximal_queue_lifetime = 1d
biff = no
alias_maps =
alias_database =
"""

POSTFIX_MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:@PORT@ inet n - n - - smtpd
postlog   unix-dgram n  -       n       -       1       postlogd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
"""


class Postfix:
    """A private Postfix in workdir that keeps what it accepts.

    port: plain SMTP on 127.0.0.1 with STARTTLS offered (security level
    "may") and PIPELINING.  Every recipient in reject_recipients is refused
    with 550 at RCPT; the rest are accepted (relayed for any domain from
    loopback) and kept in Postfix's deferred queue.  Its log is the file
    maillog (postlogd), read by arrival_lines()/recipients_received().
    extra_main: more main.cf settings {name: value} (appended, so they
    override the defaults).
    """

    def __init__(self, workdir, cert, key,
                 reject_recipients=("rejected@example.net",),
                 extra_main=None):
        self.dir = workdir
        self.extra_main = dict(extra_main or {})
        self.cert = cert
        self.key = key
        self.reject_recipients = list(reject_recipients)
        self.pid = None
        self.port = free_port()
        self.root = postfix_root()
        os.makedirs(workdir, exist_ok=True)
        self.maillog = os.path.join(workdir, "maillog")
        # Postfix's sockets live in the queue; a socket path must fit in
        # sun_path (108 bytes), so a long workdir gets a short queue
        # folder of its own in /tmp, removed by stop().
        self.queue_dir = os.path.join(workdir, "queue")
        self._own_queue = False
        if len(self.queue_dir) > 60:
            self.queue_dir = tempfile.mkdtemp(prefix="sqpf-")
            os.chmod(self.queue_dir, 0o755)
            self._own_queue = True
        self.pidfile = os.path.join(self.queue_dir, "pid", "master.pid")
        self.env, self.uid, self.gid, self.postdrop_gid = \
            _postfix_env(workdir, self.root)
        self.conf_dir = os.path.join(workdir, "etc")
        self.env["MAIL_CONFIG"] = self.conf_dir
        # Postfix's unprivileged processes must reach their queue (and
        # smtpd its key) below test directories that mkdtemp made 0700.
        top = os.path.realpath(tempfile.gettempdir())
        d = os.path.realpath(workdir)
        while d.startswith(top + os.sep):
            st = os.stat(d)
            if st.st_uid == os.getuid() and not st.st_mode & 0o001:
                os.chmod(d, (st.st_mode & 0o7777) | 0o011)
            d = os.path.dirname(d)

    def _cmd(self, name):
        return os.path.join(self.root, "usr", "sbin", name)

    def write_config(self):
        values = dict(DIR=self.dir, QUEUE=self.queue_dir, ROOT=self.root,
                      CERT=self.cert,
                      KEY=self.key, PORT=str(self.port))
        os.makedirs(self.conf_dir, exist_ok=True)
        for name, tmpl in (("main.cf", POSTFIX_MAIN_CF),
                           ("master.cf", POSTFIX_MASTER_CF)):
            text = re.sub(r"@([A-Z_]+)@", lambda m: values[m.group(1)],
                          tmpl)
            if name == "main.cf":
                text += "".join("%s = %s\n" % kv
                                for kv in self.extra_main.items())
            with open(os.path.join(self.conf_dir, name), "w") as f:
                f.write(text)
        with open(os.path.join(self.conf_dir, "recipient_access"),
                  "w") as f:
            for r in self.reject_recipients:
                f.write("%s 550 5.1.1 <%s>: rejected by test policy\n"
                        % (r, r))
        # Files postfix(1) and post-install read from meta_directory.
        src = os.path.join(self.root, "etc", "postfix", "postfix-files")
        shutil.copy(src, os.path.join(self.conf_dir, "postfix-files"))
        shutil.copy(os.path.join(self.root, "usr", "share", "postfix",
                                 "dynamicmaps.cf"),
                    os.path.join(self.conf_dir, "dynamicmaps.cf"))
        # The queue layout post-install would make, owned as Postfix wants.
        uid, pd = self.uid, self.postdrop_gid
        q = self.queue_dir
        layout = [(q, 0, 0, 0o755), (q + "/pid", 0, 0, 0o755),
                  (self.dir + "/data", uid, 0, 0o700),
                  (q + "/maildrop", uid, pd, 0o730),
                  (q + "/public", uid, pd, 0o710)]
        for d in ("incoming", "active", "deferred", "defer", "bounce",
                  "trace", "corrupt", "hold", "flush", "saved",
                  "private"):
            layout.append((q + "/" + d, uid, 0, 0o700))
        for path, u, g, mode in layout:
            os.makedirs(path, exist_ok=True)
            os.chown(path, u, g)
            os.chmod(path, mode)

    def start(self, timeout=DEFAULT_TIMEOUT):
        """Start master and wait until the SMTP port listens."""
        self.write_config()
        # postfix(1) reports errors on stderr only when that is a
        # terminal (else to syslog): give it a pty to read them back.
        import pty
        master_fd, slave_fd = pty.openpty()
        try:
            p = subprocess.run([self._cmd("postfix"), "-c", self.conf_dir,
                                "start"], stdin=subprocess.DEVNULL,
                               stdout=slave_fd, stderr=slave_fd,
                               env=self.env, timeout=timeout)
            os.close(slave_fd)
            slave_fd = -1
            out = b""
            while True:
                try:
                    chunk = os.read(master_fd, 4096)
                except OSError:         # EIO: the pty is closed
                    break
                if not chunk:
                    break
                out += chunk
        finally:
            if slave_fd >= 0:
                os.close(slave_fd)
            os.close(master_fd)
        if p.returncode != 0:
            raise HarnessError("postfix start failed (%d): %s\n%s" % (
                p.returncode, out.decode(errors="replace").strip(),
                self.log_text()))

        def started():
            try:
                with open(self.pidfile) as f:
                    return int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                return None
        try:
            self.pid = wait_for(started, timeout=timeout,
                                what="postfix master pid file")
            wait_for(lambda: self.port in listening_ports(),
                     timeout=timeout,
                     what="postfix to listen on %d" % self.port)
        except AssertionError as e:
            raise HarnessError("%s\n%s" % (e, self.log_text()))
        return self

    def stop(self):
        if self.pid is not None:
            pid, self.pid = self.pid, None
            # master stops its children when it gets SIGTERM.
            stop_pid(pid)
        if self._own_queue:
            self._own_queue = False
            shutil.rmtree(self.queue_dir, ignore_errors=True)

    def running(self):
        return self.pid is not None and pid_alive(self.pid)

    def log_text(self):
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def arrival_lines(self):
        """qmgr's "from=<...>, size=N, nrcpt=N (queue active)" lines: one
        per accepted message."""
        return [ln for ln in self.log_text().splitlines()
                if "postfix/qmgr[" in ln and " nrcpt=" in ln]

    def recipients_received(self):
        """Every accepted recipient, from the per-recipient delivery lines
        (all deferred by defer_transports), in log order."""
        out = []
        for ln in self.log_text().splitlines():
            if "status=deferred" not in ln:
                continue
            m = re.search(r" to=<([^>]*)>", ln)
            if m:
                out.append(m.group(1))
        return out

    def reject_lines(self):
        """smtpd's "reject: RCPT from ..." lines (one per refused RCPT)."""
        return [ln for ln in self.log_text().splitlines()
                if " reject: RCPT from " in ln]

    def queue_ids(self):
        """Ids of the messages kept in the deferred queue."""
        out = []
        for root, _, files in os.walk(os.path.join(self.queue_dir,
                                                   "deferred")):
            out.extend(files)
        return sorted(out)

    def wait_messages(self, n, timeout=DEFAULT_TIMEOUT):
        """Wait until at least n messages were accepted and every
        recipient of them was logged; return arrival_lines()."""
        def done():
            lines = self.arrival_lines()
            if len(lines) < n:
                return None
            want = sum(int(re.search(r" nrcpt=(\d+)", ln).group(1))
                       for ln in lines)
            return lines if len(self.recipients_received()) >= want \
                else None
        return wait_for(done, timeout=timeout,
                        what=lambda: "postfix to receive %d message(s) "
                        "(has %d)" % (n, len(self.arrival_lines())))


# ---------------------------------------------------------------- sendq

def valgrind_prefix():
    """With SENDQ_VALGRIND=1 sendqd runs under valgrind memcheck (a build
    without sanitizers): any invalid access or definite leak makes it exit
    99, which the tests' clean-stop checks report."""
    if os.environ.get("SENDQ_VALGRIND") != "1":
        return []
    supp = os.path.join(SOURCE_DIR, "tests", "valgrind.supp")
    return ["valgrind", "--quiet", "--error-exitcode=99",
            "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite", "--track-fds=no",
            "--suppressions=" + supp]


def sendq_binary(name):
    path = os.path.join(BUILD_DIR, name)
    if not os.access(path, os.X_OK):
        raise HarnessError("%s not built (looked in %s; set "
                           "SENDQ_BUILD_DIR)" % (name, BUILD_DIR))
    return path


def parse_kv(line):
    """key=value pairs of a log line; values may be "double quoted"
    with backslash escapes."""
    out = {}
    for m in re.finditer(r'(\w+)=("((?:[^"\\]|\\.)*)"|\S*)', line):
        if m.group(3) is not None:
            out[m.group(1)] = re.sub(r"\\(.)", r"\1", m.group(3))
        else:
            out[m.group(1)] = m.group(2)
    return out


class Sendq:
    """One sendq installation in workdir: config, spool, daemon.

    smarthost: dict of [smarthost NAME] keys (host, port, tls, trust,
    ca_file ...); name is the NAME.
    """

    def __init__(self, workdir, smarthost, name="exim", extra_sendq=None,
                 extra_queue=None, log_level="debug", more_smarthosts=()):
        self.dir = workdir
        self.spool = os.path.join(workdir, "sendq-spool")
        self.config = os.path.join(workdir, "sendq.ini")
        self.daemon_log = os.path.join(workdir, "sendqd.log")
        self.name = name
        self.smarthost = dict(smarthost)
        self.extra_sendq = extra_sendq or {}
        self.extra_queue = extra_queue or {}
        self.log_level = log_level
        # [(NAME, {key: value})]: more [smarthost NAME] sections, written
        # after the first one, in this order.
        self.more_smarthosts = [(n, dict(sh)) for n, sh in more_smarthosts]
        self.proc = None
        self._log_file = None
        self.exit_codes = []
        self.transcript = []            # sendq runs, for diagnostics
        # A control socket of its own (never the system's
        # /run/sendq/control.sock), on a path short enough for sun_path.
        if "control_socket" not in self.extra_sendq:
            sock = os.path.join(workdir, "control.sock")
            if len(sock) > 100:
                d = tempfile.mkdtemp(prefix="sq-ctl-")
                atexit.register(shutil.rmtree, d, ignore_errors=True)
                sock = os.path.join(d, "control.sock")
            self.extra_sendq["control_socket"] = sock
        self.control_socket = self.extra_sendq["control_socket"]
        self.write_config()
        self.drop_helper = self.write_drop_helper()

    def write_drop_helper(self, config=None):
        """A script that runs the build tree's sendq-drop-testing with
        this installation's config (sendq runs the helper with an empty
        environment, so the path is written into the script).  Its path
        goes to sendq as SENDQ_DROP_HELPER."""
        path = os.path.join(self.dir, "sendq-drop-helper")
        with open(path, "w") as f:
            f.write("#!/bin/sh\nSENDQ_DROP_TEST_CONFIG='%s' exec '%s' "
                    "\"$@\"\n" % (config or self.config,
                                   sendq_binary("sendq-drop-testing")))
        os.chmod(path, 0o755)
        return path

    def sendq_env(self):
        """The environment sendq runs with: the drop helper of the build
        tree.  Before sendqd has ever run, the spool and its maildrop are
        made as systemd/sendq.tmpfiles makes them on an install (sendq
        and its helper never create them)."""
        if not os.path.exists(self.spool):
            os.makedirs(os.path.join(self.spool, "maildrop", "tmp"))
            os.chmod(self.spool, 0o711)
            os.chmod(os.path.join(self.spool, "maildrop"), 0o1730)
            os.chmod(os.path.join(self.spool, "maildrop", "tmp"), 0o1730)
        return dict(os.environ, SENDQ_DROP_HELPER=self.drop_helper)

    def maildrop_files(self):
        """Published files in maildrop/ (not tmp/, rejected/)."""
        d = os.path.join(self.spool, "maildrop")
        try:
            return sorted(n for n in os.listdir(d)
                          if os.path.isfile(os.path.join(d, n)))
        except FileNotFoundError:
            return []

    def config_text(self):
        lines = ["[sendq]",
                 "spool_dir = %s" % self.spool,
                 "hostname = localhost",
                 "log_level = %s" % self.log_level]
        lines += ["%s = %s" % kv for kv in self.extra_sendq.items()]
        lines += ["", "[queue]", "retry_min = 1s"]
        lines += ["%s = %s" % kv for kv in self.extra_queue.items()]
        lines += ["", "[smarthost %s]" % self.name]
        lines += ["%s = %s" % kv for kv in self.smarthost.items()]
        for name, sh in self.more_smarthosts:
            lines += ["", "[smarthost %s]" % name]
            lines += ["%s = %s" % kv for kv in sh.items()]
        return "\n".join(lines) + "\n"

    def write_config(self, smarthost=None):
        if smarthost is not None:
            self.smarthost = dict(smarthost)
        with open(self.config, "w") as f:
            f.write(self.config_text())

    # -- the sendq command
    def sendq(self, args, message=b"", config=None, timeout=60):
        """Run `sendq -C CONFIG ARGS < message`; CompletedProcess."""
        argv = [sendq_binary("sendq"), "-C", config or self.config]
        p = run(argv + list(args), input=message, timeout=timeout,
                env=self.sendq_env())
        self.transcript.append("$ %s  (%d bytes in) -> exit %d%s" % (
            " ".join(argv[1:]), len(message), p.returncode,
            ("\n  " + p.stderr.decode(errors="replace").strip())
            if p.stderr.strip() else ""))
        return p

    def submit(self, message, recipients, sender=None, args=()):
        """sendq a message that must be queued (exit 0); returns the
        CompletedProcess."""
        argv = list(args)
        if sender is not None:
            argv += ["-f", sender]
        p = self.sendq(argv + list(recipients), message)
        if p.returncode != 0:
            raise AssertionError("sendq exited %d: %s" % (
                p.returncode, p.stderr.decode(errors="replace")))
        return p

    def submit_many(self, items, threads=4, env=None):
        """Queue many messages fast: items are (message, recipients,
        sender) tuples, each run as one `sendq -f SENDER RCPT...` by a pool
        of `threads` threads, with env added to sendq's environment.  Every
        run must exit 0 (AssertionError naming the failures otherwise).
        Only failures go to the transcript."""
        import concurrent.futures
        argv0 = [sendq_binary("sendq"), "-C", self.config]
        env = dict(self.sendq_env(), **(env or {}))

        def one(item):
            message, recipients, sender = item
            argv = argv0 + ["-f", sender] + list(recipients)
            return argv, run(argv, input=message, env=env)
        failures = []
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            for argv, p in pool.map(one, items):
                if p.returncode != 0:
                    failures.append("$ %s -> exit %d: %s" % (
                        " ".join(argv[1:]), p.returncode,
                        p.stderr.decode(errors="replace").strip()))
        self.transcript.append("submit_many: %d messages, %d failed" % (
            len(items), len(failures)))
        self.transcript.extend(failures)
        if failures:
            raise AssertionError("%d of %d sendq runs failed, first: %s" % (
                len(failures), len(items), failures[0]))

    # -- the spool
    def queue_dir(self):
        return os.path.join(self.spool, "queue")

    def queued(self):
        """Ids of queued messages (those whose .env exists)."""
        try:
            names = os.listdir(self.queue_dir())
        except FileNotFoundError:
            return []
        return sorted(n[:-4] for n in names if n.endswith(".env"))

    def one_queued(self):
        """The id of the only queued message (AssertionError otherwise).
        While sendqd runs and a dropped file waits in maildrop/ (sendq
        submitted it while sendqd was down), wait for its pick-up."""
        if self.running():
            wait_for(lambda: self.queued() or not self.maildrop_files(),
                     what="the maildrop picked up")
        ids = self.queued()
        if len(ids) != 1:
            raise AssertionError("expected 1 queued message, found %d "
                                 "(spool: %s)" % (len(ids),
                                                  self.spool_files()))
        return ids[0]

    def spool_files(self):
        """Every file under the spool, relative paths (for diagnostics)."""
        out = []
        for root, _, files in os.walk(self.spool):
            for f in files:
                out.append(os.path.relpath(os.path.join(root, f),
                                           self.spool))
        return sorted(out)

    def spool_subdir_files(self, subdir):
        """Names of the files in spool_dir/SUBDIR (tmp, queue, failed
        ...), sorted; [] when it does not exist."""
        try:
            return sorted(os.listdir(os.path.join(self.spool, subdir)))
        except FileNotFoundError:
            return []

    def failed_envs(self):
        """Paths of the failed/ID.N.env files (held recipients)."""
        d = os.path.join(self.spool, "failed")
        return [os.path.join(d, n) for n in self.spool_subdir_files("failed")
                if re.match(r".+\.\d+\.env$", n)]

    def queued_message(self, msgid):
        with open(os.path.join(self.queue_dir(), msgid + ".msg"), "rb") as f:
            return f.read()

    # -- the daemon
    def start(self):
        """Start `sendqd -C CONFIG` in the foreground, stderr to a log."""
        if self.proc is not None:
            raise HarnessError("sendqd already running")
        self._log_file = open(self.daemon_log, "ab")
        self.proc = subprocess.Popen(
            valgrind_prefix() + [sendq_binary("sendqd"), "-C", self.config],
            stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=self._log_file, start_new_session=True)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        """PID of the running sendqd (None when not started)."""
        return self.proc.pid if self.proc is not None else None

    def kill(self):
        """SIGKILL sendqd (by its PID) and reap it, as a crash would end
        it; start() may then be called again.  Returns its exit code."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self._log_file.close()
        self._log_file = None
        self.exit_codes.append(proc.returncode)
        return proc.returncode

    def stop(self, timeout=DEFAULT_TIMEOUT):
        """SIGTERM sendqd and wait; returns its exit code (negative for a
        signal; SIGKILL after timeout)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._log_file.close()
        self._log_file = None
        self.exit_codes.append(proc.returncode)
        return proc.returncode

    def log_text(self):
        try:
            with open(self.daemon_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def delivery_lines(self, result=None):
        """Parsed `delivery` log lines ({key: value}, plus "line")."""
        out = []
        for ln in self.log_text().splitlines():
            if " delivery " not in ln and not ln.startswith("delivery "):
                continue
            kv = parse_kv(ln)
            kv["line"] = ln
            if result is None or kv.get("result") == result:
                out.append(kv)
        return out

    def wait_log(self, pattern, timeout=DEFAULT_TIMEOUT):
        """Wait for a daemon log line matching regex pattern; return the
        match object."""
        rx = re.compile(pattern)

        def found():
            for ln in self.log_text().splitlines():
                m = rx.search(ln)
                if m:
                    return m
            return None
        return wait_for(found, timeout=timeout,
                        what="sendqd log line /%s/" % pattern)

    def wait_queue_empty(self, timeout=DEFAULT_TIMEOUT):
        wait_for(lambda: not self.queued(), timeout=timeout,
                 what=lambda: "the sendq queue to empty (left: %s)" %
                 self.queued())


# ---------------------------------------------------------------- messages

def crlf_to_lf(data):
    """What Exim stores for bytes a client sent after sendq's promise
    (every line end is CRLF on the wire, a final line end is added):
    LF line ends, ending in LF."""
    data = data.replace(b"\r\n", b"\n")
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return data


def make_message(subject, body, sender="alice@example.org",
                 to=("bob@example.net",), extra_headers=(), eol=b"\r\n",
                 msgid=None):
    """A complete RFC 5322 message (bytes) with Date, Message-ID, From."""
    msgid = msgid or "<%s.%d@sendq.test>" % (
        re.sub(r"\W", "", subject)[:20] or "m", time.monotonic_ns())
    lines = [
        "Date: Thu, 01 Jan 2026 12:00:00 +0000",
        "From: Alice <%s>" % sender,
        "To: %s" % ", ".join(to),
        "Subject: %s" % subject,
        "Message-ID: %s" % msgid,
    ] + list(extra_headers)
    head = eol.join(x.encode() for x in lines) + eol
    if isinstance(body, str):
        body = body.encode()
    return head + eol + body


# ---------------------------------------------------------------- test base

class IntegrationTest(unittest.TestCase):
    """Base class: a temp dir per test, cleanup of everything started, and
    logs printed when a test fails."""

    keep = bool(os.environ.get("SENDQ_KEEP_TMP"))

    @classmethod
    def setUpClass(cls):
        cls.class_dir = tempfile.mkdtemp(prefix="sendq-it-")
        cls.certs = Certs(os.path.join(cls.class_dir, "certs"))

    @classmethod
    def tearDownClass(cls):
        if not cls.keep:
            shutil.rmtree(cls.class_dir, ignore_errors=True)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix=self._testMethodName + "-",
                                    dir=self.class_dir)
        self._started = []
        self._diag = ""
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        # Stop everything (last started first), then keep the logs for
        # run() to print if the test failed; files go in tearDownClass.
        for obj in reversed(self._started):
            try:
                obj.stop()
            except Exception as e:      # keep stopping the others
                print("cleanup: %r" % e, file=sys.stderr)
        parts = []
        for obj in self._started:
            if isinstance(obj, Sendq):
                if obj.transcript:
                    parts.append("---- sendq runs\n" +
                                 "\n".join(obj.transcript))
                if os.path.exists(obj.daemon_log):
                    parts.append("---- sendqd log (%s), exit codes %s\n%s"
                                 % (obj.daemon_log, obj.exit_codes,
                                    obj.log_text()))
                parts.append("---- sendq spool: %s" % obj.spool_files())
            elif isinstance(obj, Exim):
                if os.path.exists(obj.mainlog):
                    parts.append("---- exim mainlog (%s)\n%s%s" % (
                        obj.mainlog, obj.log_text(), obj.panic_text()))
            elif isinstance(obj, Postfix):
                if os.path.exists(obj.maillog):
                    parts.append("---- postfix maillog (%s)\n%s" % (
                        obj.maillog, obj.log_text()))
        self._diag = "\n".join(parts)

    def run(self, result=None):
        if result is None:
            result = self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        ret = super().run(result)
        if len(result.failures) + len(result.errors) > before and \
                self._diag_text():
            sys.stderr.write("\n==== diagnostics for %s\n%s\n" % (
                self.id(), self._diag_text()))
        return ret

    def _diag_text(self):
        return getattr(self, "_diag", "")

    # -- helpers for tests
    def start_exim(self, cert=None, **kw):
        cert, key = cert or self.certs.good
        exim = Exim(os.path.join(self.dir, "exim-%d" % len(self._started)),
                    cert, key, **kw)
        os.makedirs(exim.dir, exist_ok=True)
        self._started.append(exim)
        return exim.start()

    def new_exim(self, cert=None, **kw):
        """An Exim configured (ports chosen) but not started (kw as for
        Exim, e.g. reject_recipients)."""
        cert, key = cert or self.certs.good
        exim = Exim(os.path.join(self.dir, "exim-%d" % len(self._started)),
                    cert, key, **kw)
        os.makedirs(exim.dir, exist_ok=True)
        self._started.append(exim)
        return exim

    def smarthost_for(self, exim, tls="implicit", host="127.0.0.1",
                      trust="ca_file", ca_file=None):
        sh = {"host": host,
              "port": exim.implicit_port if tls == "implicit"
              else exim.starttls_port,
              "tls": tls, "trust": trust}
        if trust == "ca_file":
            sh["ca_file"] = ca_file or self.certs.ca.cert
        return sh

    def start_postfix(self, cert=None, **kw):
        """A private Postfix (see class Postfix), started."""
        cert, key = cert or self.certs.good
        pf = Postfix(os.path.join(self.dir, "postfix-%d" %
                                  len(self._started)), cert, key, **kw)
        os.makedirs(pf.dir, exist_ok=True)
        self._started.append(pf)
        return pf.start()

    def smarthost_for_postfix(self, pf, host="localhost", trust="ca_file",
                              ca_file=None):
        sh = {"host": host, "port": pf.port, "tls": "starttls",
              "trust": trust}
        if trust == "ca_file":
            sh["ca_file"] = ca_file or self.certs.ca.cert
        return sh

    def new_sendq(self, smarthost, **kw):
        sq = Sendq(self.dir, smarthost, **kw)
        self._started.append(sq)
        return sq

    def assertStoppedCleanly(self, sq):
        rc = sq.stop()
        self.assertEqual(rc, 0, "sendqd did not exit 0 on SIGTERM")

    def assertArrivedIntact(self, received, sent, drop_headers=()):
        """received (EximMessage) equals sent bytes after line-end
        normalisation, minus headers named in drop_headers."""
        expected = crlf_to_lf(sent)
        if drop_headers:
            expected = remove_headers(expected, drop_headers)
        self.assertEqual(received.as_received(), expected)


def remove_headers(message, names):
    """Remove every header named in names (with continuation lines) from
    an LF message."""
    head, sep, body = message.partition(b"\n\n")
    out, skip = [], False
    lower = {n.lower().encode() for n in names}
    for ln in head.split(b"\n"):
        if ln[:1] in (b" ", b"\t"):
            if not skip:
                out.append(ln)
            continue
        skip = ln.split(b":", 1)[0].strip().lower() in lower
        if not skip:
            out.append(ln)
    return b"\n".join(out) + sep + body


def main():
    """unittest.main() for a test file; exit status non-zero on failure."""
    unittest.main(verbosity=2)


# ---------------------------------------------------------------- commands

def selftest():
    """Check the harness itself: a private Exim accepts swaks messages over
    STARTTLS and implicit TLS and the spool parser returns them."""
    if not shutil.which("swaks"):
        raise HarnessError("swaks not found (apt-get install swaks)")
    tmp = tempfile.mkdtemp(prefix="sendq-selftest-")
    exim = None
    try:
        certs = Certs(os.path.join(tmp, "certs"))
        exim = Exim(os.path.join(tmp, "exim"), *certs.good)
        os.makedirs(exim.dir)
        exim.start()
        print("exim pid %d, STARTTLS port %d, implicit TLS port %d" % (
            exim.pid, exim.starttls_port, exim.implicit_port))
        for mode, port in (("--tls", exim.starttls_port),
                           ("--tlsc", exim.implicit_port)):
            body = "Subject: selftest %s\n\n.leading dot\nline two\n" % mode
            p = run(["swaks", "--server", "127.0.0.1", "--port", str(port),
                     mode, "--tls-verify", "--tls-ca-path", certs.ca.cert,
                     "--from", "swaks@example.org",
                     "--to", "one@example.net,two@example.net",
                     "--auth", "PLAIN", "--auth-user", "sendq",
                     "--auth-password", "secret",
                     "--data", "-"], input=body.encode())
            if p.returncode != 0:
                raise HarnessError("swaks %s failed:\n%s" % (
                    mode, p.stdout.decode(errors="replace")))
        msgs = exim.wait_messages(2, timeout=10)
        for m in msgs:
            print("message %s from <%s> to %s" % (m.id, m.sender,
                                                  m.recipients))
            print("  headers: %s" % m.header_names())
            print("  body: %r" % m.body)
        for ln in exim.arrival_lines():
            print("  log: " + ln)
        def check(cond, what):
            if not cond:
                raise HarnessError("selftest: " + what)
        check(len(msgs) == 2, "expected 2 messages, got %d" % len(msgs))
        for m in msgs:
            check(m.sender == "swaks@example.org", "sender %r" % m.sender)
            check(m.recipients == ["one@example.net", "two@example.net"],
                  "recipients %r" % m.recipients)
            # swaks ends --data with one more line end of its own.
            check(m.body.rstrip(b"\n") == b".leading dot\nline two",
                  "body %r" % m.body)
            check(m.original_headers()[0].startswith(b"Subject: selftest"),
                  "headers %r" % m.headers)
        check(len(exim.arrival_lines()) == 2 and
              all(" X=TLS1.3:" in ln for ln in exim.arrival_lines()),
              "exim log lacks X=TLS1.3")
        print("selftest ok")
    finally:
        if exim:
            exim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def demo():
    """scripts/demo: one message from sendq through sendqd to Exim."""
    tmp = tempfile.mkdtemp(prefix="sendq-demo-")
    exim = sq = None
    ok = False
    try:
        print("== throwaway CA and server certificate (certtool) in %s"
              % tmp)
        certs = Certs(os.path.join(tmp, "certs"))
        exim = Exim(os.path.join(tmp, "exim"), *certs.good)
        os.makedirs(exim.dir)
        exim.start()
        print("== private Exim (pid %d): implicit TLS on 127.0.0.1:%d, "
              "STARTTLS on 127.0.0.1:%d" % (exim.pid, exim.implicit_port,
                                           exim.starttls_port))
        sq = Sendq(tmp, {"host": "localhost", "port": exim.implicit_port,
                         "tls": "implicit", "trust": "ca_file",
                         "ca_file": certs.ca.cert}, name="demo",
                   log_level="info")
        print("== sendq configuration %s:\n%s" % (sq.config,
                                                  sq.config_text()))
        sq.start()
        print("== sendqd started (pid %d)" % sq.proc.pid)
        msg = make_message("Hello from sendq", "This message went from "
                           "sendq through sendqd to Exim over TLS.\r\n"
                           ".A line starting with a dot.\r\n",
                           to=("bob@example.net",))
        p = sq.submit(msg, ["bob@example.net"], sender="alice@example.org")
        print("== sendq -f alice@example.org bob@example.net: exit %d"
              % p.returncode)
        msgs = exim.wait_messages(1)
        sq.wait_queue_empty()
        m = msgs[0]
        print("== the message as Exim received it (id %s, envelope "
              "<%s> -> %s):" % (m.id, m.sender, ", ".join(m.recipients)))
        sys.stdout.write(b"".join(t for _, t in m.headers).decode(
            errors="replace") + "\n" + m.body.decode(errors="replace"))
        print("== sendqd log:")
        for d in sq.delivery_lines():
            print("  " + d["line"])
        print("== Exim log:")
        for ln in exim.arrival_lines():
            print("  " + ln)
        same = m.as_received() == crlf_to_lf(msg)
        print("== byte-for-byte equal to what was sent: %s" %
              ("yes" if same else "NO"))
        rc = sq.stop()
        sq = None
        print("== sendqd stopped, exit %s" % rc)
        ok = same and rc == 0
    finally:
        if sq is not None:
            print("== sendqd log:\n" + sq.log_text())
            sq.stop()
        if exim is not None:
            exim.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("== demo %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        if cmd == "selftest":
            selftest()
            sys.exit(0)
        elif cmd == "demo":
            sys.exit(demo())
        elif cmd == "exim":
            print(exim_binary())
            sys.exit(0)
    except (HarnessError, AssertionError) as e:
        print("harness: %s" % e, file=sys.stderr)
        sys.exit(1)
    print("usage: harness.py demo | selftest | exim", file=sys.stderr)
    sys.exit(64)
