package conformance

import (
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// statuses evaluates every check and returns id -> status.
func statuses(t *testing.T, c *Capture) (map[string]Status, []Result) {
	t.Helper()
	res := Evaluate(c, Catalogue())
	out := map[string]Status{}
	for _, r := range res {
		out[r.Check.ID] = r.Status
		require.Empty(t, r.Error, "%s errored", r.Check.ID)
		requireEvidence(t, r)
	}
	return out, res
}

// requireEvidence fails unless a judged check says what it measured and
// each finding says what was expected and what was observed: every capture
// the tests evaluate goes through it, so a check or finding constructor
// that forgets its evidence fails here.
func requireEvidence(t *testing.T, r Result) {
	t.Helper()
	if r.Status != StatusSkip && r.Status != StatusError {
		require.NotEmpty(t, r.Measured, "%s (%s) does not say what it measured", r.Check.ID, r.Status)
	}
	for i, f := range r.Findings {
		require.NotEmpty(t, f.Expected, "%s finding %d has no expected value: %s", r.Check.ID, i, f.Message)
		require.NotEmpty(t, f.Observed, "%s finding %d has no observed value: %s", r.Check.ID, i, f.Message)
	}
}

func red(st map[string]Status) []string {
	var out []string
	for id, s := range st {
		if s == StatusFail || s == StatusWarn || s == StatusError {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func TestCleanCapturePassesEveryCheck(t *testing.T) {
	st, res := statuses(t, newDevice(t).run(6))
	for _, r := range res {
		if r.Status != StatusPass {
			t.Logf("%s %s %v %s", r.Check.ID, r.Status, r.Findings, r.SkipReason)
		}
	}
	assert.Empty(t, red(st))
	// Everything that can be judged on the module path is judged, not skipped.
	for _, id := range []string{"DD-S01", "DD-S02", "DD-P01", "DD-T01", "DD-T02", "DD-T03", "DD-I01", "DD-I02", "DD-A01", "DD-A02", "DD-A03", "DD-A04", "DD-R01", "DD-R02", "DD-X02"} {
		assert.Equal(t, StatusPass, st[id], id)
	}
	assert.Equal(t, StatusSkip, st["DD-X01"], "no TLS on the module path")
}

// TestEachBehaviourTurnsItsCheckRed mirrors the firmware fault suite on the
// Go model of the device: each switched behaviour fails exactly the checks
// its proof names.
func TestEachBehaviourTurnsItsCheckRed(t *testing.T) {
	cases := []struct {
		fault string
		set   func(d *device)
	}{
		{"wrong-thing", func(d *device) { d.wrongThing = true }},
		{"camelcase", func(d *device) { d.camel = true }},
		{"cmet-bare", func(d *device) { d.bareCmet = true }},
		{"no-subscribe", func(d *device) { d.noSubscribe = true }},
		{"retain", func(d *device) { d.retain = true }},
		{"rid-repeat", func(d *device) { d.ridRepeat = true }},
		{"rid-ticks", func(d *device) { d.ridTicks = true }},
		{"ns-cumulative", func(d *device) { d.cumulative = true }},
		{"ns-inflate", func(d *device) { d.inflate = true }},
		{"tc-stale", func(d *device) { d.lportLie = 1 }},
		{"ports-missing", func(d *device) { d.ports = nil }},
		{"retry-storm", func(d *device) { d.retryStorm = true }},
	}
	for _, tc := range cases {
		t.Run(tc.fault, func(t *testing.T) {
			d := newDevice(t)
			tc.set(d)
			st, res := statuses(t, d.run(6))
			proof, ok := ProofFor(tc.fault)
			require.True(t, ok)
			for _, id := range proof.Fails {
				assert.Contains(t, []Status{StatusFail, StatusWarn}, st[id], "%s must turn red", id)
			}
			for _, id := range red(st) {
				if !contains(proof.Fails, id) {
					_, may := proof.MayFail[id]
					assert.True(t, may, "%s turned red but is unrelated to %s: %+v", id, tc.fault, findingsOf(res, id))
				}
			}
		})
	}
}

func TestPeriodSkewAndBurst(t *testing.T) {
	d := newDevice(t)
	d.phase("normal")
	d.connect()
	for i := 0; i < 6; i++ {
		d.report()
		d.advance(1250 * time.Millisecond)
	}
	d.c.End = d.now
	st, _ := statuses(t, d.c)
	assert.Equal(t, StatusFail, st["DD-T02"])
	assert.Equal(t, StatusPass, st["DD-T03"])

	d = newDevice(t)
	d.phase("normal")
	d.connect()
	for i := 0; i < 6; i++ {
		d.report()
		d.advance(20 * time.Millisecond)
		d.report()
		d.advance(time.Second)
	}
	d.c.End = d.now
	st, res := statuses(t, d.c)
	assert.Equal(t, StatusFail, st["DD-T03"], "a burst is two reports in one cycle")
	assert.Equal(t, StatusPass, st["DD-T02"], "bursts collapse into cycles: %v", findingsOf(res, "DD-T02"))
}

func TestFirstReportBoundAndNoReconnect(t *testing.T) {
	d := newDevice(t)
	d.connect()
	d.advance(5 * time.Second)
	d.report()
	d.c.End = d.now + time.Second
	st, _ := statuses(t, d.c)
	assert.Equal(t, StatusFail, st["DD-T01"])

	d = newDevice(t)
	d.connect()
	d.report()
	d.advance(time.Second)
	d.kick()
	d.advance(45 * time.Second)
	d.c.End = d.now
	st, res := statuses(t, d.c)
	assert.Equal(t, StatusFail, st["DD-R01"], "%v", findingsOf(res, "DD-R01"))
}

func TestProductionPeriodBelowThrottleWindow(t *testing.T) {
	d := newDevice(t)
	d.c.Expect.ProductionPeriod = 60 * time.Second
	st, res := statuses(t, d.run(4))
	assert.Equal(t, StatusFail, st["DD-T03"])
	assert.Contains(t, findingsOf(res, "DD-T03")[0].Message, "throttle window")
}

func TestSelectRejectsUnknownIDs(t *testing.T) {
	_, err := Select([]string{"DD-T02", "DD-Z99"})
	require.ErrorContains(t, err, "DD-Z99")
	got, err := Select([]string{" dd-t02 "})
	require.NoError(t, err)
	require.Len(t, got, 1)
}

func TestEveryCheckHasAProofAndCitation(t *testing.T) {
	proven := map[string]bool{}
	for _, p := range Proofs {
		for _, id := range p.Fails {
			_, ok := Lookup(id)
			require.True(t, ok, "proof of %s names unknown check %s", p.Fault, id)
			proven[id] = true
		}
	}
	for _, c := range Catalogue() {
		assert.NotEmpty(t, c.Citation, c.ID)
		assert.NotEmpty(t, c.ProvenBy, c.ID)
		if c.ID != "DD-X01" { // no firmware fault can reach TLS on the module path
			assert.True(t, proven[c.ID], "%s has no fault that proves it", c.ID)
		}
	}
}

func findingsOf(res []Result, id string) []Finding {
	for _, r := range res {
		if r.Check.ID == id {
			return r.Findings
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestLostReportAtLinkDrop: a report the firmware built right before the
// broker dropped the link never reached the broker; the next report's delta
// starts from that lost report, which the oracle accepts, while an
// inflated figure still fails.
func TestLostReportAtLinkDrop(t *testing.T) {
	for _, inflate := range []bool{false, true} {
		d := newDevice(t)
		d.reportNormally(4)
		// The device builds a report whose send dies with the link: its
		// counters move, the broker sees nothing.
		d.base = d.counted
		d.kick()
		d.advance(1200 * time.Millisecond)
		d.connect()
		d.inflate = inflate
		d.report()
		d.advance(time.Second)
		d.c.End = d.now
		st, res := statuses(t, d.c)
		if inflate {
			assert.Equal(t, StatusFail, st["DD-A02"])
		} else {
			assert.Equal(t, StatusPass, st["DD-A02"], "%v", findingsOf(res, "DD-A02"))
		}
	}
}

// TestSilenceAfterResetOrRejectionFails: a device that stops reporting after
// a reboot, or after a Throttled rejection, must not pass.
func TestSilenceAfterResetOrRejectionFails(t *testing.T) {
	d := newDevice(t)
	d.reportNormally(4)
	d.phase("reset")
	d.reset()
	d.advance(30 * time.Second)
	d.c.Expect.ReconnectBound = 10 * time.Second
	d.c.End = d.now
	st, res := statuses(t, d.c)
	assert.Equal(t, StatusFail, st["DD-R01"], "%v", findingsOf(res, "DD-R01"))

	d = newDevice(t)
	d.reportNormally(4)
	d.rejectNext = "Throttled"
	d.report()
	d.advance(20 * time.Second)
	d.c.End = d.now
	st, res = statuses(t, d.c)
	assert.Equal(t, StatusFail, st["DD-R02"], "%v", findingsOf(res, "DD-R02"))
}

// TestRunEndingRightAfterADropIsNotJudged: Ctrl-C 100 ms after the broker
// dropped the link is no evidence against the device.
func TestRunEndingRightAfterADropIsNotJudged(t *testing.T) {
	d := newDevice(t)
	d.reportNormally(4)
	d.kick()
	d.advance(100 * time.Millisecond)
	d.c.End = d.now
	st, res := statuses(t, d.c)
	assert.NotEqual(t, StatusFail, st["DD-R01"], "%v", findingsOf(res, "DD-R01"))
}
