"""Partial events are merged with the customer's cached features, and the merged vector is
written back to Redis with a TTL."""

import numpy as np
import pytest

import harness as h

TTL = 3600


def test_partial_events_merge_with_cached_features_and_write_back_with_ttl(ctx):
    rng = np.random.default_rng(303)
    t = 1_700_000_000_000
    seeded = {}
    events = []

    # Customers with cached features; their events carry a few fields (the rest null),
    # sometimes overriding a cached one.
    for i in range(20):
        cid = f"seeded-{ctx.uid}-{i:02d}"
        seeded[cid] = ctx.seed(cid, h.random_features(rng, 3, 8))
        for _ in range(int(rng.integers(1, 4))):
            feats = h.random_features(rng, 0, 3)
            if rng.random() < 0.5 and seeded[cid]:
                name = sorted(seeded[cid])[int(rng.integers(0, len(seeded[cid])))]
                feats[name] = h.random_feature_value(rng, name)
            events.append(h.make_event(cid, t, rng, **feats))
            t += 1000

    # A customer never seen with two events, back to back: the second carries only
    # support_calls_30d and must be scored with the first one's fields.
    twice = f"twice-{ctx.uid}"
    events.append(h.make_event(twice, t, rng, tenure_months=7, monthly_charges=99.5,
                               contract_type="MONTH_TO_MONTH", has_autopay=False))
    events.append(h.make_event(twice, t + 1, rng, support_calls_30d=6))
    # A customer never seen whose event carries no feature at all: scored all-missing.
    ghost = f"ghost-{ctx.uid}"
    events.append(h.make_event(ghost, t + 2, rng))

    placed = h.produce(ctx.input_topic, events, lambda e: h.encode_avro(h.EVENT_SCHEMA_PATH, e))
    expected, final = h.expected_predictions(events, placed, h.PRIMARY_MODEL, seeded)

    # Everything is produced before the worker starts and fits one batch per partition.
    props = ctx.props({"batch.max.messages": 1000, "batch.max.wait.ms": 200,
                       "redis.ttl.seconds": TTL})
    records, undecodable = ctx.run_until(props, len(events))

    assert not undecodable, f"undecodable predictions: {undecodable[:3]}"
    assert len(records) == len(events), f"{len(records)} predictions for {len(events)} events"
    first, n_bad = h.score_mismatches(records, expected)
    assert n_bad == 0, f"{n_bad} of {len(records)} predictions differ from the reference: {first}"

    by_customer = {}
    for r in sorted(records, key=lambda r: (r["source_partition"], r["source_offset"])):
        by_customer.setdefault(r["customer_id"], []).append(r)
    second = by_customer[twice][1]
    want = [np.float32(7), np.float32(99.5), np.float32(np.nan), np.float32(0),
            np.float32(6), np.float32(np.nan), np.float32(np.nan), np.float32(np.nan),
            np.float32(0), np.float32(np.nan), np.float32(np.nan)]
    assert second["feature_hash"] == h.feature_hash(want), \
        "the second event of a customer in one batch did not see the first one's fields"
    nan_vector = [np.float32(np.nan)] * len(h.FEATURES)
    [g] = by_customer[ghost]
    assert g["feature_hash"] == h.feature_hash(nan_vector)
    assert abs(g["score"] - float(h.reference_scores(h.PRIMARY_MODEL, [nan_vector])[0])) \
        <= h.SCORE_TOL

    problems = []
    for cid, feats in final.items():
        key = ctx.redis_key(cid)
        stored = ctx.redis.hgetall(key)
        if cid == ghost:
            if stored:
                problems.append(f"{key}: expected no cached features, found {stored}")
            continue
        if set(stored) != set(feats):
            problems.append(f"{key}: fields {sorted(stored)} != merged {sorted(feats)}")
            continue
        for name, value in feats.items():
            got = np.float32(stored[name])
            if got != value:
                problems.append(f"{key} {name}: {stored[name]!r} parses to {got!r}, "
                                f"expected {value!r}")
        ttl = ctx.redis.ttl(key)
        if not 0 < ttl <= TTL:
            problems.append(f"{key}: TTL {ttl} not in (0, {TTL}]")
    assert len(problems) == 0, f"{len(problems)} cache problems: {problems[:10]}"


@pytest.mark.parametrize("state_mode", ["shared", "owned"])
def test_what_is_written_back_and_every_ttl_is_refreshed(ctx, state_mode):
    """shared (another service may write the same hashes): only the features an event carries
    are written back. owned: the customer's whole known vector, in its canonical text (so
    that a Redis that lost the hash is made whole by the next event). Both refresh the TTL of
    every customer that had an event."""
    # Cached text the worker would never write itself ("24.0", "070.35"): a rewrite of a
    # field the events did not carry would show as its canonical form ("24", "70.35").
    t = 1_700_000_000_000
    rng = np.random.default_rng(404)
    carried = f"carried-{ctx.uid}"
    silent = f"silent-{ctx.uid}"
    cached = {"tenure_months": "24.0", "monthly_charges": "070.35", "logins_30d": "3"}
    for cid in (carried, silent):
        ctx.redis.hset(ctx.redis_key(cid), mapping=cached)
        ctx.redis.expire(ctx.redis_key(cid), 50)
    events = [h.make_event(carried, t, rng, logins_30d=9, support_calls_30d=2),
              h.make_event(silent, t + 1, rng)]
    h.produce(ctx.input_topic, events, lambda e: h.encode_avro(h.EVENT_SCHEMA_PATH, e))
    props = ctx.props({"redis.ttl.seconds": TTL, "state.mode": state_mode})
    records, undecodable = ctx.run_until(props, len(events))
    assert not undecodable and len(records) == len(events)

    got = ctx.redis.hgetall(ctx.redis_key(carried))
    if state_mode == "shared":
        assert got == {"tenure_months": "24.0", "monthly_charges": "070.35",
                       "logins_30d": "9", "support_calls_30d": "2"}, got
        assert ctx.redis.hgetall(ctx.redis_key(silent)) == cached
    else:
        assert got == {"tenure_months": "24", "monthly_charges": "70.35", "logins_30d": "9",
                       "support_calls_30d": "2"}, got
        assert ctx.redis.hgetall(ctx.redis_key(silent)) == {
            "tenure_months": "24", "monthly_charges": "70.35", "logins_30d": "3"}
    for cid in (carried, silent):
        ttl = ctx.redis.ttl(ctx.redis_key(cid))
        assert 50 < ttl <= TTL, f"{cid}: TTL {ttl} was not refreshed to {TTL}"
