"""mode = shadow: a candidate model on the same events, in its own consumer group. It reads
the primary's cached features but never writes Redis, never produces to the primary's
output topic, and records exactly one result per event (on shadow.topic, or as JSON lines
in shadow.file)."""

import numpy as np

import harness as h

SHADOW_TTL = 1800  # a shadow write would set this TTL: the seeded keys carry far longer ones
PINNED_TTL_MS = 9_000_000  # >> both workers' redis.ttl.seconds


def _encode(ev):
    return h.encode_avro(h.EVENT_SCHEMA_PATH, ev)


def _one_event_each(rng, customers, t0, n_min=0, n_max=5):
    """One event per customer: its merged vector is then the same whether it is merged
    before or after the primary wrote that very event back (merging is idempotent)."""
    return [h.make_event(cid, t0 + i * 1000, rng, **h.random_features(rng, n_min, n_max))
            for i, cid in enumerate(customers)]


def _expected(events, placed, seeded):
    """{(partition, offset): {event, hash, primary, candidate}} and the cache left behind
    by the primary."""
    ordered, places = h.in_partition_order(events, placed)
    vectors, final = h.simulate_merge(ordered, seeded)
    primary = h.reference_scores(h.PRIMARY_MODEL, vectors)
    candidate = h.reference_scores(h.CANDIDATE_MODEL, vectors)
    out = {}
    for ev, place, vec, sp, sc in zip(ordered, places, vectors, primary, candidate):
        out[place] = {"event": ev, "hash": h.feature_hash(vec), "primary": float(sp),
                      "candidate": float(sc)}
    return out, final


def _check_shadow_results(records, expected, input_topic, card):
    """Exactly one result per expected source, each the candidate's score of the merged
    vector. Returns a list of problems."""
    problems = []
    by_source = h.index_by_source(records)
    dup = {k: len(v) for k, v in by_source.items() if len(v) > 1}
    missing = sorted(set(expected) - set(by_source))
    unknown = sorted(set(by_source) - set(expected))
    if len(records) != len(expected) or dup or missing or unknown:
        problems.append(f"{len(records)} results for {len(expected)} events: duplicated "
                        f"{list(dup.items())[:5]}, missing {missing[:5]}, unknown {unknown[:5]}")
    for place, exp in expected.items():
        for r in by_source.get(place, [])[:1]:
            ev = exp["event"]
            where = f"{place} {ev['customer_id']}"
            want = {"model_name": card["name"], "model_version": card["version"],
                    "source_topic": input_topic, "event_id": ev["event_id"],
                    "customer_id": ev["customer_id"], "event_time": ev["event_time"],
                    "feature_hash": exp["hash"], "contributions": None}
            for field, value in want.items():
                if r.get(field) != value:
                    problems.append(f"{where} {field}: {r.get(field)!r} != {value!r}")
            if not abs(r["score"] - exp["candidate"]) <= h.SCORE_TOL:
                problems.append(f"{where} score {r['score']!r} != candidate reference "
                                f"{exp['candidate']!r}")
            if r["decision"] != (r["score"] >= r["threshold"]):
                problems.append(f"{where} decision {r['decision']} for score {r['score']}")
            if "_key" in r and r["_key"] != ev["customer_id"].encode():
                problems.append(f"{where} key {r['_key']!r}")
    return problems


def test_shadow_scores_the_candidate_beside_the_primary_and_never_writes_redis_or_output(ctx):
    rng = np.random.default_rng(1101)
    ctx.add_topics(ctx.shadow_topic)
    card = h.model_card(h.CANDIDATE_MODEL)
    assert card["version"] == "1.1.0"

    # Phase A: primary and shadow run at the same time on the same events.
    customers = [f"a-{ctx.uid}-{i:03d}" for i in range(300)]
    seeded = {cid: ctx.seed(cid, h.random_features(rng, 3, 8)) for cid in customers[:100]}
    events_a = _one_event_each(rng, customers, 1_700_000_000_000)

    primary = ctx.start_worker(ctx.props())
    shadow = ctx.start_worker(ctx.shadow_props({"redis.ttl.seconds": SHADOW_TTL}))
    out_reader = h.TopicReader(ctx.output_topic)
    shadow_reader = h.TopicReader(ctx.shadow_topic)
    try:
        # The events only once every consumer of the shadow has its partitions: a partition
        # moved between its worker threads later is dropped by one and read again by the
        # other, and phase B checks what the shadow holds.
        h.wait_group_assigned(ctx.admin, ctx.shadow_group, ctx.input_topic, ctx.partitions,
                              worker=shadow, members=max(h.WORKER_THREADS, 1))
        placed_a = h.produce(ctx.input_topic, events_a, _encode)
        expected_a, cache_a = _expected(events_a, placed_a, seeded)
        out_reader.wait_for(len(events_a), 60, worker=primary, what="predictions")
        shadow_reader.wait_for(len(events_a), 60, worker=shadow, what="shadow results")
        primary.stop()
        out_reader.drain()
        out_after_a = h.end_offsets(ctx.output_topic)

        # Phase B: the shadow alone. Pin every cached hash to a distinctive long TTL, take
        # a byte-exact snapshot, and watch every command Redis receives.
        for i, key in enumerate(sorted(ctx.redis.scan_iter(match=ctx.prefix + "*"))):
            ctx.redis.pexpire(key, PINNED_TTL_MS + i * 1000)
        before = h.redis_snapshot(ctx.prefix)
        monitor = h.RedisMonitor(ctx.tmp / "redis-monitor.log")
        try:
            known = [c for c in customers if ctx.redis_key(c).encode() in before]
            again = [known[int(i)] for i in rng.choice(len(known), 60, replace=False)]
            fresh = [f"b-{ctx.uid}-{i:03d}" for i in range(20)]
            events_b = _one_event_each(rng, again + fresh, 1_700_100_000_000, 2, 6)
            placed_b = h.produce(ctx.input_topic, events_b, _encode)
            shadow_reader.wait_for(len(events_a) + len(events_b), 60, worker=shadow,
                                   what="shadow results")
            shadow.stop()
        finally:
            monitor.stop()
        shadow_reader.drain()
    finally:
        out_reader.close()
        shadow_reader.close()
    after = h.redis_snapshot(ctx.prefix)

    # The shadow's results: one per event of both phases, the candidate's scores of the
    # vectors merged with the cache (phase B: the cache the primary left behind).
    ordered_b, places_b = h.in_partition_order(events_b, placed_b)
    vectors_b, _ = h.simulate_merge(ordered_b, cache_a)
    scores_b = h.reference_scores(h.CANDIDATE_MODEL, vectors_b)
    expected_b = {p: {"event": ev, "hash": h.feature_hash(v), "candidate": float(s)}
                  for ev, p, v, s in zip(ordered_b, places_b, vectors_b, scores_b)}
    assert not shadow_reader.undecodable, f"undecodable: {shadow_reader.undecodable[:3]}"
    problems = _check_shadow_results(shadow_reader.records, {**expected_a, **expected_b},
                                     ctx.input_topic, card)
    assert not problems, f"{len(problems)} shadow result problems, first: {problems[:10]}"

    # Apples to apples: same feature_hash as the primary for every offset of phase A.
    primary_by_source = h.index_by_source(out_reader.records)
    shadow_by_source = h.index_by_source(shadow_reader.records)
    differ = [p for p in expected_a
              if primary_by_source[p][0]["feature_hash"] != shadow_by_source[p][0]["feature_hash"]]
    assert not differ, f"{len(differ)} offsets where shadow and primary hashes differ: {differ[:5]}"
    score_diffs = [abs(primary_by_source[p][0]["score"] - shadow_by_source[p][0]["score"])
                   for p in expected_a]
    assert max(score_diffs) > 1e-3, "shadow scores equal the primary's: not the candidate model"

    # The primary's topic holds the primary's predictions only, and nothing more after it
    # stopped; nothing was dead-lettered.
    assert h.end_offsets(ctx.output_topic) == out_after_a, "the output topic grew while only " \
                                                           "the shadow ran"
    assert len(out_reader.records) == len(events_a)
    versions = {(r["model_name"], r["model_version"]) for r in out_reader.records}
    assert versions == {("churn", "1.0.0")}, f"output topic holds {versions}"
    assert ctx.dead_letters() == []

    # Redis: byte-identical hashes, TTLs not refreshed, no new key; the server saw only
    # reads of the test's keys while the shadow ran alone (and it did read them).
    changed = [k for k in before if k in after and after[k][0] != before[k][0]]
    vanished = sorted(set(before) - set(after))
    appeared = sorted(set(after) - set(before))
    refreshed = [(k, before[k][1], after[k][1]) for k in before
                 if k in after and not before[k][1] - 120_000 < after[k][1] <= before[k][1]]
    assert not (changed or vanished or appeared or refreshed), (
        f"the shadow changed Redis: {len(changed)} hashes changed {changed[:3]}, "
        f"{len(vanished)} vanished {vanished[:3]}, {len(appeared)} appeared {appeared[:3]}, "
        f"{len(refreshed)} TTLs refreshed {refreshed[:3]}")
    commands = monitor.commands(ctx.prefix)
    writes = [line for cmd, line in commands if cmd not in h.REDIS_READ_COMMANDS]
    assert not writes, f"{len(writes)} non-read commands on the test's keys: {writes[:5]}"
    # The shadow keeps its own merged state (state.mode = owned): it read the customers new to
    # it from Redis, and not those it already held from phase A.
    read = {ctx.redis_key(ev["customer_id"]) for ev in events_b
            if any(ctx.redis_key(ev["customer_id"]) in line for _, line in commands)}
    fresh_keys = {ctx.redis_key(c) for c in fresh}
    again_keys = {ctx.redis_key(c) for c in again}
    assert fresh_keys <= read, f"the shadow did not read {len(fresh_keys - read)} new " \
                               f"customers' features, e.g. {sorted(fresh_keys - read)[:3]}"
    assert not (again_keys & read), f"the shadow read {len(again_keys & read)} customers it " \
                                    f"held already, e.g. {sorted(again_keys & read)[:3]}"


def test_shadow_file_output_writes_one_json_line_per_event_and_nothing_to_kafka(ctx):
    rng = np.random.default_rng(1102)
    ctx.add_topics(ctx.shadow_topic)
    card = h.model_card(h.CANDIDATE_MODEL)
    customers = [f"f-{ctx.uid}-{i:03d}" for i in range(250)]
    seeded = {cid: ctx.seed(cid, h.random_features(rng, 2, 9)) for cid in customers[::3]}
    events = _one_event_each(rng, customers, 1_700_000_000_000)
    placed = h.produce(ctx.input_topic, events, _encode)
    expected, _ = _expected(events, placed, seeded)
    before = h.redis_snapshot(ctx.prefix)
    results = ctx.tmp / "shadow-results.jsonl"

    shadow = ctx.start_worker(ctx.shadow_props({"shadow.output": "file",
                                                "shadow.file": results}))
    h.wait_file_lines(results, len(events), 60, worker=shadow)
    reader = h.TopicReader(ctx.shadow_topic)
    try:
        reader.poll_for(1.0, worker=shadow)  # a little longer: nothing may come
        shadow.stop()
        reader.drain()
    finally:
        reader.close()

    lines = h.read_json_lines(results)
    unparsed = [r for r in lines if "_unparsed" in r]
    assert not unparsed, f"{len(unparsed)} lines of {results} are not JSON: {unparsed[:3]}"
    fields = set(h.prediction_field_names())
    wrong_fields = [sorted(set(r) ^ fields) for r in lines if set(r) != fields]
    assert not wrong_fields, f"lines whose fields differ from the Prediction record's: " \
                             f"{wrong_fields[:3]}"
    problems = _check_shadow_results(lines, expected, ctx.input_topic, card)
    assert not problems, f"{len(problems)} shadow result problems, first: {problems[:10]}"
    assert reader.records == [], f"{len(reader.records)} records on {ctx.shadow_topic} " \
                                 f"although shadow.output = file"
    assert h.end_offsets(ctx.output_topic) == {0: 0, 1: 0, 2: 0}, "the shadow wrote the " \
                                                                  "output topic"
    assert h.redis_snapshot(ctx.prefix) == before, "the shadow changed Redis"


def test_shadow_topic_equal_to_output_topic_is_a_config_error(tmp_path):
    props = {"mode": "shadow", "input.topic": "it-shadow-events", "output.topic": "it-same",
             "shadow.topic": "it-same", "model.path": h.CANDIDATE_MODEL,
             "kafka.bootstrap.servers": h.BOOTSTRAP, "redis.port": h.REDIS_PORT}
    cfg = h.write_properties(tmp_path / "shadow.properties", props)

    r = h.run_cli(["run", "-c", str(cfg)])

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    assert "shadow.topic" in r.stderr, f"stderr does not name shadow.topic: {r.stderr[-2000:]}"
