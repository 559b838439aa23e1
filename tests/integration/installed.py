"""installed.py - sendq installed as a distribution would, into a test
prefix, with real users.

How it works: the tree is configured a second time (release flags, no
sanitizer, tests off) with every install directory under one prefix T
(/tmp/sendq-inst-HASH, HASH from the build directory, so a rebuild is only
needed when a source changed): CMAKE_INSTALL_PREFIX=T/usr,
CMAKE_INSTALL_SYSCONFDIR=T/etc, CMAKE_INSTALL_LOCALSTATEDIR=T/var and
SENDQ_RUNDIR=T/run/sendq.  The compiled-in paths of that build are
therefore T/etc/sendq/sendq.ini, T/var/spool/sendq and
T/run/sendq/control.sock: no binary gets -C, as on a real system.  The
fixture then, as root:

  - creates the users and groups the installed sysusers.d file names
    (sendq, sendq-drop) with groupadd/useradd, and the test users asked
    for (no supplementary group, home under T/home);
  - runs `cmake --install` (which makes sendq-drop root:sendq-drop 2755);
  - makes the directories of the installed tmpfiles.d file, each path
    moved under T, with its mode and owner (systemd-tmpfiles --root would
    look the users up in T/etc/passwd);
  - writes T/etc/sendq/sendq.ini (0644) for a smarthost (a private Exim);
  - starts the installed sendqd as user sendq (setpriv, stderr to a log)
    and stops it by its PID;
  - runs commands as a test user with setpriv and a clean environment.

Users, groups and T are removed again at the end (close(), also called at
exit); their names are recorded in a state file first, so a run killed
half-way is cleaned up by the next one.  A lock (flock) serialises every
use of the fixture on the machine, since user names are global.  Users
or groups of these names that exist and were not made by the fixture
(a real sendq install) are never touched: the fixture refuses to run.

Only the Python standard library is used.
"""

import atexit
import fcntl
import grp
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys

import harness

LOCK = "/tmp/sendq-installed.lock"
STATE = "/tmp/sendq-installed.state"
FIXTURE_GECOS = "sendq test fixture"

# Sources whose change needs a rebuild (relative to SOURCE_DIR).
BUILD_INPUTS = ("CMakeLists.txt", "daemon", "conf", "systemd")

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

# A tree already built with path_flags() (scripts/test's optimised build):
# installed from instead of building one more.
SHARED_BUILD_ENV = "SENDQ_INSTALLED_BUILD_DIR"


def _tree_key(extra):
    """A hash of every build input and of extra (the configure flags)."""
    h = hashlib.sha256(repr(extra).encode())
    for top in BUILD_INPUTS:
        path = os.path.join(harness.SOURCE_DIR, top)
        files = [path] if os.path.isfile(path) else sorted(
            os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs)
        for f in files:
            h.update(os.path.relpath(f, harness.SOURCE_DIR).encode() + b"\0")
            with open(f, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def _run(argv, what, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       **kw)
    if p.returncode != 0:
        raise harness.HarnessError("%s failed (exit %d):\n%s" % (
            what, p.returncode, p.stdout.decode(errors="replace")[-4000:]))
    return p


def parse_tmpfiles(text):
    """The "d" lines of a tmpfiles.d file: [(path, mode, user, group)]."""
    out = []
    for ln in text.splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        f = ln.split()
        if f[0] != "d" or len(f) < 5:
            raise harness.HarnessError("tmpfiles: unsupported line %r" % ln)
        out.append((f[1], int(f[2], 8), f[3], f[4]))
    return out


def parse_sysusers(text):
    """The lines of a sysusers.d file: [("g", name) | ("u", name, group,
    home, shell)]."""
    import shlex
    out = []
    for ln in text.splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        f = shlex.split(ln)
        if f[0] == "g":
            out.append(("g", f[1]))
        elif f[0] == "u":
            group = f[2].split(":", 1)[1] if ":" in f[2] else f[1]
            out.append(("u", f[1], group, f[4], f[5]))
        else:
            raise harness.HarnessError("sysusers: unsupported line %r" % ln)
    return out


class Installed(harness.Daemon):
    """One installation under self.root (see the module text)."""

    def __init__(self):
        if os.geteuid() != 0:
            raise harness.HarnessError("the installed-layout tests run as "
                                       "root (useradd, setgid install)")
        self._paths()
        self._init_daemon(self.root + "/sendqd.log")
        self._lock = None
        self._created = []          # [("u"|"g", name)] made by us
        self.users = {}             # name -> pwd entry of test users

    def _paths(self):
        """T and the paths under it (from SENDQ_BUILD_DIR)."""
        build = os.path.realpath(harness.BUILD_DIR)
        tag = hashlib.sha256(build.encode()).hexdigest()[:8]
        self.root = "/tmp/sendq-inst-" + tag
        self.build_dir = os.path.join(build, "installed-build")
        self.prefix = self.root + "/usr"
        self.etc = self.root + "/etc"
        self.config = self.etc + "/sendq/sendq.ini"
        self.spool = self.root + "/var/spool/sendq"
        self.rundir = self.root + "/run/sendq"
        self.socket = self.rundir + "/control.sock"
        self.home = self.root + "/home"
        return self

    # -- paths
    def bin(self, name):
        """Path of an installed program (bin/ or sbin/)."""
        for d in ("bin", "sbin"):
            p = os.path.join(self.prefix, d, name)
            if os.path.lexists(p):
                return p
        raise harness.HarnessError("%s is not installed under %s" % (
            name, self.prefix))

    # -- set up and tear down
    def open(self, test_users=()):
        """Lock, build, create users, install, make the spool."""
        self._lock = open(LOCK, "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        atexit.register(self.close)
        # ctest ends a test that runs too long with SIGTERM: clean up then
        # too (atexit runs on SystemExit).
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            self._clean_leftovers()
            if os.path.lexists(self.root):
                shutil.rmtree(self.root)
            os.makedirs(self.root)
            os.chmod(self.root, 0o755)  # test users traverse it
            os.makedirs(self.home, mode=0o755)
            self._build()
            self._make_system_users()
            for name in test_users:
                self.add_user(name)
            _run(["cmake", "--install", self.build_dir], "cmake --install")
            self._make_dirs()
        except BaseException:
            self.close()
            raise
        return self

    def close(self):
        """Stop sendqd, remove users, groups and the prefix, unlock."""
        if self._lock is None:
            return
        try:
            self.stop()
        finally:
            self._remove_created()
            if not os.environ.get("SENDQ_KEEP_TMP"):
                shutil.rmtree(self.root, ignore_errors=True)
            self._lock.close()
            self._lock = None

    def path_flags(self):
        """The configure flags that put every compiled-in path under T."""
        return ["-DCMAKE_INSTALL_PREFIX=" + self.prefix,
                "-DCMAKE_INSTALL_SYSCONFDIR=" + self.etc,
                "-DCMAKE_INSTALL_LOCALSTATEDIR=" + self.root + "/var",
                "-DSENDQ_RUNDIR=" + self.rundir]

    def _build(self):
        shared = os.environ.get(SHARED_BUILD_ENV)
        if shared:
            self._use_shared_build(shared)
            return
        flags = ["-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DSENDQ_TESTS=OFF",
                 "-DSENDQ_SANITIZE=OFF", "-DSENDQ_WERROR=OFF"] + \
            self.path_flags()
        key = _tree_key(flags)
        stamp = os.path.join(self.build_dir, "sendq-installed.key")
        try:
            with open(stamp) as f:
                if f.read() == key:
                    return
        except OSError:
            pass
        os.makedirs(self.build_dir, exist_ok=True)
        _run(["cmake", "-S", harness.SOURCE_DIR, "-B", self.build_dir] +
             flags, "cmake configure (installed build)")
        _run(["cmake", "--build", self.build_dir, "-j2"],
             "cmake --build (installed build)", timeout=1200)
        with open(stamp, "w") as f:
            f.write(key)

    def _use_shared_build(self, tree):
        """Install from tree (scripts/test's optimised build, configured
        with path_flags(): `installed.py --cmake-flags`) instead of
        building a tree of our own."""
        cache = {}
        try:
            with open(os.path.join(tree, "CMakeCache.txt")) as f:
                for ln in f:
                    name, eq, value = ln.rstrip("\n").partition("=")
                    if eq and not ln.startswith(("#", "//")):
                        cache[name.split(":", 1)[0]] = value
        except OSError as e:
            raise harness.HarnessError("%s=%s: %s" % (SHARED_BUILD_ENV,
                                                      tree, e))
        want = dict(f[2:].split("=", 1) for f in self.path_flags())
        want["SENDQ_SANITIZE"] = "OFF"
        wrong = {k: cache.get(k) for k, v in want.items()
                 if cache.get(k) != v}
        if wrong:
            raise harness.HarnessError(
                "%s=%s was not configured for this fixture (%s differ; "
                "configure it with `installed.py --cmake-flags`)"
                % (SHARED_BUILD_ENV, tree, wrong))
        _run(["cmake", "--build", tree, "-j2"],
             "cmake --build (%s)" % tree, timeout=1200)
        self.build_dir = tree

    # -- users and groups
    def _record(self, kind, name):
        self._created.append((kind, name))
        with open(STATE, "a") as f:
            f.write("%s %s\n" % (kind, name))

    def _clean_leftovers(self):
        """Remove what a killed earlier run recorded but did not remove."""
        try:
            with open(STATE) as f:
                lines = f.read().split()
        except FileNotFoundError:
            return
        entries = [(lines[i], lines[i + 1])
                   for i in range(0, len(lines) - 1, 2)]
        for kind, value in entries:
            if kind == "p":
                self._kill_leftover_daemon(int(value))
        self._created = [e for e in entries if e[0] in ("u", "g")]
        self._remove_created()

    @staticmethod
    def _kill_leftover_daemon(pid):
        """SIGKILL pid if it is still the sendqd a killed run started (a
        process of user sendq), so that userdel can remove the user."""
        try:
            uid = pwd.getpwnam("sendq").pw_uid
            with open("/proc/%d/status" % pid) as f:
                status = f.read()
        except (KeyError, OSError):
            return
        for ln in status.splitlines():
            if ln.startswith("Uid:") and int(ln.split()[1]) == uid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                harness.wait_for(lambda: not harness.pid_alive(pid),
                                 what="leftover sendqd %d to die" % pid)

    def _remove_created(self):
        errors = []
        for kind, name in reversed(self._created):
            if kind == "u":
                try:
                    pwd.getpwnam(name)
                except KeyError:
                    continue
                p = subprocess.run(["userdel", name], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
            else:
                try:
                    grp.getgrnam(name)
                except KeyError:
                    continue
                p = subprocess.run(["groupdel", name],
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
            if p.returncode != 0:
                errors.append("%s %s: %s" % (kind, name, p.stdout.decode(
                    errors="replace").strip()))
        self._created = []
        if errors:
            print("installed: cleanup failed: %s" % "; ".join(errors),
                  file=sys.stderr)
        else:
            try:
                os.unlink(STATE)
            except FileNotFoundError:
                pass

    def _groupadd(self, name, system=True):
        try:
            grp.getgrnam(name)
            raise harness.HarnessError(
                "group %s exists and was not made by this test (a real "
                "install?): not touching it" % name)
        except KeyError:
            pass
        self._record("g", name)
        _run(["groupadd"] + (["--system"] if system else []) + [name],
             "groupadd " + name)

    def _useradd(self, name, group, home, shell, system):
        try:
            pwd.getpwnam(name)
            raise harness.HarnessError(
                "user %s exists and was not made by this test (a real "
                "install?): not touching it" % name)
        except KeyError:
            pass
        self._record("u", name)
        _run(["useradd"] + (["--system"] if system else []) +
             ["-g", group, "-d", home, "-M", "-s", shell,
              "-c", FIXTURE_GECOS, name], "useradd " + name)

    def _make_system_users(self):
        """What the sysusers.d file of the source tree says (the installed
        copy is compared with it in the tests)."""
        with open(os.path.join(harness.SOURCE_DIR, "systemd",
                               "sendq.sysusers")) as f:
            entries = parse_sysusers(f.read())
        for e in entries:
            if e[0] == "g":
                self._groupadd(e[1])
        for e in entries:
            if e[0] == "u":
                _, name, group, home, shell = e
                self._useradd(name, group, self.root + home, shell, True)

    def add_user(self, name):
        """A test user in no group but its own, home T/home/NAME."""
        home = os.path.join(self.home, name)
        self._groupadd(name, system=False)
        self._useradd(name, name, home, "/bin/sh", False)
        pw = pwd.getpwnam(name)
        os.makedirs(home, mode=0o700)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        self.users[name] = pw
        return pw

    # -- the spool and run directories, as tmpfiles.d says
    def tmpfiles_entries(self):
        path = os.path.join(self.prefix, "lib", "tmpfiles.d", "sendq.conf")
        with open(path) as f:
            return parse_tmpfiles(f.read())

    def _make_dirs(self):
        for path, mode, user, group in self.tmpfiles_entries():
            if not path.startswith("/"):
                raise harness.HarnessError("tmpfiles: relative %s" % path)
            real = self.root + path
            parent = os.path.dirname(real)
            if not os.path.isdir(parent):
                os.makedirs(parent, mode=0o755)
            os.makedirs(real, exist_ok=True)
            os.chown(real, pwd.getpwnam(user).pw_uid,
                     grp.getgrnam(group).gr_gid)
            os.chmod(real, mode)

    # -- configuration
    def write_config(self, smarthost, extra_sendq=None, extra=""):
        """T/etc/sendq/sendq.ini, mode 0644, with the compiled-in spool and
        control socket (no spool_dir, no control_socket)."""
        lines = ["[sendq]", "hostname = localhost", "log_level = debug"]
        lines += ["%s = %s" % kv for kv in (extra_sendq or {}).items()]
        lines += ["", "[queue]", "retry_min = 1s", "",
                  "[smarthost exim]"]
        lines += ["%s = %s" % kv for kv in smarthost.items()]
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n" + extra)
        os.chmod(self.config, 0o644)

    def copy_ca(self, ca_file):
        """ca_file copied to T/etc/sendq/ca.pem (readable by sendq)."""
        dest = os.path.join(self.etc, "sendq", "ca.pem")
        shutil.copy(ca_file, dest)
        os.chmod(dest, 0o644)
        return dest

    # -- the daemon (stop, kill, logs: harness.Daemon)
    def start(self):
        """Start the installed sendqd as user sendq (no -C)."""
        proc = self._spawn(
            ["setpriv", "--reuid=sendq", "--regid=sendq", "--init-groups",
             "--", self.bin("sendqd")],
            cwd="/", env={"PATH": PATH, "LANG": "C"})
        with open(STATE, "a") as f:
            f.write("p %d\n" % proc.pid)
        return self

    def wait_ready(self, since=0):
        """Wait until sendqd has started and its control socket exists."""
        self.wait_log(r"started: config=", since=since)
        harness.wait_for(lambda: os.path.exists(self.socket),
                         what="control socket %s" % self.socket)

    # -- the spool, as root
    def reset_spool(self):
        """Remove every message and drop file (sendqd must be stopped):
        each test starts with an empty queue."""
        if self.running():
            raise harness.HarnessError("reset_spool while sendqd runs")
        for sub in ("tmp", "queue", "failed", "corrupt", "maildrop",
                    "maildrop/tmp", "maildrop/rejected"):
            d = os.path.join(self.spool, sub)
            if not os.path.isdir(d):
                continue
            for n in os.listdir(d):
                path = os.path.join(d, n)
                if os.path.islink(path) or not os.path.isdir(path):
                    os.unlink(path)

    def queued(self):
        """{id: envelope text} of queue/*.env."""
        qdir = os.path.join(self.spool, "queue")
        out = {}
        for n in os.listdir(qdir):
            if n.endswith(".env"):
                try:
                    with open(os.path.join(qdir, n)) as f:
                        out[n[:-4]] = f.read()
                except FileNotFoundError:
                    pass
        return out

    def queued_uids(self):
        """{id: uid} of the queued messages, from their envelopes."""
        out = {}
        for msgid, text in self.queued().items():
            for ln in text.splitlines():
                if ln.startswith("uid "):
                    out[msgid] = int(ln[4:])
        return out

    # -- commands as a user
    def env_for(self, user):
        pw = self.users.get(user) or pwd.getpwnam(user)
        return {"PATH": "%s/bin:%s/sbin:%s" % (self.prefix, self.prefix,
                                               PATH),
                "HOME": pw.pw_dir, "USER": pw.pw_name,
                "LOGNAME": pw.pw_name, "LANG": "C", "SHELL": "/bin/sh"}

    def run_as(self, user, argv, input=b"", env=None, cwd=None,
               timeout=120):
        """Run argv as user (setpriv: real and effective uid and gid, the
        user's groups only) with a clean environment (env_for plus env);
        CompletedProcess with bytes stdout/stderr."""
        pw = self.users.get(user) or pwd.getpwnam(user)
        e = self.env_for(user)
        e.update(env or {})
        return subprocess.run(
            ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
             "--init-groups", "--"] + list(argv),
            input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=e, cwd=cwd or pw.pw_dir, timeout=timeout)

    def python_as(self, user, code, arg=None):
        """Run Python code as user; it prints one JSON value on stdout,
        which is returned (ARG is in sys.argv[1] as JSON)."""
        p = self.run_as(user, [sys.executable, "-c", code,
                               json.dumps(arg)])
        if p.returncode != 0:
            raise AssertionError("python as %s failed: %s" % (
                user, p.stderr.decode(errors="replace")))
        return json.loads(p.stdout.decode())

    def diagnostics(self):
        parts = ["---- installed sendqd log (%s), exit codes %s\n%s" % (
            self.daemon_log, self.exit_codes, self.log_text())]
        try:
            parts.append("---- spool %s" % sorted(
                os.path.relpath(os.path.join(r, f), self.spool)
                for r, _, fs in os.walk(self.spool) for f in fs))
        except OSError:
            pass
        return "\n".join(parts)


if __name__ == "__main__":
    # scripts/test: the configure flags of a tree this fixture can install
    # from (SENDQ_BUILD_DIR names the test build it belongs to).
    if sys.argv[1:] != ["--cmake-flags"]:
        sys.exit("usage: installed.py --cmake-flags")
    print(" ".join(Installed.__new__(Installed)._paths().path_flags()))
