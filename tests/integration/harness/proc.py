"""harness.proc - paths, timeouts, sysexits, waiting, ports and processes."""

import ctypes
import errno
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time


# tests/integration (this package is tests/integration/harness).
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_DIR = os.environ.get("SENDQ_SOURCE_DIR") or \
    os.path.dirname(os.path.dirname(HERE))
BUILD_DIR = os.environ.get("SENDQ_BUILD_DIR") or \
    os.path.join(SOURCE_DIR, "build-test")
SERVERS_DIR = os.environ.get("SENDQ_SERVERS_DIR") or \
    os.path.join(SOURCE_DIR, ".cache", "servers")
GET_SERVERS = os.path.join(SOURCE_DIR, "tests", "tools", "get-servers")

# Generous: sanitizer builds on a busy CI machine are slow, and sendqd
# under valgrind (SENDQ_VALGRIND=1) is 20-50 times slower still: there
# every default wait is four times as long (scripts/test runs the soak
# beside the valgrind stage; 30 s was too short for a pick-up then).
DEFAULT_TIMEOUT = float(os.environ.get("SENDQ_TEST_TIMEOUT", "30")) * (
    4 if os.environ.get("SENDQ_VALGRIND") == "1" else 1)

# How much slower than a plain sanitizer run this one is allowed to be.
TIME_SCALE = DEFAULT_TIMEOUT / 30.0


def scaled(seconds):
    """A wait of `seconds` (the patience right for a sanitizer build on a
    busy machine) scaled as DEFAULT_TIMEOUT is: longer under valgrind and
    with SENDQ_TEST_TIMEOUT.  For waits that need more than the default;
    a fixed number would be too short exactly where sendqd is slowest."""
    return seconds * TIME_SCALE


# sysexits.h
EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_TEMPFAIL = 75
EX_CONFIG = 78


class HarnessError(Exception):
    """The test environment itself is broken (not a product failure)."""


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


_closed_ports = []      # sockets holding closed_port()'s ports


def closed_port():
    """A TCP port on 127.0.0.1 where nothing listens, for as long as this
    process lives: a socket is bound to it and never listens, so a
    connection is refused (RST) and no other process can bind it.  A port
    from free_port() is only free at the moment it is found: another
    test's server may start listening there before sendqd connects."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    _closed_ports.append(s)
    return s.getsockname()[1]


def _tcp_table():
    """The rows of /proc/net/tcp and /proc/net/tcp6, split into fields
    (1: local address, 2: remote address, 3: state, 9: inode)."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                rows = [line.split() for line in f]
        except OSError:
            continue
        yield from rows


def _port_of(address):
    return int(address.rsplit(":", 1)[1], 16)


def listening_ports():
    """The set of local TCP ports in LISTEN state (from /proc/net)."""
    return {_port_of(col[1]) for col in _tcp_table()
            if col[3] == "0A"}  # TCP_LISTEN


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def unix_socket_accepts(path):
    """True when something listens on the unix socket path.  A daemon
    binds its socket before it listens: the file alone does not say a
    client will be answered."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def unix_socket_request(path, data, timeout=30):
    """Send data on a new connection to the unix socket path and return
    everything read until the server closes it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(data)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


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


def _find_nss_wrapper():
    for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
              "/usr/lib64", "/usr/lib"):
        p = os.path.join(d, "libnss_wrapper.so")
        if os.path.exists(p):
            return p
    return None


def fetch_servers(marker):
    """Run tests/tools/get-servers unless marker (a server's .complete
    file) exists.  Several tests may start at once (ctest -j): the fetch
    runs under a lock."""
    os.makedirs(SERVERS_DIR, exist_ok=True)
    with open(os.path.join(SERVERS_DIR, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(marker):
            p = run(["bash", GET_SERVERS], timeout=600)
            if p.returncode != 0:
                raise HarnessError("tests/tools/get-servers failed:\n" +
                                   p.stderr.decode(errors="replace"))


def require_tool(name, package):
    """Path of the program name (a name on PATH or an absolute path).  A
    missing tool is a broken test machine, never a reason to skip:
    HarnessError (the test errs) naming the package scripts/setup
    installs."""
    path = shutil.which(name)
    if path is None:
        raise HarnessError("%s not found: scripts/setup installs %s"
                           % (name, package))
    return path


def hiding_path(path):
    """An argv prefix that runs a command with path invisible: nothing
    when it does not exist, else a private mount namespace with an empty
    tmpfs over its folder (root only).  For tests of a compiled-in
    default path on a machine where sendq is installed (test_deb.py may
    run alongside): the check still runs instead of being skipped."""
    if not os.path.lexists(path):
        return []
    if os.geteuid() != 0:
        raise HarnessError("%s exists and only root can hide it from the "
                           "test (unshare --mount)" % path)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o mode=0755 sendq-test "$0" && exec "$@"',
            os.path.dirname(path)]


def tcp_socket_option(pid, remote_port, level, option):
    """getsockopt(level, option) on process pid's established TCP socket
    to remote_port (found through /proc/net/tcp{,6} and /proc/PID/fd, the
    descriptor borrowed with pidfd_getfd(2): root, Linux >= 5.6); None
    when pid has no such socket."""
    inodes = {col[9] for col in _tcp_table()
              if _port_of(col[2]) == remote_port and col[3] == "01"}
    libc = ctypes.CDLL(None, use_errno=True)
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            pidfd = os.pidfd_open(pid)
            try:
                fd = libc.syscall(438, pidfd, int(name), 0)  # pidfd_getfd
                if fd < 0:
                    raise OSError(ctypes.get_errno(), "pidfd_getfd")
            finally:
                os.close(pidfd)
            s = socket.socket(fileno=fd)
            try:
                return s.getsockopt(level, option)
            finally:
                s.close()
    return None
