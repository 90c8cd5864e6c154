package tests

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/target/qemu"
)

// runConformance runs the whole scenario on the reference firmware in QEMU
// with the given faults, the same way `ddhil run` does, and returns the
// report. The run folder is kept under $DDHIL_OUT (when set) for reviewers.
func runConformance(t *testing.T, name string, faults ...string) *report.Report {
	t.Helper()
	if targetName() != "qemu" {
		t.Skipf("the fault proofs run the reference firmware in QEMU (target %s selected)", targetName())
	}
	if err := qemu.Probe(""); err != nil {
		t.Skip(err.Error())
	}
	elf := firmwareELF(t, "qemu-netduinoplus2")
	out := keptRunDir(t, filepath.Join("faults", name))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	opts := runner.Options{
		Target:   "qemu",
		Firmware: elf,
		Profile:  filepath.Join(repoRoot(), "fixtures", "profiles", "ddagent.yaml"),
		OutDir:   out,
		Periods:  4,
		Faults:   faults,
		Vars:     map[string]string{"thing": "dut-" + name},
	}
	if name == "clean" { // DD-D01 is judged, and a generous profile raises no alarm
		opts.SecurityProfiles = []string{filepath.Join(repoRoot(), "fixtures", "security-profiles", "generous.json")}
	}
	for _, f := range faults { // a DD-D01 fault is judged against its own security profile
		if p := filepath.Join(repoRoot(), "fixtures", "security-profiles", f+".json"); fileExists(p) {
			opts.SecurityProfiles = append(opts.SecurityProfiles, p)
		}
		if f == "dd-bad-topic" { // only a strict policy refuses its publish
			opts.BrokerPolicy = "strict"
		}
	}
	rep, err := runner.Run(ctx, opts)
	require.NoError(t, err)
	require.Empty(t, rep.Run.LabError, "the lab failed, not the firmware (run folder %s)", out)
	require.False(t, rep.Run.Incomplete, "run incomplete: %s", rep.Run.IncompleteReason)
	return rep
}

func statusOf(rep *report.Report) map[string]report.Status {
	out := map[string]report.Status{}
	for _, c := range rep.Checks {
		out[c.ID] = c.Status
	}
	return out
}

func describe(rep *report.Report, id string) string {
	for _, c := range rep.Checks {
		if c.ID == id {
			var msgs []string
			for _, f := range c.Findings {
				msgs = append(msgs, f.Message)
			}
			if c.SkipReason != "" {
				msgs = append(msgs, "skip: "+c.SkipReason)
			}
			return string(c.Status) + ": " + strings.Join(msgs, " | ")
		}
	}
	return "absent"
}

// TestCleanRunPassesEveryCheck: the reference firmware without faults
// passes the whole catalogue, and every check that can be judged on the
// emulated-module path is judged (not skipped).
func TestCleanRunPassesEveryCheck(t *testing.T) {
	rep := runConformance(t, "clean")
	st := statusOf(rep)
	for _, c := range conformance.Catalogue() {
		want := report.StatusPass
		if c.ID == "DD-X01" {
			want = report.StatusSkip // no TLS on the module path; proven in TestTLSCheckFailsOnWeakClientCert
		}
		assert.Equal(t, want, st[c.ID], "%s %s", c.ID, describe(rep, c.ID))
	}
	assert.Equal(t, report.Pass, rep.Verdict())
	assert.Equal(t, 0, rep.ExitCode())
}

// TestEveryFaultTurnsItsCheckRed is the proof behind docs/checks.md: each
// reference-firmware fault fails the checks its proof names and nothing
// unrelated.
func TestEveryFaultTurnsItsCheckRed(t *testing.T) {
	if testing.Short() {
		t.Skip("fault proofs boot QEMU once per fault")
	}
	for _, proof := range conformance.Proofs {
		t.Run(proof.Fault, func(t *testing.T) {
			t.Parallel()
			rep := runConformance(t, proof.Fault, proof.Fault)
			st := statusOf(rep)
			for _, id := range proof.Fails {
				assert.Contains(t, []report.Status{report.StatusFail, report.StatusWarn}, st[id],
					"%s must turn red with fault %s: %s", id, proof.Fault, describe(rep, id))
			}
			var red []string
			for id, s := range st {
				if s == report.StatusFail || s == report.StatusWarn || s == report.StatusError {
					red = append(red, id)
				}
			}
			sort.Strings(red)
			for _, id := range red {
				_, may := proof.MayFail[id]
				if !may && !contains(proof.Fails, id) {
					t.Errorf("%s turned red with fault %s but is unrelated: %s", id, proof.Fault, describe(rep, id))
				}
			}
			assert.Equal(t, report.Fail, rep.Verdict(), "a fault run's verdict is fail, not error")
			assert.Equal(t, 1, rep.ExitCode())
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
