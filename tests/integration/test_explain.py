"""Explanations: with explain.top.k set, an explained prediction carries the k features with the
largest absolute SHAP values (XGBoost's exact TreeSHAP, as pred_contribs=True gives them),
largest first, each with the value scored, plus the bias term and, for a multi-output model,
the output explained. explain.sample chooses the events by a hash of their partition and
offset, explain.when by their decision or class, explain.topic moves the explanations to a
topic of their own; streamscore_predictions_explained_total counts them."""

import numpy as np
import pytest

import harness as h
import objectives_lib as ol

TOP_K = 3
N_EVENTS = 240
N_CUSTOMERS = 80


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("explain-models")


def _setup(ctx, model_dir, case, seed, n=N_EVENTS):
    """The trained case, its schemas, its events produced: (booster, model, card, overrides,
    reader, writer, placed, scored {(p, o): (event, vector)}, expected {(p, o): fields},
    contributions {(p, o): (contrib, bias, output)})."""
    bst, model, card, overrides = ol.trained_case(case, model_dir / case)
    reader, writer = ol.write_schemas(model_dir / case)
    events = ol.make_events(np.random.default_rng(seed), n, f"x{seed}-{ctx.uid}", N_CUSTOMERS)
    placed = ol.produce_events(ctx.input_topic, events, writer)
    scored = ol.merged(events, placed)
    keys = sorted(scored)
    x = np.stack([scored[k][1] for k in keys])
    expected = dict(zip(keys, ol.reference(bst, x, overrides, card)))
    classes = [expected[k]["predicted_class"] for k in keys]
    contribs = dict(zip(keys, ol.contributions_reference(
        bst, x, classes if classes[0] is not None else None)))
    return (bst, model, card, overrides, reader, writer, placed, scored, expected, contribs)


def _run(ctx, props, n, extra_topics=()):
    """The worker run to n predictions with /metrics on: ({topic: records}, explained count)."""
    port = h.free_port()
    props = dict(props, **{"metrics.listen": f"127.0.0.1:{port}"})
    out, samples = ol.run_and_read(
        ctx, props, n, extra_topics, metrics_port=port,
        metrics_done=lambda s: h.metric(s, "streamscore_records_produced_total") == n)
    return out, h.metric(samples, "streamscore_predictions_explained_total")


def _check(ctx, by_source, scored, expected, contribs, model, explained_keys, k=TOP_K):
    """Every prediction as Python XGBoost gives it; the explained ones (explained_keys) with
    their contributions, the others with none. Returns the problems."""
    problems = []
    for key in sorted(scored):
        ev, vector = scored[key]
        rec = by_source[key]
        bad = ol.prediction_problems(rec, expected[key], ev, vector, ctx.input_topic, model.stem,
                                     "1.0.0", contributions=True)
        if key in explained_keys:
            c, bias, output = contribs[key]
            bad += ol.contribution_problems(rec, c, bias, output, vector, k)
        else:
            for f in ("contributions", "contributions_bias", "contributions_output"):
                if rec.get(f) is not None:
                    bad.append(f"{f} {rec.get(f)!r}, expected null (not explained)")
        if bad:
            problems.append(f"{key[0]}/{key[1]} vector {[float(v) for v in vector]}: "
                            f"{'; '.join(bad)}")
    return problems


@pytest.mark.parametrize("case", ["binary_logistic", "multi_softprob", "reg_squarederror",
                                  "reg_quantileerror"])
def test_the_top_k_contributions_are_xgboosts_largest_shap_values(case, ctx, model_dir):
    (bst, model, card, overrides, reader, writer, placed, scored, expected,
     contribs) = _setup(ctx, model_dir, case, seed=300 + len(case))
    props = ol.config(ctx, model, card, reader, writer, {**overrides, "explain.top.k": TOP_K})

    out, explained = _run(ctx, props, len(placed))

    by_source = ol.one_per_source(out[ctx.output_topic], placed)
    problems = _check(ctx, by_source, scored, expected, contribs, model, set(scored))
    assert not problems, (f"{case}: {len(problems)} of {len(scored)} predictions wrong: "
                          f"{problems[:5]}")
    assert explained == len(placed), \
        f"streamscore_predictions_explained_total {explained}, expected {len(placed)}"
    # the data exercised missing values among the features listed
    listed = [c for r in by_source.values() for c in r["contributions"]]
    assert any(c["value"] is None for c in listed), "test data: no missing value listed"


def test_explain_sample_explains_exactly_the_events_its_hash_of_partition_and_offset_picks(
        ctx, model_dir):
    share = 0.3
    (bst, model, card, overrides, reader, writer, placed, scored, expected,
     contribs) = _setup(ctx, model_dir, "binary_logistic", seed=401, n=360)
    chosen = {k for k in scored if ol.explain_sampled(k[0], k[1], share)}
    assert 0.15 * len(scored) < len(chosen) < 0.45 * len(scored), \
        f"test data: {len(chosen)} of {len(scored)} sampled"
    props = ol.config(ctx, model, card, reader, writer,
                      {**overrides, "explain.top.k": TOP_K, "explain.sample": share})

    out, explained = _run(ctx, props, len(placed))

    by_source = ol.one_per_source(out[ctx.output_topic], placed)
    got = {k for k, r in by_source.items() if r.get("contributions") is not None}
    assert got == chosen, (f"explained {len(got)} events, the hash picks {len(chosen)}: "
                           f"explained but not picked {sorted(got - chosen)[:8]}, picked but not "
                           f"explained {sorted(chosen - got)[:8]}")
    problems = _check(ctx, by_source, scored, expected, contribs, model, chosen)
    assert not problems, f"{len(problems)} predictions wrong: {problems[:5]}"
    assert explained == len(chosen), \
        f"streamscore_predictions_explained_total {explained}, expected {len(chosen)}"


def test_explain_when_decision_explains_only_the_predictions_whose_decision_is_true(
        ctx, model_dir):
    (bst, model, card, overrides, reader, writer, placed, scored, expected,
     contribs) = _setup(ctx, model_dir, "binary_logistic", seed=402)
    chosen = {k for k, e in expected.items() if e["decision"]}
    assert 0 < len(chosen) < len(scored), "test data: one decision only"
    props = ol.config(ctx, model, card, reader, writer,
                      {**overrides, "explain.top.k": TOP_K, "explain.when": "decision"})

    out, explained = _run(ctx, props, len(placed))

    by_source = ol.one_per_source(out[ctx.output_topic], placed)
    got = {k for k, r in by_source.items() if r.get("contributions") is not None}
    assert got == {k for k, r in by_source.items() if r["decision"]}, \
        "explained predictions are not exactly those whose decision is true"
    problems = _check(ctx, by_source, scored, expected, contribs, model, chosen)
    assert not problems, f"{len(problems)} predictions wrong: {problems[:5]}"
    assert explained == len(chosen), \
        f"streamscore_predictions_explained_total {explained}, expected {len(chosen)}"


def test_explain_when_class_explains_only_the_predictions_of_that_class(ctx, model_dir):
    (bst, model, card, overrides, reader, writer, placed, scored, expected,
     contribs) = _setup(ctx, model_dir, "multi_softprob", seed=403)
    chosen = {k for k, e in expected.items() if e["predicted_class"] == 1}
    assert 0 < len(chosen) < len(scored), "test data: class 1 always or never predicted"
    props = ol.config(ctx, model, card, reader, writer,
                      {**overrides, "explain.top.k": TOP_K, "explain.when": "class:1"})

    out, explained = _run(ctx, props, len(placed))

    by_source = ol.one_per_source(out[ctx.output_topic], placed)
    got = {k for k, r in by_source.items() if r.get("contributions") is not None}
    assert got == {k for k, r in by_source.items() if r["predicted_class"] == 1}, \
        "explained predictions are not exactly those of predicted class 1"
    problems = _check(ctx, by_source, scored, expected, contribs, model, chosen)
    assert not problems, f"{len(problems)} predictions wrong: {problems[:5]}"
    assert all(by_source[k]["contributions_output"] == 1 for k in chosen)
    assert explained == len(chosen), \
        f"streamscore_predictions_explained_total {explained}, expected {len(chosen)}"


def test_explain_topic_gets_the_explained_predictions_and_the_output_topic_none(ctx, model_dir):
    share = 0.5
    (bst, model, card, overrides, reader, writer, placed, scored, expected,
     contribs) = _setup(ctx, model_dir, "binary_logistic", seed=404)
    chosen = {k for k in scored if ol.explain_sampled(k[0], k[1], share)}
    assert 0 < len(chosen) < len(scored)
    topic = f"{ctx.output_topic}.explained"
    ctx.add_topics(topic)
    props = ol.config(ctx, model, card, reader, writer,
                      {**overrides, "explain.top.k": TOP_K, "explain.sample": share,
                       "explain.topic": topic})

    out, explained = _run(ctx, props, len(placed), extra_topics={topic: len(chosen)})

    by_source = ol.one_per_source(out[ctx.output_topic], placed)
    problems = _check(ctx, by_source, scored, expected, contribs, model, set())
    assert not problems, f"output topic: {len(problems)} predictions wrong: {problems[:5]}"
    on_topic = h.index_by_source(out[topic])
    dup = [k for k, v in on_topic.items() if len(v) > 1]
    assert set(on_topic) == chosen and not dup, (
        f"{len(out[topic])} records on {topic} for {len(chosen)} explained events: not picked "
        f"{sorted(set(on_topic) - chosen)[:8]}, missing {sorted(chosen - set(on_topic))[:8]}, "
        f"duplicated {dup[:5]}")
    explained_recs = {k: v[0] for k, v in on_topic.items()}
    problems = _check(ctx, explained_recs, {k: scored[k] for k in chosen},
                      expected, contribs, model, chosen)
    assert not problems, f"{topic}: {len(problems)} records wrong: {problems[:5]}"
    differ = [f for f in ("event_id", "customer_id", "_key", "score", "decision", "threshold",
                        "feature_hash", "scored_at", "model_name", "model_version")
            if any(explained_recs[k][f] != by_source[k][f] for k in chosen)]
    assert not differ, f"records on {topic} differ from the predictions in {differ}"
    assert explained == len(chosen), \
        f"streamscore_predictions_explained_total {explained}, expected {len(chosen)}"
