package helmtest

import (
	"path/filepath"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
)

// Every alert expression of the PrometheusRule parses as PromQL, with the default selector
// and with one of the user's own, for the monitoring value set and the rollout one; the
// rollout alerts (rollout.enabled is the default) are among them.
func TestAlertExpressionsParse(t *testing.T) {
	for _, set := range []string{"monitoring.yaml", "rollout.yaml"} {
		for _, extra := range [][]string{
			nil,
			{"--set", `prometheusRule.selector=cluster="eu-1"\,service=~"scoring.*"`},
		} {
			r, err := Render(filepath.Join(valuesDir, set), extra...)
			if err != nil {
				t.Fatal(err)
			}
			rules := r.Find("PrometheusRule")
			if len(rules) != 1 {
				t.Fatalf("%s: %d PrometheusRules, want 1", set, len(rules))
			}
			parsed := map[string]bool{}
			for _, g := range rules[0].Value.(*monitoringv1.PrometheusRule).Spec.Groups {
				for _, rule := range g.Rules {
					expr := rule.Expr.String()
					p, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
					if err != nil {
						t.Errorf("%s %s (%v): %q does not parse: %v", set, rule.Alert, extra, expr, err)
						continue
					}
					if p.Type() != parser.ValueTypeVector {
						t.Errorf("%s %s: %q is a %s, want an instant vector", set, rule.Alert, expr, p.Type())
						continue
					}
					parsed[rule.Alert] = true
				}
			}
			if len(parsed) == 0 {
				t.Fatalf("%s: no rules", set)
			}
			for alert := range rolloutAlerts {
				if !parsed[alert] {
					t.Errorf("%s (%v): no parsed alert %s", set, extra, alert)
				}
			}
		}
	}
}
