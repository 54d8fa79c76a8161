"""Categorical features: a model trained from a pandas DataFrame with a category column
(enable_categorical, partition-based splits) keeps its category names, and the worker maps an
event's Avro enum symbol or string to the model's category by name (the enum's symbols are in
another order than the model's categories here). A category the model was not trained with
follows features.unseen.category: a dead letter (unknown_category) by default, a missing value,
or a category in no split's set (other), each scored as Python XGBoost scores it."""

import numpy as np
import pytest

import harness as h
import objectives_lib as ol

N_EVENTS = 300
CONNECT = "__connect.errors."
THRESHOLD = 0.5  # binary:logistic's default


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return ol.train_categorical(tmp_path_factory.mktemp("categorical-model"))


def _events(rng, prefix, n):
    """n events, one customer each (no merging): the category known in about 3/4, null in
    about 1/7, unseen in about 1/8; each number null in a quarter."""
    events = []
    for i in range(n):
        u = rng.random()
        plan = (ol.UNSEEN if u < 0.12 else None if u < 0.26
                else ol.CATEGORIES[int(rng.integers(0, len(ol.CATEGORIES)))])
        ev = {"customer_id": f"{prefix}-{i:04d}", "event_id": f"{prefix}-ev-{i:04d}",
              "event_time": ol.T0 + i * 1000, ol.CAT_FEATURE: plan}
        for f in ol.CAT_FEATURES[1:]:
            ev[f] = None if rng.random() < 0.25 else float(rng.normal(0.0, 1.0) * 3 + 1)
        events.append(ev)
    return events


def _plan_type(avro_type):
    if avro_type == "enum":
        return {"type": "enum", "name": "Plan", "symbols": list(ol.ENUM_SYMBOLS)}
    return "string"


@pytest.mark.parametrize("unseen", ["dead_letter", "missing", "other"])
@pytest.mark.parametrize("avro_type", ["enum", "string"])
def test_a_category_is_mapped_by_name_and_an_unseen_one_follows_features_unseen_category(
        avro_type, unseen, ctx, trained, tmp_path):
    bst, model, card = trained
    assert ol.ENUM_SYMBOLS.index("pro") != ol.CATEGORIES.index("pro")  # the orders differ
    reader, writer = ol.write_schemas(tmp_path, ol.CAT_FEATURES, absent=None, name="PlanEvent",
                                      feature_types={ol.CAT_FEATURE: _plan_type(avro_type)})
    events = _events(np.random.default_rng(900 + len(avro_type) + len(unseen)),
                     f"cat-{avro_type}-{unseen}-{ctx.uid}", N_EVENTS)
    placed = ol.produce_events(ctx.input_topic, events, writer)
    is_unseen = [ev[ol.CAT_FEATURE] == ol.UNSEEN for ev in events]
    assert sum(is_unseen) > 10, "test data: too few unseen categories"
    to_score = [i for i in range(len(events)) if not (is_unseen[i] and unseen == "dead_letter")]

    # the reference: a DataFrame with the model's categories (an unseen one: missing), or, for
    # `other`, codes through a numpy array with the unseen one as code len(CATEGORIES)
    numeric = np.array([[np.nan if events[i][f] is None else events[i][f]
                         for f in ol.CAT_FEATURES[1:]] for i in to_score], dtype=np.float32)
    plans = [events[i][ol.CAT_FEATURE] for i in to_score]
    as_missing = [None if p == ol.UNSEEN else p for p in plans]
    codes = np.array([np.nan if p is None else ol.cat_code(ol.CAT_FEATURE, p) for p in
                      (plans if unseen == "other" else as_missing)], dtype=np.float32)
    vectors = np.column_stack([codes, numeric]).astype(np.float32)
    by_frame = ol.reference_frame(bst, as_missing, numeric)
    by_codes = ol.reference_codes(bst, vectors)
    known = [k for k, p in enumerate(plans) if p != ol.UNSEEN]
    assert np.allclose(by_frame[known], by_codes[known], rtol=0, atol=1e-7), \
        "reference: the DataFrame and the codes disagree"
    scores = by_codes if unseen == "other" else by_frame
    if unseen == "other":
        differ = sum(1 for k, p in enumerate(plans) if p == ol.UNSEEN
                     and abs(by_codes[k] - by_frame[k]) > 1e-3)
        assert differ > 3, "test data: `other` scores like `missing` on (nearly) every row"
    overrides = {} if unseen == "dead_letter" else {"features.unseen.category": unseen}

    records, undecodable = ctx.run_until(ol.config(ctx, model, card, reader, writer, overrides),
                                         len(to_score))

    assert not undecodable, f"undecodable predictions: {undecodable[:3]}"
    by_source = ol.one_per_source(records, [placed[i] for i in to_score])
    problems = []
    for k, i in enumerate(to_score):
        exp = {"score": float(scores[k]), "decision": bool(scores[k] >= THRESHOLD),
               "threshold": THRESHOLD, "outputs": None, "predicted_class": None}
        bad = ol.prediction_problems(by_source[placed[i]], exp, events[i], vectors[k],
                                     ctx.input_topic, "plan-churn", "1.0.0")
        if bad:
            problems.append(f"{placed[i]} plan {events[i][ol.CAT_FEATURE]!r} numbers "
                            f"{numeric[k].tolist()}: {'; '.join(bad)}")
    assert not problems, (f"{len(problems)} of {len(to_score)} predictions differ from Python "
                          f"XGBoost: {problems[:6]}")

    letters = ctx.dead_letters()
    if unseen != "dead_letter":
        assert letters == [], f"{len(letters)} dead letters with features.unseen.category = " \
                              f"{unseen}: {[r['_headers'] for r in letters[:2]]}"
    else:
        want = {placed[i]: i for i in range(len(events)) if is_unseen[i]}
        got, wrong = {}, []
        for r in letters:
            hd = dict(r["_headers"])
            src = (int(hd.get(CONNECT + "partition", b"-1")),
                   int(hd.get(CONNECT + "offset", b"-1")))
            got[src] = got.get(src, 0) + 1
            reason = hd.get(CONNECT + "exception.class.name")
            if reason != b"unknown_category":
                wrong.append(f"{src}: reason {reason!r}, expected b'unknown_category'")
            if src in want:
                ev = events[want[src]]
                if r["_key"] != ev["customer_id"].encode() or r["_raw"] != h.encode_avro(
                        writer, ol.writer_record(ev, writer)):
                    wrong.append(f"{src}: not the original key and value")
        assert set(got) == set(want) and all(v == 1 for v in got.values()), (
            f"dead letters for {sorted(got)[:8]} ({len(got)}), expected one for each unseen "
            f"category event {sorted(want)[:8]} ({len(want)})")
        assert not wrong, f"{len(wrong)} dead letters wrong: {wrong[:5]}"
    ends = h.end_offsets(ctx.input_topic)
    committed = h.committed_offsets(ctx.group, ctx.input_topic, sorted(ends))
    assert committed == ends, f"committed offsets {committed} != end offsets {ends}"


def test_a_categorical_models_explanations_are_xgboosts_for_the_categories_by_name(
        ctx, trained, tmp_path):
    """explain.top.k with a categorical feature: the contributions (the DMatrix the worker
    explains carries the feature types) equal Python's pred_contribs on a DataFrame with the
    same categories, and the category's value is the code it was scored as."""
    bst, model, card = trained
    reader, writer = ol.write_schemas(tmp_path, ol.CAT_FEATURES, absent=None, name="PlanEvent",
                                      feature_types={ol.CAT_FEATURE: _plan_type("string")})
    events = [ev for ev in _events(np.random.default_rng(977), f"cat-explain-{ctx.uid}",
                                   N_EVENTS) if ev[ol.CAT_FEATURE] != ol.UNSEEN]
    placed = ol.produce_events(ctx.input_topic, events, writer)
    numeric = np.array([[np.nan if ev[f] is None else ev[f] for f in ol.CAT_FEATURES[1:]]
                        for ev in events], dtype=np.float32)
    plans = [ev[ol.CAT_FEATURE] for ev in events]
    codes = np.array([np.nan if p is None else ol.cat_code(ol.CAT_FEATURE, p) for p in plans],
                     dtype=np.float32)
    vectors = np.column_stack([codes, numeric]).astype(np.float32)
    d = ol.xgb.DMatrix(ol.cat_frame(plans, numeric), enable_categorical=True, missing=np.nan)
    contribs = np.asarray(bst.predict(d, pred_contribs=True), dtype=np.float64)

    records, undecodable = ctx.run_until(
        ol.config(ctx, model, card, reader, writer, {"explain.top.k": 3}), len(events))

    assert not undecodable, f"undecodable predictions: {undecodable[:3]}"
    by_source = ol.one_per_source(records, placed)
    problems = []
    for i, src in enumerate(placed):
        bad = ol.contribution_problems(by_source[src], contribs[i, :-1], float(contribs[i, -1]),
                                       None, vectors[i], 3, features=list(ol.CAT_FEATURES))
        if bad:
            problems.append(f"{src} plan {plans[i]!r}: {'; '.join(bad)}")
    assert not problems, f"{len(problems)} of {len(events)} explanations differ: {problems[:5]}"
