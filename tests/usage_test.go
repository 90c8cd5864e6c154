package tests

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every mistake knowable before boot is a usage error: exit 2 in under a
// second, one line on stderr naming the mistake, no output folder, no
// emulator started.
func TestUsageMistakesExit2BeforeBoot(t *testing.T) {
	bin := buildDDHIL(t)
	dir := t.TempDir()
	elf := firmwareELF(t, "qemu-netduinoplus2")
	prof := agentProfile()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
		return p
	}
	misspeltText := strings.Replace(mustRead(t, prof), "\nboot:\n", "\nbooot:\n", 1)
	misspelt := write("misspelt.yaml", misspeltText)
	misspeltLine := strings.Count(misspeltText[:strings.Index(misspeltText, "booot:")], "\n") + 1
	unknownKey := write("unknown.yaml", mustRead(t, prof)+"\nfrobnicate: 1\n")
	notELF := write("fw.bin", "not an ELF at all")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown target", []string{"--target", "foo"}, `unknown target "foo" (known: board, qemu, renode)`},
		{"unknown fault", []string{"--fault", "nosuch"}, `--fault "nosuch": not a fault of ddagent (known: camelcase,`},
		{"unknown format", []string{"--format", "xml"}, `--format "xml": want json or cbor`},
		{"unknown key style", []string{"--keys", "medium"}, `--keys "medium": want long or short`},
		{"negative period", []string{"--period-ms", "-5"}, `--period-ms -5: want a whole number of milliseconds`},
		{"negative periods", []string{"--periods", "-1"}, `--periods -1: want at least 1`},
		{"tolerance out of range", []string{"--tolerance", "2"}, `--tolerance 2: want a fraction`},
		{"unknown check", []string{"--only", "DD-X99"}, `DD-X99`},
		{"misspelt profile key", []string{"--profile", misspelt}, fmt.Sprintf(`misspelt.yaml:%d: unknown key "booot" (did you mean "boot"?)`, misspeltLine)},
		{"unknown profile key", []string{"--profile", unknownKey}, `unknown.yaml:`},
		{"missing profile", []string{"--profile", filepath.Join(dir, "none.yaml")}, `none.yaml: no such file`},
		{"board without map", []string{"--target", "board"}, `target board needs a hardware map: --hwmap FILE`},
		{"missing firmware", []string{"--firmware", filepath.Join(dir, "none.elf")}, `none.elf: no such file`},
		{"firmware is a directory", []string{"--firmware", dir}, `is a directory, not an ELF file`},
		{"firmware not ELF", []string{"--firmware", notELF}, `fw.bin: not an ELF file`},
		{"firmware for the host", []string{"--firmware", "/bin/sh"}, `not a 32-bit little-endian ARM one`},
		{"option of another target", []string{"--renode", "/usr/bin/renode"}, `--renode does not apply to target qemu`},
		{"unknown QEMU machine", []string{"--qemu-machine", "pdp11"}, `qemu: unknown machine "pdp11"`},
		{"unknown flag", []string{"--frobnicate"}, `flag provided but not defined: -frobnicate`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			args := append([]string{"run", "--out", out, "--no-screenshot"}, tc.args...)
			if !contains(tc.args, "--firmware") {
				args = append(args, "--firmware", elf)
			}
			if !contains(tc.args, "--profile") && !contains(tc.args, "board") {
				args = append(args, "--profile", prof)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			took := time.Since(start)
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "stdout %s stderr %s", stdout.String(), stderr.String())
			assert.Equal(t, 2, exit.ExitCode(), "stderr: %s", stderr.String())
			// Under a second of wall time, or of CPU time on a loaded host.
			cpu := exit.UserTime() + exit.SystemTime()
			assert.True(t, took < time.Second || cpu < 300*time.Millisecond, "caught before anything boots: took %s (cpu %s)", took, cpu)
			msg := stderr.String()
			assert.Contains(t, msg, tc.want)
			if tc.name != "unknown flag" { // the flag package prints the usage after its line
				assert.Equal(t, 1, strings.Count(strings.TrimSpace(msg), "\n")+1, "one line: %q", msg)
			}
			assert.NoDirExists(t, out, "nothing written")
		})
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// `ddhil run -h` lists the exit codes, the targets and the reference
// agent's faults.
func TestRunHelp(t *testing.T) {
	cmd := exec.Command(buildDDHIL(t), "run", "-h")
	cmd.Dir = repoRoot()
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, want := range []string{"2  usage mistake", "3  lab error", "qemu ", "renode ", "board ", "rid-repeat", "-qemu-machine", "-hwmap"} {
		assert.Contains(t, string(out), want)
	}
}
