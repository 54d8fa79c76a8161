"""Events written with an evolved schema (a field added, a feature field removed) decode
against the reader schema, with both framings; the removed feature counts as missing and
so takes its cached value."""

import numpy as np

import harness as h

REMOVED = "support_calls_30d"


def _events_and_seeds(ctx, rng, n_customers, n_events):
    """Events over customers of whom half have support_calls_30d (and more) cached."""
    customers = [f"cust-{ctx.uid}-{i:03d}" for i in range(n_customers)]
    seeded = {}
    for cid in customers[: n_customers // 2]:
        feats = h.random_features(rng, 1, 4)
        feats[REMOVED] = h.random_feature_value(rng, REMOVED)
        seeded[cid] = ctx.seed(cid, feats)
    events = h.random_events(rng, customers, n_events)
    for ev in events:  # the producer always knows the new field
        ev["referral_channel"] = ["web", "shop", None][int(rng.integers(0, 3))]
    return events, seeded


def _check(ctx, records, undecodable, events, expected):
    assert not undecodable, f"undecodable predictions: {undecodable[:3]}"
    dead = ctx.dead_letters()
    assert not dead, f"{len(dead)} events dead-lettered instead of decoded: " \
                     f"{[(d['_partition'], d['_offset']) for d in dead[:5]]}"
    assert len(records) == len(events), f"{len(records)} predictions for {len(events)} events"
    assert set(h.index_by_source(records)) == set(expected)
    first, n_bad = h.score_mismatches(records, expected)
    assert n_bad == 0, f"{n_bad} of {len(records)} predictions differ from the reference: {first}"


def test_raw_framing_decodes_events_written_with_an_evolved_writer_schema(ctx):
    rng = np.random.default_rng(404)
    evolved = h.write_evolved_schema(ctx.tmp / "customer_event_v2.avsc", remove_field=REMOVED)
    events, seeded = _events_and_seeds(ctx, rng, 60, 400)

    def encode(ev):
        return h.encode_avro(evolved, h.record_for_schema(ev, evolved))

    placed = h.produce(ctx.input_topic, events, encode)
    # What the worker sees: the removed field is absent, i.e. missing.
    seen = [dict(ev, **{REMOVED: None}) for ev in events]
    expected, _ = h.expected_predictions(seen, placed, h.PRIMARY_MODEL, seeded)

    props = ctx.props({"input.framing": "raw", "input.writer.schema": evolved})
    records, undecodable = ctx.run_until(props, len(events))
    _check(ctx, records, undecodable, events, expected)


def test_confluent_framing_resolves_interleaved_schema_ids_from_the_schema_map(ctx):
    rng = np.random.default_rng(505)
    evolved = h.write_evolved_schema(ctx.tmp / "customer_event_v2.avsc", remove_field=REMOVED)
    events, seeded = _events_and_seeds(ctx, rng, 60, 400)
    # Every customer's events alternate between id 1 (reader schema, carries
    # support_calls_30d) and id 2 (evolved, does not).
    for ev in events:
        if ev[REMOVED] is None and rng.random() < 0.5:
            ev[REMOVED] = h.random_feature_value(rng, REMOVED)
    ids = [1 if i % 2 == 0 else 2 for i in range(len(events))]
    schema_of = {1: h.EVENT_SCHEMA_PATH, 2: evolved}
    wire = {ev["event_id"]: h.encode_confluent(sid, schema_of[sid],
                                               h.record_for_schema(ev, schema_of[sid]))
            for ev, sid in zip(events, ids)}
    placed = h.produce(ctx.input_topic, events, lambda ev: wire[ev["event_id"]])
    seen = [ev if sid == 1 else dict(ev, **{REMOVED: None}) for ev, sid in zip(events, ids)]
    assert any(ev[REMOVED] is not None for ev, sid in zip(events, ids) if sid == 2), \
        "test data: some id-2 events must drop a support_calls_30d value"
    expected, _ = h.expected_predictions(seen, placed, h.PRIMARY_MODEL, seeded)

    props = ctx.props({"input.framing": "confluent",
                       "input.schema.map": f"1={h.EVENT_SCHEMA_PATH},2={evolved}"})
    records, undecodable = ctx.run_until(props, len(events))
    _check(ctx, records, undecodable, events, expected)
