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
  --stall PHASE                  never answer at PHASE: greeting, ehlo,
                                 starttls, mail, rcpt, data, end, quit
  --drop PHASE                   close the connection at PHASE
  --malformed PHASE              answer PHASE with a malformed line
  --save DIR                     store each message's DATA wire bytes
                                 (dot-stuffed, up to the final ".") in
                                 DIR/msg-N.eml
  --max-connections N            exit after N connections
Conversation goes to stderr with --verbose.  Stop it by its PID.
"""

import argparse
import os
import socket
import ssl
import sys
import threading
import time

counter_lock = threading.Lock()
counter = [0]


def log(args, *parts):
    if args.verbose:
        print("fake_smtp:", *parts, file=sys.stderr, flush=True)


class Session:
    def __init__(self, args, sock, ctx):
        self.args = args
        self.sock = sock
        self.ctx = ctx
        self.buf = b""
        self.tls = False
        self.rcpt_index = 0

    def send(self, text):
        if isinstance(text, str):
            text = text.encode()
        log(self.args, "S:", text)
        self.sock.sendall(text)

    def reply(self, text):
        self.send(text + "\r\n")

    def readline(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        log(self.args, "C:", line)
        return line.rstrip(b"\r")

    def fault(self, phase):
        """True when the script ends the session at this phase."""
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
        if self.args.malformed == phase:
            self.send(b"2x0 malformed\r\n")
        return False

    def ehlo_lines(self):
        caps = ["fake.test", "PIPELINING", "8BITMIME", "SIZE 10240000"]
        if self.args.tls == "starttls" and not self.tls \
                and not self.args.no_starttls:
            caps.append("STARTTLS")
        return "\r\n".join("250-" + c for c in caps[:-1]) + \
            "\r\n250 " + caps[-1]

    def run(self):
        if self.args.tls == "implicit":
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
                self.sock = self.ctx.wrap_socket(self.sock, server_side=True)
                self.tls = True
            elif verb == b"MAIL":
                self.rcpt_index = 0
                if self.fault("mail"):
                    return
                self.reply(self.args.mail_reply)
            elif verb == b"RCPT":
                if self.fault("rcpt"):
                    return
                replies = self.args.rcpt_reply.split(",")
                self.reply(replies[min(self.rcpt_index, len(replies) - 1)])
                self.rcpt_index += 1
            elif verb == b"DATA":
                if self.fault("data"):
                    return
                self.reply(self.args.data_reply)
                if not self.args.data_reply.startswith("354"):
                    continue
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
                if self.fault("end"):
                    return
                self.reply(self.args.end_reply)
            elif verb == b"RSET" or verb == b"NOOP":
                self.reply("250 2.0.0 Ok")
            elif verb == b"QUIT":
                if self.fault("quit"):
                    return
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 Command not recognized")


def serve(args, conn, ctx):
    try:
        Session(args, conn, ctx).run()
    except (OSError, ssl.SSLError) as e:
        log(args, "session ended:", e)
    finally:
        try:
            conn.close()
        except OSError:
            pass


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
    ap.add_argument("--data-reply", default="354 End data with <CR><LF>.<CR><LF>")
    ap.add_argument("--end-reply", default="250 2.0.0 Ok: queued as FAKE1")
    ap.add_argument("--stall")
    ap.add_argument("--drop")
    ap.add_argument("--malformed")
    ap.add_argument("--save")
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
    ls.bind((args.host, args.port))
    ls.listen(16)
    print("PORT %d" % ls.getsockname()[1], flush=True)
    n = 0
    threads = []
    while args.max_connections == 0 or n < args.max_connections:
        conn, _ = ls.accept()
        n += 1
        t = threading.Thread(target=serve, args=(args, conn, ctx),
                             daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
