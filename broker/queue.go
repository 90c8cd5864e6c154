package broker

import "sync"

// fifo is an unbounded queue: push never blocks, so the MQTT client
// goroutine that produces a response never waits on the one that sends it.
type fifo[T any] struct {
	mu    sync.Mutex
	items []T // items[head:] are queued
	head  int
	ready chan struct{} // one token while items may be non-empty
}

func newFIFO[T any]() *fifo[T] { return &fifo[T]{ready: make(chan struct{}, 1)} }

func (q *fifo[T]) push(v T) {
	q.mu.Lock()
	q.items = append(q.items, v)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop waits for an item or for done; ok is false when done fired first.
func (q *fifo[T]) pop(done <-chan struct{}) (v T, ok bool) {
	for {
		if v, ok = q.tryPop(); ok {
			return v, true
		}
		select {
		case <-q.ready:
		case <-done:
			return v, false
		}
	}
}

func (q *fifo[T]) tryPop() (v T, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.head == len(q.items) {
		return v, false
	}
	v = q.items[q.head]
	var zero T
	q.items[q.head] = zero
	q.head++
	if q.head == len(q.items) { // drained: reuse the array from the start
		q.items, q.head = q.items[:0], 0
	}
	return v, true
}
