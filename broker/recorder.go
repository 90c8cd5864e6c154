package broker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Recorder is the broker's event log. It keeps every event in memory
// (unbounded: a Defender session produces a few events a second at most),
// stamps Seq and the monotonic offset under one lock so both orders agree,
// and never blocks the goroutine that records: JSON Lines are written by a
// goroutine of its own, and subscribers that fall behind lose events (see
// Dropped) rather than stall MQTT clients.
type Recorder struct {
	start time.Time

	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on every append
	subs    map[*subscriber]struct{}
	closed  bool

	dropped atomic.Uint64

	w       *bufio.Writer
	wake    *sync.Cond // signals the JSON Lines writer
	wdone   chan struct{}
	werr    error
	written int
}

type subscriber struct {
	ch      chan Event
	dropped atomic.Uint64
}

// NewRecorder starts a recorder; when w is non-nil every event is written
// to it as one JSON object per line, flushed when the writer catches up and
// on Close.
func NewRecorder(w io.Writer) *Recorder {
	r := &Recorder{
		start:   time.Now(),
		changed: make(chan struct{}),
		subs:    map[*subscriber]struct{}{},
	}
	r.wake = sync.NewCond(&r.mu)
	if w != nil {
		r.w = bufio.NewWriter(w)
		r.wdone = make(chan struct{})
		go r.writeLoop()
	}
	return r
}

// Record stamps ev with the next Seq, the wall clock and the monotonic
// offset since the recorder started, stores it and fans it out. It returns
// the stamped event. Events recorded after Close are ignored.
func (r *Recorder) Record(ev Event) Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ev
	}
	now := time.Now()
	ev.Seq = uint64(len(r.events)) + 1
	ev.Time = now
	ev.Mono = now.Sub(r.start) // monotonic: time.Now carries a monotonic reading
	r.events = append(r.events, ev)
	close(r.changed)
	r.changed = make(chan struct{})
	for s := range r.subs {
		select {
		case s.ch <- ev:
		default:
			s.dropped.Add(1)
			r.dropped.Add(1)
		}
	}
	if r.w != nil {
		r.wake.Signal()
	}
	return ev
}

// Started is the wall-clock time Mono counts from.
func (r *Recorder) Started() time.Time { return r.start }

// Events returns a copy of every event recorded so far, in Seq order.
func (r *Recorder) Events() []Event {
	return r.Since(0)
}

// Since returns the events with Seq > seq.
func (r *Recorder) Since(seq uint64) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq >= uint64(len(r.events)) {
		return nil
	}
	return append([]Event(nil), r.events[seq:]...)
}

// Last returns the Seq of the latest event (0 when none).
func (r *Recorder) Last() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return uint64(len(r.events))
}

// Subscribe delivers events recorded from now on to a channel with the
// given buffer. A subscriber that does not keep up loses events (counted
// by Dropped) instead of slowing the broker. cancel closes the channel.
func (r *Recorder) Subscribe(buffer int) (<-chan Event, func()) {
	if buffer < 0 {
		buffer = 0
	}
	s := &subscriber{ch: make(chan Event, buffer)}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	r.subs[s] = struct{}{}
	r.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if _, ok := r.subs[s]; ok {
				delete(r.subs, s)
				close(s.ch)
			}
		})
	}
}

// Dropped counts events that subscribers lost because their channel was full.
func (r *Recorder) Dropped() uint64 { return r.dropped.Load() }

// WaitFor returns the first event, from the start of the log, for which
// match is true, waiting for new events until ctx is done.
func (r *Recorder) WaitFor(ctx context.Context, match func(Event) bool) (Event, error) {
	return r.WaitForAfter(ctx, 0, match)
}

// WaitForAfter is WaitFor restricted to events with Seq > after.
func (r *Recorder) WaitForAfter(ctx context.Context, after uint64, match func(Event) bool) (Event, error) {
	next := after
	for {
		r.mu.Lock()
		for ; next < uint64(len(r.events)); next++ {
			if ev := r.events[next]; match(ev) {
				r.mu.Unlock()
				return ev, nil
			}
		}
		changed, closed := r.changed, r.closed
		r.mu.Unlock()
		if closed {
			return Event{}, errors.New("broker: wait for event: recorder closed")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("broker: wait for event (searched %d events): %w", next, ctx.Err())
		}
	}
}

// Close stops recording, flushes the JSON Lines output, closes subscriber
// channels and wakes waiters. It returns the first write error.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		if r.wdone != nil {
			<-r.wdone
		}
		return r.werr
	}
	r.closed = true
	for s := range r.subs {
		close(s.ch)
		delete(r.subs, s)
	}
	close(r.changed)
	r.changed = make(chan struct{})
	r.wake.Broadcast()
	r.mu.Unlock()
	if r.wdone != nil {
		<-r.wdone
	}
	return r.werr
}

// writeLoop writes events to the JSON Lines writer in batches, outside the
// lock, so a slow disk or pipe delays only the file.
func (r *Recorder) writeLoop() {
	defer close(r.wdone)
	enc := json.NewEncoder(r.w)
	for {
		r.mu.Lock()
		for r.written == len(r.events) && !r.closed {
			r.wake.Wait()
		}
		batch := r.events[r.written:len(r.events):len(r.events)]
		r.written = len(r.events)
		closed := r.closed
		r.mu.Unlock()

		for i := range batch {
			if r.werr == nil {
				if err := enc.Encode(&batch[i]); err != nil {
					r.werr = fmt.Errorf("broker: write event log: %w", err)
				}
			}
		}
		if r.werr == nil {
			if err := r.w.Flush(); err != nil {
				r.werr = fmt.Errorf("broker: flush event log: %w", err)
			}
		}
		if closed {
			r.mu.Lock()
			done := r.written == len(r.events)
			r.mu.Unlock()
			if done {
				return
			}
		}
	}
}

// WriteJSONL writes events as JSON Lines.
func WriteJSONL(w io.Writer, events []Event) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for i := range events {
		if err := enc.Encode(&events[i]); err != nil {
			return fmt.Errorf("broker: write event %d: %w", events[i].Seq, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("broker: write events: %w", err)
	}
	return nil
}

// ReadJSONL reads an event log written by Recorder or WriteJSONL. Blank
// lines are skipped; a malformed line is an error naming its line number,
// returned with the events read before it.
func ReadJSONL(rd io.Reader) ([]Event, error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024) // payloads up to 128 KB, base64
	var out []Event
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return out, fmt.Errorf("broker: event log line %d: %w", line, err)
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("broker: read event log: %w", err)
	}
	return out, nil
}
