package tinygoagent

import (
	"context"
	"net"
	"sync"
	"time"
)

// uart is the MCU's module UART as TinyGo's machine.UART presents it to a
// driver (the drivers.UART interface): Write transmits, Buffered and Read
// give what the receive buffer holds and never block. The bytes the module
// writes land in the buffer as they arrive on the pipe.
//
// The first look after a Write shows only the bytes received before that
// Write. On the hardware a reply takes at least half a millisecond of wire
// time at 115200 baud, plus the module's processing, while a driver looks
// microseconds after its Write returns, so that look never shows the
// reply; the emulated module answers in microseconds, and without the rule
// the same driver code would see a reply sometimes at once and sometimes
// at its next poll (100 ms later for espat), which made report timing and
// the driver's reading of multi-part answers depend on the scheduler.
//
// Unlike a real TinyGo UART, whose receive ring holds 128 bytes and drops
// the rest, this buffer is unbounded: the fake never loses bytes.
type uart struct {
	conn    net.Conn
	mu      sync.Mutex
	rx      []byte
	first   bool          // the next Buffered is the first look after a Write
	before  int           // bytes buffered when that Write began
	arrived chan struct{} // a token after bytes arrived (capacity 1)
	stop    context.CancelFunc
	wg      sync.WaitGroup // the receiver and its watcher
}

// newUART starts receiving from conn until ctx ends or close is called;
// the pipe's deadlines end a blocked read or write then, as a reset would.
func newUART(ctx context.Context, conn net.Conn) *uart {
	ctx, stop := context.WithCancel(ctx)
	u := &uart{conn: conn, arrived: make(chan struct{}, 1), stop: stop}
	_ = conn.SetDeadline(time.Time{}) // a previous boot's reset set it
	u.wg.Add(2)
	go func() {
		defer u.wg.Done()
		<-ctx.Done()
		_ = conn.SetDeadline(time.Now())
	}()
	go u.receive()
	return u
}

func (u *uart) receive() {
	defer u.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := u.conn.Read(buf)
		if n > 0 {
			u.mu.Lock()
			u.rx = append(u.rx, buf[:n]...)
			u.mu.Unlock()
			select {
			case u.arrived <- struct{}{}:
			default:
			}
		}
		if err != nil {
			return
		}
	}
}

// close stops the receiver and waits for it, so that the next boot's UART
// is the only reader of the pipe.
func (u *uart) close() {
	u.stop()
	u.wg.Wait()
}

// Arrived signals that bytes came in since the last token was taken.
func (u *uart) Arrived() <-chan struct{} { return u.arrived }

// Buffered is the number of received bytes not read yet (at the first
// look after a Write, of those received before it).
func (u *uart) Buffered() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.first {
		u.first = false
		return min(u.before, len(u.rx))
	}
	return len(u.rx)
}

// Read takes up to len(p) received bytes; 0 when none are buffered.
func (u *uart) Read(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := copy(p, u.rx)
	u.rx = u.rx[n:]
	if len(u.rx) == 0 {
		u.rx = nil
	}
	return n, nil
}

// Write transmits p to the module.
func (u *uart) Write(p []byte) (int, error) {
	u.mu.Lock()
	u.first, u.before = true, len(u.rx)
	u.mu.Unlock()
	return u.conn.Write(p)
}
