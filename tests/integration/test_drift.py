"""Drift: the worker's population stability index of every feature and of the score over
its last drift.window records, against the model card's baseline, equals the PSI computed
here from the same records; events from the training distribution stay below the threshold,
a feature shifted upstream goes above it and is logged."""

import json
import math
import sys

import numpy as np
import pytest

import harness as h

sys.path.insert(0, str(h.ROOT / "scripts"))
import churn_data  # noqa: E402

WINDOW = 600
FLOOR = 1e-4
INT_FIELDS = {"tenure_months", "support_calls_30d", "logins_30d", "payment_failures_90d",
              "num_products", "days_since_last_login"}


def _event(cid, t, row, scale=None):
    """An event carrying a training row (NaN -> null), monthly_charges times scale."""
    fields = {}
    for name, v in zip(churn_data.FEATURES, row):
        if np.isnan(v):
            fields[name] = None
        elif name == "contract_type":
            fields[name] = h.CONTRACT_TYPES[int(v)]
        elif name == "has_autopay":
            fields[name] = bool(v)
        elif name in INT_FIELDS:
            fields[name] = int(v)
        else:
            fields[name] = float(v) * (scale if scale and name == "monthly_charges" else 1)
    return h.make_event(cid, t, None, **fields)


def _psi(values, edges, proportions, missing_rate=None):
    """The worker's PSI: bins by numpy.searchsorted(edges, v, 'right'), a missing bin for
    features, shares floored at 1e-4."""
    values = np.asarray(values, dtype=np.float64)
    expected = list(np.asarray(proportions) * (1 - (missing_rate or 0)))
    nan = np.isnan(values)
    counts = list(np.bincount(np.searchsorted(edges, values[~nan], side="right"),
                              minlength=len(edges) + 1))
    if missing_rate is not None:
        expected.append(missing_rate)
        counts.append(int(nan.sum()))
    total = len(values)
    psi = 0.0
    for c, e in zip(counts, expected):
        a = max(c / total, FLOOR)
        e = max(e, FLOOR)
        psi += (a - e) * math.log(a / e)
    return psi


@pytest.mark.partitions(1)
def test_psi_matches_the_reference_and_a_shifted_feature_crosses_the_threshold(ctx):
    card = json.loads((h.ROOT / "models" / "churn-1.0.0.card.json").read_text())
    x, _ = churn_data.training_set(2 * WINDOW, seed=77)
    # one customer per event: the scored vector is the event's own features
    first = [_event(f"a-{ctx.uid}-{i}", 1_700_000_000_000 + i, row)
             for i, row in enumerate(x[:WINDOW])]
    shifted = [_event(f"b-{ctx.uid}-{i}", 1_700_100_000_000 + i, row, scale=2.5)
               for i, row in enumerate(x[WINDOW:])]
    port = h.free_port()
    w = ctx.start_worker(ctx.props({"metrics.listen": f"127.0.0.1:{port}",
                                    "drift.window": WINDOW}))

    def check(events, what):
        vectors = np.array([[h.feature_value(n, ev[n]) for n in h.FEATURES] for ev in events],
                           dtype=np.float32)
        scores = h.reference_scores(h.PRIMARY_MODEL, vectors)
        want = {}
        for j, name in enumerate(h.FEATURES):
            b = card["baseline"][name]
            want[name] = _psi(vectors[:, j], b["edges"], b["proportions"], b["missing_rate"])
        want["score"] = _psi(scores, card["score_baseline"]["edges"],
                             card["score_baseline"]["proportions"])
        edges = card["score_baseline"]["edges"]
        shares = np.bincount(np.searchsorted(edges, scores, side="right"),
                             minlength=len(edges) + 1) / len(scores)

        def got_of(s):
            g = {name: h.metric(s, "streamscore_feature_psi", feature=name) for name in h.FEATURES}
            g["score"] = h.metric(s, "streamscore_score_psi")
            return g

        def off_of(s):
            """What differs from the reference: empty once the window holds these records."""
            g = got_of(s)
            off = {k: (g[k], want[k]) for k in want
                   if g[k] is None or abs(g[k] - want[k]) > 2e-6}
            # the window's score distribution, bin by bin, beside the training one
            for i, (share, train) in enumerate(zip(shares,
                                                   card["score_baseline"]["proportions"])):
                le = "+Inf" if i == len(edges) else f"{edges[i]:g}"
                for which, v in (("window", share), ("training", train)):
                    m = h.metric(s, "streamscore_score_window_share", le=le, set=which)
                    if m is None or abs(m - v) > 2e-6:
                        off[f"share {which} le={le}"] = (m, v)
            if h.metric(s, "streamscore_drift_window_records") != WINDOW:
                off["window"] = h.metric(s, "streamscore_drift_window_records")
            return off

        placed = h.produce(ctx.input_topic, events,
                           lambda ev: h.encode_avro(h.EVENT_SCHEMA_PATH, ev))
        assert len(placed) == WINDOW
        # the window holds exactly these records once their last batch is complete
        s = h.wait_metrics(port, lambda s: not off_of(s), timeout=60, worker=w,
                           what=f"{what}: the worker's drift figures equal to the reference")
        return got_of(s)

    calm = check(first, "training-like")
    above = {k: v for k, v in calm.items() if v > 0.2}
    assert not above, f"training-like events drift: {above}"
    drifted = check(shifted, "shifted")
    assert drifted["monthly_charges"] > 0.2, drifted
    w.stop()
    logged = [line for line in w.log_lines() if line.get("msg", "").startswith("drift:")]
    assert any(line.get("feature") == "monthly_charges" and line.get("level") == "warn"
               for line in logged), logged
