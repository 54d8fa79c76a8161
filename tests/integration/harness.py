"""Building blocks of the streamscore integration tests.

Everything here talks to the real Kafka broker and Redis started by conftest.py, or
computes what the worker should have produced: the event encoding, the feature merge
rule, the feature-vector hash and the reference scores from Python XGBoost.
Every wait has a deadline, so a misbehaving worker fails a test instead of hanging it.
"""

import atexit
import io
import json
import os
import signal
import struct
import subprocess
import time
import uuid
from functools import lru_cache
from pathlib import Path

import fastavro
import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

ROOT = Path(os.environ.get("STREAMSCORE_ROOT") or Path(__file__).resolve().parents[2]).resolve()
BIN = Path(os.environ.get("STREAMSCORE_BIN") or ROOT / "build" / "streamscore")
MODEL_SCORES_BIN = Path(os.environ.get("MODEL_SCORES_BIN") or ROOT / "build" / "model_scores")

# The stack of a test session (conftest.py starts it with scripts/dev-stack). The default is
# one broker; the fault-injection run (pytest -m faults, ctest integration.faults) uses a
# three-node cluster on other ports: broker N listens on KAFKA_PORT+N-1 and its controller
# on KAFKA_CONTROLLER_PORT+N-1.
KAFKA_BROKERS = int(os.environ.get("SS_IT_KAFKA_BROKERS", "1"))
KAFKA_PORT = int(os.environ.get("SS_IT_KAFKA_PORT", "22092"))
KAFKA_CONTROLLER_PORT = int(os.environ.get("SS_IT_KAFKA_CONTROLLER_PORT", "22093"))
REDIS_PORT = int(os.environ.get("SS_IT_REDIS_PORT", "22379"))
STACK_DIR = Path(os.environ.get("SS_IT_STACK_DIR") or ROOT / "build" / "test-stack")
# The schema registry (Apicurio, Confluent-compatible API) runs beside the single-broker
# stack of the main session; the fault session (three nodes) has none.
REGISTRY = os.environ.get("SS_IT_REGISTRY", "1" if KAFKA_BROKERS == 1 else "0") == "1"
REGISTRY_PORT = int(os.environ.get("SS_IT_REGISTRY_PORT", "22081"))
REGISTRY_URL = f"http://127.0.0.1:{REGISTRY_PORT}/apis/ccompat/v7"
# The single-broker stack also runs with TLS (scripts/dev-stack TLS=1): Kafka's SASL_SSL
# listener and Redis's TLS port with ACL users, beside the plain ones (conftest's tls_stack).
TLS = KAFKA_BROKERS == 1
KAFKA_SASL_PORT = int(os.environ.get("SS_IT_KAFKA_SASL_PORT", "22094"))
REDIS_TLS_PORT = int(os.environ.get("SS_IT_REDIS_TLS_PORT", "22380"))
BROKER_PORTS = [KAFKA_PORT + n for n in range(KAFKA_BROKERS)]
STACK_PORTS = (BROKER_PORTS + [KAFKA_CONTROLLER_PORT + n for n in range(KAFKA_BROKERS)]
               + [REDIS_PORT] + ([REGISTRY_PORT] if REGISTRY else [])
               + ([KAFKA_SASL_PORT, REDIS_TLS_PORT] if TLS else []))
BOOTSTRAP = ",".join(f"127.0.0.1:{port}" for port in BROKER_PORTS)

EVENT_SCHEMA_PATH = ROOT / "schemas" / "customer_event.avsc"
PREDICTION_SCHEMA_PATH = ROOT / "schemas" / "prediction.avsc"
PRIMARY_MODEL = ROOT / "models" / "churn-1.0.0.json"

# Model features, in model order (the fixed contract).
FEATURES = [
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "contract_type",
    "support_calls_30d",
    "logins_30d",
    "payment_failures_90d",
    "data_usage_gb",
    "has_autopay",
    "num_products",
    "days_since_last_login",
]
CONTRACT_TYPES = ["MONTH_TO_MONTH", "ONE_YEAR", "TWO_YEAR"]
EVENT_TYPES = ["LOGIN", "PAYMENT", "SUPPORT_CALL", "PLAN_CHANGE", "USAGE", "PROFILE_UPDATE"]
SCORE_TOL = 1e-6


# --------------------------------------------------------------------------- schemas


def _strip_logical_types(node):
    """Return a copy of a schema without logicalType, so timestamps stay plain longs."""
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


def load_schema_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@lru_cache(maxsize=None)
def _parsed(path_text):
    return fastavro.parse_schema(_strip_logical_types(load_schema_json(path_text)))


def parsed_schema(path):
    return _parsed(str(path))


def prediction_field_names():
    return [f["name"] for f in load_schema_json(PREDICTION_SCHEMA_PATH)["fields"]]


def write_evolved_schema(path, remove_field="support_calls_30d", add_field="referral_channel"):
    """Derive a writer schema from the event schema: one feature field removed, one new
    nullable field (with a default) added. Same record name, so it resolves."""
    schema = load_schema_json(EVENT_SCHEMA_PATH)
    fields = [f for f in schema["fields"] if f["name"] != remove_field]
    assert len(fields) == len(schema["fields"]) - 1, f"{remove_field} not in the event schema"
    fields.insert(5, {"name": add_field, "type": ["null", "string"], "default": None,
                      "doc": "Where the customer came from (added in a later schema version)."})
    schema["fields"] = fields
    Path(path).write_text(json.dumps(schema, indent=2), encoding="utf-8")
    return Path(path)


def encode_avro(schema_path, record):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema(schema_path), record, strict=True)
    return buf.getvalue()


def encode_confluent(schema_id, schema_path, record):
    return b"\x00" + struct.pack(">I", schema_id) + encode_avro(schema_path, record)


def record_for_schema(event, schema_path):
    """The event restricted to the fields a writer schema has (absent ones default)."""
    out = {}
    for f in load_schema_json(schema_path)["fields"]:
        if f["name"] in event:
            out[f["name"]] = event[f["name"]]
        elif "default" in f:
            out[f["name"]] = f["default"]
        else:
            raise KeyError(f"event has no value for required field {f['name']}")
    return out


def decode_prediction(value):
    return fastavro.schemaless_reader(io.BytesIO(value), parsed_schema(PREDICTION_SCHEMA_PATH))


# --------------------------------------------------------------------------- events


def make_event(customer_id, event_time, rng=None, **features):
    """One event dict matching customer_event.avsc. Features not given are null."""
    ev = {
        "event_id": str(uuid.uuid4()),
        "customer_id": customer_id,
        "event_time": int(event_time),
        "event_type": rng.choice(EVENT_TYPES) if rng is not None else "USAGE",
    }
    for name in FEATURES:
        ev[name] = features.get(name)
    unknown = set(features) - set(FEATURES)
    assert not unknown, f"not model features: {unknown}"
    return ev


def random_feature_value(rng, name):
    if name == "tenure_months":
        return int(rng.integers(0, 73))
    if name == "monthly_charges":
        return round(float(rng.uniform(18.0, 120.0)), 2)
    if name == "total_charges":
        return round(float(rng.uniform(0.0, 8700.0)), 2)
    if name == "contract_type":
        return CONTRACT_TYPES[int(rng.integers(0, 3))]
    if name == "support_calls_30d":
        return int(rng.integers(0, 12))
    if name == "logins_30d":
        return int(rng.integers(0, 60))
    if name == "payment_failures_90d":
        return int(rng.integers(0, 6))
    if name == "data_usage_gb":
        return float(rng.uniform(0.0, 150.0))
    if name == "has_autopay":
        return bool(rng.integers(0, 2))
    if name == "num_products":
        return int(rng.integers(1, 6))
    if name == "days_since_last_login":
        return int(rng.integers(0, 120))
    raise KeyError(name)


def random_features(rng, n_min=0, n_max=len(FEATURES)):
    k = int(rng.integers(n_min, n_max + 1))
    names = rng.choice(FEATURES, size=k, replace=False) if k else []
    return {str(n): random_feature_value(rng, str(n)) for n in names}


def random_events(rng, customers, n, t0=1_700_000_000_000):
    """n events over the given customers: a third carry every feature, the rest 0..4."""
    events = []
    for i in range(n):
        cid = customers[int(rng.integers(0, len(customers)))]
        if rng.random() < 0.33:
            feats = random_features(rng, len(FEATURES), len(FEATURES))
        else:
            feats = random_features(rng, 0, 4)
        events.append(make_event(cid, t0 + i * 1000, rng, **feats))
    return events


# --------------------------------------------------------------------------- features


def feature_value(name, value):
    """Event field value -> float32 model input (NaN when missing), per the contract."""
    if value is None:
        return np.float32(np.nan)
    if isinstance(value, bool):
        return np.float32(1.0 if value else 0.0)
    if name == "contract_type":
        return np.float32(CONTRACT_TYPES.index(value))
    return np.float32(value)


def event_vector(event):
    return {n: feature_value(n, event.get(n)) for n in FEATURES}


def cache_text(value):
    """A float32 as decimal text that round-trips (the Redis hash value format)."""
    return repr(float(np.float32(value)))


def simulate_merge(events_in_order, seeded=None):
    """Apply the merge rule. events_in_order must be in partition order per customer.

    Returns (vectors, final): vectors[i] is the float32 vector (list, model order) scored
    for events_in_order[i]; final[customer] is the dict of non-missing features left in
    the cache (name -> np.float32)."""
    cache = {cid: dict(v) for cid, v in (seeded or {}).items()}
    vectors = []
    for ev in events_in_order:
        cached = cache.setdefault(ev["customer_id"], {})
        for name, v in event_vector(ev).items():
            if not np.isnan(v):
                cached[name] = v
        vectors.append([cached.get(n, np.float32(np.nan)) for n in FEATURES])
    return vectors, cache


def feature_hash(vector):
    """FNV-1a 64 over little-endian float32 bytes, NaN canonicalised to 0x7fc00000."""
    bits = np.asarray(vector, dtype="<f4").view("<u4").copy()
    bits[np.isnan(np.asarray(vector, dtype=np.float32))] = 0x7FC00000
    h = 0xCBF29CE484222325
    for b in bits.astype("<u4").tobytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# --------------------------------------------------------------------------- model


@lru_cache(maxsize=None)
def _booster(path_text):
    import xgboost as xgb

    assert xgb.__version__ == "3.2.0", f"reference needs xgboost 3.2.0, have {xgb.__version__}"
    booster = xgb.Booster(model_file=path_text)
    booster.set_param({"nthread": 1})
    return booster


def booster(path):
    return _booster(str(path))


def reference_scores(model_path, vectors):
    """Python XGBoost 3.2.0 scores of float32 vectors (NaN = missing)."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.float64)
    x = np.asarray(vectors, dtype=np.float32)
    return np.asarray(booster(model_path).inplace_predict(x, missing=np.nan), dtype=np.float64)


def model_card(model_path):
    p = Path(model_path)
    card_path = p.with_name(p.name.rsplit(".", 1)[0] + ".card.json")
    with open(card_path, encoding="utf-8") as f:
        return json.load(f)


def model_infinite_above(path, feature, threshold):
    """A regression model over the worker's features: two one-split trees on `feature`, each
    leaf 0.1 below `threshold` (and for a missing value), 3e38 above it: a row above scores
    +inf (the two leaves sum past the largest float32), every other row 0.7, the start-up
    probe rows (all missing, all 0, all 1) included."""
    import xgboost as xgb

    rng = np.random.default_rng(11)
    x = rng.random((64, len(FEATURES)))
    d = xgb.DMatrix(x, label=x[:, 0] > 0.5, feature_names=list(FEATURES))
    bst = xgb.train({"objective": "reg:squarederror", "max_depth": 1, "base_score": 0.5}, d,
                    num_boost_round=2)
    bst.save_model(str(path))
    doc = json.loads(path.read_text())
    for tree in doc["learner"]["gradient_booster"]["model"]["trees"]:
        assert tree["left_children"][0] == 1 and tree["right_children"][0] == 2, tree
        tree["split_indices"][0] = FEATURES.index(feature)
        tree["split_conditions"][0] = threshold
        tree["default_left"][0] = 1
        for leaf, value in ((1, 0.1), (2, 3e38)):
            tree["split_conditions"][leaf] = value
            tree["base_weights"][leaf] = value
    path.write_text(json.dumps(doc))
    return path


# --------------------------------------------------------------------------- kafka


def produce(topic, events, encode, timeout=30.0):
    """Produce events keyed by customer id, in order (idempotent producer).

    Returns [(partition, offset)] aligned with events."""
    placed = [None] * len(events)
    errors = []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                placed[i] = (msg.partition(), msg.offset())

        return cb

    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True,
                  "linger.ms": 5, "message.timeout.ms": int(timeout * 1000)})
    for i, ev in enumerate(events):
        while True:
            try:
                p.produce(topic, key=ev["customer_id"].encode(), value=encode(ev),
                          on_delivery=on_delivery(i))
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} events not delivered to {topic} within {timeout}s"
    assert not errors, f"delivery errors producing to {topic}: {errors[:5]}"
    assert all(x is not None for x in placed)
    return placed


def produce_raw(topic, messages, timeout=30.0):
    """Produce messages as given, in order: dicts with value (bytes or None), and optionally
    key (bytes or None), headers ([(name, bytes)]) and partition. Returns [(partition, offset)]
    aligned with messages."""
    placed = [None] * len(messages)
    errors = []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                placed[i] = (msg.partition(), msg.offset())

        return cb

    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True,
                  "linger.ms": 5, "message.timeout.ms": int(timeout * 1000)})
    for i, m in enumerate(messages):
        kwargs = {"key": m.get("key"), "value": m.get("value"), "on_delivery": on_delivery(i)}
        if m.get("headers"):
            kwargs["headers"] = list(m["headers"])
        if m.get("partition") is not None:
            kwargs["partition"] = m["partition"]
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} messages not delivered to {topic} within {timeout}s"
    assert not errors, f"delivery errors producing to {topic}: {errors[:5]}"
    assert all(x is not None for x in placed)
    return placed


def in_partition_order(events, placed):
    """Events sorted by (partition, offset) with their placement."""
    order = sorted(range(len(events)), key=lambda i: placed[i])
    return [events[i] for i in order], [placed[i] for i in order]


class TopicReader:
    """Reads a topic from the beginning of every partition (no group, no commits). extra:
    more consumer properties (e.g. {"isolation.level": "read_committed"}, librdkafka's
    default, said explicitly)."""

    def __init__(self, topic, decode="avro", extra=None):
        self.topic = topic
        self.decode = decode
        self.records = []
        self.undecodable = []
        self.c = Consumer({"bootstrap.servers": BOOTSTRAP,
                           "group.id": f"it-reader-{uuid.uuid4().hex[:12]}",
                           "enable.auto.commit": False,
                           "auto.offset.reset": "earliest",
                           "enable.partition.eof": True, **(extra or {})})
        md = self.c.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        assert t is not None and t.error is None and t.partitions, f"topic {topic} not found"
        self.partitions = sorted(t.partitions)
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in self.partitions])
        self.eof_at = {}

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None

    def _poll_once(self, timeout):
        for msg in self.c.consume(500, timeout):
            self._take(msg)

    def _take(self, msg):
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                self.eof_at[msg.partition()] = msg.offset()
                return
            raise AssertionError(f"consumer error reading {self.topic}: {err}")
        raw = msg.value()
        rec = {"_key": msg.key(), "_partition": msg.partition(), "_offset": msg.offset(),
               "_raw": raw, "_headers": msg.headers() or []}
        try:
            if self.decode == "avro":
                rec.update(decode_prediction(raw))
            elif self.decode == "json":
                rec.update(json.loads(raw.decode("utf-8")))
            elif callable(self.decode):  # e.g. a schema registry deserializer
                rec.update(self.decode(raw, msg.topic()))
        except Exception as e:  # noqa: BLE001 - recorded, the test asserts on it
            self.undecodable.append((msg.partition(), msg.offset(), repr(e), raw[:80]))
        self.records.append(rec)

    def wait_until(self, done, timeout=60.0, worker=None, what="records"):
        """Poll until done(records) holds; fails on timeout, or if the worker exits first."""
        deadline = time.monotonic() + timeout
        while not done(self.records):
            if worker is not None and not worker.alive():
                self.drain(timeout=10)  # read what it wrote before exiting, then judge
                if done(self.records):
                    break
                raise AssertionError(
                    f"worker exited (code {worker.proc.returncode}) with {len(self.records)} "
                    f"{what} on {self.topic}" + worker.describe())
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(self.records)} {what} on {self.topic} after {timeout:.0f}s"
                    + (worker.describe() if worker else ""))
            self._poll_once(0.2)
        return self.records

    def wait_for(self, n, timeout=60.0, worker=None, what="records"):
        """Poll until at least n records were read."""
        return self.wait_until(lambda recs: len(recs) >= n, timeout, worker,
                               f"{what} (waiting for {n})")

    def poll_for(self, seconds, worker=None):
        """Keep reading for a while (a quiet period); fails if the worker exits."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if worker is not None and not worker.alive():
                raise AssertionError(f"worker exited (code {worker.proc.returncode})"
                                     + worker.describe())
            self._poll_once(0.2)
        return self.records

    def drain(self, timeout=20.0):
        """Read up to the current end of every partition; returns all records read."""
        highs = {}
        for p in self.partitions:
            _, high = self.c.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10,
                                                   cached=False)
            highs[p] = high
        deadline = time.monotonic() + timeout
        while True:
            done = all(self.eof_at.get(p, -1) >= highs[p] for p in self.partitions)
            if done:
                return self.records
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {self.topic} to its end {highs} "
                                     f"within {timeout}s (eof at {self.eof_at})")
            self._poll_once(0.2)


def read_all(topic, decode="avro", timeout=20.0):
    r = TopicReader(topic, decode)
    try:
        return r.drain(timeout), r.undecodable
    finally:
        r.close()


def end_offsets(topic):
    r = TopicReader(topic, decode=None)
    try:
        out = {}
        for p in r.partitions:
            _, high = r.c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
            out[p] = high
        return out
    finally:
        r.close()


def committed_offsets(group, topic, partitions):
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group,
                  "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


# --------------------------------------------------------------------------- worker


def worker_env(extra=None):
    """The environment of a worker process: no STREAMSCORE_* leaks from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCORE_")}
    env.update(extra or {})
    return env


def write_properties(path, props):
    lines = ["# streamscore integration test configuration"]
    for k, v in props.items():
        if v is not None:
            lines.append(f"{k} = {v}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def read_properties(path):
    """The key = value lines of a worker configuration written by write_properties."""
    props = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            props[k.strip()] = v.strip()
    return props


# make test-tsan (SS_IT_WORKER_THREADS, see conftest.py): the worker.threads of every worker
# whose test does not set it. Such a worker holds that many consumers of one group; stopped
# while the group's cooperative rebalance is still under way (a partition revoked from one
# and not yet assigned to the other), the worker can fail to exit (seen under
# ThreadSanitizer with librdkafka 2.8.0: the stop within a rebalance callback leaves librdkafka
# waiting on the rebalance). So Worker.stop first waits, at most SETTLE_S seconds, until the
# group is stable with every input partition assigned.
WORKER_THREADS = int(os.environ.get("SS_IT_WORKER_THREADS") or 0)
SETTLE_S = 30.0

_LIVE_WORKERS = set()


@atexit.register
def _kill_live_workers():
    for w in list(_LIVE_WORKERS):
        w.kill()


def kill_group(proc):
    """SIGKILL the process group of `proc` (started with start_new_session) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


class Worker:
    """One `streamscore run -c FILE` process with its stderr in a log file."""

    def __init__(self, config_path, log_path, args=(), env=None):
        assert BIN.exists(), f"worker binary {BIN} not found: build it first"
        self.config_path = Path(config_path)
        self.log_path = Path(log_path)
        self.cmd = [str(BIN), "run", "-c", str(config_path), *args]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, cwd=str(ROOT), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, env=worker_env(env),
                                     start_new_session=True)
        _LIVE_WORKERS.add(self)

    def alive(self):
        return self.proc.poll() is None

    def log_tail(self, n=40):
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def log_lines(self):
        out = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"_unparsed": line})
        return out

    def describe(self, n=40):
        return f"\n--- worker log tail ({self.log_path}) ---\n{self.log_tail(n)}\n---"

    def settle(self):
        """Best effort, for WORKER_THREADS: wait until the worker's consumer group is stable
        with every partition of its input topic assigned (or SETTLE_S passed)."""
        from confluent_kafka.admin import AdminClient

        props = read_properties(self.config_path)
        group, topic = props.get("kafka.group.id"), props.get("input.topic")
        if not group or not topic:
            return
        admin = AdminClient({"bootstrap.servers": props.get("kafka.bootstrap.servers",
                                                            BOOTSTRAP)})
        try:
            n = len(admin.list_topics(topic, timeout=10).topics[topic].partitions)
            wait_group_assigned(admin, group, topic, n, SETTLE_S, worker=self)
        except Exception:  # noqa: BLE001 - the test judges the worker, not this wait
            pass

    def stop(self, timeout=30.0):
        """SIGTERM, then assert a clean exit (code 0) within timeout."""
        if WORKER_THREADS > 1 and self.alive():
            self.settle()
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"worker did not exit within {timeout}s of SIGTERM"
                                 + self.describe())
        finally:
            self._log.close()
            _LIVE_WORKERS.discard(self)
        assert rc == 0, f"worker exited with code {rc} after SIGTERM (expected 0)" + self.describe()
        return rc

    def kill(self):
        if self.alive():
            kill_group(self.proc)
        if not self._log.closed:
            self._log.close()
        _LIVE_WORKERS.discard(self)


def run_cli(args, env=None, timeout=20.0):
    """Run the streamscore CLI to completion; returns CompletedProcess."""
    assert BIN.exists(), f"worker binary {BIN} not found: build it first"
    try:
        return subprocess.run([str(BIN), *args], cwd=str(ROOT), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, env=worker_env(env),
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`streamscore {' '.join(args)}` still running after {timeout}s; "
                             f"stderr: {(e.stderr or b'')[-2000:]!r}")


# --------------------------------------------------------------------------- checks


def index_by_source(records):
    """{(source_partition, source_offset): [records]} (lists, so duplicates show)."""
    out = {}
    for r in records:
        if "source_partition" in r:
            out.setdefault((r["source_partition"], r["source_offset"]), []).append(r)
    return out



def expected_predictions(events, placed, model_path, seeded=None):
    """What the worker must output for events produced at `placed`, starting from the
    `seeded` cache: {(partition, offset): {event, vector, hash, score}} and the final cache."""
    ordered, places = in_partition_order(events, placed)
    vectors, final = simulate_merge(ordered, seeded)
    scores = reference_scores(model_path, vectors)
    out = {}
    for ev, place, vec, score in zip(ordered, places, vectors, scores):
        out[place] = {"event": ev, "vector": vec, "hash": feature_hash(vec), "score": float(score)}
    return out, final


def score_mismatches(records, expected, limit=10):
    """Predictions whose feature_hash or score differ from the expected ones: (first
    `limit` descriptions, number of predictions that differ)."""
    bad = []
    n_bad = 0
    for r in records:
        exp = expected.get((r["source_partition"], r["source_offset"]))
        where = f"{r['customer_id']} @ {r['source_partition']}/{r['source_offset']}"
        if exp is None:
            n_bad += 1
            bad.append(f"{where}: prediction for an unknown source")
            continue
        problems = []
        if r["feature_hash"] != exp["hash"]:
            problems.append(f"feature_hash {r['feature_hash']} != expected {exp['hash']}")
        if not abs(r["score"] - exp["score"]) <= SCORE_TOL:
            problems.append(f"score {r['score']!r} != reference {exp['score']!r} "
                            f"(diff {abs(r['score'] - exp['score']):.3g})")
        if problems:
            n_bad += 1
            bad.append(f"{where}: {', '.join(problems)} for expected vector "
                       f"{[float(v) for v in exp['vector']]}")
    return bad[:limit], n_bad


def wait_committed(group, topic, timeout=20.0, worker=None):
    """Wait until the group's committed offsets of topic equal its end offsets (an empty
    partition needs no commit); returns them."""
    ends = end_offsets(topic)
    deadline = time.monotonic() + timeout
    while True:
        committed = committed_offsets(group, topic, sorted(ends))
        if all(committed.get(p) == end or (end == 0 and committed.get(p, -1) < 0)
               for p, end in ends.items()):
            return committed
        if worker is not None and not worker.alive():
            raise AssertionError(f"worker exited (code {worker.proc.returncode}) with committed "
                                 f"offsets {committed} short of the end {ends}" + worker.describe())
        if time.monotonic() > deadline:
            raise AssertionError(f"committed offsets of {group} on {topic} {committed} did not "
                                 f"reach the end {ends} within {timeout:.0f}s"
                                 + (worker.describe() if worker else ""))
        time.sleep(0.2)


def wait_group_assigned(admin, group, topic, n_partitions, timeout=30.0, worker=None,
                        members=None):
    """Wait until the consumer group is stable with every partition of topic assigned (and,
    given members, that many members in it)."""
    from confluent_kafka import ConsumerGroupState

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if worker is not None and not worker.alive():
            raise AssertionError(f"worker exited (code {worker.proc.returncode}) before "
                                 f"joining group {group}" + worker.describe())
        try:
            desc = admin.describe_consumer_groups([group])[group].result(10)
            assigned = sum(1 for m in desc.members
                           for tp in (m.assignment.topic_partitions if m.assignment else [])
                           if tp.topic == topic)
            last = (desc.state, assigned, len(desc.members))
            if desc.state == ConsumerGroupState.STABLE and assigned == n_partitions \
                    and (members is None or len(desc.members) == members):
                return
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.2)
    raise AssertionError(f"group {group} not stable with {n_partitions} partitions of {topic} "
                         f"({members or 'any'} members) within {timeout}s: last "
                         f"(state, assigned, members) {last}"
                         + (worker.describe() if worker else ""))


# --------------------------------------------------------------------------- shadow


CANDIDATE_MODEL = ROOT / "models" / "churn-1.1.0.json"

# Redis commands that only read: all a shadow may send about a feature key.
REDIS_READ_COMMANDS = {"HMGET", "HGET", "HGETALL", "HKEYS", "HVALS", "HLEN", "HEXISTS",
                       "EXISTS", "TYPE", "TTL", "PTTL", "GET", "MGET", "SCAN", "HSCAN"}


def redis_snapshot(prefix):
    """Every key under prefix: {key: (DUMP bytes, PTTL ms)} (byte-exact, with expiry)."""
    import redis as redis_lib

    r = redis_lib.Redis(host="127.0.0.1", port=REDIS_PORT, socket_timeout=5)
    try:
        out = {}
        for key in r.scan_iter(match=prefix.encode() + b"*", count=1000):
            out[key] = (r.dump(key), r.pttl(key))
        return out
    finally:
        r.close()


class RedisMonitor:
    """`redis-cli MONITOR` in the background: every command the server receives, as seen
    by the server (so it cannot miss a write a client library buffered)."""

    def __init__(self, path):
        self.path = Path(path)
        self._out = open(self.path, "wb")
        self.proc = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "-p", str(REDIS_PORT),
                                      "MONITOR"], stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while not self.path.read_bytes().startswith(b"OK"):
            assert self.proc.poll() is None, f"redis-cli MONITOR exited: {self.path.read_bytes()!r}"
            assert time.monotonic() < deadline, "redis-cli MONITOR did not start within 10s"
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if not self._out.closed:
            self._out.close()

    def commands(self, containing):
        """[(COMMAND, line)] of the commands whose text contains `containing`."""
        import shlex

        out = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            if containing not in line or "]" not in line:
                continue
            try:
                words = shlex.split(line.split("]", 1)[1])
            except ValueError:
                words = line.split("]", 1)[1].split()
            if words:
                out.append((words[0].strip('"').upper(), line))
        return out


def read_json_lines(path):
    """The JSON objects of a JSON-lines file ([] when it does not exist); a line that is not
    JSON is returned as {"_unparsed": line}."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"_unparsed": line})
    return out


def wait_file_lines(path, n, timeout=60.0, worker=None):
    """Poll a JSON-lines file until it has at least n lines; returns its records."""
    deadline = time.monotonic() + timeout
    while True:
        recs = read_json_lines(path)
        if len(recs) >= n:
            return recs
        if worker is not None and not worker.alive():
            raise AssertionError(f"worker exited (code {worker.proc.returncode}) with "
                                 f"{len(recs)} of {n} lines in {path}" + worker.describe())
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(recs)} of {n} lines in {path} after {timeout:.0f}s"
                                 + (worker.describe() if worker else ""))
        time.sleep(0.2)


# --------------------------------------------------------------------------- compare


def encode_prediction(record):
    return encode_avro(PREDICTION_SCHEMA_PATH, record)


def encode_prediction_json(record):
    """A prediction dict as output.format = json writes it."""
    return json.dumps(record).encode()


def produce_records(topic, records, encode=encode_prediction, timeout=30.0):
    """Produce prediction dicts keyed by customer id, in order; [(partition, offset)]."""
    return produce(topic, records, encode, timeout)


def iso_ms(ms):
    """Epoch milliseconds as ISO-8601 UTC with milliseconds, e.g. 2025-01-01T00:00:00.000Z."""
    s, frac = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:03d}Z"


def linear_percentile(values, q):
    """numpy's default (linear) percentile, q in [0, 100]."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def hist_bin(v, lo, hi, bins):
    """The bin of v in [lo, hi] split in `bins`, values outside clamped to the edge bins."""
    t = (v - lo) / (hi - lo) * bins if hi > lo else 0.0
    return 0 if t <= 0 else bins - 1 if t >= bins else int(t)


class CompareCase:
    """Primary predictions, shadow results and labels built by hand, with every figure of
    `streamscore compare` worked out here, independently of the worker and of compare.

    Sources (partition, offset) of a made-up input topic, one customer each:
      n_identical pairs with the same feature_hash (the figures are computed on these),
        of which flips_yes_no / flips_no_yes change decision at threshold 0.5;
      n_divergent pairs whose feature_hash differs (large score changes, flips too: they must
        not count in the pair figures);
      n_primary_only / n_shadow_only sources with one side only;
      one shadow result delivered twice (identical copies).
    Labels (CSV customer_id,label,time): most customers have a label after their event;
    some have none, some only one before the event (unlabeled), some two after it (the
    earliest counts); plus malformed rows.

    Routes (a rollout's canary): with n_canary, n_canary_divergent or n_canary_primary_only,
    that many more sources whose primary prediction has route "canary" (scored by the
    candidate, model version 1.1.0, in the primary): identical-feature pairs whose shadow
    score is the same (the shadow runs the same candidate), pairs whose feature_hash differs,
    primary-only ones. The primary's other predictions are then half without a route field
    (written before it existed: they count as "live") and half with route "live"; the shadow's
    carry route "live". Without canary sources no record has the field. Encode the records
    with test_compare.encode_of_its_time (it picks the schema version by the field)."""

    THRESHOLD = 0.5
    T0 = 1_735_689_600_000  # 2025-01-01T00:00:00Z

    def __init__(self, seed=4242, source_topic="it-compare-events", n_identical=180,
                 flips_yes_no=7, flips_no_yes=4, n_divergent=20, n_primary_only=8,
                 n_shadow_only=5, n_canary=0, n_canary_divergent=0, n_canary_primary_only=0):
        rng = np.random.default_rng(seed)
        self.source_topic = source_topic
        self.primary, self.shadow, label_rows = [], [], []
        th = self.THRESHOLD
        kinds = (["same"] * (n_identical - flips_yes_no - flips_no_yes) + ["yes_no"] * flips_yes_no
                 + ["no_yes"] * flips_no_yes + ["divergent"] * n_divergent
                 + ["primary_only"] * n_primary_only + ["shadow_only"] * n_shadow_only
                 + ["canary"] * n_canary + ["canary_divergent"] * n_canary_divergent
                 + ["canary_primary_only"] * n_canary_primary_only)
        self.routed = n_canary + n_canary_divergent + n_canary_primary_only > 0
        kinds = [kinds[i] for i in rng.permutation(len(kinds))]
        self.kinds = kinds
        self.label_of = {}  # customer -> expected label (None: unlabeled)
        self.malformed_label_rows = 0
        for i, kind in enumerate(kinds):
            cid = f"cmp-{seed}-{i:04d}"
            part, off = i % 3, 500 + i // 3
            event_time = self.T0 + i * 60_000
            if kind == "same":
                sp = float(rng.uniform(0.05, 0.42) if rng.random() < 0.6 else rng.uniform(0.58, 0.95))
                ss = sp + float(rng.uniform(-0.04, 0.04))
            elif kind == "canary":  # the candidate on both sides, on the same features
                sp = float(rng.uniform(0.03, 0.97))
                ss = sp
            elif kind == "yes_no":
                sp = float(rng.uniform(0.5, 0.6))
                ss = sp - float(rng.uniform(0.11, 0.2))
            elif kind == "no_yes":
                sp = float(rng.uniform(0.4, 0.49))
                ss = sp + float(rng.uniform(0.11, 0.2))
            else:
                sp, ss = float(rng.uniform(0.02, 0.98)), float(rng.uniform(0.02, 0.98))
            fh = f"{int(rng.integers(0, 2**63)):016x}"
            common = {"event_id": f"ev-{i:04d}", "customer_id": cid, "threshold": th,
                      "source_topic": source_topic, "source_partition": part,
                      "source_offset": off, "event_time": event_time, "contributions": None,
                      "degraded": False}
            canary = kind.startswith("canary")
            if kind != "shadow_only":
                self.primary.append({**common, "score": sp, "decision": sp >= th,
                                     "model_name": "churn",
                                     "model_version": "1.1.0" if canary else "1.0.0",
                                     "scored_at": event_time + int(rng.integers(3, 60)),
                                     "feature_hash": fh})
                if canary:
                    self.primary[-1]["route"] = "canary"
                elif self.routed and i % 2 == 0:
                    self.primary[-1]["route"] = "live"
            if kind not in ("primary_only", "canary_primary_only"):
                self.shadow.append({**common, "score": ss, "decision": ss >= th,
                                    "model_name": "churn", "model_version": "1.1.0",
                                    "scored_at": event_time + int(rng.integers(10, 400)),
                                    "feature_hash": f"{int(rng.integers(0, 2**63)):016x}"
                                    if kind in ("divergent", "canary_divergent") else fh})
                if self.routed:
                    self.shadow[-1]["route"] = "live"
            # labels, loosely following the primary score so that AUCs are informative
            p_pos = sp if kind != "shadow_only" else ss
            y = int(rng.random() < p_pos)
            u = rng.random()
            after = event_time + int(rng.integers(3_600_000, 30 * 86_400_000))
            if u < 0.08:
                self.label_of[cid] = None  # no label at all
            elif u < 0.13:
                self.label_of[cid] = None  # a label, but before the event only
                label_rows.append((cid, y, event_time - 86_400_000))
            elif u < 0.20:
                self.label_of[cid] = y  # two labels after the event: the earliest counts
                label_rows.append((cid, 1 - y, after + 86_400_000))
                label_rows.append((cid, y, after))
            else:
                self.label_of[cid] = y
                label_rows.append((cid, y, after))
        # the duplicate: one shadow result delivered again
        self.duplicate = dict(self.shadow[len(self.shadow) // 2])
        self.shadow.append(self.duplicate)
        self.label_rows = label_rows

    def labels_csv(self, path):
        """Write the labels; times alternate ISO-8601 and epoch ms, labels 1/0 and true/false.
        Two malformed rows are added (counted as malformed, not as rows)."""
        lines = ["customer_id,label,time"]
        for k, (cid, y, t) in enumerate(self.label_rows):
            lab = (("true" if y else "false") if k % 3 == 0 else str(y))
            lines.append(f"{cid},{lab},{iso_ms(t) if k % 2 == 0 else t}")
        lines.append(f"cmp-bad-1,maybe,{iso_ms(self.T0)}")
        lines.append("cmp-bad-2,1,not-a-time")
        self.malformed_label_rows = 2
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
        return Path(path)

    # ---- expected figures

    def expected(self):
        key = lambda r: (r["source_topic"], r["source_partition"], r["source_offset"])  # noqa: E731
        P = {key(r): r for r in self.primary}
        S = {}
        dup = 0
        for r in self.shadow:
            dup += key(r) in S
            S[key(r)] = r
        matched = sorted(set(P) & set(S))
        ident = [(P[k], S[k]) for k in matched if P[k]["feature_hash"] == S[k]["feature_hash"]]
        p = np.array([a["score"] for a, _ in ident])
        s = np.array([b["score"] for _, b in ident])
        d = s - p
        from scipy.stats import spearmanr

        m = float(np.abs(d).max())
        diff_counts = [0] * 40
        for v in d:
            diff_counts[hist_bin(float(v), -m, m, 40)] += 1
        e = {
            "counts": {"primary": len(P), "shadow": len(S), "matched": len(matched),
                       "primary_only": len(set(P) - set(S)), "shadow_only": len(set(S) - set(P)),
                       "duplicates": {"primary": len(self.primary) - len(P), "shadow": dup},
                       "matched_share": len(matched) / len(P), "identical_features": len(ident),
                       "identical_share": len(ident) / len(matched)},
            "pairs": {"n": len(ident), "score_diff": {
                          "mean": float(d.mean()), "abs_p50": linear_percentile(np.abs(d), 50),
                          "abs_p99": linear_percentile(np.abs(d), 99), "abs_max": m},
                      "flips": {"no_to_yes": int(sum(1 for a, b in ident
                                                     if not a["decision"] and b["decision"])),
                                "yes_to_no": int(sum(1 for a, b in ident
                                                     if a["decision"] and not b["decision"]))},
                      "spearman": float(spearmanr(p, s).statistic),
                      "diff_histogram": {"lo": -m, "hi": m, "counts": diff_counts}},
            "distributions": {}, "latency_ms": {}, "labels": {}, "models": {},
        }
        fl = e["pairs"]["flips"]
        fl["total"] = fl["no_to_yes"] + fl["yes_to_no"]
        fl["rate"] = fl["total"] / len(ident)
        for side, recs in (("primary", list(P.values())), ("shadow", list(S.values()))):
            counts = [0] * 20
            for r in recs:
                counts[hist_bin(r["score"], 0.0, 1.0, 20)] += 1
            e["distributions"][side] = {"counts": counts, "below": 0, "above": 0}
            e["latency_ms"][side] = self._latency(recs)
            e["labels"][side] = self._labels(recs)
            versions = sorted({r["model_version"] for r in recs})
            e["models"][side] = [{"name": "churn", "version": v, "threshold": self.THRESHOLD,
                                  "records": sum(r["model_version"] == v for r in recs)}
                                 for v in versions]  # compare lists them as read: sort both
        e["routes"] = self._routes(P, S)
        e["labels_input"] = {"rows": len(self.label_rows), "malformed": self.malformed_label_rows}
        self.values = {"abs_diff": np.abs(d).tolist(),
                       "latency_primary": [r["scored_at"] - r["event_time"] for r in P.values()],
                       "latency_shadow": [r["scored_at"] - r["event_time"] for r in S.values()]}
        return e

    @staticmethod
    def _latency(recs):
        lat = [r["scored_at"] - r["event_time"] for r in recs]
        return {"n": len(lat), "p50": linear_percentile(lat, 50) if lat else None,
                "p99": linear_percentile(lat, 99) if lat else None}

    def _labels(self, recs):
        """compare's labels figures of these records (None where a figure is undefined)."""
        from sklearn.metrics import roc_auc_score

        lab = [(self.label_of[r["customer_id"]], r) for r in recs
               if self.label_of[r["customer_id"]] is not None]
        y = np.array([v for v, _ in lab], dtype=int)
        score = np.array([r["score"] for _, r in lab])
        dec = np.array([r["decision"] for _, r in lab]).astype(int)
        tp, fp = int(((y == 1) & (dec == 1)).sum()), int(((y == 0) & (dec == 1)).sum())
        fn, tn = int(((y == 1) & (dec == 0)).sum()), int(((y == 0) & (dec == 0)).sum())
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall else None)
        return {"labeled": len(lab), "positives": int(y.sum()),
                "roc_auc": float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None,
                "precision": precision, "recall": recall, "f1": f1,
                "tp": tp, "fp": fp, "fn": fn, "tn": tn}

    def _routes(self, P, S):
        """compare.json's "routes": the pair figures per route of the primary's records (none:
        "live"), latency and labels over the route's matched pairs."""
        from scipy.stats import spearmanr

        routes = {}
        for route in sorted({r.get("route", "live") for r in P.values()},
                            key=lambda x: (x != "live", x != "canary", x)):
            keys = [k for k, r in P.items() if r.get("route", "live") == route]
            matched = [k for k in keys if k in S]
            ident = [(P[k], S[k]) for k in matched if P[k]["feature_hash"] == S[k]["feature_hash"]]
            p = np.array([a["score"] for a, _ in ident])
            s = np.array([b["score"] for _, b in ident])
            d = s - p
            no_yes = sum(1 for a, b in ident if not a["decision"] and b["decision"])
            yes_no = sum(1 for a, b in ident if a["decision"] and not b["decision"])
            rho = float(spearmanr(p, s).statistic) if len(ident) >= 2 else None
            routes[route] = {
                "counts": {"primary": len(keys), "matched": len(matched),
                           "primary_only": len(keys) - len(matched),
                           "matched_share": len(matched) / len(keys),
                           "identical_features": len(ident),
                           "identical_share": len(ident) / len(matched) if matched else None},
                "pairs": {"scope": "identical_features", "n": len(ident),
                          "score_diff": {
                              "mean": float(d.mean()) if len(ident) else None,
                              "abs_p50": linear_percentile(np.abs(d), 50) if len(ident) else None,
                              "abs_p99": linear_percentile(np.abs(d), 99) if len(ident) else None,
                              "abs_max": float(np.abs(d).max()) if len(ident) else None},
                          "flips": {"no_to_yes": no_yes, "yes_to_no": yes_no,
                                    "total": no_yes + yes_no,
                                    "rate": (no_yes + yes_no) / len(ident) if ident else None},
                          "spearman": rho},
                "latency_ms": {"primary": self._latency([P[k] for k in matched]),
                               "shadow": self._latency([S[k] for k in matched])},
                "labels": {"primary": self._labels([P[k] for k in matched]),
                           "shadow": self._labels([S[k] for k in matched])},
            }
        return routes


def compare_config(path, output_topic, shadow_topic, out_dir, labels=None, extra=None):
    """A `streamscore compare` configuration file."""
    props = {"output.topic": output_topic, "shadow.topic": shadow_topic,
             "kafka.bootstrap.servers": BOOTSTRAP, "compare.output.dir": out_dir,
             "compare.timeout.ms": 10000}
    if labels is not None:
        props["compare.labels"] = labels
    props.update(extra or {})
    return write_properties(path, props)


def numbers_in(text):
    """Every decimal number written in text, as floats."""
    import re

    return [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)]


def mentions(text, value, rel=5e-4, abs_tol=5e-5):
    """Whether text writes `value` (rounded as a report would: a few significant digits)."""
    return any(abs(x - value) <= max(abs_tol, rel * abs(value)) for x in numbers_in(text))


# --------------------------------------------------------------------------- browser

CHROMIUM = Path("/usr/bin/chromium")


def chromium(url, profile_dir, *args, timeout=60.0):
    """Headless Chromium on a page, isolated from the network services it would call
    on its own; returns CompletedProcess (stdout: e.g. the DOM with --dump-dom)."""
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--no-first-run", "--disable-default-apps", "--disable-extensions",
           f"--user-data-dir={profile_dir}", *args, url]
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, env=worker_env({"HOME": str(profile_dir)}))
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"chromium did not finish within {timeout}s: {e.stderr!r}")


def page_requests(net_log_path):
    """URLs a page asked for, from a Chromium --log-net-log file: the URL requests made on
    behalf of a file:// document (the browser's own background requests carry no page)."""
    log = json.loads(Path(net_log_path).read_text(encoding="utf-8"))
    types = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    urls = set()
    for ev in log["events"]:
        params = ev.get("params") or {}
        if types.get(ev["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        if "file://" in str(params.get("network_isolation_key", "")) \
                or params.get("initiator") not in (None, "not an origin"):
            urls.add(params["url"])
    return sorted(urls)


def png_pixels(path):
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) with zlib only:
    a (height, width, channels) uint8 array."""
    import zlib

    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, hgt, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, f"unsupported PNG {ihdr}"
    bpp = 3 if ctype == 2 else 4
    stride = w * bpp
    raw = zlib.decompress(b"".join(idat))
    out = np.zeros((hgt, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(hgt):
        start = y * (stride + 1)
        f = raw[start]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=start + 1)
        if f == 0:
            cur = line.copy()
        elif f == 1:  # Sub: a running sum per channel, modulo 256
            cur = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif f == 2:  # Up
            cur = line + prev
        else:  # Average or Paeth: sequential along the row
            cur = bytearray(stride)
            src, up = line.tobytes(), prev.tobytes()
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b = up[i]
                if f == 3:
                    pred = (a + b) >> 1
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[i] = (src[i] + pred) & 0xFF
            cur = np.frombuffer(bytes(cur), dtype=np.uint8)
        out[y] = cur
        prev = out[y]
    return out.reshape(hgt, w, bpp)


# --------------------------------------------------------------------------- HTTP endpoints


def free_port():
    """A free loopback port below 32768, outside the kernel's ephemeral range (where an
    outgoing connection could take it between this check and the worker's bind), and none
    of the stacks' ports."""
    import random
    import socket

    taken = set(STACK_PORTS)
    for _ in range(200):
        port = random.randint(20000, 32767)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free loopback port found in 20000..32767")


def http_get(port, path, timeout=5.0):
    """(status, body text) of GET http://127.0.0.1:port/path; (None, error) if unreachable."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8")
    except (urllib.error.URLError, OSError) as e:
        return None, repr(e)


def parse_metrics(text):
    """Prometheus text -> {(name, frozenset(labels.items())): value}; every line must parse."""
    import re

    out = {}
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = frozenset(label_re.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(samples, metric_name, /, **labels):
    """The value of one sample (None if absent)."""
    return samples.get((metric_name, frozenset((k, str(v)) for k, v in labels.items())))


def wait_metrics(port, done, timeout=30.0, worker=None, what="metrics"):
    """Scrape /metrics until done(samples) holds; returns the samples."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        status, body = http_get(port, "/metrics")
        if status == 200:
            last = parse_metrics(body)
            if done(last):
                return last
        if worker is not None and not worker.alive():
            raise AssertionError(f"worker exited while waiting for {what}" + worker.describe())
        if time.monotonic() > deadline:
            shown = sorted(((k[0], dict(k[1]), v) for k, v in (last or {}).items()
                            if "bucket" not in k[0]), key=str)
            raise AssertionError(f"{what} not reached within {timeout:.0f}s; last scrape: "
                                 f"{status} {shown[:60]}" + (worker.describe() if worker else ""))
        time.sleep(0.3)


# --------------------------------------------------------------------------- rollout
# rollout: the helpers of test_rollout.py (routing buckets, the command, the control topic).

ROLLOUT_BUCKETS = 10000
_M64 = 0xFFFFFFFFFFFFFFFF


def fnv1a64(data, h=0xCBF29CE484222325):
    """FNV-1a 64 of bytes (offset basis 0xcbf29ce484222325, prime 0x100000001b3)."""
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & _M64
    return h


def fmix64(k):
    """MurmurHash3's 64-bit finalizer."""
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    k ^= k >> 33
    return k


@lru_cache(maxsize=200_000)
def rollout_bucket(salt, customer_id):
    """A customer's routing bucket, 0..9999: fmix64(FNV-1a 64 of the salt's bytes, one 0 byte,
    the customer id's bytes) mod 10000 (salt: the candidate's sha256, 64 lower-case hex)."""
    return fmix64(fnv1a64(salt.encode() + b"\0" + customer_id.encode())) % ROLLOUT_BUCKETS


def rollout_canary(salt, customer_id, share):
    """Whether the customer is on the canary at `share`: bucket < round(share * 10000)."""
    return rollout_bucket(salt, customer_id) < round(share * ROLLOUT_BUCKETS)


def sha256_file(path):
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def rollout_cli(config, command, *args, env=None, timeout=30.0):
    """`streamscore rollout COMMAND -c CONFIG ARGS...` run to completion."""
    return run_cli(["rollout", command, "-c", str(config), *[str(a) for a in args]], env=env,
                   timeout=timeout)


def job_ok(command, cfg, *args, timeout=120.0):
    """Run `streamscore COMMAND -c CFG ARGS... --json` (an offline job: replay, score-file);
    asserts exit 0 and returns its summary."""
    r = run_cli([command, "-c", str(cfg), *[str(a) for a in args], "--json"], timeout=timeout)
    assert r.returncode == 0, (f"`streamscore {command} {' '.join(map(str, args))}` exit "
                               f"{r.returncode}; stdout {r.stdout[-1500:]!r}; stderr "
                               f"{r.stderr[-2500:]!r}")
    return cli_json(r, f"streamscore {command}")


def plain_lines(stderr):
    """The lines of stderr that are not JSON log lines (progress, the fatal error's line)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("{")]


def cli_json(r, what="streamscore rollout"):
    """The JSON document a `--json` command printed on stdout."""
    text = r.stdout.strip()
    try:
        return json.loads(text)
    except ValueError:
        lines = [line for line in text.splitlines() if line.startswith("{")]
        assert lines, f"`{what}` printed no JSON: stdout {r.stdout[-2000:]!r}, " \
                      f"stderr {r.stderr[-2000:]!r}"
        return json.loads(lines[-1])


def rollout_json(config, command, *args, env=None, timeout=30.0):
    """Run a rollout command with --json; asserts exit 0 and returns the record it printed."""
    r = rollout_cli(config, command, *args, "--json", env=env, timeout=timeout)
    assert r.returncode == 0, (f"`streamscore rollout {command} {' '.join(map(str, args))}` exit "
                               f"{r.returncode}; stdout {r.stdout[-1000:]!r}; stderr "
                               f"{r.stderr[-2000:]!r}")
    rec = cli_json(r, f"streamscore rollout {command}")
    assert isinstance(rec.get("offset"), int) and rec["offset"] >= 0, \
        f"`rollout {command} --json` printed no offset: {rec}"
    return rec


def plain_lines(text):
    """The lines of stderr that are not JSON log lines."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("{")]


def wait_topic(name, timeout=30.0):
    """Wait until a topic exists with every partition led (without asking the broker for it
    by name, which could create it)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    deadline = time.monotonic() + timeout
    while True:
        t = admin.list_topics(timeout=10).topics.get(name)
        if t is not None and t.error is None and t.partitions and \
                all(p.leader >= 0 for p in t.partitions.values()):
            return t
        assert time.monotonic() < deadline, f"topic {name} not there after {timeout:.0f}s"
        time.sleep(0.2)


class ControlReader:
    """Reads a rollout control topic (partition 0) from its start: each record's JSON value
    with _offset, _timestamp (the Kafka timestamp, ms) and _key added."""

    def __init__(self, topic, timeout=30.0):
        wait_topic(topic, timeout)
        self.topic = topic
        self.records = []
        self.c = Consumer({"bootstrap.servers": BOOTSTRAP,
                           "group.id": f"it-control-{uuid.uuid4().hex[:12]}",
                           "enable.auto.commit": False, "auto.offset.reset": "earliest",
                           "enable.partition.eof": True})
        self.c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.eof = -1

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None

    def poll(self, timeout=0.2):
        for msg in self.c.consume(100, timeout):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self.eof = msg.offset()
                    continue
                raise AssertionError(f"consumer error reading {self.topic}: {err}")
            rec = {"_offset": msg.offset(), "_timestamp": msg.timestamp()[1],
                   "_key": (msg.key() or b"").decode("utf-8", "replace")}
            try:
                value = json.loads(msg.value().decode("utf-8"))
                rec.update(value if isinstance(value, dict) else {"_unparsed": value})
            except (ValueError, AttributeError, UnicodeDecodeError):
                rec["_unparsed"] = msg.value()
            self.records.append(rec)
        return self.records

    def wait_until(self, done, timeout=30.0, workers=(), what="control records"):
        """Poll until done(records) holds; fails on timeout or when a worker exits."""
        deadline = time.monotonic() + timeout
        while not done(self.records):
            for w in workers:
                if not w.alive():
                    raise AssertionError(f"worker exited (code {w.proc.returncode}) while "
                                         f"waiting for {what}" + w.describe())
            if time.monotonic() > deadline:
                shown = [{k: v for k, v in r.items() if k in ("_offset", "state", "share",
                                                              "origin", "reason", "base")}
                         for r in self.records]
                raise AssertionError(f"{what} not on {self.topic} within {timeout:.0f}s; "
                                     f"records: {shown}"
                                     + "".join(w.describe() for w in workers))
            self.poll(0.2)
        return self.records

    def at(self, offset, timeout=30.0):
        """The record at offset (waiting for it)."""
        self.wait_until(lambda recs: any(r["_offset"] == offset for r in recs), timeout,
                        what=f"the record at offset {offset}")
        return next(r for r in self.records if r["_offset"] == offset)

    def end(self):
        _, high = self.c.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=10,
                                               cached=False)
        return high

    def drain(self, timeout=20.0):
        high = self.end()
        deadline = time.monotonic() + timeout
        while self.eof < high and (not self.records or self.records[-1]["_offset"] < high - 1):
            assert time.monotonic() < deadline, f"could not read {self.topic} to {high}"
            self.poll(0.2)
        return self.records


def rollout_chain(records, rollout_id):
    """The records of rollout_id a worker applies, in order: every command; an automatic
    record only when its base is at or after the offset of the record applied last (or none
    was): a restatement after a skipped record is based on the skipped one."""
    chain = []
    for r in sorted(records, key=lambda r: r["_offset"]):
        if r.get("_key") != rollout_id or "_unparsed" in r:
            continue
        if r.get("origin") == "automatic" and chain and r.get("base", -1) < chain[-1]["_offset"]:
            continue
        chain.append(r)
    return chain


def rollout_outcomes(record, customer_id, configured_version):
    """The (route, model_version) pairs a customer's prediction may carry under a control
    record (None: no record, the configured model serves everyone)."""
    if record is None:
        return {("live", configured_version)}
    live = record.get("live")
    live_version = live["version"] if live else configured_version
    if record.get("state") == "canary":
        cand = record["candidate"]
        if rollout_canary(cand["sha256"], customer_id, float(record["share"])):
            return {("canary", cand["version"])}
    return {("live", live_version)}


def allowed_outcomes(chain, scored_at, customer_id, configured_version, slack_ms):
    """What a prediction scored at `scored_at` may carry: the outcome of the record in force
    then (the last whose Kafka timestamp is not after it), or of an earlier one whose successor
    was written less than slack_ms before it (not applied yet)."""
    times = [r["_timestamp"] for r in chain]
    current = -1
    for i, t in enumerate(times):
        if t <= scored_at:
            current = i
    out = set(rollout_outcomes(chain[current] if current >= 0 else None, customer_id,
                               configured_version))
    for j in range(-1, current):
        if times[j + 1] + slack_ms >= scored_at:
            out |= rollout_outcomes(chain[j] if j >= 0 else None, customer_id, configured_version)
    return out


def route_problems(records, chain, slack_ms, configured_version="1.0.0", limit=10):
    """Predictions whose (route, model_version) the control records in force around their
    scored_at do not allow: (first `limit` descriptions, how many)."""
    bad = []
    for r in records:
        allowed = allowed_outcomes(chain, r["scored_at"], r["customer_id"], configured_version,
                                   slack_ms)
        got = (r.get("route"), r["model_version"])
        if got not in allowed:
            bad.append(f"{r['customer_id']} @ {r['source_partition']}/{r['source_offset']} "
                       f"scored_at {r['scored_at']}: {got}, allowed {sorted(allowed)}")
    return bad[:limit], len(bad)


def metric_sum(samples, metric_name, /, **labels):
    """The sum of the samples of a metric whose labels include `labels` (None if none)."""
    want = {(k, str(v)) for k, v in labels.items()}
    values = [v for (n, ls), v in samples.items() if n == metric_name and want <= ls]
    return sum(values) if values else None


def metric_labels(samples, metric_name):
    """[(labels dict, value)] of every sample of a metric."""
    return [(dict(ls), v) for (n, ls), v in samples.items() if n == metric_name]


def scrape(port):
    status, body = http_get(port, "/metrics")
    assert status == 200, f"/metrics on {port}: {status} {body[:300]}"
    return parse_metrics(body)


def wait_rollout_applied(port, offset, share, worker=None, timeout=30.0):
    """Until the worker's /metrics show the control record at `offset` applied with `share`."""
    return wait_metrics(port, lambda s: metric_sum(s, "streamscore_rollout_offset") == offset
                        and metric_sum(s, "streamscore_rollout_share") is not None
                        and abs(metric_sum(s, "streamscore_rollout_share") - share) < 1e-9,
                        timeout=timeout, worker=worker,
                        what=f"control record {offset} applied (share {share})")


class SteadyStream:
    """Customer events produced at a steady rate by a thread until stop(): a third carry
    every feature, the rest 0..4, keyed by customer id, event_time the wall clock. Idempotent
    producer: nothing is lost or duplicated."""

    def __init__(self, topic, customers, rate, seed):
        import threading

        self.topic = topic
        self.customers = list(customers)
        self.rate = rate
        self.rng = np.random.default_rng(seed)
        self.events = []
        self.where = {}  # event index -> (partition, offset)
        self.errors = []
        self.sent = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _run(self):
        p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True,
                      "linger.ms": 5, "message.timeout.ms": 60000})

        def on_delivery(i):
            def cb(err, msg):
                with self._lock:
                    if err is not None:
                        self.errors.append(str(err))
                    else:
                        self.where[i] = (msg.partition(), msg.offset())
            return cb

        try:
            start = time.monotonic()
            i = 0
            while not self._stop.is_set():
                due = start + i / self.rate
                while not self._stop.is_set():
                    wait = due - time.monotonic()
                    if wait <= 0:
                        break
                    p.poll(min(wait, 0.05))
                if self._stop.is_set():
                    break
                rng = self.rng
                cid = self.customers[int(rng.integers(0, len(self.customers)))]
                feats = (random_features(rng, len(FEATURES), len(FEATURES))
                         if rng.random() < 0.33 else random_features(rng, 0, 4))
                ev = make_event(cid, int(time.time() * 1000), rng, **feats)
                self.events.append(ev)
                value = encode_avro(EVENT_SCHEMA_PATH, ev)
                while True:
                    try:
                        p.produce(self.topic, key=cid.encode(), value=value,
                                  on_delivery=on_delivery(i))
                        break
                    except BufferError:
                        p.poll(0.05)
                i += 1
                self.sent = i
                p.poll(0)
        except Exception as e:  # noqa: BLE001 - reported by stop()
            self.errors.append(repr(e))
        finally:
            left = p.flush(60)
            if left:
                self.errors.append(f"{left} events not delivered")

    def stop(self, timeout=90.0):
        """Stop producing; returns (events, [(partition, offset)] aligned with them)."""
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the event stream did not stop"
        assert not self.errors, f"producing the event stream failed: {self.errors[:5]}"
        assert len(self.where) == len(self.events), \
            f"{len(self.where)} of {len(self.events)} events placed"
        return list(self.events), [self.where[i] for i in range(len(self.events))]

    def wait_sent(self, n, timeout=60.0):
        deadline = time.monotonic() + timeout
        while self.sent < n:
            assert not self.errors, f"producing the event stream failed: {self.errors[:5]}"
            assert time.monotonic() < deadline, f"only {self.sent} of {n} events sent"
            time.sleep(0.05)


# --------------------------------------------------------------------------- offline jobs
# replay and score-file (test_replay.py, test_score_file.py): many events, made, merged and
# hashed a column at a time, produced in bulk; the jobs run as processes of their own.

EVENT_TIME_T0 = 1_700_000_000_000


def bulk_events(rng, customers, n, t0=EVENT_TIME_T0, full_share=0.33, partial_share=2 / 11,
                id_prefix="ev"):
    """n events over the given customers (drawn at random: several events each when n is
    larger than the customer set), vectorised for large n: a full_share carry every feature,
    each of the others each feature with probability partial_share (null otherwise).
    event_time = t0 + 10 ms per event; event_id = f"{id_prefix}-{index}". Same dicts as
    make_event; float values are float32-exact (so a decimal text of them reads back the same
    float whatever the reader's rounding path)."""
    cust = rng.integers(0, len(customers), n)
    full = rng.random(n) < full_share
    present = {f: full | (rng.random(n) < partial_share) for f in FEATURES}
    vals = {
        "tenure_months": rng.integers(0, 73, n).tolist(),
        "monthly_charges": np.round(rng.uniform(18.0, 120.0, n), 2).tolist(),
        "total_charges": np.round(rng.uniform(0.0, 8700.0, n), 2).tolist(),
        "contract_type": [CONTRACT_TYPES[k] for k in rng.integers(0, 3, n).tolist()],
        "support_calls_30d": rng.integers(0, 12, n).tolist(),
        "logins_30d": rng.integers(0, 60, n).tolist(),
        "payment_failures_90d": rng.integers(0, 6, n).tolist(),
        "data_usage_gb": rng.uniform(0.0, 150.0, n).astype(np.float32).astype(float).tolist(),
        "has_autopay": (rng.integers(0, 2, n) == 1).tolist(),
        "num_products": rng.integers(1, 6, n).tolist(),
        "days_since_last_login": rng.integers(0, 120, n).tolist(),
    }
    etype = rng.integers(0, len(EVENT_TYPES), n).tolist()
    pres = {f: present[f].tolist() for f in FEATURES}
    cust = cust.tolist()
    events = []
    for i in range(n):
        ev = {"event_id": f"{id_prefix}-{i}", "customer_id": customers[cust[i]],
              "event_time": t0 + 10 * i, "event_type": EVENT_TYPES[etype[i]]}
        for f in FEATURES:
            ev[f] = vals[f][i] if pres[f][i] else None
        events.append(ev)
    return events


def event_matrix(events):
    """The events' own feature vectors (float32, NaN = missing), one row each."""
    x = np.full((len(events), len(FEATURES)), np.nan, dtype=np.float32)
    for j, name in enumerate(FEATURES):
        col = [ev.get(name) for ev in events]
        if name == "contract_type":
            col = [None if v is None else CONTRACT_TYPES.index(v) for v in col]
        elif name == "has_autopay":
            col = [None if v is None else (1.0 if v else 0.0) for v in col]
        x[:, j] = np.array([np.nan if v is None else v for v in col], dtype=np.float64)
    return x


def merged_matrix(events, seeded=None):
    """simulate_merge's vectors for events in merge order, vectorised: row i is the float32
    vector scored for events[i] (each customer's known features start from seeded[customer],
    name -> float32, when given)."""
    seeded = seeded or {}
    seeds = [cid for cid in seeded if any(not np.isnan(v) for v in seeded[cid].values())]
    rows = np.full((len(seeds), len(FEATURES)), np.nan, dtype=np.float32)
    for k, cid in enumerate(seeds):
        for j, name in enumerate(FEATURES):
            if name in seeded[cid]:
                rows[k, j] = seeded[cid][name]
    x = np.vstack([rows, event_matrix(events)])
    ids = seeds + [ev["customer_id"] for ev in events]
    _, codes = np.unique(np.array(ids, dtype=object).astype(str), return_inverse=True)
    order = np.argsort(codes, kind="stable")  # per customer, seeds first, then events in order
    xs, cs = x[order], codes[order]
    n = len(ids)
    pos = np.arange(n)
    first = np.r_[True, cs[1:] != cs[:-1]] if n else np.zeros(0, dtype=bool)
    group_start = np.maximum.accumulate(np.where(first, pos, 0)) if n else pos
    out_sorted = np.full_like(xs, np.nan)
    for j in range(len(FEATURES)):
        valid = ~np.isnan(xs[:, j])
        last = np.maximum.accumulate(np.where(valid, pos, -1)) if n else pos
        ok = last >= group_start
        out_sorted[ok, j] = xs[last[ok], j]
    out = np.empty_like(out_sorted)
    out[order] = out_sorted
    return out[len(seeds):]


def feature_hashes(matrix):
    """feature_hash of every row of a float32 matrix, vectorised."""
    m = np.asarray(matrix, dtype="<f4")
    bits = m.view("<u4").copy()
    bits[np.isnan(m)] = 0x7FC00000
    data = np.ascontiguousarray(bits.astype("<u4")).view(np.uint8).reshape(len(m), -1)
    acc = np.full(len(m), 0xCBF29CE484222325, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for k in range(data.shape[1]):
            acc ^= data[:, k].astype(np.uint64)
            acc *= prime
    return [f"{v:016x}" for v in acc.tolist()]


def produce_bulk(topic, messages, timeout=60.0):
    """Produce (key, value) pairs in order, fast (idempotent, large batches, no poll per
    message). Returns [(partition, offset, timestamp ms)] aligned with messages."""
    placed = [None] * len(messages)
    errors = []

    def on_delivery(i):
        def cb(err, msg):
            if err is not None:
                errors.append((i, err))
            else:
                placed[i] = (msg.partition(), msg.offset(), msg.timestamp()[1])
        return cb

    p = Producer({"bootstrap.servers": BOOTSTRAP, "enable.idempotence": True,
                  "linger.ms": 20, "batch.num.messages": 10000,
                  "queue.buffering.max.messages": 1_000_000,
                  "queue.buffering.max.kbytes": 1_048_576,
                  "message.timeout.ms": int(timeout * 1000)})
    for i, (key, value) in enumerate(messages):
        while True:
            try:
                p.produce(topic, key=key, value=value, on_delivery=on_delivery(i))
                break
            except BufferError:
                p.poll(0.05)
        if i % 5000 == 0:
            p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} messages not delivered to {topic} within {timeout}s"
    assert not errors, f"delivery errors producing to {topic}: {errors[:5]}"
    assert all(x is not None for x in placed)
    return placed


def event_messages(events):
    """(customer id key, raw Avro value) of each event."""
    schema = parsed_schema(EVENT_SCHEMA_PATH)
    out = []
    for ev in events:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, ev)
        out.append((ev["customer_id"].encode(), buf.getvalue()))
    return out


def write_event_file(path, events, schema=None, codec="deflate"):
    """An Avro object container file of events (writer schema: the event schema as written,
    logical types included, unless another is given)."""
    schema = schema if schema is not None else load_schema_json(EVENT_SCHEMA_PATH)
    with open(path, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), events, codec=codec,
                        sync_interval=64 * 1024)
    return Path(path)


def write_event_json_lines(path, events):
    """Events as JSON lines keyed by the event schema's field names; a missing feature is
    written as null on even lines and left out on odd ones (both mean missing)."""
    with open(path, "w", encoding="utf-8") as f:
        for i, ev in enumerate(events):
            obj = {k: v for k, v in ev.items() if v is not None or i % 2 == 0}
            f.write(json.dumps(obj, separators=(",", ":")) + "\n")
    return Path(path)


def group_offsets(group, admin=None):
    """A consumer group's committed offsets, {(topic, partition): offset}, from the admin API
    (ListConsumerGroupOffsets)."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    admin = admin or AdminClient({"bootstrap.servers": BOOTSTRAP})
    res = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                            request_timeout=10)
    got = res[group].result(15)
    return {(tp.topic, tp.partition): tp.offset for tp in got.topic_partitions}


def high_watermarks(topic):
    """end_offsets(topic) read by one short-lived consumer that joins no group (fast enough to
    call before and after every command of a test)."""
    c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": f"it-ends-{uuid.uuid4().hex[:12]}",
                  "enable.auto.commit": False})
    try:
        t = c.list_topics(topic, timeout=10).topics.get(topic)
        assert t is not None and t.error is None and t.partitions, f"topic {topic} not found"
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                           cached=False)[1] for p in sorted(t.partitions)}
    finally:
        c.close()


def redis_dumps(prefix):
    """Every key under prefix: {key: DUMP bytes} (the value byte for byte, not the TTL)."""
    return {k: v[0] for k, v in redis_snapshot(prefix).items()}


class Job:
    """One offline command (`streamscore replay ...`, `streamscore score-file ...`) run in
    the background, its stdout and stderr in files (stderr is then not a terminal)."""

    def __init__(self, args, out_dir, name="job", env=None):
        assert BIN.exists(), f"worker binary {BIN} not found: build it first"
        self.args = [str(a) for a in args]
        self.cmd = [str(BIN), *self.args]
        n = len(list(Path(out_dir).glob(f"{name}-*.stderr"))) + 1
        self.stdout_path = Path(out_dir) / f"{name}-{n}.stdout"
        self.stderr_path = Path(out_dir) / f"{name}-{n}.stderr"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.cmd, cwd=str(ROOT), stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=self._err, env=worker_env(env),
                                     start_new_session=True)
        _LIVE_WORKERS.add(self)

    def alive(self):
        return self.proc.poll() is None

    def stdout(self):
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def stderr(self):
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def describe(self, n=30):
        err = "\n".join(self.stderr().splitlines()[-n:])
        return (f"\n--- `streamscore {' '.join(self.args)}` (exit {self.proc.returncode}) ---\n"
                f"stdout: {self.stdout()[-2000:]}\nstderr tail:\n{err}\n---")

    def _close(self):
        for f in (self._out, self._err):
            if not f.closed:
                f.close()
        _LIVE_WORKERS.discard(self)

    def wait(self, timeout=120.0):
        """Wait for the exit; returns the exit code (a negative signal number if killed)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout:.0f}s" + self.describe())
        self._close()
        return rc

    def completed(self):
        """The finished job as a CompletedProcess (stdout, stderr as text)."""
        return subprocess.CompletedProcess(self.cmd, self.proc.returncode, self.stdout(),
                                           self.stderr())

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill(self):
        if self.alive():
            kill_group(self.proc)
        self._close()
