package helmtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

const (
	full       = "ss-streamscore" // release "ss", chart "streamscore"
	shadowName = full + "-shadow"
	propsKey   = "streamscore.properties"
)

// checks holds what each value set in values/ must render, beyond strict decoding.
var checks = map[string]func(t *testing.T, r *Rendered){
	"defaults.yaml":         checkDefaults,
	"shadow.yaml":           checkShadow,
	"keda.yaml":             checkKeda,
	"hpa.yaml":              checkHPA,
	"monitoring.yaml":       checkMonitoring,
	"secrets.yaml":          checkSecrets,
	"model-volume.yaml":     checkModelVolume,
	"model-image.yaml":      checkModelImage,
	"model-configmap.yaml":  checkModelConfigMap,
	"schema-registry.yaml":  checkSchemaRegistry,
	"managed-services.yaml": checkManagedServices,
	"rollout.yaml":          checkRollout,
	"score-file.yaml":       checkScoreFile,
	"dashboard.yaml":        checkDashboard,
	"score-api.yaml":        checkScoreAPI,
}

func valueSets(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no value sets in %s (%v)", dir, err)
	}
	sort.Strings(files)
	return files
}

func TestHelmAvailable(t *testing.T) {
	out, err := helm("version", "--short")
	if err != nil {
		t.Fatalf("%v (scripts/setup installs helm into .deps/bin)", err)
	}
	t.Logf("helm %s", strings.TrimSpace(out))
}

// helm lint --strict passes for every value set (the chart's own defaults included).
func TestLintStrict(t *testing.T) {
	for _, f := range append([]string{""}, valueSets(t, valuesDir)...) {
		name := filepath.Base(f)
		if f == "" {
			name = "chart defaults"
		}
		t.Run(name, func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir, "--namespace", "scoring"}
			if f != "" {
				args = append(args, "-f", f)
			}
			if out, err := helm(args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

// Every value set renders, every object decodes strictly into its API type, and the
// set's own checks pass.
func TestRenderValueSets(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range valueSets(t, valuesDir) {
		name := filepath.Base(f)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			check, ok := checks[name]
			if !ok {
				t.Fatalf("no checks for %s: add them to the checks table", name)
			}
			r, err := Render(f)
			if err != nil {
				t.Fatal(err)
			}
			checkCommon(t, r)
			check(t, r)
		})
	}
	for name := range checks {
		if !seen[name] {
			t.Errorf("checks for %s, but no values/%s", name, name)
		}
	}
}

// Every value set in values/fail/ fails to render, with the message its first line names
// ("# expect: ...").
func TestInvalidValueSetsFail(t *testing.T) {
	for _, f := range valueSets(t, filepath.Join(valuesDir, "fail")) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`(?m)^# expect: (.+)$`).FindSubmatch(src)
			if m == nil {
				t.Fatalf("%s: no '# expect: MESSAGE' line", f)
			}
			want := strings.TrimSpace(string(m[1]))
			out, err := helm(renderArgs(f)...)
			if err == nil {
				t.Fatalf("rendered, but should fail with %q:\n%s", want, out)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("failed, but without %q: %v", want, err)
			}
		})
	}
}

// The pods roll when the properties change, and only then: the model ConfigMap's content
// is hot-reloaded by the worker and must not change the pod template.
func TestConfigChecksum(t *testing.T) {
	f := filepath.Join(valuesDir, "model-configmap.yaml")
	base, err := Render(f)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "model.json")
	if err := os.WriteFile(other, []byte(`{"another": "model"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	newModel, err := Render(f, "--set-file", "model.configMap.model="+other,
		"--set", "shadow.model.configMap.name=another-candidate")
	if err != nil {
		t.Fatal(err)
	}
	newConfig, err := Render(f, "--set", "config.batch\\.max\\.messages=512")
	if err != nil {
		t.Fatal(err)
	}
	newShadowConfig, err := Render(f, "--set", "shadow.config.batch\\.max\\.messages=64")
	if err != nil {
		t.Fatal(err)
	}
	sum := func(r *Rendered, name string) string {
		return deployment(t, r, name).Spec.Template.Annotations["checksum/config"]
	}
	model := func(r *Rendered) string { return configMap(t, r, full+"-model").Data["model.json"] }
	if model(base) == model(newModel) {
		t.Fatal("the model ConfigMap did not change")
	}
	if sum(base, full) != sum(newModel, full) {
		t.Error("a new model in the model ConfigMap changed the primary's checksum/config: the pods would restart instead of reloading")
	}
	if sum(base, shadowName) != sum(newModel, shadowName) {
		t.Error("a shadow model ConfigMap change changed the shadow's checksum/config")
	}
	if sum(base, full) == sum(newConfig, full) {
		t.Error("a config change left the primary's checksum/config as it was: the pods would not roll")
	}
	if sum(base, shadowName) == sum(newConfig, shadowName) {
		t.Error("a config change left the shadow's checksum/config as it was (the shadow inherits config)")
	}
	if sum(base, full) != sum(newShadowConfig, full) || sum(base, shadowName) == sum(newShadowConfig, shadowName) {
		t.Error("a shadow.config change must roll the shadow only")
	}
}

// A misspelled, wrongly cased or duplicated field in a rendered object is rejected by the
// strict decoding, for every kind the chart renders.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	r, err := Render(filepath.Join(valuesDir, "monitoring.yaml"), "--set", "autoscaling.keda.enabled=true")
	if err != nil {
		t.Fatal(err)
	}
	hpa, err := Render(filepath.Join(valuesDir, "hpa.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string][]byte{}
	for _, o := range append(r.Objects, hpa.Objects...) {
		if _, ok := docs[o.Kind]; !ok {
			docs[o.Kind] = o.Raw
		}
	}
	cases := []struct{ kind, from, to, why string }{
		{"Deployment", "readinessProbe:", "readinesProbe:", "misspelled container field"},
		{"Deployment", "revisionHistoryLimit:", "RevisionHistoryLimit:", "wrongly cased field"},
		{"Deployment", "  strategy:", "  stratgy:", "misspelled spec field"},
		{"Deployment", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: true\n            readOnlyRootFileSystem: true", "misspelled securityContext field"},
		{"Service", "targetPort:", "targetport:", "wrongly cased port field"},
		{"ConfigMap", "\ndata:", "\ndatas:", "misspelled top-level field"},
		{"ServiceAccount", "automountServiceAccountToken:", "automountToken:", "values name used as field"},
		{"PodDisruptionBudget", "maxUnavailable:", "maxUnavaliable:", "misspelled spec field"},
		{"HorizontalPodAutoscaler", "averageValue:", "averagevalue:", "wrongly cased target field"},
		{"HorizontalPodAutoscaler", "stabilizationWindowSeconds:", "stabilisationWindowSeconds:", "misspelled behavior field"},
		{"ScaledObject", "maxReplicaCount:", "maxReplicasCount:", "misspelled ScaledObject field"},
		{"ScaledObject", "pollingInterval:", "pollingInterval: 30\n  pollingInterval:", "duplicated key"},
		{"ServiceMonitor", "scrapeTimeout:", "scrapeTimout:", "misspelled endpoint field"},
		{"PrometheusRule", "- alert:", "- alerts:", "misspelled rule field"},
		{"PrometheusRule", "annotations:", "anotations:", "misspelled rule field"},
	}
	for _, c := range cases {
		t.Run(c.kind+" "+c.why, func(t *testing.T) {
			doc, ok := docs[c.kind]
			if !ok {
				t.Fatalf("no %s rendered", c.kind)
			}
			if _, err := DecodeStrict(doc); err != nil {
				t.Fatalf("the unmodified %s does not decode: %v", c.kind, err)
			}
			bad := strings.Replace(string(doc), c.from, c.to, 1)
			if bad == string(doc) {
				t.Fatalf("%q not found in the rendered %s", c.from, c.kind)
			}
			_, err := DecodeStrict([]byte(bad))
			if err == nil {
				t.Fatalf("%s with %q instead of %q decoded without error", c.kind, c.to, c.from)
			}
			t.Logf("rejected: %v", err)
		})
	}
	// A value of the wrong type is rejected too (KEDA trigger metadata is map[string]string).
	bad := strings.Replace(string(docs["ScaledObject"]), `lagThreshold: "1000"`, "lagThreshold: 1000", 1)
	if _, err := DecodeStrict([]byte(bad)); err == nil || bad == string(docs["ScaledObject"]) {
		t.Errorf("an unquoted lagThreshold decoded without error: %v", err)
	}
}

// ---- helpers ---------------------------------------------------------------------------

func deployment(t *testing.T, r *Rendered, name string) *appsv1.Deployment {
	t.Helper()
	d, _ := r.Get("Deployment", name).(*appsv1.Deployment)
	if d == nil {
		t.Fatalf("no Deployment %s", name)
	}
	return d
}

func configMap(t *testing.T, r *Rendered, name string) *corev1.ConfigMap {
	t.Helper()
	c, _ := r.Get("ConfigMap", name).(*corev1.ConfigMap)
	if c == nil {
		t.Fatalf("no ConfigMap %s", name)
	}
	return c
}

// props parses the rendered streamscore.properties of a component.
func props(t *testing.T, r *Rendered, name string) map[string]string {
	t.Helper()
	text := configMap(t, r, name+"-config").Data[propsKey]
	p := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if !ok {
			t.Fatalf("%s: line %q is not 'key = value'", name, line)
		}
		if _, dup := p[k]; dup {
			t.Fatalf("%s: key %s twice", name, k)
		}
		p[k] = v
	}
	return p
}

func wantProps(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("property %s = %q, want %q", k, got[k], v)
		}
	}
}

func container(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "streamscore" {
		t.Fatalf("%s: want one container named streamscore, got %d", d.Name, len(cs))
	}
	return cs[0]
}

func mount(c corev1.Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func volume(d *appsv1.Deployment, name string) *corev1.Volume {
	for i := range d.Spec.Template.Spec.Volumes {
		if d.Spec.Template.Spec.Volumes[i].Name == name {
			return &d.Spec.Template.Spec.Volumes[i]
		}
	}
	return nil
}

func port(c corev1.Container, name string) *corev1.ContainerPort {
	for i := range c.Ports {
		if c.Ports[i].Name == name {
			return &c.Ports[i]
		}
	}
	return nil
}

func env(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// qty is a resource quantity as text ("" when absent).
func qty(rl corev1.ResourceList, name corev1.ResourceName) string {
	q, ok := rl[name]
	if !ok {
		return ""
	}
	return q.String()
}

func count(r *Rendered, kind string) int { return len(r.Find(kind)) }

func wantCounts(t *testing.T, r *Rendered, want map[string]int) {
	t.Helper()
	for kind, n := range want {
		if got := count(r, kind); got != n {
			t.Errorf("%d %s objects, want %d", got, kind, n)
		}
	}
}

// ---- what every rendering must satisfy -------------------------------------------------

func checkCommon(t *testing.T, r *Rendered) {
	for _, o := range r.Find("Deployment") {
		d := o.Value.(*appsv1.Deployment)
		c := container(t, d)
		ps := d.Spec.Template.Spec
		// restrictive security context
		psc := ps.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 10001 ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod securityContext not runAsNonRoot / runAsUser 10001 / seccomp RuntimeDefault: %+v", d.Name, psc)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" ||
			sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s: container securityContext not read-only root / no escalation / drop ALL: %+v", d.Name, sc)
		}
		if m := mount(c, "/tmp"); m == nil || volume(d, m.Name) == nil || volume(d, m.Name).EmptyDir == nil {
			t.Errorf("%s: no emptyDir at /tmp", d.Name)
		}
		if ps.EnableServiceLinks == nil || *ps.EnableServiceLinks {
			t.Errorf("%s: enableServiceLinks must be false (service links add STREAMSCORE_* variables)", d.Name)
		}
		// probes and ports: metrics, and the score API's on the primary only
		metricsPort := port(c, "metrics")
		if metricsPort == nil || len(c.Ports) > 2 || (len(c.Ports) == 2 && port(c, "score") == nil) {
			t.Fatalf("%s: want a container port named metrics (and score on the primary), got %+v", d.Name, c.Ports)
		}
		for probe, path := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
			if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != "metrics" {
				t.Errorf("%s: want an HTTP probe of %s on port metrics, got %+v", d.Name, path, probe)
			}
		}
		if strings.Join(c.Args, " ") != "run -c /etc/streamscore/streamscore.properties" {
			t.Errorf("%s: args %q", d.Name, c.Args)
		}
		// the properties: mounted, checksummed, listening on the container port
		cfgMount := mount(c, "/etc/streamscore")
		if cfgMount == nil || !cfgMount.ReadOnly {
			t.Fatalf("%s: no read-only mount at /etc/streamscore", d.Name)
		}
		v := volume(d, cfgMount.Name)
		if v == nil || v.ConfigMap == nil || v.ConfigMap.Name != d.Name+"-config" {
			t.Fatalf("%s: /etc/streamscore is not ConfigMap %s-config", d.Name, d.Name)
		}
		text := configMap(t, r, d.Name+"-config").Data[propsKey]
		sum := sha256.Sum256([]byte(text))
		if got := d.Spec.Template.Annotations["checksum/config"]; got != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: checksum/config %s is not the sha256 of its properties", d.Name, got)
		}
		checkConfigAccepted(t, d.Name, text, c)
		p := props(t, r, d.Name)
		if want := fmt.Sprintf("0.0.0.0:%d", metricsPort.ContainerPort); p["metrics.listen"] != want {
			t.Errorf("%s: metrics.listen = %q, want %q", d.Name, p["metrics.listen"], want)
		}
		checkCommonScoreAPI(t, r, d, p)
		for k := range p {
			// a secret's `.file` key names a file holding it
			if (strings.Contains(k, "password") || strings.HasPrefix(k, "schema.registry.basic.auth.user.info")) && !strings.HasSuffix(k, ".file") {
				t.Errorf("%s: the properties hold %s", d.Name, k)
			}
		}
		if !strings.HasPrefix(p["model.path"], "/") {
			t.Errorf("%s: model.path %q is not absolute", d.Name, p["model.path"])
		}
		if d.Spec.Selector == nil || d.Spec.Selector.MatchLabels["app.kubernetes.io/component"] == "" {
			t.Errorf("%s: the selector does not name the component", d.Name)
		}
	}
	// one Service per Deployment, port metrics, and the score API's
	for _, o := range r.Find("Service") {
		s := o.Value.(*corev1.Service)
		if s.Name == scoreServiceName {
			continue // checkCommonScoreAPI
		}
		if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "metrics" || s.Spec.Ports[0].TargetPort.String() != "metrics" {
			t.Errorf("Service %s: want one port named metrics targeting metrics: %+v", s.Name, s.Spec.Ports)
		}
		if r.Get("Deployment", s.Name) == nil {
			t.Errorf("Service %s has no Deployment of the same name", s.Name)
		}
	}
	scoreServices := 0
	if r.Get("Service", scoreServiceName) != nil {
		scoreServices = 1
	}
	if count(r, "Service") != count(r, "Deployment")+scoreServices {
		t.Errorf("%d Services for %d Deployments and %d score API Service", count(r, "Service"), count(r, "Deployment"), scoreServices)
	}
	if count(r, "ScaledObject")+count(r, "HorizontalPodAutoscaler") > 1 {
		t.Error("more than one autoscaler")
	}
	checkCommonCronJobs(t, r)
}

// secretStandIns are what a value from a Secret stands in as for check-config, for the
// variables whose value has a shape the worker checks; any other one is "from-secret".
var secretStandIns = map[string]string{
	"STREAMSCORE_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": "streamscore:from-secret", // USER:PASSWORD
}

// checkConfigAccepted runs `streamscore check-config` on rendered properties with the
// container's environment (a value from a Secret stands in as "from-secret", or as
// secretStandIns says): the worker would start with this configuration rather than exit 2.
// Skipped without a worker binary.
func checkConfigAccepted(t *testing.T, name, properties string, c corev1.Container) {
	t.Helper()
	bin := os.Getenv("STREAMSCORE_BIN")
	if bin == "" {
		bin = filepath.Join(repoRoot, "build", "streamscore")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Logf("%s: no worker binary at %s: rendered properties not checked", name, bin)
		return
	}
	path := filepath.Join(t.TempDir(), "streamscore.properties")
	if err := os.WriteFile(path, []byte(properties), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "check-config", "-c", path)
	cmd.Dir = repoRoot
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			v = "from-secret"
			if standIn, ok := secretStandIns[e.Name]; ok {
				v = standIn
			}
		}
		cmd.Env = append(cmd.Env, e.Name+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s: the worker rejects its rendered configuration (%v):\n%s\n%s", name, err,
			out, properties)
	}
}

// ---- the value sets ----------------------------------------------------------------------

func checkDefaults(t *testing.T, r *Rendered) {
	wantCounts(t, r, map[string]int{"Deployment": 1, "Service": 1, "ConfigMap": 1, "ServiceAccount": 1,
		"PodDisruptionBudget": 1, "ScaledObject": 0, "HorizontalPodAutoscaler": 0, "ServiceMonitor": 0, "PrometheusRule": 0, "CronJob": 0})
	d := deployment(t, r, full)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %v, want 2", d.Spec.Replicas)
	}
	c := container(t, d)
	if c.Image != "streamscore:0.1.0" {
		t.Errorf("image %s, want streamscore:0.1.0 (the appVersion)", c.Image)
	}
	if c.Ports[0].ContainerPort != 9464 {
		t.Errorf("container port %d, want 9464", c.Ports[0].ContainerPort)
	}
	if s := r.Get("Service", full).(*corev1.Service); s.Spec.Ports[0].Port != 9464 {
		t.Errorf("Service port %d, want 9464", s.Spec.Ports[0].Port)
	}
	if mount(c, "/var/lib/streamscore/model") != nil || volume(d, "model") != nil {
		t.Error("model source image must mount no model volume")
	}
	// the score API is off: no port, no score.* key, no Service
	if len(c.Ports) != 1 || port(c, "score") != nil {
		t.Errorf("scoreApi.enabled is false, yet container ports %+v", c.Ports)
	}
	if got := scoreProps(t, r, full); len(got) > 0 {
		t.Errorf("scoreApi.enabled is false, yet the properties hold %v", got)
	}
	if r.Get("Service", scoreServiceName) != nil {
		t.Errorf("scoreApi.enabled is false, yet Service %s", scoreServiceName)
	}
	if len(c.Env) != 0 {
		t.Errorf("no secrets configured, yet env %+v", c.Env)
	}
	if qty(c.Resources.Requests, corev1.ResourceCPU) != "500m" || qty(c.Resources.Limits, corev1.ResourceMemory) != "512Mi" {
		t.Errorf("resources %+v", c.Resources)
	}
	pdb := r.Get("PodDisruptionBudget", full).(*policyv1.PodDisruptionBudget)
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 ||
		pdb.Spec.Selector.MatchLabels["app.kubernetes.io/component"] != "primary" {
		t.Errorf("PodDisruptionBudget %+v", pdb.Spec)
	}
	wantProps(t, props(t, r, full), map[string]string{
		"mode":                    "primary",
		"model.path":              "/opt/streamscore/models/churn-1.0.0.json",
		"metrics.listen":          "0.0.0.0:9464",
		"kafka.bootstrap.servers": "kafka:9092",
		"kafka.group.id":          "streamscore",
		"input.topic":             "customer-events",
		"output.topic":            "predictions",
		"redis.host":              "redis",
		"redis.port":              "6379",
		"worker.threads":          "1",
		"log.level":               "info",
		"rollout.topic":           rolloutTopic,
	})
	if mount(c, candidateDir) != nil || volume(d, "candidate") != nil {
		t.Error("rollout.candidate.source none, yet a candidate is mounted")
	}
	if d.Spec.Template.Spec.TerminationGracePeriodSeconds == nil || *d.Spec.Template.Spec.TerminationGracePeriodSeconds <= 30 {
		t.Error("terminationGracePeriodSeconds must exceed the worker's shutdown.timeout.ms (30 s)")
	}
}

func checkShadow(t *testing.T, r *Rendered) {
	wantCounts(t, r, map[string]int{"Deployment": 2, "Service": 2, "ConfigMap": 2, "PodDisruptionBudget": 2})
	p, s := props(t, r, full), props(t, r, shadowName)
	wantProps(t, s, map[string]string{
		"mode":                      "shadow",
		"model.path":                "/opt/streamscore/models/churn-1.1.0.json",
		"kafka.group.id":            "streamscore-shadow",
		"shadow.topic":              "predictions.shadow",
		"worker.threads":            "2",
		"promote.max.flip.rate":     "0.08",
		"promote.min.matched.share": "0.99",
		// inherited from config
		"kafka.bootstrap.servers": "kafka:9092",
		"input.topic":             "customer-events",
		"output.topic":            "predictions",
		"redis.host":              "redis",
	})
	wantProps(t, p, map[string]string{"mode": "primary", "worker.threads": "1", "kafka.group.id": "streamscore"})
	if _, ok := p["shadow.topic"]; ok {
		t.Error("the primary's properties hold shadow.topic")
	}
	if got := rolloutProps(t, r, shadowName); len(got) > 0 {
		t.Errorf("a shadow runs no rollout, yet its properties hold %v", got)
	}
	if m := mount(container(t, deployment(t, r, shadowName)), candidateDir); m != nil {
		t.Error("the shadow mounts the rollout's candidate")
	}
	sd := deployment(t, r, shadowName)
	if *sd.Spec.Replicas != 1 {
		t.Errorf("shadow replicas %d", *sd.Spec.Replicas)
	}
	if got := qty(container(t, sd).Resources.Requests, corev1.ResourceCPU); got != "250m" {
		t.Errorf("shadow cpu request %s, want 250m", got)
	}
	if got := qty(container(t, deployment(t, r, full)).Resources.Requests, corev1.ResourceCPU); got != "500m" {
		t.Errorf("primary cpu request %s, want 500m", got)
	}
	// the two selectors must not overlap
	ps := deployment(t, r, full).Spec.Selector.MatchLabels
	ss := sd.Spec.Selector.MatchLabels
	if ps["app.kubernetes.io/component"] == ss["app.kubernetes.io/component"] {
		t.Error("primary and shadow select the same pods")
	}
	// the primary renders exactly as without a shadow
	def, err := Render(filepath.Join(valuesDir, "defaults.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if deployment(t, def, full).Spec.Template.Annotations["checksum/config"] !=
		deployment(t, r, full).Spec.Template.Annotations["checksum/config"] {
		t.Error("enabling the shadow changed the primary's properties")
	}
}

func checkKeda(t *testing.T, r *Rendered) {
	wantCounts(t, r, map[string]int{"ScaledObject": 1, "HorizontalPodAutoscaler": 0})
	so := r.Get("ScaledObject", full).(*kedav1alpha1.ScaledObject)
	if so.Spec.ScaleTargetRef == nil || so.Spec.ScaleTargetRef.Name != full || so.Spec.ScaleTargetRef.Kind != "Deployment" {
		t.Errorf("scaleTargetRef %+v", so.Spec.ScaleTargetRef)
	}
	// 12 partitions / 4 threads = 3, below maxReplicas 10
	if so.Spec.MaxReplicaCount == nil || *so.Spec.MaxReplicaCount != 3 {
		t.Errorf("maxReplicaCount %v, want 3 (12 partitions / 4 threads)", so.Spec.MaxReplicaCount)
	}
	if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount != 1 {
		t.Errorf("minReplicaCount %v, want 1", so.Spec.MinReplicaCount)
	}
	if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "kafka" {
		t.Fatalf("triggers %+v", so.Spec.Triggers)
	}
	tr := so.Spec.Triggers[0]
	want := map[string]string{
		"bootstrapServers":  "kafka-0.kafka:9092,kafka-1.kafka:9092",
		"consumerGroup":     "scoring",
		"topic":             "events",
		"lagThreshold":      "500",
		"offsetResetPolicy": "earliest",
		"sasl":              "scram_sha512",
		"tls":               "enable",
	}
	for k, v := range want {
		if tr.Metadata[k] != v {
			t.Errorf("trigger metadata %s = %q, want %q", k, tr.Metadata[k], v)
		}
	}
	if tr.AuthenticationRef == nil || tr.AuthenticationRef.Name != "kafka-scaler-auth" {
		t.Errorf("authenticationRef %+v", tr.AuthenticationRef)
	}
	if d := deployment(t, r, full); d.Spec.Replicas != nil {
		t.Errorf("an autoscaled Deployment must leave replicas to the autoscaler, has %d", *d.Spec.Replicas)
	}
	wantProps(t, props(t, r, full), map[string]string{"worker.threads": "4", "kafka.group.id": "scoring"})
	// without maxReplicas of its own, the cap alone; a partition count below the threads still gives 1
	for _, c := range []struct {
		args []string
		want int32
	}{
		{[]string{"--set", "autoscaling.maxReplicas=0"}, 3},
		{[]string{"--set", "autoscaling.maxReplicas=2"}, 2},
		{[]string{"--set", "input.partitions=13"}, 3},
		{[]string{"--set", "input.partitions=2"}, 1},
		{[]string{"--set", "input.partitions=64", "--set", "autoscaling.maxReplicas=0"}, 16},
	} {
		rr, err := Render(filepath.Join(valuesDir, "keda.yaml"), c.args...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		so := rr.Get("ScaledObject", full).(*kedav1alpha1.ScaledObject)
		if *so.Spec.MaxReplicaCount != c.want {
			t.Errorf("%v: maxReplicaCount %d, want %d", c.args, *so.Spec.MaxReplicaCount, c.want)
		}
	}
}

func checkHPA(t *testing.T, r *Rendered) {
	wantCounts(t, r, map[string]int{"ScaledObject": 0, "HorizontalPodAutoscaler": 1})
	h := r.Get("HorizontalPodAutoscaler", full).(*autoscalingv2.HorizontalPodAutoscaler)
	if h.Spec.ScaleTargetRef.Name != full || h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.APIVersion != "apps/v1" {
		t.Errorf("scaleTargetRef %+v", h.Spec.ScaleTargetRef)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas != 2 || h.Spec.MaxReplicas != 4 {
		t.Errorf("replicas %v..%d, want 2..4", h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Type != autoscalingv2.PodsMetricSourceType || h.Spec.Metrics[0].Pods == nil {
		t.Fatalf("metrics %+v", h.Spec.Metrics)
	}
	m := h.Spec.Metrics[0].Pods
	if m.Metric.Name != "streamscore_consumer_lag" || m.Target.Type != autoscalingv2.AverageValueMetricType ||
		m.Target.AverageValue == nil || m.Target.AverageValue.String() != "2k" {
		t.Errorf("pods metric %+v", m)
	}
	if h.Spec.Behavior == nil || h.Spec.Behavior.ScaleDown == nil || *h.Spec.Behavior.ScaleDown.StabilizationWindowSeconds != 600 {
		t.Errorf("behavior %+v", h.Spec.Behavior)
	}
	if d := deployment(t, r, full); d.Spec.Replicas != nil {
		t.Error("an autoscaled Deployment must leave replicas to the autoscaler")
	}
	// the External form, capped by the partitions (6 / 1 thread)
	rr, err := Render(filepath.Join(valuesDir, "hpa.yaml"), "--set", "autoscaling.hpa.metricType=External",
		"--set", "autoscaling.maxReplicas=0", "--set", "autoscaling.hpa.metricSelector.topic=customer-events")
	if err != nil {
		t.Fatal(err)
	}
	h = rr.Get("HorizontalPodAutoscaler", full).(*autoscalingv2.HorizontalPodAutoscaler)
	if h.Spec.MaxReplicas != 6 || h.Spec.Metrics[0].External == nil ||
		h.Spec.Metrics[0].External.Metric.Selector.MatchLabels["topic"] != "customer-events" {
		t.Errorf("External HPA %+v", h.Spec)
	}
}

func checkMonitoring(t *testing.T, r *Rendered) {
	wantCounts(t, r, map[string]int{"ServiceMonitor": 1, "PrometheusRule": 1, "Deployment": 2, "Service": 2})
	sm := r.Get("ServiceMonitor", full).(*monitoringv1.ServiceMonitor)
	if sm.Labels["release"] != "kube-prometheus-stack" {
		t.Errorf("ServiceMonitor labels %v", sm.Labels)
	}
	if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" ||
		string(sm.Spec.Endpoints[0].Interval) != "15s" {
		t.Errorf("endpoints %+v", sm.Spec.Endpoints)
	}
	// the ServiceMonitor selects both Services
	for _, o := range r.Find("Service") {
		s := o.Value.(*corev1.Service)
		for k, v := range sm.Spec.Selector.MatchLabels {
			if s.Labels[k] != v {
				t.Errorf("ServiceMonitor does not select Service %s (%s=%s)", s.Name, k, v)
			}
		}
	}
	for _, o := range r.Find("Deployment") {
		a := o.Value.(*appsv1.Deployment).Spec.Template.Annotations
		if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != "9464" || a["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: prometheus.io annotations %v", o.Name, a)
		}
	}
	pr := r.Get("PrometheusRule", full).(*monitoringv1.PrometheusRule)
	rules := map[string]monitoringv1.Rule{}
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			rules[rule.Alert] = rule
		}
	}
	want := map[string][]string{
		"StreamscoreHighLatency":       {"histogram_quantile(0.99", "streamscore_event_latency_seconds_bucket", "> 0.5"},
		"StreamscoreHighErrorRate":     {"streamscore_records_dead_lettered_total", "/ sum by (job) (rate(streamscore_records_consumed_total", "> 0.01"},
		"StreamscoreHighConsumerLag":   {"sum by (job) (streamscore_consumer_lag", "> 250000"},
		"StreamscoreFeatureDrift":      {"streamscore_feature_psi", "> 0.2"},
		"StreamscoreScoreDrift":        {"streamscore_score_psi", "> 0.2"},
		"StreamscoreModelReloadFailed": {`streamscore_model_reloads_total{namespace="scoring",job=~"ss-streamscore|ss-streamscore-shadow",result="failed"}`},
	}
	// rollout.enabled is the default
	for alert, parts := range rolloutAlerts {
		want[alert] = parts
	}
	for alert, parts := range want {
		rule, ok := rules[alert]
		if !ok {
			t.Errorf("no alert %s", alert)
			continue
		}
		for _, part := range parts {
			if !strings.Contains(rule.Expr.String(), part) {
				t.Errorf("%s: expr %q lacks %q", alert, rule.Expr.String(), part)
			}
		}
		if !strings.Contains(rule.Expr.String(), `namespace="scoring",job=~"ss-streamscore|ss-streamscore-shadow"`) {
			t.Errorf("%s: expr %q does not select the release's jobs", alert, rule.Expr.String())
		}
	}
	if rules["StreamscoreHighLatency"].Labels["severity"] != "critical" || rules["StreamscoreHighLatency"].For == nil ||
		string(*rules["StreamscoreHighLatency"].For) != "5m" {
		t.Errorf("latency alert %+v", rules["StreamscoreHighLatency"])
	}
	if len(rules) != len(want) {
		t.Errorf("%d alerts, want %d", len(rules), len(want))
	}
	// an alert switched off is gone
	rr, err := Render(filepath.Join(valuesDir, "monitoring.yaml"), "--set", "prometheusRule.alerts.drift.enabled=false")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range rr.Get("PrometheusRule", full).(*monitoringv1.PrometheusRule).Spec.Groups {
		for _, rule := range g.Rules {
			if strings.Contains(rule.Alert, "Drift") {
				t.Errorf("drift alerts disabled, yet %s rendered", rule.Alert)
			}
		}
	}
}

func checkSecrets(t *testing.T, r *Rendered) {
	for _, name := range []string{full, shadowName} {
		d := deployment(t, r, name)
		c := container(t, d)
		wantSecretEnv(t, name, c, map[string][2]string{
			"STREAMSCORE_KAFKA_SASL_PASSWORD":    {"kafka-streamscore", "password"},
			"STREAMSCORE_REDIS_PASSWORD":         {"redis", "redis-password"},
			"STREAMSCORE_KAFKA_SSL_KEY_PASSWORD": {"kafka-client-tls", "key-password"},
		})
		m := mount(c, "/etc/streamscore-tls/kafka")
		if m == nil || !m.ReadOnly {
			t.Fatalf("%s: no read-only mount of the TLS Secret", name)
		}
		v := volume(d, m.Name)
		if v == nil || v.Secret == nil || v.Secret.SecretName != "kafka-client-tls" {
			t.Errorf("%s: TLS volume %+v", name, v)
		}
		wantProps(t, props(t, r, name), map[string]string{
			"kafka.security.protocol":        "SASL_SSL",
			"kafka.sasl.mechanisms":          "SCRAM-SHA-512",
			"kafka.sasl.username":            "streamscore",
			"kafka.ssl.ca.location":          "/etc/streamscore-tls/kafka/ca.crt",
			"kafka.ssl.certificate.location": "/etc/streamscore-tls/kafka/tls.crt",
			"kafka.ssl.key.location":         "/etc/streamscore-tls/kafka/tls.key",
			"redis.host":                     "redis-master",
		})
	}
	for _, o := range r.Find("ConfigMap") {
		if strings.Contains(strings.ToLower(string(o.Raw)), "password =") {
			t.Errorf("ConfigMap %s holds a password", o.Name)
		}
	}
}

func checkModelVolume(t *testing.T, r *Rendered) {
	for name, want := range map[string][2]string{
		full:       {"/var/lib/streamscore/model/churn/model.json", "/var/lib/streamscore/model/churn/model.card.json"},
		shadowName: {"/var/lib/streamscore/model/candidate/model.json", ""},
	} {
		d := deployment(t, r, name)
		c := container(t, d)
		m := mount(c, "/var/lib/streamscore/model")
		if m == nil || !m.ReadOnly || m.SubPath != "" {
			t.Fatalf("%s: want a read-only mount of the whole model volume, got %+v", name, m)
		}
		v := volume(d, m.Name)
		if v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "streamscore-models" {
			t.Errorf("%s: model volume %+v", name, v)
		}
		p := props(t, r, name)
		wantProps(t, p, map[string]string{"model.path": want[0]})
		if card, ok := p["model.card"]; card != want[1] && (ok || want[1] != "") {
			t.Errorf("%s: model.card %q, want %q", name, card, want[1])
		}
	}
	if count(r, "ConfigMap") != 2 {
		t.Errorf("%d ConfigMaps, want the two properties ones only", count(r, "ConfigMap"))
	}
}

func checkModelImage(t *testing.T, r *Rendered) {
	d := deployment(t, r, full)
	c := container(t, d)
	if c.Image != "registry.example.com/ml/streamscore:0.1.0-churn" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %s %s", c.Image, c.ImagePullPolicy)
	}
	if ps := d.Spec.Template.Spec.ImagePullSecrets; len(ps) != 1 || ps[0].Name != "registry" {
		t.Errorf("imagePullSecrets %+v", ps)
	}
	if volume(d, "model") != nil {
		t.Error("model source image must mount no model volume")
	}
	p := props(t, r, full)
	wantProps(t, p, map[string]string{"model.path": "/opt/streamscore/models/churn-1.1.0.json"})
	if _, ok := p["model.card"]; ok {
		t.Error("model.card set for an image model (the worker derives it from model.path)")
	}
}

func checkModelConfigMap(t *testing.T, r *Rendered) {
	cm := configMap(t, r, full+"-model")
	if cm.Data["model.json"] == "" || cm.Data["model.card.json"] != `{"name": "churn", "version": "1.0.0"}` {
		t.Errorf("model ConfigMap data %v", cm.Data)
	}
	if r.Get("ConfigMap", shadowName+"-model") != nil {
		t.Error("the shadow names an existing ConfigMap, yet the chart created one")
	}
	for name, want := range map[string][3]string{
		full:       {full + "-model", "/var/lib/streamscore/model/model.json", ""},
		shadowName: {"churn-candidate", "/var/lib/streamscore/model/candidate.json", "/var/lib/streamscore/model/candidate.card.json"},
	} {
		d := deployment(t, r, name)
		m := mount(container(t, d), "/var/lib/streamscore/model")
		if m == nil || !m.ReadOnly || m.SubPath != "" {
			t.Fatalf("%s: want a read-only mount of the whole ConfigMap (no subPath: updates must reach the pod), got %+v", name, m)
		}
		v := volume(d, m.Name)
		if v == nil || v.ConfigMap == nil || v.ConfigMap.Name != want[0] || len(v.ConfigMap.Items) != 0 {
			t.Errorf("%s: model volume %+v, want all of ConfigMap %s", name, v, want[0])
		}
		p := props(t, r, name)
		wantProps(t, p, map[string]string{"model.path": want[1]})
		if p["model.card"] != want[2] {
			t.Errorf("%s: model.card %q, want %q", name, p["model.card"], want[2])
		}
		for k := range d.Spec.Template.Annotations {
			if strings.Contains(k, "model") {
				t.Errorf("%s: pod annotation %s would roll the pods on a model change", name, k)
			}
		}
	}
}
