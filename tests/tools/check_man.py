#!/usr/bin/env python3
"""check_man.py - keep the manual pages in step with the binaries and the
configuration reference.

How it works: each binary (sendqd, sendq, sendqctl) is run with --help;
every option its usage text lists (the indented lines that start with
'-') must be a tag of the OPTIONS section of its manual page, and every
option tagged there must be in --help.  For sendqctl the same is done for
the commands (the "Commands:" block against the COMMANDS section).  Then
every section name and key of conf/sendq.ini (`[section]` and
`key = value` or `;key = value` lines inside a section; the names under
[aliases] are examples, not keys) and every key of the parser's table in
daemon/config.c must be a tag of sendq.ini.5, and every key tagged in
sendq.ini.5's SECTION parts must be a real key.

The manual pages are read as roff source: a tag is the line after .TP,
with the font macros (.B .BR .BI ...) and escapes (\\- \\fB ...) undone.

Usage: check_man.py [--build-dir DIR] [--source-dir DIR]
  --build-dir   where the binaries are (default: $SENDQ_BUILD_DIR, else
                SOURCE/build-test)
  --source-dir  the repository (default: $SENDQ_SOURCE_DIR, else the
                directory two levels above this file)
Exit status: 0 everything matches; 1 mismatches (listed on stdout, one per
line); 2 a binary or file could not be used.

Only the Python standard library is used.
"""

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# binary -> its manual page under daemon/man/
PAGES = {
    "sendqd": "sendqd.8",
    "sendq": "sendq.1",
    "sendqctl": "sendqctl.8",
}
INI_PAGE = "sendq.ini.5"

# An option word: one or two dashes, then a letter or digit.
OPT_RE = re.compile(r"(?<![\w-])(--?[A-Za-z0-9][A-Za-z0-9-]*)")
# The option part at the start of a --help line: "-C, --config FILE",
# "-oem, -oee", "-O OPT=VAL"; argument names are upper case.
HELP_SPEC_RE = re.compile(
    r"-[-\w]+(?:[ =][A-Z][A-Z0-9=_]*)?"
    r"(?:, *-[-\w]+(?:[ =][A-Z][A-Z0-9=_]*)?)*")
KEY_RE = re.compile(r"^;?([a-z][a-z0-9_]*)\s*=\s*\S")
SECTION_RE = re.compile(r"^;?\[([a-z]+)(?:\s+[^\]]*)?\]\s*(?:;.*)?$")
MACRO_ARG_RE = re.compile(r'"((?:[^"]|"")*)"|(\S+)')


class CheckError(Exception):
    """A binary or a file could not be used (exit 2)."""


# ---------------------------------------------------------------- roff

def roff_unescape(text):
    """Plain text of roff inline text: font escapes removed, \\- as -."""
    text = re.sub(r"\\f(?:\[[^\]]*\]|\(..|.)", "", text)
    text = text.replace("\\-", "-").replace("\\(aq", "'")
    text = text.replace("\\(em", "--").replace("\\e", "\\")
    text = text.replace("\\&", "").replace("\\ ", " ")
    return text


def roff_line_text(line):
    """The text a source line prints: font macros are undone (.B and .I
    join their arguments with spaces, .BR and the like without)."""
    if not line.startswith("."):
        return roff_unescape(line)
    parts = line[1:].split(None, 1)
    if not parts:
        return ""
    macro, rest = parts[0], parts[1] if len(parts) > 1 else ""
    args = [m.group(1).replace('""', '"') if m.group(1) is not None
            else m.group(2) for m in MACRO_ARG_RE.finditer(rest)]
    if macro in ("B", "I", "SM", "SB"):
        return roff_unescape(" ".join(args))
    if macro in ("BR", "RB", "BI", "IB", "IR", "RI"):
        return roff_unescape("".join(args))
    return ""


def man_sections(path):
    """{section title: [source lines]} of a roff manual page."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CheckError("cannot read %s: %s" % (path, e.strerror))
    sections, title = {}, None
    for ln in lines:
        if ln.startswith(".SH"):
            title = roff_unescape(ln[3:].strip().strip('"'))
            sections.setdefault(title, [])
        elif title is not None:
            sections[title].append(ln)
    return sections


def man_tags(lines):
    """The tag texts (the line after each .TP) of some source lines."""
    tags = []
    for i, ln in enumerate(lines):
        if ln.startswith(".TP") and i + 1 < len(lines):
            tags.append(roff_line_text(lines[i + 1]))
    return tags


# ---------------------------------------------------------------- --help

def help_text(build_dir, binary):
    path = os.path.join(build_dir, binary)
    if not os.access(path, os.X_OK):
        raise CheckError("%s not built (looked in %s; give --build-dir or "
                         "set SENDQ_BUILD_DIR)" % (binary, build_dir))
    try:
        p = subprocess.run([path, "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CheckError("cannot run %s --help: %s" % (path, e))
    if p.returncode != 0:
        raise CheckError("%s --help exited %d: %s" % (
            path, p.returncode, p.stderr.decode(errors="replace").strip()))
    return p.stdout.decode(errors="replace")


def help_options(text):
    """Options listed by a usage text: indented lines starting with '-'
    (continuation lines of a description are indented further)."""
    opts = set()
    for ln in text.splitlines():
        m = re.match(r"^( {1,8})(-.*)$", ln)
        if not m:
            continue
        spec = HELP_SPEC_RE.match(m.group(2))
        if spec:
            opts.update(OPT_RE.findall(spec.group(0)))
    return opts


def help_commands(text):
    """Command names of the "Commands:" block of a usage text."""
    cmds, inside = set(), False
    for ln in text.splitlines():
        if ln.strip() == "Commands:":
            inside = True
            continue
        if inside:
            m = re.match(r"^ {1,8}([a-z][a-z-]*)\b", ln)
            if not m:
                break
            cmds.add(m.group(1))
    return cmds


# ---------------------------------------------------------------- checks

def compare(what, page, from_help, from_man, problems):
    for o in sorted(from_help - from_man):
        problems.append("%s: %s %s is in --help but not in the man page's "
                        "%s" % (page, what[0], o, what[1]))
    for o in sorted(from_man - from_help):
        problems.append("%s: %s %s is in the man page's %s but not in "
                        "--help" % (page, what[0], o, what[1]))


def check_binaries(build_dir, man_dir, problems):
    for binary, page in sorted(PAGES.items()):
        text = help_text(build_dir, binary)
        secs = man_sections(os.path.join(man_dir, page))
        if "OPTIONS" not in secs:
            problems.append("%s: no OPTIONS section" % page)
            continue
        man_opts = set()
        for tag in man_tags(secs["OPTIONS"]):
            man_opts.update(OPT_RE.findall(tag))
        help_opts = help_options(text)
        if not help_opts:
            problems.append("%s --help: no option found in its output" %
                            binary)
        compare(("option", "OPTIONS section"), page, help_opts, man_opts,
                problems)
        cmds = help_commands(text)
        if cmds or "COMMANDS" in secs:
            man_cmds = set()
            for tag in man_tags(secs.get("COMMANDS", [])):
                if tag.split():
                    man_cmds.add(tag.split()[0])
            compare(("command", "COMMANDS section"), page, cmds, man_cmds,
                    problems)


def ini_names(ini_path):
    """(section names, keys) of the example configuration."""
    try:
        with open(ini_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CheckError("cannot read %s: %s" % (ini_path, e.strerror))
    sections, keys, current = set(), set(), None
    for ln in lines:
        s = ln.strip()
        m = SECTION_RE.match(s)
        if m:
            current = m.group(1)
            sections.add(current)
            continue
        m = KEY_RE.match(s)
        if m and current is not None and current != "aliases":
            keys.add(m.group(1))
    return sections, keys


def config_c_keys(config_c):
    """Keys of the parser's table in daemon/config.c (empty when the file
    is missing: the example configuration is checked anyway)."""
    try:
        with open(config_c, encoding="utf-8") as f:
            src = f.read()
    except OSError:
        return set()
    keys = set(re.findall(r"\{\s*CONFIG_SECT_[A-Z]+,\s*\"([a-z0-9_]+)\"",
                          src))
    keys.update(re.findall(r"CONFIG_TIMEOUT\(\s*\"([a-z0-9_]+)\"", src))
    return keys


def check_ini(source_dir, man_dir, problems):
    page = INI_PAGE
    sections, keys = ini_names(os.path.join(source_dir, "conf",
                                            "sendq.ini"))
    parser_keys = config_c_keys(os.path.join(source_dir, "daemon",
                                             "config.c"))
    secs = man_sections(os.path.join(man_dir, page))
    man_keys = set()
    for title, lines in secs.items():
        if not title.startswith("SECTION"):
            continue
        for tag in man_tags(lines):
            man_keys.update(re.findall(r"\b[a-z][a-z0-9_]*\b",
                                       tag.split(";")[0]))
    titles = " ".join(secs)
    for name in sorted(sections):
        if not re.search(r"\[%s[\] ]" % re.escape(name), titles):
            problems.append("%s: section [%s] of conf/sendq.ini has no "
                            "SECTION [%s] in the man page" %
                            (page, name, name))
    for key in sorted(keys - man_keys):
        problems.append("%s: key %s of conf/sendq.ini is not described "
                        "(no .TP entry)" % (page, key))
    for key in sorted(parser_keys - keys - man_keys):
        problems.append("%s: key %s of daemon/config.c is not described "
                        "(no .TP entry)" % (page, key))
    known = keys | parser_keys
    if known:
        for key in sorted(man_keys - known):
            problems.append("%s: %s is described as a key but is not in "
                            "conf/sendq.ini nor daemon/config.c" %
                            (page, key))


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="check the manual pages against --help and "
        "conf/sendq.ini")
    source_default = os.environ.get("SENDQ_SOURCE_DIR") or \
        os.path.dirname(os.path.dirname(HERE))
    ap.add_argument("--source-dir", default=source_default)
    ap.add_argument("--build-dir", default=None)
    args = ap.parse_args(argv)
    build_dir = args.build_dir or os.environ.get("SENDQ_BUILD_DIR") or \
        os.path.join(args.source_dir, "build-test")
    man_dir = os.path.join(args.source_dir, "daemon", "man")

    problems = []
    try:
        check_binaries(build_dir, man_dir, problems)
        check_ini(args.source_dir, man_dir, problems)
    except CheckError as e:
        print("check_man: %s" % e, file=sys.stderr)
        return 2
    for p in problems:
        print(p)
    if problems:
        print("check_man: %d mismatch%s" % (
            len(problems), "" if len(problems) == 1 else "es"),
            file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
