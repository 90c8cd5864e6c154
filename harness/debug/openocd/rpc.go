package openocd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ddhil/ddhil/harness"
)

// frameEnd ends every Tcl RPC message in both directions.
const frameEnd = 0x1a

// ResetMode is the argument of OpenOCD's reset command.
type ResetMode string

// Reset modes: run lets the firmware go, halt stops at the reset vector, init
// also runs the target's reset-init handler (clocks, flash wait states).
const (
	ResetRun  ResetMode = "run"
	ResetHalt ResetMode = "halt"
	ResetInit ResetMode = "init"
)

func (m ResetMode) valid() error {
	switch m {
	case ResetRun, ResetHalt, ResetInit:
		return nil
	}
	return fmt.Errorf("openocd: unknown reset mode %q (want run, halt or init)", string(m))
}

// Notification is one asynchronous message enabled by "tcl_notifications on",
// e.g. "type target_event event halted": Type "target_event", Key "event",
// Value "halted".
type Notification struct {
	Type  string
	Key   string
	Value string
	Raw   string
}

// TclError is a command that OpenOCD ran and that failed (Tcl code 1).
type TclError struct {
	Command string
	Code    int
	Message string
}

func (e *TclError) Error() string {
	return fmt.Sprintf("openocd: %q failed (tcl code %d): %s", e.Command, e.Code, e.Message)
}

// RPC is a client of OpenOCD's Tcl RPC server. Commands run one at a time;
// notifications arriving between replies go to Notifications.
type RPC struct {
	conn    net.Conn
	callMu  sync.Mutex // one command in flight
	replies chan string
	notes   chan Notification
	dropped atomic.Int64
	done    chan struct{} // closed when the reader stops
	quit    chan struct{} // closed by Close
	readErr error         // why the reader stopped, valid after done
	closed  atomic.Bool
}

// DialRPC connects to the Tcl RPC server at addr (host:port).
func DialRPC(ctx context.Context, addr string) (*RPC, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("openocd: dial tcl rpc: %w", err))
	}
	return NewRPC(conn), nil
}

// NewRPC runs the client over an established connection.
func NewRPC(conn net.Conn) *RPC {
	r := &RPC{
		conn:    conn,
		replies: make(chan string, 1),
		notes:   make(chan Notification, 256),
		done:    make(chan struct{}),
		quit:    make(chan struct{}),
	}
	go r.readLoop()
	return r
}

// Notifications delivers asynchronous messages. When nobody drains it, the
// newest messages beyond its buffer are dropped (counted by Dropped) so that
// replies keep flowing.
func (r *RPC) Notifications() <-chan Notification { return r.notes }

// Dropped is the number of notifications lost to a full channel.
func (r *RPC) Dropped() int64 { return r.dropped.Load() }

func (r *RPC) readLoop() {
	defer close(r.done)
	defer close(r.notes)
	br := bufio.NewReaderSize(r.conn, 64<<10)
	for {
		frame, err := br.ReadString(frameEnd)
		if err != nil {
			if r.closed.Load() {
				err = net.ErrClosed
			}
			r.readErr = err
			return
		}
		frame = frame[:len(frame)-1]
		if n, ok := parseNotification(frame); ok {
			select {
			case r.notes <- n:
			default:
				r.dropped.Add(1)
			}
			continue
		}
		select {
		case r.replies <- frame:
		case <-r.quit:
			r.readErr = net.ErrClosed
			return
		}
	}
}

// parseNotification recognises "type <type> <key> <value>\r\n".
func parseNotification(frame string) (Notification, bool) {
	if !strings.HasPrefix(frame, "type target_") || !strings.HasSuffix(frame, "\r\n") {
		return Notification{}, false
	}
	line := strings.TrimSuffix(frame, "\r\n")
	f := strings.SplitN(line, " ", 4)
	if len(f) < 3 {
		return Notification{}, false
	}
	n := Notification{Type: f[1], Key: f[2], Raw: line}
	if len(f) == 4 {
		n.Value = f[3]
	}
	return n, true
}

// Raw sends script as is and returns OpenOCD's reply text. OpenOCD does not
// say whether the script failed; use Call for that.
func (r *RPC) Raw(ctx context.Context, script string) (string, error) {
	if strings.IndexByte(script, frameEnd) >= 0 {
		return "", fmt.Errorf("openocd: command contains the frame byte 0x1a")
	}
	r.callMu.Lock()
	defer r.callMu.Unlock()
	select {
	case <-r.done:
		return "", r.lost()
	default:
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = r.conn.SetWriteDeadline(dl)
	} else {
		_ = r.conn.SetWriteDeadline(time.Time{})
	}
	if _, err := r.conn.Write(append([]byte(script), frameEnd)); err != nil {
		return "", harness.LabError(fmt.Errorf("openocd: send %q: %w", script, err))
	}
	select {
	case reply := <-r.replies:
		return reply, nil
	case <-r.done:
		return "", r.lost()
	case <-ctx.Done():
		// The reply will still come; the connection is out of step now.
		r.Close()
		return "", harness.LabError(fmt.Errorf("openocd: %q: %w", script, ctx.Err()))
	}
}

// Call runs one OpenOCD command and returns its result. The command is
// wrapped in catch so that a failure comes back as a *TclError with its
// message rather than as text indistinguishable from a result.
func (r *RPC) Call(ctx context.Context, cmd string) (string, error) {
	script := "set ddhil_c [catch " + tclWord(cmd) + " ddhil_r]; format {%d %s} $ddhil_c $ddhil_r"
	reply, err := r.Raw(ctx, script)
	if err != nil {
		return "", err
	}
	codeText, result, ok := strings.Cut(reply, " ")
	code, cerr := strconv.Atoi(codeText)
	if !ok || cerr != nil {
		return "", harness.LabError(fmt.Errorf("openocd: %q: malformed reply %q", cmd, reply))
	}
	switch code {
	case 0, 2: // TCL_OK, TCL_RETURN
		return result, nil
	}
	return result, &TclError{Command: cmd, Code: code, Message: result}
}

// lost reports why the connection is gone.
func (r *RPC) lost() error {
	if r.closed.Load() {
		return fmt.Errorf("openocd: tcl rpc: %w", net.ErrClosed)
	}
	return harness.LabError(fmt.Errorf("openocd: tcl rpc connection lost (did openocd exit?): %w", r.readErr))
}

// EnableNotifications turns on "tcl_notifications" for this connection.
func (r *RPC) EnableNotifications(ctx context.Context) error {
	_, err := r.Call(ctx, "tcl_notifications on")
	return labIfTcl(err)
}

// Reset resets the target in the given mode.
func (r *RPC) Reset(ctx context.Context, mode ResetMode) error {
	if err := mode.valid(); err != nil {
		return err
	}
	_, err := r.Call(ctx, "reset "+string(mode))
	return labIfTcl(err)
}

// Halt stops the core (waiting up to OpenOCD's default time for the halt).
func (r *RPC) Halt(ctx context.Context) error {
	_, err := r.Call(ctx, "halt")
	return labIfTcl(err)
}

// Resume lets a halted core run from where it stopped.
func (r *RPC) Resume(ctx context.Context) error {
	_, err := r.Call(ctx, "resume")
	return labIfTcl(err)
}

// State returns the current target's state ("running", "halted", "reset",
// "debug-running", "unknown").
func (r *RPC) State(ctx context.Context) (string, error) {
	res, err := r.Call(ctx, "[target current] curstate")
	return strings.TrimSpace(res), labIfTcl(err)
}

// ReadMemory reads count units of width bits (8, 16, 32 or 64) from addr with
// read_memory, which returns a Tcl list of numbers rather than mdw's text.
func (r *RPC) ReadMemory(ctx context.Context, addr uint64, width, count int) ([]uint64, error) {
	switch width {
	case 8, 16, 32, 64:
	default:
		return nil, fmt.Errorf("openocd: read memory: width %d is not 8, 16, 32 or 64", width)
	}
	if count <= 0 {
		return nil, fmt.Errorf("openocd: read memory: count %d must be positive", count)
	}
	cmd := fmt.Sprintf("read_memory 0x%x %d %d", addr, width, count)
	res, err := r.Call(ctx, cmd)
	if err != nil {
		return nil, labIfTcl(err)
	}
	words := strings.Fields(res)
	if len(words) != count {
		return nil, harness.LabError(fmt.Errorf("openocd: %s: got %d values, want %d: %q", cmd, len(words), count, res))
	}
	out := make([]uint64, count)
	for i, w := range words {
		v, err := strconv.ParseUint(w, 0, width)
		if err != nil {
			return nil, harness.LabError(fmt.Errorf("openocd: %s: value %d: %w", cmd, i, err))
		}
		out[i] = v
	}
	return out, nil
}

// Shutdown asks OpenOCD to exit; the connection closes as it does.
func (r *RPC) Shutdown(ctx context.Context) error {
	_, err := r.Raw(ctx, "shutdown")
	if err == nil || ctx.Err() != nil {
		return err
	}
	select {
	case <-r.done: // OpenOCD closed the connection before its empty reply
		return nil
	default:
		return err
	}
}

// Close drops the connection; it does not stop OpenOCD.
func (r *RPC) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	close(r.quit)
	err := r.conn.Close()
	<-r.done
	return err
}

// labIfTcl marks a failed OpenOCD command as a lab error: on a real board it
// means the probe or the target did not do what was asked.
func labIfTcl(err error) error {
	var te *TclError
	if errors.As(err, &te) {
		return harness.LabError(err)
	}
	return err
}
