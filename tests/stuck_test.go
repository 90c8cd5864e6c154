package tests

import (
	"context"
	htmlpkg "html"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/scenario"
)

// A firmware stuck in its AT handshake (here: a module built without
// AT+CWJAP, so Wi-Fi never joins) gets a verdict naming the refused
// command, in report.json and the HTML, never a silent timeout.
func TestStuckHandshakeNamesTheRefusedCommand(t *testing.T) {
	skipUnlessQEMU(t)
	prof := filepath.Join(t.TempDir(), "no-cwjap.yaml")
	require.NoError(t, os.WriteFile(prof, []byte(mustRead(t, agentProfile())+"\nmodule:\n  disabled: [AT+CWJAP]\n"), 0o644))
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := runner.Run(ctx, runner.Options{Target: "qemu", Profile: prof, OutDir: out, Plan: &scenario.Plan{Periods: 1},
		Vars: map[string]string{"thing": "dut-stuck"}})
	require.NoError(t, err)
	assert.Equal(t, report.Fail, rep.Verdict(), rep.VerdictReason())
	assert.Contains(t, rep.VerdictReason(), `module refused AT+CWJAP="ddhil","ddhil-pass"`)
	assert.Contains(t, rep.VerdictReason(), "Wi-Fi never joined")
	assert.Contains(t, rep.Run.Stopped, "not in this module's firmware build")
	html, err := os.ReadFile(filepath.Join(out, report.FileHTML))
	require.NoError(t, err)
	assert.Contains(t, htmlpkg.UnescapeString(string(html)), "module refused AT+CWJAP")
	assert.Contains(t, string(html), `id="at-exchange"`, "the HTML shows the AT exchange")
	var refused []report.ATCommand
	for _, c := range rep.ATExchange {
		if c.Refused() {
			refused = append(refused, c)
		}
	}
	require.NotEmpty(t, refused, "the exchange shows the refusal")
	assert.Equal(t, `AT+CWJAP="ddhil","ddhil-pass"`, refused[0].Command)
	assert.Contains(t, refused[0].Answer, "ERROR")
	assert.Contains(t, refused[0].Reason, "unsupported")
}
