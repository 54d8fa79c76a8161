"""The rollout's ROC-AUC gate (rollout.labels.topic): outcomes arrive on a topic of JSON labels,
each joined with the latest prediction the worker made for its customer; ROC-AUC per route over
the window. A candidate that ranks customers backwards is rolled back by this gate alone (the
other gates out of reach), with the reason recorded; labels that fit no prediction, or are not
labels, are counted, not joined. And when the labels fit neither model (both routes below the
threshold), the candidate is not blamed: nothing is rolled back."""

import json
import time

import numpy as np
import pytest
from confluent_kafka import Producer

import harness as h

# only the ROC-AUC gate can trigger; the figures are judged from 150 labelled canary predictions
GATES = {"rollout.window.ms": 20000, "rollout.gate.for.ms": 1500, "rollout.min.records": 150,
         "rollout.gate.shift.psi": 100, "rollout.gate.drift.psi": 100,
         "rollout.gate.latency.p95.ms": 60000, "rollout.gate.error.rate": 1}


def _reversed_model(path):
    """churn 1.0.0 with every leaf negated and the base score mirrored: its margin is the live
    model's negated, so it ranks the customers backwards (the same features and card)."""
    doc = json.loads(h.PRIMARY_MODEL.read_text())
    learner = doc["learner"]
    for tree in learner["gradient_booster"]["model"]["trees"]:
        for i, left in enumerate(tree["left_children"]):
            if left == -1:
                tree["split_conditions"][i] = -tree["split_conditions"][i]
                tree["base_weights"][i] = -tree["base_weights"][i]
    param = learner["learner_model_param"]
    text = str(param["base_score"])
    mirrored = repr(1.0 - float(text.strip("[]")))
    param["base_score"] = f"[{mirrored}]" if text.startswith("[") else mirrored
    path.write_text(json.dumps(doc))
    card = dict(h.model_card(h.PRIMARY_MODEL))
    card.pop("model_sha256", None)
    card["version"] = "reversed"
    path.with_name(path.stem + ".card.json").write_text(json.dumps(card))
    return path


def _start(ctx, labels_topic, control):
    port = h.free_port()
    props = ctx.props({"rollout.topic": control, "rollout.labels.topic": labels_topic,
                       "metrics.listen": f"127.0.0.1:{port}", **GATES})
    w = ctx.start_worker(props)
    h.wait_metrics(port, lambda s: h.metric_sum(s, "streamscore_rollout_offset") is not None,
                   timeout=30, worker=w, what="the rollout metrics")
    return w, port


def _produce_labels(topic, labels):
    p = Producer({"bootstrap.servers": h.BOOTSTRAP})
    for value in labels:
        p.produce(topic, value if isinstance(value, bytes) else json.dumps(value).encode())
    assert p.flush(30) == 0, "labels not delivered"


def _scored(ctx, n, customers, w):
    """Events of `customers` (one each) produced and scored: their predictions."""
    rng = np.random.default_rng(808)
    events = [h.make_event(c, 1_700_000_000_000 + i, rng, **h.random_features(rng, 6, 11))
              for i, c in enumerate(customers)]
    h.produce(ctx.input_topic, events, lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
    reader = h.TopicReader(ctx.output_topic)
    try:
        reader.wait_for(n, 90, worker=w, what="predictions")
    finally:
        reader.close()
    return events, reader.records


@pytest.mark.parametrize("labels_fit", ["live", "neither"])
def test_the_roc_auc_gate_rolls_back_a_candidate_that_ranks_worse_than_the_live_model(
        ctx, tmp_path, labels_fit):
    control = f"it-rollout-{ctx.uid}"
    labels_topic = f"it-labels-{ctx.uid}"
    ctx.add_topics(labels_topic, partitions=2)
    ctx.extra_topics.append(control)
    model = _reversed_model(tmp_path / "reversed.json")
    w, port = _start(ctx, labels_topic, control)
    config = tmp_path / "rollout.properties"
    h.write_properties(config, ctx.props({"rollout.topic": control}))
    started = h.rollout_json(config, "start", "--model", str(model), "--share", "0.5",
                             "--reason", "auc test")
    h.wait_rollout_applied(port, started["offset"], 0.5, worker=w)
    customers = [f"auc-{ctx.uid}-{i:05d}" for i in range(1200)]
    events, preds = _scored(ctx, len(customers), customers, w)
    by_customer = {r["customer_id"]: r for r in preds}
    assert {r["route"] for r in preds} == {"live", "canary"}, "both routes expected at 0.5"
    # the outcome: what the live model says (it ranks the labels perfectly, the reversed
    # candidate backwards); "neither": outcomes no model can know (random)
    vectors, _ = h.simulate_merge(events)  # one event per customer, nothing cached before
    live = h.reference_scores(h.PRIMARY_MODEL, vectors)
    cut = float(np.median(live))
    rng = np.random.default_rng(99)
    labels = []
    for ev, s in zip(events, live):
        y = int(s > cut) if labels_fit == "live" else int(rng.integers(0, 2))
        labels.append({"customer_id": ev["customer_id"], "label": y,
                       "time": by_customer[ev["customer_id"]]["event_time"] + 1})
    labels += [{"customer_id": "nobody-scored-me", "label": 1, "time": 1}, b"not json",
               {"customer_id": customers[0], "label": 7}]
    _produce_labels(labels_topic, labels)
    def read(s, outcome):
        return h.metric_sum(s, "streamscore_rollout_labels_total", outcome=outcome) or 0

    samples = h.wait_metrics(port, lambda s: read(s, "joined") + read(s, "unmatched")
                             + read(s, "malformed") >= len(labels), timeout=30, worker=w,
                             what="every label read")
    # two customers may share a slot of the table of recent customers (262,144): the later
    # one's label joins, the earlier one's finds another customer's hash and is unmatched
    assert read(samples, "joined") >= len(customers) - 10, samples
    assert read(samples, "joined") + read(samples, "unmatched") == len(customers) + 1
    assert read(samples, "malformed") == 2
    reader = h.ControlReader(control)
    try:
        if labels_fit == "live":
            recs = reader.wait_until(lambda rs: any(r.get("state") == "rolled-back" for r in rs),
                                     timeout=30, workers=(w,), what="an automatic rollback")
            back = [r for r in recs if r.get("state") == "rolled-back"][0]
            assert back["origin"] == "automatic", back
            assert "roc_auc" in back["reason"], back["reason"]
            s = h.scrape(port)
            assert h.metric_sum(s, "streamscore_rollout_rollbacks_total", gate="roc_auc") == 1
            live_auc = h.metric_sum(s, "streamscore_rollout_gate_value", route="live",
                                    gate="roc_auc")
            assert live_auc > 0.95, f"the live model ranks its own labels: {live_auc}"
        else:
            time.sleep(GATES["rollout.gate.for.ms"] / 1000 + 3)  # past the for-duration
            reader.poll(1.0)
            s = h.scrape(port)
            for route in ("live", "canary"):
                auc = h.metric_sum(s, "streamscore_rollout_gate_value", route=route,
                                   gate="roc_auc")
                assert auc < 0.8, f"{route}: random labels, ROC-AUC {auc}"
            assert all(r.get("state") != "rolled-back" for r in reader.records), \
                "both routes below the threshold: the candidate must not be blamed"
            assert h.metric_sum(s, "streamscore_rollout_triggered", gate="roc_auc") == 0
    finally:
        reader.close()
        w.stop()
