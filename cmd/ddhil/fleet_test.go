package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness/fleet/mosquitto"
)

// fastFleetProfile is fixtures/fleet/normal.yaml reporting every ~1 s.
func fastFleetProfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../fixtures/fleet/normal.yaml")
	require.NoError(t, err)
	s := strings.Replace(string(b), "period_scale: 60", "period_scale: 300", 1)
	require.NotEqual(t, string(b), s)
	path := filepath.Join(t.TempDir(), "fast.yaml")
	require.NoError(t, os.WriteFile(path, []byte(s), 0o644))
	return path
}

func TestFleetUsage(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("periods: [{period: 10s, weight: 1}]\nmetrics: {bytes_in: {min: 1, max: 2}}\n"), 0o644))
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no devices":   {[]string{"--profile", "../../fixtures/fleet/normal.yaml"}, "--devices"},
		"no profile":   {[]string{"--devices", "3"}, "--profile is required"},
		"bad profile":  {[]string{"--devices", "3", "--profile", bad}, "below AWS's minimum"},
		"missing file": {[]string{"--devices", "3", "--profile", "nope.yaml"}, "nope.yaml"},
		"bad mode":     {[]string{"--devices", "3", "--profile", bad, "--broker-mode", "x"}, "--broker-mode"},
		"addr+record":  {[]string{"--devices", "3", "--profile", "../../fixtures/fleet/normal.yaml", "--addr", "127.0.0.1:1", "--record", "x"}, "--addr"},
		"scale":        {[]string{"--devices", "3", "--profile", "../../fixtures/fleet/normal.yaml", "--period-scale", "0.5"}, "--period-scale"},
	} {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCLI(append([]string{"fleet"}, tc.args...)...)
			require.Equal(t, exitUsage, code, stderr)
			require.Contains(t, stderr, tc.want)
		})
	}
}

// TestFleetRecordsABaseline runs a small fleet in process and checks the
// exit code, the printed table, the --json figures and the record.
func TestFleetRecordsABaseline(t *testing.T) {
	dir := t.TempDir()
	rec, js := filepath.Join(dir, "events.jsonl"), filepath.Join(dir, "fleet.json")
	code, stdout, stderr := runCLI("fleet", "--devices", "20", "--profile", fastFleetProfile(t), "--duration", "2s",
		"--broker-mode", "in-process", "--record", rec, "--json", js)
	require.Equal(t, exitOK, code, stdout+stderr)
	require.Contains(t, stdout, "20/20")
	require.Contains(t, stdout, "round trip p99")

	f, err := os.Open(rec)
	require.NoError(t, err)
	defer f.Close()
	events, err := broker.ReadJSONL(f)
	require.NoError(t, err)
	reports := 0
	for _, ev := range events {
		if ev.Kind == broker.EventReport && ev.Result.Accepted() {
			reports++
		}
	}
	require.GreaterOrEqual(t, reports, 20)

	var out struct {
		PeriodScale float64 `json:"period_scale"`
		Runs        []struct {
			Backend  string `json:"backend"`
			Accepted int    `json:"accepted"`
		} `json:"runs"`
	}
	b, err := os.ReadFile(js)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &out))
	require.EqualValues(t, 300, out.PeriodScale)
	require.Len(t, out.Runs, 1)
	require.Equal(t, reports, out.Runs[0].Accepted)
}

func TestFleetCompareMosquitto(t *testing.T) {
	if _, err := mosquitto.Find(); err != nil {
		t.Skip(err)
	}
	// In process: this test binary cannot be the broker child.
	code, stdout, stderr := runCLI("fleet", "--devices", "10", "--profile", fastFleetProfile(t), "--duration", "2s", "--compare-mosquitto", "--broker-mode", "in-process")
	require.Equal(t, exitOK, code, stdout+stderr)
	require.Contains(t, stdout, "mosquitto+responder")
	require.Equal(t, 2, strings.Count(stdout, "10/10"), stdout)
}

// TestFleetFailsOnRejections: a broker throttling at AWS's real 300 s
// (reached with --addr) rejects the fleet's second reports: exit 1.
func TestFleetFailsOnRejections(t *testing.T) {
	b, err := broker.New(broker.Config{})
	require.NoError(t, err)
	require.NoError(t, b.Start(t.Context()))
	defer b.Close()
	code, stdout, stderr := runCLI("fleet", "--devices", "3", "--profile", fastFleetProfile(t), "--duration", "4s", "--addr", b.Addr("tcp"))
	require.Equal(t, exitFail, code, stdout+stderr)
	require.Contains(t, stderr, "Throttled")
}

// TestFleetServeBroker drives the broker child side (--serve-broker) the
// way the parent does: read its address, run agents against it, send
// "stop N", and get the done line after the record is flushed.
func TestFleetServeBroker(t *testing.T) {
	inR, inW := io.Pipe()
	fleetBrokerStdin = inR
	t.Cleanup(func() { fleetBrokerStdin = os.Stdin })
	outR, outW := io.Pipe()
	rec := filepath.Join(t.TempDir(), "events.jsonl")
	done := make(chan int, 1)
	go func() {
		var errb strings.Builder
		code, _ := runFleet(t.Context(), []string{"--serve-broker", "--profile", fastFleetProfile(t), "--record", rec}, outW, &errb)
		_ = outW.Close()
		done <- code
	}()
	lines := bufio.NewScanner(outR)
	require.True(t, lines.Scan())
	addr, ok := strings.CutPrefix(lines.Text(), "addr ")
	require.True(t, ok, lines.Text())

	code, stdout, stderr := runCLI("fleet", "--devices", "5", "--profile", fastFleetProfile(t), "--duration", "2s", "--addr", addr)
	require.Equal(t, exitOK, code, stdout+stderr)
	_, err := io.WriteString(inW, "stop 5\n")
	require.NoError(t, err)
	require.True(t, lines.Scan())
	require.True(t, strings.HasPrefix(lines.Text(), "done {"), lines.Text())
	require.NotContains(t, lines.Text(), "error")
	require.Equal(t, exitOK, <-done)

	f, err := os.Open(rec)
	require.NoError(t, err)
	defer f.Close()
	events, err := broker.ReadJSONL(f)
	require.NoError(t, err)
	n := 0
	for _, ev := range events {
		if ev.Kind == broker.EventDisconnect {
			require.Equal(t, broker.ReasonClientDisconnect, ev.Reason)
			n++
		}
	}
	require.Equal(t, 5, n)
}
