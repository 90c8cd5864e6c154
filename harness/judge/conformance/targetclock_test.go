package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// loadedRun models a correct 1 s reporter on a host that starves the
// emulator: the harness sees every interval stretched to hostIv while the
// target's clock advances targetIv per interval. It returns the capture and
// the samples of the target clock (taken at every report and in between).
func loadedRun(t *testing.T, hostIv, targetIv time.Duration, n int) (*Capture, []ClockSample) {
	d := newDevice(t)
	d.phase("normal")
	d.connect()
	origin := d.now
	for i := 0; i < n; i++ {
		d.report()
		d.advance(hostIv)
	}
	// Sampled every 50 ms of host time, as the session does, off the
	// reports' instants.
	var samples []ClockSample
	for h := origin + 7*time.Millisecond; h <= d.now; h += 50 * time.Millisecond {
		samples = append(samples, ClockSample{Host: h, Target: time.Duration(float64(h-origin) * float64(targetIv) / float64(hostIv))})
	}
	d.c.End = d.now
	return d.c, samples
}

func TestTargetClockInterpolates(t *testing.T) {
	tc := &TargetClock{Name: "virt", Samples: []ClockSample{{Host: 10 * time.Second, Target: 0}, {Host: 12 * time.Second, Target: time.Second}}}
	assert.Equal(t, 500*time.Millisecond, tc.At(11*time.Second))
	assert.Equal(t, -time.Second, tc.At(9*time.Second), "before the first sample: rate 1")
	assert.Equal(t, 2*time.Second, tc.At(13*time.Second), "after the last sample: rate 1")
	assert.InDelta(t, 0.5, tc.Rate(), 1e-9)
	v := (&Capture{TargetClock: tc}).inTargetTime()
	assert.Equal(t, 11*time.Second, v.hostAt(500*time.Millisecond), "the inverse maps back")
	assert.Equal(t, time.Second, tc.Uncertainty(11*time.Second))
	assert.Zero(t, tc.Uncertainty(12*time.Second), "on a sample")
}

// The load that fails DD-T02 on host time passes on the target's clock:
// the emulator ran slower, the firmware kept its period.
func TestStarvedHostPassesOnTargetClock(t *testing.T) {
	c, samples := loadedRun(t, 1200*time.Millisecond, time.Second, 8)
	st, _ := statuses(t, c)
	require.Equal(t, StatusFail, st["DD-T02"], "on host time, +20% is a failure (the issue's symptom)")

	c.TargetClock = &TargetClock{Name: "renode-virtual", Samples: samples}
	st, res := statuses(t, c)
	assert.Equal(t, StatusPass, st["DD-T02"], "%v", findingsOf(res, "DD-T02"))
	assert.Equal(t, "renode-virtual", c.TimeBase())
}

// A firmware whose period really is 25% long fails on the target's clock,
// load or not: small harness stalls cannot explain 150 ms past tolerance.
func TestPeriodSkewFailsOnTargetClockUnderLoad(t *testing.T) {
	c, samples := loadedRun(t, 1500*time.Millisecond, 1250*time.Millisecond, 8)
	c.TargetClock = &TargetClock{Name: "renode-virtual", Samples: samples}
	for at := time.Duration(0); at < c.End; at += DefaultStallSample {
		c.Stalls = append(c.Stalls, Stall{At: at, Emulator: 60 * time.Millisecond, Harness: 8 * time.Millisecond})
	}
	res := Evaluate(c, Catalogue())
	st := map[string]Status{}
	for _, r := range res {
		st[r.Check.ID] = r.Status
	}
	require.Equal(t, StatusFail, st["DD-T02"], "%v", res)
	f := findingsOf(res, "DD-T02")[0]
	assert.Equal(t, "renode-virtual", f.Evidence["clock"])
	assert.Contains(t, f.Evidence, "target_at")
	assert.Contains(t, f.Evidence, "host_at")
	assert.Contains(t, f.Evidence, "host_stall")
	assert.Greater(t, f.At, 10*time.Second, "the finding's At is back on the host clock (target time would be 10 s)")
}

// On host time, a deviation the measured stalls explain is inconclusive (a
// lab problem naming the stall), never a FAIL.
func TestStallMakesHostTimingInconclusive(t *testing.T) {
	c, _ := loadedRun(t, 1200*time.Millisecond, time.Second, 8)
	for at := time.Duration(0); at < c.End; at += DefaultStallSample {
		c.Stalls = append(c.Stalls, Stall{At: at, Emulator: 20 * time.Millisecond, Harness: 3 * time.Millisecond})
	}
	res := Evaluate(c, Catalogue())
	st := map[string]Status{}
	for _, r := range res {
		st[r.Check.ID] = r.Status
	}
	require.Equal(t, StatusError, st["DD-T02"], "%v", findingsOf(res, "DD-T02"))
	for _, r := range res {
		if r.Check.ID == "DD-T02" {
			assert.True(t, strings.HasPrefix(r.Error, "inconclusive"), r.Error)
			assert.Contains(t, r.Error, "emulator waited")
		}
	}
	// The same capture with stalls too small to explain +20% still fails.
	for i := range c.Stalls {
		c.Stalls[i].Emulator = time.Millisecond
	}
	st, _ = statuses(t, c)
	assert.Equal(t, StatusFail, st["DD-T02"])
}

func statusOf(c *Capture, id string) (Status, string) {
	for _, r := range Evaluate(c, Catalogue()) {
		if r.Check.ID == id {
			return r.Status, r.Error
		}
	}
	return "", ""
}

// A firmware-derived clock that runs far from host time is not believed:
// the checks fall back to host time and say why.
func TestFirmwareClockOutsideRateBoundIsNotTrusted(t *testing.T) {
	c, samples := loadedRun(t, 1200*time.Millisecond, 3*time.Second, 8)
	c.TargetClock = &TargetClock{Name: "guest-ticks", FirmwareDerived: true, Samples: samples}
	ok, why := c.TargetClock.Trusted()
	assert.False(t, ok)
	assert.Contains(t, why, "not trusted")
	assert.Equal(t, "host", c.TimeBase())
	st, res := statuses(t, c)
	require.Equal(t, StatusFail, st["DD-T02"])
	assert.Contains(t, findingsOf(res, "DD-T02")[0].Evidence["clock_note"], "not trusted")

	c.TargetClock.FirmwareDerived = false // an emulator's virtual time may run ahead (compression)
	ok, _ = c.TargetClock.Trusted()
	assert.True(t, ok)
}

// A firmware clock at 0.4× host time is believed when the emulator's
// measured run-queue delay explains the deficit, not otherwise.
func TestSlowFirmwareClockExplainedByStarvation(t *testing.T) {
	c, samples := loadedRun(t, 2500*time.Millisecond, time.Second, 8)
	c.TargetClock = &TargetClock{Name: "guest-ticks", FirmwareDerived: true, Samples: samples}
	ok, why := c.ClockTrusted()
	require.False(t, ok, "0.4× with no stall measured is a misconfigured clock")
	assert.Contains(t, why, "does not explain")
	for at := time.Duration(0); at <= c.End; at += DefaultStallSample {
		c.Stalls = append(c.Stalls, Stall{At: at, Emulator: 40 * time.Millisecond})
	}
	ok, _ = c.ClockTrusted()
	assert.True(t, ok, "60% starvation explains a 0.4× clock")
	assert.Equal(t, "guest-ticks", c.TimeBase())
	st, why := statusOf(c, "DD-T02")
	assert.Equal(t, StatusPass, st, why)

	c.TargetClock = &TargetClock{Name: "guest-ticks", FirmwareDerived: true, Samples: samples}
	for i := range c.TargetClock.Samples {
		c.TargetClock.Samples[i].Target *= 10 // 4× fast: never starvation
	}
	ok, _ = c.ClockTrusted()
	assert.False(t, ok)
}

// A first report late on host time only because the host stalled is
// inconclusive; late on the target clock it fails.
func TestLateFirstReportStall(t *testing.T) {
	d := newDevice(t)
	d.connect()
	d.advance(6 * time.Second)
	d.report()
	d.c.End = d.now + time.Second
	for at := time.Duration(0); at < d.c.End; at += DefaultStallSample {
		d.c.Stalls = append(d.c.Stalls, Stall{At: at, Emulator: 80 * time.Millisecond})
	}
	d.c.Expect.FirstReportBound = 5 * time.Second
	st, why := statusOf(d.c, "DD-T01")
	assert.Equal(t, StatusError, st, "6 s against a 5 s bound with ~4.8 s of emulator stall")
	assert.Contains(t, why, "inconclusive")

	d.c.TargetClock = &TargetClock{Name: "renode-virtual"}
	for h := time.Duration(0); h <= d.c.End; h += 50 * time.Millisecond {
		d.c.TargetClock.Samples = append(d.c.TargetClock.Samples, ClockSample{Host: h + 3*time.Millisecond, Target: h + 3*time.Millisecond})
	}
	st, _ = statusOf(d.c, "DD-T01")
	assert.Equal(t, StatusFail, st, "on the target clock the emulator's stall does not count")
}

// A host that delivers some reports late (here by 0-300 ms) spreads their
// interpolated times; the firmware's stamps put them back exactly.
func TestReportStampsUndoDeliveryDelays(t *testing.T) {
	d := newDevice(t)
	d.phase("normal")
	d.connect()
	delays := []time.Duration{0, 300, 10, 280, 0, 290, 5, 0}
	stamps := map[uint64]time.Duration{}
	for i, dl := range delays {
		d.advance(dl * time.Millisecond)
		id := d.report()
		stamps[id] = 5*time.Second + time.Duration(i)*time.Second // the firmware's ms counter
		d.advance(time.Second - dl*time.Millisecond)
	}
	d.c.End = d.now
	d.c.TargetClock = &TargetClock{Name: "renode-virtual"}
	for h := time.Duration(0); h <= d.c.End; h += 20 * time.Millisecond {
		d.c.TargetClock.Samples = append(d.c.TargetClock.Samples, ClockSample{Host: h + time.Millisecond, Target: h + time.Millisecond})
	}
	st, _ := statusOf(d.c, "DD-T02")
	require.Equal(t, StatusFail, st, "delivery delays of 300 ms break the jitter bound on interpolated time")

	d.c.ReportStamps = stamps
	st, why := statusOf(d.c, "DD-T02")
	assert.Equal(t, StatusPass, st, why)

	// Stamps that disagree wildly with the emulator's clock are not used.
	for id := range stamps {
		stamps[id] *= 3
	}
	st, _ = statusOf(d.c, "DD-T02")
	assert.Equal(t, StatusFail, st)
}

// A report moved to its stamp stays on the side of a harness action it was
// seen on: the phase that ended after it keeps it.
func TestStampsKeepReportsInTheirPhase(t *testing.T) {
	d := newDevice(t)
	d.phase("normal")
	d.connect()
	stamps := map[uint64]time.Duration{}
	for i := 0; i < 4; i++ {
		id := d.report()
		stamps[id] = time.Duration(i)*time.Second + 400*time.Millisecond // logged 400 ms after the broker saw it
		if i < 3 {
			d.advance(time.Second)
		}
	}
	d.advance(time.Millisecond)
	d.phase("disconnect") // the scenario moved on right after the 4th report
	d.advance(time.Second)
	d.c.End = d.now
	d.c.TargetClock = &TargetClock{Name: "renode-virtual"}
	for h := time.Duration(0); h <= d.c.End; h += 20 * time.Millisecond {
		d.c.TargetClock.Samples = append(d.c.TargetClock.Samples, ClockSample{Host: h, Target: h})
	}
	d.c.ReportStamps = stamps
	// The last report's line came 300 ms later than the others': placed
	// by its stamp it would cross the phase change.
	for id, st := range stamps {
		if st == 3*time.Second+400*time.Millisecond {
			stamps[id] = st + 300*time.Millisecond
		}
	}
	st, why := statusOf(d.c, "DD-T02")
	assert.Equal(t, StatusPass, st, "all four reports stay in the normal phase: %s", why)
	v := d.c.inTargetTime()
	for _, r := range v.normalReports() {
		assert.Less(t, r.At(), v.ActionsOf(ActionPhase)[1].At)
	}
	assert.Len(t, v.normalReports(), 4)
}

// Compressed, a late harness costs the firmware the lateness times the
// speed-up; stepped, at most one slice.
func TestCompressedStallScaling(t *testing.T) {
	c := &Capture{TargetClock: &TargetClock{Name: "renode-virtual", Compressed: true,
		Samples: []ClockSample{{Host: 0, Target: 0}, {Host: 10 * time.Second, Target: 300 * time.Second}}},
		Stalls: []Stall{{At: 5 * time.Second, Harness: 100 * time.Millisecond}}}
	v := c.inTargetTime()
	st, _ := v.stallIn(0, 300*time.Second)
	assert.Equal(t, 2*3*time.Second, st-v.TargetClock.Uncertainty(0)-v.TargetClock.Uncertainty(10*time.Second), "100 ms late at 30× is 3 s of the firmware's time, twice")
	c.TargetClock.StepSlice = time.Second
	v = c.inTargetTime()
	st, _ = v.stallIn(0, 300*time.Second)
	assert.Equal(t, 2*time.Second, st-v.TargetClock.Uncertainty(0)-v.TargetClock.Uncertainty(10*time.Second), "stepped: one slice per endpoint")
}
