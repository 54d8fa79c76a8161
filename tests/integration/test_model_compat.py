"""Models saved as JSON or UBJSON, by XGBoost 3.2.0 or an older release, score the same in
the worker's model code as in Python XGBoost 3.2.0."""

import json
import subprocess

import numpy as np
import pytest

import harness as h

COMPAT = h.ROOT / "models" / "compat"
VECTORS = COMPAT / "vectors.json"


def _model_files():
    files = sorted(p for p in COMPAT.glob("*")
                   if p.suffix in (".json", ".ubj") and p.name != VECTORS.name
                   and not p.name.endswith(".card.json"))
    return files or [COMPAT / "(no model files)"]


def _load_vectors():
    data = json.loads(VECTORS.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data["vectors"]
    rows = []
    for v in data:
        if isinstance(v, dict):
            v = [v.get(n) for n in h.FEATURES]
        rows.append([np.nan if x is None else x for x in v])
    return np.asarray(rows, dtype=np.float32)


@pytest.mark.parametrize("predictor", ["xgboost", "compiled"])
@pytest.mark.parametrize("model_file", _model_files(), ids=lambda p: p.name)
def test_compat_model_scores_equal_python_xgboost(model_file, predictor):
    assert model_file.exists(), f"no model files in {COMPAT}"
    assert h.MODEL_SCORES_BIN.exists(), f"{h.MODEL_SCORES_BIN} not found: build it first"
    vectors = _load_vectors()
    assert len(vectors) > 0 and np.isnan(vectors).any(), \
        f"{VECTORS} should hold vectors, some with missing values"

    try:
        r = subprocess.run([str(h.MODEL_SCORES_BIN), str(model_file), str(VECTORS)]
                           + (["compiled"] if predictor == "compiled" else []),
                           capture_output=True, text=True, timeout=60, cwd=str(h.ROOT))
    except subprocess.TimeoutExpired:
        pytest.fail(f"{h.MODEL_SCORES_BIN.name} did not finish within 60s")
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
    scores = np.asarray(json.loads(r.stdout), dtype=np.float64)

    import xgboost as xgb

    booster = xgb.Booster(model_file=str(model_file))
    want = np.asarray(booster.inplace_predict(vectors, missing=np.nan), dtype=np.float64)
    assert scores.shape == want.shape, f"{scores.shape[0]} scores for {want.shape[0]} vectors"
    diff = np.abs(scores - want)
    worst = int(np.argmax(diff))
    assert diff.max() <= h.SCORE_TOL, (f"{int((diff > h.SCORE_TOL).sum())} scores differ; worst "
                                       f"vector {worst}: {scores[worst]!r} vs {want[worst]!r}")
    if predictor == "compiled":  # the compiled trees give XGBoost's float bits, not just close
        same = scores.astype(np.float32).view(np.uint32) == want.astype(np.float32).view(np.uint32)
        assert same.all(), f"{int((~same).sum())} of {len(same)} scores are not XGBoost's bits"
