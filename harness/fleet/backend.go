package fleet

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness/fleet/mosquitto"
)

// Report is one fleet run against one backend, with its memory figures.
type Report struct {
	Backend string `json:"backend"` // "ddhil" or "mosquitto+responder"
	*Result
	// Process is this process (agents, plus the broker or the responder);
	// PeakRSS resets at the start of the run when the kernel allows it.
	Process Memory `json:"process"`
	// PeakRSSReset tells whether Process.PeakRSS covers this run only.
	PeakRSSReset bool `json:"peak_rss_reset"`
	// BrokerPeakRSS is mosquitto's own VmHWM (0 for ddhil, which is in
	// process).
	BrokerPeakRSS uint64 `json:"broker_peak_rss_bytes,omitempty"`
	// ResponderPeakRSS is the responder's VmHWM when it ran in a process of
	// its own.
	ResponderPeakRSS uint64 `json:"responder_peak_rss_bytes,omitempty"`
	// BrokerEvents is how many events ddhil's broker logged.
	BrokerEvents uint64 `json:"broker_events,omitempty"`
}

// BrokerConfig is the ddhil broker configuration for a fleet: AWS's
// throttle window scaled like the periods, so a well-behaved fleet is never
// throttled and a too-fast one would be.
func BrokerConfig(p *Profile, record io.Writer) broker.Config {
	return broker.Config{Throttle: time.Duration(float64(broker.DefaultThrottle) / p.PeriodScale), Record: record}
}

// RunDDHIL starts ddhil's broker (recording to record when non-nil), runs
// the fleet against it and closes it (which flushes the record).
func RunDDHIL(ctx context.Context, opts Options, record io.Writer) (*Report, error) {
	if opts.Profile == nil {
		return nil, fmt.Errorf("fleet: no profile")
	}
	reset := ResetPeakRSS()
	// Both ends of every connection live here.
	if err := RaiseFileLimit(uint64(2*opts.Devices + 1024)); err != nil {
		return nil, fmt.Errorf("%w (or run the broker in a process of its own: RunDDHILProcess)", err)
	}
	b, err := broker.New(BrokerConfig(opts.Profile, record))
	if err != nil {
		return nil, fmt.Errorf("fleet: broker: %w", err)
	}
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := b.Start(bctx); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("fleet: start broker: %w", err)
	}
	opts.Addr = b.Addr("tcp")
	res, err := Run(ctx, opts)
	rep := &Report{Backend: "ddhil", Result: res, PeakRSSReset: reset}
	rep.Process = ReadMemory()
	if res != nil && res.Connected > 0 {
		// The agents hung up; let the broker log each disconnect before it
		// closes, or the record would show them as server-initiated.
		if werr := waitDisconnects(ctx, b, res.Connected); werr != nil && err == nil {
			err = werr
		}
	}
	rep.BrokerEvents = b.Recorder().Last()
	if cerr := b.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("fleet: close broker (record file): %w", cerr)
	}
	return rep, err
}

// RunMosquitto starts mosquitto and the validating responder, runs the
// fleet against them and stops both. The responder runs in this process,
// or, when responder is non-nil, in the process responder(addr) returns (a
// command whose main calls mosquitto.ServeResponder), so that it does not
// share a Go scheduler with the agents. It returns mosquitto.ErrNotInstalled
// (wrapped) when there is no mosquitto.
func RunMosquitto(ctx context.Context, opts Options, responder func(addr string) *exec.Cmd) (*Report, error) {
	reset := ResetPeakRSS()
	// mosquitto inherits the limit: it holds one descriptor per agent.
	if err := RaiseFileLimit(uint64(opts.Devices + 1024)); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	srv, err := mosquitto.Start(sctx)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	defer srv.Close()
	var stop func() (uint64, error)
	if responder == nil {
		resp, err := mosquitto.StartResponder(sctx, srv.Addr)
		if err != nil {
			return nil, fmt.Errorf("fleet: %w (mosquitto log: %s)", err, srv.Log())
		}
		stop = func() (uint64, error) { resp.Close(); return 0, nil }
	} else {
		c, err := startChild(ctx, responder(srv.Addr), "responder")
		if err != nil {
			return nil, err
		}
		defer c.kill()
		if _, err := c.next("ready", 30*time.Second); err != nil {
			return nil, fmt.Errorf("%w (mosquitto log: %s)", err, srv.Log())
		}
		stop = func() (uint64, error) {
			done, err := c.finish("stop", 30*time.Second)
			if err != nil {
				return 0, err
			}
			var acc, rej, rss uint64
			if _, err := fmt.Sscanf(done, "%d %d %d", &acc, &rej, &rss); err != nil {
				return 0, fmt.Errorf("fleet: responder process: %q: %w", done, err)
			}
			return rss, nil
		}
	}
	opts.Addr = srv.Addr
	res, err := Run(ctx, opts)
	rep := &Report{Backend: "mosquitto+responder", Result: res, PeakRSSReset: reset}
	rep.Process = ReadMemory()
	rep.BrokerPeakRSS, _ = ProcStatus(srv.PID(), "VmHWM")
	rss, serr := stop()
	rep.ResponderPeakRSS = rss
	if serr != nil && err == nil {
		err = serr
	}
	return rep, err
}

// waitDisconnects waits until the broker logged n disconnects.
func waitDisconnects(ctx context.Context, b *broker.Broker, n int) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	seen := 0
	_, err := b.WaitFor(wctx, func(ev broker.Event) bool {
		if ev.Kind == broker.EventDisconnect {
			seen++
		}
		return seen >= n
	})
	if err != nil {
		return fmt.Errorf("fleet: broker logged %d of %d disconnects: %w", seen, n, err)
	}
	return nil
}
