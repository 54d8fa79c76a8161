package helmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/template"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// canarySource is the worker file whose ss_canary_render exports the rollout metrics.
var canarySource = filepath.Join(repoRoot, "worker", "daemon", "canary.c")

// workerRollout is what canary.c exports: its source, its gate names (the label of
// streamscore_rollout_triggered and, with "refused", of streamscore_rollout_rollbacks_total)
// and its refusal reasons (the label of streamscore_rollout_candidate_refused_total).
type workerRollout struct {
	src            string
	gates, reasons []string
}

// cStringArray returns the strings of `static const char *name[...] = {...};` in src.
func cStringArray(t *testing.T, src, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`static const char \*` + name + `\[\w+\]\s*=\s*\{([^}]*)\};`).FindStringSubmatch(src)
	if m == nil {
		t.Fatalf("%s: no array %s", canarySource, name)
	}
	var out []string
	for _, s := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, s[1])
	}
	if len(out) == 0 {
		t.Fatalf("%s: array %s is empty", canarySource, name)
	}
	return out
}

func readWorkerRollout(t *testing.T) workerRollout {
	t.Helper()
	b, err := os.ReadFile(canarySource)
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	return workerRollout{src: src, gates: cStringArray(t, src, "gate_names"), reasons: cStringArray(t, src, "refusal_names")}
}

// The scraped targets of the synthetic series. Scraping adds the ServiceMonitor's target
// labels to the worker's own: job is the Service's name (the release's fullname), namespace
// the release's. Pods a and b are two replicas of this release; the others are another
// release in the namespace and this release's name in another namespace: neither may fire.
type target struct {
	name, job, namespace string
	ours                 bool
}

var targets = []target{
	{"a", full, "scoring", true},
	{"b", full, "scoring", true},
	{"other-release", "other-streamscore", "scoring", false},
	{"other-namespace", full, "staging", false},
}

func (tg target) labels() string {
	pod := tg.job + "-7d9f8c6b5-" + tg.name
	return fmt.Sprintf("job=%q,namespace=%q,service=%q,endpoint=\"metrics\",container=\"streamscore\",pod=%q,instance=%q",
		tg.job, tg.namespace, tg.job, pod, "10.0.0."+fmt.Sprint(len(tg.name))+":9464")
}

// fireCase is one rollout alert, the worker metric it must select, that metric's label, and
// the synthetic series: one per target and label value the worker exports, each "flat"
// unless series names it ("<target>/<label value>"), and "foreign" for every series of the
// targets not ours. holds is when (first and last minute) the expression selects this
// release's label value: the alert then fires from holds[0]+for to holds[1].
type fireCase struct {
	alert, metric, kind, label string
	values                     func(w workerRollout) []string
	flat, foreign              string
	series                     map[string]string
	holds                      map[string][2]int
}

// minutes is the span of the series (0m..29m, one sample a minute) and of the evaluations.
const minutes = 30

var fireCases = []fireCase{
	{
		alert: "StreamscoreRolloutTriggered", metric: "streamscore_rollout_triggered", kind: "gauge", label: "gate",
		values: func(w workerRollout) []string { return w.gates },
		flat:   "0x29", foreign: "1x29",
		series: map[string]string{
			"a/error_rate":          "0x9 1x9 0x9", // 1 from 10m to 19m
			"b/latency_p95_seconds": "0x4 1x4 0x19",
		},
		holds: map[string][2]int{"error_rate": {10, 19}, "latency_p95_seconds": {5, 9}},
	},
	{
		alert: "StreamscoreRolloutRolledBack", metric: "streamscore_rollout_rollbacks_total", kind: "counter", label: "gate",
		values: func(w workerRollout) []string { return append(slices.Clone(w.gates), "refused") },
		flat:   "0x29", foreign: "0x9 1x19",
		series: map[string]string{
			"a/drift_psi":  "0x9 1x19",  // one rollback at 10m: increase over [10m] > 0 until 18m
			"b/refused":    "0x19 1x9",  // one at 20m (a refused candidate)
			"a/refused":    "2x29",      // flat at 2: rollbacks before the window, none now
			"b/error_rate": "3x14 0x14", // the pod restarted at 15m: a reset, no rollback
		},
		holds: map[string][2]int{"drift_psi": {10, 18}, "refused": {20, 28}},
	},
	{
		alert: "StreamscoreRolloutCandidateRefused", metric: "streamscore_rollout_candidate_refused_total", kind: "counter", label: "reason",
		values: func(w workerRollout) []string { return w.reasons },
		flat:   "0x29", foreign: "0x9 1x19",
		series: map[string]string{
			"a/signature": "0x9 1x19",
			"b/digest":    "0x19 1x9",
			"b/load":      "1x29", // refused before the window
		},
		holds: map[string][2]int{"signature": {10, 18}, "digest": {20, 28}},
	},
}

// seriesLines are a case's series, one per line in the promqltest notation the PromQL
// parser reads (parser.ParseSeriesDesc): `metric{labels} 0x9 1x19`, one sample a minute
// from the epoch.
func (c fireCase) seriesLines(w workerRollout) []string {
	var lines []string
	for _, tg := range targets {
		for _, v := range c.values(w) {
			vals := c.flat
			if !tg.ours {
				vals = c.foreign
			}
			if s, ok := c.series[tg.name+"/"+v]; ok {
				vals = s
			}
			lines = append(lines, fmt.Sprintf("%s{%s=%q,%s} %s", c.metric, c.label, v, tg.labels(), vals))
		}
	}
	return lines
}

// memStorage is the smallest storage.Queryable the PromQL engine evaluates over: the
// series in memory, each one float chunk, selected by the query's matchers.
type memStorage []storage.Series

// loadSeries parses seriesLines into a memStorage: the i-th value at i minutes past the
// epoch, "_" values omitted.
func loadSeries(t *testing.T, lines []string) memStorage {
	t.Helper()
	var s memStorage
	for _, line := range lines {
		lset, vals, err := parser.NewParser(parser.Options{}).ParseSeriesDesc(line)
		if err != nil {
			t.Fatalf("series %q: %v", line, err)
		}
		chunk := chunkenc.NewXORChunk()
		app, err := chunk.Appender()
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			if v.Omitted {
				continue
			}
			if v.Histogram != nil {
				t.Fatalf("series %q: histograms are not supported here", line)
			}
			app.Append(0, int64(i)*time.Minute.Milliseconds(), v.Value)
		}
		s = append(s, &storage.SeriesEntry{Lset: lset, SampleIteratorFn: chunk.Iterator})
	}
	return s
}

func (s memStorage) Querier(_, _ int64) (storage.Querier, error) { return s, nil }

func (s memStorage) Select(_ context.Context, sortSeries bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, series := range s {
		lset := series.Labels()
		if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches(lset.Get(m.Name)) }) {
			out = append(out, series)
		}
	}
	if sortSeries {
		slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &memSeriesSet{series: out}
}

// The engine asks for no label names or values for the rollout alerts' expressions.
func (memStorage) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("memStorage: no LabelValues")
}

func (memStorage) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("memStorage: no LabelNames")
}

func (memStorage) Close() error { return nil }

// memSeriesSet iterates the selected series.
type memSeriesSet struct {
	series []storage.Series
	cur    storage.Series
}

func (s *memSeriesSet) Next() bool {
	if len(s.series) == 0 {
		return false
	}
	s.cur, s.series = s.series[0], s.series[1:]
	return true
}

func (s *memSeriesSet) At() storage.Series              { return s.cur }
func (*memSeriesSet) Err() error                        { return nil }
func (*memSeriesSet) Warnings() annotations.Annotations { return nil }

// checkWorkerExports: the expression selects exactly the case's metric, aggregates by job
// and the worker's label, takes increase() of a counter only, and canary.c writes the metric
// with that label and that # TYPE; the case's label values are the ones canary.c exports.
func checkWorkerExports(t *testing.T, c fireCase, expr parser.Expr, w workerRollout) {
	t.Helper()
	var names []string
	var grouping []string
	increased := false
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			names = append(names, n.Name)
			for _, p := range path {
				if call, ok := p.(*parser.Call); ok && call.Func.Name == "increase" {
					increased = true
				}
			}
		case *parser.AggregateExpr:
			grouping = n.Grouping
		}
		return nil
	})
	if !slices.Equal(names, []string{c.metric}) {
		t.Errorf("%s selects %v, want the worker's %s", c.alert, names, c.metric)
	}
	if want := []string{"job", c.label}; !slices.Equal(grouping, want) {
		t.Errorf("%s aggregates by %v, want %v", c.alert, grouping, want)
	}
	if increased != (c.kind == "counter") {
		t.Errorf("%s: increase() %v on a %s", c.alert, increased, c.kind)
	}
	for _, name := range names {
		for _, want := range []string{
			name + `{` + c.label + `=\"`,
			"# TYPE " + name + " " + c.kind + `\n`,
		} {
			if !strings.Contains(w.src, want) {
				t.Errorf("%s: %s does not write %s", c.alert, canarySource, want)
			}
		}
	}
	for v := range c.holds {
		if !slices.Contains(c.values(w), v) {
			t.Errorf("%s: %s=%q is not a value %s exports (%v)", c.alert, c.label, v, canarySource, c.values(w))
		}
	}
}

// span formats minutes as "10m-18m,25m" for messages.
func span(ms []int) string {
	var parts []string
	for i := 0; i < len(ms); {
		j := i
		for j+1 < len(ms) && ms[j+1] == ms[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprintf("%dm", ms[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%dm-%dm", ms[i], ms[j]))
		}
		i = j + 1
	}
	if len(parts) == 0 {
		return "never"
	}
	return strings.Join(parts, ",")
}

// The rollout alerts, as rendered, fire on the series the worker exports: each rendered
// rule's expression is evaluated by Prometheus' PromQL engine every minute over 30 minutes
// of synthetic series (memStorage), carrying canary.c's metric names and label values plus
// the scrape's target labels, and turned into alerts as Prometheus' rule manager does: an
// alert per output series, labelled with the output's labels, the rule's labels and its
// name, firing once the series has been returned at every evaluation for the rule's `for`;
// its annotations expanded by Prometheus' template package. It fires for this release's job
// with the worker's label, exactly while the expression holds and `for` has passed, and never
// for another release or namespace. Run with the chart's `for` (0m) and with every rollout
// alert's `for` set to 3m.
func TestRolloutAlertsFire(t *testing.T) {
	w := readWorkerRollout(t)
	f := filepath.Join(valuesDir, "rollout.yaml")
	for _, render := range []struct {
		name string
		args []string
	}{
		{"chart for", nil},
		{"for 3m", []string{
			"--set", "prometheusRule.alerts.rolloutTriggered.for=3m",
			"--set", "prometheusRule.alerts.rolloutRolledBack.for=3m",
			"--set", "prometheusRule.alerts.rolloutCandidateRefused.for=3m",
		}},
	} {
		t.Run(render.name, func(t *testing.T) {
			r, err := Render(f, render.args...)
			if err != nil {
				t.Fatal(err)
			}
			rendered := alertRules(t, r)
			for _, c := range fireCases {
				t.Run(c.alert, func(t *testing.T) {
					rule, ok := rendered[c.alert]
					if !ok {
						t.Fatalf("no alert %s rendered", c.alert)
					}
					forText := ""
					if rule.For != nil {
						forText = string(*rule.For)
					}
					evalAlert(t, c, rule.Expr.String(), forText, rule.Labels, rule.Annotations, w)
				})
			}
		})
	}
}

func evalAlert(t *testing.T, c fireCase, exprText, forText string, ruleLabels, ruleAnnotations map[string]string, w workerRollout) {
	t.Helper()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(exprText)
	if err != nil {
		t.Fatalf("%q: %v", exprText, err)
	}
	checkWorkerExports(t, c, expr, w)

	var hold time.Duration
	if forText != "" {
		d, err := model.ParseDuration(forText)
		if err != nil {
			t.Fatalf("for %q: %v", forText, err)
		}
		hold = time.Duration(d)
	}
	if hold%time.Minute != 0 {
		t.Fatalf("for %v: the evaluations are a minute apart, want whole minutes", hold)
	}
	holdMin := int(hold / time.Minute)
	for k, v := range ruleLabels {
		// Prometheus expands templates in rule labels; here they are taken as they are.
		if strings.Contains(v, "{{") {
			t.Fatalf("rule label %s=%q is a template: this test takes rule labels literally", k, v)
		}
	}

	lines := c.seriesLines(w)
	store := loadSeries(t, lines)
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute})
	t.Cleanup(func() { _ = engine.Close() })
	ctx := context.Background()
	query := func(ctx context.Context, qs string, ts time.Time) (promql.Vector, error) {
		q, err := engine.NewInstantQuery(ctx, store, nil, qs, ts)
		if err != nil {
			return nil, err
		}
		defer q.Close()
		return q.Exec(ctx).Vector()
	}

	// The alert's labels: the rule's name and labels, the job and the worker's label.
	wantLabels := func(v string) labels.Labels {
		m := map[string]string{"alertname": c.alert, "job": full, c.label: v}
		for k, val := range ruleLabels {
			m[k] = val
		}
		return labels.FromMap(m)
	}
	firing := map[string][]int{}    // worker label value -> minutes firing
	unexpected := map[string]bool{} // label sets of alerts not of this release's job
	since := map[string]int{}       // alert labels -> first minute of its unbroken run
	start := time.Unix(0, 0).UTC()  // the series start at the epoch
	for m := 0; m < minutes; m++ {
		ts := start.Add(time.Duration(m) * time.Minute)
		vec, err := query(ctx, exprText, ts)
		if err != nil {
			t.Fatalf("%dm: %v", m, err)
		}
		active := map[string]int{}
		for _, smpl := range vec {
			// As the rule manager: the output's labels without the metric name, the rule's
			// labels over them, then the alert's name.
			lb := labels.NewBuilder(smpl.Metric)
			lb.Del(labels.MetricName)
			for k, v := range ruleLabels {
				lb.Set(k, v)
			}
			lb.Set(labels.AlertName, c.alert)
			alertLabels := lb.Labels()
			key := alertLabels.String()
			if _, dup := active[key]; dup {
				t.Fatalf("%dm: two series of %q give the alert %s", m, exprText, key)
			}
			active[key] = m
			if first, ok := since[key]; ok {
				active[key] = first
			}
			if m-active[key] < holdMin {
				continue // pending
			}
			v := alertLabels.Get(c.label)
			if !labels.Equal(alertLabels, wantLabels(v)) || !slices.Contains(c.values(w), v) {
				unexpected[key] = true
				continue
			}
			firing[v] = append(firing[v], m)
			ann := expandAnnotations(t, ctx, c.alert, ruleAnnotations, smpl, ts, query)
			summary := ann["summary"]
			if !strings.Contains(summary, full) || !strings.Contains(summary, v) {
				t.Errorf("%dm: summary %q names neither the job %s nor %s=%s", m, summary, full, c.label, v)
			}
		}
		since = active
	}
	for l := range unexpected {
		t.Errorf("%s fired for %s: only %s{job=%q,%s=<value>} may", c.alert, l, c.alert, full, c.label)
	}
	for _, v := range c.values(w) {
		var want []int
		if h, ok := c.holds[v]; ok {
			for m := h[0] + holdMin; m <= h[1]; m++ {
				want = append(want, m)
			}
		}
		if !slices.Equal(firing[v], want) {
			t.Errorf("%s{%s=%q} (for %v) fired %s, want %s", c.alert, c.label, v, hold, span(firing[v]), span(want))
		}
	}
	if t.Failed() {
		t.Logf("expr: %s\nseries (one sample a minute from 0m):\n  %s", exprText, strings.Join(lines, "\n  "))
	}
}

// expandAnnotations expands a firing alert's annotations as Prometheus' rule manager does:
// its template variables over the expression's output sample, the template package's
// functions; an annotation that fails to expand is an error.
func expandAnnotations(t *testing.T, ctx context.Context, alert string, ruleAnnotations map[string]string,
	smpl promql.Sample, ts time.Time, query template.QueryFunc) map[string]string {
	t.Helper()
	defs := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	data := template.AlertTemplateData(smpl.Metric.Map(), nil, "", smpl)
	out := map[string]string{}
	for k, text := range ruleAnnotations {
		s, err := template.NewTemplateExpander(ctx, defs+text, "__alert_"+alert, data,
			model.Time(ts.UnixMilli()), query, nil, nil).Expand()
		if err != nil {
			t.Errorf("%s: annotation %s %q: %v", alert, k, text, err)
		}
		out[k] = s
	}
	return out
}
