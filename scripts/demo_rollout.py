#!/usr/bin/env python3
"""The rollout part of the demo (scripts/demo): what `streamscore rollout` and the worker
leave to be looked at, printed in a line or two each.

  bad-model  a deliberately bad candidate: a copy of a model whose base_score is moved so
             that its scores rise by about --shift (measured on the holdout set), and its card
  reason     the reason to record with `rollout start`, from compare's compare.json
  watch      after a rollout command (its --json record in a file): wait until the worker
             applied it (streamscore_rollout_offset on /metrics), then count the predictions
             per route over a few seconds of traffic; fails if another record is applied
  rollback   after `rollout start` of a bad candidate: wait for the worker's automatic
             rollback (a control record rolled-back, origin automatic) and print its reason
  timeline   every control record of the rollout, one line each

Exit 0 when done, 1 when what was waited for did not happen (the message says what, and
which log to read), 2 on bad usage.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import re
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class Failed(Exception):
    """What was waited for did not happen: the message says what (exit 1)."""


def log_hint(a):
    return "; see %s" % os.path.relpath(a.log, ROOT) if getattr(a, "log", None) else ""


# ------------------------------------------------------------------ the worker's /metrics


def scrape(addr):
    """The samples of http://addr/metrics as {(name, frozenset(labels)): value}."""
    with urllib.request.urlopen("http://%s/metrics" % addr, timeout=2) as r:
        text = r.read().decode("utf-8")
    out = {}
    for line in text.splitlines():
        m = SAMPLE_LINE.match(line)
        if not m or line.startswith("#"):
            continue
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def sample(s, name, **labels):
    want = set(labels.items())
    for (n, ls), v in s.items():
        if n == name and want <= set(ls):
            return v
    return None


def info(s):
    """The labels of streamscore_rollout_info (state, live_version, candidate_version...)."""
    for (n, ls), _ in s.items():
        if n == "streamscore_rollout_info":
            return dict(ls)
    return {}


def routes(s):
    """Predictions so far: all of them, and the canary's. (The live route's own counter,
    streamscore_route_records_total{route="live"}, counts only while there is a candidate.)"""
    canary = int(sample(s, "streamscore_route_records_total", route="canary") or 0)
    produced = int(sample(s, "streamscore_records_produced_total") or 0)
    return {"canary": canary, "live": produced - canary}


def scrape_or_fail(a):
    try:
        return scrape(a.metrics)
    except (OSError, urllib.error.URLError) as e:
        raise Failed("no answer from the worker's /metrics at %s (%s): has it stopped?%s"
                     % (a.metrics, getattr(e, "reason", e), log_hint(a)))


def applied_in(a, rec):
    """Seconds from the record's write to the worker's log line that applied it, or None."""
    try:
        with open(a.log, encoding="utf-8", errors="replace") as f:
            for line in f:
                if '"rollout: applied' not in line:
                    continue
                j = json.loads(line)
                if j.get("offset") == rec["offset"]:
                    ts = datetime.datetime.fromisoformat(j["ts"].replace("Z", "+00:00"))
                    return max(0.0, ts.timestamp() - rec["at"] / 1000.0)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def applied_text(a, rec):
    lag = applied_in(a, rec) if a.log else None
    return "applied by the worker %s after it was written" % (
        "%.2f s" % lag if lag is not None else "(its log does not say when)")


def wait_applied(a, offset, what, timeout):
    """Wait until the worker applies the control record at offset; returns the scrape."""
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            s = scrape(a.metrics)
            last = sample(s, "streamscore_rollout_offset")
            if last is not None and int(last) == offset:
                return s
            if last is not None and int(last) > offset:
                raise Failed("%s (offset %d) was overtaken: the worker applies offset %d, %s"
                             % (what, offset, int(last), describe_offset(a, int(last))))
        except (OSError, urllib.error.URLError):
            pass
        if time.time() > deadline:
            now = "it applies offset %d" % last if last is not None else \
                "its /metrics at %s does not answer" % a.metrics
            raise Failed("the worker did not apply %s (offset %d) within %g s: %s%s"
                         % (what, offset, timeout, now, log_hint(a)))
        time.sleep(0.1)


# ------------------------------------------------------------------ the control topic


def read_records(a, start=0, until=None, stop=None):
    """Control records of rollout a.id in a.topic from offset start, each with its offset in
    "_offset": to the partition's end (until=None), or until stop(record) is true or the
    time `until` has come."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "streamscore-demo-rollout",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    deadline = until if until is not None else time.time() + 20
    out = []
    try:
        c.assign([TopicPartition(a.topic, 0, start)])
        while time.time() < deadline:
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF and until is None:
                    return out
                continue
            if (m.key() or b"").decode() != a.id or m.value() is None:
                continue
            rec = json.loads(m.value())
            rec["_offset"] = m.offset()
            out.append(rec)
            if stop and stop(rec):
                return out
        if until is None:
            raise Failed("could not read topic %s to its end on %s" % (a.topic, a.bootstrap))
        return out
    finally:
        c.close()


def describe_offset(a, offset):
    recs = [r for r in read_records(a, offset) if r["_offset"] == offset]
    if not recs:
        return "a record of another rollout"
    r = recs[0]
    return "%s by %s: %s" % (state_text(r), r.get("by") or "?", r.get("reason") or "")


# ------------------------------------------------------------------ words


def pct(x):
    return "%g %%" % round(x * 100, 2)


def version(m):
    return "%s %s" % (m["name"], m["version"]) if m else None


def state_text(r):
    st = r["state"]
    if st == "canary":
        return "canary at %s, candidate %s" % (pct(r["share"]), version(r["candidate"]))
    if st == "shadow":
        return "shadow (share 0), candidate %s" % version(r["candidate"])
    if st == "promoted":
        return "promoted: %s is the live model" % version(r["live"])
    if st == "rolled-back":
        return "rolled back (share 0), candidate %s serves nothing" % version(r["candidate"])
    return st


def counts_text(before, after, s):
    i = info(s)
    d = {r: after[r] - before[r] for r in after}
    total = d["live"] + d["canary"]
    live = "live (churn %s) %d" % (i.get("live_version", "?"), d["live"])
    if not i.get("candidate_version") and not d["canary"]:
        return "%s, canary 0" % live
    share = " = %.1f %%" % (100.0 * d["canary"] / total) if total else ""
    return "%s, canary (churn %s) %d%s" % (live, i.get("candidate_version") or "-",
                                            d["canary"], share)


GATES = (  # the gate label, how it is shown, the factor to the unit shown, the unit
    ("shift_psi", "score shift PSI", 1, ""), ("drift_psi", "drift PSI", 1, ""),
    ("latency_p95_seconds", "latency p95", 1000, " ms"), ("error_rate", "errors", 100, " %"),
    ("roc_auc", "ROC-AUC", 1, ""))


def gates_text(s):
    parts, fired = [], []
    for gate, name, k, unit in GATES:
        v = sample(s, "streamscore_rollout_gate_value", route="canary", gate=gate)
        t = sample(s, "streamscore_rollout_gate_threshold", gate=gate)
        if v is None or math.isnan(v):
            continue
        parts.append("%s %.3g%s (%s %g%s)" % (name, v * k, unit, ">=" if gate == "roc_auc"
                                               else "<=", t * k, unit))
        if sample(s, "streamscore_rollout_triggered", gate=gate):
            fired.append(name)
    if not parts:
        return "no figure yet"
    return ", ".join(parts) + ("; triggered: " + ", ".join(fired) if fired else
                               "; none triggered")


# ------------------------------------------------------------------ commands


def load_record(path):
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    try:
        return json.loads(text.splitlines()[-1])
    except (ValueError, IndexError):
        raise Failed("%s holds no control record (the command printed %r)" % (path, text[:200]))


def cmd_watch(a):
    rec = load_record(a.record)
    off = rec["offset"]
    what = "'%s'" % a.what
    s = wait_applied(a, off, what, a.timeout)
    print("    offset %d, %s: %s" % (off, state_text(rec), applied_text(a, rec)), flush=True)
    before = routes(s)
    end = time.time() + a.seconds
    while time.time() < end:
        time.sleep(min(0.5, max(0.0, end - time.time())))
        s = scrape_or_fail(a)
        now = sample(s, "streamscore_rollout_offset")
        now = -1 if now is None else int(now)
        if now != off:
            raise Failed("while %s was serving, the worker applied offset %d: %s%s"
                         % (what, now, describe_offset(a, now), log_hint(a)))
    after = routes(s)
    if after["live"] + after["canary"] == before["live"] + before["canary"]:
        raise Failed("no prediction in %g s of traffic: is the event stream running? (see "
                     "%s)%s" % (a.seconds, a.stream_log, log_hint(a)))
    print("    %g s of traffic: %s" % (a.seconds, counts_text(before, after, s)))
    if a.gates:
        print("    gates on the canary: %s" % gates_text(s))
    return 0


def cmd_rollback(a):
    rec = load_record(a.record)
    off = rec["offset"]
    s0 = wait_applied(a, off, "the bad candidate's start", a.apply_timeout)
    print("    offset %d, %s: %s" % (off, state_text(rec), applied_text(a, rec)), flush=True)
    before = routes(s0)
    t0 = rec["at"] / 1000.0
    deadline = time.time() + a.timeout
    print("    waiting for a gate to roll it back (up to %g s) ..." % a.timeout, flush=True)

    got = read_records(a, off + 1, until=deadline, stop=lambda r: True)
    if not got:
        s = scrape_or_fail(a)
        raise Failed("no automatic rollback within %g s of the bad candidate's start; the "
                     "canary's gates: %s%s" % (a.timeout, gates_text(s), log_hint(a)))
    r = got[0]
    if r["state"] != "rolled-back" or r.get("origin") != "automatic":
        raise Failed("expected an automatic rollback, got offset %d: %s by %s (%s): %s"
                     % (r["_offset"], state_text(r), r.get("by"), r.get("origin"),
                        r.get("reason")))
    s = wait_applied(a, r["_offset"], "the automatic rollback", a.apply_timeout)
    after = routes(s)
    print("    rolled back automatically %.1f s after the start (offset %d, by %s):"
          % (r["at"] / 1000.0 - t0, r["_offset"], r.get("by")))
    print("      %s" % r.get("reason"))
    print("    the bad candidate scored %d predictions; churn %s serves everyone again "
          "(canary share %g)" % (after["canary"] - before["canary"],
                                 info(s).get("live_version", "?"),
                                 sample(s, "streamscore_rollout_share") or 0))
    return 0


def cmd_timeline(a):
    recs = read_records(a)
    if not recs:
        raise Failed("no control record of rollout %s in topic %s" % (a.id, a.topic))
    rows = []
    for r in recs:
        if r["state"] == "promoted":
            cand = "%s (live)" % r["live"]["version"]
        else:
            cand = r["candidate"]["version"] if r.get("candidate") else "-"
        share = "-" if r["state"] == "promoted" else pct(r["share"])
        rows.append((time.strftime("%H:%M:%S", time.localtime(r["at"] / 1000.0)),
                     r["state"], share, cand, r.get("by") or "?", r.get("reason") or ""))
    head = ("time", "state", "share", "candidate", "by", "reason")
    w = [max(len(x[i]) for x in rows + [head]) for i in range(5)]
    for row in [head] + rows:
        print("  " + "  ".join(row[i].ljust(w[i]) for i in range(5)) + "  " + row[5])
    return 0


def cmd_reason(a):
    try:
        with open(a.compare, encoding="utf-8") as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        print("compare: no report (%s)" % e)
        return 0
    v = rep.get("verdict") or {}
    p = rep.get("pairs") or {}
    figures = "%d pairs, flip rate %.1f %%, p99 |score diff| %.3f" % (
        p.get("n", 0), 100 * ((p.get("flips") or {}).get("rate") or 0),
        (p.get("score_diff") or {}).get("abs_p99") or 0)
    if v.get("decision") == "promote":
        print("compare: promote (%s)" % figures)
    else:
        why = "; ".join(x.split(": ", 1)[-1] for x in v.get("reasons") or []) or figures
        print("compare: %s (%s), rolled out anyway for the demo"
              % (v.get("decision", "no verdict"), why))
    return 0


def cmd_bad_model(a):
    import numpy as np
    import fastavro
    import xgboost
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import churn_data

    with open(a.model, encoding="utf-8") as f:
        model = json.load(f)
    card_in = a.model[:-len(".json")] + ".card.json"
    with open(card_in, encoding="utf-8") as f:
        card = json.load(f)
    names = card["feature_names"]
    with open(os.path.join(ROOT, a.data), "rb") as f:
        rows = [r for _, r in zip(range(a.rows), fastavro.reader(f))]
    x = np.stack([churn_data.feature_vector(r, names) for r in rows])
    dm = xgboost.DMatrix(x, feature_names=names)
    p = xgboost.Booster(model_file=a.model).predict(dm).astype(np.float64)

    def logit(q):
        return math.log(q / (1 - q))

    def mean_shift(d):
        return float(np.mean(1 / (1 + np.exp(-(np.log(p / (1 - p)) + d))) - p))

    lo, hi = 0.0, 10.0  # the logit shift d whose mean score shift is a.shift
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean_shift(mid) < a.shift else (lo, mid)
    param = model["learner"]["learner_model_param"]
    base = float(param["base_score"].strip("[]"))
    new_base = float(np.float32(1 / (1 + math.exp(-(logit(base) + lo)))))
    param["base_score"] = "[%.8E]" % new_base
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    data = json.dumps(model, separators=(",", ":")).encode()
    with open(a.out, "wb") as f:
        f.write(data)
    q = xgboost.Booster(model_file=a.out).predict(dm).astype(np.float64)
    card.update({
        "version": a.version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "notes": "A deliberately bad candidate for scripts/demo: churn %s with base_score %g "
                 "instead of %g, its scores %+.2f on average (never to be used)"
                 % (card["version"], new_base, base, float(np.mean(q - p))),
    })
    card.pop("validation", None)
    card_out = a.out[:-len(".json")] + ".card.json"
    with open(card_out, "w", encoding="utf-8") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    print("    %s (and its card): base_score %.4g instead of %.4g, scores %+.2f on average\n"
          "    on %d holdout events (median %.2f -> %.2f)"
          % (os.path.relpath(a.out, ROOT), new_base, base, float(np.mean(q - p)), len(rows),
             float(np.median(p)), float(np.median(q))))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--metrics", default="127.0.0.1:19464", help="the worker's metrics.listen")
    common.add_argument("--bootstrap", default="127.0.0.1:19092")
    common.add_argument("--topic", default="rollout", help="rollout.topic")
    common.add_argument("--id", default="streamscore", help="rollout.id")
    common.add_argument("--log", help="the worker's log, named in failures")

    w = sub.add_parser("watch", parents=[common])
    w.add_argument("--record", required=True, help="the --json output of a rollout command")
    w.add_argument("--what", required=True, help="the change, as named in failures")
    w.add_argument("--seconds", type=float, default=5, help="traffic to count")
    w.add_argument("--timeout", type=float, default=15, help="to apply the record")
    w.add_argument("--gates", action="store_true", help="print the canary's gate figures")
    w.add_argument("--stream-log", default="the event stream's log")

    r = sub.add_parser("rollback", parents=[common])
    r.add_argument("--record", required=True, help="the --json output of rollout start")
    r.add_argument("--timeout", type=float, default=60)
    r.add_argument("--apply-timeout", type=float, default=15)

    sub.add_parser("timeline", parents=[common])

    c = sub.add_parser("reason")
    c.add_argument("--compare", required=True, help="compare.json")

    b = sub.add_parser("bad-model")
    b.add_argument("--model", required=True, help="the model to copy (its card beside it)")
    b.add_argument("--out", required=True)
    b.add_argument("--version", required=True)
    b.add_argument("--shift", type=float, default=0.3, help="mean score shift wanted")
    b.add_argument("--data", default="models/data/churn-holdout.avro")
    b.add_argument("--rows", type=int, default=4000)

    a = ap.parse_args(argv)
    fn = {"watch": cmd_watch, "rollback": cmd_rollback, "timeline": cmd_timeline,
          "reason": cmd_reason, "bad-model": cmd_bad_model}[a.cmd]
    try:
        return fn(a)
    except Failed as e:
        print("error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
