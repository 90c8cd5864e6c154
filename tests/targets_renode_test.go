package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/hiltest"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/renode"
)

// renodeConfig is the Renode the flags select (-ddhil.renode,
// -ddhil.renode-image or their DDHIL_* variables), running the reference
// agent's renode-stm32f4disc build.
func renodeConfig(t *testing.T) renode.Config {
	t.Helper()
	s := hiltest.Selected().Settings
	return renode.Config{
		Binary:   s.Get("renode"),
		Image:    s.Get("renode-image"),
		Firmware: firmwareELF(t, "renode-stm32f4disc"),
	}
}

// renodeSettings are the driver settings of cfg.
func renodeSettings(cfg renode.Config) target.Settings {
	s := target.Settings{}
	if cfg.Binary != "" {
		s.Set("renode", cfg.Binary)
	}
	if cfg.Image != "" {
		s.Set("renode-image", cfg.Image)
	}
	return s
}

// probeRenode skips the test, with the probe's reason and install hint,
// when Renode cannot run here (no binary and no Docker engine).
func probeRenode(t *testing.T, cfg renode.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	how, err := renode.Probe(ctx, cfg)
	if err != nil {
		if hiltest.Required() {
			t.Fatalf("Renode is required (DDHIL_REQUIRE_TARGET) but cannot run: %v", err)
		}
		t.Skip(err.Error())
	}
	t.Logf("renode: %s", how)
}

// keptRunDir is where a run that CI keeps writes its reports:
// $DDHIL_OUT/<name> (a relative $DDHIL_OUT counts from the repository root,
// where the CI templates collect run/**), or a temporary directory.
func keptRunDir(t *testing.T, name string) string {
	t.Helper()
	base := os.Getenv("DDHIL_OUT")
	if base == "" {
		return t.TempDir()
	}
	if !filepath.IsAbs(base) {
		base = filepath.Join(repoRoot(), base)
	}
	return filepath.Join(base, name)
}

// logWriter sends runner progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// runSuite runs the whole suite through runner.Run (as `ddhil run`
// does) and returns the report as written to report.json.
func runSuite(t *testing.T, o runner.Options) (*report.Report, map[string]any) {
	t.Helper()
	if o.Profile == "" {
		o.Profile = filepath.Join(repoRoot(), "fixtures", "profiles", "ddagent.yaml")
	}
	if o.OutDir == "" {
		o.OutDir = t.TempDir()
	}
	if o.Periods == 0 {
		o.Periods = 5
	}
	o.Progress = logWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := runner.Run(ctx, o)
	require.NoError(t, err, "reports written")
	raw, err := os.ReadFile(filepath.Join(o.OutDir, report.FileJSON))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	for _, f := range []string{report.FileJUnit, report.FileMarkdown, report.FileHTML} {
		assert.FileExists(t, filepath.Join(o.OutDir, f))
	}
	return rep, doc
}

// failedChecks lists the checks that did not pass or skip, for messages.
func failedChecks(rep *report.Report) []string {
	var out []string
	for _, c := range rep.Checks {
		if c.Status != report.StatusPass && c.Status != report.StatusSkip {
			msg := c.Error
			if len(c.Findings) > 0 {
				msg = c.Findings[0].Message
			}
			out = append(out, fmt.Sprintf("%s %s: %s", c.ID, c.Status, msg))
		}
	}
	return out
}

func field(doc map[string]any, path ...string) any {
	var v any = doc
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// TestRenodeConformance is the whole conformance suite on Renode through
// runner.Run, the job `make renode` and the CI templates (ci/) run; it
// writes its reports to $DDHIL_OUT/renode. It runs with -ddhil.target=renode only.
func TestRenodeConformance(t *testing.T) {
	if targetName() != "renode" {
		t.Skipf("target is %s (select Renode with -ddhil.target=renode or DDHIL_TARGET=renode)", targetName())
	}
	cfg := renodeConfig(t)
	probeRenode(t, cfg)
	rep, doc := runSuite(t, runner.Options{Target: "renode", Firmware: cfg.Firmware,
		Settings: renodeSettings(cfg), OutDir: keptRunDir(t, "renode"),
		Command: []string{"go", "test", "./tests", "-run", "TestRenodeConformance"}})
	assert.Equal(t, "renode", field(doc, "target", "kind"))
	assert.NotEmpty(t, field(doc, "target", "version"), "the Renode version is reported")
	assert.Empty(t, rep.Run.LabError)
	assert.Equal(t, 0, rep.ExitCode(), "verdict %s (%s): %v", rep.Verdict(), rep.VerdictReason(), failedChecks(rep))
}

// fakeRenode builds the FAKE renode (harness/target/renode/internal/fakerenode)
// and returns a launcher script that runs it in QEMU mode: the fake's
// monitor, XML-RPC server and socket terminals, with the loaded ELF running
// in a real qemu-system-arm behind them. Renode itself cannot be installed
// here; this exercises everything of the Renode path that is ddhil's own.
func fakeRenode(t *testing.T) string {
	t.Helper()
	qemuBin, err := exec.LookPath("qemu-system-arm")
	if err != nil {
		t.Skip("qemu-system-arm not installed (apt-get install qemu-system-arm)")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "renode-fake")
	build := exec.Command(goTool(), "build", "-o", fake, "./harness/target/renode/internal/fakerenode/cmd/renode")
	build.Dir = repoRoot()
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build fake renode: %s", out)
	launcher := filepath.Join(dir, "renode")
	script := fmt.Sprintf("#!/bin/sh\nDDHIL_FAKE_RENODE_QEMU=%q exec %q \"$@\"\n", qemuBin, fake)
	require.NoError(t, os.WriteFile(launcher, []byte(script), 0o755))
	return launcher
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// The Renode target through runner.Run in local mode, against the fake
// renode with QEMU behind it: XML-RPC control, the generated script, the
// socket terminals, resets through the monitor, report.json. QEMU's SysTick
// runs at 168 MHz, so the renode-stm32f4disc build (SysTick reload for
// Renode's 72 MHz) keeps time 2.33x fast there: its timing checks (DD-T*)
// say nothing about the driver and are left out for that build; the
// qemu-netduinoplus2 build must pass the whole suite.
func TestRenodeTargetWithFakeRenode(t *testing.T) {
	cases := []struct {
		name       string
		fwProfile  string
		skipTiming bool
	}{
		{"qemu-profile ELF, whole suite passes", "qemu-netduinoplus2", false},
		{"renode-profile ELF, all but timing pass", "renode-stm32f4disc", true},
	}
	bin := fakeRenode(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			rep, doc := runSuite(t, runner.Options{Target: "renode", Settings: target.Settings{"renode": {bin}},
				Firmware: firmwareELF(t, tc.fwProfile), OutDir: out, Periods: 3})

			assert.Equal(t, "renode", field(doc, "target", "kind"))
			assert.Equal(t, "1.16.1 (fake-ddhil+qemu)", field(doc, "target", "version"))
			assert.Equal(t, "local", field(doc, "target", "extra", "mode"))
			assert.Equal(t, "xmlrpc", field(doc, "target", "extra", "control"))
			assert.Equal(t, bin, field(doc, "target", "extra", "binary"))
			assert.Empty(t, rep.Run.LabError)
			assert.False(t, rep.Run.Incomplete, rep.Run.IncompleteReason)

			console, err := os.ReadFile(filepath.Join(out, "console.log"))
			require.NoError(t, err)
			assert.Contains(t, string(console), "profile="+tc.fwProfile, "this build ran")
			target, err := os.ReadFile(filepath.Join(out, "target.log"))
			require.NoError(t, err)
			assert.Contains(t, string(target), "Robot Framework remote server is listening", "Renode's log in target.log")

			accepted := 0
			for _, r := range rep.Reports {
				if r.Accepted {
					accepted++
				}
			}
			assert.GreaterOrEqual(t, accepted, 3, "reports went through the Renode terminals to the broker")
			require.NotEmpty(t, rep.Checks)
			if !tc.skipTiming {
				assert.Equal(t, 0, rep.ExitCode(), "verdict %s (%s): %v", rep.Verdict(), rep.VerdictReason(), failedChecks(rep))
				return
			}
			for _, c := range rep.Checks {
				if strings.HasPrefix(c.ID, "DD-T") {
					continue
				}
				assert.Contains(t, []report.Status{report.StatusPass, report.StatusSkip}, c.Status, "%s: %v", c.ID, failedChecks(rep))
			}
		})
	}
}

// A Renode binary that is not there: the run still writes its reports,
// with verdict error (exit code 3) and a lab error that says how to
// install Renode.
func TestRenodeMissingIsALabError(t *testing.T) {
	rep, doc := runSuite(t, runner.Options{Target: "renode", Settings: target.Settings{"renode": {"/nonexistent/renode"}},
		Firmware: firmwareELF(t, "renode-stm32f4disc")})
	assert.Equal(t, "error", field(doc, "verdict"))
	assert.Equal(t, 3, rep.ExitCode())
	lab, _ := field(doc, "run", "lab_error").(string)
	assert.Contains(t, lab, `renode: binary "/nonexistent/renode"`)
	assert.Contains(t, lab, "install Renode")
}

// `ddhil run --target renode` on a machine with neither renode in PATH nor
// a Docker engine exits 3 with the install hint. The missing engine is
// played by a private mount namespace in which the Docker sockets are
// /dev/null (needs root and unshare; skipped otherwise).
func TestCLIWithoutRenodeOrDocker(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and unshare(1) to hide the Docker engine")
	}
	if out, err := exec.Command(unshare, "--mount", "true").CombinedOutput(); err != nil {
		t.Skipf("cannot make a mount namespace here: %v %s", err, out)
	}
	var hide []string
	for _, s := range []string{"/run/docker.sock", "/var/run/docker.sock"} {
		if real, err := filepath.EvalSymlinks(s); err == nil {
			hide = append(hide, fmt.Sprintf("mount --bind /dev/null %q", real))
		}
	}
	dir, bin := t.TempDir(), buildDDHIL(t)

	emptyPath := t.TempDir()
	runDir := filepath.Join(dir, "run")
	script := strings.Join(append(hide, fmt.Sprintf("PATH=%q HOME=%q exec %q run --target renode --firmware %q --profile %q --out %q --no-screenshot",
		emptyPath, dir, bin, firmwareELF(t, "renode-stm32f4disc"), filepath.Join(repoRoot(), "fixtures", "profiles", "ddagent.yaml"), runDir)), " && ")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "--mount", "sh", "-c", script)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	assert.Equal(t, 3, exit.ExitCode(), "%s", out)
	assert.Contains(t, string(out), "no Docker engine")
	assert.Contains(t, string(out), "install Renode (https://renode.io")
	raw, err := os.ReadFile(filepath.Join(runDir, report.FileJSON))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	assert.Equal(t, "error", field(doc, "verdict"))
	assert.Contains(t, field(doc, "run", "lab_error"), "install Renode")
}
