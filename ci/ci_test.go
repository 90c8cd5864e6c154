// Package ci holds CI templates for users of ddhil (GitHub Actions with
// Renode, a self-hosted board runner, GitLab CI). This test keeps them
// honest: every file parses, has the structure its CI system needs, calls
// only make targets the Makefile defines and names only paths that exist.
package ci

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

const repoRoot = ".."

func load(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc), path)
	require.NotEmpty(t, doc, path)
	return doc
}

func templates(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			files = append(files, p)
		}
		return nil
	})
	require.NoError(t, err)
	sort.Strings(files)
	return files
}

func TestTemplatesExistAndParse(t *testing.T) {
	files := templates(t)
	assert.Equal(t, []string{"github/hil-self-hosted.yml", "github/renode.yml", "gitlab/.gitlab-ci.yml"}, files)
	for _, f := range files {
		t.Run(f, func(t *testing.T) { load(t, f) })
	}
}

func asMap(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "%s is a mapping, got %T", what, v)
	return m
}

func asList(t *testing.T, v any, what string) []any {
	t.Helper()
	l, ok := v.([]any)
	require.True(t, ok, "%s is a list, got %T", what, v)
	return l
}

// strings collects every string scalar in a YAML tree.
func allStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case string:
		out = append(out, x)
	case map[string]any:
		for k, e := range x {
			out = append(out, k)
			out = append(out, allStrings(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, allStrings(e)...)
		}
	}
	return out
}

type ghStep struct {
	name, uses, run, cond string
	with                  map[string]any
}

func githubSteps(t *testing.T, doc map[string]any) (map[string]any, []ghStep) {
	t.Helper()
	for _, k := range []string{"name", "on", "permissions", "jobs"} {
		require.Contains(t, doc, k)
	}
	jobs := asMap(t, doc["jobs"], "jobs")
	require.Len(t, jobs, 1)
	var job map[string]any
	for _, j := range jobs {
		job = asMap(t, j, "job")
	}
	for _, k := range []string{"name", "runs-on", "timeout-minutes", "steps"} {
		require.Contains(t, job, k)
	}
	var steps []ghStep
	for i, s := range asList(t, job["steps"], "steps") {
		m := asMap(t, s, "step")
		st := ghStep{}
		st.name, _ = m["name"].(string)
		st.uses, _ = m["uses"].(string)
		st.run, _ = m["run"].(string)
		st.cond, _ = m["if"].(string)
		if w, ok := m["with"]; ok {
			st.with = asMap(t, w, "with")
		}
		assert.NotEmpty(t, st.name, "step %d has a name", i)
		assert.True(t, (st.uses == "") != (st.run == ""), "step %q has exactly one of uses/run", st.name)
		if st.uses != "" {
			assert.Regexp(t, `^[\w-]+/[\w-]+@v\d+$`, st.uses, "action pinned to a major version")
		}
		steps = append(steps, st)
	}
	return job, steps
}

func findUses(steps []ghStep, action string) *ghStep {
	for i := range steps {
		if strings.HasPrefix(steps[i].uses, action+"@") {
			return &steps[i]
		}
	}
	return nil
}

func findRun(steps []ghStep, sub string) *ghStep {
	for i := range steps {
		if strings.Contains(steps[i].run, sub) {
			return &steps[i]
		}
	}
	return nil
}

// reporting checks the steps every template shares: JUnit to a test
// reporter, report.md to the job summary, the run folder as an artifact,
// all of them also after a failed suite.
func reporting(t *testing.T, steps []ghStep) {
	t.Helper()
	rep := findUses(steps, "dorny/test-reporter")
	require.NotNil(t, rep, "JUnit published")
	assert.Equal(t, "java-junit", rep.with["reporter"])
	assert.True(t, strings.HasSuffix(rep.with["path"].(string), "junit.xml"))
	sum := findRun(steps, "$GITHUB_STEP_SUMMARY")
	require.NotNil(t, sum, "report.md appended to the job summary")
	assert.Contains(t, sum.run, "report.md")
	up := findUses(steps, "actions/upload-artifact")
	require.NotNil(t, up, "run folder uploaded")
	assert.Equal(t, "run/", up.with["path"])
	for _, s := range []*ghStep{rep, sum, up} {
		assert.Contains(t, s.cond, "cancelled()", "%q also runs after a failed suite", s.name)
	}
	co := findUses(steps, "actions/checkout")
	require.NotNil(t, co)
	gosetup := findUses(steps, "actions/setup-go")
	require.NotNil(t, gosetup)
	assert.Equal(t, "go.mod", gosetup.with["go-version-file"])
}

func TestGitHubRenodeWorkflow(t *testing.T) {
	doc := load(t, "github/renode.yml")
	job, steps := githubSteps(t, doc)
	assert.Equal(t, "ubuntu-24.04", job["runs-on"])
	reporting(t, steps)
	apt := findRun(steps, "apt-get install")
	require.NotNil(t, apt)
	assert.Contains(t, apt.run, "gcc-arm-none-eabi")
	fw := findRun(steps, "make firmware")
	suite := findRun(steps, "make renode")
	require.NotNil(t, fw)
	require.NotNil(t, suite)
	env := asMap(t, doc["env"], "env")
	assert.Regexp(t, `^antmicro/renode:\S+$`, env["RENODE_IMAGE"])
	assert.Contains(t, suite.run, `RENODE_IMAGE="$RENODE_IMAGE"`)
	perms := asMap(t, doc["permissions"], "permissions")
	assert.Equal(t, "write", perms["checks"], "the test reporter needs checks: write")
}

func TestGitHubSelfHostedWorkflow(t *testing.T) {
	doc := load(t, "github/hil-self-hosted.yml")
	job, steps := githubSteps(t, doc)
	labels := asList(t, job["runs-on"], "runs-on")
	assert.Contains(t, labels, "self-hosted")
	reporting(t, steps)
	env := asMap(t, doc["env"], "env")
	hwmap, _ := env["HWMAP"].(string)
	assert.FileExists(t, filepath.Join(repoRoot, hwmap), "the default hardware map is a repository file")
	secret := findRun(steps, "$HWMAP_SECRET")
	require.NotNil(t, secret, "or the map comes from a secret")
	assert.Contains(t, strings.Join(allStrings(doc), "\n"), "secrets.DDHIL_HWMAP")
	suite := findRun(steps, "make hil")
	require.NotNil(t, suite)
	assert.Contains(t, suite.run, `HWMAP="$HWMAP"`)
	assert.NotNil(t, findRun(steps, "boards --hwmap"), "boards checked against the map first")
	assert.Contains(t, doc, "concurrency", "one run per bench")
}

func TestGitLabTemplate(t *testing.T) {
	doc := load(t, "gitlab/.gitlab-ci.yml")
	stages := asList(t, doc["stages"], "stages")
	reserved := map[string]bool{"stages": true, "variables": true, "default": true, "include": true, "workflow": true}
	jobs := map[string]map[string]any{}
	for k, v := range doc {
		if reserved[k] || strings.HasPrefix(k, ".") {
			continue
		}
		jobs[k] = asMap(t, v, k)
	}
	require.Contains(t, jobs, "firmware")
	require.Contains(t, jobs, "renode:docker")
	require.Contains(t, jobs, "renode:image")
	for name, j := range jobs {
		assert.Contains(t, stages, j["stage"], "job %s has a declared stage", name)
		assert.NotEmpty(t, asList(t, j["script"], name+".script"))
		assert.Contains(t, j, "image")
		if needs, ok := j["needs"]; ok {
			for _, n := range asList(t, needs, name+".needs") {
				assert.Contains(t, jobs, n, "job %s needs an existing job", name)
			}
		}
		if strings.HasPrefix(name, "renode:") {
			art := asMap(t, j["artifacts"], name+".artifacts")
			assert.Equal(t, "always", art["when"])
			reports := asMap(t, art["reports"], name+".artifacts.reports")
			assert.True(t, strings.HasSuffix(reports["junit"].(string), "junit.xml"), "%s publishes JUnit", name)
		}
	}
	dind := jobs["renode:docker"]
	svc := asMap(t, asList(t, dind["services"], "services")[0], "service")
	assert.Contains(t, svc["name"], "dind")
	vars := asMap(t, dind["variables"], "variables")
	assert.Equal(t, "tcp://docker:2375", vars["DOCKER_HOST"])
	assert.Equal(t, "docker", vars["TESTCONTAINERS_HOST_OVERRIDE"], "published ports are on the dind service")
	img := jobs["renode:image"]
	assert.Regexp(t, `^antmicro/renode:\S+$`, img["image"])
	assert.Contains(t, strings.Join(allStrings(img["script"]), "\n"), "-ddhil.target=renode -ddhil.renode=")
}

// makeTargets parses the rule names of the repository's Makefile.
func makeTargets(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	require.NoError(t, err)
	targets := map[string]bool{}
	rule := regexp.MustCompile(`(?m)^([A-Za-z0-9_.-]+)\s*:([^=]|$)`)
	for _, m := range rule.FindAllStringSubmatch(string(raw), -1) {
		targets[m[1]] = true
	}
	return targets
}

var makeCallRE = regexp.MustCompile(`\bmake((?:\s+-\S+)*)\s+([a-z][\w-]*)`)

func TestMakeTargetsExist(t *testing.T) {
	targets := makeTargets(t)
	for _, want := range []string{"deps", "firmware", "build", "test", "demo", "run", "renode", "hil", "bench"} {
		assert.True(t, targets[want], "Makefile defines %q", want)
	}
	for _, f := range templates(t) {
		calls := 0
		for _, s := range allStrings(load(t, f)) {
			for _, m := range makeCallRE.FindAllStringSubmatch(s, -1) {
				if strings.Contains(m[1], "-C") {
					continue // another directory's Makefile
				}
				calls++
				assert.True(t, targets[m[2]], "%s calls `make %s`, which the Makefile lacks", f, m[2])
			}
		}
		assert.Positive(t, calls, "%s uses the Makefile", f)
	}
}

// Repository paths named in the templates must exist; build outputs and
// the run folder are made by the jobs themselves.
var pathRE = regexp.MustCompile(`(?:^|[\s="'])(\./)?((?:fixtures|firmware|cmd|tests|harness|docs|ci)/(?:[\w./-]*[\w/])?)`)

func TestReferencedPathsExist(t *testing.T) {
	for _, f := range templates(t) {
		seen := 0
		for _, s := range allStrings(load(t, f)) {
			for _, m := range pathRE.FindAllStringSubmatch(s, -1) {
				p := strings.TrimSuffix(strings.TrimSuffix(m[2], "/..."), "/")
				if strings.HasPrefix(p, "firmware/build") {
					continue
				}
				seen++
				_, err := os.Stat(filepath.Join(repoRoot, p))
				assert.NoError(t, err, "%s names %s", f, p)
			}
		}
		t.Logf("%s: %d repository paths checked", f, seen)
	}
	for _, f := range []string{"github/renode.yml", "github/hil-self-hosted.yml"} {
		assert.Contains(t, allStrings(load(t, f)), "go.mod")
	}
	assert.FileExists(t, filepath.Join(repoRoot, "go.mod"))
}

func TestReadmeNamesEveryTemplate(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	require.NoError(t, err)
	for _, f := range templates(t) {
		assert.Contains(t, string(raw), f, "ci/README.md explains %s", f)
	}
}

// The extractors find what they must, so the checks above can fail.
func TestExtractors(t *testing.T) {
	cases := []struct {
		name  string
		text  string
		make  []string
		paths []string
	}{
		{"make with variables", `make renode RENODE_IMAGE="$RENODE_IMAGE"`, []string{"renode"}, nil},
		{"make with flags", "make -k hil HWMAP=x", []string{"hil"}, nil},
		{"other directory", "make -C firmware clean", nil, nil},
		{"go run", "go run ./cmd/ddhil boards --hwmap fixtures/hwmap/lab.yaml", nil, []string{"cmd/ddhil", "fixtures/hwmap/lab.yaml"}},
		{"package pattern", "go test ./tests/... -args", nil, []string{"tests/"}},
		{"env value", "HWMAP=fixtures/hwmap/example.yaml", nil, []string{"fixtures/hwmap/example.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, m := range makeCallRE.FindAllStringSubmatch(tc.text, -1) {
				if !strings.Contains(m[1], "-C") {
					got = append(got, m[2])
				}
			}
			assert.Equal(t, tc.make, got)
			var paths []string
			for _, m := range pathRE.FindAllStringSubmatch(tc.text, -1) {
				paths = append(paths, m[2])
			}
			assert.Equal(t, tc.paths, paths)
		})
	}
	assert.False(t, makeTargets(t)["no-such-target"])
}

// DDHIL_OUT in a template is the run folder the suites write into
// ($DDHIL_OUT/<run>, tests/targets_renode_test.go): absolute (go test runs
// in each package's directory) and the run/ that the templates collect.
func TestRunFolderIsWhereTheSuitesWrite(t *testing.T) {
	cases := []struct {
		file, envKey, want string
	}{
		{"github/renode.yml", "env", "${{ github.workspace }}/run"},
		{"github/hil-self-hosted.yml", "env", "${{ github.workspace }}/run"},
		{"gitlab/.gitlab-ci.yml", "variables", "$CI_PROJECT_DIR/run"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			doc := load(t, tc.file)
			env := asMap(t, doc[tc.envKey], tc.envKey)
			assert.Equal(t, tc.want, env["DDHIL_OUT"])
			text := strings.Join(allStrings(doc), "\n")
			assert.Contains(t, text, "run/**/junit.xml", "JUnit collected from every run folder")
		})
	}
	readers := 0
	files, err := filepath.Glob(filepath.Join(repoRoot, "tests", "*_test.go"))
	require.NoError(t, err)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		if strings.Contains(string(raw), `os.Getenv("DDHIL_OUT")`) {
			readers++
		}
	}
	assert.Positive(t, readers, "a suite in tests/ writes its run folder under $DDHIL_OUT")
}
