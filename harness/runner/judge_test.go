package runner

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/report"
)

// A scenario step the device did not complete is a finding in every
// report format (the report's checks), and the verdict is a failure.
func TestFailedStepIsAFinding(t *testing.T) {
	c := &conformance.Capture{Thing: "dut", Actions: []conformance.Action{
		{At: time.Second, Kind: conformance.ActionStepFailed, Detail: "reset: the device did not boot after the target reset: boot marker not seen"},
	}}
	rep := Judge(c, nil, time.Now())
	var scn *report.Check
	for i := range rep.Checks {
		if rep.Checks[i].ID == "DD-SCN" {
			scn = &rep.Checks[i]
		}
	}
	require.NotNil(t, scn, "a DD-SCN check")
	assert.Equal(t, report.StatusFail, scn.Status)
	require.Len(t, scn.Findings, 1)
	assert.Contains(t, scn.Findings[0].Message, "did not boot after the target reset")
	assert.Equal(t, 1, rep.ExitCode())
}

// Without failed steps there is no DD-SCN check.
func TestNoFailedStepNoCheck(t *testing.T) {
	rep := Judge(&conformance.Capture{Thing: "dut"}, nil, time.Now())
	for _, c := range rep.Checks {
		assert.NotEqual(t, "DD-SCN", c.ID)
	}
}

// A run whose device never reached the broker says where it stopped, in
// the verdict and as a finding.
func TestStoppedBringUpIsInTheVerdict(t *testing.T) {
	c := &conformance.Capture{Thing: "dut", Stopped: "module refused AT+CWDHCP=1,1 at 1.8 s (unsupported); Wi-Fi never joined"}
	rep := Judge(c, nil, time.Now())
	assert.Equal(t, report.Fail, rep.Verdict())
	assert.Contains(t, rep.VerdictReason(), "module refused AT+CWDHCP=1,1 at 1.8 s")
	assert.Equal(t, c.Stopped, rep.Run.Stopped)
	require.NotEmpty(t, rep.Checks)
	assert.Equal(t, "DD-SCN", rep.Checks[0].ID)
	assert.Contains(t, rep.Checks[0].Findings[0].Message, "no report reached the broker: module refused")
}

// An interrupted run does not blame the firmware for a bring-up it cut
// short: no DD-SCN, no run.stopped, verdict error (incomplete).
func TestInterruptedRunIsNotStopped(t *testing.T) {
	c := &conformance.Capture{Thing: "dut", Stopped: "the module never became ready"}
	rep := report.New()
	finish(rep, c, nil, nil, context.Canceled, time.Now())
	assert.Empty(t, rep.Run.Stopped)
	for _, ch := range rep.Checks {
		assert.NotEqual(t, "DD-SCN", ch.ID)
	}
	assert.Equal(t, 3, rep.ExitCode())
}
