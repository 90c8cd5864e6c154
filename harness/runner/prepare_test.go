package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/target"
)

// profileWith writes the reference agent's profile plus extra YAML.
func profileWith(t *testing.T, extra string) string {
	t.Helper()
	b, err := os.ReadFile(repoPath("fixtures", "profiles", "ddagent.yaml"))
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "p.yaml")
	require.NoError(t, os.WriteFile(p, append(b, []byte("\n"+extra)...), 0o644))
	return p
}

// anELF is a real ARM ELF for Prepare's firmware check.
func anELF(t *testing.T) string {
	t.Helper()
	elf := repoPath("firmware", "build", "qemu-netduinoplus2", "ddagent.elf")
	if _, err := os.Stat(elf); err != nil {
		t.Skip("the reference firmware is not built (make firmware)")
	}
	return elf
}

// The profile's target block sets the driver's options; the run's own
// settings (CLI flags, hiltest flags) win over it.
func TestPrepareTargetOptionsFromProfile(t *testing.T) {
	prof := profileWith(t, "target:\n  qemu: {machine: lm3s6965evb, console_serial: 0, module_serial: 1, args: [-icount, 'shift=6,align=off,sleep=on']}\n")
	p, err := Prepare(Options{Target: "qemu", Profile: prof, Firmware: anELF(t), OutDir: t.TempDir()})
	require.NoError(t, err)
	assert.Equal(t, target.Settings{"qemu-machine": {"lm3s6965evb"}, "console-serial": {"0"}, "module-serial": {"1"},
		"qemu-arg": {"-icount", "shift=6,align=off,sleep=on"}}, p.Setup.Settings)

	p, err = Prepare(Options{Target: "qemu", Profile: prof, Firmware: anELF(t), OutDir: t.TempDir(),
		Settings: target.Settings{"qemu-machine": {"netduinoplus2"}, "console-serial": {"1"}, "module-serial": {"0"}}})
	require.NoError(t, err)
	assert.Equal(t, []string{"netduinoplus2"}, p.Setup.Settings["qemu-machine"], "the run's flag wins")
	assert.Equal(t, []string{"-icount", "shift=6,align=off,sleep=on"}, p.Setup.Settings["qemu-arg"], "the rest stays")
}

// The default firmware follows the machine: firmware/build/qemu-<machine>.
func TestPrepareDefaultFirmwareFollowsTheMachine(t *testing.T) {
	anELF(t)
	p, err := Prepare(Options{Target: "qemu", Profile: repoPath("fixtures", "profiles", "ddagent.yaml"), OutDir: t.TempDir()})
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(p.Setup.Firmware, "firmware/build/qemu-netduinoplus2/ddagent.elf"), p.Setup.Firmware)
	assert.True(t, filepath.IsAbs(p.Setup.Firmware))
}

// Mistakes in the profile's target block are usage errors before boot.
func TestPrepareTargetBlockMistakes(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown machine", "target:\n  qemu: {machine: pdp11}\n", `qemu: unknown machine "pdp11"`},
		{"unknown key", "target:\n  qemu: {machin: lm3s6965evb}\n", `target.qemu: unknown key "machin" (did you mean "machine"?)`},
		{"list for a value", "target:\n  qemu: {machine: [a, b]}\n", `target.qemu.machine: want one value, got a list`},
		{"not a number", "target:\n  qemu: {console_serial: first}\n", `--console-serial "first": not a number`},
		{"same serial twice", "target:\n  qemu: {console_serial: 1, module_serial: 1}\n", `console and module share serial 1`},
		{"unknown target block", "target:\n  qemuu: {machine: x}\n", `target.qemuu: unknown target "qemuu"`},
		{"other target's bad key", "target:\n  renode: {platfrom: x.repl}\n", `target.renode: unknown key "platfrom" (did you mean "platform"?)`},
		{"unrelated key", "target:\n  qemu: {colour: blue}\n", `target.qemu: unknown key "colour" (known: machine, console_serial, module_serial, args, tick_symbol)`},
		{"missing platform", "target:\n  renode: {platform: /nonexistent/x.repl}\n", `renode: platform /nonexistent/x.repl`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tgt := "qemu"
			if strings.Contains(tc.yaml, "renode: {platform") {
				tgt = "renode"
			}
			_, err := Prepare(Options{Target: tgt, Profile: profileWith(t, tc.yaml), Firmware: anELF(t), OutDir: t.TempDir()})
			require.Error(t, err)
			assert.ErrorIs(t, err, harness.ErrUsage)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
