package session

import (
	"context"
	"io"
	"sync/atomic"
	"time"
)

// StepQuiet is how long the transport UART must have been silent before a
// stepping target may run its next slice: the module has answered, and an
// answer still being computed (the broker's) would have started by then.
const StepQuiet = 20 * time.Millisecond

// activity is the transport UART with the time of its last byte in either
// direction.
type activity struct {
	rw   io.ReadWriter
	last atomic.Int64 // unix ns
}

func newActivity(rw io.ReadWriter) *activity {
	a := &activity{rw: rw}
	a.touch()
	return a
}

func (a *activity) touch() { a.last.Store(time.Now().UnixNano()) }

func (a *activity) Read(p []byte) (int, error) {
	n, err := a.rw.Read(p)
	if n > 0 {
		a.touch()
	}
	return n, err
}

func (a *activity) Write(p []byte) (int, error) {
	a.touch()
	n, err := a.rw.Write(p)
	a.touch()
	return n, err
}

// quiet returns once neither direction has carried a byte for q.
func (a *activity) quiet(ctx context.Context, q time.Duration) error {
	for {
		since := time.Since(time.Unix(0, a.last.Load()))
		if since >= q {
			return nil
		}
		t := time.NewTimer(q - since)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
