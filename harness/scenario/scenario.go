// Package scenario drives a running session through what the conformance
// checks need to see: normal reporting for N periods, a broker-side
// disconnect (DD-R01), a Throttled rejection and a dropped response
// (DD-R02), and a target reset (DD-I02). Each phase is recorded as an action
// so the checks know which reports belong to which phase.
//
// A phase whose reports never come is not an error here: the firmware may
// be at fault (a check will say so); only lab failures (the target died,
// the broker failed) stop the scenario.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/session"
)

// Plan says which phases to run. The zero value runs only normal reporting.
type Plan struct {
	// Periods is how many report intervals the normal phase observes
	// (default 5; the first report plus Periods more are awaited).
	Periods    int
	Disconnect bool // broker drops the link: DD-R01
	Reject     bool // one Throttled rejection, then one dropped response: DD-R02
	Reset      bool // target reset: DD-I02
}

// Full is the plan `ddhil run` uses by default.
func Full(periods int) Plan {
	return Plan{Periods: periods, Disconnect: true, Reject: true, Reset: true}
}

// Session is what the scenario needs from harness/session.
type Session interface {
	Mark() uint64
	WaitReportsAfter(ctx context.Context, after uint64, n int, thing string) ([]broker.Event, error)
	Reset(ctx context.Context) error
	Action(kind, detail string)
	Broker() *broker.Broker
}

var _ Session = (*session.Session)(nil)

// TargetTimer is a session that can time a phase on the target's own clock
// (docs/timing.md): the phase budgets are the firmware's time, which a
// loaded host stretches and time compression shrinks.
type TargetTimer interface {
	WithTargetTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc)
}

var _ TargetTimer = (*session.Session)(nil)

// Config is what the phases need to know about the device.
type Config struct {
	Thing  string
	Expect conformance.Expectations
	// Logf gets one progress line per phase.
	Logf func(format string, args ...any)
}

// Run plays the plan. It returns only lab errors (and ctx's error); phases
// that time out waiting for reports are logged and the scenario goes on.
func Run(ctx context.Context, s Session, cfg Config, plan Plan) error {
	exp := cfg.Expect.WithDefaults()
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if plan.Periods <= 0 {
		plan.Periods = 5
	}
	p := exp.TestPeriod
	r := &runner{s: s, thing: cfg.Thing, logf: logf}

	// Normal reporting: the first report may take up to the first-report
	// bound after the connection, then one per period.
	s.Action(conformance.ActionPhase, "normal")
	got, err := r.awaitN(ctx, "normal", s.Mark(), plan.Periods+1, exp.FirstReportBound+time.Duration(plan.Periods+2)*p)
	if err != nil {
		return err
	}
	if got == 0 {
		// Nothing to drop, throttle or reset against: the later phases
		// would only wait out their bounds. The checks say why.
		r.failed("normal", "no report reached the broker within %s; the later phases were not played", exp.FirstReportBound+time.Duration(plan.Periods+2)*p)
		s.Action(conformance.ActionPhase, "end")
		return nil
	}

	if plan.Disconnect {
		s.Action(conformance.ActionPhase, "disconnect")
		mark := s.Mark()
		if err := s.Broker().Kick(kickTarget(s.Broker(), cfg.Thing)); err != nil {
			// Not a failure: a device may connect only to report. DD-R01
			// skips and says why.
			msg := fmt.Sprintf("the device was not connected when the broker was to drop it: %v", err)
			logf("phase disconnect: %s", msg)
			s.Action(conformance.ActionKickMissed, msg)
		} else {
			s.Action(conformance.ActionKick, "broker drops the connection")
		}
		if err := r.awaitAfter(ctx, "disconnect", mark, 1, exp.ReconnectBound+exp.FirstReportBound); err != nil {
			return err
		}
	}

	if plan.Reject {
		s.Action(conformance.ActionPhase, "reject")
		b := s.Broker()
		mark := s.Mark()
		s.Action(conformance.ActionReject, defender.CodeThrottled)
		b.RejectAll(defender.CodeThrottled)
		err := r.awaitAfter(ctx, "reject", mark, 1, exp.FirstReportBound+3*p)
		b.RejectAll("")
		if err != nil {
			return err
		}
		// After a Throttled rejection the device may skip a period; then one
		// report's response is dropped and the device must carry on.
		mark = s.Mark()
		s.Action(conformance.ActionDropResponse, "broker answers nothing to the next report")
		b.DropNextResponses(1)
		err = r.awaitAfter(ctx, "drop-response", mark, 2, exp.FirstReportBound+5*p)
		b.DropNextResponses(0) // disarmed if no report came
		if err != nil {
			return err
		}
	}

	if plan.Reset {
		s.Action(conformance.ActionPhase, "reset")
		mark := s.Mark()
		if err := s.Reset(ctx); err != nil {
			if isLab(err) || ctx.Err() != nil {
				return err
			}
			r.failed("reset", "the device did not boot after the target reset: %v", err)
		}
		if err := r.awaitAfter(ctx, "reset", mark, 2, exp.FirstReportBound+exp.ReconnectBound+3*p); err != nil {
			return err
		}
	}
	s.Action(conformance.ActionPhase, "end")
	return nil
}

type runner struct {
	s     Session
	thing string
	logf  func(string, ...any)
}

// failed records a step the device did not complete: the runner turns it
// into a finding (never only a log line).
func (r *runner) failed(phase, format string, args ...any) {
	msg := phase + ": " + fmt.Sprintf(format, args...)
	r.logf("phase %s", msg)
	r.s.Action(conformance.ActionStepFailed, msg)
}

// awaitAfter waits for n reports after mark, at most within. Missing
// reports are the firmware's business (the checks judge them); a dead
// target or a cancelled run is returned.
func (r *runner) awaitAfter(ctx context.Context, phase string, mark uint64, n int, within time.Duration) error {
	_, err := r.awaitN(ctx, phase, mark, n, within)
	return err
}

// awaitN is awaitAfter that also says how many reports came.
func (r *runner) awaitN(ctx context.Context, phase string, mark uint64, n int, within time.Duration) (int, error) {
	var wctx context.Context
	var cancel context.CancelFunc
	if tt, ok := r.s.(TargetTimer); ok {
		wctx, cancel = tt.WithTargetTimeout(ctx, within)
	} else {
		wctx, cancel = context.WithTimeout(ctx, within)
	}
	defer cancel()
	start := time.Now()
	// Any thing counts: a device that reports for the wrong thing is still
	// reporting, and DD-S01/DD-X02 judge the topic.
	got, err := r.s.WaitReportsAfter(wctx, mark, n, "")
	switch {
	case err == nil:
		r.logf("phase %s: %d report(s) in %s", phase, len(got), time.Since(start).Round(10*time.Millisecond))
		return len(got), nil
	case ctx.Err() != nil:
		return len(got), ctx.Err()
	case isLab(err) || errors.Is(err, harness.ErrFirmwareCrash):
		return len(got), err
	default:
		r.logf("phase %s: %d of %d report(s) within %s; going on", phase, len(got), n, within)
		return len(got), nil
	}
}

func isLab(err error) bool { return errors.Is(err, harness.ErrLab) }

// String describes a plan for progress lines.
func (p Plan) String() string {
	return fmt.Sprintf("periods=%d disconnect=%t reject=%t reset=%t", p.Periods, p.Disconnect, p.Reject, p.Reset)
}

// kickTarget is the client ID of the connection that carried the thing's
// latest report (a device may use a client ID other than its thing name),
// or the thing name when no report came yet.
func kickTarget(b *broker.Broker, thing string) string {
	evs := b.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == broker.EventReport && evs[i].ClientID != "" {
			return evs[i].ClientID
		}
	}
	return thing
}
