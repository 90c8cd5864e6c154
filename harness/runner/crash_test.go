package runner

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/target/qemu"
)

// crashProfile drives harness/target/qemu's test firmware, whose "crash" command
// escalates a fault to a Lockup, during provisioning.
const crashProfile = `name: crash-during-provisioning
console:
  prompt: "> "
boot:
  marker: '^testfw: boot='
  timeout: 10s
provision:
  - name: crash
    send: crash
    expect: '^never printed$'
    timeout: 10s
`

// TestCrashDuringProvisioningIsAFirmwareFailure: a firmware that locks up
// before anything can be judged fails the run (exit 1, DD-RUN), never a lab
// error (exit 3), even though its console closes before QEMU's exit status
// is known.
func TestCrashDuringProvisioningIsAFirmwareFailure(t *testing.T) {
	if err := qemu.Probe(""); err != nil {
		t.Skip(err.Error())
	}
	if _, err := exec.LookPath("arm-none-eabi-gcc"); err != nil {
		t.Skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
	}
	dir := t.TempDir()
	elf := filepath.Join(dir, "testfw.elf")
	out, err := exec.Command("arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-Os",
		"-nostdlib", "-nostartfiles", "-ffreestanding", "-Wall", "-Wextra", "-Werror",
		"-T", "../target/qemu/testdata/testfw.ld", "-o", elf, "../target/qemu/testdata/testfw.c").CombinedOutput()
	require.NoError(t, err, "%s", out)
	prof := filepath.Join(dir, "crash.yaml")
	require.NoError(t, os.WriteFile(prof, []byte(crashProfile), 0o644))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Target: "qemu", Firmware: elf, Profile: prof, OutDir: filepath.Join(dir, "run"), Periods: 2})
	require.NoError(t, err)
	require.Empty(t, rep.Run.LabError)
	require.Equal(t, report.Fail, rep.Verdict(), rep.VerdictReason())
	require.Equal(t, 1, rep.ExitCode())
	require.Equal(t, "DD-RUN", rep.Checks[0].ID)
	require.Equal(t, report.StatusFail, rep.Checks[0].Status)
	require.Contains(t, rep.Checks[0].Findings[0].Message, "crash")
	assert.NotEmpty(t, rep.Checks[0].Findings[0].Expected, "the crash finding says what was expected")
	assert.NotEmpty(t, rep.Checks[0].Findings[0].Observed)
}
