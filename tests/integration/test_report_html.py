"""compare.html, rendered by headless Chromium: one self-contained page whose three SVG
charts carry the figures of compare.json, whose per-route table gives compare.json's
"routes" (a canary among the primary's predictions), and that asks the network for
nothing. A multi-class comparison adds the per-output differences and the class matrix, a
regression the distribution of |difference| with its percentiles; a binary one neither."""

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest

import harness as h
import test_compare as tc

pytestmark = pytest.mark.skipif(not h.CHROMIUM.exists(),
                                reason=f"{h.CHROMIUM} is absent: scripts/setup installs the "
                                       f"Debian package chromium")

CHARTS = ("chart-distributions", "chart-differences", "chart-scatter")
OTHER_KINDS_CHARTS = ("chart-outputs", "chart-class-matrix", "chart-abs-diff")
URL_ATTRS = {"src", "href", "xlink:href", "action", "srcset", "data", "poster", "formaction"}


class _Marks(HTMLParser):
    """The marks of each chart: (tag, classes, attributes, title text) per svg id; and every
    URL-valued attribute of the page."""

    def __init__(self):
        super().__init__()
        self.charts = {}
        self.urls = []
        self._chart = None
        self._mark = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.urls += [(tag, k, v) for k, v in attrs if k in URL_ATTRS and v]
        if tag == "svg" and a.get("id"):
            self._chart = a["id"]
            self.charts[self._chart] = []
        elif self._chart and tag in ("rect", "circle"):
            self._mark = {"tag": tag, "classes": set((a.get("class") or "").split()), "attrs": a,
                          "title": ""}
            self.charts[self._chart].append(self._mark)

    def handle_endtag(self, tag):
        if tag == "svg":
            self._chart = None
        elif tag in ("rect", "circle"):
            self._mark = None

    def handle_data(self, data):
        if self._mark is not None:
            self._mark["title"] += data


@pytest.fixture
def report(ctx):
    """compare.json and compare.html of the hand-built case (harness.CompareCase), with
    canary predictions among the primary's."""
    ctx.add_topics(ctx.shadow_topic)
    case = h.CompareCase(source_topic=ctx.input_topic, n_canary=40, n_canary_divergent=3,
                         n_canary_primary_only=3)
    h.produce_records(ctx.output_topic, case.primary, encode=tc.encode_of_its_time)
    h.produce_records(ctx.shadow_topic, case.shadow, encode=tc.encode_of_its_time)
    out = ctx.tmp / "report"
    cfg = h.compare_config(ctx.tmp / "compare.properties", ctx.output_topic, ctx.shadow_topic, out,
                           case.labels_csv(ctx.tmp / "labels.csv"),
                           {"promote.max.flip.rate": 0.001})
    r = h.run_cli(["compare", "-c", str(cfg), "--quiet"], timeout=60)
    assert r.returncode == 3, f"exit {r.returncode}, expected 3 (hold); {r.stderr[-3000:]}"
    html = out / "compare.html"
    assert html.exists(), f"no {html}"
    return {"case": case, "json": json.loads((out / "compare.json").read_text(encoding="utf-8")),
            "html": html, "tmp": ctx.tmp}


def _bars(marks, cls):
    return [m for m in marks if m["tag"] == "rect" and {"bar", cls} <= m["classes"]]


def _count_in_title(mark):
    m = re.search(r":\s*(\d+)", mark["title"])
    assert m, f"bar without a count in its title: {mark}"
    return int(m.group(1))


def test_rendered_report_has_three_charts_with_the_figures_and_no_network_access(report):
    data, tmp = report["json"], report["tmp"]
    net_log = tmp / "net-log.json"

    r = h.chromium(report["html"].as_uri(), tmp / "chromium-profile", "--dump-dom",
                   f"--log-net-log={net_log}")

    assert r.returncode == 0, f"chromium exit {r.returncode}: {r.stderr[-2000:]}"
    dom = r.stdout
    assert "<svg" in dom, f"no rendered DOM: {dom[:500]!r}"
    p = _Marks()
    p.feed(dom)
    missing = [c for c in CHARTS if c not in p.charts]
    assert not missing, f"charts {missing} not in the rendered page (svg ids: {sorted(p.charts)})"
    other = [c for c in OTHER_KINDS_CHARTS if c in p.charts]
    assert not other, f"a binary comparison's page has the charts {other} of other kinds"

    # Score distributions: 20 bars per side; each bar's count is compare.json's, and a bar is
    # drawn with a height exactly when its bin holds records.
    dist = p.charts["chart-distributions"]
    for side in ("primary", "shadow"):
        bars = _bars(dist, side)
        want = data["distributions"][side]["counts"]
        assert len(bars) == 20, f"{len(bars)} {side} bars, expected 20"
        assert [_count_in_title(b) for b in bars] == want, f"{side} bar counts differ from JSON"
        drawn = [float(b["attrs"].get("height", 0)) > 0 for b in bars]
        assert drawn == [c > 0 for c in want], f"{side} bars drawn {drawn} for counts {want}"
    # Differences: 40 bars with the histogram of compare.json.
    diffs = _bars(p.charts["chart-differences"], "diff")
    want = data["pairs"]["diff_histogram"]["counts"]
    assert len(diffs) == 40, f"{len(diffs)} difference bars, expected 40"
    assert [_count_in_title(b) for b in diffs] == want
    assert sum(float(b["attrs"]["height"]) > 0 for b in diffs) == sum(c > 0 for c in want)
    # Scatter: one point per identical-feature pair (all of them: fewer than the sample size).
    points = [m for m in p.charts["chart-scatter"] if m["tag"] == "circle" and "point" in m["classes"]]
    assert len(points) == data["counts"]["identical_features"] == report["case"].expected()["pairs"]["n"]

    # Nothing from the network: no remote URL in the page, and no request in Chromium's log.
    remote = [u for u in p.urls if re.match(r"\s*(https?:|wss?:|ftp:|//)", u[2], re.I)]
    assert not remote, f"the page references remote URLs: {remote[:5]}"
    css = re.findall(r"url\(\s*['\"]?\s*(?:https?:|//)[^)]*\)|@import", dom, re.I)
    assert not css, f"the page's CSS loads from elsewhere: {css[:5]}"
    requests = [u for u in h.page_requests(net_log) if not u.startswith(("file:", "data:"))]
    assert not requests, f"the page made network requests: {requests[:5]}"

    # The verdict and its reason are on the page.
    assert "hold" in dom.lower() and "promote.max.flip.rate" in dom


class _Routes(HTMLParser):
    """The rows of the table with id "routes" (lists of cell texts, the header row first) and
    the text of the paragraph with id "canary-note"."""

    def __init__(self):
        super().__init__()
        self.rows, self.note = [], None
        self._table = self._cell = self._note = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "routes":
            self._table = True
        elif self._table and tag == "tr":
            self.rows.append([])
        elif self._table and tag in ("th", "td"):
            self._cell = True
            self.rows[-1].append("")
        elif tag == "p" and a.get("id") == "canary-note":
            self._note, self.note = True, ""

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = False
        elif tag in ("th", "td"):
            self._cell = False
        elif tag == "p":
            self._note = False

    def handle_data(self, data):
        if self._cell:
            self.rows[-1][-1] += data
        elif self._note:
            self.note += data


def test_rendered_report_has_the_per_route_table_and_the_canary_note(report):
    data = report["json"]

    r = h.chromium(report["html"].as_uri(), report["tmp"] / "chromium-profile", "--dump-dom")

    assert r.returncode == 0, f"chromium exit {r.returncode}: {r.stderr[-2000:]}"
    p = _Routes()
    p.feed(r.stdout)
    assert p.rows, "no per-route table (id routes) in the rendered page"
    head, rows = p.rows[0], p.rows[1:]
    assert [row[0] for row in rows] == list(data["routes"]) == ["live", "canary"], \
        f"route rows {[row[0] for row in rows]}, compare.json routes {list(data['routes'])}"
    col = {name: i for i, name in enumerate(head)}
    for row in rows:
        rt = data["routes"][row[0]]
        want = {"primary": [rt["counts"]["primary"]],
                "matched (share)": [rt["counts"]["matched"], rt["counts"]["matched_share"]],
                "identical pairs": [rt["counts"]["identical_features"]],
                "flip rate": [rt["pairs"]["flips"]["rate"]],
                "ROC-AUC primary / shadow": [rt["labels"]["primary"]["roc_auc"],
                                             rt["labels"]["shadow"]["roc_auc"]]}
        for name, values in want.items():
            assert name in col, f"no column {name!r} in {head}"
            cell = row[col[name]]
            assert all(h.mentions(cell, v) for v in values), \
                f"route {row[0]}: {name} {cell!r}, compare.json {values}"
    assert p.note and "compare the candidate with itself" in p.note, f"canary note {p.note!r}"


def test_report_screenshot_shows_the_charts(report):
    png = report["tmp"] / "compare.png"

    r = h.chromium(report["html"].as_uri(), report["tmp"] / "chromium-profile",
                   f"--screenshot={png}", "--window-size=1100,2000", "--hide-scrollbars")

    assert r.returncode == 0 and png.exists(), f"no screenshot (exit {r.returncode}): " \
                                               f"{r.stderr[-2000:]}"
    assert png.stat().st_size > 20_000, f"screenshot of {png.stat().st_size} bytes: blank?"
    px = h.png_pixels(png)[..., :3].reshape(-1, 3).astype(np.int32)
    _, counts = np.unique((px[:, 0] << 16) | (px[:, 1] << 8) | px[:, 2], return_counts=True)
    colours = counts  # one count per distinct colour
    assert len(colours) >= 50, f"only {len(colours)} colours: a blank or failed render"
    assert counts.max() / len(px) < 0.95, "one colour covers 95 % of the page"

    def pixels_near(rgb, tol=4):
        return int((np.abs(px - np.array(rgb)).max(axis=1) <= tol).sum())

    # The stylesheet's mark colours, over the white chart background: solid #6a51a3 for
    # the difference bars; #1f77b4 / #ff7f0e at 55 % opacity for the distribution bars.
    def over_white(hex_rgb, alpha):
        c = np.array([int(hex_rgb[i:i + 2], 16) for i in (0, 2, 4)])
        return alpha * c + (1 - alpha) * 255

    css = report["html"].read_text(encoding="utf-8")
    assert "#6a51a3" in css and "#1f77b4" in css and "#ff7f0e" in css, \
        "the report's colours changed: update this test"
    seen = {"difference bars": pixels_near((0x6A, 0x51, 0xA3)),
            "primary bars": pixels_near(over_white("1f77b4", 0.55)),
            "shadow bars": pixels_near(over_white("ff7f0e", 0.55))}
    faint = {k: v for k, v in seen.items() if v < 500}
    assert not faint, f"chart marks barely visible in the screenshot (pixels): {seen}"


# ---- multi-class and regression

def _rendered(html_path, tmp):
    r = h.chromium(html_path.as_uri(), tmp / "chromium-profile", "--dump-dom")
    assert r.returncode == 0, f"chromium exit {r.returncode}: {r.stderr[-2000:]}"
    p = _Marks()
    p.feed(r.stdout)
    return p


def _compare_report(ctx, case, name, extra=None):
    out = ctx.tmp / name
    cfg = h.compare_config(ctx.tmp / f"{name}.properties", ctx.output_topic, ctx.shadow_topic, out,
                           case.labels_path, {**getattr(case, "extra", {}), **(extra or {})})
    r = h.run_cli(["compare", "-c", str(cfg), "--quiet"], timeout=60)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-3000:]}"
    return json.loads((out / "compare.json").read_text(encoding="utf-8")), out / "compare.html"


def _number_in_title(mark, pattern):
    m = re.search(pattern, mark["title"])
    assert m, f"no {pattern!r} in the title of {mark}"
    return float(m.group(1))


def test_rendered_multiclass_report_charts_the_per_output_differences_and_the_class_matrix(ctx):
    """Two bars per output (mean and p99 of |difference|, as compare.json's per_output), one
    cell per (primary class, candidate class) holding compare.json's count, shaded exactly
    when it holds pairs; and the binary charts still there."""
    case = tc.produce_multiclass(ctx, seed=23)
    data, page = _compare_report(ctx, case, "multiclass")

    p = _rendered(page, ctx.tmp)

    missing = [c for c in CHARTS + ("chart-outputs", "chart-class-matrix") if c not in p.charts]
    assert not missing, f"charts {missing} not in the page (svg ids: {sorted(p.charts)})"
    assert "chart-abs-diff" not in p.charts
    per_output = data["outputs"]["per_output"]
    assert len(per_output) == case.k
    for cls, key in (("output-mean", "abs_mean"), ("output-p99", "abs_p99")):
        bars = _bars(p.charts["chart-outputs"], cls)
        assert len(bars) == case.k, f"{len(bars)} {cls} bars for {case.k} outputs"
        got = [_number_in_title(b, r"\|difference\| ([-+0-9.eE]+)") for b in bars]
        want = [o[key] for o in per_output]
        assert np.allclose(got, want, rtol=1e-5), f"{cls}: {got} != compare.json {want}"
        heights = [float(b["attrs"]["height"]) for b in bars]
        assert all(x > 0 for x in heights), f"{cls} bars drawn {heights}"
    p99 = [float(b["attrs"]["height"]) for b in _bars(p.charts["chart-outputs"], "output-p99")]
    mean = [float(b["attrs"]["height"]) for b in _bars(p.charts["chart-outputs"], "output-mean")]
    assert all(a >= b for a, b in zip(p99, mean)), "a p99 bar lower than its mean bar"

    cells = [m for m in p.charts["chart-class-matrix"]
             if m["tag"] == "rect" and "cell" in m["classes"] and "key" not in m["classes"]]
    matrix = data["classes"]["matrix"]
    assert len(cells) == case.k ** 2, f"{len(cells)} cells for {case.k} classes"
    for m in cells:
        a, b = (int(x) for x in re.search(r"primary class (\d+), candidate class (\d+)",
                                          m["title"]).groups())
        count = int(_number_in_title(m, r": (\d+) \("))
        assert count == matrix[a][b], f"cell ({a}, {b}): {count}, compare.json {matrix[a][b]}"
        assert ("diag" in m["classes"]) == (a == b), f"cell ({a}, {b}) classes {m['classes']}"
        assert (float(m["attrs"]["fill-opacity"]) > 0) == (count > 0), m
    flips = sum(matrix[a][b] for a in range(case.k) for b in range(case.k) if a != b)
    assert flips == data["classes"]["changed"] > 0


def test_rendered_regression_report_charts_the_absolute_differences_with_percentiles(ctx):
    """40 bars of |difference| holding compare.json's regression histogram, and markers at its
    p50, p95 and p99; the distributions span the values read (not [0, 1])."""
    ctx.add_topics(ctx.shadow_topic)
    case = tc.RegressionCase(source_topic=ctx.input_topic, seed=33)
    h.produce_records(ctx.output_topic, case.primary, encode=tc.encode_current)
    h.produce_records(ctx.shadow_topic, case.shadow, encode=tc.encode_current)
    case.labels_path = case.labels_csv(ctx.tmp / "labels.csv")
    data, page = _compare_report(ctx, case, "regression")

    p = _rendered(page, ctx.tmp)

    missing = [c for c in CHARTS + ("chart-abs-diff",) if c not in p.charts]
    assert not missing, f"charts {missing} not in the page (svg ids: {sorted(p.charts)})"
    assert "chart-outputs" not in p.charts and "chart-class-matrix" not in p.charts
    bars = _bars(p.charts["chart-abs-diff"], "absdiff")
    want = data["regression"]["abs_diff_histogram"]["counts"]
    assert len(bars) == 40, f"{len(bars)} bars, expected 40"
    assert [_count_in_title(b) for b in bars] == want
    assert sum(float(b["attrs"]["height"]) > 0 for b in bars) == sum(c > 0 for c in want)
    svg = re.search(r'<svg id="chart-abs-diff".*?</svg>', page.read_text(encoding="utf-8"), re.S)
    markers = dict(re.findall(r'<line class="marker"[^>]*><title>(p\d+) ([-+0-9.eE]+)</title>',
                              svg.group(0)))
    sd = data["regression"]["score_diff"]
    assert set(markers) == {"p50", "p95", "p99"}, f"markers {markers}"
    for q in ("p50", "p95", "p99"):
        assert np.isclose(float(markers[q]), sd[f"abs_{q}"], rtol=1e-5), f"{q}: {markers[q]}"
    dist = _bars(p.charts["chart-distributions"], "primary")
    lows = [float(re.search(r"score ([-+0-9.eE]+)-", b["title"]).group(1)) for b in dist]
    edges = data["distributions"]["edges"]
    assert edges[-1] > 1 and np.allclose(lows, edges[:-1], rtol=1e-3), \
        f"distribution bars from {lows[:3]}..., compare.json edges {edges[:3]}..."
