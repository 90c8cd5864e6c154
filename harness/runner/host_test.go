package runner

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/hostload"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/target"
)

func TestRecordHostAndTargetClock(t *testing.T) {
	c := &conformance.Capture{
		TargetClock: &conformance.TargetClock{Name: "renode-virtual", Samples: []conformance.ClockSample{{Host: 0, Target: 5 * time.Second}, {Host: time.Second, Target: 6 * time.Second}}},
		Stalls:      []conformance.Stall{{At: time.Second, Emulator: 40 * time.Millisecond, Harness: 3 * time.Millisecond}, {At: 2 * time.Second, Emulator: 10 * time.Millisecond}},
	}
	rep := report.New()
	rep.Timeline = []report.Mark{{At: 700 * time.Millisecond, Kind: report.MarkReport}}
	rep.Reports = []report.Received{{At: 700 * time.Millisecond}}
	recordHost(rep, c, hostload.Snapshot{})
	require.NotNil(t, rep.Run.HostLoad)
	assert.Equal(t, "renode-virtual", rep.Run.TargetClock)
	assert.Equal(t, 40*time.Millisecond, rep.Run.HostLoad.EmulatorStall)
	assert.Equal(t, 50*time.Millisecond, rep.Run.HostLoad.EmulatorWait)
	assert.Equal(t, 3*time.Millisecond, rep.Run.HostLoad.HarnessLateMax)
	assert.NotZero(t, rep.Run.HostLoad.CPUs)

	stampTarget(rep, c, 200*time.Millisecond) // the run started 200 ms before the broker
	require.NotNil(t, rep.Timeline[0].TargetAt)
	assert.Equal(t, 5500*time.Millisecond, *rep.Timeline[0].TargetAt)
	assert.Equal(t, 5500*time.Millisecond, *rep.Reports[0].TargetAt)

	host := report.New()
	recordHost(host, &conformance.Capture{}, hostload.Snapshot{})
	assert.Empty(t, host.Run.TargetClock, "no target clock: judged on host time")
}

// Time compression is a Renode option: asked of QEMU it is a usage
// mistake, found before anything boots.
func TestQEMUCompressIsAUsageError(t *testing.T) {
	_, err := Prepare(Options{Target: "qemu", Settings: target.Settings{"compress": {"true"}}, OutDir: t.TempDir(),
		Profile: repoPath("fixtures", "profiles", "ddagent.yaml")})
	require.Error(t, err)
	assert.ErrorIs(t, err, harness.ErrUsage)
	assert.Contains(t, err.Error(), "--compress does not apply to target qemu")
}
