package tests

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/target/qemu"
)

// wholeCatalogue runs the full scenario and requires every check that the
// module path can judge to pass (DD-X01 needs TLS, DD-D01 a security
// profile: they skip).
func wholeCatalogue(t *testing.T, o runner.Options) *report.Report {
	t.Helper()
	if o.OutDir == "" {
		o.OutDir = t.TempDir()
	}
	if o.Periods == 0 {
		o.Periods = 4
	}
	o.Progress = logWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := runner.Run(ctx, o)
	require.NoError(t, err)
	require.Empty(t, rep.Run.LabError, "lab error (run folder %s)", o.OutDir)
	st := statusOf(rep)
	for _, c := range conformance.Catalogue() {
		want := []report.Status{report.StatusPass}
		if c.ID == "DD-X01" || c.ID == "DD-D01" {
			want = []report.Status{report.StatusSkip}
		}
		assert.Contains(t, want, st[c.ID], "%s %s", c.ID, describe(rep, c.ID))
	}
	assert.Equal(t, 0, rep.ExitCode(), "verdict %s (%s)", rep.Verdict(), rep.VerdictReason())
	return rep
}

func skipUnlessQEMUBinary(t *testing.T) {
	t.Helper()
	skipUnlessQEMU(t)
	if err := qemu.Probe(""); err != nil {
		t.Skip(err.Error())
	}
}

// The reference agent built for a second QEMU machine with another UART
// model (Stellaris LM3S6965, PL011 UARTs, console on UART0 and module on
// UART1, -icount), chosen by its profile's target block alone: the whole
// catalogue passes.
func TestSecondQEMUMachine(t *testing.T) {
	skipUnlessQEMUBinary(t)
	firmwareELF(t, "qemu-lm3s6965evb")
	rep := wholeCatalogue(t, runner.Options{Target: "qemu",
		Profile: filepath.Join(repoRoot(), "fixtures", "profiles", "ddagent-lm3s6965evb.yaml"),
		Vars:    map[string]string{"thing": "dut-lm3s"}})
	assert.Equal(t, "lm3s6965evb", rep.Target.Name)
}

// The reference agent in every ESP-AT dialect a real driver speaks
// (multi-link, passive receive, the module's own MQTT client) is judged on
// the whole catalogue, network_stats accuracy included.
func TestDialectsPassTheCatalogue(t *testing.T) {
	skipUnlessQEMUBinary(t)
	for _, mode := range []string{"multi", "passive", "mqtt"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			rep := wholeCatalogue(t, runner.Options{Target: "qemu", Profile: agentProfile(), Periods: 3,
				Vars: map[string]string{"thing": "dut-" + mode, "at_mode": mode}})
			var sawMode bool
			for _, c := range rep.ATExchange {
				switch mode {
				case "multi", "passive":
					sawMode = sawMode || c.Command == "AT+CIPMUX=1"
				case "mqtt":
					sawMode = sawMode || len(c.Command) > 13 && c.Command[:13] == "AT+MQTTUSERCF"
				}
			}
			assert.True(t, sawMode, "the firmware spoke the %s dialect", mode)
		})
	}
}

// A second Renode platform with another UART model (nRF52840-DK, UARTE in
// EasyDMA mode, vector table at 0), chosen by its profile's target block:
// the whole catalogue passes on the selected Renode.
func TestSecondRenodePlatform(t *testing.T) {
	if targetName() != "renode" {
		t.Skipf("runs on Renode (-ddhil.target=renode); target %s selected", targetName())
	}
	cfg := renodeConfig(t)
	probeRenode(t, cfg)
	rep := wholeCatalogue(t, runner.Options{Target: "renode", Settings: renodeSettings(cfg),
		Firmware: firmwareELF(t, "renode-nrf52840dk"),
		Profile:  filepath.Join(repoRoot(), "fixtures", "profiles", "ddagent-nrf52840dk.yaml"),
		Vars:     map[string]string{"thing": "dut-nrf", "at_mode": "passive"}})
	assert.Equal(t, "renode", rep.Target.Kind)
}
