"""Progressive rollout (mode = primary, rollout.topic set): a candidate model serves a share
of the customers beside the live model, chosen by a stable hash of the customer id salted
with the candidate's sha256, computed here in Python as the spec defines it. The share grows
by `streamscore rollout step` (or by itself, gates passing), every worker of the group
applies a change of the control topic within a batch, a restarted worker resumes it, a gate
beyond its threshold rolls the candidate back on its own, a candidate whose digest or
signature does not verify never serves, and no event is lost or scored twice across the
changes. Each prediction names its route and the model that scored it, and its score is
that model's reference score of the customer's merged vector."""

import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import harness as h

LIVE = "1.0.0"  # h.PRIMARY_MODEL
CAND = "1.1.0"  # h.CANDIDATE_MODEL
CAND_SHA = h.sha256_file(h.CANDIDATE_MODEL)
PRIMARY_SHA = h.sha256_file(h.PRIMARY_MODEL)
FAILPOINTS_BIN = Path(os.environ.get("FAILPOINTS_BIN") or h.BIN.parent / "streamscore-failpoints")

# The gates' windows of the tests that judge: small enough for a test, the spec's keys.
SMALL_WINDOWS = {"rollout.window.ms": 5000, "rollout.gate.for.ms": 2000,
                 "rollout.min.records": 50}
# Gates a test does not judge are set where no candidate of it reaches them (the largest PSI
# the worker accepts is 100); a deployment would not, the test judges one gate at a time.
UNREACHABLE = {"drift": {"rollout.gate.drift.psi": 100}, "shift": {"rollout.gate.shift.psi": 100},
               "latency": {"rollout.gate.latency.p95.ms": 60000}}


def _encode(ev):
    return h.encode_avro(h.EVENT_SCHEMA_PATH, ev)


def _control_topic(ctx):
    """This test's control topic (created by the workers or the command; deleted at the end)."""
    name = f"it-rollout-{ctx.uid}"
    if name not in ctx.extra_topics:
        ctx.extra_topics.append(name)
    return name


def _props(ctx, port=None, overrides=None):
    p = ctx.props({"rollout.topic": _control_topic(ctx), **(overrides or {})})
    if port is not None:
        p["metrics.listen"] = f"127.0.0.1:{port}"
    return p


def _start(ctx, overrides=None, binary=None, env=None):
    """A primary worker of this test's group with metrics on a port of its own: (worker,
    port, props). binary: another build (the failpoints one)."""
    port = h.free_port()
    props = _props(ctx, port, overrides)
    plain = h.BIN
    if binary is not None:
        assert binary.exists(), f"binary {binary} not found: build it first"
        h.BIN = binary
    try:
        w = ctx.start_worker(props, env=env)
    finally:
        h.BIN = plain
    return w, port, props


def _wait_running(port, w, timeout=30):
    """Until the worker serves /metrics with its rollout state (the control topic read)."""
    return h.wait_metrics(port, lambda s: h.metric_sum(s, "streamscore_rollout_offset")
                          is not None, timeout=timeout, worker=w, what="the rollout metrics")


def _produced(port):
    return h.metric_sum(h.scrape(port), "streamscore_records_produced_total") or 0


def _wait_produced(port, n, w, timeout=60):
    return h.wait_metrics(port, lambda s: (h.metric_sum(s, "streamscore_records_produced_total")
                                           or 0) >= n, timeout=timeout, worker=w,
                          what=f"{n} predictions")


def _scored_after(t_ms, n):
    """A TopicReader condition: at least n predictions scored after t_ms."""
    return lambda recs: sum(1 for r in recs if r.get("scored_at", 0) > t_ms) >= n


def _references(events, placed, models):
    """{(partition, offset): {"hash": ..., version: score, ...}} for every model in `models`
    (version -> path), from the vectors merged in partition order."""
    ordered, places = h.in_partition_order(events, placed)
    vectors, _ = h.simulate_merge(ordered)
    out = {p: {"hash": h.feature_hash(v)} for p, v in zip(places, vectors)}
    for version, path in models.items():
        for p, s in zip(places, h.reference_scores(path, vectors)):
            out[p][version] = float(s)
    return out


def _score_problems(records, refs, limit=10):
    """Predictions whose feature hash or score is not the reference of the model they name."""
    bad = []
    for r in records:
        where = (r["source_partition"], r["source_offset"])
        ref = refs.get(where)
        if ref is None:
            bad.append(f"{where}: prediction for an unknown source")
            continue
        if r["feature_hash"] != ref["hash"]:
            bad.append(f"{where} {r['customer_id']}: feature_hash {r['feature_hash']} != "
                       f"{ref['hash']}")
        elif r["model_version"] not in ref:
            bad.append(f"{where}: model_version {r['model_version']!r} has no reference")
        elif not abs(r["score"] - ref[r["model_version"]]) <= h.SCORE_TOL:
            bad.append(f"{where} {r['customer_id']} ({r.get('route')}, {r['model_version']}): "
                       f"score {r['score']!r} != reference {ref[r['model_version']]!r}")
    return bad[:limit], len(bad)


def _one_each(records, placed):
    """Asserts exactly one prediction per placed offset and none for anything else."""
    by_source = h.index_by_source(records)
    dup = {k: len(v) for k, v in by_source.items() if len(v) > 1}
    missing = sorted(set(placed) - set(by_source))
    unknown = sorted(set(by_source) - set(placed))
    assert not dup and not missing and not unknown, (
        f"{len(records)} predictions for {len(placed)} events: {len(dup)} offsets duplicated "
        f"{sorted(dup.items())[:5]}, {len(missing)} missing {missing[:5]}, {len(unknown)} "
        f"unknown {unknown[:5]}")
    return by_source


def _outcome_counts(records):
    out = {}
    for r in records:
        k = (r.get("route"), r["model_version"])
        out[k] = out.get(k, 0) + 1
    return out


def _gate_samples(port):
    """The rollout and route metrics of a worker (for a failure's message)."""
    status, body = h.http_get(port, "/metrics")
    if status != 200:
        return f"/metrics: {status} {body[:200]}"
    return sorted(((name, dict(labels), v) for (name, labels), v in h.parse_metrics(body).items()
                   if name.startswith(("streamscore_rollout", "streamscore_route"))), key=str)


def _stop_all(stream, readers):
    """finally-block cleanup: a stream still running is stopped, readers closed."""
    if stream is not None and stream._thread.is_alive():
        stream._stop.set()
        stream._thread.join(60)
    for r in readers:
        r.close()


# --------------------------------------------------------------------------- 1. routing


def test_a_share_routes_the_customers_whose_salted_hash_is_below_it_and_a_step_keeps_them(ctx):
    """share 0.25: of 10,000 customers (one event each, waiting before the worker starts, so
    the worker must have read the control topic before it scores), 25 % ± 2 % are on the
    canary, each exactly when its bucket, fmix64(FNV-1a 64(sha256 hex, 0, customer id)) mod
    10000, is below 2500; a canary prediction names the candidate (1.1.0) and carries its
    score of the merged vector, a live one the live model's (1.0.0). After `rollout step
    --share 0.5` a second event per customer: every customer that was on the canary stays
    there, 50 % ± 2 % are, and the second events are scored on the vectors merged from both
    events, whichever model scores."""
    rng = np.random.default_rng(7001)
    n = 10_000
    customers = [f"rc-{ctx.uid}-{i:05d}" for i in range(n)]
    port = h.free_port()
    props = _props(ctx, port, {"rollout.auto.rollback": "false", "batch.max.messages": 500})
    cfg = ctx.config(props)

    started = h.rollout_json(cfg, "start", "--model", h.CANDIDATE_MODEL, "--share", "0.25")
    assert started["state"] == "canary" and started["share"] == 0.25, started
    assert started["candidate"]["sha256"] == CAND_SHA, started
    assert (started["candidate"]["name"], started["candidate"]["version"]) == ("churn", CAND)
    first = [h.make_event(cid, 1_700_000_000_000 + i, rng, **h.random_features(rng, 1, 11))
             for i, cid in enumerate(customers)]
    placed1 = h.produce(ctx.input_topic, first, _encode)

    w = ctx.start_worker(props)
    reader = h.TopicReader(ctx.output_topic)
    try:
        h.wait_rollout_applied(port, started["offset"], 0.25, worker=w)
        reader.wait_for(n, 120, worker=w, what="predictions of the first events")
        stepped = h.rollout_json(cfg, "step", "--share", "0.5")
        assert stepped["state"] == "canary" and stepped["share"] == 0.5, stepped
        assert stepped["base"] == started["offset"], stepped
        h.wait_rollout_applied(port, stepped["offset"], 0.5, worker=w)
        second = [h.make_event(cid, 1_700_100_000_000 + i, rng, **h.random_features(rng, 1, 5))
                  for i, cid in enumerate(customers)]
        placed2 = h.produce(ctx.input_topic, second, _encode)
        reader.wait_for(2 * n, 120, worker=w, what="predictions of both events")
        routes = h.wait_metrics(
            port, lambda s: (h.metric_sum(s, "streamscore_route_records_total", route="canary")
                             or 0) + (h.metric_sum(s, "streamscore_route_records_total",
                                                   route="live") or 0) >= 2 * n,
            timeout=20, worker=w, what="predictions counted by route")
        w.stop()
        reader.drain()
    finally:
        reader.close()

    assert not reader.undecodable, f"undecodable predictions: {reader.undecodable[:3]}"
    by_source = _one_each(reader.records, placed1 + placed2)
    refs = _references(first + second, placed1 + placed2,
                       {LIVE: h.PRIMARY_MODEL, CAND: h.CANDIDATE_MODEL})
    thresholds = {v: h.model_card(p)["threshold"] for v, p in ((LIVE, h.PRIMARY_MODEL),
                                                                (CAND, h.CANDIDATE_MODEL))}
    wrong = []
    canary = {1: set(), 2: set()}
    for rnd, placed, share in ((1, placed1, 0.25), (2, placed2, 0.5)):
        for place in placed:
            r = by_source[place][0]
            cid = r["customer_id"]
            want = ("canary", CAND) if h.rollout_canary(CAND_SHA, cid, share) else ("live", LIVE)
            got = (r.get("route"), r["model_version"])
            if got != want:
                wrong.append(f"round {rnd} {cid} (bucket {h.rollout_bucket(CAND_SHA, cid)}): "
                             f"{got}, expected {want}")
            if r["model_name"] != "churn" or r["threshold"] != thresholds.get(r["model_version"]) \
                    or r["decision"] != (r["score"] >= r["threshold"]):
                wrong.append(f"round {rnd} {cid}: model {r['model_name']} {r['model_version']} "
                             f"threshold {r['threshold']} decision {r['decision']} for score "
                             f"{r['score']}")
            if r.get("route") == "canary":
                canary[rnd].add(cid)
    assert not wrong, f"{len(wrong)} predictions routed or labelled wrong: {wrong[:10]}"
    first_bad, n_bad = _score_problems(reader.records, refs)
    assert n_bad == 0, f"{n_bad} predictions differ from their model's reference: {first_bad}"
    share1, share2 = len(canary[1]) / n, len(canary[2]) / n
    print(f"canary share {share1:.4f} at 0.25, {share2:.4f} at 0.5")
    assert abs(share1 - 0.25) <= 0.02, f"{share1:.4f} of customers on the canary at share 0.25"
    assert abs(share2 - 0.5) <= 0.02, f"{share2:.4f} of customers on the canary at share 0.5"
    left = sorted(canary[1] - canary[2])
    assert not left, f"{len(left)} customers left the canary when the share grew: {left[:5]}"
    n_canary = len(canary[1]) + len(canary[2])
    assert h.metric_sum(routes, "streamscore_route_records_total", route="canary") == n_canary
    assert h.metric_sum(routes, "streamscore_route_records_total", route="live") == 2 * n - n_canary
    assert ctx.dead_letters() == []


# --------------------------------------------------------------------------- 2. two workers

BATCH_WAIT_MS = 1000
SLACK_MS = BATCH_WAIT_MS + 1000  # a change applies at the next batch: within this of its write


def test_two_workers_apply_a_step_within_a_batch_and_a_restarted_worker_resumes_the_state(ctx):
    """Two workers of one group (batch.max.wait.ms = 1000) and events streaming: after
    `rollout start` and `rollout step` both workers' /metrics show the record's offset and
    the new share, /readyz says so, and every prediction scored more than batch.max.wait.ms
    + 1 s after the control record's Kafka timestamp follows its share (before that, the
    previous share or the new one). A worker stopped (SIGTERM) and started again mid-canary
    reports the same share and offset before any new record and routes the same customers
    to the canary."""
    threads = max(h.WORKER_THREADS, 1)
    over = {"batch.max.wait.ms": BATCH_WAIT_MS, "rollout.auto.rollback": "false"}
    wa, port_a, props_a = _start(ctx, over)
    wb, port_b, _ = _start(ctx, over)
    cfg = ctx.config(props_a)
    for port, w in ((port_a, wa), (port_b, wb)):
        s = _wait_running(port, w)
        assert h.metric_sum(s, "streamscore_rollout_offset") == -1, "a record applied already"
    h.wait_group_assigned(ctx.admin, ctx.group, ctx.input_topic, ctx.partitions, 60, worker=wb,
                          members=2 * threads)
    customers = [f"tw-{ctx.uid}-{i:04d}" for i in range(1500)]
    stream = h.SteadyStream(ctx.input_topic, customers, 150, seed=7002)
    reader = h.TopicReader(ctx.output_topic)
    control = h.ControlReader(_control_topic(ctx))
    try:
        stream.start()
        stream.wait_sent(150)
        started = h.rollout_json(cfg, "start", "--model", h.CANDIDATE_MODEL, "--share", "0.25")
        for port, w in ((port_a, wa), (port_b, wb)):
            h.wait_rollout_applied(port, started["offset"], 0.25, worker=w, timeout=10)
        t1 = control.at(started["offset"])["_timestamp"]
        reader.wait_until(_scored_after(t1 + SLACK_MS, 200), 60, worker=wa,
                          what="predictions at share 0.25")

        stepped = h.rollout_json(cfg, "step")  # the next of rollout.steps: 0.5
        assert stepped["state"] == "canary" and stepped["share"] == 0.5, stepped
        assert stepped["base"] == started["offset"], stepped
        t2 = control.at(stepped["offset"])["_timestamp"]
        for port, w in ((port_a, wa), (port_b, wb)):
            h.wait_rollout_applied(port, stepped["offset"], 0.5, worker=w, timeout=10)
            status, body = h.http_get(port, "/readyz")
            assert re.search(r"rollout: state canary, share 0\.50*\b", body) \
                and f"candidate churn {CAND} (sha256 {CAND_SHA[:4]}" in body \
                and f"offset {stepped['offset']}" in body, f"/readyz {status}: {body!r}"
        reader.wait_until(_scored_after(t2 + SLACK_MS, 200), 60, worker=wa,
                          what="predictions at share 0.5")

        wa.stop()
        wc, port_c, _ = _start(ctx, over)
        s = h.wait_rollout_applied(port_c, stepped["offset"], 0.5, worker=wc)
        assert h.metric_sum(s, "streamscore_rollout_info", state="canary",
                            candidate_version=CAND, candidate_sha256=CAND_SHA) == 1, \
            h.metric_labels(s, "streamscore_rollout_info")
        h.wait_group_assigned(ctx.admin, ctx.group, ctx.input_topic, ctx.partitions, 60,
                              worker=wc, members=2 * threads)
        h.wait_metrics(port_c, lambda s: all((h.metric_sum(s, "streamscore_route_records_total",
                                                           route=r) or 0) >= 20
                                             for r in ("canary", "live")),
                       timeout=60, worker=wc, what="the restarted worker's predictions")
        events, placed = stream.stop()
        reader.wait_until(lambda recs: set(placed) <= set(h.index_by_source(recs)), 60,
                          worker=wb, what="a prediction for every event")
        wb.stop()
        wc.stop()
        reader.drain()
        control.drain()
    finally:
        _stop_all(stream, [reader, control])

    assert not reader.undecodable, f"undecodable predictions: {reader.undecodable[:3]}"
    by_source = h.index_by_source(reader.records)
    unknown = sorted(set(by_source) - set(placed))
    assert not unknown, f"predictions for sources never produced: {unknown[:5]}"
    chain = h.rollout_chain(control.records, ctx.group)
    assert [r["_offset"] for r in chain] == [started["offset"], stepped["offset"]], \
        f"control records {[(r['_offset'], r.get('state'), r.get('share')) for r in chain]}"
    first_bad, n_bad = h.route_problems(reader.records, chain, SLACK_MS)
    assert n_bad == 0, f"{n_bad} predictions not routed as the share in force: {first_bad}"
    late = [r for r in reader.records if r["scored_at"] > t2 + SLACK_MS]
    counts = _outcome_counts(late)
    assert counts.get(("canary", CAND), 0) > 0 and counts.get(("live", LIVE), 0) > 0, counts
    once = [v[0] for v in by_source.values() if len(v) == 1]
    refs = _references(events, placed, {LIVE: h.PRIMARY_MODEL, CAND: h.CANDIDATE_MODEL})
    first_bad, n_bad = _score_problems(once, refs)
    assert n_bad == 0, f"{n_bad} predictions differ from their model's reference: {first_bad}"
    print(f"{len(events)} events, {len(reader.records)} predictions; after the step: {counts}")


# --------------------------------------------------------------------------- 3. rollback


PROBE_ROWS = [[np.nan] * len(h.FEATURES), [0.0] * len(h.FEATURES), [1.0] * len(h.FEATURES)]


def _shifted_candidate(tmp):
    """The live model with base_score 0.999: every score moves to ~1 (shift gate)."""
    doc = json.loads(h.PRIMARY_MODEL.read_text())
    doc["learner"]["learner_model_param"]["base_score"] = "[9.99E-1]"
    path = tmp / "shifted" / "model.json"
    path.parent.mkdir()
    path.write_text(json.dumps(doc))
    rng = np.random.default_rng(3)
    vectors, _ = h.simulate_merge(h.random_events(rng, [f"c{i}" for i in range(50)], 400))
    assert np.median(h.reference_scores(path, vectors)) > 0.98 > \
        np.median(h.reference_scores(h.PRIMARY_MODEL, vectors))
    return path


def _non_finite_candidate(tmp):
    """Scores +inf when monthly_charges > 60 (about half the customers who have one), 0.7
    otherwise; the probe batch (all missing, all 0, all 1) scores finite, so the worker takes
    it: the error-rate gate must catch it."""
    path = tmp / "non-finite" / "model.json"
    path.parent.mkdir()
    h.model_infinite_above(path, "monthly_charges", 60.0)
    assert np.isfinite(h.reference_scores(path, PROBE_ROWS)).all()
    row = [np.nan] * len(h.FEATURES)
    row[h.FEATURES.index("monthly_charges")] = 100.0
    assert np.isinf(h.reference_scores(path, [row])).all()
    return path


def _slow_candidate(tmp):
    """The live model's very file (a copy without a card): only slower, by a failpoint."""
    path = tmp / "slow" / "model.json"
    path.parent.mkdir()
    shutil.copy(h.PRIMARY_MODEL, path)
    return path


DELAY_MS = 700
BAD_CANDIDATES = {
    # id: (model builder, version, gates it may trip, config, failpoint delay)
    "scores_far_from_live": (_shifted_candidate, "1.0.0-shifted", ("shift_psi", "drift_psi"),
                             {**UNREACHABLE["latency"]}, None),
    "non_finite_scores": (_non_finite_candidate, "0.0.1-inf", ("error_rate",),
                          {**UNREACHABLE["drift"], **UNREACHABLE["shift"],
                           **UNREACHABLE["latency"]}, None),
    "slow_predict": (_slow_candidate, "1.0.0-slow", ("latency_p95",),
                     {"rollout.gate.latency.p95.ms": 500, **UNREACHABLE["drift"],
                      **UNREACHABLE["shift"]}, DELAY_MS),
}
ROLLBACK_MARGIN_MS = 8000


@pytest.mark.parametrize("bad", list(BAD_CANDIDATES))
def test_a_bad_candidate_is_rolled_back_by_the_gate_it_trips_and_then_serves_nothing(ctx, bad):
    """A canary at share 0.5 of a bad candidate (scores far from the live model's; +inf for
    some inputs; predict slowed 700 ms a call by a failpoint against a 500 ms p95 gate), with
    rollout.window.ms 5000, rollout.gate.for.ms 2000 and rollout.min.records 50, events
    streaming: the worker writes a `rolled-back` record, origin automatic, derived from the
    canary's, its reason naming the gate, within for.ms + window.ms + 8 s of the canary's
    start; counts it in streamscore_rollout_rollbacks_total{gate}; and from then on every
    prediction is the live model's."""
    build, version, gates, config, delay = BAD_CANDIDATES[bad]
    model = build(ctx.tmp)
    batch_wait = 200
    over = {**SMALL_WINDOWS, "batch.max.wait.ms": batch_wait, **config}
    if delay:
        w, port, props = _start(ctx, over, binary=FAILPOINTS_BIN,
                                env={"STREAMSCORE_FAILPOINT_DELAY":
                                     f"rollout.candidate.predict:{delay}"})
    else:
        w, port, props = _start(ctx, over)
    cfg = ctx.config(props)
    _wait_running(port, w)
    customers = [f"bad-{ctx.uid}-{i:04d}" for i in range(1000)]
    stream = h.SteadyStream(ctx.input_topic, customers, 200, seed=7003)
    reader = h.TopicReader(ctx.output_topic)
    control = h.ControlReader(_control_topic(ctx))
    slack = batch_wait + h.CHANGE_SLACK_MS + (delay or 0)  # a batch scoring when the change came
    try:
        stream.start()
        _wait_produced(port, 200, w)
        started = h.rollout_json(cfg, "start", "--model", model, "--name", "churn",
                                 "--version", version, "--share", "0.5")
        assert started["state"] == "canary" and started["candidate"]["version"] == version
        t0 = control.at(started["offset"])["_timestamp"]
        window = SMALL_WINDOWS["rollout.window.ms"] + SMALL_WINDOWS["rollout.gate.for.ms"]
        try:
            control.wait_until(lambda recs: any(r.get("state") == "rolled-back" for r in recs),
                               window / 1000 + 40, workers=[w], what="an automatic rollback")
        except AssertionError as e:
            raise AssertionError(f"{e}\ngates: {_gate_samples(port)}") from None
        rb = next(r for r in control.records if r.get("state") == "rolled-back")
        assert rb.get("origin") == "automatic" and rb.get("base") == started["offset"], rb
        assert rb.get("_key") == ctx.group and float(rb.get("share", -1)) == 0, rb
        assert any(g in rb.get("reason", "") for g in gates), \
            f"rollback reason {rb.get('reason')!r} names none of {gates}"
        took = rb["_timestamp"] - t0
        assert took <= window + ROLLBACK_MARGIN_MS, \
            f"rolled back {took} ms after the canary started (allowed {window} + " \
            f"{ROLLBACK_MARGIN_MS})"
        s = h.wait_rollout_applied(port, rb["_offset"], 0.0, worker=w)
        rollbacks = [(labels, v) for labels, v in
                     h.metric_labels(s, "streamscore_rollout_rollbacks_total")
                     if any(labels.get("gate", "").startswith(g) for g in gates)]
        assert sum(v for _, v in rollbacks) >= 1, \
            h.metric_labels(s, "streamscore_rollout_rollbacks_total")
        reader.wait_until(_scored_after(rb["_timestamp"] + slack, 300), 90, worker=w,
                          what="predictions after the rollback")
        s = h.scrape(port)
        stream.stop()
        w.stop()
        reader.drain()
        control.drain()
    finally:
        _stop_all(stream, [reader, control])

    print(f"{bad}: rolled back after {took} ms: {rb.get('reason')!r}")
    assert not reader.undecodable, f"undecodable predictions: {reader.undecodable[:3]}"
    chain = h.rollout_chain(control.records, ctx.group)
    assert [r["_offset"] for r in chain] == [started["offset"], rb["_offset"]], \
        [(r["_offset"], r.get("state"), r.get("origin")) for r in chain]
    first_bad, n_bad = h.route_problems(reader.records, chain, slack)
    assert n_bad == 0, f"{n_bad} predictions not as the state in force allows: {first_bad}"
    before = _outcome_counts(r for r in reader.records if r["scored_at"] < rb["_timestamp"])
    after = _outcome_counts(r for r in reader.records if r["scored_at"] > rb["_timestamp"] + slack)
    assert before.get(("canary", version), 0) > 0, f"the canary never served: {before}"
    assert set(after) == {("live", LIVE)} and after[("live", LIVE)] >= 300, after
    if bad == "non_finite_scores":
        assert (h.metric_sum(s, "streamscore_route_errors_total", route="canary") or 0) >= 1
        assert not h.metric_sum(s, "streamscore_route_errors_total", route="live")
        reasons = {dict(d["_headers"]).get("__connect.errors.exception.class.name")
                   for d in ctx.dead_letters()}
        assert reasons == {b"non_finite_score"}, reasons


# --------------------------------------------------------------------------- 4. progression


def test_a_good_candidate_progresses_share_by_share_to_promotion_and_a_rollback_restores_live(
        ctx):
    """rollout.auto.progress with rollout.steps 0.05,0.25,0.5,1 and rollout.step.hold.ms
    1500: after `rollout start` (the first step, 0.05) the worker writes, in order,
    automatic records with shares 0.25, 0.5 and 1 and then `promoted`, each derived from the
    one before and written at least the hold after it; then every prediction is route live
    by the candidate (1.1.0). `rollout rollback` after the promotion makes the previous live
    model (the configured 1.0.0) serve again. (The synthetic events are far from the card's
    training data, and the canary's hundred-odd records a window at 5 % give a score PSI of
    0.1-0.9 by sampling alone: the drift gate is off and the shift gate at 1.5 here.)"""
    hold = 1500
    batch_wait = 20
    over = {**SMALL_WINDOWS, "rollout.auto.progress": "true",
            "rollout.steps": "0.05,0.25,0.5,1", "rollout.step.hold.ms": hold,
            "drift.window": 100, **UNREACHABLE["drift"], "rollout.gate.shift.psi": 1.5,
            "rollout.gate.latency.p95.ms": 5000, "batch.max.wait.ms": batch_wait}
    w, port, props = _start(ctx, over)
    cfg = ctx.config(props)
    _wait_running(port, w)
    slack = batch_wait + h.CHANGE_SLACK_MS
    customers = [f"gp-{ctx.uid}-{i:04d}" for i in range(3000)]
    stream = h.SteadyStream(ctx.input_topic, customers, 400, seed=7004)
    reader = h.TopicReader(ctx.output_topic)
    control = h.ControlReader(_control_topic(ctx))
    try:
        stream.start()
        _wait_produced(port, 400, w)
        started = h.rollout_json(cfg, "start", "--model", h.CANDIDATE_MODEL)
        assert started["state"] == "canary" and started["share"] == 0.05, started

        def promoted(recs):
            chain = h.rollout_chain(recs, ctx.group)
            bad = [r for r in chain if r.get("state") == "rolled-back"]
            assert not bad, f"the good candidate was rolled back: {bad}" + w.describe()
            return any(r.get("state") == "promoted" for r in chain)

        control.wait_until(promoted, 100, workers=[w], what="the promotion")
        prom = next(r for r in control.records if r.get("state") == "promoted")
        h.wait_metrics(port, lambda s: h.metric_sum(s, "streamscore_rollout_offset")
                       == prom["_offset"], timeout=20, worker=w, what="the promotion applied")
        reader.wait_until(_scored_after(prom["_timestamp"] + slack, 400), 60, worker=w,
                          what="predictions after the promotion")
        rb = h.rollout_json(cfg, "rollback", "--reason", "it: back to 1.0.0 after promotion")
        assert rb["state"] == "rolled-back" and rb.get("live") is None, rb
        assert rb["base"] == prom["_offset"], rb
        t_rb = control.at(rb["offset"])["_timestamp"]
        h.wait_metrics(port, lambda s: h.metric_sum(s, "streamscore_rollout_offset")
                       == rb["offset"], timeout=20, worker=w, what="the rollback applied")
        reader.wait_until(_scored_after(t_rb + slack, 400), 60, worker=w,
                          what="predictions after the rollback")
        events, placed = stream.stop()
        reader.wait_until(lambda recs: set(placed) <= set(h.index_by_source(recs)), 60,
                          worker=w, what="a prediction for every event")
        counted = h.scrape(port)
        w.stop()
        reader.drain()
        control.drain()
    finally:
        _stop_all(stream, [reader, control])

    chain = h.rollout_chain(control.records, ctx.group)
    shown = [(r["_offset"], r.get("origin"), r.get("state"), r.get("share"), r.get("base"),
              r.get("at")) for r in chain]
    print(f"control records: {shown}")
    want = [("command", "canary", 0.05), ("automatic", "canary", 0.25),
            ("automatic", "canary", 0.5), ("automatic", "canary", 1.0),
            ("automatic", "promoted", None), ("command", "rolled-back", None)]
    got = [(r.get("origin"), r.get("state"),
            float(r["share"]) if r.get("state") == "canary" else None) for r in chain]
    assert got == want, f"control records {shown}"
    for prev, nxt in zip(chain, chain[1:5]):
        assert nxt.get("base") == prev["_offset"], f"{nxt} not derived from {prev['_offset']}"
        assert nxt["at"] - prev["at"] >= hold, f"{nxt['at'] - prev['at']} ms at a step: {shown}"
    prom = chain[4]
    assert prom["live"]["version"] == CAND and prom["live"]["sha256"] == CAND_SHA, prom
    assert prom.get("previous") is None, prom
    stale = [r["_offset"] for r in control.records if r not in chain]
    assert not stale, f"records the worker itself ignores (stale automatic ones): {stale}"

    assert not reader.undecodable, f"undecodable predictions: {reader.undecodable[:3]}"
    _one_each(reader.records, placed)
    first_bad, n_bad = h.route_problems(reader.records, chain, slack)
    assert n_bad == 0, f"{n_bad} predictions not as the state in force allows: {first_bad}"
    promoted_phase = _outcome_counts(r for r in reader.records
                                     if prom["_timestamp"] + slack < r["scored_at"] < t_rb)
    assert set(promoted_phase) == {("live", CAND)}, promoted_phase
    after = _outcome_counts(r for r in reader.records if r["scored_at"] > t_rb + slack)
    assert set(after) == {("live", LIVE)}, after
    # the routes' counters count every prediction, with a candidate loaded or not (before the
    # start, after the promotion, after the rollback)
    routes = {r: h.metric_sum(counted, "streamscore_route_records_total", route=r)
              for r in ("live", "canary")}
    produced = h.metric_sum(counted, "streamscore_records_produced_total")
    assert routes["live"] + routes["canary"] == produced, (routes, produced)
    canary_seen = sum(1 for r in reader.records if r["route"] == "canary")
    assert routes["canary"] == canary_seen, (routes, canary_seen)
    refs = _references(events, placed, {LIVE: h.PRIMARY_MODEL, CAND: h.CANDIDATE_MODEL})
    first_bad, n_bad = _score_problems(reader.records, refs)
    assert n_bad == 0, f"{n_bad} predictions differ from their model's reference: {first_bad}"


# --------------------------------------------------------------------------- 5. refused


def _keypair(tmp, name):
    key, pub = tmp / f"{name}.key", tmp / f"{name}.pub.pem"
    for cmd in (["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
                ["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)]):
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    return key, pub


def _sign(key, model):
    subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(key), "-in",
                    str(model), "-out", str(model) + ".sig"], check=True, capture_output=True,
                   timeout=30)


def _copy_model(src, dest_dir):
    """A model and its card copied into dest_dir (the card where the default looks)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / src.name
    shutil.copy(src, dest)
    shutil.copy(src.with_name(src.name.rsplit(".", 1)[0] + ".card.json"),
                dest_dir / (src.name.rsplit(".", 1)[0] + ".card.json"))
    return dest


@pytest.mark.parametrize("flaw", ["digest", "signature"])
def test_a_candidate_whose_digest_or_signature_does_not_verify_never_serves(ctx, flaw):
    """digest: a control record (written directly) names the candidate's file with the sha256
    of another file; signature: workers with model.signature.key, a candidate whose .sig was
    made by another key. The worker refuses it (streamscore_rollout_candidate_refused_total
    {reason}), writes a rolled-back record derived from it whose reason says why, and no
    prediction ever carries the candidate's version. The command refuses the same candidate
    locally (exit 1) and writes nothing."""
    over = {}
    if flaw == "digest":
        candidate, sha = h.CANDIDATE_MODEL, PRIMARY_SHA  # the digest of another file
        cli_args = ["--model", h.CANDIDATE_MODEL, "--sha256", PRIMARY_SHA]
    else:
        good, good_pub = _keypair(ctx.tmp, "good")
        other, _ = _keypair(ctx.tmp, "other")
        live = _copy_model(h.PRIMARY_MODEL, ctx.tmp / "live")
        _sign(good, live)
        candidate = _copy_model(h.CANDIDATE_MODEL, ctx.tmp / "candidate")
        _sign(other, candidate)
        sha = h.sha256_file(candidate)
        over = {"model.path": live, "model.signature.key": good_pub}
        cli_args = ["--model", candidate]
    w, port, props = _start(ctx, over)
    cfg = ctx.config(props)
    _wait_running(port, w)
    customers = [f"rf-{ctx.uid}-{i:04d}" for i in range(800)]
    stream = h.SteadyStream(ctx.input_topic, customers, 150, seed=7005)
    reader = h.TopicReader(ctx.output_topic)
    control = h.ControlReader(_control_topic(ctx))
    try:
        stream.start()
        _wait_produced(port, 150, w)

        end = control.end()
        r = h.rollout_cli(cfg, "start", *cli_args, "--share", "0.5", "--json")
        assert r.returncode == 1, f"exit {r.returncode}, expected 1; stderr {r.stderr[-2000:]!r}"
        assert control.end() == end, "the command wrote a record for a candidate it refused"

        value = {"format": 1, "rollout": ctx.group, "state": "canary", "share": 0.5,
                 "candidate": {"name": "churn", "version": CAND, "sha256": sha,
                               "path": str(candidate),
                               "card": str(candidate).replace(".json", ".card.json")},
                 "live": None, "previous": None, "reason": f"it: a candidate with a bad {flaw}",
                 "by": "it@test", "origin": "command", "at": int(time.time() * 1000),
                 "base": -1}
        [(_, offset)] = h.produce_raw(control.topic, [{"key": ctx.group.encode(), "partition": 0,
                                                       "value": json.dumps(value).encode()}])
        control.wait_until(lambda recs: any(r.get("state") == "rolled-back" for r in recs), 30,
                           workers=[w], what="the rollback of the refused candidate")
        rb = next(r for r in control.records if r.get("state") == "rolled-back")
        assert rb["_offset"] > offset and rb.get("origin") == "automatic", rb
        assert rb.get("base") == offset, rb
        assert flaw in rb.get("reason", "").lower(), f"reason {rb.get('reason')!r}"
        s = h.wait_metrics(port, lambda s: (h.metric_sum(
            s, "streamscore_rollout_candidate_refused_total", reason=flaw) or 0) >= 1,
                           timeout=20, worker=w, what=f"a candidate refused for its {flaw}")
        assert (h.metric_sum(s, "streamscore_rollout_rollbacks_total", gate="refused") or 0) >= 1, \
            h.metric_labels(s, "streamscore_rollout_rollbacks_total")
        reader.wait_until(_scored_after(rb["_timestamp"] + 1000, 200), 60, worker=w,
                          what="predictions after the rollback")
        stream.stop()
        w.stop()
        reader.drain()
    finally:
        _stop_all(stream, [reader, control])

    counts = _outcome_counts(reader.records)
    assert set(counts) == {("live", LIVE)}, f"predictions by (route, version): {counts}"
    logged = [line for line in w.log_tail(400).splitlines()
              if "refus" in line.lower() and flaw in line.lower()]
    assert logged, "the worker did not log the refusal" + w.describe()


# --------------------------------------------------------------------------- 6. delivery


@pytest.mark.parametrize("delivery", ["at-least-once", "exactly-once"])
def test_every_event_is_scored_once_by_a_model_the_state_allows_through_every_change(ctx,
                                                                                     delivery):
    """Events streaming while the rollout goes start (0.25) -> step (0.5) -> promote ->
    rollback: every input offset has exactly one prediction (exactly-once: read
    read_committed), each carrying a (route, version) that the control record in force around
    its scored_at allows, and the score of the model it names on the merged vector."""
    batch_wait = 20
    over = {"delivery": delivery, "rollout.auto.rollback": "false",
            "batch.max.wait.ms": batch_wait}
    w, port, props = _start(ctx, over)
    cfg = ctx.config(props)
    _wait_running(port, w)
    slack = batch_wait + h.CHANGE_SLACK_MS
    customers = [f"dl-{ctx.uid}-{i:04d}" for i in range(1500)]
    stream = h.SteadyStream(ctx.input_topic, customers, 250, seed=7006)
    reader = h.TopicReader(ctx.output_topic)  # read_committed (librdkafka's default)
    changes = [("start", ["--model", h.CANDIDATE_MODEL, "--share", "0.25"], "canary", 0.25),
               ("step", [], "canary", 0.5), ("promote", [], "promoted", None),
               ("rollback", [], "rolled-back", None)]
    written = []
    try:
        stream.start()
        _wait_produced(port, 250, w)
        for command, args, state, share in changes:
            rec = h.rollout_json(cfg, command, *args, "--reason", f"it: {command}")
            assert rec["state"] == state and (share is None or rec["share"] == share), rec
            written.append(rec["offset"])
            h.wait_metrics(port, lambda s: h.metric_sum(s, "streamscore_rollout_offset")
                           == rec["offset"], timeout=20, worker=w, what=f"{command} applied")
            _wait_produced(port, _produced(port) + 300, w)
        events, placed = stream.stop()
        reader.wait_until(lambda recs: set(placed) <= set(h.index_by_source(recs)), 60,
                          worker=w, what="a prediction for every event")
        w.stop()
        reader.drain()
    finally:
        _stop_all(stream, [reader])

    control = h.ControlReader(_control_topic(ctx))
    try:
        control.drain()
    finally:
        control.close()
    chain = h.rollout_chain(control.records, ctx.group)
    assert [r["_offset"] for r in chain] == written, \
        [(r["_offset"], r.get("state"), r.get("origin")) for r in control.records]
    assert chain[2]["live"]["version"] == CAND and chain[3].get("live") is None, chain[2:]
    assert not reader.undecodable, f"undecodable predictions: {reader.undecodable[:3]}"
    _one_each(reader.records, placed)
    first_bad, n_bad = h.route_problems(reader.records, chain, slack)
    assert n_bad == 0, f"{n_bad} predictions not as the state in force allows: {first_bad}"
    counts = _outcome_counts(reader.records)
    assert set(counts) == {("live", LIVE), ("canary", CAND), ("live", CAND)}, counts
    refs = _references(events, placed, {LIVE: h.PRIMARY_MODEL, CAND: h.CANDIDATE_MODEL})
    first_bad, n_bad = _score_problems(reader.records, refs)
    assert n_bad == 0, f"{n_bad} predictions differ from their model's reference: {first_bad}"
    assert ctx.dead_letters() == []
    if delivery == "exactly-once":
        ends = h.end_offsets(ctx.input_topic)
        assert h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends)) == ends
    print(f"{delivery}: {len(placed)} events, predictions by (route, version) {counts}")


# --------------------------------------------------------------------------- 7. the command


def test_the_rollout_command_records_reason_and_author_and_refuses_bad_usage(ctx):
    """`status --json` prints the record (state, share, candidate, reason, by, offset) as
    written to the compacted one-partition control topic under the rollout id; `--reason` is
    recorded with by = $USER@hostname. Bad usage exits 2 with one plain line: an unknown
    subcommand, `start` without --model, `step` with no rollout started, a model file that is
    not there without --sha256, and an empty rollout.topic (naming the key)."""
    user = "it-alice"
    env = {"USER": user}
    cfg = ctx.config(_props(ctx))

    def usage_error(args, config=cfg, names=None):
        r = h.rollout_cli(config, *args, env=env)
        plain = h.plain_lines(r.stderr)
        assert r.returncode == 2, f"{args}: exit {r.returncode}, expected 2; {r.stderr[-2000:]!r}"
        assert len(plain) == 1, f"{args}: expected one plain line, got {plain!r}"
        if names:
            assert names in plain[0], f"{args}: {plain[0]!r} does not name {names}"
        return plain[0]

    usage_error(["frobnicate"])
    usage_error(["start"], names="--model")
    usage_error(["step"])  # no rollout started
    usage_error(["start", "--model", "/nonexistent/model.json"], names="--sha256")
    off = ctx.config(_props(ctx, overrides={"rollout.topic": None}))
    usage_error(["status"], config=off, names="rollout.topic")
    usage_error(["start", "--model", h.CANDIDATE_MODEL], config=off, names="rollout.topic")

    reason = "ticket RISK-42: canary of 1.1.0"
    before = int(time.time() * 1000)
    started = h.rollout_json(cfg, "start", "--model", h.CANDIDATE_MODEL, "--share", "0.25",
                             "--reason", reason, env=env)
    after = int(time.time() * 1000)
    by = f"{user}@{socket.gethostname()}"
    want = {"format": 1, "rollout": ctx.group, "state": "canary", "share": 0.25,
            "reason": reason, "by": by, "origin": "command", "base": -1, "live": None,
            "previous": None}
    assert {k: started.get(k) for k in want} == want, started
    cand = started["candidate"]
    assert (cand["name"], cand["version"], cand["sha256"], cand["path"]) == \
        ("churn", CAND, CAND_SHA, str(h.CANDIDATE_MODEL)), cand
    assert before <= started["at"] <= after, (before, started["at"], after)

    status = h.rollout_json(cfg, "status", env=env)
    for k in ("state", "share", "candidate", "reason", "by", "offset"):
        assert status.get(k) == started.get(k), f"status {k}: {status.get(k)!r} != " \
                                                f"{started.get(k)!r}"
    r = h.rollout_cli(cfg, "status", env=env)
    assert r.returncode == 0 and "canary" in r.stdout, (r.returncode, r.stdout, r.stderr[-500:])

    control = h.ControlReader(_control_topic(ctx))
    try:
        rec = control.at(started["offset"])
        assert rec["_key"] == ctx.group, rec
        assert {k: v for k, v in rec.items() if not k.startswith("_")} == \
            {k: v for k, v in started.items() if k != "offset"}, (rec, started)
        stepped = h.rollout_json(cfg, "step", env=env)  # the next of rollout.steps
        assert stepped["share"] == 0.5 and stepped["base"] == started["offset"], stepped
        assert stepped["by"] == by, stepped
        assert control.at(stepped["offset"])["share"] == 0.5
    finally:
        control.close()

    from confluent_kafka.admin import ConfigResource, ResourceType

    topic = _control_topic(ctx)
    md = ctx.admin.list_topics(timeout=10).topics[topic]
    assert len(md.partitions) == 1, f"{topic} has {len(md.partitions)} partitions"
    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = ctx.admin.describe_configs([res])[res].result(10)
    assert configs["cleanup.policy"].value == "compact", configs["cleanup.policy"].value
