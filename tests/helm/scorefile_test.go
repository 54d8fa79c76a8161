package helmtest

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// The score-file CronJob of a release "ss" (values/score-file.yaml and the scoreFile values).
const scoreFileName = full + "-score-file"

func cronJob(t *testing.T, r *Rendered, name string) *batchv1.CronJob {
	t.Helper()
	cj, _ := r.Get("CronJob", name).(*batchv1.CronJob)
	if cj == nil {
		t.Fatalf("no CronJob %s", name)
	}
	return cj
}

func jobContainer(t *testing.T, cj *batchv1.CronJob) corev1.Container {
	t.Helper()
	cs := cj.Spec.JobTemplate.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "streamscore" {
		t.Fatalf("%s: want one container named streamscore, got %d", cj.Name, len(cs))
	}
	return cs[0]
}

func jobVolume(cj *batchv1.CronJob, name string) *corev1.Volume {
	vs := cj.Spec.JobTemplate.Spec.Template.Spec.Volumes
	for i := range vs {
		if vs[i].Name == name {
			return &vs[i]
		}
	}
	return nil
}

// selects: a matchLabels selector (non-empty) selects a pod of these labels.
func selects(selector, pod map[string]string) bool {
	for k, v := range selector {
		if pod[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// checkCommonCronJobs: what every rendered CronJob must satisfy (called from checkCommon):
// the Deployments' restrictive pod, no service links, /tmp an emptyDir, the release's
// properties read-only at /etc/streamscore, a pod the Deployments and Services do not select.
func checkCommonCronJobs(t *testing.T, r *Rendered) {
	for _, o := range r.Find("CronJob") {
		cj := o.Value.(*batchv1.CronJob)
		if len(cj.Name) > 52 {
			t.Errorf("CronJob %s: name longer than 52 characters (its Jobs' names add 11)", cj.Name)
		}
		ps := cj.Spec.JobTemplate.Spec.Template.Spec
		c := jobContainer(t, cj)
		psc := ps.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 10001 {
			t.Errorf("%s: pod securityContext not runAsNonRoot / runAsUser 10001: %+v", cj.Name, psc)
		}
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: container securityContext not read-only root / no escalation: %+v", cj.Name, sc)
		}
		if ps.EnableServiceLinks == nil || *ps.EnableServiceLinks {
			t.Errorf("%s: enableServiceLinks must be false (service links add STREAMSCORE_* variables)", cj.Name)
		}
		if ps.RestartPolicy == corev1.RestartPolicyAlways || ps.RestartPolicy == "" {
			t.Errorf("%s: restartPolicy %q: a Job's pod needs Never or OnFailure", cj.Name, ps.RestartPolicy)
		}
		if m := mount(c, "/tmp"); m == nil || jobVolume(cj, m.Name) == nil || jobVolume(cj, m.Name).EmptyDir == nil {
			t.Errorf("%s: no emptyDir at /tmp", cj.Name)
		}
		if len(c.Args) < 3 || c.Args[0] != "score-file" || c.Args[1] != "-c" {
			t.Fatalf("%s: args %q, want score-file -c ...", cj.Name, c.Args)
		}
		cfg := mount(c, "/etc/streamscore")
		if cfg == nil || !cfg.ReadOnly {
			t.Fatalf("%s: no read-only mount at /etc/streamscore", cj.Name)
		}
		if v := jobVolume(cj, cfg.Name); v == nil || v.ConfigMap == nil || v.ConfigMap.Name != full+"-config" {
			t.Errorf("%s: /etc/streamscore is not the primary's ConfigMap %s-config: %+v", cj.Name, full, v)
		}
		pod := cj.Spec.JobTemplate.Spec.Template.Labels
		if pod["app.kubernetes.io/component"] != "score-file" {
			t.Errorf("%s: pod labels %v lack component score-file", cj.Name, pod)
		}
		for _, d := range r.Find("Deployment") {
			if selects(d.Value.(*appsv1.Deployment).Spec.Selector.MatchLabels, pod) {
				t.Errorf("%s: Deployment %s selects the score-file pods", cj.Name, d.Name)
			}
		}
		for _, s := range r.Find("Service") {
			if selects(s.Value.(*corev1.Service).Spec.Selector, pod) {
				t.Errorf("%s: Service %s selects the score-file pods", cj.Name, s.Name)
			}
		}
	}
}

// values/score-file.yaml: the CronJob runs score-file with the Deployment's properties,
// model, variables and TLS files, its inputs and output on the data volume.
func checkScoreFile(t *testing.T, r *Rendered) {
	wantCounts(t, r, map[string]int{"CronJob": 1, "Deployment": 1, "ConfigMap": 1})
	cj := cronJob(t, r, scoreFileName)
	s := cj.Spec
	if s.Schedule != "30 1 * * *" || s.ConcurrencyPolicy != batchv1.ForbidConcurrent ||
		s.Suspend == nil || *s.Suspend {
		t.Errorf("schedule %q, concurrencyPolicy %q, suspend %v; want 30 1 * * *, Forbid, false",
			s.Schedule, s.ConcurrencyPolicy, s.Suspend)
	}
	if s.SuccessfulJobsHistoryLimit == nil || *s.SuccessfulJobsHistoryLimit != 3 ||
		s.FailedJobsHistoryLimit == nil || *s.FailedJobsHistoryLimit != 1 {
		t.Errorf("history limits %v / %v, want 3 / 1", s.SuccessfulJobsHistoryLimit, s.FailedJobsHistoryLimit)
	}
	js := s.JobTemplate.Spec
	if js.BackoffLimit == nil || *js.BackoffLimit != 1 || js.ActiveDeadlineSeconds == nil || *js.ActiveDeadlineSeconds != 21600 {
		t.Errorf("backoffLimit %v, activeDeadlineSeconds %v; want 1, 21600", js.BackoffLimit, js.ActiveDeadlineSeconds)
	}
	if js.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q, want Never", js.Template.Spec.RestartPolicy)
	}

	d := deployment(t, r, full)
	dc := container(t, d)
	c := jobContainer(t, cj)
	if c.Image != dc.Image || c.ImagePullPolicy != dc.ImagePullPolicy {
		t.Errorf("image %s %s, the Deployment's %s %s", c.Image, c.ImagePullPolicy, dc.Image, dc.ImagePullPolicy)
	}
	// the -c path is the Deployment's ("run -c PATH")
	want := []string{"score-file", "-c", dc.Args[2],
		"--input", "/data/events/day.avro", "--input", "/data/late/day.jsonl",
		"--output", "/data/predictions/day.avro", "--threads", "2",
		"--dead-letters", "/data/predictions/day.dead-letters.jsonl", "--json", "--seed-redis"}
	if !reflect.DeepEqual(c.Args, want) {
		t.Errorf("args\n %q\nwant\n %q", c.Args, want)
	}
	if !strings.HasPrefix(dc.Args[2], mount(dc, "/etc/streamscore").MountPath+"/") {
		t.Fatalf("the Deployment's -c %s is not in its /etc/streamscore mount", dc.Args[2])
	}

	// the data volume, read-write at /data
	data := mount(c, "/data")
	if data == nil || data.ReadOnly {
		t.Fatalf("want a read-write mount at /data, got %+v", data)
	}
	if v := jobVolume(cj, data.Name); v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "scoring-data" {
		t.Errorf("data volume %+v, want PersistentVolumeClaim scoring-data", v)
	}
	// the Deployment's properties, model and TLS files: same volume sources at the same folders
	for _, path := range []string{"/etc/streamscore", "/var/lib/streamscore/model", "/etc/streamscore-tls/kafka"} {
		jm, dm := mount(c, path), mount(dc, path)
		if jm == nil || dm == nil {
			t.Errorf("%s: mounted in the Deployment (%v) and the CronJob (%v)?", path, dm != nil, jm != nil)
			continue
		}
		if !jm.ReadOnly {
			t.Errorf("%s: not read-only in the CronJob", path)
		}
		jv, dv := jobVolume(cj, jm.Name), volume(d, dm.Name)
		if jv == nil || dv == nil || !reflect.DeepEqual(jv.VolumeSource, dv.VolumeSource) {
			t.Errorf("%s: the CronJob's volume %+v is not the Deployment's %+v", path, jv, dv)
		}
	}
	// the Deployment's variables (secrets.* and extraEnv)
	if len(c.Env) != 2 || !reflect.DeepEqual(c.Env, dc.Env) {
		t.Errorf("env %+v, want the Deployment's %+v", c.Env, dc.Env)
	}
	wantSecretEnv(t, cj.Name, c, map[string][2]string{
		"STREAMSCORE_REDIS_PASSWORD":         {"redis", "redis-password"},
		"STREAMSCORE_KAFKA_SSL_KEY_PASSWORD": {"kafka-client-tls", "key-password"},
	})
	// its own resources; the pod settings of the Deployment
	if got := qty(c.Resources.Requests, corev1.ResourceCPU); got != "2" {
		t.Errorf("cpu request %s, want 2 (scoreFile.resources)", got)
	}
	if qty(c.Resources.Limits, corev1.ResourceMemory) != "" {
		t.Errorf("scoreFile.resources replaces the primary's, yet limits %v", c.Resources.Limits)
	}
	jp, dp := cj.Spec.JobTemplate.Spec.Template.Spec, d.Spec.Template.Spec
	if jp.ServiceAccountName != dp.ServiceAccountName || !reflect.DeepEqual(jp.SecurityContext, dp.SecurityContext) ||
		!reflect.DeepEqual(c.SecurityContext, dc.SecurityContext) {
		t.Error("the CronJob's ServiceAccount or security contexts differ from the Deployment's")
	}
	if len(c.Ports) != 0 || c.LivenessProbe != nil || c.ReadinessProbe != nil {
		t.Error("a score-file run serves no metrics: no ports, no probes")
	}
}

// Off by default: the chart's defaults, and scoreFile values without enabled, render no
// CronJob and none of its checks.
func TestScoreFileOffByDefault(t *testing.T) {
	for name, args := range map[string][]string{
		"defaults": nil,
		"values set but not enabled": {"--set", "scoreFile.inputs={events.avro}",
			"--set", "scoreFile.output=predictions.avro", "--set", "scoreFile.outputTopic=rescored"},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := Render("", args...)
			if err != nil {
				t.Fatal(err)
			}
			if n := count(r, "CronJob"); n != 0 {
				t.Errorf("%d CronJobs, want none", n)
			}
		})
	}
}

// --output-topic instead of --output; no --threads or --dead-letters when unset; a release
// name that would make the CronJob's name too long is shortened.
func TestScoreFileOutputTopic(t *testing.T) {
	r, err := Render(filepath.Join(valuesDir, "score-file.yaml"), "--set", "scoreFile.output=",
		"--set", "scoreFile.outputTopic=predictions-rescored", "--set", "scoreFile.threads=0",
		"--set", "scoreFile.deadLetters=", "--set", "scoreFile.extraArgs=null",
		"--set", "scoreFile.activeDeadlineSeconds=0", "--set", "scoreFile.mountPath=/mnt/scoring/")
	if err != nil {
		t.Fatal(err)
	}
	cj := cronJob(t, r, scoreFileName)
	c := jobContainer(t, cj)
	want := []string{"score-file", "-c", "/etc/streamscore/streamscore.properties",
		"--input", "/mnt/scoring/events/day.avro", "--input", "/data/late/day.jsonl",
		"--output-topic", "predictions-rescored", "--json"}
	if !reflect.DeepEqual(c.Args, want) {
		t.Errorf("args\n %q\nwant\n %q", c.Args, want)
	}
	if m := mount(c, "/mnt/scoring/"); m == nil {
		t.Error("no mount at scoreFile.mountPath /mnt/scoring/")
	}
	if ads := cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds; ads != nil {
		t.Errorf("activeDeadlineSeconds 0 means no limit, yet %d", *ads)
	}

	long, err := Render(filepath.Join(valuesDir, "score-file.yaml"),
		"--set", "fullnameOverride="+strings.Repeat("a", 56))
	if err != nil {
		t.Fatal(err)
	}
	if cjs := long.Find("CronJob"); len(cjs) != 1 || len(cjs[0].Name) > 52 || !strings.HasSuffix(cjs[0].Name, "-score-file") {
		t.Errorf("CronJob of a 56-character full name: %v", cjs)
	}
}

// A misspelled field of the rendered CronJob is rejected by the strict decoding.
func TestScoreFileStrictDecoding(t *testing.T) {
	out, err := helm(renderArgs(filepath.Join(valuesDir, "score-file.yaml"), "--show-only", "templates/scorefile-cronjob.yaml")...)
	if err != nil {
		t.Fatal(err)
	}
	docs := SplitDocs(out)
	if len(docs) != 1 {
		t.Fatalf("%d documents, want the CronJob", len(docs))
	}
	if _, err := DecodeStrict(docs[0]); err != nil {
		t.Fatalf("the unmodified CronJob does not decode: %v", err)
	}
	for from, to := range map[string]string{
		"concurrencyPolicy:":  "concurencyPolicy:",
		"backoffLimit:":       "backOffLimit:",
		"restartPolicy:":      "restartpolicy:",
		"enableServiceLinks:": "enableServiceLink:",
	} {
		bad := strings.Replace(string(docs[0]), from, to, 1)
		if bad == string(docs[0]) {
			t.Errorf("%q not found in the rendered CronJob", from)
			continue
		}
		if _, err := DecodeStrict([]byte(bad)); err == nil {
			t.Errorf("a CronJob with %q instead of %q decoded without error", to, from)
		}
	}
}
