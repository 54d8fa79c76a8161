package helmtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The Dockerfile cannot be built here (no Docker engine): these tests keep it in step with
// the repository (what it copies and runs exists) and with the chart (user, port, command,
// paths).

type instruction struct {
	stage int    // 0: build stage, 1: runtime stage
	cmd   string // upper case
	args  string
}

func parseDockerfile(t *testing.T) []instruction {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var ins []instruction
	stage, cur := -1, ""
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		cmd, args, _ := strings.Cut(cur, " ")
		cur = ""
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		ins = append(ins, instruction{stage, cmd, strings.TrimSpace(args)})
	}
	if stage != 1 {
		t.Fatalf("Dockerfile: %d stages, want 2 (build, runtime)", stage+1)
	}
	return ins
}

func dockerignore(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var pats []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			pats = append(pats, l)
		}
	}
	return pats
}

// ignored reports whether .dockerignore leaves path (relative to the repository) out of the
// build context: a pattern matching the path or one of its parent folders.
func ignored(path string, pats []string) bool {
	parts := strings.Split(filepath.Clean(path), "/")
	for _, p := range pats {
		anyDepth := strings.HasPrefix(p, "**/")
		p = strings.TrimPrefix(p, "**/")
		for i := 1; i <= len(parts); i++ {
			if ok, _ := filepath.Match(p, strings.Join(parts[:i], "/")); ok {
				return true
			}
			if ok, _ := filepath.Match(p, parts[i-1]); ok && anyDepth {
				return true
			}
		}
	}
	return false
}

// copyArgs splits a COPY's arguments into flags, sources and destination.
func copyArgs(args string) (flags, srcs []string, dst string) {
	f := strings.Fields(args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		flags, f = append(flags, f[0]), f[1:]
	}
	return flags, f[:len(f)-1], f[len(f)-1]
}

func TestDockerfileCopiesAndRunsWhatExists(t *testing.T) {
	ins := parseDockerfile(t)
	pats := dockerignore(t)
	for _, must := range []string{".git", ".deps", "build"} {
		if !ignored(must, pats) {
			t.Errorf(".dockerignore does not leave out %s", must)
		}
	}
	var buildRuns []string
	for _, in := range ins {
		if in.stage == 0 && in.cmd == "RUN" {
			buildRuns = append(buildRuns, in.args)
		}
	}
	scriptRef := regexp.MustCompile(`(?:^|[\s;&|(])(scripts/[A-Za-z0-9_.-]+)`)
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			if !strings.HasPrefix(in.args, "debian:bookworm-slim") {
				t.Errorf("FROM %s: want debian:bookworm-slim", in.args)
			}
		case "COPY":
			flags, srcs, _ := copyArgs(in.args)
			if len(flags) > 0 && strings.HasPrefix(flags[0], "--from=") {
				for _, src := range srcs {
					if !builtInStage(src, buildRuns) {
						t.Errorf("COPY %s: no RUN of the build stage makes %s", in.args, src)
					}
				}
				continue
			}
			for _, src := range srcs {
				matches, _ := filepath.Glob(filepath.Join(repoRoot, src))
				if len(matches) == 0 {
					t.Errorf("COPY %s: %s does not exist in the repository", in.args, src)
				}
				if ignored(strings.TrimSuffix(src, "/"), pats) {
					t.Errorf("COPY %s: .dockerignore leaves %s out of the build context", in.args, src)
				}
			}
		case "RUN":
			for _, m := range scriptRef.FindAllStringSubmatch(in.args, -1) {
				st, err := os.Stat(filepath.Join(repoRoot, m[1]))
				if err != nil {
					t.Errorf("RUN %s: %v", in.args, err)
				} else if st.Mode()&0o111 == 0 {
					t.Errorf("RUN %s: %s is not executable", in.args, m[1])
				}
				if in.stage == 0 && !copiedBefore(ins, in, m[1]) {
					t.Errorf("RUN %s: %s is not copied into the build stage before", in.args, m[1])
				}
			}
			if strings.Contains(in.args, "scripts/setup --build-only") {
				setup, _ := os.ReadFile(filepath.Join(repoRoot, "scripts", "setup"))
				if !strings.Contains(string(setup), "--build-only) BUILD_ONLY=1") {
					t.Error("the Dockerfile runs scripts/setup --build-only, which scripts/setup does not accept")
				}
			}
		}
	}
}

// builtInStage: a path the runtime stage copies from the build stage is made there: CMake's
// output (build/<target>) or a folder a RUN creates or names.
func builtInStage(src string, runs []string) bool {
	all := strings.Join(runs, "\n")
	if target, ok := strings.CutPrefix(src, "/src/build/"); ok {
		return regexp.MustCompile(`-B build\b`).MatchString(all) &&
			regexp.MustCompile(`--target `+regexp.QuoteMeta(target)+`(\s|$)`).MatchString(all)
	}
	return strings.Contains(all, strings.TrimSuffix(src, "/"))
}

// copiedBefore: the build stage copies path (or a folder holding it) before instruction at.
func copiedBefore(ins []instruction, at instruction, path string) bool {
	for _, in := range ins {
		if in == at {
			return false
		}
		if in.stage != at.stage || in.cmd != "COPY" {
			continue
		}
		_, srcs, _ := copyArgs(in.args)
		for _, s := range srcs {
			if s == path || strings.HasPrefix(path, strings.TrimSuffix(s, "/")+"/") {
				return true
			}
		}
	}
	return false
}

func TestDockerfileMatchesChart(t *testing.T) {
	ins := parseDockerfile(t)
	last := map[string]string{} // runtime stage: the last value of each instruction
	var copies []instruction
	var runs []string
	for _, in := range ins {
		if in.stage != 1 {
			continue
		}
		last[in.cmd] = in.args
		switch in.cmd {
		case "COPY":
			copies = append(copies, in)
		case "RUN":
			runs = append(runs, in.args)
		}
	}
	r, err := Render(filepath.Join(valuesDir, "shadow.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	d := deployment(t, r, full)
	c := container(t, d)

	// user
	if uid := strings.Split(last["USER"], ":")[0]; uid != "10001" || *d.Spec.Template.Spec.SecurityContext.RunAsUser != 10001 ||
		*c.SecurityContext.RunAsUser != 10001 {
		t.Errorf("USER %s: want 10001, as the chart's runAsUser", last["USER"])
	}
	if !strings.Contains(strings.Join(runs, "\n"), "--uid 10001") {
		t.Error("the runtime stage creates no user 10001")
	}
	// port and health check
	port := c.Ports[0].ContainerPort
	if last["EXPOSE"] != "9464" || port != 9464 {
		t.Errorf("EXPOSE %s, chart port %d: want 9464 both", last["EXPOSE"], port)
	}
	hc := last["HEALTHCHECK"]
	if !strings.Contains(hc, "/dev/tcp/127.0.0.1/9464") || !strings.Contains(hc, "GET "+c.LivenessProbe.HTTPGet.Path+" ") {
		t.Errorf("HEALTHCHECK %s: want GET %s on port 9464", hc, c.LivenessProbe.HTTPGet.Path)
	}
	// command: the chart's args are the image's CMD, the chart's properties are where CMD reads them
	var entry, cmd []string
	if err := json.Unmarshal([]byte(last["ENTRYPOINT"]), &entry); err != nil || len(entry) != 1 || entry[0] != "streamscore" {
		t.Errorf("ENTRYPOINT %s: want [\"streamscore\"]", last["ENTRYPOINT"])
	}
	if err := json.Unmarshal([]byte(last["CMD"]), &cmd); err != nil || strings.Join(cmd, " ") != strings.Join(c.Args, " ") {
		t.Errorf("CMD %s differs from the chart's args %q", last["CMD"], c.Args)
	}
	if m := mount(c, "/etc/streamscore"); m == nil || c.Args[len(c.Args)-1] != m.MountPath+"/"+propsKey {
		t.Errorf("the chart does not mount its properties at %s", c.Args[len(c.Args)-1])
	}
	if !shipped(t, copies, "/etc/streamscore/streamscore.properties") {
		t.Error("the image has no default /etc/streamscore/streamscore.properties")
	}
	// the models the chart's defaults point at, their cards, and the schemas (relative to WORKDIR)
	if last["WORKDIR"] != "/opt/streamscore" {
		t.Errorf("WORKDIR %s, want /opt/streamscore", last["WORKDIR"])
	}
	for _, name := range []string{full, shadowName} {
		model := props(t, r, name)["model.path"]
		card := regexp.MustCompile(`\.(json|ubj)$`).ReplaceAllString(model, ".card.json")
		for _, p := range []string{model, card} {
			if !shipped(t, copies, p) {
				t.Errorf("%s: %s is not in the image", name, p)
			}
		}
	}
	for _, p := range []string{"schemas/customer_event.avsc", "schemas/prediction.avsc"} {
		if !shipped(t, copies, last["WORKDIR"]+"/"+p) {
			t.Errorf("%s/%s is not in the image", last["WORKDIR"], p)
		}
	}
	// the runtime libraries: Debian's, and what librdkafka (built by scripts/setup) links
	install := strings.Join(runs, "\n")
	installs := func(pkg string) bool {
		return regexp.MustCompile(`\s` + regexp.QuoteMeta(pkg) + `(\s|$)`).MatchString(install)
	}
	for _, pkg := range []string{"libavro23", "libmicrohttpd12", "libjansson4", "libcurl4", "libssl3",
		"libsasl2-2", "libzstd1", "liblz4-1", "ca-certificates"} {
		if !installs(pkg) {
			t.Errorf("the runtime stage does not install %s", pkg)
		}
	}
	if strings.Contains(install, "-dev") {
		t.Error("the runtime stage installs -dev packages")
	}
	// librdkafka and hiredis are the build stage's (scripts/setup builds them), never Debian's
	for _, pkg := range []string{"librdkafka1", "libhiredis0.14"} {
		if installs(pkg) {
			t.Errorf("the runtime stage installs Debian's %s: the worker would load it", pkg)
		}
	}
	var buildRuns []string
	libsCopied := false
	for _, in := range ins {
		if in.stage == 0 && in.cmd == "RUN" {
			buildRuns = append(buildRuns, in.args)
		}
	}
	for _, in := range copies {
		if flags, srcs, dst := copyArgs(in.args); len(flags) > 0 && flags[0] == "--from=build" &&
			srcs[0] == "/out/lib/" && dst == "/usr/local/lib/" {
			libsCopied = true
		}
	}
	for _, lib := range []string{".deps/librdkafka/lib/librdkafka.so.1", ".deps/hiredis/lib/libhiredis.so.1.1.0",
		".deps/hiredis/lib/libhiredis_ssl.so.1.1.0"} {
		if !libsCopied || !strings.Contains(strings.Join(buildRuns, "\n"), lib) {
			t.Errorf("%s does not reach /usr/local/lib through the build stage's /out/lib", lib)
		}
	}
}

// shipped: a COPY from the build context puts the repository file behind image path p.
func shipped(t *testing.T, copies []instruction, p string) bool {
	t.Helper()
	for _, in := range copies {
		flags, srcs, dst := copyArgs(in.args)
		if len(flags) > 0 {
			continue
		}
		for _, src := range srcs {
			var rel string
			switch {
			case strings.HasSuffix(dst, "/") && strings.HasSuffix(src, "/"): // folder into folder
				r, ok := strings.CutPrefix(p, dst)
				if !ok {
					continue
				}
				rel = filepath.Join(src, r)
			case strings.HasSuffix(dst, "/"): // files (a glob) into a folder
				if filepath.Dir(p)+"/" != dst {
					continue
				}
				if ok, _ := filepath.Match(filepath.Base(src), filepath.Base(p)); !ok {
					continue
				}
				rel = filepath.Join(filepath.Dir(src), filepath.Base(p))
			default: // one file
				if dst != p {
					continue
				}
				rel = src
			}
			if _, err := os.Stat(filepath.Join(repoRoot, rel)); err == nil {
				return true
			}
		}
	}
	return false
}
