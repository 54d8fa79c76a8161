"""`streamscore compare` on a case built by hand (harness.CompareCase): primary predictions
and shadow results written straight to Kafka, labels in a CSV, and every figure of
compare.json worked out independently here (numpy, scipy, scikit-learn).

The primary's predictions are those of a rollout's canary: some with route "canary" (scored
by the candidate in the primary), the others half with route "live" and half without the
field (written before it existed, with the schema of the time), so every test reads a topic
of both schemas and compare reports per route as well."""

import html
import json
import math
import re

import pytest

import harness as h

EXACT_TOL = 1e-9  # exact mode: same arithmetic, only summation order may differ


CANARY = {"n_canary": 40, "n_canary_divergent": 3, "n_canary_primary_only": 3}


@pytest.fixture
def case(ctx):
    """The hand-built case on this test's topics: primary on ctx.output_topic, shadow on
    ctx.shadow_topic, labels in a CSV; .expected holds the figures."""
    ctx.add_topics(ctx.shadow_topic)
    c = h.CompareCase(source_topic=ctx.input_topic, **CANARY)
    h.produce_records(ctx.output_topic, c.primary, encode=h.encode_prediction_routed)
    h.produce_records(ctx.shadow_topic, c.shadow, encode=h.encode_prediction_routed)
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
        extra["output.schema"] = h.write_prediction_schema(
            ctx.tmp / "prediction.avsc", route=encoding == "avro-with-route")

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
    h.produce_records(topics[0], c.primary, encode=h.encode_prediction_routed)
    h.produce_records(topics[1], c.shadow, encode=h.encode_prediction_routed)
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
