"""output.format = json: each prediction is a JSON object with the Avro record's fields and
the same scores."""

import numpy as np

import harness as h


def test_json_output_has_the_prediction_fields_and_the_reference_scores(ctx):
    rng = np.random.default_rng(707)
    customers = [f"cust-{ctx.uid}-{i:03d}" for i in range(80)]
    events = h.random_events(rng, customers, 400)
    placed = h.produce(ctx.input_topic, events,
                       lambda e: h.encode_avro(h.EVENT_SCHEMA_PATH, e))
    expected, _ = h.expected_predictions(events, placed, h.PRIMARY_MODEL)

    records, undecodable = ctx.run_until(ctx.props({"output.format": "json"}), len(events),
                                         decode="json")

    assert not undecodable, f"values that are not JSON: {undecodable[:3]}"
    assert len(records) == len(events), f"{len(records)} predictions for {len(events)} events"
    fields = h.prediction_field_names()
    required = set(fields) - {"contributions"}
    wrong = []
    for r in records:
        keys = {k for k in r if not k.startswith("_")}
        if not required <= keys <= set(fields):
            wrong.append(f"fields {sorted(keys)}: missing {sorted(required - keys)}, "
                         f"extra {sorted(keys - set(fields))}")
            continue
        exp = expected.get((r["source_partition"], r["source_offset"]))
        if exp is None:
            wrong.append(f"unknown source {r['source_partition']}/{r['source_offset']}")
            continue
        ev = exp["event"]
        if (r["event_id"], r["customer_id"], r["event_time"], r["source_topic"]) != \
                (ev["event_id"], ev["customer_id"], ev["event_time"], ctx.input_topic):
            wrong.append(f"identity fields {r['event_id']}, {r['customer_id']}, "
                         f"{r['event_time']}, {r['source_topic']} != event {ev['event_id']}")
        if r["_key"] != ev["customer_id"].encode():
            wrong.append(f"key {r['_key']!r} != {ev['customer_id']!r}")
        if isinstance(r["score"], bool) or not isinstance(r["score"], (int, float)) \
                or not isinstance(r["decision"], bool):
            wrong.append(f"JSON types: score {r['score']!r}, decision {r['decision']!r}")
        elif r["decision"] != (r["score"] >= r["threshold"]):
            wrong.append(f"decision {r['decision']!r} for score {r['score']!r}")
    assert not wrong, f"{len(wrong)} wrong predictions, first: {wrong[:10]}"
    first, n_bad = h.score_mismatches(records, expected)
    assert n_bad == 0, f"{n_bad} of {len(records)} JSON scores differ from the reference: {first}"
