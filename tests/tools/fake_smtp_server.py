#!/usr/bin/env python3
"""fake_smtp_server.py - a scripted SMTP server for development and fault
tests (what a real server cannot be told to do).

Listens on 127.0.0.1 (or --host) on --port (0 = any free port) and prints
"PORT <n>" on stdout once listening.  Every connection runs the same
script, chosen by options:

  --tls none|starttls|implicit   transport (certificate: --cert/--key)
  --no-starttls                  do not offer STARTTLS in EHLO
  --starttls-reply TEXT          answer STARTTLS with TEXT (e.g. "454 no")
  --inject TEXT                  send TEXT right after the STARTTLS 220, in
                                 the same write (injection attack)
  --inject-later                 send the --inject TEXT in a second write,
                                 0.2 s after the 220
  --greeting TEXT                greeting line (default "220 fake ESMTP")
  --ehlo-reply TEXT              replace the EHLO answer (e.g. "550 no")
  --mail-reply / --data-reply / --end-reply TEXT
  --rcpt-reply T1,T2,...         per recipient in order (last one repeats)
  --mail-reply-sender ADDR       give --mail-reply only to MAIL FROM:<ADDR>
                                 (other senders, the null sender of a
                                 bounce included, get 250)
  --stall PHASE                  never answer at PHASE: tls (the
                                 handshake), greeting, ehlo, starttls,
                                 mail, rcpt, data, end, quit
                                 (reading and discarding what comes), or
                                 body: answer DATA with 354, then stop
                                 reading (the client's writes block; with
                                 --rcvbuf small)
  --drop PHASE                   close the connection at PHASE
  --reset PHASE                  reset the connection (TCP RST) at PHASE
  --malformed PHASE              answer PHASE with a malformed line first
  --oversized-line PHASE         answer PHASE with one 8 KiB reply line
  --oversized-reply PHASE        answer PHASE with a 128 KiB multiline
                                 reply of short lines
  --drip PHASE                   send the reply at PHASE one byte every
                                 --drip-interval seconds (default 1)
  --tls-alert                    where the TLS handshake would start
                                 (implicit: at once; starttls: after the
                                 220), read the ClientHello and answer
                                 with a fatal handshake_failure alert
  --size N                       SIZE N in EHLO (default 10240000)
  --auth USER:PASSWORD           offer AUTH PLAIN LOGIN and accept only
                                 these credentials (235, else 535); the
                                 password is read from the file named
                                 by --auth-file instead when given
  --auth-file FILE               the accepted password: first line of
                                 FILE, read at every AUTH
  --oauth-tokens FILE            offer AUTH XOAUTH2 OAUTHBEARER and
                                 accept a bearer token only while FILE
                                 (written by oauth_server.py) lists it
                                 unexpired ("TOKEN EXPIRY" lines); a bad
                                 one gets the 334 error challenge, then
                                 535 (RFC 7628)
  --rcvbuf N                     SO_RCVBUF of the listening socket
  --heal-file PATH               connections accepted while PATH exists
                                 run without any fault (a healed server);
                                 a running session heals at its next
                                 EHLO, HELO or MAIL once PATH exists
  --conn-log FILE                append "N fault|normal" when connection
                                 N is accepted, "N healed" when its
                                 session heals, "N mail CODE <SENDER>"
                                 for each reply to MAIL, "N auth ok|bad MECH"
                                 for each AUTH, "N pipelined" when the
                                 client's next bytes were already there
                                 before the reply to a final dot (RFC
                                 2920 3.1), "N quit" for a QUIT, then
                                 over TLS "N close_notify" or "N no
                                 close_notify" for how the client ended
                                 the TLS session, and "N end" when it ends
  --save DIR                     store each message's DATA wire bytes
                                 (dot-stuffed, up to the final ".") in
                                 DIR/msg-N.eml
  --end-gate PATH                answer a final dot only once PATH exists
                                 (the reply delayed for as long as the
                                 test wants); with --conn-log, "N dot"
                                 is logged when the dot is read
  --max-connections N            exit after N connections
Conversation goes to stderr with --verbose.  Stop it by its PID.
"""

import argparse
import base64
import os
import select
import socket
import ssl
import struct
import sys
import threading
import time

counter_lock = threading.Lock()
counter = [0]


def log(args, *parts):
    if args.verbose:
        print("fake_smtp:", *parts, file=sys.stderr, flush=True)


# A TLS record: alert (21), version 3.3, length 2, fatal (2),
# handshake_failure (40).
TLS_ALERT_HANDSHAKE_FAILURE = b"\x15\x03\x03\x00\x02\x02\x28"

FAULT_OPTIONS = ("stall", "drop", "reset", "malformed", "oversized_line",
                 "oversized_reply", "drip", "tls_alert", "starttls_reply",
                 "inject", "no_starttls")


def healed(args):
    """A copy of args with every fault option off."""
    ns = argparse.Namespace(**vars(args))
    for name in FAULT_OPTIONS:
        setattr(ns, name, False if name in ("tls_alert", "no_starttls")
                else None)
    ns.greeting = "220 fake.test ESMTP fake"
    ns.ehlo_reply = None
    ns.mail_reply = "250 2.1.0 Ok"
    ns.rcpt_reply = "250 2.1.5 Ok"
    ns.data_reply = "354 End data with <CR><LF>.<CR><LF>"
    ns.end_reply = "250 2.0.0 Ok: queued as FAKE1"
    ns.heal_file = None
    return ns


class Dropped(Exception):
    """The script ends the session here."""


class Session:
    def __init__(self, args, sock, ctx, n=0):
        self.n = n
        self.args = args
        self.sock = sock
        self.ctx = ctx
        self.buf = b""
        self.tls = False
        self.rcpt_index = 0
        self.rcpt_ok = 0
        self.phase = "greeting"

    def send(self, text):
        if isinstance(text, str):
            text = text.encode()
        log(self.args, "S:", text)
        if self.args.drip == self.phase:
            for i in range(len(text)):
                self.sock.sendall(text[i:i + 1])
                time.sleep(self.args.drip_interval)
            return
        self.sock.sendall(text)

    def reply(self, text):
        if self.args.oversized_line == self.phase:
            text = text[:3] + " " + "x" * 8192
        elif self.args.oversized_reply == self.phase:
            code = text[:3]
            text = "\r\n".join(code + "-" + "y" * 60
                                for _ in range(2100)) + "\r\n" + text
        self.send(text + "\r\n")
        # 421: the server is closing the channel (RFC 5321 3.8); what a
        # pipelining client sent behind it must not heal the session.
        if text.startswith("421"):
            self.closing = True

    def readline(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        log(self.args, "C:", line)
        return line.rstrip(b"\r")

    def client_ahead(self):
        """True when the client sent more without waiting for our next
        reply: bytes already read, buffered by TLS, or readable now."""
        if self.buf or (self.tls and self.sock.pending()):
            return True
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def auth_answer(self, prompt):
        """Send a 334 prompt, return the client's decoded answer."""
        self.reply("334 " + base64.b64encode(prompt).decode())
        line = self.readline()
        if line is None:
            raise Dropped("EOF in AUTH")
        try:
            return base64.b64decode(line, validate=True)
        except ValueError:
            return None

    def auth(self, line):
        words = line.split()
        mech = words[1].upper().decode(errors="replace") \
            if len(words) > 1 else ""
        user = password = None
        if mech == "PLAIN":
            if len(words) > 2:
                try:
                    data = base64.b64decode(words[2], validate=True)
                except ValueError:
                    data = None
            else:
                data = self.auth_answer(b"")
            parts = data.split(b"\0") if data is not None else []
            if len(parts) == 3:
                user, password = parts[1], parts[2]
        elif mech == "LOGIN":
            user = self.auth_answer(b"Username:")
            password = self.auth_answer(b"Password:")
        else:
            self.reply("504 5.5.4 Unrecognized authentication type")
            return
        want_user, want_password = self.args.auth.split(":", 1)
        if self.args.auth_file:
            with open(self.args.auth_file) as f:
                want_password = f.readline().rstrip("\r\n")
        ok = user == want_user.encode() and \
            password == want_password.encode()
        conn_log(self.args, "%d auth %s %s" % (self.n, "ok" if ok else "bad",
                                               mech))
        if ok:
            self.reply("235 2.7.0 Authentication successful")
        else:
            self.reply("535 5.7.8 Authentication credentials invalid")

    def token_valid(self, token):
        try:
            with open(self.args.oauth_tokens) as f:
                for ln in f:
                    words = ln.split()
                    if len(words) == 2 and words[0] == token and \
                            float(words[1]) > time.time():
                        return True
        except FileNotFoundError:
            pass
        return False

    def auth_oauth(self, line):
        """XOAUTH2 or OAUTHBEARER: check the bearer token."""
        words = line.split()
        mech = words[1].upper().decode(errors="replace") \
            if len(words) > 1 else ""
        if mech not in ("XOAUTH2", "OAUTHBEARER"):
            self.reply("504 5.5.4 Unrecognized authentication type")
            return
        if len(words) > 2:
            try:
                data = base64.b64decode(words[2], validate=True)
            except ValueError:
                data = b""
        else:
            data = self.auth_answer(b"") or b""
        token = ""
        for field in data.split(b"\x01"):
            if field.startswith(b"auth=Bearer "):
                token = field[len(b"auth=Bearer "):].decode(
                    errors="replace")
        ok = self.token_valid(token)
        conn_log(self.args, "%d auth %s %s %s" % (
            self.n, "ok" if ok else "bad", mech, token))
        if ok:
            self.reply("235 2.7.0 Accepted")
            return
        # RFC 7628 3.2.2: an error challenge, the client answers ^A.
        err = b'{"status":"401","schemes":"bearer","scope":"mail"}'
        self.reply("334 " + base64.b64encode(err).decode())
        if self.readline() is None:
            raise Dropped("EOF in AUTH")
        self.reply("535 5.7.8 Username and Password not accepted")

    def tls_alert(self):
        """Answer the ClientHello with a fatal alert; the session ends."""
        self.sock.recv(65536)
        self.send(TLS_ALERT_HANDSHAKE_FAILURE)
        raise Dropped("tls alert")

    def tls_end(self):
        """After our 221: did the client end TLS with close_notify (the
        read sees a clean end) or just close the socket?"""
        self.sock.suppress_ragged_eofs = False
        self.sock.settimeout(10)
        try:
            while self.sock.recv(65536):
                pass
            conn_log(self.args, "%d close_notify" % self.n)
        except (OSError, ssl.SSLError):
            conn_log(self.args, "%d no close_notify" % self.n)

    def fault(self, phase):
        """True when the script ends the session at this phase."""
        self.phase = phase
        if self.args.stall == phase == "body":
            log(self.args, "stalling (not reading) at", phase)
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                time.sleep(0.2)
            return True
        if self.args.stall == phase:
            log(self.args, "stalling at", phase)
            try:
                while self.sock.recv(65536):
                    pass
            except OSError:
                pass
            return True
        if self.args.drop == phase:
            log(self.args, "dropping at", phase)
            return True
        if self.args.reset == phase:
            log(self.args, "resetting at", phase)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
            return True
        if self.args.malformed == phase:
            self.send(b"2x0 malformed\r\n")
        return False

    def ehlo_lines(self):
        caps = ["fake.test", "PIPELINING", "8BITMIME",
                "SIZE %d" % self.args.size]
        if self.args.tls == "starttls" and not self.tls \
                and not self.args.no_starttls:
            caps.append("STARTTLS")
        if self.args.auth:
            caps.append("AUTH PLAIN LOGIN")
        elif self.args.oauth_tokens:
            caps.append("AUTH XOAUTH2 OAUTHBEARER")
        return "\r\n".join("250-" + c for c in caps[:-1]) + \
            "\r\n250 " + caps[-1]

    def run(self):
        if self.args.tls == "implicit":
            if self.args.tls_alert:
                self.tls_alert()
            if self.fault("tls"):
                return
            self.sock = self.ctx.wrap_socket(self.sock, server_side=True)
            self.tls = True
        if self.fault("greeting"):
            return
        self.reply(self.args.greeting)
        while True:
            line = self.readline()
            if line is None:
                return
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].upper()
            # A session heals only where a new session or transaction
            # starts (EHLO, HELO, MAIL): never at the RCPT or DATA a
            # pipelining client sent after the fault it has already met
            # (a MAIL refused with 421, say), which would then pass for
            # a session that never met it.
            if verb in (b"EHLO", b"HELO", b"MAIL") and \
                    not getattr(self, "closing", False) and \
                    self.args.heal_file and \
                    os.path.exists(self.args.heal_file):
                self.args = healed(self.args)
                conn_log(self.args, "%d healed" % self.n)
            self.phase = verb.decode(errors="replace").lower()
            if verb in (b"EHLO", b"HELO"):
                if self.fault("ehlo"):
                    return
                self.reply(self.args.ehlo_reply or self.ehlo_lines())
            elif verb == b"STARTTLS":
                if self.fault("starttls"):
                    return
                if self.args.starttls_reply:
                    self.reply(self.args.starttls_reply)
                    continue
                out = b"220 2.0.0 Ready to start TLS\r\n"
                inject = b""
                if self.args.inject:
                    inject = self.args.inject.encode().decode(
                        "unicode_escape").encode("latin-1")
                if self.args.inject_later:
                    self.send(out)
                    time.sleep(0.2)
                    self.send(inject)
                else:
                    self.send(out + inject)
                if self.buf:
                    log(self.args, "client pipelined after STARTTLS")
                    return
                if self.args.tls_alert:
                    self.tls_alert()
                if self.fault("tls"):
                    return
                self.sock = self.ctx.wrap_socket(self.sock, server_side=True)
                self.tls = True
            elif verb == b"MAIL":
                self.rcpt_index = 0
                self.rcpt_ok = 0
                if self.fault("mail"):
                    return
                reply = self.args.mail_reply
                sender = mail_sender(line)
                if self.args.mail_reply_sender is not None and \
                        sender != self.args.mail_reply_sender:
                    reply = "250 2.1.0 Ok"
                conn_log(self.args, "%d mail %s <%s>" % (self.n, reply[:3],
                                                         sender))
                self.reply(reply)
            elif verb == b"RCPT":
                if self.fault("rcpt"):
                    return
                replies = self.args.rcpt_reply.split(",")
                r = replies[min(self.rcpt_index, len(replies) - 1)]
                self.rcpt_ok += r.startswith("2")
                self.reply(r)
                self.rcpt_index += 1
            elif verb == b"DATA":
                if self.fault("data"):
                    return
                if self.rcpt_ok == 0:
                    # As real servers do (a pipelining client sent DATA
                    # before it knew every RCPT was refused).
                    self.reply("554 5.5.1 Error: no valid recipients")
                    continue
                self.reply(self.args.data_reply)
                if not self.args.data_reply.startswith("354"):
                    continue
                if self.fault("body"):
                    return
                data = bytearray()
                while True:
                    line = self.readline()
                    if line is None:
                        return
                    if line == b".":
                        break
                    data += line
                    data += b"\r\n"
                if self.args.save:
                    with counter_lock:
                        counter[0] += 1
                        n = counter[0]
                    path = os.path.join(self.args.save, "msg-%d.eml" % n)
                    with open(path + ".tmp", "wb") as f:
                        f.write(data)
                    os.rename(path + ".tmp", path)
                if self.client_ahead():
                    conn_log(self.args, "%d pipelined" % self.n)
                if self.fault("end"):
                    return
                if self.args.end_gate:
                    conn_log(self.args, "%d dot" % self.n)
                    while not os.path.exists(self.args.end_gate):
                        time.sleep(0.02)
                self.reply(self.args.end_reply)
            elif verb == b"AUTH" and self.args.auth:
                self.auth(line)
            elif verb == b"AUTH" and self.args.oauth_tokens:
                self.auth_oauth(line)
            elif verb == b"RSET" or verb == b"NOOP":
                self.reply("250 2.0.0 Ok")
            elif verb == b"QUIT":
                conn_log(self.args, "%d quit" % self.n)
                if self.fault("quit"):
                    return
                self.reply("221 2.0.0 Bye")
                if self.tls:
                    self.tls_end()
                return
            else:
                self.reply("502 5.5.2 Command not recognized")


def mail_sender(line):
    """The address of MAIL FROM:<ADDR> PARAMS ("" for <>)."""
    text = line.decode(errors="replace")
    start = text.find("<")
    end = text.find(">", start + 1)
    if start < 0 or end < 0:
        return ""
    return text[start + 1:end]


def conn_log(args, text):
    if args.conn_log:
        with counter_lock:
            with open(args.conn_log, "a") as f:
                f.write(text + "\n")


def serve(args, conn, ctx, n):
    faulty = not (args.heal_file and os.path.exists(args.heal_file))
    conn_log(args, "%d %s" % (n, "fault" if faulty else "normal"))
    session = Session(args if faulty else healed(args), conn, ctx, n)
    try:
        session.run()
    except (OSError, ssl.SSLError, Dropped) as e:
        log(args, "session ended:", e)
    finally:
        try:
            session.sock.close()
        except OSError:
            pass
        try:
            conn.close()
        except OSError:
            pass
        conn_log(args, "%d end" % n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", choices=["none", "starttls", "implicit"],
                    default="none")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--no-starttls", action="store_true")
    ap.add_argument("--starttls-reply")
    ap.add_argument("--inject")
    ap.add_argument("--inject-later", action="store_true")
    ap.add_argument("--greeting", default="220 fake.test ESMTP fake")
    ap.add_argument("--ehlo-reply")
    ap.add_argument("--mail-reply", default="250 2.1.0 Ok")
    ap.add_argument("--rcpt-reply", default="250 2.1.5 Ok")
    ap.add_argument("--mail-reply-sender")
    ap.add_argument("--data-reply", default="354 End data with <CR><LF>.<CR><LF>")
    ap.add_argument("--end-reply", default="250 2.0.0 Ok: queued as FAKE1")
    ap.add_argument("--stall")
    ap.add_argument("--drop")
    ap.add_argument("--malformed")
    ap.add_argument("--reset")
    ap.add_argument("--oversized-line")
    ap.add_argument("--oversized-reply")
    ap.add_argument("--drip")
    ap.add_argument("--drip-interval", type=float, default=1.0)
    ap.add_argument("--tls-alert", action="store_true")
    ap.add_argument("--size", type=int, default=10240000)
    ap.add_argument("--auth")
    ap.add_argument("--auth-file")
    ap.add_argument("--oauth-tokens")
    ap.add_argument("--rcvbuf", type=int, default=0)
    ap.add_argument("--heal-file")
    ap.add_argument("--conn-log")
    ap.add_argument("--save")
    ap.add_argument("--end-gate")
    ap.add_argument("--max-connections", type=int, default=0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    ctx = None
    if args.tls != "none":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if args.rcvbuf:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
    ls.bind((args.host, args.port))
    ls.listen(16)
    print("PORT %d" % ls.getsockname()[1], flush=True)
    n = 0
    threads = []
    while args.max_connections == 0 or n < args.max_connections:
        conn, _ = ls.accept()
        n += 1
        t = threading.Thread(target=serve, args=(args, conn, ctx, n),
                             daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
