package helmtest

import (
	"path/filepath"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
)

// Every alert expression of the PrometheusRule parses as PromQL, with the default selector
// and with one of the user's own.
func TestAlertExpressionsParse(t *testing.T) {
	for _, extra := range [][]string{
		nil,
		{"--set", `prometheusRule.selector=cluster="eu-1"\,service=~"scoring.*"`},
	} {
		r, err := Render(filepath.Join(valuesDir, "monitoring.yaml"), extra...)
		if err != nil {
			t.Fatal(err)
		}
		rules := r.Find("PrometheusRule")
		if len(rules) != 1 {
			t.Fatalf("%d PrometheusRules, want 1", len(rules))
		}
		n := 0
		for _, g := range rules[0].Value.(*monitoringv1.PrometheusRule).Spec.Groups {
			for _, rule := range g.Rules {
				n++
				expr := rule.Expr.String()
				parsed, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
				if err != nil {
					t.Errorf("%s (%v): %q does not parse: %v", rule.Alert, extra, expr, err)
					continue
				}
				if parsed.Type() != parser.ValueTypeVector {
					t.Errorf("%s: %q is a %s, want an instant vector", rule.Alert, expr, parsed.Type())
				}
			}
		}
		if n == 0 {
			t.Fatal("no rules")
		}
	}
}
