package main

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

// mergeRuns holds report.json files from real runs (payloads trimmed):
//
//	qemu-json        ddhil run --target qemu --periods 2                          pass
//	qemu-cbor-short  ... --format cbor --keys short                               pass
//	qemu-ns-inflate  ... --fault ns-inflate                                       fail (DD-A02)
//	renode-lab-error ddhil run --target renode --renode /nonexistent --periods 2  error (lab)
//	qemu-only-3-checks ... --only DD-S01,DD-S03,DD-T01                             pass
//	qemu-interrupted ... --periods 8, SIGINT after 7 s: incomplete                 error
const mergeRuns = "testdata/merge"

// copyRuns copies the named runs into a fresh directory (so report.html
// files can be added) and returns it.
func copyRuns(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(mergeRuns, n, "report.json"))
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(dir, n), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, n, "report.json"), b, 0o644))
	}
	return dir
}

func TestMergeRealRuns(t *testing.T) {
	runs := copyRuns(t, "qemu-json", "qemu-cbor-short", "qemu-ns-inflate", "renode-lab-error")
	require.NoError(t, os.WriteFile(filepath.Join(runs, "qemu-ns-inflate", "report.html"), []byte("<!DOCTYPE html>"), 0o644))
	out := filepath.Join(t.TempDir(), "matrix")

	code, stdout, stderr := runCLI("merge", "--out", out, runs)
	assert.Equal(t, exitLab, code, "a lab error wins over the failure: %s", stderr)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, runs+": found 4 report.json\n")
	assert.Contains(t, stderr, "4 runs, 24 checks: 2 pass, 1 fail, 1 error: error\n")

	md, err := os.ReadFile(filepath.Join(out, "matrix.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "| Check | Title | qemu-cbor-short | qemu-json | qemu-ns-inflate | renode-lab-error |\n")
	assert.Contains(t, string(md), "| DD-A02 | network\\_stats agree with the traffic the harness carried | ✅ | ✅ | ❌ 8 | 🛑 |\n",
		"the failing check is the first row")
	assert.Contains(t, string(md), "| `qemu-cbor-short` | ✅ pass | qemu netduinoplus2 | `ddagent.elf` `41ed0473ace3` | ddagent · ddhil-dut-1 · cbor · short |")
	assert.Contains(t, string(md), "| `renode-lab-error` | 🛑 error (incomplete) | renode |")
	assert.Contains(t, string(md), "- 🛑 `renode-lab-error`: lab error: renode: binary \"/nonexistent\"")
	assert.Contains(t, string(md), "  - ❌ `qemu-ns-inflate` fail (8 findings): ")

	page, err := os.ReadFile(filepath.Join(out, "matrix.html"))
	require.NoError(t, err)
	doc, err := html.Parse(strings.NewReader(string(page)))
	require.NoError(t, err)
	var hrefs []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "a" {
			for _, a := range n.Attr {
				if a.Key == "href" {
					hrefs = append(hrefs, a.Val)
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	// Only the run with a report.html is linked: its header, 24 cells and
	// its row in the runs table, relative to matrix.html.
	rel, err := filepath.Rel(out, filepath.Join(runs, "qemu-ns-inflate", "report.html"))
	require.NoError(t, err)
	assert.Len(t, hrefs, 26, "%v", hrefs)
	assert.Contains(t, hrefs, filepath.ToSlash(rel)+"#check-DD-A02")
	for _, h := range hrefs {
		assert.True(t, strings.HasPrefix(h, filepath.ToSlash(rel)), h)
		// the link resolves from the page's directory
		_, err := os.Stat(filepath.Join(out, strings.SplitN(h, "#", 2)[0]))
		assert.NoError(t, err, h)
	}

	junit, err := os.ReadFile(filepath.Join(out, "matrix-junit.xml"))
	require.NoError(t, err)
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Errors   int `xml:"errors,attr"`
		Skipped  int `xml:"skipped,attr"`
		Suites   []struct {
			Name string `xml:"name,attr"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(junit, &suites))
	assert.Len(t, suites.Suites, 4)
	// 4×24 checks + "run completed" for the lab run; DD-A02 fails once; the
	// lab run errors 24 checks + its run; T02 and X01 skip in 3 runs.
	assert.Equal(t, [4]int{97, 1, 25, 6}, [4]int{suites.Tests, suites.Failures, suites.Errors, suites.Skipped})
}

func TestMergeChecksNotRunShowADash(t *testing.T) {
	runs := copyRuns(t, "qemu-json", "qemu-only-3-checks")
	code, stdout, stderr := runCLI("merge", "--md", "-", runs)
	assert.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "| Check | Title | qemu-json | qemu-only-3-checks |\n")
	assert.Contains(t, stdout, "| DD-A02 | network\\_stats agree with the traffic the harness carried | ✅ | — |\n")
	// Rows some run did not run come before rows every run passed.
	assert.Less(t, strings.Index(stdout, "| DD-X02 "), strings.Index(stdout, "| DD-S01 "))
	assert.Contains(t, stdout, "| DD-T01 | First report within the profile's bound after each MQTT connection | ✅ | ✅ |\n")
	assert.NotContains(t, stdout, "What failed where")
}

func TestMergeMarksAnIncompleteRun(t *testing.T) {
	runs := copyRuns(t, "qemu-json", "qemu-interrupted")
	out := t.TempDir()
	code, _, stderr := runCLI("merge", "--out", out, runs)
	assert.Equal(t, exitLab, code, "an unfinished run is never a pass: %s", stderr)

	md, err := os.ReadFile(filepath.Join(out, "matrix.md"))
	require.NoError(t, err)
	assert.Contains(t, string(md), "| `qemu-interrupted` | 🛑 error (incomplete) | qemu netduinoplus2 |")
	assert.Contains(t, string(md), "- 🛑 `qemu-interrupted`: run incomplete: interrupted: context canceled\n")

	page, err := os.ReadFile(filepath.Join(out, "matrix.html"))
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(page), `<span class="flag" title="run incomplete: interrupted: context canceled">incomplete</span>`))

	junit, err := os.ReadFile(filepath.Join(out, "matrix-junit.xml"))
	require.NoError(t, err)
	var doc struct {
		Suites []struct {
			Name   string `xml:"name,attr"`
			Errors int    `xml:"errors,attr"`
			Cases  []struct {
				Name  string `xml:"name,attr"`
				Error *struct {
					Message string `xml:"message,attr"`
				} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(junit, &doc))
	require.Len(t, doc.Suites, 2)
	s := doc.Suites[0] // directories are walked in lexical order
	assert.Equal(t, "qemu-interrupted", s.Name)
	assert.Equal(t, 1, s.Errors)
	last := s.Cases[len(s.Cases)-1]
	assert.Equal(t, "run completed", last.Name)
	require.NotNil(t, last.Error)
	assert.Equal(t, "run incomplete with no failure so far: interrupted: context canceled", last.Error.Message)
	assert.Equal(t, "qemu-json", doc.Suites[1].Name)
	assert.Equal(t, 0, doc.Suites[1].Errors)
}

func TestMergeExitCodes(t *testing.T) {
	runs := copyRuns(t, "qemu-json", "qemu-cbor-short", "qemu-ns-inflate", "renode-lab-error")
	at := func(n string) string { return filepath.Join(runs, n, "report.json") }
	cases := []struct {
		name string
		in   []string
		code int
	}{
		{"all pass", []string{at("qemu-json"), at("qemu-cbor-short")}, exitOK},
		{"one failed", []string{at("qemu-json"), at("qemu-ns-inflate")}, exitFail},
		{"lab error alone", []string{at("renode-lab-error")}, exitLab},
		{"lab error wins over a failure", []string{at("qemu-ns-inflate"), at("renode-lab-error")}, exitLab},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(append([]string{"merge", "--md", "-"}, tc.in...)...)
			assert.Equal(t, tc.code, code, stderr)
			assert.True(t, strings.HasPrefix(stdout, "## "), stdout)
		})
	}
}

func TestMergeFilesAndDirectoriesTogether(t *testing.T) {
	runs := copyRuns(t, "qemu-json", "qemu-ns-inflate")
	junit := filepath.Join(t.TempDir(), "j.xml")
	// The directory and a file inside it: the file is read once.
	code, stdout, stderr := runCLI("merge", "--junit", junit, "--html", "-",
		filepath.Join(runs, "qemu-json", "report.json"), runs)
	assert.Equal(t, exitFail, code, stderr)
	assert.Contains(t, stdout, "<!DOCTYPE html>")
	assert.Contains(t, stderr, "found 2 report.json")
	assert.Contains(t, stderr, "2 runs, 24 checks: 1 pass, 1 fail, 0 error: fail")
	b, err := os.ReadFile(junit)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(b), "<testsuite "))
}

func TestMergeUsageErrors(t *testing.T) {
	runs := copyRuns(t, "qemu-json")
	good := filepath.Join(runs, "qemu-json", "report.json")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	notReport := write("page/report.html", "<html></html>")
	future := write("future/report.json", `{"schema":"ddhil.report/v2","verdict":"pass"}`)
	other := write("other.json", `{"name":"not a report"}`)
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.MkdirAll(empty, 0o755))
	out := filepath.Join(dir, "out")

	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"no inputs", []string{"--out", out}, []string{"no inputs"}},
		{"no outputs", []string{good}, []string{"give --out DIR or at least one of --html, --md, --junit"}},
		{"out and a single output", []string{"--out", out, "--md", "x.md", good}, []string{"do not combine it with --md"}},
		{"two outputs on stdout", []string{"--md", "-", "--junit", "-", good}, []string{"only one output can go to stdout"}},
		{"unknown flag", []string{"--pdf", "x", good}, []string{"flag provided but not defined: -pdf"}},
		{"missing file", []string{"--out", out, good, filepath.Join(dir, "nope.json")}, []string{"nope.json does not exist"}},
		{"directory without reports", []string{"--out", out, empty}, []string{"empty: no report.json found"}},
		{"not JSON", []string{"--out", out, notReport}, []string{"report.html: report: not a JSON object"}},
		{"other schema", []string{"--out", out, future}, []string{`unsupported schema "ddhil.report/v2"`}},
		{"not a report", []string{"--out", out, other}, []string{`no "schema" field: not a ddhil report`}},
		{"every bad input at once", []string{"--out", out, other, filepath.Join(dir, "future"), good, filepath.Join(dir, "nope")},
			[]string{"3 bad inputs:\n", "\n  " + other + ": report: no \"schema\"", "future/report.json: report: unsupported schema", "nope does not exist"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(append([]string{"merge"}, tc.args...)...)
			assert.Equal(t, exitUsage, code, stderr)
			for _, w := range tc.want {
				assert.Contains(t, stderr, w)
			}
			assert.Empty(t, stdout)
			_, err := os.Stat(out)
			assert.ErrorIs(t, err, os.ErrNotExist, "nothing written on a usage error")
		})
	}
}

func TestMergeUnwritableOutput(t *testing.T) {
	runs := copyRuns(t, "qemu-json")
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	code, _, stderr := runCLI("merge", "--html", filepath.Join(file, "m.html"), runs)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "ddhil merge: --html: report: ")
}

func TestMergeHelp(t *testing.T) {
	code, _, stderr := runCLI("merge", "-h")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stderr, "exit status:")
	assert.Contains(t, stderr, "3 wins over 1")
	assert.Contains(t, stderr, "-out dir")

	_, _, stderr = runCLI("help")
	assert.Contains(t, stderr, "merge      merge many runs' report.json")
}
