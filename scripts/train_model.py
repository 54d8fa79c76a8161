#!/usr/bin/env python3
"""Train a churn model for streamscore and write its model file and model card.

Data come from scripts/churn_data.py (synthetic, seeded). The model is an XGBoost
binary:logistic booster whose feature_names are the 11 contract features, in order, so the
worker maps event fields to features by name. Training is deterministic (fixed seeds,
nthread 1, hist). The script fails (exit 1) if the held-out ROC-AUC is below --min-auc.

Rows: the first 20 % are the test split (the card's metrics), the next 15 % the validation
split, the rest the training split. The decision threshold written to the card is the one that
maximises F1 on the validation split (grid 0.05..0.95, step 0.01) unless --threshold is given;
it is the value to set as model.threshold in the worker's configuration.

Presets: 1.0.0 = the primary model; 1.1.0 = the candidate (more data, a later, more
price-sensitive cohort, deeper trees, row/column subsampling). Other versions use the
1.0.0 preset; every preset value can be overridden on the command line.

  python scripts/train_model.py --version 1.0.0            # models/churn-1.0.0.json + card
  python scripts/train_model.py --version 1.1.0
  python scripts/train_model.py --version 0.1.0 --file-stem churn-weak --out-dir models/data \
      --features tenure_months,data_usage_gb --rounds 3 --max-depth 2 --min-auc 0

created_at in the card is SOURCE_DATE_EPOCH when set (reproducible cards), else now.
The card's baseline (per-feature deciles of the training split) and score_baseline (the
training scores over ten bins) are what the worker measures drift against;
--add-score-baseline writes the latter into an existing card without retraining.
"""
import argparse
import datetime
import hashlib
import json
import os
import sys

import numpy as np
import xgboost as xgb
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import churn_data  # noqa: E402

PRESETS = {
    "1.0.0": {
        "rows": 50000, "seed": 100, "drift": 0.0, "rounds": 150,
        "params": {"max_depth": 4, "eta": 0.1, "min_child_weight": 1.0, "subsample": 1.0,
                   "colsample_bytree": 1.0, "lambda": 1.0},
    },
    "1.1.0": {
        "rows": 80000, "seed": 110, "drift": 0.6, "rounds": 160,
        "params": {"max_depth": 5, "eta": 0.07, "min_child_weight": 5.0, "subsample": 0.8,
                   "colsample_bytree": 0.8, "lambda": 2.0},
    },
}
TEST_FRACTION = 0.2
VALIDATION_FRACTION = 0.15
THRESHOLD_GRID = [round(0.05 + 0.01 * i, 2) for i in range(91)]  # 0.05 .. 0.95
BASELINE_QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
SCORE_EDGES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def baseline(x, features):
    """Per feature: interior bin edges (deciles, deduplicated) and the share of non-missing
    training values in each bin, plus the missing rate. Bin i holds v with
    edges[i-1] <= v < edges[i] (edges[-1] = -inf, edges[len] = +inf), i.e.
    i = numpy.searchsorted(edges, v, side='right')."""
    out = {}
    for j, f in enumerate(features):
        col = x[:, j].astype(np.float64)
        ok = col[~np.isnan(col)]
        edges = np.unique(np.quantile(ok, BASELINE_QUANTILES)) if ok.size else np.array([])
        counts = np.bincount(np.searchsorted(edges, ok, side="right"), minlength=len(edges) + 1)
        out[f] = {
            "edges": [float(e) for e in edges],
            "proportions": [round(float(c) / max(ok.size, 1), 6) for c in counts],
            "missing_rate": round(float(np.isnan(col).mean()), 6),
            "mean": round(float(ok.mean()), 6) if ok.size else None,
        }
    return out


def score_baseline(scores):
    """The training scores over ten equal-width bins of [0, 1] (bin i holds s with
    edges[i-1] <= s < edges[i], as in baseline()): the reference of the worker's score drift."""
    edges = SCORE_EDGES
    counts = np.bincount(np.searchsorted(edges, scores.astype(np.float64), side="right"),
                         minlength=len(edges) + 1)
    return {"edges": edges, "proportions": [round(float(c) / max(len(scores), 1), 6)
                                            for c in counts]}


def add_score_baseline(card_path, rows, seed, drift, rounds, params):
    """Write score_baseline into an existing card, from its saved model's scores on the
    training split the preset regenerates (nothing is retrained)."""
    with open(card_path, encoding="utf-8") as fh:
        card = json.load(fh)
    features = card["feature_names"]
    model_path = os.path.join(os.path.dirname(card_path), card["model_file"])
    if sha256(model_path) != card["model_sha256"]:
        print("error: %s does not match its card's model_sha256" % model_path, file=sys.stderr)
        return 1
    x, _ = churn_data.training_set(rows, seed, drift)
    x = x[:, [churn_data.FEATURES.index(f) for f in features]]
    n_test, n_val = split(rows)
    booster = xgb.Booster(model_file=model_path)
    card["score_baseline"] = score_baseline(predict(booster, x[n_test + n_val:], features))
    with open(card_path, "w", encoding="utf-8") as fh:
        json.dump(card, fh, indent=2)
        fh.write("\n")
    print("wrote score_baseline into %s" % card_path, file=sys.stderr)
    return 0


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def created_at():
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    t = (datetime.datetime.fromtimestamp(int(sde), datetime.timezone.utc) if sde
         else datetime.datetime.now(datetime.timezone.utc))
    return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def split(rows):
    """(n_test, n_validation): the first n_test rows are the test split, the next
    n_validation the validation split, the rest the training split."""
    return int(rows * TEST_FRACTION), int(rows * VALIDATION_FRACTION)


def train(rows, seed, drift, rounds, params, features=None):
    """(booster, X_train, (X_val, y_val), (X_test, y_test), positive_rate) for the given
    settings; `features` (default: all) selects the columns the model is trained on."""
    features = features or churn_data.FEATURES
    x, y = churn_data.training_set(rows, seed, drift)
    x = x[:, [churn_data.FEATURES.index(f) for f in features]]
    n_test, n_val = split(rows)
    x_te, y_te = x[:n_test], y[:n_test]
    x_va, y_va = x[n_test:n_test + n_val], y[n_test:n_test + n_val]
    x_tr, y_tr = x[n_test + n_val:], y[n_test + n_val:]
    dtrain = xgb.DMatrix(x_tr, label=y_tr, feature_names=list(features),
                         feature_types=["q"] * len(features), missing=np.nan)
    p = {"objective": "binary:logistic", "eval_metric": "auc", "tree_method": "hist",
         "nthread": 1, "seed": seed}
    p.update(params)
    booster = xgb.train(p, dtrain, num_boost_round=rounds)
    return booster, x_tr, (x_va, y_va), (x_te, y_te), float(y.mean())


def predict(booster, x, features=None):
    features = features or churn_data.FEATURES
    d = xgb.DMatrix(x, feature_names=list(features), feature_types=["q"] * x.shape[1],
                    missing=np.nan)
    return booster.predict(d)


def best_f1_threshold(y, score):
    """(threshold, f1): the grid threshold with the highest F1 (the lowest one on ties)."""
    best = (THRESHOLD_GRID[0], -1.0)
    for t in THRESHOLD_GRID:
        f1 = float(f1_score(y, (score >= t).astype(int), zero_division=0))
        if f1 > best[1] + 1e-12:
            best = (t, f1)
    return best


def classification_metrics(y, score, threshold):
    decision = (score >= threshold).astype(int)
    return {
        "roc_auc": round(float(roc_auc_score(y, score)), 4),
        "precision": round(float(precision_score(y, decision, zero_division=0)), 4),
        "recall": round(float(recall_score(y, decision, zero_division=0)), 4),
        "f1": round(float(f1_score(y, decision, zero_division=0)), 4),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train a streamscore churn model.")
    ap.add_argument("--version", required=True, help="model version, e.g. 1.0.0")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__))), "models"))
    ap.add_argument("--rows", type=int, help="customers generated (train + test)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--drift", type=float, help="churn_data cohort drift (0 = base process)")
    ap.add_argument("--rounds", type=int, help="boosting rounds (trees)")
    ap.add_argument("--max-depth", type=int)
    ap.add_argument("--eta", type=float)
    ap.add_argument("--threshold", type=float,
                    help="decision threshold in the card (default: best F1 on the validation split)")
    ap.add_argument("--features", help="comma-separated subset of the features to train on "
                    "(default: all 11, in contract order)")
    ap.add_argument("--file-stem", help="model file name without .json (default: churn-VERSION)")
    ap.add_argument("--min-auc", type=float, default=0.85, help="fail below this held-out AUC")
    ap.add_argument("--add-score-baseline", action="store_true",
                    help="only add score_baseline to the existing card of this version (the "
                    "saved model scored on the regenerated training split; no training)")
    a = ap.parse_args(argv)

    preset = PRESETS.get(a.version, PRESETS["1.0.0"])
    rows = a.rows or preset["rows"]
    seed = preset["seed"] if a.seed is None else a.seed
    drift = preset["drift"] if a.drift is None else a.drift
    rounds = a.rounds or preset["rounds"]
    params = dict(preset["params"])
    if a.max_depth is not None:
        params["max_depth"] = a.max_depth
    if a.eta is not None:
        params["eta"] = a.eta

    features = a.features.split(",") if a.features else list(churn_data.FEATURES)
    unknown = [f for f in features if f not in churn_data.FEATURES]
    if unknown or not features or len(set(features)) != len(features):
        print("error: --features must name distinct features of %s" % ",".join(churn_data.FEATURES),
              file=sys.stderr)
        return 2
    stem = a.file_stem or "churn-%s" % a.version
    if a.add_score_baseline:
        return add_score_baseline(os.path.join(a.out_dir, stem + ".card.json"), rows, seed,
                                  drift, rounds, params)

    print("training churn %s: rows=%d seed=%d drift=%.2f rounds=%d params=%s features=%d"
          % (a.version, rows, seed, drift, rounds, json.dumps(params), len(features)),
          file=sys.stderr)
    booster, x_tr, (x_va, y_va), (x_te, y_te), pos_rate = train(rows, seed, drift, rounds,
                                                                params, features)
    val_score = predict(booster, x_va, features)
    best_t, best_f1 = best_f1_threshold(y_va, val_score)
    threshold = best_t if a.threshold is None else a.threshold
    score = predict(booster, x_te, features)
    metrics = classification_metrics(y_te, score, threshold)
    metrics.update({"n_test": int(len(y_te)), "test_positive_rate": round(float(y_te.mean()), 4)})
    auc = metrics["roc_auc"]
    print("threshold %.2f (validation F1 %.4f at %.2f); held-out: %s"
          % (threshold, best_f1, best_t, json.dumps(metrics)), file=sys.stderr)
    if auc < a.min_auc:
        print("error: ROC-AUC %.4f is below --min-auc %.2f" % (auc, a.min_auc), file=sys.stderr)
        return 1

    os.makedirs(a.out_dir, exist_ok=True)
    model_file = stem + ".json"
    model_path = os.path.join(a.out_dir, model_file)
    booster.save_model(model_path)
    card = {
        "name": "churn",
        "version": a.version,
        "created_at": created_at(),
        "xgboost_version": xgb.__version__,
        "objective": "binary:logistic",
        "feature_names": list(features),
        "feature_types": ["q"] * len(features),
        "threshold": threshold,
        "threshold_selection": {
            "method": ("best F1 on the validation split, grid 0.05..0.95 step 0.01"
                       if a.threshold is None else "set with --threshold"),
            "validation_best_threshold": best_t,
            "validation_f1": round(best_f1, 4),
            "n_validation": int(len(y_va)),
        },
        "metrics": metrics,
        "training": {
            "num_boost_round": rounds,
            "params": dict({"tree_method": "hist", "nthread": 1, "seed": seed}, **params),
        },
        "training_data": {
            "description": ("Synthetic customers from scripts/churn_data.py (see its docstring): "
                            "attributes drawn from a seeded generative process with a latent "
                            "engagement factor; churn ~ Bernoulli(sigmoid(logit)) with "
                            "interactions (price x contract, support calls x new customer, "
                            "payment failures x autopay), unobserved noise N(0, %.2f), %.1f%% of "
                            "labels flipped, 1-6%% of each attribute missing; cohort drift %.2f. "
                            "First %d%% of rows held out for the metrics, the next %d%% for "
                            "choosing the threshold."
                            % (churn_data.NOISE_SD, 100 * churn_data.LABEL_FLIP_RATE, drift,
                               int(100 * TEST_FRACTION), int(100 * VALIDATION_FRACTION))),
            "generator": "scripts/churn_data.py training_set(n_rows, seed, drift)",
            "n_rows": rows,
            "n_train": int(len(x_tr)),
            "n_validation": int(len(y_va)),
            "seed": seed,
            "drift": drift,
            "positive_rate": round(pos_rate, 4),
        },
        "baseline": baseline(x_tr, features),
        "score_baseline": score_baseline(predict(booster, x_tr, features)),
        "model_file": model_file,
        "model_sha256": sha256(model_path),
    }
    card_path = os.path.join(a.out_dir, stem + ".card.json")
    with open(card_path, "w", encoding="utf-8") as fh:
        json.dump(card, fh, indent=2)
        fh.write("\n")
    print("wrote %s (%d bytes) and %s" % (model_path, os.path.getsize(model_path), card_path),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
