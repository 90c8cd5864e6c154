package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cleanRun is a real `ddhil run` of the clean reference agent in QEMU.
const cleanRun = "../../harness/judge/detect/testdata/clean-run"

const fixtures = "../../fixtures/security-profiles/"

func readDetect(t *testing.T, path string) detectOutput {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var o detectOutput
	require.NoError(t, json.Unmarshal(b, &o))
	return o
}

// The generous profile raises nothing (exit 0), the strict one an in-alarm
// violation (exit 1), an invalid one is a usage error (exit 2) — the same
// answers DD-D01 gives in the run.
func TestDetectExitCodes(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runCLI("detect", "--security-profile", fixtures+"generous.json", "--events", cleanRun+"/events.jsonl", "--out", out)
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stdout, "no violation")
	assert.Contains(t, stdout, "normal phase (until 5.692s)")
	o := readDetect(t, filepath.Join(out, "detect.json"))
	require.NotNil(t, o.Detect)
	assert.Empty(t, o.Detect.Violations)
	assert.Equal(t, "report.json (profile expectations)", o.ScaleSource)
	assert.Equal(t, 6, o.Detect.Datapoints["ddhil-generous/KnownTcpPorts"], "judged on real datapoints")

	code, stdout, stderr = runCLI("detect", "--security-profile", fixtures+"strict.json", "--events", cleanRun+"/events.jsonl", "--out", out)
	require.Equal(t, exitFail, code, stderr)
	assert.Contains(t, stdout, "in-alarm")
	o = readDetect(t, filepath.Join(out, "detect.json"))
	require.Len(t, o.Detect.Violations, 1)
	v := o.Detect.Violations[0]
	assert.Equal(t, "in-alarm", v.State)
	assert.Equal(t, "OnlyMqttsListens", v.Behavior)
	assert.Equal(t, "aws:listening-tcp-ports", v.Metric)
	assert.Equal(t, 2, v.Datapoints)
	assert.Equal(t, []int{5001, 8883}, v.Value.Ports)

	code, _, stderr = runCLI("detect", "--security-profile", fixtures+"invalid-to-alarm.json", "--events", cleanRun+"/events.jsonl", "--out", out)
	require.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "Behavior BytesOutCap is malformed. consecutiveDatapointsToAlarm 11 should be in range[1,10]")

	for _, args := range [][]string{
		{"detect", "--events", cleanRun + "/events.jsonl"},
		{"detect", "--security-profile", fixtures + "strict.json"},
		{"detect", "--security-profile", fixtures + "strict.json", "--events", filepath.Join(out, "missing.jsonl")},
	} {
		code, _, _ := runCLI(args...)
		assert.Equal(t, exitUsage, code, args)
	}
}

// A directory of runs: every events.jsonl under it, each answer in its own
// folder under --out.
func TestDetectDirectoryOfRuns(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"a", "b"} {
		dir := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for _, f := range []string{"events.jsonl", "actions.jsonl", "report.json"} {
			b, err := os.ReadFile(filepath.Join(cleanRun, f))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o644))
		}
	}
	out := t.TempDir()
	code, _, stderr := runCLI("detect", "--security-profile", fixtures+"strict.json", "--events", root, "--out", out, "--whole-run")
	require.Equal(t, exitFail, code, stderr)
	for _, name := range []string{"a", "b"} {
		o := readDetect(t, filepath.Join(out, name, "detect.json"))
		assert.Equal(t, "whole run", o.Window)
		assert.Len(t, o.Detect.Violations, 1, name)
	}
}

// --iot-policy adds the Audit: an over-broad policy is a CRITICAL finding
// and the exit status says so.
func TestDetectAuditPolicy(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "dev-policy.json")
	require.NoError(t, os.WriteFile(pol, []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}`), 0o644))
	code, stdout, stderr := runCLI("detect", "--events", cleanRun+"/events.jsonl", "--iot-policy", pol, "--out", dir)
	require.Equal(t, exitFail, code, stderr)
	assert.Contains(t, stdout, "IOT_POLICY_OVERLY_PERMISSIVE_CHECK")
	o := readDetect(t, filepath.Join(dir, "detect.json"))
	require.NotNil(t, o.Audit)
	require.Len(t, o.Audit.Findings, 1)
	assert.Equal(t, "CRITICAL", o.Audit.Findings[0].Severity)

	code, _, _ = runCLI("detect", "--events", cleanRun+"/events.jsonl", "--audit", "--out", dir)
	assert.Equal(t, exitOK, code, "the QEMU run has no TLS and no takeover: nothing to find")
}

// ddhil run refuses an invalid security profile as a usage error before
// anything boots (no output folder is written).
func TestRunRejectsInvalidProfile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	code, _, stderr := runCLI("run", "--out", out, "--security-profile", fixtures+"invalid-to-alarm.json")
	require.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "consecutiveDatapointsToAlarm 11 should be in range[1,10]")
	_, err := os.Stat(out)
	assert.True(t, os.IsNotExist(err), "nothing was started")

	code, _, stderr = runCLI("run", "--out", out, "--broker-policy", "lax")
	require.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `--broker-policy "lax": want open or strict`)
}

// --baseline: statistical thresholds take their percentile from a fleet
// recording (here the clean run itself: nothing exceeds its p100, much
// exceeds its p0).
func TestDetectBaseline(t *testing.T) {
	dir := t.TempDir()
	for stat, want := range map[string]int{"p100": exitOK, "p0": exitFail} {
		prof := filepath.Join(dir, stat+".json")
		require.NoError(t, os.WriteFile(prof, []byte(`[{"name":"BytesOutVsFleet","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than-equals","statisticalThreshold":{"statistic":"`+stat+`"},"durationSeconds":300}}]`), 0o644))
		out := filepath.Join(dir, stat)
		code, _, stderr := runCLI("detect", "--security-profile", prof, "--events", cleanRun+"/events.jsonl", "--baseline", cleanRun+"/events.jsonl", "--out", out)
		require.Equal(t, want, code, "%s: %s", stat, stderr)
		o := readDetect(t, filepath.Join(out, "detect.json"))
		assert.Positive(t, o.Detect.Datapoints[stat+"/BytesOutVsFleet"])
		for _, v := range o.Detect.Violations {
			require.NotNil(t, v.Threshold)
			if v.State == "in-alarm" {
				assert.Greater(t, float64(*v.Value.Count), *v.Threshold)
			}
		}
	}
}
