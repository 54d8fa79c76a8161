#!/usr/bin/env python3
"""Make the model files of streamscore's cross-version model-loading test (models/compat/).

Trains one small churn model (20 trees, depth 3) on a fixed data set from churn_data.py with
the xgboost of the interpreter running this script, and saves it as
models/compat/churn-compat-<xgboost version>.json and .ubj. Run it with several interpreters
(--also-python) to get the same model saved by several xgboost releases; the C test loads each
file through the C API and compares its scores on vectors.json with Python xgboost's, computed
at test time. Also writes models/compat/vectors.json: feature vectors (NaN as null).

  .deps/venv/bin/python scripts/make_compat_models.py --also-python /tmp/venv-old/bin/python

Needs only numpy and xgboost (any release from 1.7 on).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import xgboost as xgb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import churn_data  # noqa: E402

DATA_ROWS = 2000
DATA_SEED = 7
ROUNDS = 20
PARAMS = {"objective": "binary:logistic", "tree_method": "hist", "max_depth": 3, "eta": 0.3,
          "nthread": 1, "seed": DATA_SEED, "base_score": 0.3}
VECTOR_SEED = 8
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "models", "compat")


def train():
    x, y = churn_data.training_set(DATA_ROWS, DATA_SEED)
    d = xgb.DMatrix(x, label=y, feature_names=churn_data.FEATURES,
                    feature_types=["q"] * len(churn_data.FEATURES), missing=np.nan)
    return xgb.train(PARAMS, d, num_boost_round=ROUNDS)


def vectors():
    """40 float32 feature vectors: typical customers (some with unknown attributes), customers
    with many NaNs, and edge rows (all missing, all zero, negative, huge)."""
    x, _ = churn_data.training_set(28, VECTOR_SEED)
    rng = np.random.default_rng(VECTOR_SEED)
    nan_mask = rng.random((8, x.shape[1])) < 0.5
    x[20:28][nan_mask] = np.nan
    n = len(churn_data.FEATURES)
    edge = np.array([
        [np.nan] * n,
        [0.0] * n,
        [-1.0] * n,
        [1e30] * n,
        [72, 149.99, 10799.28, 2, 9, 60, 4, 95.5, 1, 6, 180],
        [0, 18.0, 0.0, 0, 0, 0, 0, 0.0, 0, 1, 0],
        [1, 120.5, 120.5, 0, 5, 0, 3, 0.1, 0, 1, 90],
        [np.nan, 70.0, np.nan, 0, np.nan, 12, np.nan, 5.0, np.nan, 2, np.nan],
        [36, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
        [np.nan] * (n - 1) + [3.0],
        [12, 65.25, 783.0, 1, 1, 8, 0, 4.2, 1, 2, 3],
        [5, 99.9, 499.5, 0, 2, 1, 2, 1.3, 0, 3, 25],
    ], dtype=np.float32)
    x = np.vstack([x, edge]).astype(np.float32)
    return [[None if np.isnan(v) else float(v) for v in row] for row in x]


def write_vectors(out_dir):
    path = os.path.join(out_dir, "vectors.json")
    doc = {
        "description": "Feature vectors (model feature order, float32 values, null = missing) "
                       "for the cross-version model test; made by scripts/make_compat_models.py.",
        "feature_names": list(churn_data.FEATURES),
        "vectors": vectors(),
    }
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print("wrote %s (%d vectors)" % (path, len(doc["vectors"])))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default=DEFAULT_OUT)
    ap.add_argument("--also-python", action="append", default=[], metavar="PYTHON",
                    help="run this script with another interpreter (another xgboost) too")
    a = ap.parse_args(argv)
    os.makedirs(a.out_dir, exist_ok=True)
    booster = train()
    for ext in ("json", "ubj"):
        path = os.path.join(a.out_dir, "churn-compat-%s.%s" % (xgb.__version__, ext))
        booster.save_model(path)
        print("wrote %s (%d bytes, xgboost %s)" % (path, os.path.getsize(path), xgb.__version__))
    write_vectors(a.out_dir)
    for py in a.also_python:
        print("running %s %s" % (py, os.path.basename(__file__)))
        subprocess.run([py, os.path.abspath(__file__), "--out-dir", a.out_dir], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
