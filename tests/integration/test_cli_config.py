"""Configuration errors stop the worker before it starts: exit code 2, and stderr names the
key. --version and --help succeed. None of these needs Kafka or Redis."""

import hashlib
import json
import re
import subprocess

import pytest

import harness as h

BASE = {
    "input.topic": "it-cli-events",
    "output.topic": "it-cli-predictions",
    "input.schema": h.EVENT_SCHEMA_PATH,
    "output.schema": h.PREDICTION_SCHEMA_PATH,
    "model.path": h.PRIMARY_MODEL,
    "kafka.bootstrap.servers": h.BOOTSTRAP,
    "redis.port": h.REDIS_PORT,
}

CASES = {
    # id: (config changes, extra environment, extra arguments, what stderr must name)
    "unknown_key": ({"scoring.turbo": "true"}, {}, [], ["scoring.turbo"]),
    "bad_int": ({"worker.threads": "lots"}, {}, [], ["worker.threads"]),
    "out_of_range": ({"redis.port": "70000"}, {}, [], ["redis.port"]),
    "missing_model_path": ({"model.path": None}, {}, [], ["model.path"]),
    "bad_env_override": ({}, {"STREAMSCORE_BATCH_MAX_MESSAGES": "0"}, [],
                         ["batch.max.messages", "STREAMSCORE_BATCH_MAX_MESSAGES"]),
    "bad_command_line_override": ({}, {}, ["-X", "batch.max.wait.ms=soon"],
                                  ["batch.max.wait.ms"]),
}

# Errors found only once the files are read (check-config does not read them).
STARTUP_CASES = {
    "customer_id_field_missing": ({"input.customer.id.field": "cust"}, {}, [],
                                  ["input.customer.id.field"]),
    "customer_id_field_not_a_string": ({"input.schema": "@customer_id=long"}, {}, [],
                                       ["input.customer.id.field"]),
    "model_feature_not_in_the_schema": ({"input.schema": "@tenure_months=-"}, {}, [],
                                        ["input.schema"]),
    "schema_map_file_missing": ({"input.framing": "confluent",
                                 "input.schema.map": "1=/nonexistent/event.avsc"}, {}, [],
                                ["key 'input.schema.map': cannot load"]),
    "shadow_file_cannot_be_opened": ({"mode": "shadow", "shadow.output": "file",
                                      "shadow.file": "/nonexistent/dir/shadow.jsonl"}, {}, [],
                                     ["shadow.file"]),
}


def _event_schema_with(tmp_path, change):
    """The event schema with one field changed ("@<field>=<avro type>") or left out ("=-")."""
    field, avro_type = change[1:].split("=")
    schema = json.loads(open(h.EVENT_SCHEMA_PATH).read())
    fields = [f for f in schema["fields"] if f["name"] != field or avro_type != "-"]
    for f in fields:
        if f["name"] == field:
            f["type"] = avro_type
    schema["fields"] = fields
    path = tmp_path / "event.avsc"
    path.write_text(json.dumps(schema))
    return str(path)


def _config(tmp_path, changes=None):
    props = dict(BASE)
    for k, v in (changes or {}).items():
        if v is None:
            props.pop(k)
        elif k == "input.schema" and v.startswith("@"):
            props[k] = _event_schema_with(tmp_path, v)
        else:
            props[k] = v
    return h.write_properties(tmp_path / "worker.properties", props)


@pytest.mark.parametrize("case", list(CASES) + list(STARTUP_CASES),
                         ids=list(CASES) + list(STARTUP_CASES))
def test_config_error_exits_2_and_names_the_key(case, tmp_path):
    """Exit 2 and one plain 'streamscore: ' line naming the key the user wrote."""
    changes, env, args, names = {**CASES, **STARTUP_CASES}[case]
    cfg = _config(tmp_path, changes)

    r = h.run_cli(["run", "-c", str(cfg), *args], env=env)

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    assert any(n in r.stderr for n in names), \
        f"stderr does not name {' or '.join(names)}: {r.stderr[-2000:]}"
    plain = [line for line in r.stderr.splitlines() if line and not line.startswith("{")]
    assert len(plain) == 1 and plain[0].startswith("streamscore: "), \
        f"expected one plain 'streamscore: ' line, got {plain!r}"
    assert any(n in plain[0] for n in names), f"{plain[0]!r} does not name {names}"


def test_base_config_of_the_error_cases_is_accepted(tmp_path):
    """Each error case differs from this config by one key only: the worker must not reject
    it as a config error (it then fails or waits at run time: no broker listens there)."""
    cfg = _config(tmp_path, {"kafka.bootstrap.servers": "127.0.0.1:1"})
    w = h.Worker(cfg, tmp_path / "worker.log")
    try:
        try:
            rc = w.proc.wait(3)
        except Exception:  # noqa: BLE001 - still running: the config was accepted
            rc = None
        assert rc != 2, "a valid config was rejected (exit 2)" + w.describe()
    finally:
        w.kill()


def _pinned(name):
    """A version scripts/setup pins (RDKAFKA_VERSION=2.8.0 ...)."""
    text = (h.ROOT / "scripts" / "setup").read_text(encoding="utf-8")
    return re.search(rf"^{name}=(\S+)$", text, re.M).group(1)


def test_version_names_the_client_libraries_scripts_setup_builds():
    """librdkafka as loaded (Debian's librdkafka1 has the same SONAME: a build that loads it
    says 'built with'), hiredis with TLS, and the others it runs on."""
    r = h.run_cli(["--version"])
    assert r.returncode == 0, f"exit {r.returncode}; stderr: {r.stderr[-2000:]}"
    line = r.stdout.strip()
    assert re.fullmatch(r"streamscore \d+\.\d+\.\d+ \(.*\)", line), line
    assert f"librdkafka {_pinned('RDKAFKA_VERSION')}," in line, line
    assert f"hiredis {_pinned('HIREDIS_VERSION')}," in line, line
    assert "built with" not in line, line
    for lib in ("Avro C", "XGBoost", "OpenSSL"):
        assert re.search(rf"{lib} \d+\.\d+\.\d+", line), line


def test_help_exits_0_and_describes_usage():
    r = h.run_cli(["--help"])
    assert r.returncode == 0, f"exit {r.returncode}; stderr: {r.stderr[-2000:]}"
    out = r.stdout + r.stderr
    assert "run" in out and "-c" in out, f"--help does not describe `run -c FILE`: {out[:500]!r}"


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_check_config_rejects_what_run_rejects_naming_the_key(case, tmp_path):
    changes, env, args, names = CASES[case]
    cfg = _config(tmp_path, changes)
    r = h.run_cli(["check-config", "-c", str(cfg), *args], env=env)
    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    assert any(n in r.stderr for n in names), r.stderr[-2000:]


def test_check_config_accepts_a_valid_config_without_opening_its_files(tmp_path):
    cfg = _config(tmp_path, {"model.path": "/nonexistent/model.json",
                             "metrics.listen": "0.0.0.0:9464"})
    r = h.run_cli(["check-config", "-c", str(cfg)])
    assert r.returncode == 0, f"exit {r.returncode}; stderr: {r.stderr[-2000:]}"
    assert "configuration ok" in r.stdout and "/nonexistent/model.json" in r.stdout, r.stdout


def _model_scoring_infinity(path):
    """A regression model over the worker's features whose every leaf is 3e38: two trees sum
    to more than the largest float32, so every score, the probe rows' included, is +inf."""
    import json

    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(7)
    x = rng.random((64, len(h.FEATURES)))
    d = xgb.DMatrix(x, label=rng.random(64), feature_names=list(h.FEATURES))
    bst = xgb.train({"objective": "reg:squarederror", "max_depth": 1, "base_score": 0.5}, d,
                    num_boost_round=2)
    bst.save_model(str(path))
    doc = json.loads(path.read_text())
    for tree in doc["learner"]["gradient_booster"]["model"]["trees"]:
        for nid, left in enumerate(tree["left_children"]):
            if left == -1:
                tree["split_conditions"][nid] = 3e38
                tree["base_weights"][nid] = 3e38
    path.write_text(json.dumps(doc))
    assert not np.isfinite(xgb.Booster(model_file=str(path)).predict(d)).any()
    return path


def test_a_model_scoring_non_finite_is_refused_at_start_up(tmp_path):
    """Start-up runs the same check as a reload: the probe rows must score finite numbers,
    else the worker exits 2 naming the model before it consumes anything."""
    model = _model_scoring_infinity(tmp_path / "inf-model.json")
    cfg = _config(tmp_path, {"model.path": str(model), "model.name": "inf",
                             "model.version": "1", "kafka.bootstrap.servers": "127.0.0.1:1"})

    r = h.run_cli(["run", "-c", str(cfg)], timeout=30.0)

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    assert "not a finite number" in r.stderr and str(model) in r.stderr, r.stderr[-2000:]


def _plain(stderr):
    return [line for line in stderr.splitlines() if line and not line.startswith("{")]


PRIMARY_CARD = h.PRIMARY_MODEL.with_name(h.PRIMARY_MODEL.name.rsplit(".", 1)[0] + ".card.json")


def test_a_model_file_that_is_not_the_one_its_card_names_exits_2(tmp_path):
    """The card's model_sha256 is checked on the bytes loaded: a changed file (here one more
    newline, still the same model to XGBoost) never serves."""
    model = tmp_path / "churn.json"
    model.write_bytes(h.PRIMARY_MODEL.read_bytes() + b"\n")
    cfg = _config(tmp_path, {"model.path": str(model), "model.card": str(PRIMARY_CARD),
                             "kafka.bootstrap.servers": "127.0.0.1:1"})

    r = h.run_cli(["run", "-c", str(cfg)], timeout=30.0)

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    plain = _plain(r.stderr)
    assert len(plain) == 1 and "is not the one its card" in plain[0], plain
    assert hashlib.sha256(model.read_bytes()).hexdigest() in plain[0], plain[0]


def test_with_a_signature_key_an_unsigned_or_changed_model_exits_2(tmp_path):
    """model.signature.key: the model file needs an Ed25519 signature (openssl pkeyutl -rawin)
    that verifies; missing or not matching the bytes, the worker exits 2 naming the key."""
    key, pub = tmp_path / "signing.key", tmp_path / "signing.pub.pem"
    model = tmp_path / "churn.json"
    model.write_bytes(h.PRIMARY_MODEL.read_bytes())
    for cmd in (["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
                ["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)]):
        subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    cfg = _config(tmp_path, {"model.path": str(model), "model.card": str(PRIMARY_CARD),
                             "model.signature.key": str(pub),
                             "kafka.bootstrap.servers": "127.0.0.1:1"})

    r = h.run_cli(["run", "-c", str(cfg)], timeout=30.0)  # no churn.json.sig
    assert r.returncode == 2 and "model.signature" in "".join(_plain(r.stderr)), r.stderr[-2000:]

    subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(key), "-in",
                    str(model), "-out", str(model) + ".sig"], check=True, capture_output=True,
                   timeout=30)
    r = h.run_cli(["validate-model", "-c", str(cfg), "--data", str(h.ROOT / "models" / "data" /
                   "churn-holdout.avro"), "--no-update-card"], timeout=60.0)
    assert r.returncode == 0, f"the signed model was refused: {r.stderr[-2000:]}"
    model.write_bytes(h.PRIMARY_MODEL.read_bytes() + b" ")  # one byte more than was signed
    r = h.run_cli(["run", "-c", str(cfg)], timeout=30.0)
    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    plain = _plain(r.stderr)
    assert len(plain) == 1 and "does not verify" in plain[0], plain


def _prediction_schema_with(tmp_path, field, avro_type):
    """schemas/prediction.avsc with `field` of type `avro_type` (appended if the schema has no
    such field), written to a file of its own."""
    schema = h.load_schema_json(h.PREDICTION_SCHEMA_PATH)
    fields = schema["fields"]
    match = [f for f in fields if f["name"] == field]
    if match:
        match[0]["type"] = avro_type
    else:
        fields.append({"name": field, "type": avro_type})
    path = tmp_path / f"prediction-{field}.avsc"
    path.write_text(json.dumps(schema))
    return path


OUTPUT_SCHEMA_CASES = {
    # id: (field, its type in output.schema, what the plain line must say)
    "score_float": ("score", "float", "field 'score' is float, streamscore writes double"),
    "source_offset_int": ("source_offset", "int",
                          "field 'source_offset' is int, streamscore writes long"),
    "event_id_union_without_string": ("event_id", ["null", "int"],
                                      "field 'event_id' is [\"null\", \"int\"], streamscore "
                                      "writes string"),
    "extra_field_without_default": ("region", "string", "field 'region' is not one streamscore "
                                    "fills"),
}


@pytest.mark.parametrize("case", list(OUTPUT_SCHEMA_CASES), ids=list(OUTPUT_SCHEMA_CASES))
def test_an_output_schema_field_of_the_wrong_type_exits_2_with_one_plain_line(case, tmp_path):
    """Every field of output.schema is checked at start-up against the type streamscore writes
    (before, a float score or an int offset encoded as 0 with no error, and a nullable event_id
    failed every encode: exit 1 on every restart). No broker is needed: the worker stops
    before it connects."""
    field, avro_type, says = OUTPUT_SCHEMA_CASES[case]
    schema = _prediction_schema_with(tmp_path, field, avro_type)
    cfg = _config(tmp_path, {"output.schema": str(schema),
                             "kafka.bootstrap.servers": "127.0.0.1:1"})

    r = h.run_cli(["run", "-c", str(cfg)], timeout=30.0)

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    plain = [line for line in r.stderr.splitlines() if line and not line.startswith("{")]
    assert len(plain) == 1, f"expected one plain line, got {plain!r}; stderr: {r.stderr[-2000:]}"
    assert plain[0].startswith("streamscore: "), plain
    assert "output.schema" in plain[0] and says in plain[0], plain
