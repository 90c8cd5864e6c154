package target

import (
	"context"
	"time"
)

// Clock is a target with a clock of its own that timing can be judged on:
// an emulator's virtual time, or the firmware's own tick counter. A loaded
// host slows or bunches what the harness sees, not what the target's clock
// says, so timing verdicts taken on it hold on a busy machine. Real boards
// have none: they run in real time, and host time is their clock.
type Clock interface {
	// TargetTime reads the clock now. The session samples it and maps every
	// host timestamp of the run onto it by interpolation.
	TargetTime(ctx context.Context) (time.Duration, error)
	// ClockInfo says what the clock is.
	ClockInfo() ClockInfo
}

// ClockInfo describes a target clock for reports and for the judge.
type ClockInfo struct {
	// Name is what the report shows, e.g. "renode-virtual" or
	// "guest-ticks:ticks_lo".
	Name string `json:"name"`
	// Resolution is the clock's step (Renode: one quantum; a 1 kHz tick
	// counter: 1 ms).
	Resolution time.Duration `json:"resolution_ns"`
	// FirmwareDerived marks a clock that the firmware itself keeps (its
	// SysTick counter): it is trusted only while its rate against host time
	// stays within a coarse bound, since a misconfigured tick would
	// otherwise pass unnoticed. An emulator's own virtual time is not.
	FirmwareDerived bool `json:"firmware_derived,omitempty"`
	// ResetsWithTarget marks a clock that restarts from zero on a target
	// reset (a RAM counter); the sampler bridges the jump.
	ResetsWithTarget bool `json:"resets_with_target,omitempty"`
	// Compressed says virtual time may run ahead of host time while the
	// firmware idles.
	Compressed bool `json:"compressed,omitempty"`
	// StepSlice is set when virtual time advances in slices run only while
	// the harness is idle (Stepper): a late harness then costs the firmware
	// at most one slice per exchange.
	StepSlice time.Duration `json:"step_slice_ns,omitempty"`
	// SampleEvery is how often reading the clock is cheap enough (0: the
	// session's default). Reading Renode's time goes through its serial
	// monitor and slows the emulation when done too often.
	SampleEvery time.Duration `json:"sample_every_ns,omitempty"`
}

// Pider is a target backed by a local process whose scheduling delay the
// harness can measure (harness/hostload); 0 means none (a container, a
// board).
type Pider interface {
	Pid() int
}

// ClockOf returns t's clock when it has one on this run: a driver whose
// clock depends on the firmware or the configuration (a tick counter that
// may be absent) also implements HasClock.
func ClockOf(t Target) (Clock, bool) {
	c, ok := t.(Clock)
	if !ok {
		return nil, false
	}
	if h, ok := t.(interface{ HasClock() bool }); ok && !h.HasClock() {
		return nil, false
	}
	return c, true
}

// Stepper is a target whose time the harness can advance in bounded
// slices, holding it in between (Renode's RunFor). Stepping only while the
// harness has nothing left to say to the firmware bounds what a slow host
// costs the firmware: one slice of its time per exchange, however slow the
// answer (docs/timing.md).
type Stepper interface {
	// Steps reports whether this run is configured to step.
	Steps() bool
	// Step pauses the emulation and runs it slice by slice until ctx ends;
	// before each slice it calls ready, which returns once the harness is
	// idle.
	Step(ctx context.Context, ready func(context.Context) error) error
}
