package session

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ddhil/ddhil/harness/hostload"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/link/console"
	"github.com/ddhil/ddhil/harness/target"
)

// ClockInterval is how often the session reads the target's clock unless
// the target asks for less (ClockInfo.SampleEvery). Every host timestamp
// of the run is mapped onto the target's clock by interpolating between
// these samples, so the interval bounds the mapping error of events the
// firmware does not stamp itself: 20 ms of host time is 20 ms of virtual
// time at real-time speed and about 0.7 s at Renode's 34× compression,
// against a 300 s period.
const ClockInterval = 20 * time.Millisecond

// clockSampler reads a target clock periodically and keeps (host, target)
// pairs on the session epoch.
type clockSampler struct {
	clk   target.Clock
	info  target.ClockInfo
	epoch time.Time

	mu      sync.Mutex
	samples []conformance.ClockSample
	errs    int
	bridge  time.Duration // added to raw readings of a clock that restarted
	lastRaw time.Duration
	nudge   chan struct{}
	every   time.Duration
	last    time.Time // when the last reading was taken

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func startClock(clk target.Clock, epoch time.Time) *clockSampler {
	c := &clockSampler{clk: clk, info: clk.ClockInfo(), epoch: epoch, nudge: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), every: ClockInterval}
	if c.info.SampleEvery > 0 {
		c.every = c.info.SampleEvery
	}
	go c.run()
	return c
}

func (c *clockSampler) run() {
	defer close(c.done)
	t := time.NewTicker(c.every)
	defer t.Stop()
	c.sample()
	for {
		select {
		case <-c.stop:
			c.sample()
			return
		case <-t.C:
			c.sample()
		case <-c.nudge:
			// An extra reading right after an event, but never more than
			// five per interval.
			c.mu.Lock()
			recent := time.Since(c.last) < c.every/5
			c.mu.Unlock()
			if !recent {
				c.sample()
			}
		}
	}
}

// Nudge asks for a sample now (an event just happened), without blocking.
func (c *clockSampler) Nudge() {
	select {
	case c.nudge <- struct{}{}:
	default:
	}
}

// sample reads the clock once. The host time of the pair is the middle of
// the request, which halves the error a slow answer adds; a reading that
// took longer than the interval is dropped (its host instant is vague).
func (c *clockSampler) sample() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	before := time.Now()
	raw, err := c.clk.TargetTime(ctx)
	after := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = after
	if err != nil || after.Sub(before) > 4*c.every {
		c.errs++
		return
	}
	host := before.Sub(c.epoch) + after.Sub(before)/2
	n := len(c.samples)
	if n > 0 && raw < c.lastRaw {
		if !c.info.ResetsWithTarget {
			c.errs++ // a clock that must not go back did: ignore the reading
			return
		}
		// The counter restarted with the firmware: bridge the jump with the
		// host time that passed since the last sample.
		last := c.samples[n-1]
		c.bridge = last.Target + (host - last.Host) - raw
	}
	c.lastRaw = raw
	t := raw + c.bridge
	if n > 0 && (host <= c.samples[n-1].Host || t < c.samples[n-1].Target) {
		return
	}
	c.samples = append(c.samples, conformance.ClockSample{Host: host, Target: t})
}

func (c *clockSampler) Stop() {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
}

// Samples returns the pairs so far, on the session epoch.
func (c *clockSampler) Samples() []conformance.ClockSample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]conformance.ClockSample(nil), c.samples...)
}

// TargetClock returns the samples shifted onto another host clock, as the
// checks read them.
func (c *clockSampler) TargetClock(shift time.Duration) *conformance.TargetClock {
	tc := &conformance.TargetClock{Name: c.info.Name, FirmwareDerived: c.info.FirmwareDerived, Compressed: c.info.Compressed, StepSlice: c.info.StepSlice}
	for _, s := range c.Samples() {
		tc.Samples = append(tc.Samples, conformance.ClockSample{Host: s.Host + shift, Target: s.Target})
	}
	return tc
}

func (s *Session) collectLines(sub *console.Subscription) {
	for l := range sub.C {
		if s.clock != nil {
			s.clock.Nudge() // a sample right after each line tightens its mapping
		}
		s.linesMu.Lock()
		s.lines = append(s.lines, l)
		s.linesMu.Unlock()
	}
}

// TargetAt maps an offset from the session's start (console lines, module
// events) onto the target's clock; false when the target has none (a
// board runs in real time: its clock is the host's).
func (s *Session) TargetAt(mono time.Duration) (time.Duration, bool) {
	if s.clock == nil {
		return 0, false
	}
	tc := s.clock.TargetClock(0)
	if len(tc.Samples) == 0 {
		return 0, false
	}
	return tc.At(mono), true
}

// ClockInfo describes the target's clock, when it has one.
func (s *Session) ClockInfo() (target.ClockInfo, bool) {
	if s.clock == nil {
		return target.ClockInfo{}, false
	}
	return s.clock.info, true
}

// Stalls are the host-load samples so far (offsets from the session start).
func (s *Session) Stalls() []hostload.Sample {
	if s.load == nil {
		return nil
	}
	return s.load.Samples()
}

// stamped is a record of a *.jsonl file with the target's time added.
type stamped[T any] struct {
	Rec      T
	TargetNS *time.Duration
}

func (r stamped[T]) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(r.Rec)
	if err != nil || r.TargetNS == nil || len(b) < 2 || b[len(b)-1] != '}' {
		return b, err
	}
	extra := fmt.Sprintf(`"target_ns":%d`, int64(*r.TargetNS))
	if string(b) != "{}" {
		extra = "," + extra
	}
	return append(append(b[:len(b)-1:len(b)-1], extra...), '}'), nil
}

// stamp pairs rec with its target time (none without a target clock).
func stamp[T any](tc *conformance.TargetClock, rec T, at time.Duration) any {
	if tc == nil || len(tc.Samples) == 0 {
		return rec
	}
	t := tc.At(at)
	return stamped[T]{Rec: rec, TargetNS: &t}
}

// WithTargetTimeout is context.WithTimeout on the target's clock: the
// context ends once the target has run for d (a phase budget of the
// scenario is the firmware's time, which a loaded host slows and a
// compressed run speeds up). Without a target clock it is host time; with
// one, host time still caps it at 3×d + 30 s, for a target that stopped.
func (s *Session) WithTargetTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if s.clock == nil {
		return context.WithTimeout(ctx, d)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*d+30*time.Second)
	latest := func() (time.Duration, bool) {
		smp := s.clock.Samples()
		if len(smp) == 0 {
			return 0, false
		}
		return smp[len(smp)-1].Target, true
	}
	start, ok := latest()
	go func() {
		t := time.NewTicker(s.clock.every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				now, have := latest()
				switch {
				case !have:
				case !ok:
					start, ok = now, true
				case now-start >= d:
					cancel()
					return
				}
			}
		}
	}()
	return ctx, cancel
}
