package tests

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/scenario"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/qemu"
)

// suiteOptions are runner options for the selected target (-ddhil.target)
// running the reference agent; they skip when the target cannot run here.
func suiteOptions(t *testing.T) runner.Options {
	t.Helper()
	switch targetName() {
	case "renode":
		cfg := renodeConfig(t)
		probeRenode(t, cfg)
		return runner.Options{Target: "renode", Firmware: cfg.Firmware, Settings: renodeSettings(cfg)}
	case "qemu":
		if err := qemu.Probe(""); err != nil {
			t.Skip(err.Error())
		}
		return runner.Options{Target: "qemu", Firmware: firmwareELF(t, "qemu-netduinoplus2")}
	}
	t.Skipf("timing suites run on qemu or renode, not %s", targetName())
	return runner.Options{}
}

// productionPeriod is the STM32U5 reference's report period.
const productionPeriod = 300 * time.Second

// compressedOptions run the reference agent with its production period
// under Renode's time compression. The profile's 5 s first-report bound
// is written for 1 s test periods (the agent reports at its next slot
// after a reconnect), so the bound is one period plus that.
func compressedOptions(t *testing.T) runner.Options {
	t.Helper()
	if targetName() != "renode" {
		t.Skipf("time compression needs Renode (-ddhil.target=renode); QEMU 7.2 has no sound compression (docs/timing.md)")
	}
	o := suiteOptions(t)
	o.Settings = o.Settings.With(target.Settings{"compress": {"true"}})
	o.Vars = profile.Vars{"period_ms": "300000"}
	o.Periods = 3
	o.Expect = conformance.Expectations{FirstReportBound: productionPeriod + 5*time.Second}
	return o
}

// TestCompressedProductionPeriod judges the 300 s production period over
// three periods plus the whole scenario on Renode's compressed virtual
// time, and shows that the timing faults are still caught in that mode.
// Each run takes about 1.5 min of wall time (45 min of virtual time).
func TestCompressedProductionPeriod(t *testing.T) {
	base := compressedOptions(t)
	t.Run("clean", func(t *testing.T) {
		o := base
		o.OutDir = keptRunDir(t, "renode-compressed")
		start := time.Now()
		rep, _ := runSuite(t, o)
		wall := time.Since(start)
		t.Logf("compressed 300 s run: %s wall, verdict %s, host %s", wall.Round(time.Second), rep.Verdict(), rep.Run.HostLoad)
		assert.Equal(t, "renode-virtual", rep.Run.TargetClock)
		require.Equal(t, 0, rep.ExitCode(), "verdict %s (%s): %v", rep.Verdict(), rep.VerdictReason(), failedChecks(rep))
		for _, id := range []string{"DD-T01", "DD-T02", "DD-T03"} {
			assert.Equal(t, report.StatusPass, statusOf(rep)[id], id)
		}
		last := rep.Timeline[len(rep.Timeline)-1]
		require.NotNil(t, last.TargetAt)
		assert.Greater(t, *last.TargetAt, 3*productionPeriod, "at least three production periods of virtual time")
	})
	// Stepped: virtual time advances in 1 s slices, each once the module is
	// idle, so a slow host costs the firmware at most a slice per exchange.
	t.Run("stepped", func(t *testing.T) {
		o := base
		o.Settings = o.Settings.With(target.Settings{"step-slice": {"1s"}})
		o.OutDir = filepath.Join(t.TempDir(), "stepped")
		rep, _ := runSuite(t, o)
		require.Equal(t, 0, rep.ExitCode(), "verdict %s (%s): %v", rep.Verdict(), rep.VerdictReason(), failedChecks(rep))
		assert.Contains(t, rep.Target.Extra["time"], "stepped")
	})
	// Normal reporting only: these faults show there.
	for _, tc := range []struct{ fault, check string }{{"period-skew", "DD-T02"}, {"late-first", "DD-T01"}, {"burst", "DD-T03"}} {
		t.Run(tc.fault, func(t *testing.T) {
			o := base
			o.Faults = []string{tc.fault}
			o.Plan = &scenario.Plan{Periods: 3}
			o.OutDir = filepath.Join(t.TempDir(), tc.fault)
			rep, _ := runSuite(t, o)
			assert.Equal(t, report.StatusFail, statusOf(rep)[tc.check], "%s must still fail %s: %s", tc.fault, tc.check, rep.VerdictReason())
			assert.Equal(t, 1, rep.ExitCode(), rep.VerdictReason())
		})
	}
}
