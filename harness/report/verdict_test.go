package report

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func check(id string, sev Severity, st Status) Check {
	c := Check{ID: id, Title: "t " + id, Severity: sev, Status: st}
	switch st {
	case StatusFail, StatusWarn:
		c.Findings = []Finding{{Message: "bad"}}
	case StatusSkip:
		c.SkipReason = "not applicable"
	case StatusError:
		c.Error = "port vanished"
	}
	return c
}

func TestVerdict(t *testing.T) {
	pass := check("DD-S01", SeverityFail, StatusPass)
	fail := check("DD-S02", SeverityFail, StatusFail)
	warn := check("DD-S07", SeverityWarn, StatusWarn)
	skip := check("DD-X01", SeverityFail, StatusSkip)
	errc := check("DD-A02", SeverityFail, StatusError)
	cases := []struct {
		name       string
		checks     []Check
		run        Run
		want       Outcome
		exit       int
		reasonPart string
	}{
		{"all pass", []Check{pass, skip}, Run{}, Pass, 0, "all 1 check judged passed"},
		{"warn does not fail", []Check{pass, warn}, Run{}, Pass, 0, "1 check warned: DD-S07"},
		{"one fail", []Check{pass, fail, warn}, Run{}, Fail, 1, "1 check failed: DD-S02"},
		{"error dominates fail", []Check{fail, errc}, Run{}, Error, 3, "DD-A02"},
		{"lab error with passes", []Check{pass}, Run{LabError: "qemu exited 1"}, Error, 3, "lab error: qemu exited 1"},
		{"lab error dominates fail", []Check{fail}, Run{LabError: "flash failed", Incomplete: true, IncompleteReason: "lab"}, Error, 3, "flash failed"},
		{"interrupted with a failure is a fail", []Check{fail, skip}, Run{Incomplete: true, IncompleteReason: "interrupted (SIGINT)"}, Fail, 1, "run incomplete: interrupted"},
		{"interrupted without failure is no pass", []Check{pass}, Run{Incomplete: true, IncompleteReason: "interrupted (SIGINT)"}, Error, 3, "incomplete with no failure"},
		{"everything skipped judges nothing", []Check{skip}, Run{}, Error, 3, "nothing was judged"},
		{"no checks judges nothing", nil, Run{}, Error, 3, "nothing was judged"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := New()
			r.Run, r.Checks = tc.run, tc.checks
			assert.Equal(t, tc.want, r.Verdict())
			assert.Equal(t, tc.exit, r.ExitCode())
			assert.Contains(t, r.VerdictReason(), tc.reasonPart)
			require.NoError(t, r.Validate())
		})
	}
}

func TestSampleVerdicts(t *testing.T) {
	assert.Equal(t, Error, sampleReport().Verdict(), "the sample has an errored check")
	assert.Equal(t, Fail, sampleWithVerdict(Fail).Verdict())
	assert.Equal(t, Pass, sampleWithVerdict(Pass).Verdict())
	c := sampleReport().finalized().Counts
	assert.Equal(t, Counts{Checks: 22, Pass: 14, Fail: 3, Warn: 1, Error: 1, Skip: 3, Reports: 12, Accepted: 11, Rejected: 1}, c)
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(r *Report)
		want   string
	}{
		{"other schema", func(r *Report) { r.Schema = "ddhil.report/v0" }, `schema is "ddhil.report/v0"`},
		{"empty id", func(r *Report) { r.Checks[0].ID = "" }, "empty id"},
		{"duplicate id", func(r *Report) { r.Checks[1].ID = r.Checks[0].ID }, "duplicate id"},
		{"bad severity", func(r *Report) { r.Checks[0].Severity = "fatal" }, `severity "fatal"`},
		{"bad status", func(r *Report) { r.Checks[0].Status = "flaky" }, `status "flaky"`},
		{"warn check cannot fail", func(r *Report) { r.Checks[6].Status = StatusFail }, "warn-severity check cannot fail"},
		{"fail check cannot warn", func(r *Report) { r.Checks[4].Status = StatusWarn }, "must have status fail"},
		{"fail without findings", func(r *Report) { r.Checks[4].Findings = nil }, "without findings"},
		{"skip without reason", func(r *Report) { r.Checks[5].SkipReason = "" }, "without skip_reason"},
		{"error without message", func(r *Report) { r.Checks[15].Error = "" }, "without an error message"},
		{"empty finding", func(r *Report) { r.Checks[4].Findings[0].Message = "" }, "empty message"},
		{"incomplete without reason", func(r *Report) { r.Run.Incomplete = true }, "incomplete_reason is empty"},
		{"finished before started", func(r *Report) { r.Run.Finished = r.Run.Started.Add(-1) }, "before it started"},
		{"stored verdict disagrees", func(r *Report) { r.Outcome = Pass }, `verdict is "pass" but the checks give "error"`},
		{"stored counts disagree", func(r *Report) { r.Counts = Counts{Checks: 1} }, "counts"},
		{"evidence not json", func(r *Report) { r.Checks[4].Findings[0].Evidence = map[string]any{"x": math.NaN()} }, "evidence does not encode as JSON"},
		{"mark without kind", func(r *Report) { r.Timeline[0].Kind = "" }, "empty kind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := sampleReport()
			require.NoError(t, r.Validate(), "the sample itself is valid")
			tc.mutate(r)
			err := r.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "report: invalid")
		})
	}
}

func TestFinalizedLeavesReceiverAlone(t *testing.T) {
	r := sampleReport()
	r.Checks[0].Findings = nil
	f := r.finalized()
	assert.Nil(t, r.Checks[0].Findings, "receiver changed")
	assert.Empty(t, r.Checks[0].Category, "receiver changed")
	assert.NotNil(t, f.Checks[0].Findings)
	assert.Equal(t, Category("schema"), f.Checks[0].Category)
	assert.Equal(t, Error, f.Outcome)
}

func TestKeepPayload(t *testing.T) {
	var rc Received
	big := make([]byte, MaxPayloadKept+10)
	rc.KeepPayload(big)
	assert.Equal(t, MaxPayloadKept+10, rc.Size)
	assert.Len(t, rc.Payload, MaxPayloadKept)
	assert.True(t, rc.PayloadTruncated)

	small := []byte(`{"header":{}}`)
	rc.KeepPayload(small)
	small[0] = 'X'
	assert.Equal(t, `{"header":{}}`, string(rc.Payload), "payload must be copied")
	assert.False(t, rc.PayloadTruncated)
}
