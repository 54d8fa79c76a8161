"""`streamscore validate-model`: a model scored on a labeled Avro data set, its metrics
checked against the validate.* gates of its task (binary, regression, multi-class; none for
ranking), over the whole data set and over the segments of validate.segment.field, and recorded
in (a copy of) its card. The metrics are recomputed here from the same data with Python XGBoost
and scikit-learn; the regression, multi-class and ranking models are trained here."""

import copy
import hashlib
import json
import re
import shutil
import warnings

import fastavro
import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, f1_score, log_loss, mean_absolute_error,
                             precision_score, r2_score, recall_score, roc_auc_score,
                             root_mean_squared_error)

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
REGRESSION_GATES = {"rmse": "validate.max.rmse", "mae": "validate.max.mae",
                    "r2": "validate.min.r2"}
MULTICLASS_GATES = {"log_loss": "validate.max.log.loss", "accuracy": "validate.min.accuracy",
                    "macro_f1": "validate.min.macro.f1"}
SEGMENT_FIELD = "region"


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


def test_good_model_result_names_its_task_and_no_gate_of_another_task(tmp_path):
    model, _ = _copy_model(GOOD, tmp_path)

    r = _validate(tmp_path, model, args=["--no-update-card", "--json", str(tmp_path / "r.json")])

    assert r.returncode == 0, f"exit {r.returncode}; stdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    v = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["validation"]
    assert (v["task"], v["objective"]) == ("binary", "binary:logistic")
    assert v["not_applicable"] == [], v["not_applicable"]
    other = [n for n in REGRESSION_GATES | MULTICLASS_GATES
             if n in v["gates"] or n in v["metrics"] or re.search(rf"^  {n}\s", r.stdout, re.M)]
    assert not other, f"a binary model shows gates of other tasks: {other}\n{r.stdout}"
    assert "segments" not in v and "segments by" not in r.stdout


# --------------------------------------------------------------------------- segments, binary

def _segment_rows(seg_json):
    """{segment value: its entry} of the result's "segments"."""
    values = seg_json["values"]
    rows = {e["value"]: e for e in values}
    assert len(rows) == len(values), f"a segment value appears twice: {values}"
    return rows


def test_binary_segments_of_an_enum_field_match_sklearn_and_the_worst_gated_one_fails_a_gate(
        tmp_path):
    model, card = _copy_model(GOOD, tmp_path)
    records = _read_holdout()
    threshold = card["threshold"]
    groups = {}
    for rec in records:
        groups.setdefault(rec["contract_type"], []).append(rec)
    min_records = 100
    small = [k for k, g in groups.items() if len(g) < min_records]
    assert small == [None], f"holdout segments changed: { {k: len(g) for k, g in groups.items()} }"
    ref = {k: _reference_metrics(model, g, threshold) for k, g in groups.items()}
    whole = _reference_metrics(model, records, threshold)
    gated = {k: m for k, m in ref.items() if len(groups[k]) >= min_records}
    worst_recall = min(gated, key=lambda k: gated[k]["recall"])
    worst_auc = min(gated, key=lambda k: gated[k]["roc_auc"])
    recall_gate = (gated[worst_recall]["recall"] + whole["recall"]) / 2
    assert gated[worst_recall]["recall"] + 1e-3 < recall_gate < whole["recall"] - 1e-3
    auc_gate = gated[worst_auc]["roc_auc"] - 0.01  # the worst segment passes this one

    r = _validate(tmp_path, model, args=[
        "--no-update-card", "--json", str(tmp_path / "r.json"),
        "-X", "validate.segment.field=contract_type",
        "-X", "validate.segment.gates=validate.min.recall, validate.min.roc.auc",
        "-X", f"validate.segment.min.records={min_records}",
        "-X", f"validate.min.recall={recall_gate!r}", "-X", f"validate.min.roc.auc={auc_gate!r}"])

    assert r.returncode == 3, f"exit {r.returncode}, expected 3; stdout:\n{r.stdout}\n" \
                              f"stderr:\n{r.stderr[-3000:]}"
    v = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["validation"]
    assert v["gates"]["recall"]["passed"] is True and v["gates"]["roc_auc"]["passed"] is True, \
        f"the whole data set should pass: {v['gates']}"
    seg = v["segments"]
    assert (seg["field"], seg["min_records"], seg["gated"]) == ("contract_type", min_records, 3)
    rows = _segment_rows(seg)
    assert set(rows) == set(groups), \
        f"segments {sorted(map(str, rows))} != {sorted(map(str, groups))}"
    for k, e in rows.items():
        assert e["n"] == ref[k]["n"] and e["gated"] is (k is not None), (k, e)
        wrong = {m: (e["metrics"][m], ref[k][m]) for m in ("roc_auc", "precision", "recall", "f1",
                                                            "positive_rate")
                 if not abs(e["metrics"][m] - ref[k][m]) <= METRIC_TOL}
        assert not wrong, f"segment {k}: metrics differ from scikit-learn: {wrong}"
    g = seg["gates"]
    assert set(g) == {"recall", "roc_auc"}, g
    assert g["recall"]["segment"] == worst_recall and g["recall"]["passed"] is False
    assert abs(g["recall"]["value"] - gated[worst_recall]["recall"]) <= METRIC_TOL
    assert g["roc_auc"]["segment"] == worst_auc and g["roc_auc"]["passed"] is True
    assert v["passed"] is False
    fail = _fail_line(r.stdout)
    assert "worst segment recall" in fail and f"contract_type={worst_recall}" in fail, fail
    assert "roc_auc" not in fail, f"only the segment recall gate fails: {fail}"
    table = r.stdout[r.stdout.index("segments by contract_type"):]
    for k in groups:
        shown = "(null)" if k is None else k
        assert re.search(rf"^  {re.escape(shown)}\s+{len(groups[k])}\s", table, re.M), \
            f"no table row for segment {shown} with {len(groups[k])} records:\n{table}"


# --------------------------------------------------------------------------- trained models

N_TRAIN, N_HOLD = 4000, 3000
BAD_SEGMENT, SMALL_SEGMENT, N_SMALL = "east", "west", 40
REG_LABEL, CLS_LABEL, RANK_LABEL = "target", "klass", "relevance"
N_CLASSES = 3


def _events(rng, n):
    """Events with 6 to 11 of the 11 features (the rest null, missing to the model)."""
    return [h.make_event(f"C{i:06d}", 1_700_000_000_000 + i, rng,
                         **h.random_features(rng, 6, len(h.FEATURES))) for i in range(n)]


def _matrix(records):
    return np.array([[h.feature_value(n, r.get(n)) for n in h.FEATURES] for r in records],
                    dtype=np.float32)


def _signal(x):
    """What the labels depend on: a few features, missing ones counted as 0."""
    z = np.nan_to_num(x.astype(np.float64), nan=0.0)
    f = {n: z[:, i] for i, n in enumerate(h.FEATURES)}
    return (0.04 * f["tenure_months"] + 0.02 * f["monthly_charges"] + 0.35 * f["support_calls_30d"]
            - 0.6 * f["has_autopay"] + 0.8 * f["contract_type"] - 0.01 * f["logins_30d"])


def _classes(score):
    return np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))


def _save_model(booster, path, name):
    booster.save_model(str(path))
    _card_path(path).write_text(json.dumps({"name": name, "version": "1.0.0",
                                            "feature_names": h.FEATURES}, indent=2) + "\n",
                                encoding="utf-8")
    return path


def _write_data(path, records, label, label_type):
    schema = h._strip_logical_types(h.load_schema_json(h.EVENT_SCHEMA_PATH))
    schema["fields"] += [{"name": SEGMENT_FIELD, "type": ["null", "string"], "default": None},
                         {"name": label, "type": ["null", label_type], "default": None}]
    with open(path, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), records)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A regression, a multi:softprob and a rank:pairwise model trained on events with missing
    features, and a holdout data set for each: segments north, south, east (its labels made
    worse) and a small west (worse still, under validate.segment.min.records), a few null;
    some labels null, and for the multi-class set some outside the classes."""
    import xgboost as xgb

    d = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(20261123)
    train = _events(rng, N_TRAIN)
    xt = _matrix(train)
    st = _signal(xt)
    dm = dict(missing=np.nan, feature_names=h.FEATURES)
    params = {"max_depth": 4, "eta": 0.3, "nthread": 1, "seed": 1}
    reg = xgb.train({**params, "objective": "reg:squarederror"},
                    xgb.DMatrix(xt, label=st + rng.normal(0, 0.5, N_TRAIN), **dm), 40)
    cls = xgb.train({**params, "objective": "multi:softprob", "num_class": N_CLASSES},
                    xgb.DMatrix(xt, label=_classes(st + rng.normal(0, 0.4, N_TRAIN)), **dm), 30)
    rank = xgb.train({**params, "objective": "rank:pairwise"},
                     xgb.DMatrix(xt, label=_classes(st), qid=np.arange(N_TRAIN) // 20, **dm), 10)

    hold = _events(rng, N_HOLD)
    xh = _matrix(hold)
    sh = _signal(xh)
    region = rng.choice(["north", "south", BAD_SEGMENT], size=N_HOLD, p=[0.4, 0.35, 0.25])
    region = region.astype(object)
    region[:N_SMALL] = SMALL_SEGMENT
    region[N_SMALL:N_SMALL + 150] = None
    bad, small = region == BAD_SEGMENT, region == SMALL_SEGMENT
    y_reg = sh + rng.normal(0, 0.5, N_HOLD)
    y_reg[bad] += rng.normal(0, 3.0, int(bad.sum()))
    y_reg[small] += 4.0
    y_cls = _classes(sh + rng.normal(0, 0.4, N_HOLD))
    flip = bad & (rng.random(N_HOLD) < 0.6)
    y_cls[flip] = rng.integers(0, N_CLASSES, int(flip.sum()))
    y_cls[small] = rng.integers(0, N_CLASSES, int(small.sum()))
    reg_rows, cls_rows = [], []
    for i, ev in enumerate(hold):
        unlabeled = i % 150 == 7
        reg_rows.append({**ev, SEGMENT_FIELD: region[i],
                         REG_LABEL: None if unlabeled else float(y_reg[i])})
        label = None if unlabeled else 5 if i % 400 == 11 else int(y_cls[i])
        cls_rows.append({**ev, SEGMENT_FIELD: region[i], CLS_LABEL: label})
    rank_rows = [{**ev, SEGMENT_FIELD: region[i], RANK_LABEL: int(c)}
                 for i, (ev, c) in enumerate(zip(hold, _classes(sh)))]
    return {
        "reg": _save_model(reg, d / "reg-1.0.0.json", "reg"),
        "cls": _save_model(cls, d / "cls-1.0.0.json", "cls"),
        "rank": _save_model(rank, d / "rank-1.0.0.json", "rank"),
        "reg_data": _write_data(d / "reg.avro", reg_rows, REG_LABEL, "double"),
        "cls_data": _write_data(d / "cls.avro", cls_rows, CLS_LABEL, "int"),
        "rank_data": _write_data(d / "rank.avro", rank_rows, RANK_LABEL, "int"),
        "reg_rows": reg_rows, "cls_rows": cls_rows,
    }


def _copy_trained(trained, key, tmp_path):
    dst = tmp_path / trained[key].name
    shutil.copyfile(trained[key], dst)
    shutil.copyfile(_card_path(trained[key]), _card_path(dst))
    return dst


def _run_trained(trained, key, tmp_path, settings=(), label=None):
    """validate-model of trained model `key` on its data, with -X settings; (result, doc)."""
    model = _copy_trained(trained, key, tmp_path)
    out = tmp_path / "result.json"
    args = ["--json", str(out), "-X", f"validate.label.field={label}"]
    for kv in settings:
        args += ["-X", kv]
    r = _validate(tmp_path, model, data=trained[f"{key}_data"], args=args)
    doc = json.loads(out.read_text(encoding="utf-8")) if out.exists() else None
    return r, doc, model


def _reg_reference(model, rows):
    rows = [r for r in rows if r[REG_LABEL] is not None]
    y = np.array([r[REG_LABEL] for r in rows])
    s = np.asarray(h.booster(model).inplace_predict(_matrix(rows), missing=np.nan),
                   dtype=np.float64)
    return {"n": len(rows), "rmse": root_mean_squared_error(y, s),
            "mae": mean_absolute_error(y, s), "r2": r2_score(y, s)}


def _cls_reference(model, rows):
    rows = [r for r in rows if r[CLS_LABEL] is not None and 0 <= r[CLS_LABEL] < N_CLASSES]
    y = np.array([r[CLS_LABEL] for r in rows])
    p = np.asarray(h.booster(model).inplace_predict(_matrix(rows), missing=np.nan),
                   dtype=np.float64)
    assert p.shape == (len(rows), N_CLASSES), p.shape
    pred = p.argmax(axis=1)
    with warnings.catch_warnings():  # float32 probabilities sum to 1 within float32 only
        warnings.simplefilter("ignore", UserWarning)
        loss = log_loss(y, p, labels=list(range(N_CLASSES)))
    return {"n": len(rows), "log_loss": loss,
            "accuracy": accuracy_score(y, pred),
            "macro_f1": f1_score(y, pred, average="macro", zero_division=0)}


def _by_segment(rows, reference, model):
    groups = {}
    for r in rows:
        groups.setdefault(r[SEGMENT_FIELD], []).append(r)
    return {k: reference(model, g) for k, g in groups.items()}


def _assert_close(got, ref, names, what):
    wrong = {n: (got[n], ref[n]) for n in names if not abs(got[n] - ref[n]) <= 1e-6}
    assert not wrong, f"{what}: streamscore vs scikit-learn on Python XGBoost scores: {wrong}"


def _assert_not_applicable(r, v, task, names):
    """Gates of other tasks: listed as not applicable, neither checked nor given a value."""
    assert sorted(v["not_applicable"]) == sorted(names), v["not_applicable"]
    for n in names:
        assert n not in v["gates"] and n not in v["metrics"], f"{n} given a value: {v}"
        assert re.search(rf"^  {n}\s+n/a\s+not applicable to {task}\b.*\s-$", r.stdout, re.M), \
            f"no 'not applicable' row for {n}:\n{r.stdout}"


def test_regression_model_reports_rmse_mae_r2_of_sklearn_and_binary_gates_do_not_apply(
        trained, tmp_path):
    r, doc, model = _run_trained(trained, "reg", tmp_path, label=REG_LABEL)

    assert r.returncode == 0, f"exit {r.returncode}; stdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    v = doc["validation"]
    ref = _reg_reference(model, trained["reg_rows"])
    assert (v["task"], v["objective"], v["n"]) == ("regression", "reg:squarederror", ref["n"])
    assert v["records"]["unlabeled"] == N_HOLD - ref["n"] > 0
    assert v["threshold"] is None
    _assert_close(v["metrics"], ref, ["rmse", "mae", "r2"], "whole data set")
    assert sorted(v["not_checked"]) == ["batch_p99_ms", "mae", "r2", "rmse"], v["not_checked"]
    _assert_not_applicable(r, v, "regression", ["roc_auc", "precision", "recall", "f1"])
    for n, key in REGRESSION_GATES.items():
        assert re.search(rf"^  {n}\s+\S+\s+not checked \({re.escape(key)}\)", r.stdout, re.M), \
            f"no row for {n}:\n{r.stdout}"
    assert "PASS" in r.stdout
    card = json.loads(_card_path(model).read_text(encoding="utf-8"))
    assert card["validation"] == v, "--json and the card disagree"


@pytest.mark.parametrize("gate", list(REGRESSION_GATES))
@pytest.mark.parametrize("side", ["pass", "fail"])
def test_a_regression_gate_passes_or_fails_by_its_threshold(trained, tmp_path, gate, side):
    ref = _reg_reference(trained["reg"], trained["reg_rows"])
    key = REGRESSION_GATES[gate]
    lenient = 1e-3 if key.startswith("validate.max") else -1e-3
    threshold = ref[gate] + (lenient if side == "pass" else -lenient)

    r, doc, _ = _run_trained(trained, "reg", tmp_path, [f"{key}={threshold!r}"], label=REG_LABEL)

    expected = 0 if side == "pass" else 3
    assert r.returncode == expected, f"exit {r.returncode}, expected {expected}; " \
                                     f"stdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    g = doc["validation"]["gates"][gate]
    assert g["passed"] is (side == "pass") and g["threshold"] == pytest.approx(threshold)
    if side == "fail":
        fail = _fail_line(r.stdout)
        assert key in fail and all(k not in fail for k in REGRESSION_GATES.values() if k != key)


def test_multiclass_model_reports_log_loss_accuracy_macro_f1_of_sklearn_per_segment_too(
        trained, tmp_path):
    r, doc, model = _run_trained(trained, "cls", tmp_path, label=CLS_LABEL, settings=[
        f"validate.segment.field={SEGMENT_FIELD}"])

    assert r.returncode == 0, f"exit {r.returncode}; stdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    v = doc["validation"]
    rows = trained["cls_rows"]
    ref = _cls_reference(model, rows)
    out_of_range = sum(1 for x in rows if x[CLS_LABEL] is not None and x[CLS_LABEL] >= N_CLASSES)
    assert out_of_range > 0
    assert (v["task"], v["objective"], v["n"]) == ("multiclass", "multi:softprob", ref["n"])
    assert v["records"]["bad_label"] == out_of_range, v["records"]
    assert v["metrics"]["n_classes"] == N_CLASSES
    _assert_close(v["metrics"], ref, list(MULTICLASS_GATES), "whole data set")
    _assert_not_applicable(r, v, "multiclass", ["roc_auc", "precision", "recall", "f1"])
    segs = _segment_rows(v["segments"])
    seg_ref = _by_segment(rows, _cls_reference, model)
    assert set(segs) == set(seg_ref), sorted(map(str, segs))
    for k, e in segs.items():
        assert e["n"] == seg_ref[k]["n"], (k, e["n"], seg_ref[k]["n"])
        assert e["gated"] is (seg_ref[k]["n"] >= 100), (k, e)
        _assert_close(e["metrics"], seg_ref[k], list(MULTICLASS_GATES), f"segment {k}")
    assert seg_ref[BAD_SEGMENT]["accuracy"] < ref["accuracy"] - 0.1, "the bad segment is not bad"
    assert v["segments"]["gates"] == {} and v["segments"]["not_applicable"] == []


@pytest.mark.parametrize("gate", list(MULTICLASS_GATES))
@pytest.mark.parametrize("side", ["pass", "fail"])
def test_a_multiclass_gate_passes_or_fails_by_its_threshold(trained, tmp_path, gate, side):
    ref = _cls_reference(trained["cls"], trained["cls_rows"])
    key = MULTICLASS_GATES[gate]
    lenient = 1e-3 if key.startswith("validate.max") else -1e-3
    threshold = ref[gate] + (lenient if side == "pass" else -lenient)

    r, doc, _ = _run_trained(trained, "cls", tmp_path, [f"{key}={threshold!r}"], label=CLS_LABEL)

    expected = 0 if side == "pass" else 3
    assert r.returncode == expected, f"exit {r.returncode}, expected {expected}; " \
                                     f"stdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    g = doc["validation"]["gates"][gate]
    assert g["passed"] is (side == "pass") and g["threshold"] == pytest.approx(threshold)
    if side == "fail":
        fail = _fail_line(r.stdout)
        assert key in fail and all(k not in fail for k in MULTICLASS_GATES.values() if k != key)


@pytest.mark.parametrize("key,gate", [("reg", "rmse"), ("cls", "accuracy")])
def test_a_segment_gate_fails_on_one_bad_segment_while_the_whole_data_set_passes(
        trained, tmp_path, key, gate):
    model = trained[key]
    rows = trained[f"{key}_rows"]
    reference = _reg_reference if key == "reg" else _cls_reference
    gates = REGRESSION_GATES if key == "reg" else MULTICLASS_GATES
    whole = reference(model, rows)
    seg = _by_segment(rows, reference, model)
    sign = 1 if gates[gate].startswith("validate.max") else -1  # +1: larger is worse
    assert sign * (seg[SMALL_SEGMENT][gate] - seg[BAD_SEGMENT][gate]) > 0, \
        "the small segment should be the worst of all, to be left out by min.records"
    gated = {k: m for k, m in seg.items() if m["n"] >= 100}
    assert SMALL_SEGMENT not in gated and BAD_SEGMENT in gated
    assert max(gated, key=lambda k: sign * gated[k][gate]) == BAD_SEGMENT
    threshold = (whole[gate] + seg[BAD_SEGMENT][gate]) / 2
    settings = [f"{gates[gate]}={threshold!r}", f"validate.segment.field={SEGMENT_FIELD}",
                f"validate.segment.gates={gates[gate]}", "validate.segment.min.records=100"]

    r, doc, _ = _run_trained(trained, key, tmp_path, settings,
                             label=REG_LABEL if key == "reg" else CLS_LABEL)

    assert r.returncode == 3, f"exit {r.returncode}, expected 3; stdout:\n{r.stdout}\n" \
                              f"stderr:\n{r.stderr[-3000:]}"
    v = doc["validation"]
    assert v["gates"][gate]["passed"] is True, f"the whole data set should pass: {v['gates']}"
    sg = v["segments"]["gates"][gate]
    assert sg["segment"] == BAD_SEGMENT and sg["passed"] is False, sg
    assert abs(sg["value"] - seg[BAD_SEGMENT][gate]) <= 1e-6, (sg, seg[BAD_SEGMENT])
    segs = _segment_rows(v["segments"])
    assert segs[SMALL_SEGMENT]["gated"] is False and segs[BAD_SEGMENT]["gated"] is True
    assert segs[None]["n"] == seg[None]["n"], "the null segment is missing or miscounted"
    fail = _fail_line(r.stdout)
    assert f"worst segment {gate}" in fail and f"{SEGMENT_FIELD}={BAD_SEGMENT}" in fail, fail
    assert f"; {gate} " not in fail and not fail.startswith(f"FAIL: {gate} "), \
        f"the whole data set's gate is named as failed: {fail}"
    table = r.stdout[r.stdout.index(f"segments by {SEGMENT_FIELD}"):]
    assert re.search(rf"^  {gate}\s+\S+\s+.*{re.escape(gates[gate])}.*\sFAIL\s+{BAD_SEGMENT}$",
                     table, re.M), f"no failed worst-segment row:\n{table}"
    for k, m in seg.items():
        shown = "(null)" if k is None else k
        assert re.search(rf"^  {re.escape(shown)}\s+{m['n']}\s", table, re.M), \
            f"no row for segment {shown} with {m['n']} records:\n{table}"


def test_ranking_has_no_quality_gate_but_the_model_size_gate_still_applies(trained, tmp_path):
    r, doc, _ = _run_trained(trained, "rank", tmp_path, label=RANK_LABEL)

    assert r.returncode == 0, f"exit {r.returncode}; stdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    v = doc["validation"]
    assert v["task"] == "ranking" and v["n"] == N_HOLD
    assert "no quality gate applies to ranking" in r.stdout, r.stdout
    assert set(v["gates"]) == {"model_mb", "features_present"}, v["gates"]
    _assert_not_applicable(r, v, "ranking", ["roc_auc", "precision", "recall", "f1"])

    (tmp_path / "small").mkdir()
    r, doc, _ = _run_trained(trained, "rank", tmp_path / "small", ["validate.max.model.mb=0.001"],
                             label=RANK_LABEL)

    assert r.returncode == 3, f"exit {r.returncode}, expected 3; stdout:\n{r.stdout}"
    assert "validate.max.model.mb" in _fail_line(r.stdout)
    assert doc["validation"]["gates"]["model_mb"]["passed"] is False


@pytest.mark.parametrize("settings,named", [
    (["validate.segment.gates=validate.min.roc.auc,validate.min.nope"], "validate.min.nope"),
    (["validate.segment.gates=validate.max.model.mb"], "validate.max.model.mb"),
    (["validate.segment.gates=validate.max.rmse"], "validate.max.rmse"),
    (["validate.segment.field=", "validate.segment.gates=validate.min.roc.auc"],
     "validate.segment.field"),
], ids=["unknown", "not-a-quality-gate", "not-checked", "no-segment-field"])
def test_a_bad_segment_gates_setting_exits_2_with_one_line_naming_it(tmp_path, settings, named):
    model, _ = _copy_model(GOOD, tmp_path)
    if not any(kv.startswith("validate.segment.field=") for kv in settings):
        settings = ["validate.segment.field=contract_type", *settings]
    args = ["--no-update-card"]
    for kv in settings:
        args += ["-X", kv]

    r = _validate(tmp_path, model, args=args)

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stdout:\n{r.stdout}\n" \
                              f"stderr:\n{r.stderr[-3000:]}"
    plain = [ln for ln in r.stderr.splitlines() if ln and not ln.startswith("{")]
    assert len(plain) == 1 and "validate.segment.gates" in plain[0] and named in plain[0], plain
    assert "PASS" not in r.stdout and "FAIL" not in r.stdout


def test_a_segment_field_the_data_lacks_exits_2_naming_it(tmp_path):
    model, _ = _copy_model(GOOD, tmp_path)

    r = _validate(tmp_path, model, args=["--no-update-card", "-X", "validate.segment.field=region"])

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr:\n{r.stderr[-3000:]}"
    plain = [ln for ln in r.stderr.splitlines() if ln and not ln.startswith("{")]
    assert len(plain) == 1 and "validate.segment.field" in plain[0] and "'region'" in plain[0], \
        plain
