package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const reportCorpus = "../../fixtures/reports"

// validateCase is the part of fixtures/reports/cases.json this test needs.
type validateCase struct {
	File     string   `json:"file"`
	Format   string   `json:"format"`
	Lenient  bool     `json:"lenient"`
	Accepted bool     `json:"accepted"`
	Code     string   `json:"code"`
	Path     string   `json:"path"`
	Reason   string   `json:"reason"`
	ReportID *uint64  `json:"report_id"`
	Lint     []string `json:"lint"`
}

func loadValidateCases(t *testing.T) []validateCase {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(reportCorpus, "cases.json"))
	require.NoError(t, err)
	var cases []validateCase
	require.NoError(t, json.Unmarshal(b, &cases))
	require.GreaterOrEqual(t, len(cases), 40)
	return cases
}

func validateCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = dispatch(append([]string{"validate"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// Every corpus case gives its verdict line and exit code through the CLI.
func TestValidateCommandCorpus(t *testing.T) {
	for _, c := range loadValidateCases(t) {
		name := c.File
		if c.Lenient {
			name += "/lenient"
		}
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(reportCorpus, c.File)
			args := []string{file}
			if c.Lenient {
				args = append(args, "--lenient") // flags may follow the files
			}
			code, stdout, stderr := validateCLI(args...)
			assert.Empty(t, stderr)
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			require.NotEmpty(t, lines)
			head := lines[0]
			if c.Accepted {
				assert.Equal(t, exitOK, code)
				require.NotNil(t, c.ReportID, "accepted corpus cases name their report_id")
				assert.True(t, strings.HasPrefix(head, file+": accepted (report_id="+uintText(*c.ReportID)+")"), head)
				for _, rule := range c.Lint {
					assert.Contains(t, head, "[lint: ")
					assert.Contains(t, head, rule+"@")
				}
				if len(c.Lint) == 0 {
					assert.Equal(t, file+": accepted (report_id="+uintText(*c.ReportID)+")", head)
				}
			} else {
				assert.Equal(t, exitFail, code)
				path := c.Path
				if path == "" {
					path = "/"
				}
				prefix := file + ": rejected " + c.Code + " at " + path + ": "
				assert.True(t, strings.HasPrefix(head, prefix), "%q lacks prefix %q", head, prefix)
				assert.Contains(t, head, c.Reason)
			}
			// One indented line per finding, naming each expected rule.
			for _, l := range lines[1:] {
				assert.True(t, strings.HasPrefix(l, "  lint "), l)
			}
			for _, rule := range c.Lint {
				assert.Contains(t, strings.Join(lines[1:], "\n"), "  lint "+rule+" at ")
			}
		})
	}
}

func uintText(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Several files in one run: one verdict each, exit 1 if any is rejected.
func TestValidateCommandManyFiles(t *testing.T) {
	ok1 := filepath.Join(reportCorpus, "ref-embedded-c-short.json")
	ok2 := filepath.Join(reportCorpus, "stm32-short-indefinite.cbor")
	bad := filepath.Join(reportCorpus, "custom-bare-number.json")

	code, stdout, _ := validateCLI(ok1, ok2)
	assert.Equal(t, exitOK, code)
	assert.Equal(t, ok1+": accepted (report_id=1625700661)\n"+ok2+": accepted (report_id=3915021)\n", stdout)

	code, stdout, _ = validateCLI(ok1, bad, ok2)
	assert.Equal(t, exitFail, code)
	assert.Equal(t, []string{
		ok1 + ": accepted (report_id=1625700661)",
		bad + `: rejected InvalidPayload at /custom_metrics/my_metric: custom metric must be an array holding one object, like [{"number": 1}]; got object`,
		ok2 + ": accepted (report_id=3915021)",
	}, strings.Split(strings.TrimSuffix(stdout, "\n"), "\n"))
}

func TestValidateCommandLintLines(t *testing.T) {
	file := filepath.Join(reportCorpus, "total-below-list.json")
	code, stdout, _ := validateCLI(file)
	assert.Equal(t, exitOK, code)
	assert.Equal(t, file+": accepted (report_id=40) [lint: total-below-list@/metrics/tcp_connections/established_connections/total total-below-list@/metrics/listening_tcp_ports/total]\n"+
		"  lint total-below-list at /metrics/tcp_connections/established_connections/total: total 0 is below the 1 entries listed in \"connections\"\n"+
		"  lint total-below-list at /metrics/listening_tcp_ports/total: total 2 is below the 3 entries listed in \"ports\"\n", stdout)
}

func TestValidateCommandFormatFlag(t *testing.T) {
	dir := t.TempDir()
	cborAsBin := filepath.Join(dir, "report.bin")
	b, err := os.ReadFile(filepath.Join(reportCorpus, "reference-short.cbor"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(cborAsBin, b, 0o644))

	code, stdout, _ := validateCLI("--format", "cbor", cborAsBin)
	assert.Equal(t, exitOK, code)
	assert.Equal(t, cborAsBin+": accepted (report_id=1625700661)\n", stdout)

	// The flag overrides the extension: a JSON file read as CBOR is refused.
	jsonFile := filepath.Join(reportCorpus, "empty-metrics.json")
	code, stdout, _ = validateCLI("--format=CBOR", jsonFile)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stdout, jsonFile+": rejected InvalidPayload at /: ")

	// Everything after -- is a file, even if it looks like a flag.
	code, _, _ = validateCLI("--", filepath.Join(reportCorpus, "empty-metrics.json"))
	assert.Equal(t, exitOK, code)
}

func TestValidateCommandErrors(t *testing.T) {
	good := filepath.Join(reportCorpus, "empty-metrics.json")
	txt := filepath.Join(t.TempDir(), "report.txt")
	require.NoError(t, os.WriteFile(txt, []byte("{}"), 0o644))
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string // substring
		stderrPart string
	}{
		{"no files", nil, exitUsage, "", "no files to validate"},
		{"unknown format", []string{"--format", "xml", good}, exitUsage, "", `--format "xml": want json or cbor`},
		{"unknown extension", []string{good, txt}, exitUsage, "", "report.txt: cannot tell the format"},
		{"unknown flag", []string{"--strict", good}, exitUsage, "", "flag provided but not defined"},
		{"help", []string{"-h"}, exitOK, "", "usage: ddhil validate"},
		{"help names the exit codes", []string{"-h"}, exitOK, "", "exit status: 0 every file accepted, 1 any rejected, 2 usage error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := validateCLI(tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, stdout, tc.stdout)
			assert.Contains(t, stderr, tc.stderrPart)
			if tc.code == exitUsage {
				assert.Empty(t, stdout, "usage errors validate nothing")
			}
		})
	}
}

// A path that is no report file is the caller's mistake: exit 2 with one
// line naming it, before any file is judged (so never "rejected").
func TestValidateCommandUnreadablePaths(t *testing.T) {
	good := filepath.Join(reportCorpus, "empty-metrics.json")
	dir := filepath.Join(t.TempDir(), "reports.json") // a directory with a report's name
	require.NoError(t, os.Mkdir(dir, 0o755))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing file", []string{good, "does-not-exist.json"}, "ddhil validate: usage error: does-not-exist.json: no such file\n"},
		{"directory", []string{good, dir}, "ddhil validate: usage error: " + dir + " is a directory; name the report files in it (e.g. " + dir + "/*.json)\n"},
		{"directory without --format", []string{reportCorpus}, "ddhil validate: usage error: " + reportCorpus + " is a directory"},
		{"directory with --format", []string{"--format", "json", reportCorpus}, "ddhil validate: usage error: " + reportCorpus + " is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := validateCLI(tc.args...)
			assert.Equal(t, exitUsage, code)
			assert.Empty(t, stdout, "nothing is judged")
			assert.True(t, strings.HasPrefix(stderr, tc.want), "%q lacks prefix %q", stderr, tc.want)
			assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line: %q", stderr)
			assert.NotContains(t, stderr, "rejected")
		})
	}
	t.Run("permission denied", func(t *testing.T) {
		locked := filepath.Join(t.TempDir(), "locked.json")
		require.NoError(t, os.WriteFile(locked, []byte("{}"), 0o000))
		if f, err := os.Open(locked); err == nil {
			f.Close()
			t.Skip("running as root: mode 000 does not stop reading")
		}
		code, stdout, stderr := validateCLI(locked)
		assert.Equal(t, exitUsage, code)
		assert.Empty(t, stdout)
		assert.Equal(t, "ddhil validate: usage error: "+locked+": permission denied\n", stderr)
	})
}

// An oversized file is a report AWS refuses (exit 1), named with its real
// size, though only the first MaxPayload+1 bytes are read.
func TestValidateCommandOversize(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.json")
	f, err := os.Create(big)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(10<<20)) // 10 MB of NUL bytes, sparse
	require.NoError(t, f.Close())

	code, stdout, stderr := validateCLI(big)
	assert.Equal(t, exitFail, code)
	assert.Empty(t, stderr)
	assert.Equal(t, big+": rejected InvalidPayload at /: payload is 10485760 bytes (10.0 MB), over the 131072-byte (128 KB) MQTT payload limit of AWS IoT Core\n", stdout)

	// A device has no size: say it is over the limit, not how far.
	if _, err := os.Stat("/dev/zero"); err == nil {
		code, stdout, _ = validateCLI("--format", "json", "/dev/zero")
		assert.Equal(t, exitFail, code)
		assert.Equal(t, "/dev/zero: rejected InvalidPayload at /: payload is over the 131072-byte (128 KB) MQTT payload limit of AWS IoT Core\n", stdout)
	}
}
