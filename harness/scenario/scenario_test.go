package scenario

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/judge/conformance"
)

// fakeSession records what the scenario does; its reports come (or not)
// from a function, and its broker is a real one (the fault switches are
// real calls).
type fakeSession struct {
	b       *broker.Broker
	mark    uint64
	actions []string
	resets  int
	wait    func(phaseCall int, n int) error
	calls   int
}

func (f *fakeSession) Mark() uint64 { f.mark++; return f.mark }
func (f *fakeSession) WaitReportsAfter(ctx context.Context, after uint64, n int, thing string) ([]broker.Event, error) {
	f.calls++
	if err := f.wait(f.calls, n); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			<-ctx.Done() // a real wait runs until its deadline
		}
		return nil, err
	}
	return make([]broker.Event, n), nil
}
func (f *fakeSession) Reset(context.Context) error { f.resets++; return nil }
func (f *fakeSession) Action(kind, detail string) {
	f.actions = append(f.actions, kind+":"+detail)
}
func (f *fakeSession) Broker() *broker.Broker { return f.b }

func newFake(t *testing.T, wait func(int, int) error) *fakeSession {
	b, err := broker.New(broker.Config{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() { _ = b.Close() })
	return &fakeSession{b: b, wait: wait}
}

var fastExpect = conformance.Expectations{TestPeriod: 10 * time.Millisecond, FirstReportBound: 20 * time.Millisecond, ReconnectBound: 20 * time.Millisecond}

func TestFullPlanRecordsEveryPhaseInOrder(t *testing.T) {
	f := newFake(t, func(int, int) error { return nil })
	require.NoError(t, Run(context.Background(), f, Config{Thing: "dut", Expect: fastExpect}, Full(3)))
	assert.Equal(t, []string{
		"phase:normal",
		// No device is connected to the fake's broker, so the kick fails
		// and no drop is recorded (DD-R01 then skips and says why).
		"phase:disconnect",
		`kick-missed:the device was not connected when the broker was to drop it: broker: kick: no connected client "dut"`,
		"phase:reject", "reject:Throttled", "drop-response:broker answers nothing to the next report",
		"phase:reset",
		"phase:end",
	}, f.actions)
	assert.Equal(t, 1, f.resets)
	assert.Equal(t, 5, f.calls, "normal, disconnect, reject, drop-response, reset")
}

// A phase whose reports never come is the firmware's business: the
// scenario logs it and goes on, so the checks can judge.
func TestMissingReportsDoNotStopTheScenario(t *testing.T) {
	f := newFake(t, func(call, _ int) error {
		if call == 1 {
			return nil // the normal phase had its reports
		}
		return fmt.Errorf("session: 0 of 1 reports: %w", context.DeadlineExceeded)
	})
	var lines []string
	err := Run(context.Background(), f, Config{Thing: "dut", Expect: fastExpect, Logf: func(format string, a ...any) {
		lines = append(lines, fmt.Sprintf(format, a...))
	}}, Full(2))
	require.NoError(t, err)
	assert.Contains(t, f.actions, "phase:end")
	going := 0
	for _, l := range lines {
		if strings.Contains(l, "going on") {
			going++
		}
	}
	assert.Equal(t, 4, going, "every later phase timed out and went on: %q", lines)
}

// A device that never reached the broker in the normal phase: the later
// phases are not played (they would only wait out their bounds), and the
// reason is a failed step.
func TestNoReportAtAllEndsTheScenario(t *testing.T) {
	f := newFake(t, func(int, int) error { return fmt.Errorf("session: 0 of 3 reports: %w", context.DeadlineExceeded) })
	require.NoError(t, Run(context.Background(), f, Config{Thing: "dut", Expect: fastExpect}, Full(2)))
	assert.Equal(t, 1, f.calls, "only the normal phase waited")
	assert.Zero(t, f.resets)
	require.Len(t, f.actions, 3)
	assert.Contains(t, f.actions[1], "step-failed:normal: no report reached the broker")
	assert.Equal(t, "phase:end", f.actions[2])
}

// A lab failure (the target died, a port vanished) stops the scenario at
// once and is returned as is.
func TestLabErrorStopsTheScenario(t *testing.T) {
	lab := harness.LabError(errors.New("qemu exited"))
	f := newFake(t, func(call, _ int) error {
		if call == 2 {
			return lab
		}
		return nil
	})
	err := Run(context.Background(), f, Config{Thing: "dut", Expect: fastExpect}, Full(2))
	require.ErrorIs(t, err, harness.ErrLab)
	assert.NotContains(t, f.actions, "phase:reject")
	assert.Zero(t, f.resets)
}

func TestCancelledRunReturnsContextError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := newFake(t, func(int, int) error { cancel(); return context.Canceled })
	err := Run(ctx, f, Config{Thing: "dut", Expect: fastExpect}, Full(2))
	require.ErrorIs(t, err, context.Canceled)
}

// A reset after which the device does not boot is recorded as a failed
// step (the runner makes it a finding), never only a log line.
func TestFailedResetIsRecorded(t *testing.T) {
	f := newFake(t, func(int, int) error { return nil })
	s := &failingReset{fakeSession: f}
	require.NoError(t, Run(context.Background(), s, Config{Thing: "dut", Expect: fastExpect}, Plan{Periods: 1, Reset: true}))
	assert.Contains(t, f.actions, "step-failed:reset: the device did not boot after the target reset: session: boot marker not seen")
	assert.Contains(t, f.actions, "phase:end", "the scenario goes on so the checks can judge")
}

type failingReset struct{ *fakeSession }

func (f *failingReset) Reset(context.Context) error {
	return errors.New("session: boot marker not seen")
}

// A reset that fails because the lab failed stops the scenario.
func TestLabResetStopsTheScenario(t *testing.T) {
	f := newFake(t, func(int, int) error { return nil })
	s := &labReset{fakeSession: f}
	err := Run(context.Background(), s, Config{Thing: "dut", Expect: fastExpect}, Plan{Periods: 1, Reset: true})
	require.ErrorIs(t, err, harness.ErrLab)
	assert.NotContains(t, f.actions, "phase:end")
}

type labReset struct{ *fakeSession }

func (f *labReset) Reset(context.Context) error {
	return harness.LabError(errors.New("qemu: QMP gone"))
}
