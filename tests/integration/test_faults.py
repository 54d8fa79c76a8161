"""Faults under a running worker, on a three-node Kafka cluster (replication factor 3,
min.insync.replicas 2): a broker crash, the output topic unavailable, the worker killed
mid-batch, a second worker joining and leaving the group, Redis going away under both
redis.on.error policies, and exactly-once across a worker kill and a broker crash.

Each test streams events (one malformed record in every 40) into the worker at a steady rate,
applies its fault mid-stream, recovers, and then accounts for every input offset: it must
have a prediction (events) or a dead letter (malformed records), duplicates are counted,
and no sample of the group's committed offsets may run ahead of the outputs. Each test adds
its row to the reliability report (docs/reliability.md).

Run with the three-node cluster: ctest -R integration.faults, or make reliability."""

import time

import pytest

import faults
import harness as h

pytestmark = [pytest.mark.faults, pytest.mark.partitions(6)]

N = 4000  # records per scenario
RATE = 250.0  # records per second: the stream lasts 16 s
OUTAGE_S = 8.0
BATCH = 50


# A worker killed with SIGKILL stays in the group until its session times out (45 s by
# default): the tests that kill one shorten it so that the restarted worker gets going.
QUICK_SESSION = {"kafka.consumer.session.timeout.ms": 6000,
                 "kafka.consumer.heartbeat.interval.ms": 1000}


def _props(ctx, extra=None):
    p = ctx.props({"worker.threads": 2, "batch.max.messages": BATCH})
    p.update(extra or {})
    return p


class Scenario:
    """The stream, the commit monitor and the workers of one fault test."""

    def __init__(self, ctx, seed, output_topic=None, name="", fault="", delivery="at-least-once"):
        self.ctx = ctx
        self.name, self.fault, self.delivery = name, fault, delivery
        self.output_topic = output_topic or ctx.output_topic
        self.stream = faults.Stream(ctx.input_topic, N, RATE, seed)
        self.monitor = faults.CommitMonitor(ctx.group, ctx.input_topic, self.output_topic,
                                            ctx.dlq_topic, range(ctx.partitions))
        self.timeline = []
        self.t0 = None

    def start(self):
        self.t0 = time.monotonic()
        self.stream.start()
        self.monitor.start()

    def mark(self, what):
        self.timeline.append(f"{what} at {time.monotonic() - self.t0:.1f} s")

    def at_fraction(self, fraction):
        self.stream.wait_sent(int(N * fraction))

    def outage(self, what, down, up):
        """A third into the stream: down(), OUTAGE_S seconds, up()."""
        self.at_fraction(1 / 3)
        down()
        self.mark(f"{what} down")
        time.sleep(OUTAGE_S)
        up()
        self.mark(f"{what} back")

    def finish(self, worker, others=(), timeout=120.0):
        """Wait until every input offset has an output, stop the workers (exit 0), read
        everything back and account for it."""
        placed = self.stream.join_all()
        self.mark("input complete")
        preds = h.TopicReader(self.output_topic)
        dlq = h.TopicReader(self.ctx.dlq_topic, decode=None)
        try:
            deadline = time.monotonic() + timeout
            while True:
                covered = {(r["source_partition"], r["source_offset"]) for r in preds.records}
                covered |= {faults._source_of_dead_letter(r) for r in dlq.records}
                if covered >= set(placed):
                    break
                if not worker.alive():
                    raise AssertionError(f"worker exited (code {worker.proc.returncode}) with "
                                         f"{len(set(placed) - covered)} offsets uncovered"
                                         + worker.describe())
                assert time.monotonic() < deadline, (
                    f"{len(set(placed) - covered)} of {len(placed)} input offsets still without "
                    f"output {timeout:.0f}s after the input was complete" + worker.describe())
                preds._poll_once(0.2)
                dlq._poll_once(0.05)
            self.mark("every input offset has an output")
            for w in (worker, *others):
                w.stop()
            preds.drain()
            dlq.drain()
        finally:
            preds.close()
            dlq.close()
            self.monitor.stop()
        assert not preds.undecodable, f"undecodable predictions: {preds.undecodable[:3]}"
        ends = h.end_offsets(self.ctx.input_topic)
        committed = h.committed_offsets(self.ctx.group, self.ctx.input_topic, sorted(ends))
        assert committed == ends, f"committed offsets {committed} != end offsets {ends}"
        acc = faults.account(placed, preds.records, dlq.records, self.monitor.samples)
        acc["failed_samples"] = self.monitor.failed_samples
        acc["last_sample_error"] = self.monitor.last_error
        acc["degraded"] = sum(1 for r in preds.records if r.get("degraded"))
        acc["kafka_warnings"] = sum(1 for w in (worker, *others) for line in w.log_lines()
                                    if line.get("level") in ("warn", "error"))
        print(f"{self.name}: {acc}; {', '.join(self.timeline)}")
        faults.assert_nothing_lost(acc)
        return acc

    def close(self):
        self.stream.abort.set()
        if self.stream.is_alive():
            self.stream.join(30)
        if self.monitor.is_alive():
            self.monitor.stop()

    def row(self, acc, detail, observed=""):
        timeline = "; ".join(self.timeline)
        if acc["failed_samples"]:
            observed += (f"; {acc['failed_samples']} commit samples skipped (offsets or end "
                         "offsets unreadable during the fault)")
        return {"scenario": self.name, "fault": self.fault, "delivery": self.delivery,
                "account": acc, "detail": detail,
                "observed": f"{observed}{'; ' if observed else ''}{timeline}."}


@pytest.fixture
def scenario(ctx):
    """Makes the test's Scenario; its stream and monitor are stopped however the test ends."""
    made = []

    def make(*args, **kwargs):
        made.append(Scenario(ctx, *args, **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_broker_crash_and_restart_mid_stream_loses_nothing(
        ctx, scenario, brokers, reliability):
    s = scenario(7101, name="Broker crash", fault="group coordinator SIGKILLed, "
                 f"restarted {OUTAGE_S:.0f} s later")
    node = brokers.group_coordinator(ctx.group)
    w = ctx.start_worker(_props(ctx))
    s.start()
    s.outage(f"broker {node} (killed)", lambda: brokers.kill(node), lambda: brokers.start(node))
    acc = s.finish(w)
    reliability.append(s.row(acc, (
        "one worker (2 threads) consuming 6 partitions; a third into the stream the broker "
        "that coordinates the worker's group (and leads a third of the partitions) is killed "
        "with SIGKILL: the group fails over to a new coordinator, partition leadership moves "
        "to the surviving replicas, and acks=all writes go on with two in-sync replicas. The "
        "broker is started again and catches up."),
        f"{acc['duplicates']} duplicates, {acc['kafka_warnings']} warnings logged by the worker"))


def test_output_topic_unavailable_for_a_while_loses_nothing(
        ctx, scenario, brokers, reliability):
    coordinator = brokers.group_coordinator(ctx.group)
    node = next(n for n in (3, 2, 1) if n != coordinator)
    out = f"{ctx.output_topic}-on-{node}"
    ctx.add_topics(out, replicas=[[node]] * ctx.partitions)
    s = scenario(7102, output_topic=out, name="Output topic unavailable",
                 fault=f"output topic's only broker stopped for {OUTAGE_S:.0f} s")
    w = ctx.start_worker(_props(ctx, {"output.topic": out}))
    s.start()
    s.outage(f"broker {node} (every output partition)", lambda: brokers.stop(node),
             lambda: brokers.start(node))
    acc = s.finish(w)
    reliability.append(s.row(acc, (
        "the output topic has a single replica, on a broker that is not the group's "
        "coordinator; that broker is shut down a third into the stream, so no output "
        "partition has a leader. The worker's deliveries wait (the producer retries until "
        "kafka.producer.message.timeout.ms, 300 s by default), no offset is stored meanwhile, "
        "and the batch completes when the broker is back."),
        f"{acc['duplicates']} duplicates"))


def test_worker_killed_mid_batch_and_restarted_loses_nothing(
        ctx, scenario, brokers, reliability):
    s = scenario(7103, name="Worker SIGKILL", fault="worker SIGKILLed mid-batch, "
                 "restarted 2 s later")
    w1 = ctx.start_worker(_props(ctx, QUICK_SESSION))
    s.start()
    s.at_fraction(1 / 3)
    w1.kill()
    s.mark("worker killed")
    time.sleep(2)
    w2 = ctx.start_worker(_props(ctx, QUICK_SESSION))
    s.mark("second run started")
    acc = s.finish(w2)
    assert acc["commit_samples"] > 0
    reliability.append(s.row(acc, (
        "the worker is killed with SIGKILL a third into the stream, in the middle of a batch "
        "(50 records, 2 threads), and started again with the same group. Records whose "
        "outputs were written but whose offsets were not yet committed (auto-commit of stored "
        "offsets every second) are scored again: those are the duplicates."),
        f"{acc['duplicates']} duplicates ({acc['duplicated_offsets']} input offsets)"))


def test_second_worker_joining_and_leaving_hands_partitions_over_at_committed_offsets(
        ctx, scenario, brokers, reliability):
    s = scenario(7104, name="Rebalance", fault="second worker joins, then leaves "
                 "(SIGTERM)")
    # Offsets are committed at hand-overs and at shutdown only: a revoked partition's
    # offsets not committed at the hand-over would make its next owner re-read it all.
    props = _props(ctx, {"kafka.consumer.auto.commit.interval.ms": 600000})
    w1 = ctx.start_worker(props)
    s.start()
    s.at_fraction(1 / 4)
    w2 = ctx.start_worker(props)
    s.mark("second worker started")
    s.at_fraction(2 / 3)
    moved = sum(1 for line in w2.log_lines() if line.get("msg", "").startswith(
        "consumer: assigned"))
    w2.stop()
    s.mark("second worker stopped")
    acc = s.finish(w1)
    assert moved > 0, "the second worker never got a partition" + w2.describe()
    revoked = [line for line in w1.log_lines()
               if line.get("msg", "").startswith("consumer: revoked")]
    assert revoked, "the first worker never handed a partition over" + w1.describe()
    # Each hand-over may repeat at most the batch in flight on the moving partitions.
    bound = 2 * BATCH * 2
    assert acc["duplicates"] <= bound, (
        f"{acc['duplicates']} duplicates across two graceful rebalances (bound {bound}): "
        f"revoked partitions were not handed over at their committed offsets")
    reliability.append(s.row(acc, (
        "one worker (2 threads) consumes 6 partitions; a quarter into the stream a second "
        "worker (2 threads) joins the group and cooperative-sticky rebalancing moves "
        "partitions to it; two thirds in, it is stopped with SIGTERM and its partitions move "
        "back. Periodic auto-commit is off (interval 600 s) so that only the commits made "
        "when partitions are revoked hand them over: the test fails if a hand-over repeats "
        f"more than {bound} records."),
        f"{acc['duplicates']} duplicates, {len(revoked)} revocations in the first worker"))


@pytest.mark.parametrize("policy", ["block", "degrade"])
def test_redis_stopped_and_restarted_mid_stream_loses_nothing(
        ctx, scenario, brokers, redis_outage, reliability, policy):
    s = scenario(7105 if policy == "block" else 7106, name=f"Redis restart ({policy})",
                 fault=f"Redis stopped for {OUTAGE_S:.0f} s, redis.on.error = {policy}")
    w = ctx.start_worker(_props(ctx, {"redis.on.error": policy}))
    s.start()
    s.outage("Redis", redis_outage.stop, redis_outage.start)
    acc = s.finish(w)
    if policy == "block":
        assert acc["degraded"] == 0, f"{acc['degraded']} degraded predictions under block"
        detail = ("Redis is stopped a third into the stream and started again (empty) "
                  f"{OUTAGE_S:.0f} s later. Under block the worker holds the batch, retries "
                  "with backoff, and goes on when Redis answers: nothing is degraded.")
    else:
        assert acc["degraded"] > 0, "no degraded prediction while Redis was down"
        assert acc["degraded"] < acc["predictions_out"], "every prediction degraded"
        detail = ("as above, under degrade: while Redis is away the worker scores the "
                  "customers its threads hold with their known features (state.mode = owned, "
                  "docs/state.md), and a customer new to it with its event's own features, "
                  "marking that prediction degraded; the writes it could not make are given "
                  "up.")
    reliability.append(s.row(acc, detail, f"{acc['degraded']} degraded predictions, "
                                          f"{acc['duplicates']} duplicates"))


def test_exactly_once_across_worker_kill_and_broker_crash_one_prediction_per_event(
        ctx, scenario, brokers, reliability):
    txn_id = f"{ctx.group}-txn"
    s = scenario(7107, name="Exactly-once: worker kill + broker crash",
                 fault="worker SIGKILLed and transaction coordinator SIGKILLed together",
                 delivery="exactly-once")
    props = _props(ctx, {"delivery": "exactly-once", "delivery.transactional.id": txn_id,
                         **QUICK_SESSION})
    w1 = ctx.start_worker(props)
    s.start()
    s.at_fraction(1 / 3)
    node = brokers.transaction_coordinator(f"{txn_id}-0")
    w1.kill()
    brokers.kill(node)
    s.mark(f"worker and broker {node} killed")
    w2 = ctx.start_worker(props)
    s.mark("second run started")
    time.sleep(OUTAGE_S)
    brokers.start(node)
    s.mark(f"broker {node} back")
    acc = s.finish(w2)
    assert acc["duplicates"] == 0, f"read_committed saw {acc['duplicates']} duplicates: {acc}"
    reliability.append(s.row(acc, (
        "delivery = exactly-once. A third into the stream the worker is killed with SIGKILL "
        "and, at the same moment, the broker that coordinates its first thread's "
        "transactions is killed too; the worker is restarted at once with the same "
        "transactional ids (fencing the dead instance and aborting its open transactions) "
        f"while that broker is down, and the broker returns {OUTAGE_S:.0f} s later. Outputs "
        "are read with isolation.level=read_committed: the test fails on any duplicate."),
        "read_committed: one output per input offset"))
