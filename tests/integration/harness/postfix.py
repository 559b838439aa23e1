"""harness.postfix - the private Postfix: binary, configuration, log reader."""

import os
import re
import shutil
import subprocess
import tempfile

from .proc import (DEFAULT_TIMEOUT, HarnessError, SERVERS_DIR,
                   _find_nss_wrapper, fetch_servers, free_port,
                   listening_ports, pid_alive, scaled, stop_pid,
                   wait_for)


def postfix_root():
    """Root folder of the private Postfix (usr/sbin, usr/lib/postfix ...),
    fetching it once if needed."""
    root = os.path.join(SERVERS_DIR, "postfix")
    marker = os.path.join(root, ".complete")
    master = os.path.join(root, "usr", "lib", "postfix", "sbin", "master")
    if os.path.exists(marker) and os.access(master, os.X_OK):
        return root
    fetch_servers(marker)
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
# Private Postfix for sendq's integration tests (written by the test harness).
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
        self.started_once = False
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

    def start(self, timeout=None):
        """Start master and wait until the SMTP port listens.  A port
        taken since free_port() chose it (master cannot bind it, and
        `postfix start` says so) is replaced by another, before the first
        start only (then a test may hold the port).

        The default timeout, scaled(120), only guards against a hang:
        `postfix start` runs postfix-script and a dozen postconf (1-2 s on
        an idle machine, 15 s measured at a load of 19 on 2 cores, where
        DEFAULT_TIMEOUT's 30 s failed a test)."""
        if timeout is None:
            timeout = scaled(120)
        for attempt in range(5):
            try:
                return self._start_once(timeout)
            except HarnessError as e:
                if self.started_once or attempt == 4 or \
                        "Address already in use" not in str(e):
                    raise
                self.port = free_port()

    def _start_once(self, timeout):
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
        self.started_once = True
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
