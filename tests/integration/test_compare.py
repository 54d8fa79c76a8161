"""`streamscore compare` on cases built by hand: primary predictions and shadow results
written straight to Kafka, labels in a CSV, and every figure of compare.json worked out
independently here (numpy, scipy, scikit-learn).

A binary case (harness.CompareCase): the primary's predictions are those of a rollout's
canary, some with route "canary" (scored by the candidate in the primary), the others half
with route "live" and half without the field (written before it existed, with the schema of
the time), so every test reads a topic of two schema versions and compare reports per route
as well; another test mixes all three versions of the prediction schema on one topic.

A multi-class case (MultiClassCase) and a regression one (RegressionCase), written with the
current schema: decision and threshold null, every class probability in `outputs`, the
predicted class; per-output differences, class flips and the class matrix, the regression's
difference percentiles and, with numeric labels, each model's RMSE and MAE."""

import copy
import html
import io
import json
import math
import re

import fastavro
import numpy as np
import pytest

import harness as h

EXACT_TOL = 1e-9  # exact mode: same arithmetic, only summation order may differ


CANARY = {"n_canary": 40, "n_canary_divergent": 3, "n_canary_primary_only": 3}


# ---- the versions of schemas/prediction.avsc a topic holds (git log -p schemas/prediction.avsc)

def _schema_before_route():
    """The prediction schema before the field `route` (timestamps as plain longs)."""
    contribution = {"type": "record", "name": "Contribution",
                    "fields": [{"name": "feature", "type": "string"},
                               {"name": "value", "type": "double"}]}
    fields = [("event_id", "string"), ("customer_id", "string"), ("score", "double"),
              ("decision", "boolean"), ("threshold", "double"), ("model_name", "string"),
              ("model_version", "string"), ("source_topic", "string"),
              ("source_partition", "int"), ("source_offset", "long"), ("event_time", "long"),
              ("scored_at", "long"), ("feature_hash", "string")]
    return {"type": "record", "name": "Prediction", "namespace": "streamscore",
            "fields": [{"name": n, "type": t} for n, t in fields]
            + [{"name": "contributions", "type": ["null", {"type": "array", "items": contribution}],
                "default": None},
               {"name": "degraded", "type": "boolean", "default": False}]}


def _schema_with_route():
    """The prediction schema with `route`, before the objectives other than binary."""
    schema = _schema_before_route()
    schema["fields"].append({"name": "route", "type": "string", "default": "live"})
    return schema


SCHEMAS = {"before-route": _schema_before_route(), "with-route": _schema_with_route(),
           "current": h._strip_logical_types(h.load_schema_json(h.PREDICTION_SCHEMA_PATH))}
_PARSED = {name: fastavro.parse_schema(copy.deepcopy(s)) for name, s in SCHEMAS.items()}


def test_the_current_schema_is_the_one_these_tests_write():
    """The current version carries what the multi-class and regression cases write; the two
    before it are the historical ones (no nullable decision, no outputs)."""
    names = [f["name"] for f in SCHEMAS["current"]["fields"]]
    for field in ("route", "outputs", "predicted_class", "contributions_bias"):
        assert field in names, f"schemas/prediction.avsc has no {field}: update these tests"
    decision = next(f for f in SCHEMAS["current"]["fields"] if f["name"] == "decision")
    assert "null" in decision["type"], "decision is not nullable in schemas/prediction.avsc"
    assert [f["name"] for f in SCHEMAS["with-route"]["fields"]] == \
        [f["name"] for f in SCHEMAS["before-route"]["fields"]] + ["route"]


def encode_version(version, record):
    """A prediction dict as a worker with schema `version` wrote it: the fields the dict lacks
    take their defaults (route "live", outputs and class null); ones the version lacks are left
    out."""
    out = {}
    for f in SCHEMAS[version]["fields"]:
        if f["name"] in record:
            out[f["name"]] = record[f["name"]]
        else:
            assert "default" in f, f"{version}: the record has no {f['name']}"
            out[f["name"]] = f["default"]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, _PARSED[version], out, strict=True)
    return buf.getvalue()


def encode_of_its_time(record):
    """A binary prediction dict with the schema of its time: with `route` when the dict has
    one, else the schema from before that field."""
    return encode_version("with-route" if "route" in record else "before-route", record)


def encode_current(record):
    return encode_version("current", record)


def write_schema(path, version):
    """Schema `version` as a file (an output.schema for compare)."""
    path.write_text(json.dumps(SCHEMAS[version], indent=2), encoding="utf-8")
    return path


@pytest.fixture
def case(ctx):
    """The hand-built case on this test's topics: primary on ctx.output_topic, shadow on
    ctx.shadow_topic, labels in a CSV; .expected holds the figures."""
    ctx.add_topics(ctx.shadow_topic)
    c = h.CompareCase(source_topic=ctx.input_topic, **CANARY)
    h.produce_records(ctx.output_topic, c.primary, encode=encode_of_its_time)
    h.produce_records(ctx.shadow_topic, c.shadow, encode=encode_of_its_time)
    c.labels_path = c.labels_csv(ctx.tmp / "labels.csv")
    c.exp = c.expected()
    return c


def _run_compare(ctx, case, name, extra=None, args=(), labels=True, topics=None):
    out = ctx.tmp / name
    output_topic, shadow_topic = topics or (ctx.output_topic, ctx.shadow_topic)
    cfg = h.compare_config(ctx.tmp / f"{name}.properties", output_topic, shadow_topic,
                           out, case.labels_path if labels else None, extra)
    r = h.run_cli(["compare", "-c", str(cfg), *args], timeout=60)
    report = None
    if (out / "compare.json").exists():
        report = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    return r, report, out


def _close(got, want, tol):
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return got is None
    if isinstance(want, bool) or isinstance(want, str):
        return got == want
    if isinstance(want, int) and not isinstance(want, bool):
        return got == want
    return isinstance(got, (int, float)) and abs(got - want) <= tol * max(1.0, abs(want))


def _diff(got, want, tol, path=""):
    """Paths where the nested `got` differs from `want` (only want's keys are checked)."""
    out = []
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: {got!r} is not an object"]
        for k, v in want.items():
            out += _diff(got.get(k), v, tol, f"{path}.{k}")
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: {got!r} != {want!r}"]
        for i, (g, w) in enumerate(zip(got, want)):
            out += _diff(g, w, tol, f"{path}[{i}]")
    elif not _close(got, want, tol):
        out.append(f"{path}: {got!r} != expected {want!r}")
    return out


def _passing_criteria(exp):
    """Limits every figure meets, with some room."""
    auc_drop = exp["labels"]["primary"]["roc_auc"] - exp["labels"]["shadow"]["roc_auc"]
    return {"promote.min.matched.share": 0.9,
            "promote.max.flip.rate": round(exp["pairs"]["flips"]["rate"] + 0.02, 4),
            "promote.max.score.diff.p99": round(exp["pairs"]["score_diff"]["abs_p99"] + 0.01, 4),
            "promote.max.auc.drop": round(max(auc_drop, 0) + 0.02, 4),
            "promote.max.latency.p99.ms": round(exp["latency_ms"]["shadow"]["p99"] + 100)}


def _figures(report):
    out = {k: report.get(k) for k in ("counts", "pairs", "distributions", "latency_ms",
                                      "labels", "models", "routes")}
    if isinstance(out["models"], dict):  # listed as read: in no set order
        out["models"] = {side: sorted(models, key=lambda m: (m["name"], m["version"]))
                         for side, models in out["models"].items()}
    return out


def test_compare_figures_match_an_independent_computation_and_promote(ctx, case):
    exp = case.exp
    limits = _passing_criteria(exp)

    r, report, out = _run_compare(ctx, case, "promote", limits)

    assert r.returncode == 0, f"exit {r.returncode}, expected 0 (promote); stdout:\n{r.stdout}" \
                              f"\nstderr:\n{r.stderr[-3000:]}"
    assert report is not None, f"no compare.json in {out}"
    assert report.get("streamscore_compare") == 1
    want = {k: v for k, v in exp.items() if k != "labels_input"}
    problems = _diff(_figures(report), want, EXACT_TOL)
    assert not problems, f"{len(problems)} figures differ: {problems[:15]}"
    assert report["method"]["exact"] is True

    inputs = report["inputs"]
    assert inputs["primary"]["topic"] == ctx.output_topic
    assert inputs["shadow"]["topic"] == ctx.shadow_topic
    assert (inputs["primary"]["source"], inputs["shadow"]["source"]) == ("kafka", "kafka")
    assert inputs["primary"]["read"] == len(case.primary)
    assert inputs["shadow"]["read"] == len(case.shadow)
    assert inputs["primary"]["malformed"] == inputs["shadow"]["malformed"] == 0
    assert inputs["labels"]["rows"] == exp["labels_input"]["rows"]
    assert inputs["labels"]["malformed"] == exp["labels_input"]["malformed"]

    verdict = report["verdict"]
    assert verdict["decision"] == "promote", f"verdict {verdict}"
    assert verdict["reasons"] == []
    crit = {c["key"]: c for c in verdict["criteria"]}
    assert set(crit) == set(limits), f"criteria {sorted(crit)} != configured {sorted(limits)}"
    values = {"promote.min.matched.share": exp["counts"]["matched_share"],
              "promote.max.flip.rate": exp["pairs"]["flips"]["rate"],
              "promote.max.score.diff.p99": exp["pairs"]["score_diff"]["abs_p99"],
              "promote.max.auc.drop": exp["labels"]["primary"]["roc_auc"]
              - exp["labels"]["shadow"]["roc_auc"],
              "promote.max.latency.p99.ms": exp["latency_ms"]["shadow"]["p99"]}
    for key, c in crit.items():
        assert c["passed"] is True, f"{key} failed: {c}"
        assert _close(c["limit"], float(limits[key]), EXACT_TOL), f"{key} limit {c['limit']}"
        assert _close(c["value"], values[key], EXACT_TOL), f"{key} value {c['value']} != {values[key]}"

    # The terminal summary names the key figures and the verdict.
    text = r.stdout
    figures = {"matched pairs": exp["counts"]["matched"],
               "primary-only": exp["counts"]["primary_only"],
               "shadow-only": exp["counts"]["shadow_only"],
               "identical-feature pairs": exp["counts"]["identical_features"],
               "flips no->yes": exp["pairs"]["flips"]["no_to_yes"],
               "flips yes->no": exp["pairs"]["flips"]["yes_to_no"],
               "flip rate": exp["pairs"]["flips"]["rate"],
               "|d| p99": exp["pairs"]["score_diff"]["abs_p99"],
               "spearman": exp["pairs"]["spearman"],
               "primary ROC-AUC": exp["labels"]["primary"]["roc_auc"],
               "shadow ROC-AUC": exp["labels"]["shadow"]["roc_auc"]}
    missing = [f"{name} {value}" for name, value in figures.items() if not h.mentions(text, value)]
    assert not missing, f"the summary does not show {missing}:\n{text}"
    assert "promote" in text.lower(), f"the summary does not give the verdict:\n{text}"
    assert (out / "compare.html").exists(), "no compare.html"


def test_compare_holds_with_exit_3_naming_the_failed_criterion(ctx, case):
    limits = _passing_criteria(case.exp)
    limits["promote.max.flip.rate"] = 0.001

    r, report, _ = _run_compare(ctx, case, "hold", limits)

    assert r.returncode == 3, f"exit {r.returncode}, expected 3 (hold); stdout:\n{r.stdout}" \
                              f"\nstderr:\n{r.stderr[-3000:]}"
    verdict = report["verdict"]
    assert verdict["decision"] == "hold", f"verdict {verdict}"
    assert len(verdict["reasons"]) == 1 and "promote.max.flip.rate" in verdict["reasons"][0], \
        f"reasons {verdict['reasons']} should name promote.max.flip.rate only"
    failed = [c["key"] for c in verdict["criteria"] if not c["passed"]]
    assert failed == ["promote.max.flip.rate"], f"failed criteria {failed}"
    assert "hold" in r.stdout.lower() and "promote.max.flip.rate" in r.stdout, \
        f"the summary does not show the hold and its reason:\n{r.stdout}"


def test_compare_without_criteria_or_labels_gives_no_verdict_and_exit_0(ctx, case):
    r, report, _ = _run_compare(ctx, case, "plain", labels=False)

    assert r.returncode == 0, f"exit {r.returncode}; stderr: {r.stderr[-3000:]}"
    assert report["verdict"]["decision"] == "none" and report["verdict"]["criteria"] == []
    assert report["labels"] is None and report["inputs"]["labels"] is None
    problems = _diff(report["counts"], case.exp["counts"], EXACT_TOL)
    assert not problems, f"{problems[:10]}"


def _quantile_bracket(values, q, bins=65536):
    """What a quantile read from a `bins`-bin histogram over [min, max] can honestly give:
    a value between the order statistics around rank q (n - 1), within one bin width."""
    a = sorted(values)
    w = (a[-1] - a[0]) / bins
    rank = q * (len(a) - 1)
    return a[math.floor(rank)] - w, a[math.ceil(rank)] + w


def test_compare_histogram_mode_stays_within_one_bin_of_the_order_statistics(ctx, case):
    """--exact-limit 0 forces the 65536-bin histograms. Counts and flips stay exact;
    quantiles fall between the neighbouring order statistics (within one bin width);
    Spearman and ROC-AUC treat values in one bin as ties (a tiny effect here)."""
    exp = case.exp
    r, report, _ = _run_compare(ctx, case, "approx", args=["--exact-limit", "0", "--json-only"])

    assert r.returncode == 0, f"exit {r.returncode}; stderr: {r.stderr[-3000:]}"
    assert report["method"]["exact"] is False
    problems = _diff(report["counts"], exp["counts"], EXACT_TOL)
    problems += _diff(report["pairs"]["flips"], exp["pairs"]["flips"], EXACT_TOL)
    for route, e in exp["routes"].items():
        got = report["routes"].get(route) or {}
        problems += _diff(got.get("counts"), e["counts"], EXACT_TOL, f"routes.{route}.counts")
        problems += _diff(got.get("pairs", {}).get("flips"), e["pairs"]["flips"], EXACT_TOL,
                          f"routes.{route}.flips")
    checks = [("abs_p50", report["pairs"]["score_diff"]["abs_p50"], "abs_diff", 0.5),
              ("abs_p99", report["pairs"]["score_diff"]["abs_p99"], "abs_diff", 0.99)]
    for side in ("primary", "shadow"):
        for k, q in (("p50", 0.5), ("p99", 0.99)):
            checks.append((f"latency {side} {k}", report["latency_ms"][side][k],
                           f"latency_{side}", q))
        auc, eauc = report["labels"][side]["roc_auc"], exp["labels"][side]["roc_auc"]
        if not abs(auc - eauc) <= 1e-3:
            problems.append(f"ROC-AUC {side} {auc} vs exact {eauc}")
    for name, got, values, q in checks:
        lo, hi = _quantile_bracket(case.values[values], q)
        if not lo <= got <= hi:
            problems.append(f"{name} {got} outside [{lo}, {hi}]")
    if not abs(report["pairs"]["spearman"] - exp["pairs"]["spearman"]) <= 1e-3:
        problems.append(f"spearman {report['pairs']['spearman']} vs {exp['pairs']['spearman']}")
    assert not problems, f"{problems}"


def test_compare_reads_the_shadow_results_file(ctx, case):
    """shadow.output = file: the shadow side comes from JSON lines (the shadow's file format);
    the figures are the same as from the topic."""
    results = ctx.tmp / "shadow-results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in case.shadow), encoding="utf-8")

    r, report, _ = _run_compare(ctx, case, "file", {"shadow.output": "file",
                                                    "shadow.file": results})

    assert r.returncode == 0, f"exit {r.returncode}; stderr: {r.stderr[-3000:]}"
    assert report["inputs"]["shadow"]["source"] == "file"
    assert report["inputs"]["shadow"]["read"] == len(case.shadow)
    want = {k: case.exp[k] for k in ("counts", "pairs", "labels", "routes")}
    problems = _diff(_figures(report), want, EXACT_TOL)
    assert not problems, f"{len(problems)} figures differ: {problems[:15]}"


def _route_row_problems(text, route, e, labels=True):
    """What the per-route table row of `route` in text does not show of its figures e."""
    rows = [line for line in text.splitlines()
            if line.split()[:1] == [route] and line.split()[1:2] and line.split()[1].isdigit()]
    if len(rows) != 1:
        return [f"{len(rows)} rows for route {route}"]
    want = {"primary": e["counts"]["primary"], "matched": e["counts"]["matched"],
            "matched share": e["counts"]["matched_share"],
            "identical pairs": e["counts"]["identical_features"],
            "flips no->yes": e["pairs"]["flips"]["no_to_yes"],
            "flips yes->no": e["pairs"]["flips"]["yes_to_no"],
            "flip rate": e["pairs"]["flips"]["rate"],
            "diff mean": e["pairs"]["score_diff"]["mean"],
            "|diff| p50": e["pairs"]["score_diff"]["abs_p50"],
            "|diff| p99": e["pairs"]["score_diff"]["abs_p99"]}
    if labels:
        want["ROC-AUC primary"] = e["labels"]["primary"]["roc_auc"]
        want["ROC-AUC shadow"] = e["labels"]["shadow"]["roc_auc"]
    return [f"route {route}: {k} {v} not in {rows[0]!r}" for k, v in want.items()
            if not h.mentions(rows[0], v)]


def test_compare_reports_each_route_and_judges_only_the_overall_figures(ctx, case):
    """Primary predictions of route live (with the field or without it) and canary:
    compare.json's "routes" gives each route's figures as worked out here, the canary's pairs
    (the candidate against itself) identical; the summary and compare.html show a per-route
    table and the note on canary pairs. The verdict judges the overall figures: a flip-rate
    limit that the live route's rate exceeds but the overall rate meets still promotes."""
    exp = case.exp
    live, canary = exp["routes"]["live"], exp["routes"]["canary"]
    overall_rate, live_rate = exp["pairs"]["flips"]["rate"], live["pairs"]["flips"]["rate"]
    assert canary["pairs"]["flips"]["total"] == 0 and overall_rate < live_rate, \
        "the case should have flips on the live route only"
    limits = _passing_criteria(exp)
    limits["promote.max.flip.rate"] = round((overall_rate + live_rate) / 2, 6)

    r, report, out = _run_compare(ctx, case, "routes", limits)

    assert r.returncode == 0, f"exit {r.returncode}, expected 0 (promote); stdout:\n{r.stdout}" \
                              f"\nstderr:\n{r.stderr[-3000:]}"
    routes = report.get("routes")
    assert isinstance(routes, dict) and list(routes) == ["live", "canary"], \
        f"routes {routes if not isinstance(routes, dict) else list(routes)}, expected live, canary"
    problems = _diff(routes, exp["routes"], EXACT_TOL, "routes")
    assert not problems, f"{len(problems)} route figures differ: {problems[:15]}"
    for key in ("primary", "matched", "primary_only", "identical_features"):
        assert sum(v["counts"][key] for v in routes.values()) == report["counts"][key], \
            f"the routes' {key} do not add up to the overall {report['counts'][key]}"
    pairs = routes["canary"]["pairs"]
    assert pairs["flips"]["total"] == 0 and pairs["score_diff"]["abs_max"] == 0, \
        f"canary pairs (the candidate against itself) differ: {pairs}"
    assert routes["live"]["note"] is None
    note = routes["canary"]["note"]
    assert isinstance(note, str) and "itself" in note and "identical" in note, f"note {note!r}"

    verdict = report["verdict"]
    assert verdict["decision"] == "promote", f"verdict {verdict}"
    crit = {c["key"]: c for c in verdict["criteria"]}
    assert _close(crit["promote.max.flip.rate"]["value"], overall_rate, EXACT_TOL), \
        f"the flip-rate criterion judged {crit['promote.max.flip.rate']['value']}, " \
        f"not the overall rate {overall_rate}"

    text = r.stdout
    problems = [p for route, e in exp["routes"].items() for p in _route_row_problems(text, route, e)]
    assert not problems, f"{problems}\n{text}"
    assert "compare the candidate with itself" in " ".join(text.split()), \
        f"the summary does not give the note on canary pairs:\n{text}"

    page = (out / "compare.html").read_text(encoding="utf-8")
    table = re.search(r'<table id="routes">(.*?)</table>', page, re.S)
    assert table, "no per-route table (id routes) in compare.html"
    rows = re.findall(r'<tr class="route">(.*?)</tr>', table.group(1), re.S)
    cells = [[html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row, re.S)]
             for row in rows]
    assert [c[0] for c in cells] == ["live", "canary"], f"route rows {cells}"
    problems = [p for c in cells for p in _route_row_problems(" ".join(c), c[0],
                                                               exp["routes"][c[0]])]
    assert not problems, f"{problems}"
    note = re.search(r'<p id="canary-note"[^>]*>(.*?)</p>', page, re.S)
    assert note and "compare the candidate with itself" in html.unescape(note.group(1)), \
        "compare.html does not give the note on canary pairs"


@pytest.mark.parametrize("encoding", ["avro-with-route", "avro-before-route", "json"])
def test_compare_reads_predictions_with_and_without_the_route_field(ctx, case, encoding):
    """Records without `route` (the schema before the field) read as live beside records with
    it, whichever schema output.schema is (with the field, or from before it), and in JSON
    (output.format = json) with or without the key."""
    topics, extra = None, {}
    if encoding == "json":
        topics = (f"{ctx.output_topic}.json", f"{ctx.shadow_topic}.json")
        ctx.add_topics(*topics)
        h.produce_records(topics[0], case.primary, encode=h.encode_prediction_json)
        h.produce_records(topics[1], case.shadow, encode=h.encode_prediction_json)
        extra["output.format"] = "json"
    else:
        extra["output.schema"] = write_schema(ctx.tmp / "prediction.avsc",
                                              encoding.removeprefix("avro-"))

    r, report, _ = _run_compare(ctx, case, "decode", extra, args=["--json-only"], topics=topics)

    assert r.returncode == 0, f"exit {r.returncode}; stderr: {r.stderr[-3000:]}"
    for side, recs in (("primary", case.primary), ("shadow", case.shadow)):
        got = report["inputs"][side]
        assert (got["read"], got["malformed"]) == (len(recs), 0), \
            f"{side}: read {got['read']}, malformed {got['malformed']} of {len(recs)} records"
    want = {k: case.exp[k] for k in ("counts", "pairs", "labels", "models", "routes")}
    problems = _diff(_figures(report), want, EXACT_TOL)
    assert not problems, f"{len(problems)} figures differ: {problems[:15]}"


def test_compare_of_predictions_without_routes_reports_them_as_live(ctx):
    """Predictions all written before the route field existed: one route, live, whose figures
    are the overall ones; no note on canary pairs."""
    topics = (f"{ctx.output_topic}.plain", f"{ctx.shadow_topic}.plain")
    ctx.add_topics(*topics)
    c = h.CompareCase(source_topic=ctx.input_topic, seed=77)
    assert not any("route" in r for r in c.primary + c.shadow)
    h.produce_records(topics[0], c.primary, encode=encode_of_its_time)
    h.produce_records(topics[1], c.shadow, encode=encode_of_its_time)
    c.labels_path = c.labels_csv(ctx.tmp / "labels.csv")
    exp = c.expected()

    r, report, out = _run_compare(ctx, c, "plain-routes", topics=topics)

    assert r.returncode == 0, f"exit {r.returncode}; stderr: {r.stderr[-3000:]}"
    routes = report["routes"]
    assert list(routes) == ["live"], f"routes {list(routes)}, expected live only"
    problems = _diff(routes, exp["routes"], EXACT_TOL, "routes")
    live = routes["live"]
    for k in ("primary", "matched", "primary_only", "matched_share", "identical_features",
              "identical_share"):
        problems += _diff(live["counts"][k], report["counts"][k], EXACT_TOL, f"counts.{k}")
    for k in ("score_diff", "flips", "spearman"):
        problems += _diff(live["pairs"][k], report["pairs"][k], EXACT_TOL, f"pairs.{k}")
    assert not problems, f"{problems[:15]}"
    assert live["note"] is None
    assert not _route_row_problems(r.stdout, "live", exp["routes"]["live"]), r.stdout
    assert "itself" not in r.stdout and 'id="canary-note"' not in \
        (out / "compare.html").read_text(encoding="utf-8")


def test_compare_missing_topic_fails_with_a_clear_message(ctx):
    missing = f"{ctx.output_topic}.nowhere"
    cfg = h.compare_config(ctx.tmp / "missing.properties", ctx.output_topic, missing,
                           ctx.tmp / "missing-out", extra={"compare.timeout.ms": 5000})

    r = h.run_cli(["compare", "-c", str(cfg)], timeout=60)

    assert r.returncode not in (0, 3), f"exit {r.returncode} for a missing shadow topic"
    assert missing in r.stderr and "shadow.topic" in r.stderr, \
        f"stderr does not name the missing topic {missing} and its key: {r.stderr[-2000:]}"
    assert not (ctx.tmp / "missing-out" / "compare.json").exists(), \
        "a report was written although an input is missing"


# ---- every version of the prediction schema on one topic

def test_compare_reads_a_topic_mixing_every_version_of_the_prediction_schema(ctx):
    """Workers upgraded one by one leave records of the three versions side by side: the one
    before `route`, the one with it, the current one (decision and threshold nullable, outputs
    and predicted_class after `route`). Each record is read (none malformed) and the figures
    are those of the same records written with one version."""
    topics = (f"{ctx.output_topic}.mixed", f"{ctx.shadow_topic}.mixed")
    ctx.add_topics(*topics)
    c = h.CompareCase(source_topic=ctx.input_topic, seed=314, **CANARY)
    rng = np.random.default_rng(5)
    used = {"before-route": 0, "with-route": 0, "current": 0}

    def mixed(record):  # a version that can hold the record: the current one holds them all
        if "route" in record:
            version = "with-route" if rng.random() < 0.5 else "current"
        else:
            version = "before-route" if rng.random() < 0.5 else "current"
        used[version] += 1
        return encode_version(version, record)

    h.produce_records(topics[0], c.primary, encode=mixed)
    h.produce_records(topics[1], c.shadow, encode=mixed)
    assert min(used.values()) > 20, f"the topics should hold every version: {used}"
    c.labels_path = c.labels_csv(ctx.tmp / "labels.csv")
    exp = c.expected()

    r, report, _ = _run_compare(ctx, c, "mixed", args=["--json-only"], topics=topics)

    assert r.returncode == 0, f"exit {r.returncode}; stderr: {r.stderr[-3000:]}"
    for side, recs in (("primary", c.primary), ("shadow", c.shadow)):
        got = report["inputs"][side]
        assert (got["read"], got["malformed"]) == (len(recs), 0), \
            f"{side}: read {got['read']}, malformed {got['malformed']} of {len(recs)} records"
    assert report["kind"] == "binary"
    want = {k: exp[k] for k in ("counts", "pairs", "labels", "models", "routes", "distributions")}
    problems = _diff(_figures(report), want, EXACT_TOL)
    assert not problems, f"{len(problems)} figures differ: {problems[:15]}"
    assert report["outputs"] is None and report["classes"] is None \
        and report["regression"] is None, "a binary comparison reports no other kind's figures"


# ---- multi-class

def _pairs(primary, shadow):
    """Distinct records by source (the last read wins), the matched keys and the
    identical-feature pairs."""
    key = lambda r: (r["source_topic"], r["source_partition"], r["source_offset"])  # noqa: E731
    P, S = {}, {}
    for r in primary:
        P[key(r)] = r
    for r in shadow:
        S[key(r)] = r
    matched = sorted(set(P) & set(S))
    ident = [(P[k], S[k]) for k in matched if P[k]["feature_hash"] == S[k]["feature_hash"]]
    return P, S, matched, ident


def _score_diff(ident):
    d = np.array([b["score"] - a["score"] for a, b in ident])
    return d, {"mean": float(d.mean()), "abs_p50": h.linear_percentile(np.abs(d), 50),
               "abs_p95": h.linear_percentile(np.abs(d), 95),
               "abs_p99": h.linear_percentile(np.abs(d), 99), "abs_max": float(np.abs(d).max())}


class _HandCase:
    """What the multi-class and regression cases share: sources of kinds same (identical
    features), divergent (feature_hash differs), primary_only, shadow_only, one shadow result
    delivered twice; records of the current schema with decision and threshold null."""

    T0 = 1_735_689_600_000

    def _common(self, i, cid, event_time):
        return {"event_id": f"ev-{i:04d}", "customer_id": cid, "decision": None,
                "threshold": None, "source_topic": self.source_topic, "source_partition": i % 3,
                "source_offset": 700 + i // 3, "event_time": event_time, "contributions": None,
                "degraded": False}

    def _record(self, common, model, version, score, scored_at, fh, **extra):
        return {**common, "score": score, "model_name": model, "model_version": version,
                "scored_at": scored_at, "feature_hash": fh, **extra}


class MultiClassCase(_HandCase):
    """A multi:softprob model of k classes against a candidate: class probabilities in
    `outputs`, the argmax in predicted_class, its probability as the score. Identical-feature
    pairs are "same" (the candidate moves every probability a little) or "flip" (its
    probabilities rotated: another class wins)."""

    def __init__(self, seed=21, source_topic="it-compare-multiclass", k=4, n_same=150, n_flip=12,
                 n_divergent=15, n_primary_only=6, n_shadow_only=4):
        rng = np.random.default_rng(seed)
        self.k, self.source_topic = k, source_topic
        self.primary, self.shadow = [], []
        kinds = (["same"] * n_same + ["flip"] * n_flip + ["divergent"] * n_divergent
                 + ["primary_only"] * n_primary_only + ["shadow_only"] * n_shadow_only)
        kinds = [kinds[i] for i in rng.permutation(len(kinds))]
        for i, kind in enumerate(kinds):
            cid = f"mc-{seed}-{i:04d}"
            t = self.T0 + i * 60_000
            common = self._common(i, cid, t)
            pp = rng.dirichlet(np.full(k, 1.2))
            if kind == "same":
                sp = np.clip(pp + rng.normal(0, 0.01, k), 1e-4, None)
                sp = sp / sp.sum()
            elif kind == "flip":
                sp = np.roll(pp, 1)
            else:
                sp = rng.dirichlet(np.full(k, 1.2))
            fh = f"{int(rng.integers(0, 2**63)):016x}"
            for side, probs, version in ((self.primary, pp, "1.0.0"), (self.shadow, sp, "2.0.0")):
                if (side is self.primary and kind == "shadow_only") or \
                        (side is self.shadow and kind == "primary_only"):
                    continue
                cls = int(np.argmax(probs))
                side.append(self._record(
                    common, "segment", version, float(probs[cls]), t + int(rng.integers(5, 90)),
                    f"{int(rng.integers(0, 2**63)):016x}" if kind == "divergent"
                    and side is self.shadow else fh,
                    outputs=[float(x) for x in probs], predicted_class=cls))
        self.shadow.append(dict(self.shadow[len(self.shadow) // 3]))  # delivered twice
        self.labels_path = None

    def expected(self):
        P, S, matched, ident = _pairs(self.primary, self.shadow)
        _, score_diff = _score_diff(ident)
        diffs = np.array([[abs(b["outputs"][i] - a["outputs"][i]) for i in range(self.k)]
                          for a, b in ident])
        matrix = [[0] * self.k for _ in range(self.k)]
        for a, b in ident:
            matrix[a["predicted_class"]][b["predicted_class"]] += 1
        changed = sum(a["predicted_class"] != b["predicted_class"] for a, b in ident)
        return {
            "kind": "multiclass",
            "counts": {"primary": len(P), "shadow": len(S), "matched": len(matched),
                       "identical_features": len(ident)},
            "pairs": {"n": len(ident), "score_diff": score_diff,
                      "flips": {"no_to_yes": None, "yes_to_no": None, "total": None,
                                "rate": None, "n": 0},
                      "class_flips": {"n": len(ident), "changed": changed,
                                      "rate": changed / len(ident)}},
            "outputs": {"n": {"primary": self.k, "shadow": self.k}, "compared": self.k,
                        "pairs": len(ident), "mismatched": 0,
                        "per_output": [{"index": i, "n": len(ident),
                                        "abs_mean": float(diffs[:, i].mean()),
                                        "abs_p99": h.linear_percentile(diffs[:, i], 99),
                                        "abs_max": float(diffs[:, i].max())}
                                       for i in range(self.k)]},
            "classes": {"n": self.k, "beyond": False, "pairs": len(ident), "changed": changed,
                        "flip_rate": changed / len(ident), "matrix": matrix},
            "regression": None,
        }


def produce_multiclass(ctx, seed=21, shadow_file=False):
    """A MultiClassCase on this test's topics (the shadow's results as a JSON-lines file
    instead with shadow_file); .exp holds its figures, .extra the config that reads it."""
    c = MultiClassCase(seed=seed, source_topic=ctx.input_topic)
    c.extra = {}
    h.produce_records(ctx.output_topic, c.primary, encode=encode_current)
    if shadow_file:
        path = ctx.tmp / "multiclass-shadow.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in c.shadow), encoding="utf-8")
        c.extra = {"shadow.output": "file", "shadow.file": path}
    else:
        ctx.add_topics(ctx.shadow_topic)
        h.produce_records(ctx.shadow_topic, c.shadow, encode=encode_current)
    c.exp = c.expected()
    return c


def _figure_problems(report, exp):
    got = {k: report.get(k) for k in exp}
    return _diff(got, exp, EXACT_TOL)


@pytest.mark.parametrize("shadow", ["topic", "file"])
def test_compare_of_multiclass_models_gives_per_output_differences_and_class_flips(ctx, shadow):
    """Records of the current schema (Avro; the shadow's as Avro or JSON lines): per output
    (class probability) the mean, p99 and max of |candidate - primary|; the share of
    identical-feature pairs whose predicted class changed; the primary x candidate class
    matrix. Decisions are null: their flip rate is n/a (null), not 0. The summary shows them."""
    c = produce_multiclass(ctx, shadow_file=shadow == "file")
    exp = c.exp
    assert 0 < exp["classes"]["changed"] < exp["classes"]["pairs"], "the case should flip some"
    limits = {"promote.max.class.flip.rate": round(exp["classes"]["flip_rate"] + 0.02, 4)}

    r, report, out = _run_compare(ctx, c, f"multiclass-{shadow}", {**c.extra, **limits})

    assert r.returncode == 0, f"exit {r.returncode}, expected 0 (promote); stdout:\n{r.stdout}" \
                              f"\nstderr:\n{r.stderr[-3000:]}"
    for side, recs in (("primary", c.primary), ("shadow", c.shadow)):
        got = report["inputs"][side]
        assert (got["read"], got["malformed"]) == (len(recs), 0), f"{side}: {got}"
    problems = _figure_problems(report, exp)
    assert not problems, f"{len(problems)} figures differ: {problems[:15]}"
    crit = {k["key"]: k for k in report["verdict"]["criteria"]}
    assert set(crit) == set(limits) and report["verdict"]["decision"] == "promote", \
        f"verdict {report['verdict']}"
    assert _close(crit["promote.max.class.flip.rate"]["value"], exp["classes"]["flip_rate"],
                  EXACT_TOL), crit

    text = r.stdout
    rows = {line.split("  ")[1].strip(): line for line in text.splitlines()
            if line.startswith("  ") and len(line.split("  ")) > 2}
    flips = next((v for k, v in rows.items() if k.startswith("decision flips")), "")
    assert "n/a" in flips and not re.search(r"\b0 / 0\b", flips), \
        f"the decision flips of a multi-class comparison should be n/a: {flips!r}"
    cls = next((v for k, v in rows.items() if k.startswith("class flips")), "")
    assert h.mentions(cls, exp["classes"]["flip_rate"]) and \
        str(exp["classes"]["changed"]) in cls, f"class flips row {cls!r}"
    for o in exp["outputs"]["per_output"]:
        row = next((v for k, v in rows.items() if k.startswith(f"output {o['index']} ")), "")
        missing = [x for x in (o["abs_mean"], o["abs_p99"], o["abs_max"])
                   if not h.mentions(row, x)]
        assert not missing, f"output {o['index']}: {missing} not in {row!r}"
    matrix_rows = [line.split() for line in text.splitlines()
                   if re.fullmatch(r"\s+\d+(\s+\d+){%d}" % c.k, line)]
    assert [[int(x) for x in row[1:]] for row in matrix_rows] == exp["classes"]["matrix"], \
        f"the summary's class matrix:\n{text}"


def test_compare_of_multiclass_models_holds_on_the_class_flip_rate(ctx):
    """promote.max.class.flip.rate below the rate holds (exit 3) naming it; a decision flip
    limit cannot be judged without decisions and fails saying so, with no value."""
    c = produce_multiclass(ctx, seed=22)
    rate = c.exp["classes"]["flip_rate"]
    limits = {"promote.max.class.flip.rate": round(rate / 2, 6), "promote.max.flip.rate": 0.5,
              "promote.max.score.diff.p99": 1}

    r, report, _ = _run_compare(ctx, c, "multiclass-hold", limits)

    assert r.returncode == 3, f"exit {r.returncode}, expected 3 (hold); stderr: {r.stderr[-3000:]}"
    verdict = report["verdict"]
    crit = {k["key"]: k for k in verdict["criteria"]}
    assert verdict["decision"] == "hold"
    failed = sorted(k for k, v in crit.items() if not v["passed"])
    assert failed == ["promote.max.class.flip.rate", "promote.max.flip.rate"], f"{verdict}"
    assert _close(crit["promote.max.class.flip.rate"]["value"], rate, EXACT_TOL)
    assert crit["promote.max.flip.rate"]["value"] is None, \
        f"a flip rate without decisions: {crit['promote.max.flip.rate']}"
    assert "no decisions" in crit["promote.max.flip.rate"]["reason"]
    assert crit["promote.max.score.diff.p99"]["passed"] is True
    assert "promote.max.class.flip.rate" in r.stdout and "HOLD" in r.stdout


# ---- regression

class RegressionCase(_HandCase):
    """A regression model (values of a few hundred, no decision) against a candidate that
    moves them by a few percent; labels are numbers (the target), one CSV row per customer
    after the event, some customers without one, and a malformed row."""

    def __init__(self, seed=31, source_topic="it-compare-regression", n_same=200,
                 n_divergent=15, n_primary_only=7, n_shadow_only=5):
        rng = np.random.default_rng(seed)
        self.source_topic = source_topic
        self.primary, self.shadow, self.label_rows = [], [], []
        self.target = {}
        kinds = (["same"] * n_same + ["divergent"] * n_divergent
                 + ["primary_only"] * n_primary_only + ["shadow_only"] * n_shadow_only)
        kinds = [kinds[i] for i in rng.permutation(len(kinds))]
        for i, kind in enumerate(kinds):
            cid = f"rg-{seed}-{i:04d}"
            t = self.T0 + i * 60_000
            common = self._common(i, cid, t)
            y = float(rng.lognormal(5.5, 0.6))
            vp = y * float(rng.normal(1, 0.1))
            vs = vp * float(rng.normal(1.0, 0.04)) + float(rng.normal(0, 3))
            if kind == "divergent":
                vs = y * float(rng.normal(1, 0.3))
            fh = f"{int(rng.integers(0, 2**63)):016x}"
            if kind != "shadow_only":
                self.primary.append(self._record(common, "spend", "1.0.0", vp,
                                                 t + int(rng.integers(5, 90)), fh))
            if kind != "primary_only":
                self.shadow.append(self._record(
                    common, "spend", "1.1.0", vs, t + int(rng.integers(5, 90)),
                    f"{int(rng.integers(0, 2**63)):016x}" if kind == "divergent" else fh))
            if rng.random() < 0.85:
                self.target[cid] = y
                self.label_rows.append((cid, y, t + 86_400_000))
        self.shadow.append(dict(self.shadow[len(self.shadow) // 2]))  # delivered twice

    def labels_csv(self, path):
        lines = ["customer_id,label,time"] + [f"{cid},{y!r},{t}" for cid, y, t in self.label_rows]
        lines.append(f"rg-bad,lots,{self.T0}")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def expected(self):
        P, S, matched, ident = _pairs(self.primary, self.shadow)
        d, score_diff = _score_diff(ident)
        m = score_diff["abs_max"]
        abs_counts = [0] * 40
        for v in np.abs(d):
            abs_counts[h.hist_bin(float(v), 0.0, m, 40)] += 1
        scores = [r["score"] for r in self.primary + self.shadow]
        lo, hi = min(scores), max(scores)
        labels = {}
        for side, recs in (("primary", P.values()), ("shadow", S.values())):
            err = np.array([r["score"] - self.target[r["customer_id"]] for r in recs
                            if r["customer_id"] in self.target])
            labels[side] = {"n": len(err), "rmse": float(np.sqrt(np.mean(err ** 2))),
                            "mae": float(np.mean(np.abs(err)))}
        dist = {}
        for side, recs in (("primary", P.values()), ("shadow", S.values())):
            counts = [0] * 20
            for r in recs:
                counts[h.hist_bin(r["score"], lo, hi, 20)] += 1
            dist[side] = {"counts": counts, "below": 0, "above": 0}
        dist["edges"] = [lo + (hi - lo) * i / 20 for i in range(21)]
        return {
            "kind": "regression",
            "counts": {"primary": len(P), "shadow": len(S), "matched": len(matched),
                       "identical_features": len(ident)},
            "pairs": {"n": len(ident), "score_diff": score_diff,
                      "flips": {"no_to_yes": None, "yes_to_no": None, "total": None,
                                "rate": None, "n": 0},
                      "class_flips": None},
            "regression": {"score_diff": score_diff,
                           "abs_diff_histogram": {"lo": 0.0, "hi": m, "counts": abs_counts},
                           "labels": labels},
            "outputs": None, "classes": None, "distributions": dist,
        }


@pytest.fixture
def regression(ctx):
    ctx.add_topics(ctx.shadow_topic)
    c = RegressionCase(source_topic=ctx.input_topic)
    h.produce_records(ctx.output_topic, c.primary, encode=encode_current)
    h.produce_records(ctx.shadow_topic, c.shadow, encode=encode_current)
    c.labels_path = c.labels_csv(ctx.tmp / "labels.csv")
    c.exp = c.expected()
    return c


def test_compare_of_regression_models_gives_the_difference_percentiles_and_rmse_mae(ctx,
                                                                                     regression):
    """No decision on either side: the flip rate is n/a (null, "n/a" in the summary), the
    score difference's mean and |difference| p50 / p95 / p99 / max are numpy's, its histogram
    and the distributions span the values read (not [0, 1]); with numeric labels, each model's
    RMSE and MAE. promote.max.score.diff.p99 takes a limit beyond 1 (values are not
    probabilities)."""
    exp = regression.exp
    p99 = exp["pairs"]["score_diff"]["abs_p99"]
    assert p99 > 1, "the case should have differences beyond 1"
    limits = {"promote.max.score.diff.p99": round(p99 * 1.2, 3)}

    r, report, _ = _run_compare(ctx, regression, "regression", limits)

    assert r.returncode == 0, f"exit {r.returncode}, expected 0 (promote); stdout:\n{r.stdout}" \
                              f"\nstderr:\n{r.stderr[-3000:]}"
    problems = _figure_problems(report, exp)
    assert not problems, f"{len(problems)} figures differ: {problems[:15]}"
    assert report["inputs"]["labels"]["rows"] == len(regression.label_rows)
    assert report["inputs"]["labels"]["malformed"] == 1
    assert report["verdict"]["decision"] == "promote", report["verdict"]

    text = r.stdout
    flips = next((line for line in text.splitlines() if "decision flips" in line), "")
    assert "n/a" in flips and not re.search(r"\b0 / 0\b", flips), \
        f"the decision flips of a regression should be n/a: {flips!r}"
    sd = exp["pairs"]["score_diff"]
    missing = [k for k in ("abs_p50", "abs_p95", "abs_p99", "abs_max")
               if not h.mentions(text, sd[k])]
    assert not missing, f"the summary does not show {missing}:\n{text}"
    for side in ("primary", "shadow"):
        row = next((line for line in text.splitlines() if f"{side} RMSE, MAE" in line), "")
        lab = exp["regression"]["labels"][side]
        assert h.mentions(row, lab["rmse"]) and h.mentions(row, lab["mae"]), \
            f"{side} RMSE {lab['rmse']}, MAE {lab['mae']} not in {row!r}"


def test_compare_of_regression_models_cannot_judge_a_flip_rate(ctx, regression):
    """promote.max.flip.rate has nothing to judge without decisions: it fails (exit 3) saying
    why, with no value, rather than passing on a flip rate of 0."""
    r, report, _ = _run_compare(ctx, regression, "regression-hold",
                                {"promote.max.flip.rate": 0.5}, args=["--json-only"])

    assert r.returncode == 3, f"exit {r.returncode}; stderr: {r.stderr[-3000:]}"
    (crit,) = report["verdict"]["criteria"]
    assert crit["key"] == "promote.max.flip.rate" and crit["passed"] is False, crit
    assert crit["value"] is None and "no decisions" in crit["reason"], crit
    assert report["pairs"]["flips"]["rate"] is None
