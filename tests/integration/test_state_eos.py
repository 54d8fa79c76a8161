"""delivery = exactly-once with the feature state owned by the partition: a worker killed at
each point of a batch's life (before its outputs are produced, between produce and commit,
between the commit and the Redis write, halfway through a Redis flush), then a normal worker
run to the end of the stream, leave exactly what applying every event once, in partition
order, gives. The reference is computed here, in Python, from the events alone:

- right after the kill, Redis holds for every partition the merged state of its events up to
  a batch boundary no later than the group's committed offset: nothing of a batch whose
  transaction was aborted or never committed (Redis may lag the commits, never lead them);
- at the end, every customer's Redis hash is its merged vector (every feature any of its
  events carried, the last value winning), and the changelog's last committed record of the
  customer is that same vector, on the customer's input partition;
- a read_committed reader sees exactly one prediction per input offset, each with the feature
  hash and the XGBoost score of the customer's vector merged up to and including that event;
- the group's committed offsets are the end offsets of the input;
- the changelog topic `<group>-features-changelog` is compacted and has the input's partition
  count.

The failpoints come from `streamscore-failpoints` (env FAILPOINTS_BIN, else next to the
worker binary): STREAMSCORE_FAILPOINT=<name>:<n> makes it print `failpoint <name> hit` and
exit 99 the n-th time the point is reached.
"""

import json
import os
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import ConfigResource, ResourceType

import harness as h

FAILPOINTS_BIN = Path(os.environ.get("FAILPOINTS_BIN") or h.BIN.parent / "streamscore-failpoints")
FAILPOINT_EXIT = 99

PARTITIONS = 3
N_EVENTS = 3000
N_CUSTOMERS = 300
BATCH = 25  # about 120 batches: the failpoints below fire halfway through the stream

# (failpoint, the hit at which it fires, state.flush.interval.ms, delivery.commit.interval.ms).
# A flush interval of 50 ms lets Redis lag the commits by a few batches (an eos.after-commit
# kill then leaves committed updates only in the changelog); 0 flushes after every commit, so
# the flush failpoint is reached once per transaction. A commit interval of 0 makes every
# batch a transaction (the points fire about halfway through the stream); 3 ms makes a
# transaction span several batches, as the default does (a commit-time point fires at the
# second commit, before the stream's middle; at 10 ms a worker scoring a backlog as fast as
# librdkafka 2.8 feeds it could fit the whole stream in two transactions); for
# the per-batch point, 2 ms (a few batches each), so that transactions have committed before
# its 60th hit.
CASES = [
    ("eos.before-produce", 60, 50, 0),
    ("eos.before-commit", 60, 50, 0),
    ("eos.after-commit", 60, 50, 0),
    ("state.during-flush", 60, 0, 0),
    ("eos.before-produce", 60, 50, 2),
    ("eos.before-commit", 2, 50, 3),
    ("eos.after-commit", 2, 50, 3),
    ("state.during-flush", 2, 0, 3),
]


# --------------------------------------------------------------------------- the reference


def merge_into(state, event):
    """The merge rule: every feature the event carries replaces the customer's value."""
    for name, value in h.event_vector(event).items():
        if not np.isnan(value):
            state[name] = value


def by_partition(events, placed):
    """{partition: [(offset, event)] in offset order}."""
    ordered, places = h.in_partition_order(events, placed)
    out = {}
    for ev, (p, off) in zip(ordered, places):
        out.setdefault(p, []).append((off, ev))
    return out


def consistent_cuts(partition_events, stored):
    """The offsets o at which the reference state of the partition's customers, merged from
    the partition's events before offset o, equals what Redis holds for them (`stored`:
    {customer: {feature: float32}}). Ascending; empty if Redis matches no prefix."""
    customers = {ev["customer_id"] for _, ev in partition_events}
    ref = {c: {} for c in customers}
    differ = {c for c in customers if stored.get(c, {})}
    cuts = [] if differ else [partition_events[0][0] if partition_events else 0]
    for off, ev in partition_events:
        c = ev["customer_id"]
        merge_into(ref[c], ev)
        if stored.get(c, {}) == ref[c]:
            differ.discard(c)
        else:
            differ.add(c)
        if not differ:
            cuts.append(off + 1)
    return cuts


def reference_state_before(partition_events, offset):
    """{customer: merged features} of the partition's events before `offset`."""
    ref = {}
    for off, ev in partition_events:
        if off >= offset:
            break
        merge_into(ref.setdefault(ev["customer_id"], {}), ev)
    return ref


def shown(features):
    return {n: float(v) for n, v in sorted(features.items())}


# --------------------------------------------------------------------------- what the worker left


def start_failpoint_worker(ctx, props, failpoint):
    """ctx.start_worker with the failpoint binary and STREAMSCORE_FAILPOINT set (the worker's
    log, stop and kill are the harness's)."""
    assert FAILPOINTS_BIN.exists(), f"failpoint binary {FAILPOINTS_BIN} not found: build it first"
    plain = h.BIN
    h.BIN = FAILPOINTS_BIN
    try:
        return ctx.start_worker(props, env={"STREAMSCORE_FAILPOINT": failpoint})
    finally:
        h.BIN = plain


def wait_exit(worker, timeout):
    try:
        rc = worker.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the failpoint worker still runs {timeout:.0f}s after its start: "
                             "its failpoint was not reached" + worker.describe())
    worker.kill()  # closes its log
    return rc


def redis_state(ctx):
    """Every customer hash under the test's prefix: ({customer: {feature: float32}}, problems
    with what is stored: fields that are not model features, text that is not a number)."""
    state, problems = {}, []
    for key in ctx.redis.scan_iter(match=ctx.prefix + "*", count=1000):
        cid = key[len(ctx.prefix):]
        features = {}
        for name, text in ctx.redis.hgetall(key).items():
            if name not in h.FEATURES:
                problems.append(f"{key}: field {name!r} is not a model feature")
                continue
            try:
                features[name] = np.float32(float(text))
            except ValueError:
                problems.append(f"{key} {name}: {text!r} is not a number")
        state[cid] = features
    return state, problems


def stable_committed_offsets(group, topic, partitions):
    """The group's committed offsets, without waiting for a transaction left open by a killed
    member (a read_committed consumer asks for stable offsets, which the broker withholds
    until that transaction is aborted). No commit yet: the partition's start, 0."""
    c = Consumer({"bootstrap.servers": h.BOOTSTRAP, "group.id": group,
                  "enable.auto.commit": False, "isolation.level": "read_uncommitted"})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: max(tp.offset, 0) for tp in tps}
    finally:
        c.close()


def read_uncommitted(topic, timeout=20.0):
    """Every record of topic, aborted transactions' included: [(partition, offset, value)]."""
    c = Consumer({"bootstrap.servers": h.BOOTSTRAP, "group.id": f"it-uncommitted-{topic}",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": "read_uncommitted"})
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                 for p in parts}
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        out, eof = [], {}
        deadline = time.monotonic() + timeout
        while not all(eof.get(p, -1) >= highs[p] for p in parts):
            assert time.monotonic() < deadline, \
                f"could not read {topic} to its end {highs} (read_uncommitted) in {timeout}s"
            for msg in c.consume(500, 0.2):
                if msg.error() is not None:
                    assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                    eof[msg.partition()] = msg.offset()
                else:
                    out.append((msg.partition(), msg.offset(), msg.value()))
        return out
    finally:
        c.close()


def changelog_config(admin, topic):
    """(partition count, {config name: value}) of a topic."""
    partitions = len(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([res])[res].result(15)
    return partitions, {name: e.value for name, e in entries.items()}


def changelog_problems(topic, final, partition_of):
    """Differences between the last committed changelog record of every customer and its
    reference vector: key = customer id, value = JSON {feature: value in Redis' text form}
    (docs/state.md), on the customer's input partition."""
    records, undecodable = h.read_all(topic, decode="json")
    problems = [f"undecodable changelog records: {undecodable[:3]}"] if undecodable else []
    last = {}
    for r in sorted(records, key=lambda r: (r["_partition"], r["_offset"])):
        cid = (r["_key"] or b"").decode("utf-8", "replace")
        if partition_of.get(cid) != r["_partition"]:
            problems.append(f"changelog record of {cid!r} on partition {r['_partition']} "
                            f"(its events are on {partition_of.get(cid)})")
        vec = {}
        for name, value in r.items():
            if name.startswith("_"):
                continue
            number = None
            if isinstance(value, str):
                try:
                    number = np.float32(float(value))
                except ValueError:
                    pass
            if name not in h.FEATURES or number is None:
                problems.append(f"changelog {cid} @ {r['_partition']}/{r['_offset']}: "
                                f"{name}={value!r} is not a model feature in Redis' text form")
                continue
            vec[name] = number
        last[cid] = vec
    for cid, want in final.items():
        if not want:
            continue  # a customer whose events carried nothing changes nothing
        got = last.get(cid)
        if got is None:
            problems.append(f"no changelog record for {cid} (reference {shown(want)})")
        elif got != want:
            problems.append(f"changelog {cid}: last record {shown(got)} != reference "
                            f"{shown(want)}")
    return problems


def restored_records(port):
    """streamscore_state_restored_records_total, summed over its labels."""
    status, body = h.http_get(port, "/metrics")
    assert status == 200, f"/metrics: {status} {body[:200]}"
    return sum(v for (name, _), v in h.parse_metrics(body).items()
               if name == "streamscore_state_restored_records_total")


# --------------------------------------------------------------------------- the test


@pytest.mark.partitions(PARTITIONS)
@pytest.mark.parametrize("failpoint,hit,flush_ms,commit_ms", CASES,
                         ids=[f"{c[0]}-txn{c[3]}ms" for c in CASES])
def test_a_worker_killed_at_a_failpoint_and_restarted_applies_every_feature_update_once(
        ctx, failpoint, hit, flush_ms, commit_ms):
    rng = np.random.default_rng(zlib.crc32(failpoint.encode()))
    customers = [f"cust-{ctx.uid}-{i:04d}" for i in range(N_CUSTOMERS)]
    events = h.random_events(rng, customers, N_EVENTS)
    placed = h.produce(ctx.input_topic, events,
                       lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
    expected, final = h.expected_predictions(events, placed, h.PRIMARY_MODEL)
    partition_events = by_partition(events, placed)
    partition_of = {ev["customer_id"]: p for ev, (p, _) in zip(events, placed)}

    changelog = f"{ctx.group}-features-changelog"
    checkpoint_key = f"streamscore:changelog:{changelog}"
    # Small batches; a short session timeout, so the killed member leaves the group quickly.
    props = ctx.props({"delivery": "exactly-once", "state.mode": "owned",
                       "state.flush.interval.ms": flush_ms, "batch.max.messages": BATCH,
                       "delivery.commit.interval.ms": commit_ms,
                       "kafka.consumer.session.timeout.ms": 6000})
    reader = None
    try:
        # 1. The failpoint worker runs until the point is reached for the hit-th time.
        w1 = start_failpoint_worker(ctx, props, f"{failpoint}:{hit}")
        rc = wait_exit(w1, 90)
        log = w1.log_path.read_text(encoding="utf-8", errors="replace")
        assert rc == FAILPOINT_EXIT, \
            f"failpoint worker exited {rc}, expected {FAILPOINT_EXIT}" + w1.describe()
        assert f"failpoint {failpoint} hit" in log, \
            f"no `failpoint {failpoint} hit` in the worker's output" + w1.describe()

        # 2. What the crash left: committed offsets mid-stream, and Redis at a batch boundary
        #    no later than them (no feature of an uncommitted or aborted batch).
        ends = h.end_offsets(ctx.input_topic)
        committed = stable_committed_offsets(ctx.group, ctx.input_topic, sorted(ends))
        n_committed = sum(committed.values())
        assert 0 < n_committed < N_EVENTS, \
            f"committed offsets {committed} of {ends}: the kill was not mid-stream"
        stored, stored_problems = redis_state(ctx)
        assert not stored_problems, f"Redis after the kill: {stored_problems[:10]}"
        strays = sorted(set(stored) - set(partition_of))
        assert not strays, f"Redis holds customers no event named: {strays[:5]}"
        lag = {}
        for p, evs in sorted(partition_events.items()):
            cuts = consistent_cuts(evs, {c: v for c, v in stored.items()
                                         if partition_of[c] == p})
            within = [o for o in cuts if o <= committed[p]]
            if not within:
                ref = reference_state_before(evs, committed[p])
                diffs = [f"{c}: Redis {shown(stored.get(c, {}))} != reference "
                         f"{shown(ref.get(c, {}))}"
                         for c in sorted({ev['customer_id'] for _, ev in evs})
                         if stored.get(c, {}) != ref.get(c, {})]
                raise AssertionError(
                    f"after the {failpoint} kill, Redis holds for partition {p} no merged state "
                    f"of its events up to any offset <= the committed {committed[p]} "
                    f"(matching offsets: {cuts[:5]}); {len(diffs)} customers differ from the "
                    f"state at the committed offset: {diffs[:5]}")
            lag[p] = committed[p] - within[-1]

        partitions, config = changelog_config(ctx.admin, changelog)
        assert partitions == PARTITIONS, \
            f"{changelog} has {partitions} partitions, the input {PARTITIONS}"
        assert config.get("cleanup.policy") == "compact", \
            f"{changelog} cleanup.policy={config.get('cleanup.policy')!r}, expected compact"

        # 3. A normal worker runs to the end of the stream and stops cleanly.
        port = h.free_port()
        reader = h.TopicReader(ctx.output_topic)  # read_committed (librdkafka's default)
        w2 = ctx.start_worker({**props, "metrics.listen": f"127.0.0.1:{port}"})
        wanted = set(placed)
        reader.wait_until(lambda recs: wanted <= set(h.index_by_source(recs)), timeout=120,
                          worker=w2, what="committed predictions (every input offset)")
        restored = restored_records(port)
        w2.stop()
        reader.drain()

        summary = (f"{failpoint}:{hit} (flush {flush_ms} ms): committed {n_committed} of "
                   f"{N_EVENTS} at the kill {committed}, Redis behind them by {lag}; "
                   f"{len(reader.records)} committed predictions; {restored:.0f} changelog "
                   "records restored by the second worker")
        print(summary)

        # 4. One read_committed prediction per input offset, scored on the reference vector.
        assert not reader.undecodable, f"undecodable predictions: {reader.undecodable[:3]}"
        by_source = h.index_by_source(reader.records)
        duplicates = {k: len(v) for k, v in by_source.items() if len(v) > 1}
        missing = sorted(wanted - set(by_source))
        unknown = sorted(set(by_source) - wanted)
        assert not missing and not duplicates and not unknown, \
            (f"{summary}; {len(duplicates)} offsets predicted more than once "
             f"{sorted(duplicates.items())[:5]}, {len(missing)} missing {missing[:5]}, "
             f"{len(unknown)} not in the input {unknown[:5]}")
        first, n_bad = h.score_mismatches(reader.records, expected)
        assert n_bad == 0, \
            f"{summary}; {n_bad} predictions differ from the reference: {first}"

        # 5. Every input offset committed.
        committed_end = h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends))
        assert committed_end == ends, \
            f"committed offsets {committed_end} != end offsets {ends}"

        # 6. The final Redis state and the changelog: the reference merged vectors.
        stored, stored_problems = redis_state(ctx)
        problems = list(stored_problems)
        for cid in sorted(set(final) | set(stored)):
            want, got = final.get(cid, {}), stored.get(cid, {})
            if got != want:
                problems.append(f"{ctx.redis_key(cid)}: Redis {shown(got)} != reference "
                                f"{shown(want)} (partition {partition_of.get(cid)})")
        assert not problems, \
            f"{summary}; {len(problems)} customers' Redis state wrong: {problems[:8]}"
        problems = changelog_problems(changelog, final, partition_of)
        assert not problems, \
            f"{summary}; {len(problems)} changelog problems: {problems[:8]}"

        # 7. The failpoints that leave committed updates outside Redis, or an aborted
        #    transaction in the logs: show that the test met them.
        if failpoint in ("eos.after-commit", "state.during-flush"):
            assert restored > 0, \
                (f"{summary}: the second worker restored nothing from the changelog, though "
                 "the killed one committed a batch whose Redis write never happened")
        if failpoint == "eos.before-commit":
            raw = read_uncommitted(ctx.output_topic)
            sources = {}
            for _, _, value in raw:
                pred = h.decode_prediction(value)
                key = (pred["source_partition"], pred["source_offset"])
                sources[key] = sources.get(key, 0) + 1
            aborted = sorted(k for k, n in sources.items() if n > 1)
            assert aborted, \
                (f"{summary}: the output topic holds no aborted prediction, so the batch "
                 "killed before its commit had produced nothing")
            assert all(k[1] >= committed[k[0]] for k in aborted), \
                (f"predictions written twice for offsets below the committed ones at the "
                 f"kill {committed}: {aborted[:5]}")
    finally:
        if reader is not None:
            reader.close()
        for w in ctx.workers:
            w.kill()
        try:
            ctx.redis.delete(checkpoint_key)
        except Exception:  # noqa: BLE001 - best effort
            pass
        try:
            for f in ctx.admin.delete_topics([changelog], operation_timeout=10).values():
                f.result(15)
        except Exception:  # noqa: BLE001 - best effort (absent if no worker created it)
            pass
