package helmtest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The YAML examples of docs/deploying.md are right: a Kubernetes object decodes strictly
// into its Go type, anything else is a values file the chart renders with.
func TestDeployingDocExamples(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", "deploying.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?ms)^```yaml\n(.*?)^```").FindAllStringSubmatch(string(raw), -1)
	if len(blocks) == 0 {
		t.Fatal("no yaml examples in docs/deploying.md")
	}
	dir := t.TempDir()
	for i, b := range blocks {
		body := b[1]
		if regexp.MustCompile(`(?m)^apiVersion:`).MatchString(body) {
			o, err := DecodeStrict([]byte(body))
			if err != nil {
				t.Errorf("example %d: %v\n%s", i+1, err, body)
			} else if o.Kind != "TriggerAuthentication" {
				t.Errorf("example %d: a %s; only TriggerAuthentication examples are expected", i+1, o.Kind)
			}
			continue
		}
		f := filepath.Join(dir, "example.yaml")
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		// Examples that switch on the shadow or a ConfigMap model may rely on files given
		// with --set-file in the text; an existing ConfigMap name stands in for them here.
		extra := []string{}
		if strings.Contains(body, "source: configMap") && !strings.Contains(body, "name:") {
			extra = append(extra, "--set", "model.configMap.name=example")
		}
		if _, err := Render(f, extra...); err != nil {
			t.Errorf("example %d does not render: %v\n%s", i+1, err, body)
		}
	}
}
