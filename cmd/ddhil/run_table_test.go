package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/report"
)

// TestSummaryTableReadsPlainly: the CLI table puts the result first and
// says what a failure would do in words, so a passing check never reads
// "fail PASS"; failing checks come first with expected and observed;
// skipped checks say why.
func TestSummaryTableReadsPlainly(t *testing.T) {
	rep := report.New()
	rep.Checks = []report.Check{
		{ID: "DD-P03", Title: "client ID", Severity: report.SeverityWarn, Status: report.StatusPass, Measured: "12 reports"},
		{ID: "DD-S01", Title: "topic", Severity: report.SeverityFail, Status: report.StatusPass, Measured: "12 reports"},
		{ID: "DD-T02", Title: "period", Severity: report.SeverityFail, Status: report.StatusFail, Measured: "5 intervals",
			Findings: []report.Finding{{Message: "median off", Expected: "median 1s ± 10%", Observed: "median 1.3s"}}},
		{ID: "DD-X01", Title: "TLS", Severity: report.SeverityFail, Status: report.StatusSkip, SkipReason: "no TLS here"},
	}
	var out bytes.Buffer
	printSummary(&out, rep)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.GreaterOrEqual(t, len(lines), 6)
	assert.Regexp(t, `^RESULT\s+CHECK\s+IF FAILED\s+TITLE$`, lines[0])
	assert.Regexp(t, `^FAIL\s+DD-T02\s+fails run\s+period$`, lines[1], "failing first")
	assert.Contains(t, lines[2], "expected median 1s ± 10%, observed median 1.3s")
	assert.Regexp(t, `^SKIP\s+DD-X01`, lines[3])
	assert.Contains(t, lines[4], "skipped: no TLS here")
	assert.Regexp(t, `^PASS\s+DD-P03\s+warns only\s+client ID$`, lines[5])
	assert.NotRegexp(t, `(?m)^\S+\s+(fail|warn)\s+(PASS|FAIL)`, out.String(), "no bare severity next to a result")
}
