"""harness.exim - the private Exim: binary, configuration, spool reader."""

import os
import re

from .proc import (DEFAULT_TIMEOUT, HarnessError, SERVERS_DIR,
                   _find_nss_wrapper, fetch_servers, free_port,
                   have_ipv6_loopback, listening_ports, pid_alive, run,
                   stop_pid, wait_for)


def exim_binary():
    """Path of the private exim4 binary, fetching it once if needed."""
    path = os.path.join(SERVERS_DIR, "exim", "usr", "sbin", "exim4")
    marker = os.path.join(SERVERS_DIR, "exim", ".complete")
    if os.path.exists(marker) and os.access(path, os.X_OK):
        return path
    fetch_servers(marker)
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
# Private Exim for sendq's integration tests (written by the test harness).
primary_hostname = exim.test
keep_environment =
exim_user = root
exim_group = root
never_users =
spool_directory = @DIR@/spool
log_file_path = @DIR@/log/%slog
pid_file_path = @DIR@/exim.pid
notifier_socket =
# A port taken since free_port() chose it: fail at once (the harness picks
# others) instead of retrying 9 times 30 s apart.
daemon_startup_retries = 0
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
        # Once a test may have read the ports (new_exim, or after a first
        # start) they are kept: a port found taken is then an error.
        self.ports_fixed = False
        self.pick_ports()
        self.binary = exim_binary()
        self.config = os.path.join(workdir, "exim.conf")
        self.pidfile = os.path.join(workdir, "exim.pid")
        self.input_dir = os.path.join(workdir, "spool", "input")
        self.mainlog = os.path.join(workdir, "log", "mainlog")
        self.paniclog = os.path.join(workdir, "log", "paniclog")

    def pick_ports(self):
        self.starttls_port = free_port(self.ipv6)
        self.implicit_port = free_port(self.ipv6)
        while self.implicit_port == self.starttls_port:
            self.implicit_port = free_port(self.ipv6)

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
        """Start the daemon and wait until both ports listen.

        free_port() releases the ports it finds, so another process may
        bind one before Exim does: Exim then gives up at once (config:
        daemon_startup_retries = 0) and, unless the ports are fixed, it is
        started again on new ones."""
        for _ in range(5):
            if self._start_once(timeout):
                self.ports_fixed = True
                return self
            if self.ports_fixed:
                break
            self.pick_ports()
        raise HarnessError("exim could not bind its ports %d and %d:\n%s"
                           % (self.starttls_port, self.implicit_port,
                              self.panic_text()))

    def _bind_failed(self, since):
        return "daemon abandoned" in self.panic_text()[since:]

    def _start_once(self, timeout):
        """True once listening; False when a port was taken."""
        self.write_config()
        if os.path.exists(self.pidfile):
            os.unlink(self.pidfile)
        panic_at = len(self.panic_text())
        env = _exim_env(self.dir)
        p = run([self.binary, "-C", self.config, "-bd", "-oP",
                 self.pidfile], env=env, timeout=timeout)
        if p.returncode != 0:
            raise HarnessError("exim -bd failed (%d): %s%s" % (
                p.returncode, p.stderr.decode(errors="replace"),
                self.panic_text()))

        def started():
            # Exim forks, binds, then writes its pid file: the pid, or
            # -1 when the background daemon abandoned a taken port.
            if self._bind_failed(panic_at):
                return -1
            try:
                with open(self.pidfile) as f:
                    pid = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                return None
            return pid
        try:
            pid = wait_for(started, timeout=timeout, what="exim pid file")
            if pid == -1:
                return False
            self.pid = pid
            wait_for(lambda: {self.starttls_port, self.implicit_port} <=
                     listening_ports(), timeout=timeout,
                     what="exim to listen on %d and %d" % (
                         self.starttls_port, self.implicit_port))
        except AssertionError as e:
            raise HarnessError("%s\n%s%s" % (e, self.log_text(),
                                             self.panic_text()))
        return True

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
