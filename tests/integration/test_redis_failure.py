"""Redis failing under a running worker, and Redis down at start-up, under both values of
redis.on.error: block pauses consumption until Redis answers again (nothing skipped),
degrade keeps scoring with the events' own features and marks those predictions degraded.
Redis keeps nothing on disk: after a restart it is empty. Every test leaves Redis running."""

import time

import numpy as np
import pytest

import harness as h

PAUSE_S = 4.0  # how long a blocked worker must stay silent while Redis is down
START_FAIL_S = 20.0  # bound on a block-mode worker's exit when Redis is down at start-up


def _encode(ev):
    return h.encode_avro(h.EVENT_SCHEMA_PATH, ev)


def _own_features_expected(events, placed):
    """What a degraded batch scores: each event's own features, nothing cached. Valid when
    no customer has two events in one batch (each produce round has one per customer)."""
    vectors = [[h.event_vector(ev)[n] for n in h.FEATURES] for ev in events]
    scores = h.reference_scores(h.PRIMARY_MODEL, vectors)
    return {place: {"event": ev, "vector": vec, "hash": h.feature_hash(vec), "score": float(s)}
            for ev, place, vec, s in zip(events, placed, vectors, scores)}


def _wait_sources(reader, placed, worker, what, timeout=30.0):
    """Wait until every source in placed has a prediction; returns those predictions."""
    wanted = set(placed)
    reader.wait_until(lambda recs: wanted <= set(h.index_by_source(recs)), timeout=timeout,
                      worker=worker, what=f"predictions (waiting for {len(wanted)} {what})")
    return [r for r in reader.records
            if (r["source_partition"], r["source_offset"]) in wanted]


def _flags(records):
    return sorted({r["degraded"] for r in records})


def _exactly_one_each(records, placed):
    by_source = h.index_by_source(records)
    missing = sorted(set(placed) - set(by_source))
    unknown = sorted(set(by_source) - set(placed))
    duplicated = {k: len(v) for k, v in by_source.items() if len(v) > 1}
    assert not missing and not unknown and not duplicated, (
        f"{len(placed)} events, {len(records)} predictions: {len(missing)} missing "
        f"{missing[:5]}, {len(unknown)} unknown {unknown[:5]}, {len(duplicated)} duplicated "
        f"{list(duplicated.items())[:5]}")


def _snapshot(ctx, customers):
    """The cached features of customers now, as a merge starting state."""
    out = {}
    for cid in customers:
        stored = ctx.redis.hgetall(ctx.redis_key(cid))
        out[cid] = {name: np.float32(value) for name, value in stored.items()}
    return out


def test_degrade_scores_own_features_while_redis_is_down_then_uses_the_cache_again(
        ctx, redis_outage):
    rng = np.random.default_rng(901)
    t = 1_700_000_000_000
    seeded_ids = [f"seeded-{ctx.uid}-{i:02d}" for i in range(24)]
    seeded = {cid: ctx.seed(cid, h.random_features(rng, 6, 11)) for cid in seeded_ids}
    # state.mode = shared reads every batch's customers from Redis: while it is down, every
    # prediction is degraded (owned keeps what it holds: see the start-up test below).
    w = ctx.start_worker(ctx.props({"redis.on.error": "degrade", "state.mode": "shared"}))
    reader = h.TopicReader(ctx.output_topic)
    try:
        # A. Redis up: partial events merge with the seeded hashes.
        ev_a = [h.make_event(seeded_ids[i % 24], t + i, rng, **h.random_features(rng, 0, 3))
                for i in range(48)]
        pl_a = h.produce(ctx.input_topic, ev_a, _encode)
        recs_a = _wait_sources(reader, pl_a, w, "events sent while Redis is up")
        assert _flags(recs_a) == [False], f"degraded flags with Redis up: {_flags(recs_a)}"
        exp_a, _ = h.expected_predictions(ev_a, pl_a, h.PRIMARY_MODEL, seeded)
        first, n_bad = h.score_mismatches(recs_a, exp_a)
        assert n_bad == 0, f"Redis up: {n_bad} predictions differ from the merge: {first}"

        # B. Redis down: one event per customer, scored with its own features only.
        redis_outage.stop()
        down_ids = seeded_ids + [f"new-while-down-{ctx.uid}-{i}" for i in range(8)]
        ev_b = [h.make_event(cid, t + 1000 + i, rng, **h.random_features(rng, 1, 4))
                for i, cid in enumerate(down_ids)]
        pl_b = h.produce(ctx.input_topic, ev_b, _encode)
        recs_b = _wait_sources(reader, pl_b, w, "events sent while Redis is down")
        flagged = [r for r in recs_b if r["degraded"] is not True]
        assert not flagged, (f"{len(flagged)} of {len(recs_b)} predictions made while Redis was "
                             f"down are not degraded, e.g. {flagged[:2]}")
        exp_b = _own_features_expected(ev_b, pl_b)
        first, n_bad = h.score_mismatches(recs_b, exp_b)
        assert n_bad == 0, f"Redis down: {n_bad} predictions differ from own features: {first}"
        # The check above tells cached from uncached: most merges would have differed.
        with_cache, _ = h.expected_predictions(ev_a + ev_b, pl_a + pl_b, h.PRIMARY_MODEL, seeded)
        differ = sum(with_cache[p]["hash"] != exp_b[p]["hash"] for p in pl_b)
        assert differ >= len(pl_b) // 2, f"test data: only {differ} merges differ from own"

        # C. Redis back, empty. Probes (new customers, one event each) until a prediction is
        # no longer degraded: the worker may wait out its backoff (at most 5 s) first.
        redis_outage.start()
        assert ctx.redis.exists(*[ctx.redis_key(c) for c in seeded_ids]) == 0, \
            "Redis kept the seeded hashes across a restart"
        pl_c, recs_c = [], []
        deadline = time.monotonic() + 20
        while not any(r["degraded"] is False for r in recs_c):
            assert time.monotonic() < deadline, (
                f"every prediction is still degraded 20s after Redis came back "
                f"({len(recs_c)} probes)" + w.describe())
            probe = [h.make_event(f"probe-{ctx.uid}-{len(pl_c)}", t + 2000 + len(pl_c), rng,
                                  **h.random_features(rng, 2, 5))]
            placed = h.produce(ctx.input_topic, probe, _encode)
            recs = _wait_sources(reader, placed, w, "probes", timeout=15)
            first, n_bad = h.score_mismatches(recs, _own_features_expected(probe, placed))
            assert n_bad == 0, f"probe scored wrongly: {first}"
            pl_c += placed
            recs_c += recs
            time.sleep(0.2)
        print(f"{len(recs_c)} probes until a prediction was not degraded: {_flags(recs_c)}")

        # D. Recovered: two rounds per customer; the second sees the first's fields through
        # the cache. The reference starts from whatever Redis holds now (nothing, after the
        # restart, for these customers).
        d_ids = seeded_ids[:8] + [f"after-{ctx.uid}-{i}" for i in range(8)]
        start_state = _snapshot(ctx, d_ids)
        assert not any(start_state.values()), f"cache not empty after the restart: {start_state}"
        ev_d1 = [h.make_event(cid, t + 3000 + i, rng, **h.random_features(rng, 4, 8))
                 for i, cid in enumerate(d_ids)]
        pl_d1 = h.produce(ctx.input_topic, ev_d1, _encode)
        recs_d1 = _wait_sources(reader, pl_d1, w, "first events after recovery")
        ev_d2 = [h.make_event(cid, t + 4000 + i, rng, **h.random_features(rng, 1, 3))
                 for i, cid in enumerate(d_ids)]
        pl_d2 = h.produce(ctx.input_topic, ev_d2, _encode)
        recs_d2 = _wait_sources(reader, pl_d2, w, "second events after recovery")
        recs_d = recs_d1 + recs_d2
        assert _flags(recs_d) == [False], f"degraded flags after recovery: {_flags(recs_d)}"
        exp_d, final = h.expected_predictions(ev_d1 + ev_d2, pl_d1 + pl_d2, h.PRIMARY_MODEL,
                                              start_state)
        first, n_bad = h.score_mismatches(recs_d, exp_d)
        assert n_bad == 0, f"after recovery: {n_bad} predictions differ from the merge: {first}"
        own_d2 = _own_features_expected(ev_d2, pl_d2)
        assert all(exp_d[p]["hash"] != own_d2[p]["hash"] for p in pl_d2), \
            "test data: second-round merges should differ from own features"

        w.stop()
        reader.drain()
    finally:
        reader.close()

    _exactly_one_each(reader.records, pl_a + pl_b + pl_c + pl_d1 + pl_d2)
    ends = h.end_offsets(ctx.input_topic)
    committed = h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends))
    assert committed == ends, f"committed offsets {committed} != end offsets {ends}"
    # Write-back works again: the recovered customers' hashes hold the merged features.
    wrong = []
    for cid in d_ids:
        stored = {n: np.float32(v) for n, v in ctx.redis.hgetall(ctx.redis_key(cid)).items()}
        if stored != final[cid]:
            wrong.append(f"{cid}: {stored} != {final[cid]}")
    assert not wrong, f"{len(wrong)} hashes differ from the merge after recovery: {wrong[:3]}"


def test_block_pauses_consumption_while_redis_is_down_and_resumes_without_loss(
        ctx, redis_outage):
    rng = np.random.default_rng(902)
    seeded_ids = [f"seeded-{ctx.uid}-{i:02d}" for i in range(16)]
    seeded = {cid: ctx.seed(cid, h.random_features(rng, 6, 11)) for cid in seeded_ids}
    # state.mode = shared needs Redis for every batch, so the pause is immediate and complete
    # (owned scores the customers it holds until a flush or a new customer needs Redis).
    props = ctx.props({"state.mode": "shared"})
    assert "redis.on.error" not in props  # block is the default
    w = ctx.start_worker(props)
    reader = h.TopicReader(ctx.output_topic)
    try:
        ev_a = h.random_events(rng, seeded_ids, 32)
        pl_a = h.produce(ctx.input_topic, ev_a, _encode)
        recs_a = _wait_sources(reader, pl_a, w, "events sent while Redis is up")
        assert _flags(recs_a) == [False], f"degraded flags with Redis up: {_flags(recs_a)}"
        # Every batch done (features written, offsets committed) before Redis goes away.
        ends_a = h.wait_committed(ctx.group, ctx.input_topic, worker=w)

        redis_outage.stop()
        # Partial events, several per customer: merged from an empty cache they differ
        # from merges with the seeded state Redis lost.
        b_ids = seeded_ids + [f"new-{ctx.uid}-{i}" for i in range(8)]
        ev_b = [h.make_event(b_ids[int(rng.integers(0, len(b_ids)))], 1_700_100_000_000 + i,
                             rng, **h.random_features(rng, 1, 4)) for i in range(40)]
        pl_b = h.produce(ctx.input_topic, ev_b, _encode)
        reader.poll_for(PAUSE_S, worker=w)
        wanted = set(pl_b)
        early = [r for r in reader.records if (r["source_partition"], r["source_offset"]) in wanted]
        assert not early, (f"{len(early)} predictions while Redis was down under block, e.g. "
                           f"{early[:2]}")
        assert w.alive(), "the worker exited while Redis was down" + w.describe()
        committed = h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends_a))
        assert committed == ends_a, \
            f"offsets committed past the paused batch: {committed} (before Redis stopped: {ends_a})"
        blocked = [line for line in w.log_lines()
                   if line.get("component") == "redis" and line.get("policy") == "block"]
        assert blocked, "no Redis retry logged while Redis was down" + w.describe()

        redis_outage.start()
        recs_b = _wait_sources(reader, pl_b, w, "events sent while Redis was down")
        assert _flags(recs_b) == [False], f"degraded flags under block: {_flags(recs_b)}"
        # Redis came back empty: the merge starts from nothing (not from the seeded state).
        exp_b, _ = h.expected_predictions(ev_b, pl_b, h.PRIMARY_MODEL)
        first, n_bad = h.score_mismatches(recs_b, exp_b)
        assert n_bad == 0, f"after the pause: {n_bad} predictions differ from the merge: {first}"
        stale, _ = h.expected_predictions(ev_a + ev_b, pl_a + pl_b, h.PRIMARY_MODEL, seeded)
        differ = sum(stale[p]["hash"] != exp_b[p]["hash"] for p in pl_b)
        assert differ >= len(pl_b) // 2, f"test data: only {differ} stale merges differ"

        h.wait_committed(ctx.group, ctx.input_topic, worker=w)
        w.stop()
        reader.drain()
    finally:
        reader.close()
    _exactly_one_each(reader.records, pl_a + pl_b)
    ends = h.end_offsets(ctx.input_topic)
    committed = h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends))
    assert committed == ends, f"committed offsets {committed} != end offsets {ends}"


def test_block_exits_1_naming_redis_when_redis_is_down_at_start_up(ctx, redis_outage):
    redis_outage.stop()
    w = ctx.start_worker(ctx.props({"redis.on.error": "block"}))
    start = time.monotonic()
    try:
        rc = w.proc.wait(START_FAIL_S)
    except Exception:  # noqa: BLE001 - still running
        raise AssertionError(f"worker still running {START_FAIL_S:.0f}s after start with "
                             f"Redis down" + w.describe())
    took = time.monotonic() - start
    w.kill()
    log = w.log_path.read_text(encoding="utf-8", errors="replace")
    assert rc == 1, f"exit {rc} with Redis down at start-up, expected 1" + w.describe()
    assert "redis.host" in log or "redis.port" in log, \
        f"stderr does not name redis.host/redis.port:\n{log[-2000:]}"
    assert str(h.REDIS_PORT) in log, f"stderr does not name port {h.REDIS_PORT}:\n{log[-2000:]}"
    print(f"exit {rc} after {took:.1f}s")


@pytest.mark.parametrize("state_mode", ["shared", "owned"])
def test_degrade_starts_and_scores_degraded_when_redis_is_down_at_start_up(ctx, redis_outage,
                                                                          state_mode):
    """Redis down from the start under degrade. shared: every prediction is degraded and
    scored with its event's own features (the second round does not see the first). owned:
    the first round (customers new to the worker) likewise, the second round not degraded:
    each customer's vector merged with the first round, which the local store keeps."""
    rng = np.random.default_rng(903)
    redis_outage.stop()
    w = ctx.start_worker(ctx.props({"redis.on.error": "degrade", "state.mode": state_mode,
                                    "worker.threads": 1}))
    ids = [f"cust-{ctx.uid}-{i:02d}" for i in range(12)]
    reader = h.TopicReader(ctx.output_topic)
    try:
        ev1 = [h.make_event(cid, 1_700_000_000_000 + i, rng, **h.random_features(rng, 5, 8))
               for i, cid in enumerate(ids)]
        pl1 = h.produce(ctx.input_topic, ev1, _encode)
        recs1 = _wait_sources(reader, pl1, w, "first events")
        ev2 = [h.make_event(cid, 1_700_000_100_000 + i, rng, **h.random_features(rng, 1, 3))
               for i, cid in enumerate(ids)]
        pl2 = h.produce(ctx.input_topic, ev2, _encode)
        recs2 = _wait_sources(reader, pl2, w, "second events")
        w.stop()
        reader.drain()
    finally:
        reader.close()
    exp = _own_features_expected(ev1, pl1)
    if state_mode == "shared":
        assert _flags(recs1 + recs2) == [True], \
            f"degraded flags with Redis down: {_flags(recs1 + recs2)}"
        exp.update(_own_features_expected(ev2, pl2))
    else:
        assert _flags(recs1) == [True], f"first round's degraded flags: {_flags(recs1)}"
        assert _flags(recs2) == [False], f"second round's degraded flags: {_flags(recs2)}"
        merged, _ = h.expected_predictions(ev1 + ev2, pl1 + pl2, h.PRIMARY_MODEL)
        exp.update({p: merged[p] for p in pl2})
        own2 = _own_features_expected(ev2, pl2)
        assert all(own2[p]["hash"] != merged[p]["hash"] for p in pl2), \
            "test data: second-round merges should differ from own features"
    first, n_bad = h.score_mismatches(recs1 + recs2, exp)
    assert n_bad == 0, f"{n_bad} predictions differ from the expected features: {first}"
    _exactly_one_each(reader.records, pl1 + pl2)
    starting = [line for line in w.log_lines()
                if line.get("component") == "redis" and line.get("policy") == "degrade"]
    assert starting, "no degraded start-up logged for Redis" + w.describe()
