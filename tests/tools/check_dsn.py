#!/usr/bin/env python3
"""check_dsn.py - check that a file holds an RFC 3464 delivery status
notification as a real MIME parser (Python's email package) reads it.

Usage: check_dsn.py FILE [--final-recipient ADDR] [--status X.Y.Z]
                         [--action failed|delayed|...]

FILE ("-" for standard input) must parse as multipart/report with
report-type=delivery-status and exactly the parts text/plain,
message/delivery-status and text/rfc822-headers, without parser defects.
With --final-recipient, a recipient block whose Final-Recipient is
"rfc822; ADDR" must exist and --status / --action are checked against
it; without it they are checked against every recipient block.

Exit 0 when everything matches, 1 with one line per problem on stderr
otherwise, 2 for usage errors.  Standard library only, so integration
tests can import it (check_dsn(data, ...) returns the list of problems).
"""
import argparse
import email
import email.policy
import sys

EXPECTED_PARTS = ["text/plain", "message/delivery-status",
                  "text/rfc822-headers"]


def _field(block, name):
    value = block.get(name)
    return None if value is None else " ".join(str(value).split())


def _recipient(value):
    """'rfc822; a@b' -> 'a@b' (the address type is checked separately)."""
    if value is None or ";" not in value:
        return None
    kind, addr = value.split(";", 1)
    if kind.strip().lower() != "rfc822":
        return None
    return addr.strip()


def check_dsn(data, final_recipient=None, status=None, action=None):
    """Return a list of problems (empty when data is a matching DSN)."""
    problems = []
    msg = email.message_from_bytes(data, policy=email.policy.default)
    for d in msg.defects:
        problems.append("message defect: %r" % (d,))
    if msg.get_content_type() != "multipart/report":
        return problems + ["Content-Type is %s, not multipart/report"
                           % msg.get_content_type()]
    if msg.get_param("report-type") != "delivery-status":
        problems.append("report-type is %r, not delivery-status"
                        % (msg.get_param("report-type"),))
    parts = list(msg.iter_parts())
    types = [p.get_content_type() for p in parts]
    if types != EXPECTED_PARTS:
        return problems + ["parts are %s, expected %s"
                           % (types, EXPECTED_PARTS)]
    for p in parts:
        for d in p.defects:
            problems.append("%s defect: %r" % (p.get_content_type(), d))

    blocks = parts[1].get_payload()
    if not isinstance(blocks, list) or len(blocks) < 2:
        return problems + ["message/delivery-status has no recipient "
                           "block"]
    if _field(blocks[0], "Reporting-MTA") is None:
        problems.append("per-message fields lack Reporting-MTA")
    rcpts = blocks[1:]
    for i, b in enumerate(rcpts, 1):
        for name in ("Final-Recipient", "Action", "Status"):
            if _field(b, name) is None:
                problems.append("recipient block %d lacks %s" % (i, name))
    if final_recipient is not None:
        want = final_recipient.strip("<>")
        found = [b for b in rcpts
                 if _recipient(_field(b, "Final-Recipient")) == want]
        if not found:
            have = [_field(b, "Final-Recipient") for b in rcpts]
            return problems + ["no Final-Recipient: rfc822; %s (have %s)"
                               % (want, have)]
        rcpts = found
    for b in rcpts:
        who = _field(b, "Final-Recipient")
        if status is not None and _field(b, "Status") != status:
            problems.append("%s: Status is %s, expected %s"
                            % (who, _field(b, "Status"), status))
        got = (_field(b, "Action") or "").lower()
        if action is not None and got != action.lower():
            problems.append("%s: Action is %s, expected %s"
                            % (who, got, action))
    return problems


def main(argv):
    ap = argparse.ArgumentParser(
        description="Check a delivery status notification (RFC 3464).")
    ap.add_argument("file", help="the DSN message, - for stdin")
    ap.add_argument("--final-recipient", metavar="ADDR")
    ap.add_argument("--status", metavar="X.Y.Z")
    ap.add_argument("--action", metavar="ACTION")
    args = ap.parse_args(argv)
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as f:
                data = f.read()
    except OSError as e:
        print("check_dsn: %s" % e, file=sys.stderr)
        return 1
    problems = check_dsn(data, args.final_recipient, args.status,
                         args.action)
    for p in problems:
        print("check_dsn: %s: %s" % (args.file, p), file=sys.stderr)
    if problems:
        return 1
    print("check_dsn: %s: ok" % args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
