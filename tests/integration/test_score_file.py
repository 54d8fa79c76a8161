"""`streamscore score-file` scores events from files (Avro object container files or JSON
lines) as the live worker scores them from Kafka: per customer in file order from no known
features, one prediction per record in input order (source_offset = the record's index), the
same scores and feature hashes as the live worker and Python XGBoost, whatever the input
format or the number of threads; a file that does not fit input.schema is refused; an
interrupted run leaves nothing under the output's name."""

import json
import os
import re
import signal
import time
from pathlib import Path

import fastavro
import numpy as np
import pytest

import harness as h
import objectives_lib as ol

N = 100_000
N_CUSTOMERS = 10_000
N_BIG = 300_000
# A progress line when stderr is not a terminal (docs/replay.md's form; the total is given
# when known): "score-file: 120000 of 300000 records (40%), 52000/s, ETA 4s"; the last one
# ends ", done in 6s" instead of the ETA.
PROGRESS = re.compile(r"^score-file: (\d+)(?: of (\d+))? records(?: \((\d+)%\))?, (\d+)/s"
                      r"(?:(, ETA \S+)|, done in \S+)?$")


class Data:
    """The events of a file and what scoring them must give."""

    def __init__(self, directory, rng, n, n_customers, prefix):
        customers = [f"{prefix}-{i:05d}" for i in range(n_customers)]
        self.events = h.bulk_events(rng, customers, n, id_prefix=prefix)
        self.avro = h.write_event_file(directory / "events.avro", self.events)
        merged = h.merged_matrix(self.events)  # file order is merge order
        self.hashes = h.feature_hashes(merged)
        self.scores = h.reference_scores(h.PRIMARY_MODEL, merged).tolist()
        self.customers = len({ev["customer_id"] for ev in self.events})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """100,000 events of 10,000 customers (several each, most features null), as an Avro
    container file and as JSON lines."""
    d = tmp_path_factory.mktemp("score-file-data")
    x = Data(d, np.random.default_rng(1901), N, N_CUSTOMERS, "sf")
    x.jsonl = h.write_event_json_lines(d / "events.jsonl", x.events)
    nulls = sum(v is None for ev in x.events[:1000] for v in ev.values())
    assert nulls > 1000, "test data: too few null fields"
    return x


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """300,000 events in one Avro file."""
    d = tmp_path_factory.mktemp("score-file-big")
    rng = np.random.default_rng(1902)
    customers = [f"bg-{i:05d}" for i in range(30_000)]
    path = h.write_event_file(d / "big.avro", h.bulk_events(rng, customers, N_BIG,
                                                            id_prefix="bg"))
    return path


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    """A binary model of 800 trees of depth 10 over the worker's features (with its card):
    scored through XGBoost's predictor (SLOW) on one thread, slow enough that a run over a few
    hundred thousand records takes seconds."""
    import xgboost as xgb

    rng = np.random.default_rng(1903)
    x = rng.random((3000, len(h.FEATURES)))
    y = (x[:, 0] + x[:, 1] * rng.random(3000)) > 0.8
    d = xgb.DMatrix(x, label=y, feature_names=list(h.FEATURES))
    bst = xgb.train({"objective": "binary:logistic", "max_depth": 10, "eta": 0.02,
                     "min_child_weight": 0, "nthread": 2, "seed": 1}, d, num_boost_round=800)
    model, _ = ol.save_model(bst, tmp_path_factory.mktemp("slow-model"), "slow")
    return model


# The slow model's options: XGBoost's predictor (no compiled trees to check at load), one thread.
SLOW = ["-X", "model.predictor=xgboost", "--threads", "1"]


# --------------------------------------------------------------------------- helpers


def _config(ctx_or_tmp, props=None):
    """A worker configuration: the test's (ctx), or one that names a broker and Redis the
    file jobs never need (a tmp path)."""
    if hasattr(ctx_or_tmp, "props"):
        return ctx_or_tmp.config(ctx_or_tmp.props(props))
    p = {"input.topic": "it-score-file-events", "output.topic": "it-score-file-predictions",
         "input.schema": h.EVENT_SCHEMA_PATH, "output.schema": h.PREDICTION_SCHEMA_PATH,
         "model.path": h.PRIMARY_MODEL, "kafka.bootstrap.servers": h.BOOTSTRAP,
         "redis.host": "127.0.0.1", "redis.port": h.REDIS_PORT, **(props or {})}
    return h.write_properties(Path(ctx_or_tmp) / "score-file.properties", p)


def _score_file(cfg, *args, timeout=120.0):
    return h.run_cli(["score-file", "-c", str(cfg), *[str(a) for a in args]], timeout=timeout)


def _score_file_ok(cfg, *args, timeout=120.0):
    """Run score-file with --json; asserts exit 0 and returns its summary."""
    return h.job_ok("score-file", cfg, *args, "--progress", "none", timeout=timeout)


_plain = h.plain_lines


def _read_avro(path):
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        return reader, list(reader)


def _read_jsonl(path):
    records = h.read_json_lines(path)
    unparsed = [r for r in records if "_unparsed" in r]
    assert not unparsed, f"{len(unparsed)} lines of {path} are not JSON: {unparsed[:3]}"
    return records


def _field_diffs(a_records, b_records, ignore, what):
    """Records that differ between two outputs in a field outside `ignore`: (descriptions,
    the set of fields that differ)."""
    assert len(a_records) == len(b_records), f"{what}: {len(a_records)} != {len(b_records)} " \
                                             f"records"
    out, fields = [], set()
    for i, (a, b) in enumerate(zip(a_records, b_records)):
        keys = (set(a) | set(b)) - set(ignore)
        diff = sorted(k for k in keys if a.get(k) != b.get(k))
        if diff:
            fields.update(diff)
            if len(out) < 6:
                out.append(f"record {i}: " + "; ".join(f"{k} {a.get(k)!r} != {b.get(k)!r}"
                                                      for k in diff))
    return out, fields


def _reference_problems(records, data, source_topic):
    """Each record i: the i-th event's identity, source_offset i, partition 0, the reference
    feature hash and score (within 1e-6)."""
    problems = []
    for i, r in enumerate(records):
        ev = data.events[i] if i < len(data.events) else {}
        want = {"event_id": ev.get("event_id"), "customer_id": ev.get("customer_id"),
                "event_time": ev.get("event_time"), "source_topic": source_topic,
                "source_partition": 0, "source_offset": i, "feature_hash": data.hashes[i]}
        bad = [f"{k} {r.get(k)!r} != {v!r}" for k, v in want.items() if r.get(k) != v]
        if not abs(r["score"] - data.scores[i]) <= h.SCORE_TOL:
            bad.append(f"score {r['score']!r} != reference {data.scores[i]!r}")
        if r.get("decision") != (r["score"] >= r["threshold"]):
            bad.append(f"decision {r.get('decision')!r} for score {r['score']!r}")
        if bad:
            problems.append(f"record {i}: {'; '.join(bad)}")
    return problems


def _check_summary(s, inputs, records, predictions, customers, output=None, output_topic=None,
                   dead_letters=0, reasons=None, threads=None):
    want = {"command": "score-file", "inputs": [str(p) for p in inputs], "records": records,
            "predictions": predictions, "dead_letters": dead_letters,
            "dead_letter_reasons": reasons or {}, "customers": customers, "evicted": 0}
    if output is not None:
        want["output"] = str(output)
    if output_topic is not None:
        want["output_topic"] = output_topic
    if threads is not None:
        want["threads"] = threads
    got = {k: s.get(k) for k in want}
    assert got == want, f"summary {got} != expected {want} (whole summary: {s})"
    for k in ("seconds", "events_per_second"):
        assert isinstance(s.get(k), (int, float)) and s[k] >= 0, f"summary {k}: {s}"


def _blank_scored_at(text):
    return re.sub(r'"scored_at":\s*-?\d+', '"scored_at":0', text)


def _partials(directory):
    return sorted(p.name for p in Path(directory).iterdir() if ".partial-" in p.name)


# --------------------------------------------------------------------------- = live, = XGBoost


@pytest.mark.partitions(1)
def test_score_file_scores_as_the_live_worker_and_python_xgboost(ctx, data, tmp_path):
    """The 100,000 events produced to a one-partition topic (offset = record index) and
    scored by the live worker from an empty Redis; score-file on the Avro file gives each
    record the live worker's prediction for the same offset and event (every field but
    scored_at and source_topic, which is the file's path), the reference's feature hash and
    score within 1e-6, in input order; written as an Avro container file of output.schema
    (uncompressed by default; deflate with --output-codec, the same records), and as JSON lines
    with the same fields."""
    placed = h.produce_bulk(ctx.input_topic, h.event_messages(data.events), timeout=90)
    assert [(p, o) for p, o, _ in placed] == [(0, i) for i in range(N)], \
        "test data: the events are not at offsets 0..N-1 of partition 0"
    live, undecodable = ctx.run_until(ctx.props(), N, timeout=120)
    assert not undecodable, f"undecodable live predictions: {undecodable[:3]}"
    by_offset = {}
    for r in live:
        by_offset.setdefault(r["source_offset"], []).append(r)
    assert sorted(by_offset) == list(range(N)) and all(len(v) == 1 for v in by_offset.values()), \
        f"{len(live)} live predictions for {N} events"
    live_in_order = [{k: v for k, v in by_offset[i][0].items() if not k.startswith("_")}
                     for i in range(N)]
    cfg = _config(ctx)
    out_avro, out_jsonl = tmp_path / "predictions.avro", tmp_path / "predictions.jsonl"

    s = _score_file_ok(cfg, "--input", data.avro, "--output", out_avro)
    reader, records = _read_avro(out_avro)
    _check_summary(s, [data.avro], N, N, data.customers, output=out_avro,
                   threads=os.cpu_count())
    schema = reader.writer_schema
    assert schema.get("name") in ("Prediction", "streamscore.Prediction") and \
        [f["name"] for f in schema["fields"]] == h.prediction_field_names(), \
        f"{out_avro}: writer schema {json.dumps(schema)[:400]}"
    problems = _reference_problems(records, data, str(data.avro))
    assert not problems, f"{len(problems)} of {N} records differ from the reference: " \
                         f"{problems[:6]}"
    diffs, fields = _field_diffs(records, live_in_order, {"scored_at", "source_topic"},
                                 "score-file vs live")
    assert not diffs, f"score-file and the live worker differ in {sorted(fields)}: {diffs}"
    assert not _partials(tmp_path), _partials(tmp_path)

    s = _score_file_ok(cfg, "--input", data.avro, "--output", out_jsonl)
    assert s["predictions"] == N and s["output"] == str(out_jsonl), s
    lines = _read_jsonl(out_jsonl)
    names = set(h.prediction_field_names())
    wrong = [sorted(set(r) ^ names) for r in lines[:1000] if not set(r) <= names
             or not names - {"contributions"} <= set(r)]
    assert not wrong, f"JSON lines whose fields are not the Prediction record's: {wrong[:3]}"
    diffs, fields = _field_diffs(lines, records, {"scored_at"}, "JSON lines vs Avro")
    assert not diffs, f"the JSON lines output differs from the Avro output in " \
                      f"{sorted(fields)}: {diffs}"
    assert reader.codec == "null", f"{out_avro}: codec {reader.codec}, expected null (the default)"
    out_deflate = tmp_path / "predictions-deflate.avro"
    _score_file_ok(cfg, "--input", data.avro, "--output", out_deflate, "--output-codec", "deflate")
    reader_d, records_d = _read_avro(out_deflate)
    assert reader_d.codec == "deflate", f"{out_deflate}: codec {reader_d.codec}"
    diffs, fields = _field_diffs(records_d, records, {"scored_at"}, "deflate vs null")
    assert not diffs, f"the deflate output differs in {sorted(fields)}: {diffs}"
    print(f"{N} events of {data.customers} customers: score-file = live worker = reference "
          f"(Avro and JSON lines outputs)")


def test_json_lines_input_scores_as_the_avro_input(data, tmp_path):
    """The same events as JSON lines (missing features null or absent), as .jsonl and, with
    --input-format json, under another extension: the same predictions as the Avro file's,
    every field but scored_at and source_topic (each the path as given); an output name with
    another extension is JSON lines, --output-format avro makes it Avro."""
    cfg = _config(tmp_path)
    from_avro, from_json = tmp_path / "from-avro.jsonl", tmp_path / "from-json.jsonl"
    other_name = _copy(data.jsonl, tmp_path / "events.txt")
    from_txt, as_avro = tmp_path / "from-txt.out", tmp_path / "from-txt.bin"

    _score_file_ok(cfg, "--input", data.avro, "--output", from_avro)
    s = _score_file_ok(cfg, "--input", data.jsonl, "--output", from_json)
    _check_summary(s, [data.jsonl], N, N, data.customers, output=from_json)
    a, j = _read_jsonl(from_avro), _read_jsonl(from_json)
    diffs, fields = _field_diffs(j, a, {"scored_at", "source_topic"}, "JSON input vs Avro input")
    assert not diffs, f"JSON lines input scored unlike the Avro input in {sorted(fields)}: {diffs}"
    assert {r["source_topic"] for r in j} == {str(data.jsonl)}
    problems = _reference_problems(j, data, str(data.jsonl))
    assert not problems, f"{len(problems)} differ from the reference: {problems[:6]}"

    _score_file_ok(cfg, "--input", other_name, "--input-format", "json", "--output", from_txt)
    t = _read_jsonl(from_txt)  # "anything else -> JSON lines"
    diffs, fields = _field_diffs(t, j, {"scored_at", "source_topic"}, ".txt vs .jsonl")
    assert not diffs, f"--input-format json on {other_name.name} differs in {sorted(fields)}: " \
                      f"{diffs}"
    _score_file_ok(cfg, "--input", data.avro, "--output", as_avro, "--output-format", "avro")
    _, b = _read_avro(as_avro)
    diffs, fields = _field_diffs(b, a, {"scored_at"}, "--output-format avro vs JSON lines")
    assert not diffs, f"--output-format avro differs in {sorted(fields)}: {diffs}"


def test_several_inputs_merge_in_the_order_given_and_are_told_apart_by_source_partition(
        data, tmp_path):
    """--input A --input B: B's records merge onto the features A left (inputs in the order
    given), each prediction's source_partition is its input's index and source_offset its index
    in that file, source_topic the input's path as given."""
    merged = h.merged_matrix(data.events + data.events)[N:]
    second = Data.__new__(Data)  # what the second input must give
    second.events, second.hashes = data.events, h.feature_hashes(merged)
    second.scores = h.reference_scores(h.PRIMARY_MODEL, merged).tolist()
    tells = sum(a != b for a, b in zip(second.hashes, data.hashes))
    assert tells >= N // 10, f"test data: only {tells} of the second input's records tell"
    cfg = _config(tmp_path)
    out = tmp_path / "both.avro"

    s = _score_file_ok(cfg, "--input", data.avro, "--input", data.jsonl, "--output", out)

    _check_summary(s, [data.avro, data.jsonl], 2 * N, 2 * N, data.customers, output=out)
    _, records = _read_avro(out)
    problems = _reference_problems(records[:N], data, str(data.avro))
    problems += _reference_problems([dict(r, source_partition=0) for r in records[N:]],
                                    second, str(data.jsonl))  # partition checked below
    wrong_part = sum(r["source_partition"] != 1 for r in records[N:])
    assert len(records) == 2 * N and not problems and not wrong_part, \
        f"{len(records)} records; {len(problems)} differ from the in-order merge over both " \
        f"inputs: {problems[:6]}; {wrong_part} of the second input's not source_partition 1"


def test_one_and_two_threads_write_the_same_json_lines_but_scored_at(data, tmp_path):
    """--threads 1 and --threads 2: the JSON lines output is the same, byte for byte, but
    scored_at (the time of scoring); and no other field differs."""
    cfg = _config(tmp_path)
    one, two = tmp_path / "threads-1.jsonl", tmp_path / "threads-2.jsonl"
    s1 = _score_file_ok(cfg, "--input", data.avro, "--output", one, "--threads", "1")
    s2 = _score_file_ok(cfg, "--input", data.avro, "--output", two, "--threads", "2")
    assert (s1.get("threads"), s2.get("threads")) == (1, 2), (s1, s2)
    a, b = _read_jsonl(one), _read_jsonl(two)
    diffs, fields = _field_diffs(a, b, set(), "threads 1 vs 2")
    assert fields <= {"scored_at"}, f"--threads 1 and 2 differ in {sorted(fields)}: {diffs}"
    ta, tb = one.read_text(encoding="utf-8"), two.read_text(encoding="utf-8")
    assert _blank_scored_at(ta) == _blank_scored_at(tb), \
        "--threads 1 and 2 outputs differ in bytes outside scored_at"
    print(f"threads 1 and 2: fields that differ {sorted(fields) or 'none'}; bytes equal but "
          f"scored_at")


# --------------------------------------------------------------------------- refusals


def _copy(src, dst):
    Path(dst).write_bytes(Path(src).read_bytes())
    return Path(dst)


def _event_schema():
    return h.load_schema_json(h.EVENT_SCHEMA_PATH)


def _without_customer_id(tmp_path, events):
    schema = _event_schema()
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "customer_id"]
    return h.write_event_file(tmp_path / "no-customer-id.avro",
                              [{k: v for k, v in ev.items() if k != "customer_id"}
                               for ev in events], schema)


def _feature_as_string(tmp_path, events):
    schema = _event_schema()
    for f in schema["fields"]:
        if f["name"] == "monthly_charges":
            f["type"] = ["null", "string"]
    return h.write_event_file(tmp_path / "monthly-charges-string.avro",
                              [dict(ev, monthly_charges=None if ev["monthly_charges"] is None
                                    else str(ev["monthly_charges"])) for ev in events], schema)


@pytest.mark.parametrize("case", ["no-customer-id-field", "feature-as-string", "missing-input",
                                  "unknown-extension", "second-input-missing"])
def test_an_input_that_cannot_be_read_as_input_schema_exits_2_naming_the_file(case, data,
                                                                             tmp_path):
    events = data.events[:50]
    bad = {"no-customer-id-field": lambda: _without_customer_id(tmp_path, events),
           "feature-as-string": lambda: _feature_as_string(tmp_path, events),
           "missing-input": lambda: tmp_path / "no-such-file.avro",
           "unknown-extension": lambda: _copy(data.jsonl, tmp_path / "events.data"),
           "second-input-missing": lambda: tmp_path / "absent.jsonl"}[case]()
    inputs = [data.avro, bad] if case == "second-input-missing" else [bad]
    out = tmp_path / "out.jsonl"
    args = [a for p in inputs for a in ("--input", p)]

    r = _score_file(_config(tmp_path), *args, "--output", out)

    assert r.returncode == 2, f"{case}: exit {r.returncode}, expected 2; stdout " \
                              f"{r.stdout[-800:]!r}; stderr {r.stderr[-2000:]!r}"
    plain = _plain(r.stderr)
    assert len(plain) == 1 and str(bad) in plain[0], \
        f"{case}: expected one line naming {bad}, got {plain}"
    assert not out.exists() and not _partials(tmp_path), \
        f"{case}: output left behind: {sorted(p.name for p in tmp_path.iterdir())}"


def test_json_lines_that_are_not_events_are_dead_letters_with_their_index_and_reason(tmp_path):
    """A line that is not a JSON object (bad_json), a value of the wrong type (bad_type), no
    customer id (no_customer_id): each a dead letter in --dead-letters with the input and its
    line index, counted by reason in the summary; every other line scored at its index."""
    rng = np.random.default_rng(1904)
    events = h.bulk_events(rng, [f"dl-{i}" for i in range(30)], 120, id_prefix="dl")
    lines = [json.dumps(ev) for ev in events]
    bad = {10: ("not json at all", "bad_json"), 25: ("[1, 2, 3]", "bad_json"),
           40: (json.dumps(dict(events[40], tenure_months="ten")), "bad_type"),
           55: (json.dumps(dict(events[55], has_autopay="yes")), "bad_type"),
           70: (json.dumps({k: v for k, v in events[70].items() if k != "customer_id"}),
                "no_customer_id")}
    for i, (text, _) in bad.items():
        lines[i] = text
    src = tmp_path / "mixed.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out, letters = tmp_path / "mixed-out.jsonl", tmp_path / "dead-letters.jsonl"
    good = [i for i in range(len(events)) if i not in bad]
    merged = h.merged_matrix([events[i] for i in good])
    hashes, scores = h.feature_hashes(merged), h.reference_scores(h.PRIMARY_MODEL, merged)

    s = _score_file_ok(_config(tmp_path), "--input", src, "--output", out,
                       "--dead-letters", letters)

    reasons = {}
    for _, reason in bad.values():
        reasons[reason] = reasons.get(reason, 0) + 1
    _check_summary(s, [src], len(events), len(good),
                   len({events[i]["customer_id"] for i in good}), output=out,
                   dead_letters=len(bad), reasons=reasons)
    preds = _read_jsonl(out)
    assert [r["source_offset"] for r in preds] == good, "predictions not at the good lines"
    wrong = [i for r, i, hh, sc in zip(preds, good, hashes, scores)
             if r["feature_hash"] != hh or not abs(r["score"] - sc) <= h.SCORE_TOL]
    assert not wrong, f"lines {wrong[:5]} scored unlike the merge of the good lines"
    got = _read_jsonl(letters)
    assert [(d.get("input"), d.get("index"), d.get("reason")) for d in got] == \
        [(str(src), i, reason) for i, (_, reason) in sorted(bad.items())], got
    assert all(isinstance(d.get("detail"), str) and d["detail"] for d in got), got


# --------------------------------------------------------------------------- interrupted


@pytest.mark.parametrize("sig,existing", [(signal.SIGKILL, True), (signal.SIGKILL, False),
                                          (signal.SIGINT, True), (signal.SIGINT, False),
                                          (signal.SIGTERM, True)],
                         ids=["SIGKILL-over-a-file", "SIGKILL", "SIGINT-over-a-file", "SIGINT",
                              "SIGTERM-over-a-file"])
def test_an_interrupted_run_leaves_nothing_under_the_output_name(sig, existing, big, slow_model,
                                                                 tmp_path):
    """A run over 300,000 records interrupted once it has started writing (its temporary file
    .NAME.partial-PID beside the output has grown, or a progress line was printed): nothing
    appears under the output's name, and a file already there stays byte for byte as it was;
    SIGINT and SIGTERM exit 1 and remove the temporary files (output and dead letters)."""
    out, letters = tmp_path / "scored.avro", tmp_path / "letters.jsonl"
    previous = b"an earlier run's predictions\n" * 1000
    if existing:
        out.write_bytes(previous)
    job = h.Job(["score-file", "-c", _config(tmp_path), "--input", big, "--output", out,
                 "--dead-letters", letters, "--model", slow_model, *SLOW],
                tmp_path, "score-file")
    partial = tmp_path / f".{out.name}.partial-{job.proc.pid}"
    seen = False
    try:
        deadline = time.monotonic() + 60
        while True:
            assert job.alive(), "the run ended before it could be interrupted" + job.describe()
            seen = seen or partial.exists()
            if (seen and partial.exists() and partial.stat().st_size > 0) or \
                    any(PROGRESS.match(x) for x in _plain(job.stderr())):
                break
            assert time.monotonic() < deadline, \
                f"no {partial.name} and no progress line after 60s: " \
                f"{sorted(p.name for p in tmp_path.iterdir())}" + job.describe()
            time.sleep(0.02)
        seen = seen or partial.exists()
        job.signal(sig)
        rc = job.wait(30)
    finally:
        job.kill()
    assert seen, f"no temporary file {partial.name} beside the output while it ran: " \
                 f"{sorted(p.name for p in tmp_path.iterdir())}"
    if existing:
        assert out.read_bytes() == previous, f"{out.name} changed although the run was " \
                                             f"interrupted"
    else:
        assert not out.exists(), f"{out.name} appeared although the run was interrupted"
    assert not letters.exists(), f"{letters.name} appeared although the run was interrupted"
    if sig == signal.SIGKILL:
        assert rc == -signal.SIGKILL
    else:
        assert rc == 1, f"exit {rc} after {sig.name}, expected 1" + job.describe()
        assert not _partials(tmp_path), f"temporary files left after {sig.name}: " \
                                        f"{_partials(tmp_path)}"


# --------------------------------------------------------------------------- Kafka output


def test_output_topic_gets_one_prediction_per_record_keyed_by_customer(ctx, data, tmp_path):
    """--output-topic: every record's prediction on the topic, keyed by customer id, source =
    (file, 0, index), the reference's scores; the live topics are refused (exit 2, one line
    naming the topic) and get nothing."""
    n = 3000
    small = Data(tmp_path, np.random.default_rng(1905), n, 400, f"ot-{ctx.uid}")
    topic, = ctx.add_topics(f"{ctx.output_topic}-file")
    cfg = _config(ctx)

    s = _score_file_ok(cfg, "--input", small.avro, "--output-topic", topic)

    _check_summary(s, [small.avro], n, n, small.customers, output_topic=topic)
    records, undecodable = h.read_all(topic)
    assert not undecodable, undecodable[:3]
    records.sort(key=lambda r: r["source_offset"])
    assert [r["source_offset"] for r in records] == list(range(n)), \
        f"{len(records)} predictions on {topic} for {n} records"
    problems = _reference_problems(records, small, str(small.avro))
    assert not problems, f"{len(problems)} differ from the reference: {problems[:6]}"
    keys = [r for r in records if r["_key"] != r["customer_id"].encode()]
    assert not keys, f"{len(keys)} predictions not keyed by customer id: {keys[:2]}"

    for live in (ctx.output_topic, ctx.input_topic, ctx.dlq_topic):
        r = _score_file(cfg, "--input", small.avro, "--output-topic", live)
        assert r.returncode == 2, f"--output-topic {live}: exit {r.returncode}; stderr " \
                                  f"{r.stderr[-1500:]!r}"
        plain = _plain(r.stderr)
        assert len(plain) == 1 and live in plain[0], plain
    for t in (ctx.output_topic, ctx.input_topic, ctx.dlq_topic):
        assert h.high_watermarks(t) == {p: 0 for p in range(ctx.partitions)}, f"{t} was written"


def test_seed_redis_starts_each_customer_from_its_hash_and_leaves_redis_as_it_was(ctx, tmp_path):
    """--seed-redis: a customer's known features are read from Redis at its first record (the
    merge starts from the seeded hash), with read commands only: every key byte for byte as it
    was, no TTL set, nothing else written."""
    rng = np.random.default_rng(1906)
    customers = [f"sr-{ctx.uid}-{i:03d}" for i in range(200)]
    seeded = {cid: ctx.seed(cid, h.random_features(rng, 3, 9)) for cid in customers[:80]}
    events = h.bulk_events(rng, customers, 2000, id_prefix=ctx.uid)
    src = h.write_event_file(tmp_path / "seeded.avro", events)
    merged = h.merged_matrix(events, seeded)
    hashes, scores = h.feature_hashes(merged), h.reference_scores(h.PRIMARY_MODEL, merged)
    tells = sum(a != b for a, b in zip(hashes, h.feature_hashes(h.merged_matrix(events))))
    assert tells >= 100, f"test data: only {tells} records tell seeded from unseeded"
    before = h.redis_snapshot(ctx.prefix)
    out = tmp_path / "seeded.jsonl"

    monitor = h.RedisMonitor(ctx.tmp / "monitor.log")
    try:
        s = _score_file_ok(_config(ctx), "--input", src, "--output", out, "--seed-redis")
    finally:
        monitor.stop()

    assert s["predictions"] == len(events), s
    preds = _read_jsonl(out)
    wrong = [i for i, (r, hh, sc) in enumerate(zip(preds, hashes, scores))
             if r["source_offset"] != i or r["feature_hash"] != hh
             or not abs(r["score"] - sc) <= h.SCORE_TOL]
    assert len(preds) == len(events) and not wrong, \
        f"{len(wrong)} records not the merge onto the seeded hashes, e.g. {wrong[:5]}"
    assert h.redis_snapshot(ctx.prefix) == before, "score-file --seed-redis changed Redis"
    commands = monitor.commands(ctx.prefix)
    writes = [line for cmd, line in commands if cmd not in h.REDIS_READ_COMMANDS]
    assert commands and not writes, f"{len(commands)} commands on the test's keys, " \
                                    f"{len(writes)} not reads: {writes[:5]}"


# --------------------------------------------------------------------------- progress


def test_progress_lines_of_the_documented_form_when_stderr_is_not_a_terminal(data, slow_model,
                                                                              tmp_path):
    """A run long enough (the input given as many times as it takes to last about 8 s with a
    slow model on one thread, the rate measured by a first run) with stderr a file and
    --progress left at auto: progress lines `score-file: N[ of M] records (P%), R/s, ETA T`
    appear, N growing, P agreeing with N/M where M is given."""
    cfg = _config(tmp_path)
    cal = h.run_cli(["score-file", "-c", str(cfg), "--input", str(data.avro), "--output",
                     str(tmp_path / "cal.avro"), "--model", str(slow_model), *SLOW],
                    timeout=120)
    assert cal.returncode == 0, f"exit {cal.returncode}: {cal.stderr[-2000:]}"
    ends = [m for m in map(PROGRESS.match, _plain(cal.stderr)) if m]
    assert ends, f"no progress line at the end of a run: stderr {cal.stderr[-1500:]!r}"
    rate = max(int(ends[-1].group(4)), 1)
    times = max(1, min(30, int(np.ceil(8.0 * rate / N))))
    inputs = [a for _ in range(times) for a in ("--input", data.avro)]
    out = tmp_path / "slow.avro"
    job = h.Job(["score-file", "-c", cfg, *inputs, "--output", out, "--model", slow_model,
                 *SLOW], tmp_path, "score-file")
    try:
        rc = job.wait(120)
    finally:
        job.kill()
    assert rc == 0, f"exit {rc}" + job.describe()
    out.unlink()
    matches = [PROGRESS.match(x) for x in _plain(job.stderr())]
    lines = [m for m in matches if m and m.group(5)]
    assert lines, f"no progress line with an ETA in a run of {times} x {N} records " \
                  f"({rate}/s measured): stderr {job.stderr()[-1500:]!r}"
    done = [int(m.group(1)) for m in lines]
    assert done == sorted(done) and all(0 <= d <= times * N for d in done), done
    for m in lines:
        if m.group(2) is not None:
            assert int(m.group(2)) == times * N, m.group(0)
            if m.group(3) is not None:
                assert abs(int(m.group(3)) - 100 * int(m.group(1)) / (times * N)) <= 1, \
                    m.group(0)
    print(f"{times} x {N} records at about {rate}/s: {len(lines)} progress lines, e.g. "
          f"{lines[0].group(0)!r}")
