"""harness.message - test messages and their line-end/header normalisation."""

import re
import time


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
