package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/target/qemu"
)

// buildDDHIL compiles the CLI once per test binary (TestMain removes it).
func buildDDHIL(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		if cliDir, cliErr = os.MkdirTemp("", "ddhil-tests-cli-"); cliErr != nil {
			return
		}
		cliBin = filepath.Join(cliDir, "ddhil")
		cmd := exec.Command(goTool(), "build", "-o", cliBin, "./cmd/ddhil")
		cmd.Dir = repoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("go build ./cmd/ddhil: %w\n%s", err, out)
		}
	})
	require.NoError(t, cliErr)
	return cliBin
}

var (
	cliOnce        sync.Once
	cliDir, cliBin string
	cliErr         error
)

// TestMain removes what the tests built once for all.
func TestMain(m *testing.M) {
	code := m.Run()
	if cliDir != "" {
		os.RemoveAll(cliDir)
	}
	os.Exit(code)
}

// privateELF copies the firmware to a unique path, so the test can tell its
// own QEMU from any other test's with pgrep.
func privateELF(t *testing.T) string {
	t.Helper()
	src := firmwareELF(t, "qemu-netduinoplus2")
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	dst := filepath.Join(t.TempDir(), "ddagent-"+strings.ReplaceAll(t.Name(), "/", "_")+".elf")
	require.NoError(t, os.WriteFile(dst, b, 0o644))
	return dst
}

func processesWith(t *testing.T, needle string) string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-af", needle).Output()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.Contains(l, "pgrep") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// TestCtrlCWritesPartialReport: SIGINT in the middle of `ddhil run` still
// writes a report marked incomplete, exits with the lab/incomplete code 3,
// and leaves no QEMU behind.
func TestCtrlCWritesPartialReport(t *testing.T) {
	skipUnlessQEMU(t)
	if err := qemu.Probe(""); err != nil {
		t.Skip(err.Error())
	}
	bin, elf, out := buildDDHIL(t), privateELF(t), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "--firmware", elf, "--out", out, "--no-screenshot",
		"--profile", filepath.Join(repoRoot(), "fixtures", "profiles", "ddagent.yaml"))
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())

	// Interrupt once the normal phase has produced its first reports.
	sc := bufio.NewScanner(stdout)
	interrupted := false
	for sc.Scan() {
		line := sc.Text()
		t.Log(line)
		if !interrupted && strings.Contains(line, "scenario:") {
			require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
			interrupted = true
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	require.True(t, interrupted, "the run never reached the scenario")
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "want a non-zero exit, got %v", err)
	assert.Equal(t, 3, exit.ExitCode())

	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	require.NoError(t, err)
	var rep struct {
		Verdict string `json:"verdict"`
		Run     struct {
			Incomplete       bool   `json:"incomplete"`
			IncompleteReason string `json:"incomplete_reason"`
		} `json:"run"`
	}
	require.NoError(t, json.Unmarshal(b, &rep))
	assert.True(t, rep.Run.Incomplete)
	assert.Contains(t, rep.Run.IncompleteReason, "interrupted")
	assert.Equal(t, "error", rep.Verdict)
	for _, f := range []string{"report.html", "junit.xml", "report.md", "console.log", "events.jsonl"} {
		assert.FileExists(t, filepath.Join(out, f))
	}
	assert.Empty(t, processesWith(t, elf), "a QEMU of this run survived")
}

// TestRunExitCodes: a clean run exits 0, a run with a fault exits 1, a
// missing emulator exits 3 (a lab error, never a check failure).
func TestRunExitCodes(t *testing.T) {
	skipUnlessQEMU(t)
	if err := qemu.Probe(""); err != nil {
		t.Skip(err.Error())
	}
	bin, elf := buildDDHIL(t), privateELF(t)
	profile := filepath.Join(repoRoot(), "fixtures", "profiles", "ddagent.yaml")
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"pass", []string{"--only", "DD-S03,DD-I01", "--periods", "3"}, 0},
		{"fail", []string{"--only", "DD-S03,DD-I01", "--periods", "3", "--fault", "bad-version"}, 1},
		{"lab", []string{"--qemu", "/nonexistent/qemu-system-arm"}, 3},
		// The profile expects TCP 8883 and 5001; overriding the expectation
		// per run makes the same firmware fail DD-A04.
		{"expectation-override", []string{"--only", "DD-A04", "--periods", "3", "--listen-tcp", "8883"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			args := append([]string{"run", "--firmware", elf, "--profile", profile, "--out", out, "--no-screenshot"}, tc.args...)
			b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tc.code, code, "%s", b)
			assert.FileExists(t, filepath.Join(out, "report.json"))
			assert.Contains(t, string(b), "report:")
		})
	}
	assert.Empty(t, processesWith(t, elf))
}

// skipUnlessQEMU keeps the QEMU-only CLI tests out of Renode and board runs.
func skipUnlessQEMU(t *testing.T) {
	t.Helper()
	if targetName() != "qemu" {
		t.Skipf("runs the reference firmware in QEMU (target %s selected)", targetName())
	}
}

// A `ddhil run` killed with SIGKILL cannot remove its private QEMU
// directory; the next run removes it (and QEMU died with the harness).
func TestKilledRunsTempDirIsCleanedNextTime(t *testing.T) {
	skipUnlessQEMU(t)
	if err := qemu.Probe(""); err != nil {
		t.Skip(err.Error())
	}
	bin, elf, tmp := buildDDHIL(t), privateELF(t), t.TempDir()
	run := func(ctx context.Context, out string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, "run", "--firmware", elf, "--out", out, "--no-screenshot", "--periods", "1",
			"--profile", agentProfile())
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		return cmd
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	first := run(ctx, filepath.Join(t.TempDir(), "first"))
	stdout, err := first.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, first.Start())
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "scenario:") { // QEMU is up
			break
		}
	}
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	_ = first.Wait()
	stale, _ := filepath.Glob(filepath.Join(tmp, "ddhil-qemu-*"))
	require.Len(t, stale, 1, "the killed run left its directory")
	assert.Eventually(t, func() bool { return processesWith(t, elf) == "" }, 10*time.Second, 50*time.Millisecond, "QEMU died with the harness")

	second := run(ctx, filepath.Join(t.TempDir(), "second"))
	out, err := second.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	assert.NoDirExists(t, stale[0], "the next run removed the stale directory")
	left, _ := filepath.Glob(filepath.Join(tmp, "ddhil-qemu-*"))
	assert.Empty(t, left, "and its own")
}
