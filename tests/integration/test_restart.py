"""A worker stopped mid-stream and started again with the same group loses nothing, and a
run with nothing new to read produces nothing (its offsets were committed)."""

import numpy as np

import harness as h

N_FIRST = 3000
N_SECOND = 1000
QUIET_S = 3.0


def test_restart_with_same_group_loses_no_event_and_rereads_nothing_committed(ctx):
    rng = np.random.default_rng(606)
    customers = [f"cust-{ctx.uid}-{i:04d}" for i in range(250)]
    events = h.random_events(rng, customers, N_FIRST + N_SECOND)

    def encode(ev):
        return h.encode_avro(h.EVENT_SCHEMA_PATH, ev)

    placed = h.produce(ctx.input_topic, events[:N_FIRST], encode)
    # Small batches, so the first run is still busy when it is stopped.
    props = ctx.props({"batch.max.messages": 10, "batch.max.wait.ms": 5})
    reader = h.TopicReader(ctx.output_topic)
    try:
        # Run 1: stopped once at least a third of the predictions are out.
        w1 = ctx.start_worker(props)
        reader.wait_for(N_FIRST // 3, timeout=60, worker=w1, what="predictions")
        w1.stop()
        reader.drain()
        after_first = len(reader.records)
        print(f"run 1 produced {after_first} of {N_FIRST} predictions before SIGTERM")

        # Run 2: more events, same group: every input offset must end up covered.
        placed += h.produce(ctx.input_topic, events[N_FIRST:], encode)
        w2 = ctx.start_worker(props)
        wanted = set(placed)
        reader.wait_until(lambda recs: wanted <= set(h.index_by_source(recs)), timeout=60,
                          worker=w2, what="predictions (waiting for every input offset)")
        w2.stop()
        reader.drain()

        by_source = h.index_by_source(reader.records)
        missing = sorted(set(placed) - set(by_source))
        unknown = sorted(set(by_source) - set(placed))
        duplicates = sum(len(v) - 1 for v in by_source.values())
        report = (f"{len(placed)} events, {len(reader.records)} predictions, run 1 stopped "
                  f"after {after_first}, {duplicates} duplicates, {len(missing)} missing "
                  f"{missing[:5]}, {len(unknown)} unknown {unknown[:5]}")
        print(report)
        assert not missing and not unknown, report
        ends = h.end_offsets(ctx.input_topic)
        committed = h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends))
        assert committed == ends, f"committed offsets {committed} != end offsets {ends}; " + report

        # Run 3: nothing new to read, so nothing new comes out.
        before = len(reader.records)
        w3 = ctx.start_worker(props)
        h.wait_group_assigned(ctx.admin, ctx.group, ctx.input_topic, len(ends), worker=w3)
        reader.poll_for(QUIET_S, worker=w3)
        w3.stop()
        reader.drain()
        new = reader.records[before:]
        assert len(new) == 0, (f"a run with nothing new produced {len(new)} predictions, e.g. for "
                         f"{[(r['source_partition'], r['source_offset']) for r in new[:5]]}")
    finally:
        reader.close()
