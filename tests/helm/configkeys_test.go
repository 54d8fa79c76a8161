package helmtest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// schemaConfigKeys returns the non-kafka keys values.schema.json accepts in config and
// shadow.config, and its patterns of other non-kafka keys (a secret's `.file` key).
func schemaConfigKeys(t *testing.T) ([]string, []*regexp.Regexp) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Definitions struct {
			Config struct {
				PropertyNames struct {
					AnyOf []struct {
						Enum    []string `json:"enum"`
						Pattern string   `json:"pattern"`
					} `json:"anyOf"`
				} `json:"propertyNames"`
			} `json:"config"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	var enum []string
	var patterns []*regexp.Regexp
	for _, a := range schema.Definitions.Config.PropertyNames.AnyOf {
		if len(a.Enum) > 0 {
			enum = a.Enum
		} else if a.Pattern != "" && !strings.HasPrefix(a.Pattern, "^kafka") {
			patterns = append(patterns, regexp.MustCompile(a.Pattern))
		}
	}
	if enum == nil {
		t.Fatal("values.schema.json: no enum of config keys in definitions.config.propertyNames")
	}
	return enum, patterns
}

// The config keys the chart's schema accepts are exactly the worker's (from
// `streamscore config-reference --markdown` of the build in build/, or $STREAMSCORE_BIN):
// a key the worker lacks would stop it with exit 2, a key the schema lacks could not be set.
func TestConfigKeysMatchWorker(t *testing.T) {
	bin := os.Getenv("STREAMSCORE_BIN")
	if bin == "" {
		bin = filepath.Join(repoRoot, "build", "streamscore")
	}
	out, err := exec.Command(bin, "config-reference", "--markdown").Output()
	if err != nil {
		t.Skipf("no worker binary to compare with (%s: %v); make build first", bin, err)
	}
	worker := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9._*]+)`").FindAllStringSubmatch(string(out), -1) {
		if !strings.HasPrefix(m[1], "kafka.") {
			worker[m[1]] = true
		}
	}
	if !worker["metrics.listen"] {
		t.Skipf("%s predates metrics.listen (the chart's HTTP endpoints); rebuild it", bin)
	}
	chart := map[string]bool{}
	enum, patterns := schemaConfigKeys(t)
	for _, k := range enum {
		chart[k] = true
	}
	accepts := func(k string) bool {
		for _, p := range patterns {
			if p.MatchString(k) {
				return true
			}
		}
		return chart[k]
	}
	var onlyChart, onlyWorker []string
	for k := range chart {
		if !worker[k] {
			onlyChart = append(onlyChart, k)
		}
	}
	for k := range worker {
		if !accepts(k) {
			onlyWorker = append(onlyWorker, k)
		}
	}
	sort.Strings(onlyChart)
	sort.Strings(onlyWorker)
	if len(onlyChart) > 0 {
		t.Errorf("values.schema.json accepts keys the worker does not know: %v", onlyChart)
	}
	if len(onlyWorker) > 0 {
		t.Errorf("the worker has keys values.schema.json rejects (add them to definitions.config): %v", onlyWorker)
	}
}
