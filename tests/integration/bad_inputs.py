"""The bad-inputs table of docs/reliability.md: every test that feeds the worker something it
must not choke on (records that are not Avro, too big, of unknown schemas, feature keys of the
wrong type, values the model scores non-finite) records here what it sent, what the worker did
with it and how many records it lost, once its own assertions have passed. At the end of the
session the rows are written to reliability/bad-inputs.md in the worker's build directory, and
into the section between the markers below of $SS_RELIABILITY_DOC when it is set
(`make reliability`)."""

import json
import os
from pathlib import Path

import harness as h

BEGIN = "<!-- bad-inputs: written by tests/integration/bad_inputs.py -->"
END = "<!-- bad-inputs: end -->"

_rows = []


def record(kind, sample, outcome, records, lost, test):
    """One row: the kind of bad input, an example of it, what the worker did, how many such
    records the test sent and how many of them have no output (asserted 0 by the test)."""
    _rows.append({"kind": kind, "sample": sample, "outcome": outcome, "records": records,
                  "lost": lost, "test": test})


def section(rows):
    lines = [BEGIN, "", "## Bad inputs", "",
             "Produced by the integration tests that feed the worker what it must survive, not",
             "written by hand (`make reliability` rewrites it; `make test` writes",
             "`build/reliability/bad-inputs.md`). Every row is a test that passed: each record",
             "got its output (a prediction or a dead letter with the reason) before its offset",
             "was committed, and the worker went on with the records after it.", "",
             "| Bad input | Example | What the worker did | Records | Lost | Test |",
             "|---|---|---|---:|---:|---|"]
    for r in sorted(rows, key=lambda r: (r["kind"], r["test"])):
        lines.append(f"| {r['kind']} | {r['sample']} | {r['outcome']} | {r['records']} "
                     f"| {r['lost']} | `{r['test']}` |")
    return "\n".join(lines + ["", END])


def merged(text, new_section):
    """`text` with its bad-inputs section replaced by `new_section` (appended if absent)."""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        return head + new_section + tail
    return text.rstrip("\n") + "\n\n" + new_section + "\n"


def kept(old_text):
    """The bad-inputs section of old_text, or "" (for a writer that rewrites the rest)."""
    if BEGIN in old_text and END in old_text:
        return BEGIN + old_text.split(BEGIN, 1)[1].split(END, 1)[0] + END
    return ""


def write():
    if not _rows:
        return
    new = section(_rows)
    out = h.BIN.parent / "reliability"  # build/, build-asan/, build-tsan/: each its own
    out.mkdir(parents=True, exist_ok=True)
    (out / "bad-inputs.md").write_text(new + "\n", encoding="utf-8")
    (out / "bad-inputs.json").write_text(json.dumps(_rows, indent=2), encoding="utf-8")
    doc = os.environ.get("SS_RELIABILITY_DOC")
    if doc:
        path = Path(doc) if Path(doc).is_absolute() else h.ROOT / doc
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        path.write_text(merged(text, new), encoding="utf-8")
