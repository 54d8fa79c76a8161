"""Fixtures of the streamscore integration tests: a real Kafka (KRaft) and Redis started with
scripts/dev-stack on test-only ports, and per-test isolation (own topics, consumer group and
Redis key prefix). The stack is always taken down at the end, whatever happened."""

import atexit
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis as redis_lib
from confluent_kafka.admin import AdminClient, NewTopic

import bad_inputs
import faults
import harness as h

STACK_DIR = h.STACK_DIR
DEV_STACK = h.ROOT / "scripts" / "dev-stack"
# per test (the fault tests, each a stream under a fault, get more: SS_IT_TEST_TIMEOUT)
TEST_TIMEOUT_S = float(os.environ.get("SS_IT_TEST_TIMEOUT", "150"))

# Named parts of the suite: SS_IT_SUBSET=<name> runs only the tests listed (a file, or a
# file::test), the others are deselected; a listed test that no longer exists is an error.
# tsan (make test-tsan): the daemon's threads under ThreadSanitizer, with
# SS_IT_WORKER_THREADS=2 (harness.py) so that two worker threads share the model, the codec's
# writer schemas, the producer and the metrics. (Not test_redis_failure's tests: each worker
# thread has a Redis connection and a reconnect backoff of its own, and they count on one.)
SUBSETS = {
    "tsan": [
        # the run loop end to end: consume, decode, Redis, score, produce, commit
        "test_predictions.py::test_scores_and_feature_hashes_match_python_xgboost_on_merged_vectors",
        # a reload while both worker threads score; a refused one; SIGHUP
        "test_model_reload.py",
        # writer schemas fetched by the worker threads, one registered mid-stream, unknown ids
        "test_registry.py::test_registry_serialized_events_are_scored_and_predictions_read_with_the_registry_deserializer",
        "test_registry.py::test_a_schema_evolved_and_registered_mid_stream_is_picked_up",
        "test_registry.py::test_unknown_schema_id_is_dead_lettered_with_the_reason_and_the_rest_scored",
        # the registry stopped and started while the worker threads need schemas
        "test_registry.py::test_registry_stopped_mid_stream_loses_nothing",
        # transactions: begin, send offsets, commit, a SIGKILL mid-stream, an abort and its
        # rewind (not the rewind with nothing committed: with two threads a rebalance can move
        # partitions to an owner that starts at latest, which that test counts out)
        "test_exactly_once.py::test_exactly_once_survives_sigkill_with_one_prediction_per_event_for_read_committed",
        "test_exactly_once.py::test_an_aborted_transaction_is_read_again_and_a_rewind_that_fails_stops_the_worker",
        # the HTTP thread reading what the worker threads count
        "test_metrics.py::test_metrics_count_every_record_by_fate_and_show_lag_and_model",
        # the drift statistics both worker threads add to
        "test_drift.py",
        # a shadow beside the primary; the shadow results file both worker threads write
        "test_shadow.py::test_shadow_scores_the_candidate_beside_the_primary_and_never_writes_redis_or_output",
        "test_shadow.py::test_shadow_file_output_writes_one_json_line_per_event_and_nothing_to_kafka",
        # both worker threads' Redis pipelines; a restart: partitions revoked and assigned
        "test_feature_cache.py",
        # the state flushed and dropped inside the rebalance callback; a shadow's own state
        "test_state.py::test_a_second_worker_joining_mid_stream_scores_moved_customers_from_the_first_ones_features",
        "test_state.py::test_the_shadow_merges_its_own_state_never_writes_redis_and_sees_the_primarys_vectors",
        # exactly-once transactions spanning batches, the changelog and its replay
        "test_state_eos.py::test_a_worker_killed_at_a_failpoint_and_restarted_applies_every_feature_update_once[eos.after-commit-txn3ms]",
        "test_restart.py",
        # a rollout: the plan both worker threads take per batch, their gate tallies and the
        # recent predictions, the main thread following the control topic and judging, the
        # HTTP thread rendering the figures
        "test_rollout.py::test_a_bad_candidate_is_rolled_back_by_the_gate_it_trips_and_then_serves_nothing[scores_far_from_live]",
        "test_rollout_labels.py::test_the_roc_auc_gate_rolls_back_a_candidate_that_ranks_worse_than_the_live_model[live]",
        # explanations: both worker threads asking the shared booster for contributions beside
        # its in-place predictions, the explained predictions to a side topic too; categories
        # read by name, an unseen one dead-lettered
        "test_explain.py::test_the_top_k_contributions_are_xgboosts_largest_shap_values[multi_softprob]",
        "test_explain.py::test_explain_topic_gets_the_explained_predictions_and_the_output_topic_none",
        "test_categorical.py::test_a_category_is_mapped_by_name_and_an_unseen_one_follows_features_unseen_category[string-dead_letter]",
        # dead letters sent by the worker threads through the shared producer
        "test_dead_letter.py::test_confluent_framing_bad_records_go_to_the_dead_letter_topic_and_good_ones_are_scored",
        # score-file's threads scoring one chunk while the main thread reads and writes the
        # others; a replay beside librdkafka's threads, its transactions and progress
        "test_score_file.py::test_one_and_two_threads_write_the_same_json_lines_but_scored_at",
        "test_replay.py::test_a_replay_scores_as_the_live_worker_did_from_an_empty_redis",
        # the score API's pool of threads (each with its Redis connection and predictor)
        # scoring with the plan and the shared booster while both worker threads stream
        "test_score_api.py::test_a_customer_is_scored_on_its_merged_features_as_its_last_prediction_was",
    ],
}


def pytest_collection_modifyitems(config, items):
    name = os.environ.get("SS_IT_SUBSET")
    if not name:
        return
    if name not in SUBSETS:
        raise pytest.UsageError(f"SS_IT_SUBSET={name}: no such subset (have {sorted(SUBSETS)})")
    wanted = SUBSETS[name]

    def listed(item, entry):  # a file, a test, or one parameter set of a test
        return item.nodeid == entry or item.nodeid.startswith((entry + "::", entry + "["))

    # a subset may span sessions (ctest's integration and integration.models): an entry of a
    # file this session did not collect is the other's; one naming no file is a mistake
    files = {i.nodeid.split("::")[0] for i in items}
    gone = [e for e in wanted
            if not any(listed(i, e) for i in items)
            and (e.split("::")[0] in files or not (Path(__file__).parent / e.split("::")[0]).exists())]
    if gone:
        raise pytest.UsageError(f"SS_IT_SUBSET={name} lists tests not collected: {gone}")
    keep = [i for i in items if any(listed(i, e) for e in wanted)]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


def _stack_env():
    env = dict(os.environ)
    env.update({
        "STACK_DIR": str(STACK_DIR),
        "KAFKA_PORT": str(h.KAFKA_PORT),
        "KAFKA_CONTROLLER_PORT": str(h.KAFKA_CONTROLLER_PORT),
        "REDIS_PORT": str(h.REDIS_PORT),
        "KAFKA_BROKERS": str(h.KAFKA_BROKERS),
        "TOPICS": "it-stack-ready:1",
        "REGISTRY": "1" if h.REGISTRY else "0",
        "REGISTRY_PORT": str(h.REGISTRY_PORT),
        "TLS": "1" if h.TLS else "0",
        "KAFKA_SASL_PORT": str(h.KAFKA_SASL_PORT),
        "REDIS_TLS_PORT": str(h.REDIS_TLS_PORT),
    })
    return env


def _dev_stack(action, timeout, *args):
    try:
        return subprocess.run([str(DEV_STACK), action, *args], cwd=str(h.ROOT), env=_stack_env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(e.cmd, 124, e.stdout or "", f"timed out after {timeout}s")


def _port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class _Stack:
    def __init__(self):
        self.down_done = False

    def down(self):
        if self.down_done:
            return
        self.down_done = True
        r = _dev_stack("down", 120)
        if r.returncode != 0:
            print(f"dev-stack down failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")


@pytest.fixture(scope="session")
def stack():
    """Kafka (h.BOOTSTRAP: one broker, or three nodes for the fault tests) and Redis
    (h.REDIS_PORT) on loopback for the whole session; the single broker's stack also with
    its TLS listeners (tls_stack)."""
    assert DEV_STACK.exists(), f"{DEV_STACK} not found"
    s = _Stack()
    atexit.register(s.down)
    previous_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # make SIGTERM unwind like Ctrl-C, so finalizers run
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        # A previous run that crashed may have left the stack up: take it down first.
        if any(_port_open(p) for p in h.STACK_PORTS) \
                or (STACK_DIR / "").exists():
            _dev_stack("down", 120)
        busy = [p for p in h.STACK_PORTS if _port_open(p)]
        assert not busy, f"ports {busy} are in use by something dev-stack does not manage"
        r = _dev_stack("up", 240)
        assert r.returncode == 0, f"dev-stack up failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        _wait_ready()
        yield s
    finally:
        s.down()
        signal.signal(signal.SIGTERM, previous_term)


def _wait_ready(timeout=60.0):
    deadline = time.monotonic() + timeout
    last = None
    admin = AdminClient({"bootstrap.servers": h.BOOTSTRAP})
    while time.monotonic() < deadline:
        try:
            md = admin.list_topics(timeout=5)
            if len(md.brokers) >= h.KAFKA_BROKERS:
                r = redis_lib.Redis(host="127.0.0.1", port=h.REDIS_PORT, socket_timeout=2)
                r.ping()
                r.close()
                return
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.5)
    raise AssertionError(f"stack not ready within {timeout}s: {last!r}")


@dataclasses.dataclass(frozen=True)
class TlsStack:
    """What the stack's TLS listeners need (scripts/dev-stack TLS=1, files in STACK_DIR/tls)."""

    dir: Path
    ca_file: Path  # the private CA that signed the servers' certificate (and the client's)
    client_cert: Path
    client_key: Path
    kafka_sasl_port: int  # SASL_SSL, SCRAM-SHA-512
    kafka_user: str
    kafka_password: str
    redis_tls_port: int
    redis_user: str  # ACL user: every key, every command
    redis_password: str
    reader_user: str  # ACL user: read commands only
    reader_password: str


@pytest.fixture(scope="session")
def tls_stack(stack):
    """The session stack's TLS side: Kafka's SASL_SSL listener and Redis's TLS port with its
    ACL users (the single-broker stack only)."""
    if not h.TLS:
        pytest.fail("this test needs the single-broker stack, which runs with TLS "
                    f"(this session has SS_IT_KAFKA_BROKERS={h.KAFKA_BROKERS})")
    d = STACK_DIR / "tls"

    def password(name):
        return (d / name).read_text(encoding="utf-8").strip()

    return TlsStack(dir=d, ca_file=d / "ca.crt", client_cert=d / "client.crt",
                    client_key=d / "client.key", kafka_sasl_port=h.KAFKA_SASL_PORT,
                    kafka_user="streamscore",
                    kafka_password=password("kafka-streamscore.password"),
                    redis_tls_port=h.REDIS_TLS_PORT, redis_user="streamscore",
                    redis_password=password("redis-streamscore.password"),
                    reader_user="reader", reader_password=password("redis-reader.password"))


@pytest.fixture
def admin(stack):
    # One client per test: librdkafka's admin client can abort the process on a late answer
    # to a request that timed out while a broker was down (librdkafka issue 4605), so no
    # client outlives the fault of the test that used it.
    # librdkafka's own log lines go to a Python logger (pytest shows them with a failure).
    return AdminClient({"bootstrap.servers": h.BOOTSTRAP,
                        "logger": logging.getLogger("streamscore.it.admin")})


@pytest.fixture(scope="session")
def redis_client(stack):
    r = redis_lib.Redis(host="127.0.0.1", port=h.REDIS_PORT, socket_timeout=5,
                        decode_responses=True)
    yield r
    r.close()


class RedisOutage:
    """Stops and starts the stack's Redis (scripts/dev-stack stop-redis / start-redis). Redis
    keeps nothing on disk, so it comes back empty."""

    def __init__(self):
        self.down = False

    def stop(self):
        self.down = True
        r = _dev_stack("stop-redis", 60)
        assert r.returncode == 0, \
            f"dev-stack stop-redis failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        assert not _port_open(h.REDIS_PORT), \
            f"Redis still listens on {h.REDIS_PORT} after stop-redis"

    def start(self):
        r = _dev_stack("start-redis", 60)
        assert r.returncode == 0, \
            f"dev-stack start-redis failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        deadline = time.monotonic() + 30
        while True:
            try:
                c = redis_lib.Redis(host="127.0.0.1", port=h.REDIS_PORT, socket_timeout=2)
                c.ping()
                c.close()
                break
            except Exception:  # noqa: BLE001 - retried until the deadline
                assert time.monotonic() < deadline, "Redis not answering 30s after start-redis"
                time.sleep(0.2)
        self.down = False


class _Registry:
    """The stack's schema registry; stop() and start() for outage tests (a restarted
    registry is empty: its storage is in memory)."""

    url = h.REGISTRY_URL

    def stop(self):
        r = _dev_stack("stop-registry", 60)
        assert r.returncode == 0, f"dev-stack stop-registry failed:\n{r.stdout}\n{r.stderr}"

    def start(self):
        r = _dev_stack("start-registry", 180)
        assert r.returncode == 0, f"dev-stack start-registry failed:\n{r.stdout}\n{r.stderr}"


@pytest.fixture
def schema_registry(stack):
    """The schema registry of the stack (Confluent-compatible API at .url); running again
    after the test, whatever the test did to it."""
    if not h.REGISTRY:
        pytest.fail("this test needs the stack's schema registry (SS_IT_REGISTRY=1)")
    reg = _Registry()
    yield reg
    if not _port_open(h.REGISTRY_PORT):
        reg.start()


@pytest.fixture
def redis_outage(stack):
    """Lets a test stop and start Redis; Redis is always running again after the test."""
    o = RedisOutage()
    try:
        yield o
    finally:
        if o.down or not _port_open(h.REDIS_PORT):
            o.start()


class Brokers:
    """Crashes, stops and starts nodes of the three-node cluster (scripts/dev-stack
    kill-kafka / stop-kafka / start-kafka N). Node N is broker id N on h.KAFKA_PORT+N-1."""

    def __init__(self, admin):
        self.admin = admin
        self.down = set()

    def port(self, node):
        return h.KAFKA_PORT + node - 1

    def _run(self, action, node, timeout):
        r = _dev_stack(action, timeout, str(node))
        assert r.returncode == 0, \
            f"dev-stack {action} {node} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"

    def kill(self, node):
        """SIGKILL the node: a crash, no controlled shutdown."""
        self.down.add(node)
        self._run("kill-kafka", node, 60)
        assert not _port_open(self.port(node)), f"broker {node} still listening after kill"

    def stop(self, node):
        """SIGTERM the node: a controlled shutdown."""
        self.down.add(node)
        self._run("stop-kafka", node, 120)
        assert not _port_open(self.port(node)), f"broker {node} still listening after stop"

    def start(self, node):
        self._run("start-kafka", node, 180)
        self.down.discard(node)

    def leader(self, topic, partition):
        md = self.admin.list_topics(topic, timeout=10)
        return md.topics[topic].partitions[partition].leader

    def _coordinator(self, topic, key, create=None, timeout=30.0):
        """The broker leading the partition of Kafka's internal topic that holds key. Kafka
        creates these topics on first use: create() makes it happen."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.admin.list_topics(timeout=10).topics.get(topic)
            if t is not None and t.error is None and t.partitions:
                leader = t.partitions[faults.coordinator_partition(key, len(t.partitions))].leader
                if leader > 0:
                    return leader
            assert time.monotonic() < deadline, f"{topic} has no leader for {key!r}"
            if create:
                create()
            time.sleep(0.5)

    def group_coordinator(self, group):
        """The broker leading the __consumer_offsets partition of group."""
        def find_coordinator():
            try:
                self.admin.describe_consumer_groups([group])[group].result(10)
            except Exception:  # noqa: BLE001 - only its side effect is wanted
                pass
        return self._coordinator("__consumer_offsets", group, find_coordinator)

    def transaction_coordinator(self, transactional_id):
        """The broker leading the __transaction_state partition of transactional_id (the
        topic exists once a transactional producer has started)."""
        return self._coordinator("__transaction_state", transactional_id)

    def wait_in_sync(self, timeout=120.0):
        """Every node up and every replica of every partition in sync."""
        deadline = time.monotonic() + timeout
        behind = None
        while True:
            try:
                md = self.admin.list_topics(timeout=5)
                behind = [f"{t.topic}/{p.id}" for t in md.topics.values() for p in
                          t.partitions.values() if sorted(p.isrs) != sorted(p.replicas)
                          or p.leader < 0]
                if len(md.brokers) == h.KAFKA_BROKERS and not behind:
                    return
                behind = behind or [f"{len(md.brokers)} brokers"]
            except Exception as e:  # noqa: BLE001 - retried until the deadline
                behind = [repr(e)]
            assert time.monotonic() < deadline, \
                f"cluster not in sync {timeout:.0f}s after the fault: {behind[:6]}"
            time.sleep(0.5)


@pytest.fixture
def brokers(stack, admin):
    """The three-node cluster's nodes; all running and in sync before and after the test."""
    if h.KAFKA_BROKERS != 3:
        pytest.fail("the fault tests need the three-node cluster: run them with "
                    "SS_IT_KAFKA_BROKERS=3 (ctest -R integration.faults, or make reliability)")
    b = Brokers(admin)
    b.wait_in_sync()
    try:
        yield b
    finally:
        for node in sorted(b.down):
            b.start(node)
        b.wait_in_sync()


@pytest.fixture(scope="session")
def reliability():
    """Rows of the reliability report, written when the session ends."""
    rows = []
    yield rows
    faults.write_report(rows, faults.report_paths())


def create_topics(admin, names, partitions=3, timeout=30.0, replicas=None):
    """Create topics and wait until every partition has a leader."""
    """replicas: a replica assignment for every topic (a list of broker lists, one per
    partition) instead of h.KAFKA_BROKERS replicas placed by Kafka."""
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=len(replicas), replica_assignment=replicas) if replicas else
         NewTopic(n, num_partitions=partitions, replication_factor=h.KAFKA_BROKERS)
         for n in names], operation_timeout=timeout)
    for name, f in futures.items():
        f.result(timeout)
    deadline = time.monotonic() + timeout
    pending = set(futures)
    while pending:
        md = admin.list_topics(timeout=5)
        for name in list(pending):
            t = md.topics.get(name)
            if t is not None and t.error is None and t.partitions and \
                    all(p.leader >= 0 for p in t.partitions.values()):
                pending.discard(name)
        if pending:
            assert time.monotonic() < deadline, f"topics {pending} have no leader after {timeout}s"
            time.sleep(0.2)


class Ctx:
    """One test's isolated names, its config and its workers."""

    def __init__(self, node, tmp_path, admin, redis_client):
        uid = uuid.uuid4().hex[:8]
        short = node.name.replace("test_", "")[:24].replace("[", "-").replace("]", "")
        self.uid = uid
        self.tmp = tmp_path
        self.admin = admin
        self.redis = redis_client
        self.input_topic = f"it-{short}-{uid}-events"
        self.output_topic = f"it-{short}-{uid}-predictions"
        self.dlq_topic = f"{self.input_topic}.dlq"
        self.group = f"it-{short}-{uid}"
        self.prefix = f"it:{uid}:features:"
        self.shadow_topic = f"{self.output_topic}.shadow"
        self.shadow_group = f"{self.group}-shadow"
        self.workers = []
        self.extra_topics = []
        self._n_configs = 0
        marker = node.get_closest_marker("partitions")
        self.partitions = marker.args[0] if marker else 3
        create_topics(admin, [self.input_topic, self.output_topic, self.dlq_topic],
                      self.partitions)

    def add_topics(self, *names, partitions=3, replicas=None):
        """More topics for this test (deleted with the others at the end)."""
        create_topics(self.admin, list(names), partitions, replicas=replicas)
        self.extra_topics.extend(names)
        return names

    def props(self, overrides=None):
        """The worker config of this test; overrides map keys to values (None removes)."""
        p = {
            "input.topic": self.input_topic,
            "input.schema": h.EVENT_SCHEMA_PATH,
            "model.path": h.PRIMARY_MODEL,
            "output.topic": self.output_topic,
            "output.schema": h.PREDICTION_SCHEMA_PATH,
            "dlq.topic": self.dlq_topic,
            "redis.host": "127.0.0.1",
            "redis.port": h.REDIS_PORT,
            "redis.key.prefix": self.prefix,
            "redis.ttl.seconds": 3600,
            "kafka.bootstrap.servers": h.BOOTSTRAP,
            "kafka.group.id": self.group,
            "kafka.consumer.auto.offset.reset": "earliest",
            "batch.max.wait.ms": 20,
            "log.level": "info",
        }
        if h.WORKER_THREADS:
            p["worker.threads"] = h.WORKER_THREADS
        for k, v in (overrides or {}).items():
            if v is None:
                p.pop(k, None)
            else:
                p[k] = v
        return p

    def shadow_props(self, overrides=None):
        """A shadow of this test's primary: same input, candidate model, own group, results
        on self.shadow_topic (create it with add_topics)."""
        p = self.props({"mode": "shadow", "model.path": h.CANDIDATE_MODEL,
                        "kafka.group.id": self.shadow_group, "shadow.topic": self.shadow_topic})
        for k, v in (overrides or {}).items():
            if v is None:
                p.pop(k, None)
            else:
                p[k] = v
        return p

    def config(self, props):
        self._n_configs += 1
        return h.write_properties(self.tmp / f"worker-{self._n_configs}.properties", props)

    def start_worker(self, props, args=(), env=None):
        path = self.config(props)
        w = h.Worker(path, self.tmp / f"worker-{len(self.workers) + 1}.log", args=args, env=env)
        self.workers.append(w)
        return w

    def run_until(self, props, n, timeout=60.0, decode="avro", args=(), env=None):
        """Start a worker, wait for n records on the output topic, stop it (asserting exit
        code 0), then read the output topic to its end. Returns (records, undecodable)."""
        w = self.start_worker(props, args=args, env=env)
        reader = h.TopicReader(props.get("output.topic", self.output_topic), decode)
        try:
            reader.wait_for(n, timeout, worker=w, what="predictions")
            w.stop()
            reader.drain()
        finally:
            reader.close()
        return reader.records, reader.undecodable

    def dead_letters(self):
        records, _ = h.read_all(self.dlq_topic, decode=None)
        return records

    def redis_key(self, customer_id):
        return self.prefix + customer_id

    def seed(self, customer_id, features):
        """Pre-seed a customer's cached features (name -> value) in the contract format."""
        mapping = {n: h.cache_text(h.feature_value(n, v)) for n, v in features.items()}
        if mapping:
            self.redis.hset(self.redis_key(customer_id), mapping=mapping)
        return {n: h.feature_value(n, v) for n, v in features.items()}

    def cleanup(self):
        for w in self.workers:
            w.kill()
        try:
            keys = list(self.redis.scan_iter(match=self.prefix + "*", count=1000))
            if keys:
                self.redis.delete(*keys)
        except Exception:  # noqa: BLE001 - best effort
            pass
        try:
            fs = self.admin.delete_topics([self.input_topic, self.output_topic, self.dlq_topic,
                                           *self.extra_topics], operation_timeout=10)
            for f in fs.values():
                f.result(15)
        except Exception:  # noqa: BLE001 - best effort
            pass


@pytest.fixture
def ctx(request, tmp_path, admin, redis_client):
    c = Ctx(request.node, tmp_path, admin, redis_client)
    request.node.stash[_workers_key] = c.workers
    yield c
    c.cleanup()


_workers_key = pytest.StashKey[list]()


def pytest_sessionfinish(session, exitstatus):
    """The bad-inputs table, from the rows the tests recorded (bad_inputs.py)."""
    bad_inputs.write()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, w in enumerate(item.stash.get(_workers_key, []), 1):
            rep.sections.append((f"worker {i} log tail ({w.log_path})", w.log_tail(60)))


class DeadlineExceeded(Exception):
    pass


@pytest.fixture(autouse=True)
def _deadline():
    """No test can hang: a SIGALRM fails it after TEST_TIMEOUT_S seconds."""

    def on_alarm(signum, frame):
        raise DeadlineExceeded(f"test exceeded {TEST_TIMEOUT_S:.0f}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
