package session

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/target"
)

// fakeClock returns the readings a test queues, then keeps the last one.
type fakeClock struct {
	mu    sync.Mutex
	vals  []time.Duration
	info  target.ClockInfo
	reads int
}

func (f *fakeClock) TargetTime(ctx context.Context) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if len(f.vals) == 0 {
		return 0, errors.New("no reading")
	}
	v := f.vals[0]
	if len(f.vals) > 1 {
		f.vals = f.vals[1:]
	}
	return v, nil
}

func (f *fakeClock) ClockInfo() target.ClockInfo { return f.info }

func TestClockSamplerBridgesAReset(t *testing.T) {
	f := &fakeClock{vals: []time.Duration{time.Second, 2 * time.Second, 5 * time.Millisecond, 10 * time.Millisecond}, info: target.ClockInfo{Name: "ticks", ResetsWithTarget: true}}
	c := &clockSampler{clk: f, info: f.info, epoch: time.Now(), every: ClockInterval}
	for i := 0; i < 4; i++ {
		c.sample()
	}
	s := c.Samples()
	require.Len(t, s, 4)
	assert.Equal(t, 2*time.Second, s[1].Target)
	assert.Greater(t, s[2].Target, 2*time.Second, "after the counter restarted, target time keeps increasing")
	assert.Equal(t, s[2].Target+5*time.Millisecond, s[3].Target, "and advances with the counter")
}

func TestClockSamplerIgnoresAClockGoingBack(t *testing.T) {
	f := &fakeClock{vals: []time.Duration{time.Second, 500 * time.Millisecond, 2 * time.Second}, info: target.ClockInfo{Name: "virt"}}
	c := &clockSampler{clk: f, info: f.info, epoch: time.Now(), every: ClockInterval}
	for i := 0; i < 3; i++ {
		c.sample()
	}
	s := c.Samples()
	require.Len(t, s, 2)
	assert.Equal(t, []time.Duration{time.Second, 2 * time.Second}, []time.Duration{s[0].Target, s[1].Target})
	assert.Equal(t, 1, c.errs)
}

func TestClockSamplerRunsAndStops(t *testing.T) {
	f := &fakeClock{vals: []time.Duration{0}, info: target.ClockInfo{Name: "virt"}}
	for i := 1; i < 1000; i++ {
		f.vals = append(f.vals, time.Duration(i)*time.Millisecond)
	}
	c := startClock(f, time.Now())
	require.Eventually(t, func() bool { return len(c.Samples()) >= 3 }, 5*time.Second, 5*time.Millisecond)
	c.Nudge()
	c.Stop()
	c.Stop()
	n := len(c.Samples())
	tc := c.TargetClock(time.Second)
	require.Len(t, tc.Samples, n)
	assert.Equal(t, c.Samples()[0].Host+time.Second, tc.Samples[0].Host, "shifted onto the broker clock")
}

func TestStampedJSON(t *testing.T) {
	tc := &conformance.TargetClock{Samples: []conformance.ClockSample{{Host: 0, Target: 10 * time.Second}, {Host: time.Second, Target: 11 * time.Second}}}
	b, err := json.Marshal(stamp(tc, conformance.Action{At: 500 * time.Millisecond, Kind: "reset"}, 500*time.Millisecond))
	require.NoError(t, err)
	assert.JSONEq(t, `{"at":500000000,"kind":"reset","target_ns":10500000000}`, string(b))
	b, err = json.Marshal(stamp(nil, conformance.Action{Kind: "reset"}, 0))
	require.NoError(t, err)
	assert.JSONEq(t, `{"at":0,"kind":"reset"}`, string(b), "no target clock: host time only")
}

// A phase budget on the target clock ends when the target has run that
// long, not when the host has.
func TestWithTargetTimeout(t *testing.T) {
	f := &fakeClock{info: target.ClockInfo{Name: "virt"}}
	for i := 0; i < 100000; i++ {
		f.vals = append(f.vals, time.Duration(i)*10*time.Millisecond) // 10 ms of target time per 20 ms sample
	}
	s := &Session{clock: startClock(f, time.Now())}
	defer s.clock.Stop()
	start := time.Now()
	ctx, cancel := s.WithTargetTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	<-ctx.Done()
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "a target at half speed takes twice as long on the host")
	assert.ErrorIs(t, ctx.Err(), context.Canceled)

	host, hcancel := (&Session{}).WithTargetTimeout(context.Background(), 10*time.Millisecond)
	defer hcancel()
	<-host.Done()
	assert.ErrorIs(t, host.Err(), context.DeadlineExceeded, "no target clock: host time")
}

// Nudges add readings after events, but at most five per interval.
func TestNudgesAreCapped(t *testing.T) {
	f := &fakeClock{info: target.ClockInfo{Name: "virt", SampleEvery: time.Hour}}
	for i := 0; i < 1000; i++ {
		f.vals = append(f.vals, time.Duration(i)*time.Millisecond)
	}
	c := startClock(f, time.Now())
	require.Eventually(t, func() bool { return len(c.Samples()) == 1 }, 5*time.Second, time.Millisecond)
	for i := 0; i < 50; i++ {
		c.Nudge()
	}
	c.Stop()
	f.mu.Lock()
	reads := f.reads
	f.mu.Unlock()
	assert.LessOrEqual(t, reads, 2, "the first reading plus the one at Stop: nudges within a fifth of an hour are dropped")
}
