"""`streamscore validate-model`: a model scored on a labeled Avro data set, its metrics
checked against the validate.* gates and recorded in (a copy of) its card. The metrics are
recomputed here from the same data with Python XGBoost and scikit-learn."""

import copy
import hashlib
import json
import re
import shutil

import fastavro
import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

import harness as h

MODELS = h.ROOT / "models"
HOLDOUT = MODELS / "data" / "churn-holdout.avro"
GOOD = MODELS / "churn-1.0.0.json"
WEAK = MODELS / "data" / "churn-weak.json"
LABEL = "churned"
METRIC_TOL = 2e-6  # the card rounds metrics to 6 decimals
GATES = {"roc_auc": "validate.min.roc.auc", "precision": "validate.min.precision",
         "recall": "validate.min.recall", "f1": "validate.min.f1"}
DEFAULT_LIMITS = {"roc_auc": 0.85, "precision": 0.75, "recall": 0.70, "f1": 0.72}


def _card_path(model_path):
    return model_path.with_name(model_path.name[:-len(".json")] + ".card.json")


@pytest.fixture(scope="module", autouse=True)
def shipped_cards_untouched():
    """Every test works on copies: the shipped models and cards are byte-identical after."""
    paths = [GOOD, _card_path(GOOD), WEAK, _card_path(WEAK), HOLDOUT]
    missing = [str(p) for p in paths if not p.exists()]
    assert not missing, f"missing shipped files: {missing}"
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    yield
    changed = [str(p) for p in paths if hashlib.sha256(p.read_bytes()).hexdigest() != before[p]]
    assert not changed, f"validate-model tests modified shipped files: {changed}"


def _copy_model(model_path, tmp_path, drop_validation=True):
    """Copy a model and its card to tmp_path (the card without its "validation" object)."""
    dst = tmp_path / model_path.name
    shutil.copyfile(model_path, dst)
    card = json.loads(_card_path(model_path).read_text(encoding="utf-8"))
    if drop_validation:
        card.pop("validation", None)
    _card_path(dst).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return dst, card


def _config(tmp_path, model_path, extra=None):
    props = {"model.path": model_path, "input.schema": h.EVENT_SCHEMA_PATH}
    props.update(extra or {})
    return h.write_properties(tmp_path / "validate.properties", props)


def _validate(tmp_path, model_path, data=HOLDOUT, extra=None, args=()):
    cfg = _config(tmp_path, model_path, extra)
    return h.run_cli(["validate-model", "-c", str(cfg), "--data", str(data), *args], timeout=120)


def _read_holdout(path=HOLDOUT):
    with open(path, "rb") as f:
        return list(fastavro.reader(f))


def _reference_metrics(model_path, records, threshold):
    """Python XGBoost scores of the labeled records (features by name, per the contract),
    then scikit-learn's metrics at `threshold` (decision: score >= threshold)."""
    booster = h.booster(model_path)
    names = list(booster.feature_names)
    rows = [r for r in records if r.get(LABEL) is not None]
    x = np.array([[h.feature_value(n, r.get(n)) for n in names] for r in rows], dtype=np.float32)
    y = np.array([int(r[LABEL]) for r in rows])
    score = np.asarray(booster.inplace_predict(x, missing=np.nan), dtype=np.float64)
    pred = (score >= threshold).astype(int)
    return {"n": len(rows), "roc_auc": roc_auc_score(y, score),
            "precision": precision_score(y, pred, zero_division=0),
            "recall": recall_score(y, pred, zero_division=0),
            "f1": f1_score(y, pred, zero_division=0), "positive_rate": float(y.mean())}


def _fail_line(stdout):
    lines = [ln for ln in stdout.splitlines() if ln.startswith("FAIL")]
    assert len(lines) == 1, f"expected one FAIL line in the report:\n{stdout}"
    return lines[0]


def test_good_model_passes_and_its_card_records_metrics_that_match_sklearn(tmp_path):
    model, card_before = _copy_model(GOOD, tmp_path)
    result_json = tmp_path / "result.json"

    r = _validate(tmp_path, model, args=["--json", str(result_json)])

    assert r.returncode == 0, f"exit {r.returncode}; stdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    assert re.search(r"^PASS\b", r.stdout, re.M), f"no PASS line:\n{r.stdout}"
    card = json.loads(_card_path(model).read_text(encoding="utf-8"))
    assert "validation" in card, "the card did not gain a \"validation\" object"
    v = card.pop("validation")
    assert card == card_before, "validate-model changed other keys of the card"

    threshold = card_before["threshold"]  # model.threshold unset: the card decides
    records = _read_holdout()
    ref = _reference_metrics(model, records, threshold)
    assert v["passed"] is True
    assert v["threshold"] == pytest.approx(threshold, abs=1e-12)
    assert v["n"] == ref["n"]
    assert v["records"]["read"] == len(records)
    assert v["label_field"] == LABEL
    assert v["data_sha256"] == hashlib.sha256(HOLDOUT.read_bytes()).hexdigest()
    assert v["model_bytes"] == model.stat().st_size
    wrong = {k: (v["metrics"][k], ref[k]) for k in ("roc_auc", "precision", "recall", "f1",
                                                     "positive_rate")
             if not abs(v["metrics"][k] - ref[k]) <= METRIC_TOL}
    assert not wrong, f"card metrics differ from scikit-learn on Python XGBoost scores: {wrong}"
    for name in GATES:
        g = v["gates"][name]
        assert g["passed"] is True and g["threshold"] == pytest.approx(DEFAULT_LIMITS[name])
        assert abs(g["value"] - ref[name]) <= METRIC_TOL
    assert v["gates"]["features_present"]["passed"] is True
    assert v["gates"]["features_present"]["missing"] == []

    doc = json.loads(result_json.read_text(encoding="utf-8"))
    assert doc["validation"] == v, "--json and the card disagree"


def test_weak_model_fails_naming_each_failed_gate(tmp_path):
    model, card_before = _copy_model(WEAK, tmp_path)
    ref = _reference_metrics(model, _read_holdout(), card_before["threshold"])
    should_fail = sorted(n for n in GATES if ref[n] < DEFAULT_LIMITS[n])
    assert should_fail, f"the weak model meets every default gate: {ref}"

    r = _validate(tmp_path, model)

    assert r.returncode == 3, f"exit {r.returncode}, expected 3; stdout:\n{r.stdout}\n" \
                              f"stderr:\n{r.stderr[-3000:]}"
    fail = _fail_line(r.stdout)
    unnamed = [n for n in should_fail if n not in fail or GATES[n] not in fail]
    assert not unnamed, f"FAIL line does not name {unnamed}: {fail}"
    wrongly = [n for n in GATES if n not in should_fail and GATES[n] in fail]
    assert not wrongly, f"FAIL line names gates that pass: {wrongly}: {fail}"
    v = json.loads(_card_path(model).read_text(encoding="utf-8"))["validation"]
    assert v["passed"] is False
    assert sorted(n for n in GATES if not v["gates"][n]["passed"]) == should_fail


def test_stricter_gate_from_the_command_line_fails_a_good_model(tmp_path):
    model, _ = _copy_model(GOOD, tmp_path)
    card_bytes = _card_path(model).read_bytes()

    r = _validate(tmp_path, model, args=["-X", "validate.min.roc.auc=0.999", "--no-update-card"])

    assert r.returncode == 3, f"exit {r.returncode}, expected 3; stdout:\n{r.stdout}\n" \
                              f"stderr:\n{r.stderr[-3000:]}"
    fail = _fail_line(r.stdout)
    assert "validate.min.roc.auc" in fail and "roc_auc" in fail, fail
    others = [k for n, k in GATES.items() if n != "roc_auc" and k in fail]
    assert not others, f"only the ROC-AUC gate should fail: {fail}"
    assert _card_path(model).read_bytes() == card_bytes, "--no-update-card changed the card"


def test_data_lacking_a_model_feature_fails_naming_the_feature(tmp_path):
    model, _ = _copy_model(GOOD, tmp_path)
    dropped = "support_calls_30d"
    with open(HOLDOUT, "rb") as f:
        reader = fastavro.reader(f)
        schema = copy.deepcopy(reader.writer_schema)
        records = [rec for _, rec in zip(range(600), reader)]
    schema["fields"] = [fd for fd in schema["fields"] if fd["name"] != dropped]
    data = tmp_path / "holdout-without-feature.avro"
    with open(data, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema),
                        [{k: v for k, v in rec.items() if k != dropped} for rec in records])

    r = _validate(tmp_path, model, data=data, args=["--no-update-card"])

    assert r.returncode in (2, 3), f"exit {r.returncode}, expected 3 (gate) or 2 (error); " \
                                   f"stdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    assert dropped in r.stdout + r.stderr, f"the output does not name {dropped}:\n{r.stdout}\n" \
                                           f"{r.stderr[-2000:]}"
    if r.returncode == 3:
        assert dropped in _fail_line(r.stdout)
