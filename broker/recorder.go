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

// Recorder is the broker's event log. By default it keeps every event in
// memory (unbounded: a Defender session produces a few events a second at
// most), which is what a conformance run reads back. NewRingRecorder keeps
// only the latest events instead, for fleets whose whole log would not fit:
// the JSON Lines output still gets every event. Either way it stamps Seq and
// the monotonic offset under one lock so both orders agree, and never blocks
// the goroutine that records: JSON Lines are written by a goroutine of its
// own, and subscribers that fall behind lose events (see Dropped) rather
// than stall MQTT clients.
type Recorder struct {
	start time.Time
	keep  int // 0: every event; > 0: a ring of the latest keep events

	mu      sync.Mutex
	chunks  [][]Event // keep == 0: every event, in chunks of chunkSize
	events  []Event   // keep > 0: the ring
	seq     uint64    // events recorded so far
	counts  map[EventKind]uint64
	changed chan struct{} // closed and replaced on an append when waited on
	waited  bool          // someone holds changed
	subs    map[*subscriber]struct{}
	closed  bool

	dropped atomic.Uint64

	w       *bufio.Writer
	wake    *sync.Cond // signals the JSON Lines writer
	wdone   chan struct{}
	werr    error
	written uint64  // Seq of the last event handed to the writer
	pending []Event // ring mode: events not yet handed to the writer
}

// chunkSize is how many events one chunk of a keep-everything log holds.
const chunkSize = 1024

type subscriber struct {
	ch      chan Event
	dropped atomic.Uint64
}

// NewRecorder starts a recorder that keeps every event in memory; when w
// is non-nil every event is also written to it as one JSON object per line,
// flushed when the writer catches up and on Close.
func NewRecorder(w io.Writer) *Recorder { return NewRingRecorder(w, 0) }

// NewRingRecorder is NewRecorder keeping only the latest keep events in
// memory (keep <= 0 keeps every event). w, when non-nil, still receives
// every event; an event leaves memory once it is written and out of the
// ring, so memory is bounded by keep plus however far the writer lags.
// Events, Since and WaitFor then see only the events still kept; Count and
// WaitCount cover every event.
func NewRingRecorder(w io.Writer, keep int) *Recorder {
	r := &Recorder{
		start:   time.Now(),
		keep:    max(keep, 0),
		counts:  map[EventKind]uint64{},
		changed: make(chan struct{}),
		subs:    map[*subscriber]struct{}{},
	}
	if r.keep > 0 {
		r.events = make([]Event, 0, r.keep)
	}
	r.wake = sync.NewCond(&r.mu)
	if w != nil {
		r.w = bufio.NewWriterSize(w, 64<<10)
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
	r.seq++
	ev.Seq = r.seq
	ev.Time = now
	ev.Mono = now.Sub(r.start) // monotonic: time.Now carries a monotonic reading
	switch {
	case r.keep == 0:
		// Fixed-size chunks: appending never copies the log, and a long
		// log never needs one huge allocation.
		if n := len(r.chunks); n == 0 || len(r.chunks[n-1]) == chunkSize {
			r.chunks = append(r.chunks, make([]Event, 0, chunkSize))
		}
		last := &r.chunks[len(r.chunks)-1]
		*last = append(*last, ev)
	case len(r.events) < r.keep:
		r.events = append(r.events, ev)
	default:
		r.events[(r.seq-1)%uint64(r.keep)] = ev
	}
	if r.keep > 0 && r.w != nil {
		r.pending = append(r.pending, ev)
	}
	r.counts[ev.Kind]++
	if r.waited { // a channel per event only when someone waits
		close(r.changed)
		r.changed = make(chan struct{})
		r.waited = false
	}
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

// Keep is how many events the recorder keeps in memory (0: all).
func (r *Recorder) Keep() int { return r.keep }

// Events returns a copy of every event kept so far (every event recorded
// unless the recorder is a ring), in Seq order.
func (r *Recorder) Events() []Event {
	return r.Since(0)
}

// Since returns the kept events with Seq > seq.
func (r *Recorder) Since(seq uint64) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for s := max(seq, r.oldest()-1) + 1; s <= r.seq; s++ {
		out = append(out, r.at(s))
	}
	return out
}

// oldest is the Seq of the oldest event kept (r.seq+1 when none). Callers
// hold r.mu.
func (r *Recorder) oldest() uint64 {
	if r.keep == 0 || r.seq <= uint64(r.keep) {
		return 1
	}
	return r.seq - uint64(r.keep) + 1
}

// at returns the kept event with Seq s (oldest() <= s <= r.seq). Callers
// hold r.mu.
func (r *Recorder) at(s uint64) Event {
	if r.keep == 0 {
		return r.chunks[(s-1)/chunkSize][(s-1)%chunkSize]
	}
	return r.events[(s-1)%uint64(r.keep)]
}

// Last returns the Seq of the latest event (0 when none).
func (r *Recorder) Last() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Count returns how many events of kind were recorded, kept or not.
func (r *Recorder) Count(kind EventKind) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[kind]
}

// WaitCount waits until at least n events of kind were recorded (kept or
// not) and returns the count, or ctx's error with the count so far.
func (r *Recorder) WaitCount(ctx context.Context, kind EventKind, n uint64) (uint64, error) {
	for {
		r.mu.Lock()
		got, closed := r.counts[kind], r.closed
		changed := r.changed
		r.waited = true
		r.mu.Unlock()
		switch {
		case got >= n:
			return got, nil
		case closed:
			return got, fmt.Errorf("broker: wait for %d %s events (got %d): recorder closed", n, kind, got)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return got, fmt.Errorf("broker: wait for %d %s events (got %d): %w", n, kind, got, ctx.Err())
		}
	}
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
// match is true, waiting for new events until ctx is done. On a ring
// recorder the log starts at the oldest event still kept.
func (r *Recorder) WaitFor(ctx context.Context, match func(Event) bool) (Event, error) {
	return r.WaitForAfter(ctx, 0, match)
}

// WaitForAfter is WaitFor restricted to events with Seq > after. On a ring
// recorder, events that already left the ring are skipped: match sees each
// event at most once, but not necessarily every event.
func (r *Recorder) WaitForAfter(ctx context.Context, after uint64, match func(Event) bool) (Event, error) {
	next := after + 1
	for {
		r.mu.Lock()
		for next = max(next, r.oldest()); next <= r.seq; next++ {
			if ev := r.at(next); match(ev) {
				r.mu.Unlock()
				return ev, nil
			}
		}
		changed, closed := r.changed, r.closed
		r.waited = true
		r.mu.Unlock()
		if closed {
			return Event{}, errors.New("broker: wait for event: recorder closed")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("broker: wait for event (searched %d events): %w", next-1, ctx.Err())
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
// lock, so a slow disk or pipe delays only the file. With every event kept
// a batch is a window of the log; in ring mode it is the pending queue,
// swapped with a spare one so neither grows past the writer's lag.
func (r *Recorder) writeLoop() {
	defer close(r.wdone)
	enc := json.NewEncoder(r.w)
	var spare []Event
	for {
		r.mu.Lock()
		for r.written == r.seq && !r.closed {
			r.wake.Wait()
		}
		var batch []Event
		if r.keep == 0 && r.written < r.seq {
			// The unwritten part of the chunk holding event written+1:
			// chunks are never moved, and later chunks come next round.
			c := r.chunks[r.written/chunkSize]
			batch = c[r.written%chunkSize : len(c) : len(c)]
			r.written += uint64(len(batch))
		} else if r.keep > 0 {
			batch, r.pending = r.pending, spare[:0]
			r.written = r.seq
		}
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
		if r.keep > 0 {
			clear(batch) // let the payloads and results go
			spare = batch
		}
		if closed {
			r.mu.Lock()
			done := r.written == r.seq
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
