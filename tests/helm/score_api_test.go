package helmtest

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

const (
	scoreServiceName = full + "-score"
	scoreTLSDir      = "/etc/streamscore-tls/score"
	scorePrefix      = "score."
	scoreEnvPrefix   = "STREAMSCORE_SCORE_"
)

// scoreProps returns the score.* keys of a component's properties.
func scoreProps(t *testing.T, r *Rendered, name string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range props(t, r, name) {
		if strings.HasPrefix(k, scorePrefix) {
			out[k] = v
		}
	}
	return out
}

// checkCommonScoreAPI: what every rendered Deployment must satisfy (called from checkCommon
// with its properties p). The shadow never serves scores: no score.* key (it refuses
// score.listen), no score port, no STREAMSCORE_SCORE_* variable, no score TLS Secret. The
// primary has the port "score" exactly when its properties have score.listen, on the same
// port; the score API's Service, when rendered, selects the primary's pods only.
func checkCommonScoreAPI(t *testing.T, r *Rendered, d *appsv1.Deployment, p map[string]string) {
	t.Helper()
	c := container(t, d)
	scorePort := port(c, "score")
	if d.Spec.Template.Labels["app.kubernetes.io/component"] != "primary" {
		for k := range p {
			if strings.HasPrefix(k, scorePrefix) {
				t.Errorf("%s: a shadow serves no scores, yet its properties hold %s", d.Name, k)
			}
		}
		if scorePort != nil {
			t.Errorf("%s: a shadow serves no scores, yet container port %+v", d.Name, *scorePort)
		}
		for _, e := range c.Env {
			if strings.HasPrefix(e.Name, scoreEnvPrefix) {
				t.Errorf("%s: a shadow serves no scores, yet variable %s", d.Name, e.Name)
			}
		}
		if volume(d, "score-tls") != nil || mount(c, scoreTLSDir) != nil {
			t.Errorf("%s: a shadow serves no scores, yet it mounts the score API's TLS Secret", d.Name)
		}
		if s, ok := r.Get("Service", scoreServiceName).(*corev1.Service); ok && selects(s.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("Service %s selects the shadow's pods", scoreServiceName)
		}
		return
	}
	listen, on := p["score.listen"]
	switch {
	case on && scorePort == nil:
		t.Errorf("%s: score.listen = %s, but no container port named score", d.Name, listen)
	case !on && scorePort != nil:
		t.Errorf("%s: container port score, but no score.listen", d.Name)
	case on && listen != fmt.Sprintf("0.0.0.0:%d", scorePort.ContainerPort):
		t.Errorf("%s: score.listen = %s, want 0.0.0.0:%d (the container port score)", d.Name, listen, scorePort.ContainerPort)
	}
	if s, ok := r.Get("Service", scoreServiceName).(*corev1.Service); ok {
		if scorePort == nil {
			t.Errorf("Service %s, but the primary has no container port score", scoreServiceName)
		}
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "score" || s.Spec.Ports[0].TargetPort.String() != "score" {
			t.Errorf("Service %s: want one port named score targeting score: %+v", s.Name, s.Spec.Ports)
		}
		if !selects(s.Spec.Selector, d.Spec.Template.Labels) {
			t.Errorf("Service %s does not select the primary's pods (%v)", s.Name, s.Spec.Selector)
		}
	}
}

// values/score-api.yaml: the primary serves the score API on port 9470 with its threads,
// connections, token and TLS files, behind a Service; the shadow serves none.
func checkScoreAPI(t *testing.T, r *Rendered) {
	wantCounts(t, r, map[string]int{"Deployment": 2, "Service": 3, "ConfigMap": 2})
	d := deployment(t, r, full)
	c := container(t, d)
	if p := port(c, "score"); p == nil || p.ContainerPort != 9470 || p.Protocol != corev1.ProtocolTCP {
		t.Errorf("container port score %+v, want 9470/TCP", p)
	}
	if p := port(c, "metrics"); p == nil || p.ContainerPort != 9464 {
		t.Errorf("container port metrics %+v, want 9464", p)
	}
	want := map[string]string{
		"score.listen":             "0.0.0.0:9470",
		"score.threads":            "4",
		"score.max.connections":    "128",
		"score.tls.cert.file":      scoreTLSDir + "/tls.crt",
		"score.tls.key.file":       scoreTLSDir + "/tls.key",
		"score.tls.client.ca.file": scoreTLSDir + "/clients-ca.crt",
	}
	got := scoreProps(t, r, full)
	wantProps(t, got, want)
	if len(got) != len(want) {
		t.Errorf("score keys %v, want %v (the token never goes in the properties)", got, want)
	}
	wantSecretEnv(t, full, c, map[string][2]string{
		"STREAMSCORE_SCORE_TOKEN":    {"streamscore-score-token", "bearer"},
		"STREAMSCORE_REDIS_PASSWORD": {"redis", "redis-password"},
	})
	wantSecretMounts(t, d, map[string]string{scoreTLSDir: "streamscore-score-tls"})
	// readiness stays the worker's own
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Port.String() != "metrics" {
		t.Errorf("readiness probe %+v, want /readyz on metrics", c.ReadinessProbe)
	}
	// the shadow: its Secrets, none of the score API's (checkCommonScoreAPI checks the rest)
	sc := container(t, deployment(t, r, shadowName))
	wantSecretEnv(t, shadowName, sc, map[string][2]string{"STREAMSCORE_REDIS_PASSWORD": {"redis", "redis-password"}})
	if got := scoreProps(t, r, shadowName); len(got) > 0 {
		t.Errorf("the shadow's properties hold %v", got)
	}
	// the Service
	s, _ := r.Get("Service", scoreServiceName).(*corev1.Service)
	if s == nil {
		t.Fatalf("no Service %s", scoreServiceName)
	}
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.Spec.Ports[0].Port != 443 || s.Spec.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("Service %s: type %s, ports %+v; want LoadBalancer, 443/TCP", s.Name, s.Spec.Type, s.Spec.Ports)
	}
	if s.Annotations["networking.gke.io/load-balancer-type"] != "Internal" {
		t.Errorf("Service %s: annotations %v", s.Name, s.Annotations)
	}
	if s.Spec.Selector["app.kubernetes.io/component"] != "primary" || s.Spec.Selector["app.kubernetes.io/instance"] != "ss" {
		t.Errorf("Service %s: selector %v", s.Name, s.Spec.Selector)
	}
	// the metrics Services keep their one port
	for _, name := range []string{full, shadowName} {
		if ms := r.Get("Service", name).(*corev1.Service); len(ms.Spec.Ports) != 1 || ms.Spec.Ports[0].Name != "metrics" {
			t.Errorf("Service %s: ports %+v, want metrics only", name, ms.Spec.Ports)
		}
	}

	base := filepath.Join(valuesDir, "score-api.yaml")
	render := func(t *testing.T, args ...string) *Rendered {
		t.Helper()
		rr, err := Render(base, args...)
		if err != nil {
			t.Fatal(err)
		}
		checkCommon(t, rr)
		return rr
	}
	t.Run("without its Service", func(t *testing.T) {
		rr := render(t, "--set", "scoreApi.service.enabled=false")
		if rr.Get("Service", scoreServiceName) != nil {
			t.Errorf("scoreApi.service.enabled is false, yet Service %s", scoreServiceName)
		}
		if port(container(t, deployment(t, rr, full)), "score") == nil {
			t.Error("no container port score")
		}
	})
	t.Run("plain HTTP without a token", func(t *testing.T) {
		rr := render(t, "--set", "scoreApi.tls.secretName=", "--set", "scoreApi.token.name=")
		d := deployment(t, rr, full)
		c := container(t, d)
		got := scoreProps(t, rr, full)
		wantProps(t, got, map[string]string{"score.listen": "0.0.0.0:9470", "score.threads": "4", "score.max.connections": "128"})
		if len(got) != 3 {
			t.Errorf("score keys %v: no TLS file without scoreApi.tls.secretName", got)
		}
		if env(c, "STREAMSCORE_SCORE_TOKEN") != nil {
			t.Error("STREAMSCORE_SCORE_TOKEN without scoreApi.token.name")
		}
		if mount(c, scoreTLSDir) != nil || volume(d, "score-tls") != nil {
			t.Error("the score API's TLS Secret mounted without scoreApi.tls.secretName")
		}
	})
	t.Run("HTTPS without client certificates, at a mount of its own", func(t *testing.T) {
		rr := render(t, "--set", "scoreApi.tls.clientCaKey=", "--set", "scoreApi.tls.mountPath=/etc/tls/score/")
		got := scoreProps(t, rr, full)
		wantProps(t, got, map[string]string{"score.tls.cert.file": "/etc/tls/score/tls.crt", "score.tls.key.file": "/etc/tls/score/tls.key"})
		if _, ok := got["score.tls.client.ca.file"]; ok {
			t.Errorf("score.tls.client.ca.file without scoreApi.tls.clientCaKey: %v", got)
		}
		wantSecretMounts(t, deployment(t, rr, full), map[string]string{"/etc/tls/score/": "streamscore-score-tls"})
	})
	t.Run("defaults of the values", func(t *testing.T) {
		rr, err := Render(filepath.Join(valuesDir, "defaults.yaml"), "--set", "scoreApi.enabled=true", "--set", "scoreApi.service.enabled=true")
		if err != nil {
			t.Fatal(err)
		}
		checkCommon(t, rr)
		wantProps(t, scoreProps(t, rr, full), map[string]string{"score.listen": "0.0.0.0:9465", "score.threads": "2", "score.max.connections": "64"})
		s := rr.Get("Service", scoreServiceName).(*corev1.Service)
		if s.Spec.Type != corev1.ServiceTypeClusterIP || s.Spec.Ports[0].Port != 9465 || len(s.Annotations) != 0 {
			t.Errorf("Service %s: %+v", s.Name, s.Spec)
		}
	})
	t.Run("the primary alone rolls", func(t *testing.T) {
		off, err := Render(base, "--set", "scoreApi.enabled=false", "--set", "scoreApi.service.enabled=false",
			"--set", "scoreApi.tls.secretName=", "--set", "scoreApi.token.name=")
		if err != nil {
			t.Fatal(err)
		}
		sum := func(r *Rendered, name string) string {
			return deployment(t, r, name).Spec.Template.Annotations["checksum/config"]
		}
		if sum(off, full) == sum(r, full) {
			t.Error("enabling the score API left the primary's checksum/config as it was: the pods would not roll")
		}
		if sum(off, shadowName) != sum(r, shadowName) {
			t.Error("enabling the score API changed the shadow's properties")
		}
	})
}
