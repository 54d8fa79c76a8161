package helmtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
)

var (
	dashboardFile  = filepath.Join(chartDir, "dashboards", "streamscore.json")
	workerMetrics  = filepath.Join("testdata", "worker-metrics.txt")
	dashboardCM    = full + "-dashboard"
	dashboardKey   = "streamscore.json"
	dashboardDSUID = "${datasource}"
)

// releaseLabel is the series label holding the pods' app.kubernetes.io/instance: the
// ServiceMonitor's podTargetLabels copies it, sanitized as Prometheus does label names.
const releaseLabel = "app_kubernetes_io_instance"

// scrapeLabels are the target labels the dashboard may select or group by besides the
// worker's own: the namespace and pod every Kubernetes scrape attaches (the ServiceMonitor's,
// or a pod-annotation scrape configuration's) and the release label. job, service and
// instance differ between the two, so the dashboard uses none of them.
var scrapeLabels = []string{"namespace", "pod", releaseLabel}

// ---- the dashboard's JSON ---------------------------------------------------------------

type dashRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashTarget struct {
	Datasource *dashRef `json:"datasource"`
	Expr       string   `json:"expr"`
	RefID      string   `json:"refId"`
}

type dashPanel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Description string                   `json:"description"`
	Datasource  *dashRef                 `json:"datasource"`
	GridPos     struct{ H, W, X, Y int } `json:"gridPos"`
	Targets     []dashTarget             `json:"targets"`
	Panels      []dashPanel              `json:"panels"` // a collapsed row's
}

type dashVar struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *dashRef        `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

// queryText is a query variable's query: a string, or the object newer Grafanas write.
func (v dashVar) queryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

type dashboardJSON struct {
	UID           string      `json:"uid"`
	Title         string      `json:"title"`
	SchemaVersion int         `json:"schemaVersion"`
	Panels        []dashPanel `json:"panels"`
	Templating    struct {
		List []dashVar `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) (*dashboardJSON, []byte) {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboardJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return &d, raw
}

// allPanels returns the panels, those of collapsed rows included, rows left out.
func (d *dashboardJSON) allPanels() []dashPanel {
	var out []dashPanel
	var walk func(ps []dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// dashQuery is one PromQL text of the dashboard: a panel target's, or the series selector
// of a query variable's label_values(selector, label).
type dashQuery struct {
	where string // panel title and refId, or the variable
	expr  string
	label string // label_values' label, for a variable
}

var labelValuesRe = regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

func (d *dashboardJSON) queries(t *testing.T) []dashQuery {
	t.Helper()
	var out []dashQuery
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out = append(out, dashQuery{where: fmt.Sprintf("panel %q %s", p.Title, tg.RefID), expr: tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesRe.FindStringSubmatch(strings.TrimSpace(v.queryText()))
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, v.queryText())
			continue
		}
		out = append(out, dashQuery{where: "variable " + v.Name, expr: m[1], label: m[2]})
	}
	return out
}

// ---- Grafana's variables --------------------------------------------------------------

var (
	matcherRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"`)
	varRefRe   = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)\}?`)
	builtinRes = []struct {
		re   *regexp.Regexp
		with string
	}{
		{regexp.MustCompile(`\[\$\{?__rate_interval\}?\]`), "[5m]"},
		{regexp.MustCompile(`\[\$\{?__interval\}?\]`), "[1m]"},
		{regexp.MustCompile(`\[\$\{?__range\}?\]`), "[1h]"},
	}
)

// substitute replaces Grafana's variables in a PromQL text: the range variables inside a
// range ([$__rate_interval] becomes [5m]) and the dashboard's variables inside label
// matchers, by values[name]. A multi-value variable may stand only in a regular expression
// matcher (Grafana writes it as a|b). Any other $ is an error: Grafana would send it as it is.
func substitute(expr string, vars map[string]dashVar, values map[string]string) (string, error) {
	for _, b := range builtinRes {
		expr = b.re.ReplaceAllString(expr, b.with)
	}
	var errs []string
	expr = matcherRe.ReplaceAllStringFunc(expr, func(m string) string {
		p := matcherRe.FindStringSubmatch(m)
		name, op, val := p[1], p[2], p[3]
		val = varRefRe.ReplaceAllStringFunc(val, func(ref string) string {
			v := varRefRe.FindStringSubmatch(ref)[1]
			dv, ok := vars[v]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: no variable %s", m, v))
				return ref
			}
			if (dv.Multi || dv.IncludeAll) && op != "=~" && op != "!~" {
				errs = append(errs, fmt.Sprintf("%s: %s takes several values, so it needs =~ or !~", m, v))
			}
			return values[v]
		})
		return name + op + `"` + val + `"` // val as written: its escapes stay as they were
	})
	if strings.Contains(expr, "$") {
		errs = append(errs, "a variable outside a label matcher or a range: "+expr)
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return expr, nil
}

func (d *dashboardJSON) vars() map[string]dashVar {
	out := map[string]dashVar{}
	for _, v := range d.Templating.List {
		out[v.Name] = v
	}
	return out
}

// placeholders stand for the variables when a text is only parsed: ".*" for those that
// take several values (always in a regular expression), a name for the others.
func placeholders(vars map[string]dashVar) map[string]string {
	out := map[string]string{}
	for name, v := range vars {
		out[name] = "placeholder"
		if v.Multi || v.IncludeAll {
			out[name] = ".*"
		}
	}
	return out
}

// ---- the worker's metrics -------------------------------------------------------------

type workerMetric struct {
	name, kind string
	labels     []string
	when       string
}

// readWorkerMetrics reads testdata/worker-metrics.txt (name, # TYPE, labels, when).
func readWorkerMetrics(t *testing.T) map[string]workerMetric {
	t.Helper()
	f, err := os.Open(workerMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]workerMetric{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 4 {
			t.Fatalf("%s:%d: want name, type, labels, when: %q", workerMetrics, n, line)
		}
		m := workerMetric{name: fs[0], kind: fs[1], when: fs[3]}
		if fs[2] != "-" {
			m.labels = strings.Split(fs[2], ",")
		}
		if !slices.Contains([]string{"counter", "gauge", "histogram"}, m.kind) {
			t.Fatalf("%s:%d: type %q", workerMetrics, n, m.kind)
		}
		if _, dup := out[m.name]; dup {
			t.Fatalf("%s:%d: %s twice", workerMetrics, n, m.name)
		}
		out[m.name] = m
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no metrics", workerMetrics)
	}
	return out
}

// series is what a selected series name is: the metric it belongs to, its type as a series
// (a histogram's _bucket and _count are counters, so is its _sum) and its labels.
func seriesOf(ms map[string]workerMetric, name string) (workerMetric, bool) {
	if m, ok := ms[name]; ok && m.kind != "histogram" {
		return m, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if m, found := ms[base]; ok && found && m.kind == "histogram" {
			s := workerMetric{name: name, kind: "counter", labels: slices.Clone(m.labels), when: m.when}
			if suffix == "_bucket" {
				s.labels = append(s.labels, "le")
			}
			return s, true
		}
	}
	return workerMetric{}, false
}

// ---- the ConfigMap --------------------------------------------------------------------

func dashboardConfigMaps(r *Rendered) []*corev1.ConfigMap {
	var out []*corev1.ConfigMap
	for _, o := range r.Find("ConfigMap") {
		cm := o.Value.(*corev1.ConfigMap)
		if _, ok := cm.Data[dashboardKey]; ok || o.Name == dashboardCM {
			out = append(out, cm)
		}
	}
	return out
}

// wantDashboardConfigMap: one ConfigMap holding the dashboard file as it is, valid JSON,
// with the chart's labels, the sidecar's label and the annotations asked for.
func wantDashboardConfigMap(t *testing.T, r *Rendered, namespace, label, value string, annotations map[string]string) {
	t.Helper()
	cms := dashboardConfigMaps(r)
	if len(cms) != 1 {
		t.Fatalf("%d dashboard ConfigMaps, want 1", len(cms))
	}
	cm := cms[0]
	if cm.Name != dashboardCM || cm.Namespace != namespace {
		t.Errorf("ConfigMap %s/%s, want %s/%s", cm.Namespace, cm.Name, namespace, dashboardCM)
	}
	if cm.Labels[label] != value {
		t.Errorf("labels %v: want %s=%q", cm.Labels, label, value)
	}
	if cm.Labels["app.kubernetes.io/instance"] != "ss" || cm.Labels["app.kubernetes.io/name"] != "streamscore" {
		t.Errorf("labels %v: the chart's own are missing", cm.Labels)
	}
	if len(cm.Annotations) != len(annotations) {
		t.Errorf("annotations %v, want %v", cm.Annotations, annotations)
	}
	for k, v := range annotations {
		if cm.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, cm.Annotations[k], v)
		}
	}
	if len(cm.Data) != 1 {
		t.Errorf("data keys %d, want %s only", len(cm.Data), dashboardKey)
	}
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	got := cm.Data[dashboardKey]
	if got != strings.TrimRight(string(raw), "\n") {
		t.Errorf("data %s is not %s as it is (%d bytes, file %d)", dashboardKey, dashboardFile, len(got), len(raw))
	}
	var d dashboardJSON
	if err := json.Unmarshal([]byte(got), &d); err != nil || d.UID == "" || len(d.Panels) == 0 {
		t.Errorf("data %s is not a dashboard: %v", dashboardKey, err)
	}
}

// values/dashboard.yaml: the ConfigMap in another namespace, with a folder annotation.
func checkDashboard(t *testing.T, r *Rendered) {
	wantCounts(t, r, map[string]int{"ConfigMap": 2, "ServiceMonitor": 1})
	wantDashboardConfigMap(t, r, "monitoring", "grafana_dashboard", "1", map[string]string{"grafana_folder": "Scoring"})
}

// The dashboard is off by default: neither the chart's defaults nor a value set without
// dashboard.enabled render its ConfigMap; dashboard.enabled alone renders it in the
// release's namespace with grafana_dashboard = "1", and the label is the user's to choose.
func TestDashboardConfigMap(t *testing.T) {
	for _, f := range append([]string{""}, valueSets(t, valuesDir)...) {
		if filepath.Base(f) == "dashboard.yaml" {
			continue
		}
		r, err := Render(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if cms := dashboardConfigMaps(r); len(cms) != 0 {
			t.Errorf("%s: dashboard ConfigMap %s rendered without dashboard.enabled", f, cms[0].Name)
		}
	}
	r, err := Render("", "--set", "dashboard.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	wantDashboardConfigMap(t, r, "scoring", "grafana_dashboard", "1", nil)
	r, err = Render("", "--set", "dashboard.enabled=true", "--set", "dashboard.label=example.com/dashboard",
		"--set", "dashboard.labelValue=streamscore")
	if err != nil {
		t.Fatal(err)
	}
	wantDashboardConfigMap(t, r, "scoring", "example.com/dashboard", "streamscore", nil)
	for _, bad := range [][]string{
		{"--set", "dashboard.label=app.kubernetes.io/name"}, // the chart's own label
		{"--set", "dashboard.label=bad label"},
		{"--set", "dashboard.labelValue=not valid!"},
		{"--set", "dashboard.folder=x"}, // not a key of dashboard
	} {
		if _, err := helm(renderArgs("", append([]string{"--set", "dashboard.enabled=true"}, bad...)...)...); err == nil {
			t.Errorf("%v rendered", bad)
		}
	}
}

// The dashboard's shape: a Prometheus datasource variable that every panel and query uses,
// the namespace, release, mode and model variables, a title and description on every
// panel, unique panel ids and query refIds, panels inside the 24-column grid and not
// overlapping.
func TestDashboardLayout(t *testing.T) {
	d, _ := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	vars := d.vars()
	if ds := vars["datasource"]; ds.Type != "datasource" || strings.Trim(string(ds.Query), `"`) != "prometheus" {
		t.Errorf("variable datasource: %+v, want a prometheus datasource variable", ds)
	}
	for _, name := range []string{"namespace", "release", "mode", "model"} {
		v, ok := vars[name]
		if !ok || v.Type != "query" || v.Datasource == nil || v.Datasource.UID != dashboardDSUID {
			t.Errorf("variable %s: %+v, want a query of ${datasource}", name, v)
		}
		if v.IncludeAll && v.AllValue != ".*" {
			t.Errorf("variable %s: allValue %q, want .* (Grafana's default lists every value it saw)", name, v.AllValue)
		}
	}
	ids := map[int]string{}
	type rect struct {
		title          string
		x0, y0, x1, y1 int
	}
	var rects []rect
	var walk func(ps []dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup || p.ID == 0 {
				t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, prev)
			}
			ids[p.ID] = p.Title
			g := p.GridPos
			if g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
			}
			rects = append(rects, rect{p.Title, g.X, g.Y, g.X + g.W, g.Y + g.H})
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || len(strings.TrimSpace(p.Description)) < 40 {
				t.Errorf("panel %d %q: no title or no description that says what it shows", p.ID, p.Title)
			}
			if p.Datasource == nil || p.Datasource.UID != dashboardDSUID {
				t.Errorf("panel %q: datasource %+v, want uid %s", p.Title, p.Datasource, dashboardDSUID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q: no queries", p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
				if tg.Datasource == nil || tg.Datasource.UID != dashboardDSUID {
					t.Errorf("panel %q %s: datasource %+v, want uid %s", p.Title, tg.RefID, tg.Datasource, dashboardDSUID)
				}
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q %s: no expr", p.Title, tg.RefID)
				}
			}
		}
	}
	walk(d.Panels)
	for i, a := range rects {
		for _, b := range rects[i+1:] {
			if a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 {
				t.Errorf("panels %q and %q overlap", a.title, b.title)
			}
		}
	}
}

// Every query of the dashboard, its variables' included, parses as PromQL once Grafana's
// variables are replaced (matchers =~"$mode" by =~".*", [$__rate_interval] by [5m]), and
// names only what the worker exports (testdata/worker-metrics.txt): its metrics (a
// histogram by its _bucket, _sum or _count), their labels and the scrape's namespace, pod
// and release label; rate() and increase() only of counters, deriv() of gauges.
func TestDashboardExpressionsParse(t *testing.T) {
	d, _ := loadDashboard(t)
	ms := readWorkerMetrics(t)
	vars := d.vars()
	used := map[string]bool{}
	qs := d.queries(t)
	if len(qs) < 20 {
		t.Fatalf("%d queries in the dashboard", len(qs))
	}
	for _, q := range qs {
		text, err := substitute(q.expr, vars, placeholders(vars))
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(text)
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", q.where, text, err)
			continue
		}
		if ty := expr.Type(); ty != parser.ValueTypeVector && ty != parser.ValueTypeScalar {
			t.Errorf("%s: %q is a %s", q.where, text, ty)
		}
		for _, problem := range checkNames(expr, ms, used) {
			t.Errorf("%s: %s\n  in %s", q.where, problem, text)
		}
		if q.label != "" {
			if vs, ok := expr.(*parser.VectorSelector); !ok {
				t.Errorf("%s: label_values of %q, want a series selector", q.where, text)
			} else if m, _ := seriesOf(ms, vs.Name); !slices.Contains(append(slices.Clone(m.labels), scrapeLabels...), q.label) {
				t.Errorf("%s: label_values(%s, %s): %s has no label %s", q.where, vs.Name, q.label, vs.Name, q.label)
			}
		}
	}
	for _, want := range []string{
		"streamscore_records_consumed_total", "streamscore_records_produced_total", "streamscore_records_scored_total",
		"streamscore_records_dead_lettered_total", "streamscore_records_degraded_total",
		"streamscore_event_latency_seconds_bucket", "streamscore_consumer_lag",
		"streamscore_batch_size_bucket", "streamscore_predict_seconds_bucket",
		"streamscore_redis_seconds_bucket", "streamscore_redis_errors_total", "streamscore_redis_reply_errors_total",
		"streamscore_redis_dropped_writes_total", "streamscore_state_store_hits_total",
		"streamscore_state_store_misses_total", "streamscore_state_store_evictions_total",
		"streamscore_model_info", "streamscore_model_reloads_total", "streamscore_rollout_share",
		"streamscore_rollout_rollbacks_total", "streamscore_route_records_total",
		"streamscore_feature_psi", "streamscore_score_psi", "streamscore_score_window_share",
		"streamscore_drift_threshold",
	} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}

// checkNames returns what an expression names that the worker does not export; used
// collects the series names it selects.
func checkNames(expr parser.Expr, ms map[string]workerMetric, used map[string]bool) []string {
	var problems []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			used[n.Name] = true
			m, ok := seriesOf(ms, n.Name)
			if !ok {
				problems = append(problems, fmt.Sprintf("%s is not a series the worker exports", n.Name))
				return nil
			}
			for _, lm := range n.LabelMatchers {
				if lm.Name != labels.MetricName && !slices.Contains(m.labels, lm.Name) && !slices.Contains(scrapeLabels, lm.Name) {
					problems = append(problems, fmt.Sprintf("%s has no label %s", n.Name, lm.Name))
				}
			}
		case *parser.Call:
			for _, a := range n.Args {
				sel, ok := a.(*parser.MatrixSelector)
				if !ok {
					continue
				}
				vs := sel.VectorSelector.(*parser.VectorSelector)
				m, ok := seriesOf(ms, vs.Name)
				if !ok {
					continue
				}
				switch n.Func.Name {
				case "rate", "irate", "increase", "resets":
					if m.kind != "counter" {
						problems = append(problems, fmt.Sprintf("%s() of %s, a %s", n.Func.Name, vs.Name, m.kind))
					}
				case "deriv", "delta", "idelta", "predict_linear":
					if m.kind != "gauge" {
						problems = append(problems, fmt.Sprintf("%s() of %s, a %s", n.Func.Name, vs.Name, m.kind))
					}
				}
			}
		case *parser.AggregateExpr:
			have := labelsBeneath(n.Expr, ms)
			for _, l := range n.Grouping {
				if !have[l] {
					problems = append(problems, fmt.Sprintf("%s by (%s): no series beneath has %s", n.Op, strings.Join(n.Grouping, ", "), l))
				}
			}
		case *parser.BinaryExpr:
			if n.VectorMatching == nil {
				return nil
			}
			have := labelsBeneath(n.RHS, ms)
			lhs := labelsBeneath(n.LHS, ms)
			for _, l := range n.VectorMatching.MatchingLabels {
				if n.VectorMatching.On && (!have[l] || !lhs[l]) {
					problems = append(problems, fmt.Sprintf("on (%s): not a label of both sides", l))
				}
			}
			for _, l := range n.VectorMatching.Include {
				if !have[l] {
					problems = append(problems, fmt.Sprintf("group_left (%s): not a label of the right side", l))
				}
			}
		}
		return nil
	})
	return problems
}

// labelsBeneath: the labels a series under e can have (the worker's, the scrape's, and
// those label_replace or label_join write).
func labelsBeneath(e parser.Node, ms map[string]workerMetric) map[string]bool {
	have := map[string]bool{}
	for _, l := range scrapeLabels {
		have[l] = true
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			if m, ok := seriesOf(ms, n.Name); ok {
				for _, l := range m.labels {
					have[l] = true
				}
			}
		case *parser.Call:
			if (n.Func.Name == "label_replace" || n.Func.Name == "label_join") && len(n.Args) > 1 {
				if s, ok := n.Args[1].(*parser.StringLiteral); ok {
					have[s.Val] = true
				}
			}
		}
		return nil
	})
	return have
}

// Every metric of testdata/worker-metrics.txt is written by the worker's source (the list
// is checked against a running worker by tests/integration/test_dashboard.py).
func TestWorkerMetricsListedAreTheWorkers(t *testing.T) {
	var src strings.Builder
	err := filepath.Walk(filepath.Join(repoRoot, "worker"), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(p, ".c") {
			return err
		}
		b, err := os.ReadFile(p)
		src.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range readWorkerMetrics(t) {
		if !regexp.MustCompile(`\b` + name + `\b`).MatchString(src.String()) {
			t.Errorf("%s is listed in %s, but no file of worker/ writes it", name, workerMetrics)
		}
	}
}

// The release variable's label is on the series: the ServiceMonitor copies the pods'
// app.kubernetes.io/instance (the release's name) as app_kubernetes_io_instance.
func TestDashboardReleaseLabelIsScraped(t *testing.T) {
	d, _ := loadDashboard(t)
	if !strings.Contains(d.vars()["release"].queryText(), releaseLabel) {
		t.Errorf("variable release: %q does not take %s", d.vars()["release"].queryText(), releaseLabel)
	}
	r, err := Render(filepath.Join(valuesDir, "monitoring.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sm := r.Get("ServiceMonitor", full).(*monitoringv1.ServiceMonitor)
	if !slices.Contains(sm.Spec.PodTargetLabels, "app.kubernetes.io/instance") {
		t.Errorf("ServiceMonitor podTargetLabels %v: no app.kubernetes.io/instance", sm.Spec.PodTargetLabels)
	}
	if got := regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString("app.kubernetes.io/instance", "_"); got != releaseLabel {
		t.Errorf("sanitized %s, dashboard %s", got, releaseLabel)
	}
	for _, o := range r.Find("Deployment") {
		if l := deployment(t, r, o.Name).Spec.Template.Labels["app.kubernetes.io/instance"]; l != "ss" {
			t.Errorf("%s: pod label app.kubernetes.io/instance %q, want the release ss", o.Name, l)
		}
	}
}

// ---- the queries over series ----------------------------------------------------------

// scrapedPod is a scrape target of the synthetic series: its pod, namespace, release and mode.
type scrapedPod struct {
	pod, namespace, release, mode string
	ours                          bool // of release ss in namespace scoring
}

var scrapedPods = []scrapedPod{
	{"ss-streamscore-7d9f8c6b5-aaaaa", "scoring", "ss", "primary", true},
	{"ss-streamscore-7d9f8c6b5-bbbbb", "scoring", "ss", "primary", true},
	{"ss-streamscore-shadow-5c4b3a2-ccccc", "scoring", "ss", "shadow", true},
	{"other-streamscore-6f7a8b9c-ddddd", "scoring", "other", "primary", false},
	{"ss-streamscore-7d9f8c6b5-eeeee", "staging", "ss", "primary", false},
}

// exampleValues are label values of the synthetic series (other labels: "x").
var exampleValues = map[string][]string{
	"reason": {"bad_avro", "too_large"}, "error": {"WRONGTYPE", "OOM"}, "result": {"ok", "failed"},
	"topic": {"customer-events"}, "partition": {"0", "1"}, "feature": {"tenure_months", "monthly_charges"},
	"le": {"0.1", "0.5", "+Inf"}, "set": {"window", "training"}, "route": {"live", "canary"},
	"gate": {"error_rate", "drift_psi"}, "outcome": {"joined", "unmatched"},
}

var histogramBounds = []string{"0.5", "1", "+Inf"}

// syntheticSeries are 30 minutes of every listed metric (one sample a minute) of each pod
// that `keep` accepts: counters rising, gauges flat, histograms cumulative, with the scrape's
// target labels; streamscore_model_info names churn 1.0.0 for a primary, 1.1.0 for a shadow.
func syntheticSeries(ms map[string]workerMetric, keep func(scrapedPod) bool) []string {
	names := make([]string, 0, len(ms))
	for n := range ms {
		names = append(names, n)
	}
	sort.Strings(names)
	var lines []string
	k := 0
	for _, p := range scrapedPods {
		if !keep(p) {
			continue
		}
		job := strings.SplitN(p.pod, "-", 3)[0] + "-streamscore"
		if p.mode == "shadow" {
			job += "-shadow"
		}
		target := fmt.Sprintf("namespace=%q,pod=%q,%s=%q,job=%q,instance=\"10.0.0.1:9464\"", p.namespace, p.pod, releaseLabel, p.release, job)
		for _, name := range names {
			m := ms[name]
			if name == "streamscore_model_info" {
				version := map[string]string{"primary": "1.0.0", "shadow": "1.1.0"}[p.mode]
				lines = append(lines, fmt.Sprintf("%s{mode=%q,name=\"churn\",version=%q,%s} 1x29", name, p.mode, version, target))
				continue
			}
			for _, set := range labelSets(m.labels) {
				k++
				slope := 1 + k%7
				sel := strings.Join(append(set, target), ",")
				switch m.kind {
				case "counter":
					lines = append(lines, fmt.Sprintf("%s{%s} 0+%dx29", name, sel, slope))
				case "gauge":
					lines = append(lines, fmt.Sprintf("%s{%s} %dx29", name, sel, slope))
				case "histogram":
					for i, le := range histogramBounds {
						lines = append(lines, fmt.Sprintf("%s_bucket{le=%q,%s} 0+%dx29", name, le, sel, slope*(i+1)))
					}
					lines = append(lines, fmt.Sprintf("%s_sum{%s} 0+%dx29", name, sel, slope),
						fmt.Sprintf("%s_count{%s} 0+%dx29", name, sel, slope*len(histogramBounds)))
				}
			}
		}
	}
	return lines
}

// labelSets is every combination of the example values of the labels, as l="v" texts.
func labelSets(names []string) [][]string {
	sets := [][]string{nil}
	for _, l := range names {
		vals := exampleValues[l]
		if len(vals) == 0 {
			vals = []string{"x"}
		}
		var next [][]string
		for _, s := range sets {
			for _, v := range vals {
				next = append(next, append(slices.Clone(s), fmt.Sprintf("%s=%q", l, v)))
			}
		}
		sets = next
	}
	return sets
}

type evaluator struct {
	t      *testing.T
	engine *promql.Engine
	store  memStorage
}

func newEvaluator(t *testing.T, lines []string) *evaluator {
	e := promql.NewEngine(promql.EngineOpts{MaxSamples: 5e6, Timeout: time.Minute})
	t.Cleanup(func() { _ = e.Close() })
	return &evaluator{t: t, engine: e, store: loadSeries(t, lines)}
}

// at evaluates a query at minute 29 and returns its output, one "labels value" line per series, sorted.
func (e *evaluator) at(text string) ([]string, error) {
	ctx := context.Background()
	q, err := e.engine.NewInstantQuery(ctx, e.store, nil, text, time.Unix(0, 0).Add(29*time.Minute))
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	var out []string
	switch v := res.Value.(type) {
	case promql.Vector:
		for _, s := range v {
			out = append(out, fmt.Sprintf("%s %.6g", s.Metric, s.F))
		}
	case promql.Scalar:
		out = append(out, fmt.Sprintf("%.6g", v.V))
	default:
		return nil, fmt.Errorf("a %s", res.Value.Type())
	}
	sort.Strings(out)
	return out, nil
}

// The queries select the release and nothing else, and show primary and shadow side by
// side: evaluated by Prometheus' engine over synthetic series of every listed metric (two
// primary pods and a shadow of release ss in namespace scoring, plus another release in
// the namespace and release ss in another namespace), each panel query returns series, the
// same ones whether the other two pods are there or not, with a mode label of both modes
// when it has one. The variables' label_values list ss, scoring, both modes and churn; mode
// = shadow leaves only shadow series, and a model no pod serves leaves none.
func TestDashboardQueriesSelectTheRelease(t *testing.T) {
	d, _ := loadDashboard(t)
	ms := readWorkerMetrics(t)
	vars := d.vars()
	ours := newEvaluator(t, syntheticSeries(ms, func(p scrapedPod) bool { return p.ours }))
	all := newEvaluator(t, syntheticSeries(ms, func(scrapedPod) bool { return true }))
	values := map[string]string{"namespace": "scoring", "release": "ss", "mode": ".*", "model": ".*"}
	with := func(k, v string) map[string]string {
		out := map[string]string{}
		for a, b := range values {
			out[a] = b
		}
		out[k] = v
		return out
	}
	modeRe := regexp.MustCompile(`\bmode="([a-z]+)"`)
	for _, q := range d.queries(t) {
		text, err := substitute(q.expr, vars, values)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		if q.label != "" {
			text = fmt.Sprintf("group by (%s) (%s)", q.label, text)
		}
		got, err := all.at(text)
		if err != nil {
			t.Errorf("%s: %q: %v", q.where, text, err)
			continue
		}
		if len(got) == 0 {
			t.Errorf("%s: %q returns nothing", q.where, text)
			continue
		}
		if q.label != "" {
			want := map[string][]string{
				"namespace": {`{namespace="scoring"}`, `{namespace="staging"}`},
				"release":   {`{` + releaseLabel + `="other"}`, `{` + releaseLabel + `="ss"}`},
				"mode":      {`{mode="primary"}`, `{mode="shadow"}`},
				"model":     {`{name="churn"}`},
			}[strings.TrimPrefix(q.where, "variable ")]
			var gotLabels []string
			for _, g := range got {
				gotLabels = append(gotLabels, strings.Fields(g)[0])
			}
			if !slices.Equal(gotLabels, want) {
				t.Errorf("%s: label_values gives %v, want %v", q.where, gotLabels, want)
			}
			continue
		}
		only, err := ours.at(text)
		if err != nil {
			t.Fatalf("%s: %v", q.where, err)
		}
		if !slices.Equal(got, only) {
			t.Errorf("%s: other releases or namespaces change the output:\n  with them: %v\n  without:   %v\n  query: %s", q.where, got, only, text)
		}
		modes := map[string]bool{}
		for _, g := range got {
			if m := modeRe.FindStringSubmatch(g); m != nil {
				modes[m[1]] = true
			}
		}
		if len(modes) > 0 && !(modes["primary"] && modes["shadow"]) {
			t.Errorf("%s: modes %v, want primary and shadow side by side", q.where, modes)
		}
		shadowText, _ := substitute(q.expr, vars, with("mode", "shadow"))
		shadow, err := all.at(shadowText)
		if err != nil {
			t.Fatalf("%s: %v", q.where, err)
		}
		for _, s := range shadow {
			if m := modeRe.FindStringSubmatch(s); m != nil && m[1] != "shadow" {
				t.Errorf("%s: mode=shadow, yet %s", q.where, s)
			}
		}
		noneText, _ := substitute(q.expr, vars, with("model", "no-such-model"))
		if none, err := all.at(noneText); err != nil || len(none) > 0 {
			t.Errorf("%s: model no-such-model, yet %v (%v)", q.where, none, err)
		}
	}
}
