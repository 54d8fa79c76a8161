"""Every input event yields exactly one prediction, and its score is the model's score of
the merged feature vector."""

import json
import subprocess
import sys

import numpy as np
import pytest

import harness as h


def _encode(ev):
    return h.encode_avro(h.EVENT_SCHEMA_PATH, ev)


def test_every_event_yields_exactly_one_prediction_keyed_by_customer(ctx):
    # The project's load generator writes the events, and each one's partition and offset.
    log = ctx.tmp / "produced.jsonl"
    try:
        r = subprocess.run([sys.executable, str(h.ROOT / "scripts" / "produce_events.py"),
                            "--bootstrap", h.BOOTSTRAP, "--topic", ctx.input_topic,
                            "--count", "2000", "--customers", "300", "--seed", "101",
                            "--event-time", "generated", "--out-jsonl", str(log)],
                           capture_output=True, text=True, timeout=90, cwd=str(h.ROOT))
    except subprocess.TimeoutExpired:
        pytest.fail("scripts/produce_events.py did not finish within 90s")
    assert r.returncode == 0, f"produce_events.py exit {r.returncode}: {r.stderr[-2000:]}"
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert len(events) == 2000, f"produce_events.py logged {len(events)} of 2000 events"
    placed = [(ev["partition"], ev["offset"]) for ev in events]

    records, undecodable = ctx.run_until(ctx.props(), len(events))

    assert not undecodable, f"undecodable predictions: {undecodable[:3]}"
    by_source = h.index_by_source(records)
    duplicates = {k: len(v) for k, v in by_source.items() if len(v) > 1}
    missing = sorted(set(placed) - set(by_source))
    unknown = sorted(set(by_source) - set(placed))
    assert len(records) == len(events) and not duplicates and not missing and not unknown, (
        f"{len(records)} predictions for {len(events)} events; {len(duplicates)} sources "
        f"duplicated {list(duplicates.items())[:5]}, {len(missing)} missing {missing[:5]}, "
        f"{len(unknown)} unknown {unknown[:5]}")

    wrong = []
    for ev, place in zip(events, placed):
        rec = by_source[place][0]
        expect = {"_key": ev["customer_id"].encode(), "event_id": ev["event_id"],
                  "customer_id": ev["customer_id"], "event_time": ev["event_time"],
                  "source_topic": ctx.input_topic, "source_partition": place[0],
                  "source_offset": place[1]}
        for field, value in expect.items():
            if rec.get(field) != value:
                wrong.append(f"{place} {field}: {rec.get(field)!r} != {value!r}")
    assert not wrong, f"{len(wrong)} field mismatches, first: {wrong[:10]}"
    assert ctx.dead_letters() == [], "valid events were dead-lettered"


def test_scores_and_feature_hashes_match_python_xgboost_on_merged_vectors(ctx):
    rng = np.random.default_rng(202)
    threshold = 0.35
    customers = [f"cust-{ctx.uid}-{i:04d}" for i in range(200)]
    events = h.random_events(rng, customers, 1500)
    placed = h.produce(ctx.input_topic, events, _encode)
    expected, _ = h.expected_predictions(events, placed, h.PRIMARY_MODEL)
    card = h.model_card(h.PRIMARY_MODEL)
    assert list(h.booster(h.PRIMARY_MODEL).feature_names or h.FEATURES) == h.FEATURES

    records, undecodable = ctx.run_until(ctx.props({"model.threshold": threshold}), len(events))

    assert not undecodable, f"undecodable predictions: {undecodable[:3]}"
    assert len(records) == len(events)
    first, n_bad = h.score_mismatches(records, expected)
    assert n_bad == 0, f"{n_bad} of {len(records)} predictions differ from the reference: {first}"

    wrong = []
    for r in records:
        if r["threshold"] != threshold:
            wrong.append(f"threshold {r['threshold']!r} != {threshold}")
        if r["decision"] != (r["score"] >= threshold):
            wrong.append(f"decision {r['decision']} for score {r['score']!r}")
        if r["model_name"] != card["name"] or r["model_version"] != card["version"]:
            wrong.append(f"model {r['model_name']!r}/{r['model_version']!r} != card "
                         f"{card['name']!r}/{card['version']!r}")
    assert not wrong, f"{len(wrong)} wrong fields, first: {sorted(set(wrong))[:10]}"
    decisions = {r["decision"] for r in records}
    assert decisions == {True, False}, f"test data should exercise both decisions, got {decisions}"
