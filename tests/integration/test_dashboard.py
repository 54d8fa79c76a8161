"""The chart's Grafana dashboard shows what a worker exports: every streamscore_* name in the
queries of helm/streamscore/dashboards/streamscore.json is on the /metrics of a running
worker, and so is every metric of tests/helm/testdata/worker-metrics.txt (the list the chart
tests hold the dashboard's queries to), with its type and labels; each literal label value
a query selects is one the worker writes; the mode label the dashboard joins on tells the
primary from its shadow."""

import json
import os
import random
import re
import socket

import numpy as np

import harness as h

DASHBOARD = h.ROOT / "helm" / "streamscore" / "dashboards" / "streamscore.json"
LISTED = h.ROOT / "tests" / "helm" / "testdata" / "worker-metrics.txt"
WINDOW = 100  # drift.window's least: the PSI gauges appear once the window is full
EVENTS = 150
TRUNCATED = 2  # dead letters (bad_avro)
HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


def _port():
    """A free loopback port for metrics.listen: h.free_port()'s, or with
    SS_IT_METRICS_PORTS=LO-HI one of that range (on a machine whose other test stacks hold
    parts of h.free_port()'s)."""
    spec = os.environ.get("SS_IT_METRICS_PORTS")
    if not spec:
        return h.free_port()
    lo, hi = (int(x) for x in spec.split("-"))
    for port in random.sample(range(lo, hi + 1), hi - lo + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free loopback port in SS_IT_METRICS_PORTS={spec}")


def _listed():
    """worker-metrics.txt: {name: (type, label names, when)}."""
    out = {}
    for line in LISTED.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, kind, labels, when = line.split()
        assert name not in out, f"{LISTED}: {name} twice"
        out[name] = (kind, frozenset() if labels == "-" else frozenset(labels.split(",")), when)
    assert out, f"{LISTED}: no metrics"
    return out


def _families(text):
    """{family: (type, label names)} of a /metrics text, a histogram's _bucket, _sum and
    _count folded into their family (its le left out); every sample has a # TYPE."""
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    fams = {name: (kind, set()) for name, kind in types.items()}
    for name, labels in h.parse_metrics(text):
        fam = name
        if name not in types:
            fam = next((name[:-len(p)] for p in HISTOGRAM_PARTS if name.endswith(p)
                        and types.get(name[:-len(p)]) == "histogram"), None)
            assert fam, f"sample {name} has no # TYPE"
        fams[fam][1].update(k for k, _ in labels if fam == name or k != "le")
    return {n: (kind, frozenset(ls)) for n, (kind, ls) in fams.items()}


def _dashboard_queries():
    """Every PromQL text of the dashboard: the panels' queries and the variables'."""
    d = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    out = []

    def walk(panels):
        for p in panels:
            out.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))

    walk(d["panels"])
    for v in d["templating"]["list"]:
        q = v.get("query")
        if v.get("type") == "query":
            out.append(q.get("query", "") if isinstance(q, dict) else q)
    assert len(out) > 20, f"{DASHBOARD}: {len(out)} queries"
    return out


def _exported(name, samples):
    """name is a sample's name, or a histogram's whose parts are there."""
    names = {n for n, _ in samples}
    return name in names or all(name + p in names for p in HISTOGRAM_PARTS)


def _settled(s, rollout):
    """Every event handled, the drift window full, lag reported for every partition, and
    with rollout control its state read."""
    return ((h.metric(s, "streamscore_records_produced_total") or 0) == EVENTS
            and (h.metric(s, "streamscore_records_consumed_total") or 0) == EVENTS + TRUNCATED
            and h.metric(s, "streamscore_score_psi") is not None
            and len(h.metric_labels(s, "streamscore_consumer_lag")) == 3
            and (not rollout or h.metric_sum(s, "streamscore_rollout_offset") is not None))


def test_the_dashboard_names_only_metrics_and_labels_a_running_worker_exports(ctx):
    rng = np.random.default_rng(4401)
    control = f"it-dashboard-rollout-{ctx.uid}"  # created by the worker
    ctx.extra_topics.append(control)
    labels_topic, = ctx.add_topics(f"it-dashboard-labels-{ctx.uid}", partitions=1)
    ctx.add_topics(ctx.shadow_topic)
    customers = [f"dash-{ctx.uid}-{i:03d}" for i in range(40)]
    events = h.random_events(rng, customers, EVENTS)
    messages = [{"key": ev["customer_id"].encode(),
                 "value": h.encode_avro(h.EVENT_SCHEMA_PATH, ev)} for ev in events]
    messages += [{"key": b"t", "value": h.encode_avro(h.EVENT_SCHEMA_PATH, ev)[:7]}
                 for ev in events[:TRUNCATED]]
    h.produce_raw(ctx.input_topic, messages)

    common = {"drift.window": WINDOW, "metrics.lag.interval.ms": 500}
    pport, sport = _port(), _port()
    while sport == pport:
        sport = _port()
    primary = ctx.start_worker(ctx.props({**common, "metrics.listen": f"127.0.0.1:{pport}",
                                          "rollout.topic": control,
                                          "rollout.labels.topic": labels_topic}))
    shadow = ctx.start_worker(ctx.shadow_props({**common,
                                                "metrics.listen": f"127.0.0.1:{sport}"}))
    h.wait_metrics(pport, lambda s: _settled(s, True), timeout=90, worker=primary,
                   what="the primary: every event handled, drift window full, lag, rollout")
    h.wait_metrics(sport, lambda s: _settled(s, False), timeout=90, worker=shadow,
                   what="the shadow: every event handled, drift window full, lag")
    texts = {mode: h.http_get(port, "/metrics")[1]
             for mode, port in (("primary", pport), ("shadow", sport))}
    samples = {mode: h.parse_metrics(text) for mode, text in texts.items()}
    fams = {mode: _families(text) for mode, text in texts.items()}
    listed = _listed()

    # the list is what a worker exports: names, types, labels; the primary (rollout control
    # and labels on) has all of it, the shadow all but the rollout's
    for mode, have in fams.items():
        unlisted = sorted(set(have) - set(listed))
        assert not unlisted, (f"the {mode} exports {unlisted}, not in {LISTED}: add them (name, "
                              "type, labels, when) and see whether the dashboard should show them")
        for name, (kind, labels, when) in listed.items():
            if mode == "shadow" and when in ("rollout", "labels"):
                assert name not in have, f"the shadow exports {name}, a rollout metric"
                continue
            assert name in have, f"{name} is listed in {LISTED}, but the {mode} does not export it"
            assert have[name] == (kind, labels), \
                f"{name}: the {mode} exports {have[name]}, {LISTED} says {(kind, set(labels))}"
    assert h.metric(samples["primary"], "streamscore_records_dead_lettered_total",
                    reason="bad_avro") == TRUNCATED
    assert [ls["mode"] for ls, _ in h.metric_labels(samples["primary"], "streamscore_model_info")] \
        == ["primary"]
    assert [ls["mode"] for ls, _ in h.metric_labels(samples["shadow"], "streamscore_model_info")] \
        == ["shadow"]

    # every name the dashboard's queries hold is exported; each literal label value they
    # select is one the worker writes
    queries = _dashboard_queries()
    names = sorted({n for q in queries for n in re.findall(r"streamscore_[a-z0-9_]+", q)})
    missing = [n for n in names if not _exported(n, samples["primary"])]
    assert not missing, f"the dashboard names {missing}, which the worker does not export"
    both = {**samples["shadow"], **samples["primary"]}
    for q in queries:
        for name, body in re.findall(r"(streamscore_[a-z0-9_]+)\{([^}]*)\}", q):
            for label, value in re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"$]*)"', body):
                assert any(n == name and (label, value) in ls for n, ls in both), \
                    f'the dashboard selects {name}{{{label}="{value}"}}, which no worker writes'

    shadow.stop()
    primary.stop()
