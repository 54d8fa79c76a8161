"""Every objective streamscore serves is scored as Python XGBoost scores it: for each one a
small model trained here on data with missing values, events whose features are null or
absent, and every output field of each prediction (score, decision, threshold, outputs,
predicted_class) equal to what booster.predict gives for the merged feature vector. An
objective it cannot serve, and an output schema that cannot hold what the model gives, stop
the worker at start-up with exit 2 and one line saying why."""

import io
import json

import fastavro
import numpy as np
import pytest

import harness as h
import objectives_lib as ol

N_EVENTS = 240
N_CUSTOMERS = 80


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("objective-models")


@pytest.mark.parametrize("case", list(ol.OBJECTIVES))
def test_every_prediction_field_equals_python_xgboost_for_the_objective(case, ctx, model_dir):
    bst, model, card, overrides = ol.trained_case(case, model_dir / case)
    assert ol.objective_of(bst) == ol.OBJECTIVES[case][0]
    reader, writer = ol.write_schemas(model_dir / case)
    rng = np.random.default_rng(5000 + sorted(ol.OBJECTIVES).index(case))
    events = ol.make_events(rng, N_EVENTS, f"{case}-{ctx.uid}", N_CUSTOMERS)
    placed = ol.produce_events(ctx.input_topic, events, writer)
    scored = ol.merged(events, placed)
    keys = sorted(scored)
    x = np.stack([scored[k][1] for k in keys])
    assert np.isnan(x[:, ol.FEATURES.index(ol.ABSENT)]).all()
    assert np.isnan(np.delete(x, ol.FEATURES.index(ol.ABSENT), axis=1)).any(axis=1).sum() > 20, \
        "test data: too few merged vectors with a missing value"
    expected = dict(zip(keys, ol.reference(bst, x, overrides, card)))

    records, undecodable = ctx.run_until(ol.config(ctx, model, card, reader, writer, overrides),
                                         len(events))

    assert not undecodable, f"undecodable predictions: {undecodable[:3]}"
    by_source = ol.one_per_source(records, placed)
    problems = []
    for k in keys:
        ev, vector = scored[k]
        bad = ol.prediction_problems(by_source[k], expected[k], ev, vector, ctx.input_topic,
                                     model.stem, "1.0.0")
        if bad:
            problems.append(f"{ev['customer_id']} @ {k[0]}/{k[1]} vector "
                            f"{[float(v) for v in vector]}: {'; '.join(bad)}")
    assert not problems, (f"{case}: {len(problems)} of {len(keys)} predictions differ from "
                          f"Python XGBoost: {problems[:6]}")
    # the data exercised what the objective has: both decisions, several classes
    if expected[keys[0]]["threshold"] is not None:
        assert {e["decision"] for e in expected.values()} == {True, False}, \
            "test data: one decision only"
    if expected[keys[0]]["predicted_class"] is not None:
        assert len({e["predicted_class"] for e in expected.values()}) >= 2, \
            "test data: one class only"
    assert ctx.dead_letters() == [], "valid events were dead-lettered"


def _offline_config(tmp_path, model, card, overrides=None):
    """A config whose worker never reaches a broker: for errors found at start-up."""
    reader, writer = ol.write_schemas(tmp_path / "schemas")
    props = {"input.topic": "it-objectives-events", "output.topic": "it-objectives-predictions",
             "input.schema": reader, "input.writer.schema": writer, "model.path": model,
             "model.card": card, "kafka.bootstrap.servers": "127.0.0.1:1",
             "redis.port": h.REDIS_PORT, **(overrides or {})}
    return h.write_properties(tmp_path / "worker.properties", props)


def test_an_objective_it_cannot_serve_exits_2_with_one_line_naming_it_and_the_file(tmp_path):
    bst = ol.train("binary:logistic", seed=3, rounds=2)
    model, card = ol.save_model(bst, tmp_path, "unknown-loss")
    doc = json.loads(model.read_text())
    doc["learner"]["objective"]["name"] = "reg:unknownloss"
    model.write_text(json.dumps(doc))
    cfg = _offline_config(tmp_path, model, card)

    r = h.run_cli(["run", "-c", str(cfg)], timeout=30.0)

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    plain = h.plain_lines(r.stderr)
    assert len(plain) == 1, f"expected one plain line, got {plain!r}"
    assert plain[0].startswith("streamscore: "), plain
    assert "reg:unknownloss" in plain[0] and str(model) in plain[0], plain[0]


def _prediction_schema_with_plain_boolean_decision(path):
    schema = h.load_schema_json(h.PREDICTION_SCHEMA_PATH)
    [decision] = [f for f in schema["fields"] if f["name"] == "decision"]
    decision["type"] = "boolean"
    path.write_text(json.dumps(schema), encoding="utf-8")
    return path


def test_a_regression_model_with_an_output_schema_whose_decision_is_not_nullable_exits_2(
        tmp_path):
    """A regression has no decision without a threshold: a plain boolean field could not hold
    its null, so the worker refuses to start rather than write a made-up decision."""
    bst = ol.train("reg:squarederror", seed=4, rounds=2)
    model, card = ol.save_model(bst, tmp_path, "regression")
    schema = _prediction_schema_with_plain_boolean_decision(tmp_path / "prediction.avsc")
    cfg = _offline_config(tmp_path, model, card, {"output.schema": schema})

    r = h.run_cli(["run", "-c", str(cfg)], timeout=30.0)

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    plain = h.plain_lines(r.stderr)
    assert len(plain) == 1, f"expected one plain line, got {plain!r}"
    assert plain[0].startswith("streamscore: "), plain
    assert "output.schema" in plain[0] and "decision" in plain[0], plain[0]


def test_a_binary_model_writes_its_decisions_into_a_non_nullable_decision_field(ctx, tmp_path):
    """The same schema is fine for a binary model: it always has a decision."""
    bst, model, card, _ = ol.trained_case("binary_logistic", tmp_path / "model")
    reader, writer = ol.write_schemas(tmp_path / "schemas")
    schema_path = _prediction_schema_with_plain_boolean_decision(tmp_path / "prediction.avsc")
    parsed = h.parsed_schema(schema_path)
    events = ol.make_events(np.random.default_rng(77), 60, f"plain-{ctx.uid}", 60)
    placed = ol.produce_events(ctx.input_topic, events, writer)
    scored = ol.merged(events, placed)
    keys = sorted(scored)
    expected = dict(zip(keys, ol.reference(bst, np.stack([scored[k][1] for k in keys]))))

    props = ol.config(ctx, model, card, reader, writer, {"output.schema": schema_path})
    w = ctx.start_worker(props)
    out = h.TopicReader(ctx.output_topic,
                        decode=lambda raw, _t: fastavro.schemaless_reader(io.BytesIO(raw), parsed))
    try:
        out.wait_for(len(events), 60, worker=w, what="predictions")
        w.stop()
        out.drain()
    finally:
        out.close()

    assert not out.undecodable, f"not records of the plain-boolean schema: {out.undecodable[:3]}"
    by_source = ol.one_per_source(out.records, placed)
    wrong = [f"{k}: score {by_source[k]['score']!r} decision {by_source[k]['decision']!r}, "
             f"expected {expected[k]['score']!r} {expected[k]['decision']!r}"
             for k in keys if not ol.close(by_source[k]["score"], expected[k]["score"])
             or by_source[k]["decision"] is not expected[k]["decision"]]
    assert not wrong, f"{len(wrong)} predictions differ: {wrong[:5]}"


def test_a_model_xgboost_cannot_explain_is_refused_at_start_when_explanations_are_asked(tmp_path):
    """Vector-leaf trees (multi_strategy = multi_output_tree) score, but XGBoost has no
    contributions for them: with explain.top.k set the worker says so at start-up, in one line
    naming the key, rather than failing on its first batch."""
    rng = np.random.default_rng(11)
    x, z = ol.training_matrix(rng, 300)
    d = ol.xgb.DMatrix(x, np.column_stack([z, -z]), missing=np.nan,
                       feature_names=list(ol.FEATURES))
    bst = ol.xgb.train({"objective": "reg:squarederror", "multi_strategy": "multi_output_tree",
                        "tree_method": "hist", "max_depth": 2, "nthread": 1}, d, 2)
    model, card = ol.save_model(bst, tmp_path, "vector-leaf")

    r = h.run_cli(["run", "-c", str(_offline_config(tmp_path, model, card,
                                                     {"explain.top.k": 3}))], timeout=30.0)

    assert r.returncode == 2, f"exit {r.returncode}, expected 2; stderr: {r.stderr[-2000:]}"
    plain = h.plain_lines(r.stderr)
    assert len(plain) == 1, f"expected one plain line, got {plain!r}"
    assert "'explain.top.k'" in plain[0] and "cannot be explained" in plain[0], plain[0]
