#!/usr/bin/python3
# prom_check.py -- test helper: validates a Prometheus text exposition (format 0.0.4) read from
# standard input and prints it as JSON, read by the prometheus_client package's own parser
# (Debian python3-prometheus-client). Called by tests/helpers/prom_check.c.
#
# prometheus_client's text parser is lax by its own account ("successful parsing does not
# imply that the parsed text meets the specification"), so before it reads the text, each line
# is matched against the format's grammar and the rules a scraper relies on are checked:
#   - UTF-8, ends with a newline, no empty line, no comment but HELP and TYPE;
#   - metric and label names valid (label names not starting with "__"), label values with only
#     the \\ \" \n escapes, values that are floats, NaN or +/-Inf, no timestamps;
#   - HELP and TYPE once per family, both before its first sample; a family's samples
#     contiguous; a summary's samples are NAME{quantile=...}, NAME_sum or NAME_count;
#     counters named *_total; no label twice in one sample; no family without samples.
# Then every sample line must come out of prometheus_client as one sample, with the same name
# and the same label names.
#
# Output (exit 0): [{"name": family as in its TYPE line, "type", "help",
#                    "samples": [{"name", "labels": {name: value}, "value": repr(float)}]}]
# On a violation: the line number and what is wrong on stderr, exit 1.
import json
import re
import sys

from prometheus_client.parser import text_string_to_metric_families

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
LVALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|NaN|[-+]Inf"
SAMPLE_RE = re.compile(r"(%s)(?:\{((?:%s=%s)(?:,%s=%s)*)?\})? (%s)" % (NAME, LABEL, LVALUE, LABEL, LVALUE, VALUE))
LABEL_RE = re.compile(r"(%s)=(%s)" % (LABEL, LVALUE))
HELP_RE = re.compile(r"# HELP (%s) (.+)" % NAME)
TYPE_RE = re.compile(r"# TYPE (%s) (counter|gauge|summary|histogram|untyped)" % NAME)
SUFFIXES = {"summary": ("_sum", "_count"), "histogram": ("_sum", "_count", "_bucket")}


def fail(lineno, why):
    sys.stderr.write("prometheus text, line %d: %s\n" % (lineno, why))
    sys.exit(1)


def main():
    raw = sys.stdin.buffer.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        fail(text_line(raw, e.start), "invalid UTF-8: %s" % e.reason)
    if not text.endswith("\n"):
        fail(text.count("\n") + 1, "the text does not end with a newline")
    families = {}  # name -> {"type", "help", "samples": [(name, label names)]}
    order = []
    current = None
    closed = set()
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line == "":
            fail(lineno, "empty line")
        if line.startswith("#"):
            m = HELP_RE.fullmatch(line) or TYPE_RE.fullmatch(line)
            if m is None:
                fail(lineno, "a comment that is not a valid HELP or TYPE line: %r" % line)
            name, what = m.group(1), line.split(" ")[1]
            f = families.get(name)
            if f is None:
                f = families[name] = {"type": None, "help": None, "samples": []}
                order.append(name)
            if f["samples"]:
                fail(lineno, "%s after samples of %s" % (what, name))
            key = "help" if what == "HELP" else "type"
            if f[key] is not None:
                fail(lineno, "a second %s for %s" % (what, name))
            f[key] = m.group(2)
            if what == "TYPE" and m.group(2) == "counter" and not name.endswith("_total"):
                fail(lineno, "counter %s is not named *_total" % name)
            continue
        m = SAMPLE_RE.fullmatch(line)
        if m is None:
            fail(lineno, "not a sample line: %r" % line)
        name = m.group(1)
        labels = [l.group(1) for l in LABEL_RE.finditer(m.group(2) or "")]
        if len(set(labels)) != len(labels):
            fail(lineno, "a label twice in one sample")
        if any(l.startswith("__") for l in labels):
            fail(lineno, "a label name starting with __ (reserved)")
        fam = name if name in families else None
        for suffix in ("_sum", "_count", "_bucket"):
            base = name[:-len(suffix)]
            if fam is None and name.endswith(suffix) and base in families and \
                    suffix in SUFFIXES.get(families[base]["type"], ()):
                fam = base
        if fam is None:
            fail(lineno, "sample %s belongs to no family declared before it" % name)
        f = families[fam]
        if f["help"] is None or f["type"] is None:
            fail(lineno, "sample of %s before its HELP and TYPE" % fam)
        if f["type"] == "summary" and name == fam and "quantile" not in labels:
            fail(lineno, "summary sample %s without a quantile label" % name)
        if fam != current:
            if fam in closed:
                fail(lineno, "samples of %s are not contiguous" % fam)
            if current is not None:
                closed.add(current)
            current = fam
        f["samples"].append((name, sorted(labels)))
    for name in order:
        if not families[name]["samples"]:
            fail(0, "family %s has no samples" % name)

    parsed = list(text_string_to_metric_families(text))
    if len(parsed) != len(order):
        fail(0, "prometheus_client read %d families, the text declares %d" % (len(parsed), len(order)))
    out = []
    for name, pf in zip(order, parsed):
        f = families[name]
        mine = f["samples"]
        theirs = [(s.name, sorted(s.labels)) for s in pf.samples]
        if theirs != mine:
            fail(0, "prometheus_client read family %s as %r, the text has %r" % (name, theirs, mine))
        out.append({"name": name, "type": f["type"], "help": pf.documentation,
                    "samples": [{"name": s.name, "labels": s.labels, "value": repr(s.value)}
                                for s in pf.samples]})
    sys.stdout.write(json.dumps(out, ensure_ascii=True))


def text_line(raw, offset):
    return raw[:offset].count(b"\n") + 1


if __name__ == "__main__":
    main()
