package main

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goldenReport is the sample run report the harness/report golden tests keep
// up to date; `ddhil report` must re-render it unchanged.
const goldenReport = "../../harness/report/testdata/report.json.golden"

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = dispatch(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestReportRendersEveryFormat(t *testing.T) {
	dir := t.TempDir()
	paths := map[string]string{}
	for _, f := range []string{"html", "md", "junit", "json"} {
		paths[f] = filepath.Join(dir, "out."+f)
	}
	code, stdout, stderr := runCLI("report", "--in", goldenReport,
		"--html", paths["html"], "--md", paths["md"], "--junit", paths["junit"], "--json", paths["json"])
	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stdout)
	assert.Empty(t, stderr)

	golden, err := os.ReadFile(goldenReport)
	require.NoError(t, err)
	got, err := os.ReadFile(paths["json"])
	require.NoError(t, err)
	assert.Equal(t, string(golden), string(got), "re-rendered JSON differs from its input")

	for f, want := range map[string]string{
		"html":  `<div class="word">ERROR</div>`,
		"md":    "## 🛑 ddhil: ERROR",
		"junit": `<testsuite name="ddhil" tests="22" failures="3" errors="1" skipped="3"`,
	} {
		b, err := os.ReadFile(paths[f])
		require.NoError(t, err, f)
		assert.Contains(t, string(b), want, f)
	}
	junit, _ := os.ReadFile(paths["junit"])
	var doc struct {
		XMLName xml.Name `xml:"testsuites"`
	}
	require.NoError(t, xml.Unmarshal(junit, &doc), "junit output is XML")
}

func TestReportToStdoutAndFromDir(t *testing.T) {
	dir := t.TempDir()
	golden, err := os.ReadFile(goldenReport)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "report.json"), golden, 0o644))

	code, stdout, stderr := runCLI("report", "--in", dir, "--md", "-")
	require.Equal(t, exitOK, code, stderr)
	assert.True(t, strings.HasPrefix(stdout, "## 🛑 ddhil: ERROR\n"), stdout)
}

func TestReportErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	garbage := write("garbage.json", "{\"schema\": \"ddhil.report/v1\",\n  \"checks\": [oops]}")
	future := write("future.json", `{"schema":"ddhil.report/v2","verdict":"pass"}`)
	html := write("not-json.html", "<html></html>")
	golden, err := os.ReadFile(goldenReport)
	require.NoError(t, err)
	tampered := write("tampered.json", strings.Replace(string(golden), `"verdict": "error"`, `"verdict": "pass"`, 1))
	out := filepath.Join(dir, "out.html")
	blocked := filepath.Join(write("a-file", ""), "out.html")

	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no outputs", []string{"--in", goldenReport}, exitUsage, "give at least one of --json, --junit, --md, --html"},
		{"no input", []string{"--html", out}, exitUsage, "--in is required"},
		{"two outputs on stdout", []string{"--in", goldenReport, "--md", "-", "--json", "-"}, exitUsage, "only one output can go to stdout"},
		{"stray argument", []string{"--in", goldenReport, "--md", "-", "extra"}, exitUsage, `unexpected argument "extra"`},
		{"unknown flag", []string{"--in", goldenReport, "--pdf", out}, exitUsage, "flag provided but not defined: -pdf"},
		{"missing input", []string{"--in", filepath.Join(dir, "nope.json"), "--html", out}, exitFail, "nope.json does not exist"},
		{"not json", []string{"--in", html, "--html", out}, exitFail, "report: not a JSON object"},
		{"syntax error", []string{"--in", garbage, "--html", out}, exitFail, "line 2 column"},
		{"other schema version", []string{"--in", future, "--html", out}, exitFail, `unsupported schema "ddhil.report/v2"`},
		{"inconsistent verdict", []string{"--in", tampered, "--html", out}, exitFail, `verdict is "pass" but the checks give "error"`},
		{"unwritable output", []string{"--in", goldenReport, "--html", blocked}, exitFail, "--html: report: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(append([]string{"report"}, tc.args...)...)
			assert.Equal(t, tc.code, code, stderr)
			assert.Contains(t, stderr, tc.want)
			assert.Empty(t, stdout)
			_, err := os.Stat(out)
			assert.ErrorIs(t, err, os.ErrNotExist, "no output written on error")
		})
	}
}

func TestReportHelp(t *testing.T) {
	code, _, stderr := runCLI("report", "-h")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stderr, "exit status:")
	assert.Contains(t, stderr, "-junit file")

	code, _, stderr = runCLI("help")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stderr, "report     re-render a run's report.json")
}
