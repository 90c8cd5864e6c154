package serialport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ddhil/ddhil/harness"
)

// Retry bounds re-opening a port, e.g. while a USB CDC port re-enumerates
// after a reset and its path is briefly missing (or present but not yet
// accessible).
type Retry struct {
	Attempts   int           // opens tried in all; 1 or less = no retry
	Backoff    time.Duration // wait after the first failure; doubles each time (50 ms when zero)
	MaxBackoff time.Duration // cap of the wait (1 s when zero)
	// OnAttempt, when set, is told about each failed attempt (for logs).
	OnAttempt func(attempt int, err error)
}

// DefaultRetry rides out a re-enumeration of a few seconds.
var DefaultRetry = Retry{Attempts: 20, Backoff: 50 * time.Millisecond, MaxBackoff: time.Second}

// OpenRetry opens spec, retrying failed opens with exponential back-off.
// Bad arguments (not lab errors) are not retried.
func OpenRetry(ctx context.Context, spec string, baud int, r Retry) (Port, error) {
	wait := r.Backoff
	if wait <= 0 {
		wait = 50 * time.Millisecond
	}
	maxWait := r.MaxBackoff
	if maxWait <= 0 {
		maxWait = time.Second
	}
	attempts := max(r.Attempts, 1)
	var last error
	for i := 1; ; i++ {
		p, err := OpenContext(ctx, spec, baud)
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, harness.ErrLab) {
			return nil, err
		}
		last = err
		if r.OnAttempt != nil {
			r.OnAttempt(i, err)
		}
		if i >= attempts {
			break
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, harness.LabError(fmt.Errorf("serialport: open %s: gave up after %d attempts: %w (last error: %v)", spec, i, ctx.Err(), last))
		}
		wait = min(2*wait, maxWait)
	}
	return nil, harness.LabError(fmt.Errorf("serialport: open %s: gave up after %d attempts: %w", spec, attempts, last))
}

// Stream is a Port that survives its device going away: when a read or
// write finds the line lost, it re-opens the same spec with Retry and
// carries on, so readers keep one handle across board resets. Bytes sent
// while the line was down are lost. When the retries run out the error
// (ErrPortLost, harness.ErrLab) is returned and sticks.
type Stream struct {
	spec  string
	baud  int
	retry Retry

	mu       sync.Mutex
	port     Port          // nil while re-opening
	gen      int           // bumped on every re-open
	ready    chan struct{} // closed when port is usable again (or failed)
	failed   error         // sticky: retries exhausted
	deadline time.Time
	closed   bool
	done     chan struct{} // closed by Close
	ctx      context.Context
	cancel   context.CancelFunc
	reopens  int
}

// OpenStream opens spec (with retry) and returns a self-healing Stream.
func OpenStream(ctx context.Context, spec string, baud int, r Retry) (*Stream, error) {
	p, err := OpenRetry(ctx, spec, baud, r)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	close(ready)
	return &Stream{spec: spec, baud: baud, retry: r, port: p, ready: ready, done: make(chan struct{}), ctx: sctx, cancel: cancel}, nil
}

// Name is the spec the stream opens.
func (s *Stream) Name() string { return s.spec }

// Reopens counts how often the stream has re-opened its port.
func (s *Stream) Reopens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reopens
}

// SetReadDeadline applies to the current and any re-opened port.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadline = t
	if s.port != nil {
		return s.port.SetReadDeadline(t)
	}
	return nil
}

// current waits until a port is available and returns it with its
// generation. While waiting it honours the read deadline when forRead.
func (s *Stream) current(forRead bool) (Port, int, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, 0, fmt.Errorf("serialport: %s: %w", s.spec, os.ErrClosed)
		}
		if s.failed != nil {
			err := s.failed
			s.mu.Unlock()
			return nil, 0, err
		}
		if s.port != nil {
			p, g := s.port, s.gen
			s.mu.Unlock()
			return p, g, nil
		}
		ready, dl := s.ready, s.deadline
		s.mu.Unlock()
		var timeout <-chan time.Time
		if forRead && !dl.IsZero() {
			left := time.Until(dl)
			if left <= 0 {
				return nil, 0, fmt.Errorf("serialport: %s: read: %w", s.spec, os.ErrDeadlineExceeded)
			}
			t := time.NewTimer(left)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ready:
		case <-s.done:
		case <-timeout:
			return nil, 0, fmt.Errorf("serialport: %s: read: %w (port re-opening)", s.spec, os.ErrDeadlineExceeded)
		}
	}
}

// Read reads from the current port, re-opening it when it is lost.
func (s *Stream) Read(p []byte) (int, error) {
	for {
		port, gen, err := s.current(true)
		if err != nil {
			return 0, err
		}
		n, err := port.Read(p)
		if n > 0 || err == nil {
			return n, nil
		}
		if !s.healable(err) {
			return 0, err
		}
		if herr := s.heal(s.ctx, gen, err); herr != nil {
			return 0, herr
		}
	}
}

// Write writes to the current port; when the line is lost it re-opens it and
// writes what was left once more.
func (s *Stream) Write(p []byte) (int, error) {
	written := 0
	for try := 0; ; try++ {
		port, gen, err := s.current(false)
		if err != nil {
			return written, err
		}
		n, err := port.Write(p[written:])
		written += n
		if err == nil {
			return written, nil
		}
		if try > 0 || !s.healable(err) {
			return written, err
		}
		if herr := s.heal(s.ctx, gen, err); herr != nil {
			return written, herr
		}
	}
}

// healable: the line was lost, or our port was closed under us by a
// concurrent re-open.
func (s *Stream) healable(err error) bool {
	if s.retry.Attempts <= 1 {
		return false
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	return !closed && (errors.Is(err, ErrPortLost) || errors.Is(err, os.ErrClosed))
}

// Reopen closes the port and opens it again with retry, e.g. right after a
// reset that makes a USB CDC port re-enumerate.
func (s *Stream) Reopen(ctx context.Context) error {
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	return s.heal(ctx, gen, errors.New("re-open requested"))
}

// heal re-opens the port unless another caller already did since gen.
func (s *Stream) heal(ctx context.Context, gen int, cause error) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("serialport: %s: %w", s.spec, os.ErrClosed)
	}
	if s.gen != gen || s.failed != nil {
		s.mu.Unlock()
		return s.failed // someone else re-opened (or gave up); use theirs
	}
	old := s.port
	s.port = nil
	s.gen++
	s.ready = make(chan struct{})
	ready := s.ready
	s.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}

	p, err := OpenRetry(ctx, s.spec, s.baud, s.retry)

	s.mu.Lock()
	defer s.mu.Unlock()
	defer close(ready)
	if s.closed {
		if p != nil {
			_ = p.Close()
		}
		return fmt.Errorf("serialport: %s: %w", s.spec, os.ErrClosed)
	}
	if err != nil {
		s.failed = harness.LabError(fmt.Errorf("serialport: %s: %w and could not be re-opened (after %v): %w", s.spec, ErrPortLost, cause, err))
		return s.failed
	}
	if !s.deadline.IsZero() {
		_ = p.SetReadDeadline(s.deadline)
	}
	s.port = p
	s.reopens++
	return nil
}

// Close closes the port and stops any re-opening.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	p := s.port
	s.port = nil
	close(s.done)
	s.mu.Unlock()
	s.cancel()
	if p != nil {
		return p.Close()
	}
	return nil
}
