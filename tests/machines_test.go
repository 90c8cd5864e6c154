package tests

import (
	"context"
	"os"
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
// profile: they skip), except those named in unjudged.
func wholeCatalogue(t *testing.T, o runner.Options, unjudged ...string) *report.Report {
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
		if contains(unjudged, c.ID) {
			continue
		}
		want := []report.Status{report.StatusPass}
		if c.ID == "DD-X01" || c.ID == "DD-D01" {
			want = []report.Status{report.StatusSkip}
		}
		assert.Contains(t, want, st[c.ID], "%s %s", c.ID, describe(rep, c.ID))
	}
	if len(unjudged) == 0 {
		assert.Equal(t, 0, rep.ExitCode(), "verdict %s (%s)", rep.Verdict(), rep.VerdictReason())
	}
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
// the catalogue passes on the selected Renode, timing aside. On Renode
// 1.16.1's nRF52840 the firmware's SysTick (reload for 64 MHz) runs about
// 3.5x faster than Renode's virtual time, with or without `nvic Frequency
// 64000000`: judged on virtual time the reports come ~0.3 s apart. That is a
// clock modelling question of this platform, not of the driver under test,
// so the timing checks and DD-R02's back-off window are left out here.
func TestSecondRenodePlatform(t *testing.T) {
	if targetName() != "renode" {
		t.Skipf("runs on Renode (-ddhil.target=renode); target %s selected", targetName())
	}
	cfg := renodeConfig(t)
	probeRenode(t, cfg)
	rep := wholeCatalogue(t, runner.Options{Target: "renode", Settings: renodeSettings(cfg),
		Firmware: firmwareELF(t, "renode-nrf52840dk"),
		Profile:  filepath.Join(repoRoot(), "fixtures", "profiles", "ddagent-nrf52840dk.yaml"),
		Vars:     map[string]string{"thing": "dut-nrf", "at_mode": "passive"}},
		"DD-T01", "DD-T02", "DD-T03", "DD-R02")
	assert.Equal(t, "renode", rep.Target.Kind)
}

// A firmware that opens its MQTT link as an ESP-AT SSL link (at_mode ssl:
// AT+CIPSSLCCONF=3,0,0 then AT+CIPSTART="SSL",…,8883) reaches the broker's
// mutual-TLS listener through the emulated module, with the device
// certificate the run's lab CA gave the module (profile module.tls): DD-X01
// is judged on the module path, and the whole catalogue passes.
func TestModuleSSLLinkIsJudgedByDDX01(t *testing.T) {
	skipUnlessQEMUBinary(t)
	prof := filepath.Join(t.TempDir(), "tls.yaml")
	require.NoError(t, os.WriteFile(prof, []byte(mustRead(t, agentProfile())+"\nmodule:\n  tls: true\n"), 0o644))
	rep := wholeCatalogue(t, runner.Options{Target: "qemu", Profile: prof, Periods: 3,
		Vars: map[string]string{"thing": "dut-ssl", "at_mode": "ssl", "port": "8883"}}, "DD-X01")
	assert.Equal(t, report.StatusPass, statusOf(rep)["DD-X01"], describe(rep, "DD-X01"))
	var ssl bool
	for _, c := range rep.ATExchange {
		ssl = ssl || c.Command == `AT+CIPSTART="SSL","192.0.2.1",8883`
	}
	assert.True(t, ssl, "the firmware opened an SSL link")
}
