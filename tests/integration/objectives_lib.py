"""Helpers of the objective, explanation and categorical tests (test_objectives.py,
test_explain.py, test_categorical.py): small models of every objective trained here on
synthetic data with missing values, the event schemas that carry their features, the events,
the merged feature vectors the worker must score, and what Python XGBoost 3.2 says every
field of each prediction must be.

The events are written with a writer schema that lacks one feature of the model (ABSENT: the
reader schema's default, null, so always missing) and lists the others in another order than
the reader schema (resolution by name); each other feature is null in about a third of the
events. A customer has a few events: the merge rule (a present value overrides, an absent one
keeps the customer's known value) is applied here as the worker applies it."""

import json
import math
from pathlib import Path

import numpy as np
import xgboost as xgb

import harness as h

# The model's features in model order. ABSENT is in the model and in the reader schema but
# never in the writer schema of the events.
FEATURES = ["amount", "rate", "visits", "ratio", "age_days", "legacy_score"]
ABSENT = "legacy_score"
WEIGHTS = np.array([1.0, -0.7, 0.5, 0.8, -0.4, 0.6])
OUTPUT_TOL = 1e-6  # every output, absolute
CONTRIB_TOL = 1e-5
T0 = 1_700_000_000_000

# id: (objective, extra training parameters, config overrides, card extras)
# Thresholds: binary ones have their own default; the others get a decision only when
# model.threshold or the card's threshold is set (two variants below each).
OBJECTIVES = {
    "binary_logistic": ("binary:logistic", {}, {}, {}),
    "binary_logitraw": ("binary:logitraw", {}, {}, {}),
    "binary_hinge": ("binary:hinge", {}, {}, {}),
    "multi_softprob": ("multi:softprob", {"num_class": 3}, {}, {}),
    "multi_softmax": ("multi:softmax", {"num_class": 3}, {}, {}),
    "reg_squarederror": ("reg:squarederror", {}, {}, {}),
    "reg_squarederror_model_threshold": ("reg:squarederror", {}, {"model.threshold": 0.25}, {}),
    "reg_logistic": ("reg:logistic", {}, {}, {}),
    "reg_pseudohubererror": ("reg:pseudohubererror", {}, {}, {}),
    "reg_absoluteerror": ("reg:absoluteerror", {}, {}, {}),
    "reg_quantileerror": ("reg:quantileerror", {"quantile_alpha": [0.1, 0.5, 0.9]}, {}, {}),
    "reg_quantileerror_without_median": ("reg:quantileerror", {"quantile_alpha": [0.25, 0.75]},
                                         {}, {}),
    "reg_tweedie": ("reg:tweedie", {"tweedie_variance_power": 1.4}, {}, {}),
    "reg_gamma_card_threshold": ("reg:gamma", {}, {}, {"threshold": 1.0}),
    "count_poisson": ("count:poisson", {}, {}, {}),
    "rank_pairwise": ("rank:pairwise", {}, {}, {}),
    "rank_ndcg_model_threshold": ("rank:ndcg", {}, {"model.threshold": 0.0}, {}),
    "survival_cox": ("survival:cox", {}, {}, {}),
    "survival_aft": ("survival:aft", {"aft_loss_distribution": "normal",
                                      "aft_loss_distribution_scale": 1.0}, {}, {}),
}


# --------------------------------------------------------------------------- training


def training_matrix(rng, n, features=FEATURES, nan_rate=0.2):
    """n rows of float32 features, about nan_rate of each column missing (ABSENT: twice as
    many), and the latent value z the labels are drawn from."""
    x = np.column_stack([rng.normal(0.0, 1.0, n) * 3 + 1 for _ in features]).astype(np.float32)
    z = np.nan_to_num(x / 3).astype(np.float64) @ WEIGHTS[:len(features)]
    for j, name in enumerate(features):
        rate = 2 * nan_rate if name == ABSENT else nan_rate
        x[rng.random(n) < rate, j] = np.nan
    return x, z


def _labels(objective, rng, z, d):
    """Set the labels of DMatrix d for objective from the latent z."""
    n = len(z)
    noise = rng.normal(0.0, 0.5, n)
    if objective.startswith("binary:"):
        d.set_label((z + noise > 0).astype(np.float32))
    elif objective.startswith("multi:"):
        d.set_label(np.digitize(z + noise, [-0.6, 0.6]).astype(np.float32))
    elif objective == "reg:logistic":
        d.set_label((1 / (1 + np.exp(-(z + noise)))).astype(np.float32))
    elif objective in ("reg:tweedie", "count:poisson"):
        d.set_label(rng.poisson(np.exp(z / 2)).astype(np.float32))
    elif objective == "reg:gamma":
        d.set_label(rng.gamma(2.0, np.exp(z / 2) / 2).astype(np.float32) + 1e-3)
    elif objective.startswith("rank:"):
        d.set_label(np.digitize(z + noise, [-1.0, 0.0, 1.0]).astype(np.float32))
        d.set_group([10] * (n // 10))
    elif objective == "survival:cox":
        t = rng.exponential(np.exp(-z)) + 1e-3
        censored = rng.random(n) < 0.2
        d.set_label(np.where(censored, -t, t).astype(np.float32))
    elif objective == "survival:aft":
        t = np.exp(z / 3 + noise)
        censored = rng.random(n) < 0.2
        d.set_float_info("label_lower_bound", t.astype(np.float32))
        d.set_float_info("label_upper_bound", np.where(censored, np.inf, t).astype(np.float32))
    else:  # the other regressions
        d.set_label((z + noise).astype(np.float32))


def train(objective, params=None, seed=7, rounds=6, n=600):
    """A small booster of `objective` over FEATURES, trained on data with missing values."""
    assert xgb.__version__ == "3.2.0", f"reference needs xgboost 3.2.0, have {xgb.__version__}"
    rng = np.random.default_rng(seed)
    x, z = training_matrix(rng, n)
    d = xgb.DMatrix(x, missing=np.nan, feature_names=list(FEATURES))
    _labels(objective, rng, z, d)
    p = {"objective": objective, "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": seed,
         "tree_method": "hist", **(params or {})}
    bst = xgb.train(p, d, num_boost_round=rounds)
    bst.set_param({"nthread": 1})
    return bst


def save_model(bst, directory, name, version="1.0.0", card_extra=None, feature_names=None):
    """The model as JSON and its card (name, version, feature_names, extras); (model, card)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = directory / f"{name}.json"
    card = directory / f"{name}.card.json"
    bst.save_model(str(model))
    doc = {"name": name, "version": version,
           "feature_names": list(feature_names or bst.feature_names or FEATURES),
           **(card_extra or {})}
    card.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return model, card


def trained_case(case, directory):
    """OBJECTIVES[case] trained and saved under directory: (booster, model, card, config
    overrides). The booster is loaded back from the saved file (what the worker loads)."""
    objective, params, overrides, card_extra = OBJECTIVES[case]
    seed = 100 + sorted(OBJECTIVES).index(case)
    bst = train(objective, params, seed=seed)
    model, card = save_model(bst, directory, case.replace("_", "-"), card_extra=card_extra)
    loaded = xgb.Booster(model_file=str(model))
    loaded.set_param({"nthread": 1})
    return loaded, model, card, dict(overrides)


def objective_of(bst):
    return json.loads(bst.save_config())["learner"]["objective"]["name"]


# --------------------------------------------------------------------------- schemas


def _event_fields(feature_fields):
    return [{"name": "customer_id", "type": "string"},
            {"name": "event_id", "type": "string"},
            {"name": "event_time", "type": "long"},
            *feature_fields]


def write_schemas(directory, features=FEATURES, absent=ABSENT, name="ScoredEvent",
                  feature_types=None):
    """The reader schema (every feature a nullable field, default null, model order) and the
    writer schema (without `absent`, the features in reverse order): (reader, writer).
    feature_types maps a feature to another Avro type than double (its nullable union)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    types = feature_types or {}

    def field(f):
        return {"name": f, "type": ["null", types.get(f, "double")], "default": None}

    reader = {"type": "record", "name": name, "namespace": "streamscore.it",
              "fields": _event_fields([field(f) for f in features])}
    writer = {"type": "record", "name": name, "namespace": "streamscore.it",
              "fields": _event_fields([field(f) for f in reversed(features) if f != absent])}
    rp, wp = directory / f"{name}.reader.avsc", directory / f"{name}.writer.avsc"
    rp.write_text(json.dumps(reader, indent=2), encoding="utf-8")
    wp.write_text(json.dumps(writer, indent=2), encoding="utf-8")
    return rp, wp


def config(ctx, model, card, reader, writer, overrides=None):
    """The test's worker config for this model and these schemas."""
    return ctx.props({"model.path": model, "model.card": card, "input.schema": reader,
                      "input.writer.schema": writer, **(overrides or {})})


# --------------------------------------------------------------------------- events


def make_events(rng, n, customer_prefix, n_customers, features=FEATURES, absent=ABSENT,
                null_rate=0.35):
    """n events over n_customers customers: a fifth carry every feature but `absent`, in the
    others each such feature is null in about null_rate of them (the customer's known value
    is then scored)."""
    events = []
    for i in range(n):
        cid = f"{customer_prefix}-{int(rng.integers(0, n_customers)):04d}"
        ev = {"customer_id": cid, "event_id": f"{customer_prefix}-ev-{i:05d}",
              "event_time": T0 + i * 1000}
        full = rng.random() < 0.2
        for f in features:
            if f == absent:
                continue
            if not full and rng.random() < null_rate:
                ev[f] = None
            else:
                ev[f] = float(rng.normal(0.0, 1.0) * 3 + 1)
        events.append(ev)
    return events


def writer_record(ev, writer_path):
    """The event restricted to the writer schema's fields."""
    return {f["name"]: ev.get(f["name"]) for f in h.load_schema_json(writer_path)["fields"]}


def produce_events(topic, events, writer_path):
    """Produce raw Avro events (writer schema) keyed by customer id: [(partition, offset)]."""
    return h.produce(topic, events, lambda ev: h.encode_avro(writer_path,
                                                             writer_record(ev, writer_path)))


def to_float(name, value, encode=None):
    """An event field value -> the float32 the worker scores (NaN when missing); encode maps
    a non-numeric value (e.g. a category) to its code."""
    if value is None:
        return np.float32(np.nan)
    if encode is not None:
        return np.float32(encode(name, value))
    return np.float32(value)


def merged(events, placed, features=FEATURES, encode=None):
    """The vectors the worker scores: {(partition, offset): (event, float32 vector)}, the
    merge rule applied per customer in partition order."""
    known = {}
    out = {}
    for i in sorted(range(len(events)), key=lambda k: placed[k]):
        ev = events[i]
        cached = known.setdefault(ev["customer_id"], {})
        for f in features:
            v = to_float(f, ev.get(f), encode)
            if not np.isnan(v):
                cached[f] = v
        out[placed[i]] = (ev, np.array([cached.get(f, np.float32(np.nan)) for f in features],
                                       dtype=np.float32))
    return out


# --------------------------------------------------------------------------- reference


def dmatrix(x, features=FEATURES):
    return xgb.DMatrix(np.asarray(x, dtype=np.float32), missing=np.nan,
                       feature_names=list(features))


def reference(bst, x, overrides=None, card=None):
    """What every prediction of rows x must carry, from Python XGBoost: a list of dicts with
    score, decision, threshold, outputs, predicted_class (see schemas/prediction.avsc)."""
    objective = objective_of(bst)
    d = dmatrix(x, bst.feature_names or FEATURES)
    p = np.asarray(bst.predict(d), dtype=np.float64)
    threshold = (overrides or {}).get("model.threshold")
    if threshold is None and card is not None:
        threshold = json.loads(Path(card).read_text()).get("threshold")
    if threshold is None and objective.startswith("binary:"):
        threshold = 0.0 if objective == "binary:logitraw" else 0.5
    rows = []
    if objective.startswith("multi:"):
        probs = p
        if objective == "multi:softmax":  # the probabilities the model gives as softprob
            prob_bst = bst.copy()
            prob_bst.set_param({"objective": "multi:softprob"})
            probs = np.asarray(prob_bst.predict(d), dtype=np.float64)
            assert (np.argmax(probs, axis=1) == p).all(), "softprob argmax != softmax class"
        assert probs.ndim == 2 and probs.shape[1] >= 2, probs.shape
        for row in probs:
            c = int(np.argmax(row))  # the first of equal ones
            rows.append({"score": float(row[c]), "decision": None, "threshold": None,
                         "outputs": [float(v) for v in row], "predicted_class": c})
        return rows
    score_col = None
    if p.ndim == 2:  # several quantiles: the 0.5 one if trained with it, else the first
        alphas = quantile_alphas(bst)
        assert len(alphas) == p.shape[1], (alphas, p.shape)
        score_col = alphas.index(0.5) if 0.5 in alphas else 0
    for row in p:
        score = float(row[score_col]) if score_col is not None else float(row)
        rows.append({"score": score,
                     "decision": None if threshold is None else bool(score >= threshold),
                     "threshold": None if threshold is None else float(threshold),
                     "outputs": [float(v) for v in row] if score_col is not None else None,
                     "predicted_class": None})
    return rows


def quantile_alphas(bst):
    param = json.loads(bst.save_config())["learner"]["objective"].get("quantile_loss_param", {})
    text = str(param.get("quantile_alpha", ""))
    return [float(v) for v in text.strip("[]").split(",") if v.strip()]


def contributions_reference(bst, x, predicted_class=None):
    """XGBoost's exact TreeSHAP of rows x: per row (contributions of every feature, bias,
    output explained or None). For a multi-output model, of predicted_class[i] (multi-class)
    or of the output that is the score (quantiles)."""
    d = dmatrix(x, bst.feature_names or FEATURES)
    c = np.asarray(bst.predict(d, pred_contribs=True), dtype=np.float64)
    out = []
    if c.ndim == 3:
        alphas = quantile_alphas(bst)
        score_col = (alphas.index(0.5) if 0.5 in alphas else 0) if alphas else None
        for i in range(len(c)):
            g = int(predicted_class[i]) if predicted_class is not None else score_col
            out.append((c[i, g, :-1], float(c[i, g, -1]), g))
    else:
        for i in range(len(c)):
            out.append((c[i, :-1], float(c[i, -1]), None))
    return out


# --------------------------------------------------------------------------- checks


def close(a, b, tol=OUTPUT_TOL):
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return False
    return abs(a - b) <= tol


def prediction_problems(rec, exp, ev, vector, source_topic, model_name, model_version,
                        contributions=False):
    """What in prediction rec differs from the expected fields exp (reference()) for event ev
    scored with vector; [] if nothing."""
    bad = []
    if not close(rec["score"], exp["score"]):
        bad.append(f"score {rec['score']!r} != {exp['score']!r} "
                   f"(diff {abs(rec['score'] - exp['score']):.3g})")
    if exp["threshold"] is None:
        if rec["threshold"] is not None or rec["decision"] is not None:
            bad.append(f"decision {rec['decision']!r} / threshold {rec['threshold']!r}, "
                       "expected null (no decision)")
    else:
        if rec["threshold"] != exp["threshold"]:
            bad.append(f"threshold {rec['threshold']!r} != {exp['threshold']!r}")
        if rec["decision"] is None or rec["decision"] != (rec["score"] >= exp["threshold"]):
            bad.append(f"decision {rec['decision']!r} for score {rec['score']!r} at threshold "
                       f"{exp['threshold']!r}")
        elif abs(exp["score"] - exp["threshold"]) > OUTPUT_TOL and \
                rec["decision"] != exp["decision"]:
            bad.append(f"decision {rec['decision']!r} != reference {exp['decision']!r}")
    if exp["outputs"] is None:
        if rec.get("outputs") is not None:
            bad.append(f"outputs {rec['outputs']!r}, expected null (one output)")
    else:
        got = rec.get("outputs")
        if got is None or len(got) != len(exp["outputs"]) or \
                not all(close(a, b) for a, b in zip(got, exp["outputs"])):
            bad.append(f"outputs {got!r} != {exp['outputs']!r}")
    if rec.get("predicted_class") != exp["predicted_class"]:
        pc = rec.get("predicted_class")
        tie = (exp["outputs"] is not None and pc is not None and 0 <= pc < len(exp["outputs"])
               and abs(exp["outputs"][pc] - exp["score"]) <= OUTPUT_TOL)
        if not tie or pc > exp["predicted_class"]:  # only an earlier equal one is allowed
            bad.append(f"predicted_class {pc!r} != {exp['predicted_class']!r}")
    want = {"event_id": ev["event_id"], "customer_id": ev["customer_id"],
            "_key": ev["customer_id"].encode(), "event_time": ev["event_time"],
            "source_topic": source_topic, "model_name": model_name,
            "model_version": model_version, "feature_hash": h.feature_hash(vector),
            "degraded": False}
    for k, v in want.items():
        if rec.get(k) != v:
            bad.append(f"{k} {rec.get(k)!r} != {v!r}")
    if not contributions:
        for k in ("contributions", "contributions_bias", "contributions_output"):
            if rec.get(k) is not None:
                bad.append(f"{k} {rec.get(k)!r}, expected null (nothing explained)")
    return bad


def contribution_problems(rec, contrib, bias, output, vector, k, features=FEATURES):
    """What in rec's contributions differs from XGBoost's (contributions_reference) for the
    row `vector`: the k largest |SHAP|, largest first (equal ones in either order), each with
    its feature's value scored (null if missing); the bias; the output explained."""
    bad = []
    got = rec.get("contributions")
    if got is None:
        return ["contributions null, expected the top contributions"]
    if len(got) != min(k, len(features)):
        bad.append(f"{len(got)} contributions, expected {min(k, len(features))}")
    mags = sorted((abs(float(c)) for c in contrib), reverse=True)
    kth = mags[len(got) - 1] if 0 < len(got) <= len(mags) else 0.0  # the smallest kept
    prev = math.inf
    seen = set()
    for item in got:
        f = item["feature"]
        if f not in features or f in seen:
            bad.append(f"contribution of {f!r}: not a model feature, or listed twice")
            continue
        seen.add(f)
        j = features.index(f)
        ref = float(contrib[j])
        if abs(item["contribution"] - ref) > CONTRIB_TOL:
            bad.append(f"{f}: contribution {item['contribution']!r} != XGBoost's {ref!r}")
        value = None if np.isnan(vector[j]) else float(vector[j])
        if (item["value"] is None) != (value is None) or \
                (value is not None and abs(item["value"] - value) > 1e-9 * max(1, abs(value))):
            bad.append(f"{f}: value {item['value']!r} != the value scored {value!r}")
        a = abs(item["contribution"])
        if a > prev + CONTRIB_TOL:
            bad.append(f"{f}: |{item['contribution']!r}| after a smaller one (not largest first)")
        prev = a
        if abs(ref) < kth - CONTRIB_TOL:
            bad.append(f"{f}: |{ref!r}| is not among the {len(got)} largest (the smallest of "
                       f"those is {kth!r})")
    rb = rec.get("contributions_bias")
    if rb is None or abs(rb - bias) > CONTRIB_TOL:
        bad.append(f"contributions_bias {rb!r} != XGBoost's bias {bias!r}")
    if rec.get("contributions_output") != output:
        bad.append(f"contributions_output {rec.get('contributions_output')!r} != {output!r}")
    return bad


def fmix64(k):
    """MurmurHash3's 64-bit finalizer."""
    return h.fmix64(k & 0xFFFFFFFFFFFFFFFF)


def explain_sampled(partition, offset, share):
    """Whether explain.sample = share explains the record at (partition, offset):
    h = fmix64(((partition as uint32) << 40) ^ offset ^ 0x9e3779b97f4a7c15), chosen when
    (h >> 11) * 2**-53 < share (uint64 arithmetic)."""
    if share >= 1:
        return True
    m = 0xFFFFFFFFFFFFFFFF
    key = (((partition & 0xFFFFFFFF) << 40) & m) ^ (offset & m) ^ 0x9E3779B97F4A7C15
    return (fmix64(key) >> 11) * 2.0 ** -53 < share


def run_and_read(ctx, props, n, extra_topics=(), timeout=90.0, metrics_port=None,
                 metrics_done=None):
    """Start a worker, wait for n predictions on the output topic (and, given extra_topics
    {topic: count}, that many records on each), optionally scrape /metrics until
    metrics_done(samples) holds, stop the worker (exit 0), read the topics to their ends.
    Returns ({topic: records}, samples or None)."""
    w = ctx.start_worker(props)
    readers = {props["output.topic"]: h.TopicReader(props["output.topic"])}
    wants = {props["output.topic"]: n}
    for t, count in dict(extra_topics).items():
        readers[t] = h.TopicReader(t)
        wants[t] = count
    samples = None
    try:
        for t, r in readers.items():
            r.wait_for(wants[t], timeout, worker=w, what=f"records on {t}")
        if metrics_port is not None:
            samples = h.wait_metrics(metrics_port, metrics_done, timeout=30, worker=w,
                                     what="the explained count")
        w.stop()
        out = {}
        for t, r in readers.items():
            r.drain()
            assert not r.undecodable, f"undecodable records on {t}: {r.undecodable[:3]}"
            out[t] = r.records
    finally:
        for r in readers.values():
            r.close()
    return out, samples


def one_per_source(records, placed):
    """{(partition, offset): record}, asserting exactly one record per produced event."""
    by = h.index_by_source(records)
    dup = {k: len(v) for k, v in by.items() if len(v) > 1}
    missing = sorted(set(placed) - set(by))
    unknown = sorted(set(by) - set(placed))
    assert not dup and not missing and not unknown, (
        f"{len(records)} predictions for {len(placed)} events: duplicated {list(dup)[:5]}, "
        f"missing {missing[:5]}, unknown {unknown[:5]}")
    return {k: v[0] for k, v in by.items()}


# --------------------------------------------------------------------------- categorical
# A model with one categorical feature (partition-based splits: max_cat_to_onehot = 1), trained
# from a pandas DataFrame so that XGBoost keeps the category names in the model.

CAT_FEATURE = "plan"
CAT_FEATURES = [CAT_FEATURE, "amount", "rate", "visits"]
CATEGORIES = ["pro", "basic", "student", "plus", "family"]  # the model's order (its codes)
UNSEEN = "enterprise"  # not a category of the model
# The Avro enum of the events: another order than the model's, and the unseen symbol too.
ENUM_SYMBOLS = ["family", "enterprise", "plus", "basic", "student", "pro"]
_PLAN_EFFECT = {"pro": 1.5, "basic": -1.2, "student": 0.6, "plus": -0.3, "family": 0.9}


def cat_frame(plans, numeric):
    """A DataFrame of CAT_FEATURES: plans (category names or None) as a category column with
    the model's CATEGORIES, numeric an (n, 3) float32 array (NaN missing)."""
    import pandas as pd

    numeric = np.asarray(numeric, dtype=np.float32).reshape(len(plans), len(CAT_FEATURES) - 1)
    cols = {CAT_FEATURE: pd.Categorical(list(plans), categories=CATEGORIES)}
    for j, f in enumerate(CAT_FEATURES[1:]):
        cols[f] = numeric[:, j]
    return pd.DataFrame(cols)


def train_categorical(directory, seed=31, n=1000, rounds=6):
    """A binary:logistic model over CAT_FEATURES, saved with its card: (booster loaded back
    from the file, model, card)."""
    rng = np.random.default_rng(seed)
    plans = [CATEGORIES[i] for i in rng.integers(0, len(CATEGORIES), n)]
    plans = [None if rng.random() < 0.15 else p for p in plans]
    numeric = (rng.normal(0.0, 1.0, (n, len(CAT_FEATURES) - 1)) * 3 + 1).astype(np.float32)
    z = np.array([_PLAN_EFFECT.get(p, 0.0) for p in plans]) + \
        np.nan_to_num(numeric / 3) @ np.array([0.8, -0.6, 0.4])
    numeric[rng.random(numeric.shape) < 0.2] = np.nan
    y = (z + rng.normal(0.0, 0.5, n) > 0).astype(np.float32)
    d = xgb.DMatrix(cat_frame(plans, numeric), label=y, enable_categorical=True, missing=np.nan)
    bst = xgb.train({"objective": "binary:logistic", "max_cat_to_onehot": 1, "max_depth": 3,
                     "eta": 0.3, "tree_method": "hist", "nthread": 1, "seed": seed}, d,
                    num_boost_round=rounds)
    model, card = save_model(bst, directory, "plan-churn", feature_names=CAT_FEATURES)
    doc = json.loads(model.read_text())
    assert doc["learner"]["feature_types"][0] == "c", doc["learner"]["feature_types"]
    trees = doc["learner"]["gradient_booster"]["model"]["trees"]
    assert any(t["categories_nodes"] for t in trees), "no categorical split in the model"
    loaded = xgb.Booster(model_file=str(model))
    loaded.set_param({"nthread": 1})
    return loaded, model, card


def cat_code(name, value):
    """A category name -> the model's code (len(CATEGORIES) for an unseen one: `other`)."""
    assert name == CAT_FEATURE, name
    return CATEGORIES.index(value) if value in CATEGORIES else len(CATEGORIES)


def reference_frame(bst, plans, numeric):
    """Python XGBoost's scores of rows given as category names (None: missing) and numbers."""
    d = xgb.DMatrix(cat_frame(plans, numeric), enable_categorical=True, missing=np.nan)
    return np.asarray(bst.predict(d), dtype=np.float64)


def reference_codes(bst, x):
    """Python XGBoost's scores of rows of codes (numpy, feature_types c for the category)."""
    d = xgb.DMatrix(np.asarray(x, dtype=np.float32), missing=np.nan,
                    feature_names=list(CAT_FEATURES),
                    feature_types=["c" if f == CAT_FEATURE else "q" for f in CAT_FEATURES],
                    enable_categorical=True)
    return np.asarray(bst.predict(d), dtype=np.float64)
