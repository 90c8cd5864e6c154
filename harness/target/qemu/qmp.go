package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
)

// qmpClient is a minimal QEMU Machine Protocol client: JSON objects, one per
// line, over a socket. Replies carry the "id" we sent; asynchronous events
// ("event") are delivered to Events without blocking the reader.
type qmpClient struct {
	conn net.Conn

	wmu sync.Mutex // one command on the wire at a time

	mu      sync.Mutex
	nextID  uint64
	pending map[string]chan qmpReply
	events  []QMPEvent
	closed  error
	done    chan struct{}
}

// QMPEvent is one asynchronous QMP event (RESET, STOP, SHUTDOWN, ...).
type QMPEvent struct {
	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data,omitempty"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	ID    string `json:"id"`
	Event string `json:"event"`
	QMP   json.RawMessage
}

// dialQMP reads the greeting and leaves capabilities negotiation mode.
func dialQMP(ctx context.Context, conn net.Conn) (*qmpClient, error) {
	c := &qmpClient{conn: conn, pending: map[string]chan qmpReply{}, done: make(chan struct{})}
	greeting := make(chan error, 1)
	go c.readLoop(greeting)
	select {
	case err := <-greeting:
		if err != nil {
			conn.Close()
			return nil, err
		}
	case <-ctx.Done():
		conn.Close()
		return nil, fmt.Errorf("qemu: qmp greeting: %w", ctx.Err())
	}
	if _, err := c.Execute(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *qmpClient) readLoop(greeting chan<- error) {
	defer close(c.done)
	sc := bufio.NewScanner(c.conn)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	first := true
	for sc.Scan() {
		var r qmpReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			continue // not ours to judge; QEMU only sends JSON here
		}
		raw := append([]byte(nil), sc.Bytes()...)
		switch {
		case first:
			first = false
			if r.QMP == nil {
				greeting <- fmt.Errorf("qemu: unexpected qmp greeting %s", raw)
				return
			}
			greeting <- nil
		case r.Event != "":
			var ev QMPEvent
			_ = json.Unmarshal(raw, &ev)
			c.mu.Lock()
			c.events = append(c.events, ev)
			c.mu.Unlock()
		default:
			c.mu.Lock()
			ch := c.pending[r.ID]
			delete(c.pending, r.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- r
			}
		}
	}
	err := sc.Err()
	if err == nil {
		err = errors.New("qemu: qmp connection closed")
	}
	if first {
		greeting <- fmt.Errorf("qemu: qmp greeting: %w", err)
	}
	c.mu.Lock()
	c.closed = err
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
}

// Execute runs one QMP command and returns its "return" value.
func (c *qmpClient) Execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	c.mu.Lock()
	if c.closed != nil {
		err := c.closed
		c.mu.Unlock()
		return nil, fmt.Errorf("qemu: qmp %s: %w", cmd, err)
	}
	c.nextID++
	id := fmt.Sprintf("ddhil-%d", c.nextID)
	ch := make(chan qmpReply, 1)
	c.pending[id] = ch
	c.mu.Unlock()

	msg := map[string]any{"execute": cmd, "id": id}
	if args != nil {
		msg["arguments"] = args
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("qemu: qmp %s: %w", cmd, err)
	}
	c.wmu.Lock()
	_, err = c.conn.Write(append(b, '\n'))
	c.wmu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("qemu: qmp %s: %w", cmd, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("qemu: qmp %s: connection closed before the reply", cmd)
		}
		if r.Error != nil {
			return nil, fmt.Errorf("qemu: qmp %s: %s: %s", cmd, r.Error.Class, r.Error.Desc)
		}
		return r.Return, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, fmt.Errorf("qemu: qmp %s: %w", cmd, ctx.Err())
	}
}

// Events returns the events received so far.
func (c *qmpClient) Events() []QMPEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]QMPEvent(nil), c.events...)
}

func (c *qmpClient) Close() error { return c.conn.Close() }
