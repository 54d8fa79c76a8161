// Package helmtest renders the streamscore chart with helm and decodes every rendered object
// strictly into the Go API types the cluster would use (Kubernetes, KEDA, Prometheus
// Operator): an unknown, misspelled or duplicated field is an error, as it is for a
// kube-apiserver with strict field validation.
package helmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Paths relative to this package's folder (go test runs in it).
var (
	repoRoot  = filepath.Join("..", "..")
	chartDir  = filepath.Join(repoRoot, "helm", "streamscore")
	valuesDir = "values"
)

// helmBin is the helm binary: $HELM, else the one scripts/setup installs.
func helmBin() string {
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	return filepath.Join(repoRoot, ".deps", "bin", "helm")
}

// helm runs helm with args and returns its stdout; on failure the error holds stderr.
func helm(args ...string) (string, error) {
	cmd := exec.Command(helmBin(), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// renderArgs are the helm template arguments for one values file plus extra flags.
func renderArgs(valuesFile string, extra ...string) []string {
	args := []string{"template", "ss", chartDir, "--namespace", "scoring"}
	if valuesFile != "" {
		args = append(args, "-f", valuesFile)
	}
	return append(args, extra...)
}

// Object is one rendered document: its kind, name, source template and decoded value.
type Object struct {
	Kind, Name, Source string
	Raw                []byte // the document's YAML
	Value              any    // pointer to the typed object
}

// Rendered is the whole output of one helm template run.
type Rendered struct {
	Objects []Object
}

// newTyped returns a pointer to an empty Go object for apiVersion/kind, or nil if the chart
// is not expected to render that kind.
func newTyped(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Service":
		return &corev1.Service{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "batch/v1/CronJob":
		return &batchv1.CronJob{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "keda.sh/v1alpha1/ScaledObject":
		return &kedav1alpha1.ScaledObject{}
	case "keda.sh/v1alpha1/TriggerAuthentication":
		return &kedav1alpha1.TriggerAuthentication{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		return &monitoringv1.PrometheusRule{}
	}
	return nil
}

// DecodeStrict decodes one YAML document into its Go type: YAML to JSON rejecting duplicate
// keys, then a case-sensitive JSON decode rejecting unknown and duplicate fields.
func DecodeStrict(doc []byte) (Object, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return Object{}, fmt.Errorf("YAML: %w", err)
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &meta); err != nil {
		return Object{}, fmt.Errorf("apiVersion/kind: %w", err)
	}
	obj := newTyped(meta.APIVersion, meta.Kind)
	if obj == nil {
		return Object{}, fmt.Errorf("unexpected object %s %s", meta.APIVersion, meta.Kind)
	}
	strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return Object{}, fmt.Errorf("%s %s: %w", meta.Kind, meta.Metadata.Name, err)
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = e.Error()
		}
		return Object{}, fmt.Errorf("%s %s: %s", meta.Kind, meta.Metadata.Name, strings.Join(msgs, "; "))
	}
	return Object{Kind: meta.Kind, Name: meta.Metadata.Name, Raw: doc, Value: obj}, nil
}

var (
	docSep    = regexp.MustCompile(`(?m)^---\s*$`)
	sourceRef = regexp.MustCompile(`(?m)^# Source: (\S+)`)
)

// SplitDocs splits helm template output into its non-empty documents.
func SplitDocs(out string) [][]byte {
	var docs [][]byte
	for _, d := range docSep.Split(out, -1) {
		body := strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(d, ""))
		if body == "" {
			continue
		}
		docs = append(docs, []byte(d))
	}
	return docs
}

// Render runs helm template and strictly decodes every document.
func Render(valuesFile string, extra ...string) (*Rendered, error) {
	out, err := helm(renderArgs(valuesFile, extra...)...)
	if err != nil {
		return nil, err
	}
	r := &Rendered{}
	for _, doc := range SplitDocs(out) {
		o, err := DecodeStrict(doc)
		if m := sourceRef.FindSubmatch(doc); m != nil {
			o.Source = string(m[1])
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.Source, err)
		}
		r.Objects = append(r.Objects, o)
	}
	return r, nil
}

// Find returns the objects of a kind.
func (r *Rendered) Find(kind string) []Object {
	var objs []Object
	for _, o := range r.Objects {
		if o.Kind == kind {
			objs = append(objs, o)
		}
	}
	return objs
}

// Get returns the object of a kind and name, or nil.
func (r *Rendered) Get(kind, name string) any {
	for _, o := range r.Objects {
		if o.Kind == kind && o.Name == name {
			return o.Value
		}
	}
	return nil
}
