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

KAFKA_PORT = 39092
KAFKA_CONTROLLER_PORT = 39093
REDIS_PORT = 36379
BOOTSTRAP = f"127.0.0.1:{KAFKA_PORT}"

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


def in_partition_order(events, placed):
    """Events sorted by (partition, offset) with their placement."""
    order = sorted(range(len(events)), key=lambda i: placed[i])
    return [events[i] for i in order], [placed[i] for i in order]


class TopicReader:
    """Reads a topic from the beginning of every partition (no group, no commits)."""

    def __init__(self, topic, decode="avro"):
        self.topic = topic
        self.decode = decode
        self.records = []
        self.undecodable = []
        self.c = Consumer({"bootstrap.servers": BOOTSTRAP,
                           "group.id": f"it-reader-{uuid.uuid4().hex[:12]}",
                           "enable.auto.commit": False,
                           "auto.offset.reset": "earliest",
                           "enable.partition.eof": True})
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
               "_raw": raw}
        try:
            if self.decode == "avro":
                rec.update(decode_prediction(raw))
            elif self.decode == "json":
                rec.update(json.loads(raw.decode("utf-8")))
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


_LIVE_WORKERS = set()


@atexit.register
def _kill_live_workers():
    for w in list(_LIVE_WORKERS):
        w.kill()


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

    def stop(self, timeout=30.0):
        """SIGTERM, then assert a clean exit (code 0) within timeout."""
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
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
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


def wait_group_assigned(admin, group, topic, n_partitions, timeout=30.0, worker=None):
    """Wait until the consumer group is stable with every partition of topic assigned."""
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
            last = (desc.state, assigned)
            if desc.state == ConsumerGroupState.STABLE and assigned == n_partitions:
                return
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(0.2)
    raise AssertionError(f"group {group} not stable with {n_partitions} partitions of {topic} "
                         f"within {timeout}s: last {last}"
                         + (worker.describe() if worker else ""))
