"""Hot model reload under load: the model files are replaced the way a Kubernetes ConfigMap
update replaces them (a directory symlink swapped atomically) while events stream in. Every
event gets exactly one prediction, each scored by the version it names (its score equals
that version's reference score), per partition the version changes once, and scoring never
stops. A model with other feature names, or a file that is not a model, is refused: the
running model keeps scoring and the failure is counted. SIGHUP reloads on demand."""

import os
import signal
import shutil
import time

import numpy as np

import faults
import harness as h

N = 3000
RATE = 300.0


def _install(root, name, model, card=None):
    """root/name/{model.json, model.card.json} from a shipped model and its card."""
    d = root / name
    d.mkdir(parents=True)
    shutil.copy(model, d / "model.json")
    card = card or str(model).replace(".json", ".card.json")
    if os.path.exists(card):
        shutil.copy(card, d / "model.card.json")
    return d


def _point(root, name):
    """root/current -> name, replaced atomically (rename over the old link)."""
    tmp = root / "current.new"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(name, tmp)
    os.replace(tmp, root / "current")


def _models(tmp):
    root = tmp / "models"
    _install(root, "v1", h.PRIMARY_MODEL)
    _install(root, "v2", h.CANDIDATE_MODEL)
    _point(root, "v1")
    return root, {"model.path": root / "current" / "model.json",
                  "model.card": root / "current" / "model.card.json"}


def _wait_running(port, worker, version="1.0.0"):
    """Until the worker serves metrics with `version` loaded."""
    h.wait_metrics(port, lambda s: h.metric(s, "streamscore_model_info", mode="primary",
                                            name="churn", version=version) == 1,
                   timeout=30, worker=worker, what=f"model {version} running")


def _wait_scored(port, n, worker, timeout=60):
    return h.wait_metrics(port, lambda s: (h.metric(s, "streamscore_records_produced_total")
                                           or 0) >= n, timeout=timeout, worker=worker,
                          what=f"{n} predictions")


def _check_versions(stream, records):
    """Each prediction scored by the version it names, one per event, per partition the
    version changing from 1.0.0 to 1.1.0 at most once. Returns the count per version."""
    placed = stream.join_all()
    assert all(kind == "event" for kind, _ in placed.values())
    events = stream.events
    where = stream.where
    by_source = h.index_by_source(records)
    dup = {k: len(v) for k, v in by_source.items() if len(v) > 1}
    missing = [p for p in where if p not in by_source]
    assert not dup and not missing, f"{len(dup)} duplicated, {len(missing)} missing {missing[:5]}"
    expected = {}
    for version, path in (("1.0.0", h.PRIMARY_MODEL), ("1.1.0", h.CANDIDATE_MODEL)):
        expected[version], _ = h.expected_predictions(events, where, path)
    wrong, versions = [], {}
    last = {}
    for (p, o), recs in sorted(by_source.items()):
        r = recs[0]
        v = r["model_version"]
        versions[v] = versions.get(v, 0) + 1
        exp = expected[v][(p, o)]
        if abs(r["score"] - exp["score"]) > h.SCORE_TOL or r["feature_hash"] != exp["hash"]:
            wrong.append(((p, o), v, r["score"], exp["score"]))
        assert last.get(p, "1.0.0") <= v, f"partition {p} went back from {last[p]} to {v} at {o}"
        last[p] = v
    assert not wrong, f"{len(wrong)} predictions differ from their version's score: {wrong[:5]}"
    return versions


def test_model_files_swapped_under_load_reload_without_loss_or_mixed_batches(ctx):
    root, paths = _models(ctx.tmp)
    port = h.free_port()
    w = ctx.start_worker(ctx.props({**paths, "metrics.listen": f"127.0.0.1:{port}",
                                    "model.reload.interval.ms": 200, "worker.threads": 2,
                                    "batch.max.messages": 50}))
    stream = faults.Stream(ctx.input_topic, N, RATE, seed=8101, malformed_every=0)
    reader = h.TopicReader(ctx.output_topic)
    try:
        _wait_running(port, w)
        stream.start()
        stream.wait_sent(N // 3)
        _point(root, "v2")
        s = h.wait_metrics(port, lambda s: h.metric(s, "streamscore_model_reloads_total",
                                                    result="ok") == 1,
                           timeout=30, worker=w, what="the reload")
        assert h.metric(s, "streamscore_model_info", mode="primary", name="churn",
                        version="1.1.0") == 1
        stream.join_all()
        _wait_scored(port, N, w)
        w.stop()
        reader.drain()
    finally:
        reader.close()
    versions = _check_versions(stream, reader.records)
    assert versions.get("1.0.0", 0) > 0 and versions.get("1.1.0", 0) > 0, versions
    reloaded = [line for line in w.log_lines() if line.get("msg", "").startswith(
        "model reloaded")]
    assert len(reloaded) == 1 and reloaded[0]["version"] == "1.1.0", reloaded
    print(f"predictions per version: {versions}")


def test_incompatible_or_broken_model_is_refused_and_the_running_one_kept(ctx):
    root, paths = _models(ctx.tmp)
    _install(root, "weak", h.ROOT / "models" / "data" / "churn-weak.json")
    broken = root / "broken"
    broken.mkdir()
    (broken / "model.json").write_text('{"learner": "not a model"')
    shutil.copy(root / "v1" / "model.card.json", broken / "model.card.json")
    port = h.free_port()
    w = ctx.start_worker(ctx.props({**paths, "metrics.listen": f"127.0.0.1:{port}",
                                    "model.reload.interval.ms": 200}))
    rng = np.random.default_rng(8102)
    customers = [f"cust-{ctx.uid}-{i}" for i in range(40)]
    sent = 0
    _wait_running(port, w)
    for target, failed in (("weak", 1), ("broken", 2)):
        _point(root, target)
        h.wait_metrics(port, lambda s: h.metric(s, "streamscore_model_reloads_total",
                                                result="failed") == failed,
                       timeout=30, worker=w, what=f"the refused reload of {target}")
        h.produce(ctx.input_topic, h.random_events(rng, customers, 50),
                  lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
        sent += 50
        s = _wait_scored(port, sent, w)
        assert h.metric(s, "streamscore_model_info", mode="primary", name="churn",
                        version="1.0.0") == 1
        assert h.metric(s, "streamscore_model_reloads_total", result="ok") == 0
    w.stop()
    records, _ = h.read_all(ctx.output_topic)
    assert {r["model_version"] for r in records} == {"1.0.0"}
    errors = [line["msg"] for line in w.log_lines() if line.get("msg", "").startswith(
        "model reload failed")]
    assert len(errors) == 2, errors
    assert "other feature names" in errors[0], errors[0]
    assert "XGBoost cannot load" in errors[1], errors[1]


def test_sighup_reloads_when_watching_is_off(ctx):
    root, paths = _models(ctx.tmp)
    port = h.free_port()
    w = ctx.start_worker(ctx.props({**paths, "metrics.listen": f"127.0.0.1:{port}",
                                    "model.reload": "false", "model.reload.interval.ms": 100}))
    rng = np.random.default_rng(8103)
    customers = [f"cust-{ctx.uid}-{i}" for i in range(40)]

    def score_round(n_total):
        h.produce(ctx.input_topic, h.random_events(rng, customers, 30),
                  lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
        return _wait_scored(port, n_total, w)

    _wait_running(port, w)
    score_round(30)
    _point(root, "v2")
    time.sleep(1.0)  # ten intervals: no reload without SIGHUP
    s = score_round(60)
    assert h.metric(s, "streamscore_model_reloads_total", result="ok") == 0
    w.proc.send_signal(signal.SIGHUP)
    h.wait_metrics(port, lambda s: h.metric(s, "streamscore_model_reloads_total",
                                            result="ok") == 1, timeout=20, worker=w,
                   what="the SIGHUP reload")
    score_round(90)
    w.stop()
    records, _ = h.read_all(ctx.output_topic)
    by_version = {}
    for r in records:
        by_version[r["model_version"]] = by_version.get(r["model_version"], 0) + 1
    assert by_version == {"1.0.0": 60, "1.1.0": 30}, by_version
