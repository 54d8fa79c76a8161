package helmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

const (
	candidateDir  = "/models/candidate"
	rolloutTopic  = full + "-rollout"
	candidateCM   = full + "-candidate-model"
	rolloutPrefix = "rollout."
)

// rolloutAlerts are the PrometheusRule's rollout alerts and what each expression holds.
var rolloutAlerts = map[string][]string{
	"StreamscoreRolloutTriggered":        {"max by (job, gate) (streamscore_rollout_triggered{", "> 0"},
	"StreamscoreRolloutRolledBack":       {"sum by (job, gate) (increase(streamscore_rollout_rollbacks_total{", "}[10m]))", "> 0"},
	"StreamscoreRolloutCandidateRefused": {"sum by (job, reason) (increase(streamscore_rollout_candidate_refused_total{", "}[10m]))", "> 0"},
}

// alertRules returns the rendered PrometheusRule's rules by alert name (none without one).
func alertRules(t *testing.T, r *Rendered) map[string]monitoringv1.Rule {
	t.Helper()
	rules := map[string]monitoringv1.Rule{}
	for _, o := range r.Find("PrometheusRule") {
		for _, g := range o.Value.(*monitoringv1.PrometheusRule).Spec.Groups {
			for _, rule := range g.Rules {
				rules[rule.Alert] = rule
			}
		}
	}
	return rules
}

// rolloutProps returns the rollout.* keys of a component's properties.
func rolloutProps(t *testing.T, r *Rendered, name string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range props(t, r, name) {
		if strings.HasPrefix(k, rolloutPrefix) {
			out[k] = v
		}
	}
	return out
}

// wantCandidateMount: the primary mounts the whole candidate volume read-only at
// /models/candidate; the shadow mounts no candidate and has no volume of it.
func wantCandidateMount(t *testing.T, r *Rendered, check func(d *appsv1.Deployment, m string)) {
	t.Helper()
	d := deployment(t, r, full)
	m := mount(container(t, d), candidateDir)
	if m == nil || !m.ReadOnly || m.SubPath != "" {
		t.Fatalf("%s: want a read-only mount of the whole candidate volume at %s, got %+v", full, candidateDir, m)
	}
	if volume(d, m.Name) == nil {
		t.Fatalf("%s: no volume %s for %s", full, m.Name, candidateDir)
	}
	check(d, m.Name)
	if r.Get("Deployment", shadowName) != nil {
		sd := deployment(t, r, shadowName)
		if mount(container(t, sd), candidateDir) != nil || volume(sd, m.Name) != nil {
			t.Errorf("%s: the shadow mounts the rollout's candidate", shadowName)
		}
	}
}

// checkRollout: the primary gets the control topic, the config's rollout keys and the
// candidate's ConfigMap at /models/candidate; the shadow none of them; the rollout alerts
// select the release's jobs.
func checkRollout(t *testing.T, r *Rendered) {
	wantCounts(t, r, map[string]int{"Deployment": 2, "ConfigMap": 3, "PrometheusRule": 1})
	wantProps(t, props(t, r, full), map[string]string{
		"mode":                        "primary",
		"rollout.topic":               rolloutTopic,
		"rollout.steps":               "0.05,0.25,1",
		"rollout.auto.progress":       "true",
		"rollout.step.hold.ms":        "900000",
		"rollout.gate.error.rate":     "0.02",
		"rollout.gate.latency.p95.ms": "300",
		"rollout.labels.topic":        "churn-labels",
		// the live model is still the configured one
		"model.path": "/opt/streamscore/models/churn-1.0.0.json",
	})
	if got := rolloutProps(t, r, shadowName); len(got) > 0 {
		t.Errorf("%s: a shadow runs no rollout, yet its properties hold %v", shadowName, got)
	}
	wantProps(t, props(t, r, shadowName), map[string]string{"mode": "shadow", "input.topic": "customer-events"})

	cm := configMap(t, r, candidateCM)
	if cm.Data["candidate.json"] == "" || cm.Data["candidate.card.json"] != `{"name": "churn", "version": "1.1.0"}` || len(cm.Data) != 2 {
		t.Errorf("candidate ConfigMap data %v, want candidate.json and candidate.card.json", cm.Data)
	}
	wantCandidateMount(t, r, func(d *appsv1.Deployment, name string) {
		v := volume(d, name)
		if v.ConfigMap == nil || v.ConfigMap.Name != candidateCM || len(v.ConfigMap.Items) != 0 {
			t.Errorf("%s: candidate volume %+v, want all of ConfigMap %s", d.Name, v, candidateCM)
		}
	})
	for k := range deployment(t, r, full).Spec.Template.Annotations {
		if strings.Contains(k, "candidate") || strings.Contains(k, "model") {
			t.Errorf("%s: pod annotation %s would roll the pods on a candidate change", full, k)
		}
	}

	rules := alertRules(t, r)
	for alert, parts := range rolloutAlerts {
		rule, ok := rules[alert]
		if !ok {
			t.Errorf("no alert %s", alert)
			continue
		}
		expr := rule.Expr.String()
		for _, part := range append(parts, `{namespace="scoring",job=~"ss-streamscore|ss-streamscore-shadow"}`) {
			if !strings.Contains(expr, part) {
				t.Errorf("%s: expr %q lacks %q", alert, expr, part)
			}
		}
		if rule.For == nil || string(*rule.For) != "0m" {
			t.Errorf("%s: for %v, want 0m (the worker applies rollout.gate.for.ms; the rest are events)", alert, rule.For)
		}
		if rule.Annotations["summary"] == "" || rule.Annotations["description"] == "" {
			t.Errorf("%s: annotations %v, want a summary and a description", alert, rule.Annotations)
		}
	}
	if got := rules["StreamscoreRolloutTriggered"].Labels["severity"]; got != "critical" {
		t.Errorf("StreamscoreRolloutTriggered severity %q, want critical (from the values)", got)
	}
	if got := rules["StreamscoreRolloutRolledBack"].Labels["severity"]; got != "warning" {
		t.Errorf("StreamscoreRolloutRolledBack severity %q, want warning (the default)", got)
	}
}

// rollout.enabled false: no control topic, no candidate mount or ConfigMap, no rollout alerts;
// the other alerts stay. Each rollout alert can be switched off on its own.
func TestRolloutDisabled(t *testing.T) {
	f := filepath.Join(valuesDir, "rollout.yaml")
	r, err := Render(f, "--set", "rollout.enabled=false")
	if err != nil {
		t.Fatal(err)
	}
	checkCommon(t, r)
	for _, name := range []string{full, shadowName} {
		wantNoProps(t, name, props(t, r, name), "rollout.topic")
		d := deployment(t, r, name)
		if mount(container(t, d), candidateDir) != nil || volume(d, "candidate") != nil {
			t.Errorf("%s: rollout disabled, yet the candidate is mounted", name)
		}
	}
	if r.Get("ConfigMap", candidateCM) != nil {
		t.Errorf("rollout disabled, yet ConfigMap %s rendered", candidateCM)
	}
	rules := alertRules(t, r)
	for alert := range rolloutAlerts {
		if _, ok := rules[alert]; ok {
			t.Errorf("rollout disabled, yet alert %s rendered", alert)
		}
	}
	if _, ok := rules["StreamscoreHighLatency"]; !ok {
		t.Error("rollout disabled removed the other alerts too")
	}

	for alert, value := range map[string]string{
		"StreamscoreRolloutTriggered":        "rolloutTriggered",
		"StreamscoreRolloutRolledBack":       "rolloutRolledBack",
		"StreamscoreRolloutCandidateRefused": "rolloutCandidateRefused",
	} {
		r, err := Render(f, "--set", "prometheusRule.alerts."+value+".enabled=false")
		if err != nil {
			t.Fatal(err)
		}
		rules := alertRules(t, r)
		for other := range rolloutAlerts {
			if _, ok := rules[other]; ok == (other == alert) {
				t.Errorf("prometheusRule.alerts.%s.enabled=false: alert %s rendered: %v", value, other, ok)
			}
		}
	}
}

// The control topic: "<fullname>-rollout" by default (with fullnameOverride too), or the one
// config names; the shadow never gets it, even with a topic in config.
func TestRolloutTopic(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, rolloutTopic},
		{[]string{"--set", "config.rollout\\.topic=scoring.rollout", "--set", "config.rollout\\.id=eu-1"}, "scoring.rollout"},
		{[]string{"--set", "fullnameOverride=churn"}, "churn-rollout"},
	} {
		r, err := Render("", append([]string{"--set", "shadow.enabled=true"}, c.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		checkCommon(t, r)
		primary, shadow := full, shadowName
		if c.want == "churn-rollout" {
			primary, shadow = "churn", "churn-shadow"
		}
		wantProps(t, props(t, r, primary), map[string]string{"rollout.topic": c.want})
		if got := rolloutProps(t, r, shadow); len(got) > 0 {
			t.Errorf("%v: the shadow's properties hold %v", c.args, got)
		}
	}
	// the checksum: the topic is in the properties, so enabling rollout rolls the primary only
	on, err := Render("", "--set", "shadow.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	off, err := Render("", "--set", "shadow.enabled=true", "--set", "rollout.enabled=false")
	if err != nil {
		t.Fatal(err)
	}
	sum := func(r *Rendered, name string) string {
		return deployment(t, r, name).Spec.Template.Annotations["checksum/config"]
	}
	if sum(on, full) == sum(off, full) || sum(on, shadowName) != sum(off, shadowName) {
		t.Error("rollout.enabled must change the primary's properties only")
	}
}

// The candidate's other sources: an existing ConfigMap (none created), a volume, and none
// (nothing mounted: a candidate inside the image). A new candidate in the chart's ConfigMap
// leaves the pods' checksum as it was.
func TestCandidateSources(t *testing.T) {
	t.Run("existing ConfigMap", func(t *testing.T) {
		r, err := Render("", "--set", "shadow.enabled=true", "--set", "rollout.candidate.source=configMap",
			"--set", "rollout.candidate.configMap.name=churn-candidate")
		if err != nil {
			t.Fatal(err)
		}
		checkCommon(t, r)
		if r.Get("ConfigMap", candidateCM) != nil {
			t.Errorf("an existing ConfigMap is named, yet the chart created %s", candidateCM)
		}
		wantCandidateMount(t, r, func(d *appsv1.Deployment, name string) {
			if v := volume(d, name); v.ConfigMap == nil || v.ConfigMap.Name != "churn-candidate" {
				t.Errorf("candidate volume %+v, want ConfigMap churn-candidate", v)
			}
		})
	})
	t.Run("volume", func(t *testing.T) {
		r, err := Render(filepath.Join(valuesDir, "model-volume.yaml"), "--set", "rollout.candidate.source=volume",
			"--set", "rollout.candidate.file=candidate/model.json",
			"--set", "rollout.candidate.volume.persistentVolumeClaim.claimName=streamscore-models",
			"--set", "rollout.candidate.volume.persistentVolumeClaim.readOnly=true")
		if err != nil {
			t.Fatal(err)
		}
		checkCommon(t, r)
		wantCandidateMount(t, r, func(d *appsv1.Deployment, name string) {
			v := volume(d, name)
			if v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "streamscore-models" {
				t.Errorf("candidate volume %+v, want the PVC streamscore-models", v)
			}
			if name == "model" {
				t.Error("the candidate shares the model's volume name")
			}
		})
		if m := mount(container(t, deployment(t, r, full)), "/var/lib/streamscore/model"); m == nil {
			t.Error("the candidate's mount replaced the model's")
		}
	})
	t.Run("none", func(t *testing.T) {
		r, err := Render("")
		if err != nil {
			t.Fatal(err)
		}
		d := deployment(t, r, full)
		if mount(container(t, d), candidateDir) != nil || volume(d, "candidate") != nil {
			t.Error("rollout.candidate.source none, yet a candidate is mounted")
		}
		wantProps(t, props(t, r, full), map[string]string{"rollout.topic": rolloutTopic})
	})
	t.Run("new candidate content", func(t *testing.T) {
		f := filepath.Join(valuesDir, "rollout.yaml")
		base, err := Render(f)
		if err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(t.TempDir(), "candidate.json")
		if err := os.WriteFile(other, []byte(`{"another": "candidate"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		changed, err := Render(f, "--set-file", "rollout.candidate.configMap.model="+other)
		if err != nil {
			t.Fatal(err)
		}
		if configMap(t, base, candidateCM).Data["candidate.json"] == configMap(t, changed, candidateCM).Data["candidate.json"] {
			t.Fatal("the candidate ConfigMap did not change")
		}
		for _, name := range []string{full, shadowName} {
			if deployment(t, base, name).Spec.Template.Annotations["checksum/config"] !=
				deployment(t, changed, name).Spec.Template.Annotations["checksum/config"] {
				t.Errorf("%s: a new candidate changed checksum/config: the pods would restart", name)
			}
		}
	})
}
