"""`streamscore replay` re-scores a range of input.topic into a topic of its own, as the live
worker scored it: exactly one prediction per event of the range (read_committed), the live
worker's scores and feature hashes when its features are rebuilt the same way, nothing written
to Redis or to the live group's offsets, the live topics refused as targets, a killed run
resumed by running it again, and a summary whose counts are what was published."""

import re
import signal
import time

import numpy as np
import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError

import harness as h

T0 = h.EVENT_TIME_T0
COMMITTED = {"isolation.level": "read_committed"}
# The documented progress line (docs/replay.md) when stderr is not a terminal.
PROGRESS = re.compile(r"^replay: (\d+) of (\d+) records \((\d+)%\), (\d+)/s, ETA \S+$")
CONNECT = "__connect.errors."


# --------------------------------------------------------------------------- helpers


def _replay(cfg, *args, timeout=120.0):
    return h.run_cli(["replay", "-c", str(cfg), *[str(a) for a in args]], timeout=timeout)


def _replay_ok(cfg, *args, timeout=120.0):
    """Run a replay with --json; asserts exit 0 and returns its summary."""
    return h.job_ok("replay", cfg, *args, timeout=timeout)


_plain = h.plain_lines


def _read(topic, decode="avro"):
    """Everything a read_committed consumer reads on topic."""
    reader = h.TopicReader(topic, decode, extra=COMMITTED)
    try:
        records = reader.drain(60)
    finally:
        reader.close()
    assert not reader.undecodable, f"undecodable records on {topic}: {reader.undecodable[:3]}"
    return records


def _exactly_one_each(records, places, what="predictions"):
    by_source = h.index_by_source(records)
    wanted = set(places)
    missing = sorted(wanted - set(by_source))
    unknown = sorted(set(by_source) - wanted)
    duplicated = {k: len(v) for k, v in by_source.items() if len(v) > 1}
    assert not missing and not unknown and not duplicated, (
        f"{len(wanted)} events in the range, {len(records)} {what}: {len(missing)} missing "
        f"{missing[:5]}, {len(unknown)} outside the range {unknown[:5]}, {len(duplicated)} "
        f"duplicated {list(duplicated.items())[:5]}")
    return by_source


def _differences(replayed, live, sources):
    """Sources whose replayed prediction differs from the live one in any field but
    scored_at (the key included): descriptions."""
    rb, lb = h.index_by_source(replayed), h.index_by_source(live)
    out = []
    for src in sorted(sources):
        a, b = rb[src][0], lb[src][0]
        fields = sorted((set(a) | set(b)) - {"scored_at", "_partition", "_offset", "_raw",
                                              "_headers"})
        diff = [f"{f}: replay {a.get(f)!r} != live {b.get(f)!r}" for f in fields
                if a.get(f) != b.get(f)]
        if diff:
            out.append(f"{src}: {'; '.join(diff)}")
    return out


def _mark():
    """An epoch-ms time after every record produced so far and before any produced next
    (Kafka's CreateTime is librdkafka's wall clock at produce())."""
    t = int(time.time() * 1000) + 1
    while int(time.time() * 1000) <= t:
        time.sleep(0.001)
    return t


def _iso_plus_two_hours(ms):
    """The instant `ms` written as ISO-8601 with a +02:00 offset and milliseconds."""
    s, frac = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s + 7200)) + f".{frac:03d}+02:00"


def _produce_groups(ctx, sizes, customers, rng):
    """Groups of events produced one after another with a time mark between two groups:
    (events per group, [(partition, offset)] per group, marks). Checks from the delivered
    timestamps that every mark lies between its groups."""
    groups, places, stamps, marks = [], [], [], []
    for k, n in enumerate(sizes):
        if k:
            marks.append(_mark())
        evs = h.bulk_events(rng, customers, n, t0=T0 + k * 10_000_000, id_prefix=f"{ctx.uid}-{k}")
        got = h.produce_bulk(ctx.input_topic, h.event_messages(evs))
        groups.append(evs)
        places.append([(p, o) for p, o, _ in got])
        stamps.append([t for _, _, t in got])
    for k, t in enumerate(marks):
        assert max(stamps[k]) < t <= min(stamps[k + 1]), \
            f"test data: mark {t} not between groups {k} ({max(stamps[k])}) and {k + 1} " \
            f"({min(stamps[k + 1])})"
    return groups, places, marks


def _bounds(places):
    """{partition: (first offset, last offset + 1)} of a group's placements."""
    out = {}
    for p, o in places:
        lo, hi = out.get(p, (o, o + 1))
        out[p] = (min(lo, o), max(hi, o + 1))
    return out


def _parts(summary):
    """{partition: {start, end, features_start, resumed_at}} of a summary."""
    return {e["partition"]: {k: e.get(k) for k in ("start", "end", "features_start",
                                                     "resumed_at")}
            for e in summary["partitions"]}


def _check_summary(s, ctx, output_topic, read, warm, predictions, customers, dead_letters=0,
                   reasons=None, resumed=False, model=None):
    card = h.model_card(model or h.PRIMARY_MODEL)
    want = {"command": "replay", "input_topic": ctx.input_topic, "output_topic": output_topic,
            "model": {"name": card["name"], "version": card["version"]}, "read": read,
            "warm": warm, "predictions": predictions, "dead_letters": dead_letters,
            "dead_letter_reasons": reasons or {}, "resumed": resumed, "complete": True,
            "customers": customers, "evicted": 0}
    got = {k: s.get(k) for k in want}
    assert got == want, f"summary {got} != expected {want} (whole summary: {s})"
    assert isinstance(s.get("seconds"), (int, float)) and s["seconds"] >= 0, s
    assert isinstance(s.get("events_per_second"), (int, float)) \
        and s["events_per_second"] >= 0, s


def _assert_reference(records, expected, what):
    first, n_bad = h.score_mismatches(records, expected)
    assert n_bad == 0, f"{what}: {n_bad} of {len(records)} predictions differ from the " \
                       f"reference: {first}"


def _settled_count(reader, timeout=20.0):
    """Read until every partition reported its end (for read_committed: the last stable
    offset) and nothing came for a second; returns the records."""
    deadline = time.monotonic() + timeout
    quiet_since, n = time.monotonic(), len(reader.records)
    while True:
        reader._poll_once(0.2)
        if len(reader.records) != n:
            quiet_since, n = time.monotonic(), len(reader.records)
        if set(reader.eof_at) >= set(reader.partitions) and time.monotonic() - quiet_since > 1.0:
            return reader.records
        assert time.monotonic() < deadline, f"{reader.topic} did not settle in {timeout}s"


# --------------------------------------------------------------------------- the range


def test_a_time_range_replays_exactly_the_events_between_from_and_to(ctx):
    """Groups A, B, C produced one after another, times t1 and t2 noted between them: a replay
    --from t1 --to t2 (ISO-8601, Z and +02:00; and epoch ms) publishes exactly one prediction
    per event of B, none of A or C, each B event scored from B's own events only (--features-from
    defaults to --from), keyed and sourced as the live worker's; the summary gives each
    partition's [start, end) and the counts."""
    rng = np.random.default_rng(1801)
    customers = [f"tr-{ctx.uid}-{i:03d}" for i in range(120)]
    groups, places, (t1, t2) = _produce_groups(ctx, (400, 500, 300), customers, rng)
    b_events, b_places = groups[1], places[1]
    bounds = _bounds(b_places)
    assert sorted(bounds) == list(range(ctx.partitions)), f"test data: B on {sorted(bounds)}"
    expected, _ = h.expected_predictions(b_events, b_places, h.PRIMARY_MODEL)
    card = h.model_card(h.PRIMARY_MODEL)
    out_iso, out_ms = ctx.add_topics(f"{ctx.output_topic}-iso", f"{ctx.output_topic}-ms")
    cfg = ctx.config(ctx.props())

    for topic, frm, to in ((out_iso, h.iso_ms(t1), _iso_plus_two_hours(t2)),
                           (out_ms, str(t1), str(t2))):
        s = _replay_ok(cfg, "--from", frm, "--to", to, "--output-topic", topic)
        records = _read(topic)
        by_source = _exactly_one_each(records, b_places)
        _assert_reference(records, expected, f"--from {frm} --to {to}")
        wrong = []
        for src, exp in expected.items():
            r, ev = by_source[src][0], exp["event"]
            want = {"_key": ev["customer_id"].encode(), "event_id": ev["event_id"],
                    "customer_id": ev["customer_id"], "event_time": ev["event_time"],
                    "source_topic": ctx.input_topic, "model_name": card["name"],
                    "model_version": card["version"], "degraded": False}
            wrong += [f"{src} {f}: {r.get(f)!r} != {v!r}" for f, v in want.items()
                      if r.get(f) != v]
        assert not wrong, f"--from {frm} --to {to}: {len(wrong)} wrong fields: {wrong[:8]}"
        assert _parts(s) == {p: {"start": lo, "end": hi, "features_start": lo,
                                 "resumed_at": None} for p, (lo, hi) in bounds.items()}, \
            f"--from {frm} --to {to}: partitions {s['partitions']}, expected B's {bounds}"
        _check_summary(s, ctx, topic, read=len(b_events), warm=0, predictions=len(b_events),
                       customers=len({ev["customer_id"] for ev in b_events}))
    print(f"A {len(groups[0])}, B {len(b_events)}, C {len(groups[2])} events; t1 {t1}, t2 {t2}; "
          f"both replays: B exactly, = reference")


# --------------------------------------------------------------------------- = the live worker


def test_a_replay_scores_as_the_live_worker_did_from_an_empty_redis(ctx):
    """The live worker scores a fresh topic from an empty Redis; `replay --from beginning`
    (no --seed-redis) gives every (partition, offset) the same prediction, every field but
    scored_at; `--from t1 --features-from beginning` gives the events after t1 the live
    worker's predictions too (their features merged from the topic's start), and only those."""
    rng = np.random.default_rng(1802)
    customers = [f"lv-{ctx.uid}-{i:03d}" for i in range(150)]
    groups, places, (t1,) = _produce_groups(ctx, (700, 600), customers, rng)
    events, placed = groups[0] + groups[1], places[0] + places[1]
    live, undecodable = ctx.run_until(ctx.props(), len(events))
    assert not undecodable, f"undecodable live predictions: {undecodable[:3]}"
    _exactly_one_each(live, placed, "live predictions")
    expected, _ = h.expected_predictions(events, placed, h.PRIMARY_MODEL)
    _assert_reference(live, expected, "live worker")
    full, mid = ctx.add_topics(f"{ctx.output_topic}-full", f"{ctx.output_topic}-mid")
    cfg = ctx.config(ctx.props())

    s_full = _replay_ok(cfg, "--from", "beginning", "--output-topic", full)
    replayed = _read(full)
    _exactly_one_each(replayed, placed)
    diff = _differences(replayed, live, placed)
    assert not diff, f"--from beginning: {len(diff)} of {len(placed)} predictions differ from " \
                     f"the live worker's: {diff[:6]}"
    ends = h.high_watermarks(ctx.input_topic)
    _check_summary(s_full, ctx, full, read=len(events), warm=0, predictions=len(events),
                   customers=len({ev["customer_id"] for ev in events}))
    assert _parts(s_full) == {p: {"start": 0, "end": ends[p], "features_start": 0,
                                  "resumed_at": None} for p in ends}, s_full["partitions"]

    s_mid = _replay_ok(cfg, "--from", str(t1), "--features-from", "beginning",
                       "--output-topic", mid)
    replayed_mid = _read(mid)
    _exactly_one_each(replayed_mid, places[1])
    diff = _differences(replayed_mid, live, places[1])
    assert not diff, f"--from t1 --features-from beginning: {len(diff)} of {len(places[1])} " \
                     f"predictions differ from the live worker's: {diff[:6]}"
    bounds = _bounds(places[1])
    assert _parts(s_mid) == {p: {"start": lo, "end": hi, "features_start": 0,
                                 "resumed_at": None} for p, (lo, hi) in bounds.items()}, \
        f"partitions {s_mid['partitions']}, expected B's {bounds} with features from 0"
    _check_summary(s_mid, ctx, mid, read=len(events), warm=len(groups[0]),
                   predictions=len(groups[1]),
                   customers=len({ev["customer_id"] for ev in events}))
    # The check tells features from the topic's start from features from t1 on.
    alone, _ = h.expected_predictions(groups[1], places[1], h.PRIMARY_MODEL)
    tells = sum(alone[p]["hash"] != expected[p]["hash"] for p in places[1])
    assert tells >= len(places[1]) // 4, f"test data: only {tells} events after t1 tell"
    print(f"{len(events)} events; replay from beginning = live for all; from t1 with features "
          f"from beginning = live for {len(places[1])} ({tells} differ from B alone)")


def test_seed_redis_reads_redis_only_and_scores_as_the_live_worker_on_the_same_state(ctx):
    """Hashes put into Redis for some customers; `replay --from beginning --seed-redis` reads
    them (read commands only, every key byte for byte as it was, no TTL set); the live worker
    afterwards, on the same events and the same Redis state, gives the same predictions
    (every field but scored_at), the in-order merge onto the seeded hashes."""
    rng = np.random.default_rng(1803)
    customers = [f"sd-{ctx.uid}-{i:03d}" for i in range(150)]
    seeded = {cid: ctx.seed(cid, h.random_features(rng, 3, 9)) for cid in customers[:60]}
    before = h.redis_snapshot(ctx.prefix)
    assert len(before) == 60 and all(pttl == -1 for _, pttl in before.values())
    events = h.bulk_events(rng, customers, 900, id_prefix=ctx.uid)
    placed = [(p, o) for p, o, _ in h.produce_bulk(ctx.input_topic, h.event_messages(events))]
    expected, _ = h.expected_predictions(events, placed, h.PRIMARY_MODEL, seeded)
    unseeded, _ = h.expected_predictions(events, placed, h.PRIMARY_MODEL)
    tells = sum(expected[p]["hash"] != unseeded[p]["hash"] for p in placed)
    assert tells >= 100, f"test data: only {tells} events tell seeded from unseeded"
    out, = ctx.add_topics(f"{ctx.output_topic}-seeded")
    cfg = ctx.config(ctx.props())

    monitor = h.RedisMonitor(ctx.tmp / "monitor.log")
    try:
        s = _replay_ok(cfg, "--from", "beginning", "--seed-redis", "--output-topic", out)
    finally:
        monitor.stop()
    after = h.redis_snapshot(ctx.prefix)
    assert after == before, "the replay changed Redis: " + str(
        [k for k in set(before) | set(after) if before.get(k) != after.get(k)][:5])
    commands = monitor.commands(ctx.prefix)
    writes = [line for cmd, line in commands if cmd not in h.REDIS_READ_COMMANDS]
    assert not writes, f"{len(writes)} non-read commands on the test's keys: {writes[:5]}"
    assert commands, "the replay with --seed-redis sent no command about the test's keys"
    replayed = _read(out)
    _exactly_one_each(replayed, placed)
    _assert_reference(replayed, expected, "replay --seed-redis")
    _check_summary(s, ctx, out, read=len(events), warm=0, predictions=len(events),
                   customers=len({ev["customer_id"] for ev in events}))

    live, undecodable = ctx.run_until(ctx.props(), len(events))
    assert not undecodable
    _exactly_one_each(live, placed, "live predictions")
    diff = _differences(replayed, live, placed)
    assert not diff, f"{len(diff)} of {len(placed)} replayed predictions differ from the live " \
                     f"worker's on the same seeded Redis: {diff[:6]}"
    print(f"{len(events)} events, 60 seeded customers ({tells} events tell); replay read "
          f"{len(commands)} commands' worth, wrote none; = live worker")


def test_a_replay_leaves_the_live_groups_offsets_and_the_redis_hashes_as_they_were(ctx):
    """After the live worker ran: its group's committed offsets (ListConsumerGroupOffsets) and
    every hash it wrote (DUMP, byte for byte) are the same after replays with and without
    --seed-redis and with another --model; the replay's progress is in its own group
    streamscore-replay-<output topic>. --model scores with the candidate and names it."""
    rng = np.random.default_rng(1804)
    customers = [f"st-{ctx.uid}-{i:03d}" for i in range(100)]
    events = h.bulk_events(rng, customers, 600, id_prefix=ctx.uid)
    placed = [(p, o) for p, o, _ in h.produce_bulk(ctx.input_topic, h.event_messages(events))]
    live, _ = ctx.run_until(ctx.props(), len(events))
    _exactly_one_each(live, placed, "live predictions")
    ends = h.high_watermarks(ctx.input_topic)
    offsets_before = h.group_offsets(ctx.group, ctx.admin)
    assert offsets_before == {(ctx.input_topic, p): e for p, e in ends.items()}, \
        f"test data: the live group committed {offsets_before}, not the ends {ends}"
    dumps_before = h.redis_dumps(ctx.prefix)
    assert len(dumps_before) == len({ev["customer_id"] for ev in events}), \
        f"test data: {len(dumps_before)} hashes in Redis"
    _, final = h.expected_predictions(events, placed, h.PRIMARY_MODEL)
    topics = ctx.add_topics(*[f"{ctx.output_topic}-r{k}" for k in range(3)])
    cfg = ctx.config(ctx.props())

    _replay_ok(cfg, "--from", "beginning", "--output-topic", topics[0])
    _replay_ok(cfg, "--from", "beginning", "--seed-redis", "--output-topic", topics[1])
    s = _replay_ok(cfg, "--from", "beginning", "--seed-redis", "--model", h.CANDIDATE_MODEL,
                   "--output-topic", topics[2])

    assert h.group_offsets(ctx.group, ctx.admin) == offsets_before, \
        "the live group's committed offsets changed"
    dumps_after = h.redis_dumps(ctx.prefix)
    changed = sorted(k for k in set(dumps_before) | set(dumps_after)
                     if dumps_before.get(k) != dumps_after.get(k))
    assert not changed, f"{len(changed)} Redis hashes changed, appeared or vanished: {changed[:5]}"
    for t in topics:
        got = h.group_offsets(f"streamscore-replay-{t}", ctx.admin)
        assert {k: v for k, v in got.items() if k[0] == ctx.input_topic} == \
            {(ctx.input_topic, p): e for p, e in ends.items()}, \
            f"group streamscore-replay-{t} committed {got}, expected the ends {ends}"
    # --model: the candidate scored every event, merged onto the live worker's final hashes
    candidate = _read(topics[2])
    _exactly_one_each(candidate, placed)
    expected, _ = h.expected_predictions(events, placed, h.CANDIDATE_MODEL, final)
    _assert_reference(candidate, expected, "--seed-redis --model candidate")
    cc = h.model_card(h.CANDIDATE_MODEL)
    versions = {(r["model_name"], r["model_version"]) for r in candidate}
    assert versions == {(cc["name"], cc["version"])}, f"--model: predictions name {versions}"
    assert s["model"] == {"name": cc["name"], "version": cc["version"]}, s["model"]


# --------------------------------------------------------------------------- refusals


LIVE_KEYS = ["input.topic", "output.topic", "dlq.topic", "shadow.topic"]


@pytest.mark.parametrize("option", ["--output-topic", "--dead-letter-topic"])
def test_a_live_topic_is_refused_as_a_target_with_exit_2_and_one_line_naming_it(ctx, option):
    """input.topic, output.topic, dlq.topic and shadow.topic of the configuration, each as
    --output-topic (or as --dead-letter-topic beside a good --output-topic): exit 2, one line
    on stderr naming the topic, nothing written to any topic."""
    props = ctx.props({"shadow.topic": ctx.shadow_topic})
    cfg = ctx.config(props)
    other, = ctx.add_topics(ctx.shadow_topic, f"{ctx.output_topic}-other")[1:]
    h.produce_bulk(ctx.input_topic, h.event_messages(
        h.bulk_events(np.random.default_rng(1805), [f"rf-{ctx.uid}"], 20, id_prefix=ctx.uid)))
    topics = [ctx.input_topic, ctx.output_topic, ctx.dlq_topic, ctx.shadow_topic, other]
    ends = {t: h.high_watermarks(t) for t in topics}
    problems = []
    for key in LIVE_KEYS:
        live = str(props[key])
        args = (["--output-topic", live] if option == "--output-topic"
                else ["--output-topic", other, "--dead-letter-topic", live])
        r = _replay(cfg, "--from", "beginning", *args)
        plain = _plain(r.stderr)
        if r.returncode != 2 or len(plain) != 1 or live not in plain[0]:
            problems.append(f"{option} = {key} ({live}): exit {r.returncode} (expected 2), "
                            f"stderr lines {plain} (expected one naming it)")
    assert not problems, "\n".join(problems)
    after = {t: h.high_watermarks(t) for t in topics}
    assert after == ends, f"a refused replay wrote a topic: {ends} -> {after}"


@pytest.mark.parametrize("case", ["from-after-the-end", "from-equals-to", "to-before-from",
                                  "empty-topic"])
def test_an_empty_range_exits_2_naming_the_topic(ctx, case):
    rng = np.random.default_rng(1806)
    out, = ctx.add_topics(f"{ctx.output_topic}-empty")
    if case != "empty-topic":
        h.produce_bulk(ctx.input_topic, h.event_messages(
            h.bulk_events(rng, [f"em-{ctx.uid}-{i}" for i in range(10)], 60, id_prefix=ctx.uid)))
    later = _mark()
    now = int(time.time() * 1000)
    args = {"from-after-the-end": ["--from", str(later)],
            "from-equals-to": ["--from", str(now - 3_600_000), "--to", str(now - 3_600_000)],
            "to-before-from": ["--from", h.iso_ms(now - 1000), "--to", h.iso_ms(now - 3_600_000)],
            "empty-topic": ["--from", "beginning"]}[case]
    cfg = ctx.config(ctx.props())

    r = _replay(cfg, *args, "--output-topic", out)

    assert r.returncode == 2, f"{case}: exit {r.returncode}, expected 2; stdout " \
                              f"{r.stdout[-1000:]!r}; stderr {r.stderr[-2000:]!r}"
    plain = _plain(r.stderr)
    prefix = (f"streamscore: replay: the range holds no records of topic '{ctx.input_topic}' "
              f"(--from ")
    assert len(plain) == 1 and plain[0].startswith(prefix), \
        f"{case}: expected one line starting {prefix!r}, got {plain}"
    assert h.high_watermarks(out) == {p: 0 for p in range(ctx.partitions)}, \
        "an empty range published"


USAGE = {  # the arguments, and what the one line must name
    "from-now": (["--from", "now", "--output-topic", "{out}"], "--from"),
    "to-beginning": (["--from", "beginning", "--to", "beginning", "--output-topic", "{out}"],
                     "--to"),
    "from-not-a-time": (["--from", "yesterday", "--output-topic", "{out}"], "yesterday"),
    "no-from": (["--output-topic", "{out}"], "--from"),
    "no-output-topic": (["--from", "beginning"], "--output-topic"),
    "unknown-option": (["--from", "beginning", "--output-topic", "{out}", "--no-such-option"],
                       "--no-such-option"),
}


def test_bad_usage_exits_2_with_one_line_naming_the_option(ctx):
    out, = ctx.add_topics(f"{ctx.output_topic}-usage")
    h.produce_bulk(ctx.input_topic, h.event_messages(
        h.bulk_events(np.random.default_rng(1807), [f"us-{ctx.uid}"], 10, id_prefix=ctx.uid)))
    cfg = ctx.config(ctx.props())
    problems = []
    for case, (args, named) in USAGE.items():
        r = _replay(cfg, *[a.format(out=out) for a in args])
        plain = _plain(r.stderr)
        if r.returncode != 2 or len(plain) != 1 or named not in plain[0]:
            problems.append(f"{case} {args}: exit {r.returncode} (expected 2), stderr lines "
                            f"{plain} (expected one naming {named})")
    assert not problems, "\n".join(problems)
    assert h.high_watermarks(out) == {p: 0 for p in range(ctx.partitions)}


def test_help_exits_0_and_names_every_option():
    r = h.run_cli(["replay", "--help"])
    assert r.returncode == 0, f"exit {r.returncode}; stderr {r.stderr[-2000:]!r}"
    text = r.stdout + r.stderr
    missing = [o for o in ("-c", "--from", "--to", "--features-from", "--output-topic", "--model",
                           "--seed-redis", "--dead-letter-topic", "--restart", "--json", "-X")
               if o not in text]
    assert not missing, f"replay --help does not name {missing}: {text[:1500]!r}"


# --------------------------------------------------------------------------- kill and resume

N_KILL = 200_000
# Small transactions, so that the killed run has committed some when it is killed.
KILL_OPTIONS = ["-X", "batch.max.messages=1000", "-X", "delivery.commit.interval.ms=0"]


def _expected_bulk(events, placed, model):
    """{(partition, offset): (feature_hash, reference score)}, vectorised for many events."""
    order = sorted(range(len(events)), key=lambda i: placed[i])
    merged = h.merged_matrix([events[i] for i in order])
    hashes = h.feature_hashes(merged)
    scores = h.reference_scores(model, merged).tolist()
    return {placed[i]: (hh, sc) for i, hh, sc in zip(order, hashes, scores)}


def _bulk_mismatches(records, expected):
    bad = []
    for r in records:
        hh, sc = expected[(r["source_partition"], r["source_offset"])]
        if r["feature_hash"] != hh or not abs(r["score"] - sc) <= h.SCORE_TOL:
            bad.append(f"{r['source_partition']}/{r['source_offset']}: {r['feature_hash']} "
                       f"{r['score']!r} != {hh} {sc!r}")
    return bad


def _offsets_in_open_transaction(admin, group):
    """Whether the group has offsets sent to a transaction that is neither committed nor
    aborted yet (the broker answers UNSTABLE_OFFSET_COMMIT to an offset fetch requiring stable
    offsets)."""
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                            require_stable=True, request_timeout=5)
    got = res[group].result(10)
    return any(tp.error is not None and tp.error.code() == KafkaError.UNSTABLE_OFFSET_COMMIT
               for tp in got.topic_partitions)


def test_a_replay_killed_half_way_resumes_to_exactly_one_prediction_per_event(ctx):
    """200,000 events; a replay committing small transactions is SIGKILLed once the output
    topic holds committed predictions and a progress line of the documented form was printed
    (stderr is a file), at a moment its open transaction holds its progress (it is held with
    SIGSTOP until one is caught so), then run again with the same command: it resumes where its
    group's committed progress says (the events before it read for features only: every
    prediction is the in-order merge reference), and a read_committed reader sees exactly one
    prediction per event. Once more: nothing published, complete. A different range on the
    same topic exits 2; with --restart it runs."""
    rng = np.random.default_rng(1808)
    customers = [f"kl-{ctx.uid}-{i:04d}" for i in range(5000)]
    events = h.bulk_events(rng, customers, N_KILL, id_prefix=ctx.uid)
    placed = [(p, o) for p, o, _ in h.produce_bulk(ctx.input_topic, h.event_messages(events),
                                                   timeout=90)]
    expected = _expected_bulk(events, placed, h.PRIMARY_MODEL)
    del events
    ends = h.high_watermarks(ctx.input_topic)
    out, = ctx.add_topics(f"{ctx.output_topic}-killed")
    cfg = ctx.config(ctx.props())
    group = f"streamscore-replay-{out}"
    same = ["--from", "beginning", "--output-topic", out, *KILL_OPTIONS]
    command = ["replay", "-c", cfg, *same, "--json"]
    reader = h.TopicReader(out, decode="avro", extra=COMMITTED)
    try:
        first = h.Job(command, ctx.tmp, "replay")
        try:
            deadline = time.monotonic() + 90
            while not (len(reader.records) >= 1000
                       and any(PROGRESS.match(x) for x in _plain(first.stderr()))):
                assert first.alive(), "the replay ended before it could be killed (make it " \
                                      "slower: smaller batches)" + first.describe()
                assert time.monotonic() < deadline, \
                    f"{len(reader.records)} committed predictions and no progress line after " \
                    f"90s" + first.describe()
                reader._poll_once(0.2)
            # The hardest moment to be killed at: offsets sent to the open transaction (the
            # next run must not wait for them: only its own start fences that transaction).
            for _ in range(300):
                time.sleep(float(rng.uniform(0, 0.03)))
                first.signal(signal.SIGSTOP)
                # still open a moment later: not a commit already on its way to the broker
                if _offsets_in_open_transaction(ctx.admin, group) and \
                        not time.sleep(0.5) and _offsets_in_open_transaction(ctx.admin, group):
                    break
                first.signal(signal.SIGCONT)
                assert first.alive(), "the replay ended before it could be killed with its " \
                                      "progress in an open transaction" + first.describe()
            else:
                raise AssertionError("no moment with the progress in an open transaction "
                                     "caught in 300 tries" + first.describe())
            first.signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        finally:
            first.kill()
        assert _offsets_in_open_transaction(ctx.admin, group), \
            "test: the killed run's open transaction is no longer open"
        progress = [PROGRESS.match(x) for x in _plain(first.stderr()) if PROGRESS.match(x)]
        for m in progress:
            done, total, pct = int(m.group(1)), int(m.group(2)), int(m.group(3))
            assert total == N_KILL and 0 <= done <= total and abs(pct - 100 * done / total) <= 1, \
                f"progress line {m.group(0)!r} for {N_KILL} records"

        # What the killed run committed: its predictions and its group's progress agree.
        deadline = time.monotonic() + 15
        while True:
            before = len(_settled_count(reader))
            # the stable offsets (not waiting for the killed run's open transaction, which
            # read_committed offset fetches would until it is aborted)
            stable = h.group_offsets(group, ctx.admin)
            progress_at = {p: stable.get((ctx.input_topic, p), -1) for p in ends}
            done = sum(max(progress_at[p], 0) for p in ends)
            if done == before:
                break
            assert time.monotonic() < deadline, \
                f"{before} committed predictions but the group {group} committed progress " \
                f"{progress_at} ({done} events)"
            time.sleep(0.5)
        assert 0 < before < N_KILL, f"{before} committed before the kill: nothing was tested"
        _exactly_one_each(reader.records, [s for s in placed if s[1] < progress_at[s[0]]],
                          "predictions committed before the kill")

        second = h.Job(command, ctx.tmp, "replay")
        try:
            rc = second.wait(120)
        finally:
            second.kill()
        assert rc == 0, f"the second run exit {rc}" + second.describe()
        s2 = h.cli_json(second.completed(), "streamscore replay")
        reader.drain(60)
        _exactly_one_each(reader.records, placed)
        bad = _bulk_mismatches(reader.records, expected)
        assert not bad, f"{len(bad)} of {N_KILL} predictions differ from the in-order merge " \
                        f"reference across the kill: {bad[:5]}"
        assert {k: s2.get(k) for k in ("resumed", "complete", "read", "warm", "predictions",
                                       "dead_letters")} == \
            {"resumed": True, "complete": True, "read": N_KILL, "warm": before,
             "predictions": N_KILL - before, "dead_letters": 0}, f"second run's summary {s2}"
        parts = _parts(s2)
        assert {p: (e["start"], e["end"], e["features_start"]) for p, e in parts.items()} == \
            {p: (0, ends[p], 0) for p in ends}, f"second run's partitions {s2['partitions']}"
        # a partition the killed run committed no progress of resumes at its start (the
        # spec's null "not resumed" or 0 are both read so)
        wrong = {p: e["resumed_at"] for p, e in parts.items()
                 if not (e["resumed_at"] == progress_at[p] if progress_at[p] >= 0
                         else e["resumed_at"] in (None, 0))}
        assert not wrong, f"resumed_at {wrong}, the killed run's progress {progress_at}"

        # Once more: complete, nothing published.
        high = h.high_watermarks(out)
        s3 = _replay_ok(cfg, *same)
        assert s3.get("complete") is True and s3.get("predictions") == 0, f"third run {s3}"
        assert h.high_watermarks(out) == high, "a finished replay run again published"
        reader.poll_for(0.5)
        assert len(reader.records) == N_KILL

        # Another range on the same topic: refused, then --restart runs it.
        tail = ",".join(f"{p}:{ends[p] - 100}" for p in sorted(ends))
        r = _replay(cfg, "--from", tail, "--output-topic", out)
        assert r.returncode == 2, f"another range on {out}: exit {r.returncode}, expected 2; " \
                                  f"stderr {r.stderr[-2000:]!r}"
        assert len(_plain(r.stderr)) == 1, _plain(r.stderr)
        assert h.high_watermarks(out) == high
        s4 = _replay_ok(cfg, "--from", tail, "--output-topic", out, "--restart")
        assert s4.get("predictions") == 100 * len(ends) and s4.get("resumed") is False \
            and s4.get("complete") is True, f"--restart: {s4}"
        reader.drain(30)
        new = reader.records[N_KILL:]
        _exactly_one_each(new, [(p, o) for p in ends for o in range(ends[p] - 100, ends[p])],
                          "predictions of the restarted range")
    finally:
        reader.close()
    print(f"{N_KILL} events; killed at {before} committed ({len(progress)} progress lines), "
          f"resumed at {progress_at}: exactly one each, = reference; third run complete; "
          f"--restart of the last 100 per partition published 300")


# --------------------------------------------------------------------------- summary, dead letters


def test_the_summary_counts_what_was_published_and_dead_letters_go_where_the_live_workers_go(
        ctx):
    """Good events with malformed values among them (bad_avro, and one event without a
    customer id): the --json summary counts every record read, the predictions published
    (what a read_committed reader sees), the dead letters by reason; with --dead-letter-topic
    they are there with the live worker's headers (the original key, value and headers, and
    __connect.errors.*). A store smaller than the customer set evicts, and says so."""
    rng = np.random.default_rng(1809)
    customers = [f"sm-{ctx.uid}-{i:03d}" for i in range(80)]
    goods = h.bulk_events(rng, customers, 450, id_prefix=ctx.uid)
    body = h.encode_avro(h.EVENT_SCHEMA_PATH, goods[0])
    no_id = dict(goods[1], customer_id="")
    bads = [
        ({"value": b"\xff" * 12, "key": b"garbage", "headers": [("trace-id", b"t-1")]},
         "bad_avro"),
        ({"value": b"this is not avro at all", "key": None}, "bad_avro"),
        ({"value": body[:len(body) // 2], "key": b"cut", "headers": [("bin", b"\x00\xff")]},
         "bad_avro"),
        ({"value": b"", "key": b"empty"}, "bad_avro"),
        ({"value": b"\x02" * 7, "key": b"short"}, "bad_avro"),
        ({"value": h.encode_avro(h.EVENT_SCHEMA_PATH, no_id), "key": b""}, "no_customer_id"),
    ]
    messages, kinds = [], []
    for i, ev in enumerate(goods):
        messages.append({"key": ev["customer_id"].encode(),
                         "value": h.encode_avro(h.EVENT_SCHEMA_PATH, ev)})
        kinds.append(ev)
        if i % 60 == 30 and i // 60 < len(bads):
            m, reason = bads[i // 60]
            messages.append(dict(m, partition=(i // 60) % ctx.partitions))
            kinds.append(reason)
    assert sum(isinstance(k, str) for k in kinds) == len(bads)
    placed = h.produce_raw(ctx.input_topic, messages)
    good_places = [p for p, k in zip(placed, kinds) if not isinstance(k, str)]
    good_events = [k for k in kinds if not isinstance(k, str)]
    bad_places = {p: (m, k) for p, m, k in zip(placed, messages, kinds) if isinstance(k, str)}
    reasons = {}
    for _, k in bad_places.values():
        reasons[k] = reasons.get(k, 0) + 1
    n_customers = len({ev["customer_id"] for ev in good_events})
    expected, _ = h.expected_predictions(good_events, good_places, h.PRIMARY_MODEL)
    counted, lettered, small = ctx.add_topics(f"{ctx.output_topic}-counted",
                                              f"{ctx.output_topic}-lettered",
                                              f"{ctx.output_topic}-small")
    replay_dlq, = ctx.add_topics(f"{ctx.input_topic}.replay-dlq")
    cfg = ctx.config(ctx.props())

    # Counted only: nothing written anywhere but the output topic.
    s = _replay_ok(cfg, "--from", "beginning", "--output-topic", counted)
    records = _read(counted)
    _exactly_one_each(records, good_places)
    _assert_reference(records, expected, "among dead letters")
    _check_summary(s, ctx, counted, read=len(messages), warm=0, predictions=len(records),
                   customers=n_customers, dead_letters=len(bads), reasons=reasons)
    assert _read(ctx.dlq_topic, None) == [], "the replay wrote the live dead-letter topic"

    # To --dead-letter-topic, as the live worker sends them to dlq.topic.
    s = _replay_ok(cfg, "--from", "beginning", "--output-topic", lettered,
                   "--dead-letter-topic", replay_dlq)
    assert s["dead_letters"] == len(bads) and s["dead_letter_reasons"] == reasons, s
    _exactly_one_each(_read(lettered), good_places)
    live, _ = ctx.run_until(ctx.props(), len(good_places))
    _exactly_one_each(live, good_places, "live predictions")
    live_letters = _letters_by_source(_read(ctx.dlq_topic, None))
    replay_letters = _letters_by_source(_read(replay_dlq, None))
    assert set(live_letters) == set(bad_places), \
        f"test data: the live worker dead-lettered {sorted(live_letters)}"
    assert set(replay_letters) == set(bad_places), \
        f"dead letters for {sorted(replay_letters)}, expected {sorted(bad_places)}"
    problems = []
    for src, (m, reason) in sorted(bad_places.items()):
        got, want = replay_letters[src], live_letters[src]
        if (got["_key"], got["_raw"]) != (m.get("key"), m.get("value")):
            problems.append(f"{src}: key/value {got['_key']!r}/{got['_raw']!r:.60} != the "
                            f"original's")
        hg = [(n, v) for n, v in got["_headers"] if n != CONNECT + "exception.message"]
        hw = [(n, v) for n, v in want["_headers"] if n != CONNECT + "exception.message"]
        if hg != hw:
            problems.append(f"{src}: headers {hg} != the live worker's {hw}")
        if dict(got["_headers"]).get(CONNECT + "exception.class.name") != reason.encode():
            problems.append(f"{src}: reason {dict(got['_headers'])} != {reason}")
        if not dict(got["_headers"]).get(CONNECT + "exception.message"):
            problems.append(f"{src}: no exception message")
    assert not problems, f"{len(problems)} dead letters unlike the live worker's: {problems[:6]}"

    # A store of 20 customers for 80: evictions counted in the JSON, warned in the text.
    s = _replay_ok(cfg, "--from", "beginning", "--output-topic", small,
                   "-X", "state.store.max.customers=20")
    assert isinstance(s.get("evicted"), int) and s["evicted"] >= n_customers - 20, \
        f"store of 20 for {n_customers} customers: evicted {s.get('evicted')}"
    assert s["predictions"] == len(good_places) and s["complete"] is True, s
    plain_run, = ctx.add_topics(f"{ctx.output_topic}-small-text")
    r = _replay(cfg, "--from", "beginning", "--output-topic", plain_run,
                "-X", "state.store.max.customers=20")
    assert r.returncode == 0, f"exit {r.returncode}; stderr {r.stderr[-2000:]!r}"
    assert "evict" in r.stdout.lower(), f"the text summary does not warn of evictions: " \
                                        f"{r.stdout[-1500:]!r}"
    print(f"{len(messages)} records ({len(bads)} bad: {reasons}); summary = observed; dead "
          f"letters = the live worker's; store of 20: evicted {s['evicted']}")


def _letters_by_source(records):
    out = {}
    for r in records:
        hd = dict(r["_headers"])
        src = (int(hd[CONNECT + "partition"]), int(hd[CONNECT + "offset"]))
        assert src not in out, f"two dead letters for {src}"
        out[src] = r
    return out
