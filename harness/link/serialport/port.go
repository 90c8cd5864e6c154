// Package serialport opens the serial lines of a board - a USB CDC port of
// an ST-LINK, a USB-serial adapter on the module UART, a pty of an emulator,
// or a raw TCP port of ser2net - as one Port with net.Conn-style read
// deadlines. A line that goes away is a lab error naming the port; Stream
// re-opens a port that re-enumerates after a reset.
package serialport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.bug.st/serial"

	"github.com/ddhil/ddhil/harness"
)

// Port is an open serial line.
type Port interface {
	io.ReadWriteCloser
	// SetReadDeadline makes pending and future reads fail with an error
	// matching os.ErrDeadlineExceeded once t has passed; zero means none.
	SetReadDeadline(t time.Time) error
	// Name is the spec the port was opened with.
	Name() string
}

// ErrPortLost marks a port whose device vanished or whose other side went
// away (USB unplugged or re-enumerating, emulator or socat exited, TCP peer
// closed). Errors carrying it also wrap harness.ErrLab.
var ErrPortLost = errors.New("port lost")

// pollSlice bounds each blocking read on a device so that a deadline set
// while a read is in progress takes effect promptly.
const pollSlice = 100 * time.Millisecond

// Open opens spec at baud 8N1: a device path (/dev/ttyACM0,
// /dev/serial/by-id/..., /dev/pts/N) or tcp://host:port for a raw TCP serial
// server (ser2net "raw" mode; baud is then the server's business).
func Open(spec string, baud int) (Port, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return OpenContext(ctx, spec, baud)
}

// OpenContext is Open with a context bounding the TCP dial.
func OpenContext(ctx context.Context, spec string, baud int) (Port, error) {
	if spec == "" {
		return nil, errors.New("serialport: empty port name")
	}
	if rest, ok := strings.CutPrefix(spec, "tcp://"); ok {
		if _, _, err := net.SplitHostPort(rest); err != nil {
			return nil, fmt.Errorf("serialport: bad spec %q (want tcp://host:port): %w", spec, err)
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", rest)
		if err != nil {
			return nil, harness.LabError(fmt.Errorf("serialport: open %s: %w", spec, err))
		}
		return &tcpPort{name: spec, conn: conn}, nil
	}
	if strings.Contains(spec, "://") {
		return nil, fmt.Errorf("serialport: bad spec %q: only device paths and tcp://host:port are supported", spec)
	}
	if baud <= 0 {
		return nil, fmt.Errorf("serialport: %s: bad baud rate %d", spec, baud)
	}
	// InitialStatusBits stays nil: DTR/RTS are left alone, which is what
	// makes ptys (no modem lines) open at all.
	p, err := serial.Open(spec, &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit})
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("serialport: open %s: %w", spec, err))
	}
	return &devicePort{name: spec, port: p}, nil
}

// devicePort adapts go.bug.st/serial: its (0, nil) read timeout becomes a
// deadline error, and its errors become ErrPortLost or os.ErrClosed.
type devicePort struct {
	name     string
	port     serial.Port
	deadline atomic.Int64 // UnixNano; 0 = none
	closed   atomic.Bool
	closeMu  sync.Mutex
}

func (d *devicePort) Name() string { return d.name }

func (d *devicePort) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		d.deadline.Store(0)
	} else {
		d.deadline.Store(t.UnixNano())
	}
	return nil
}

func (d *devicePort) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		slice := pollSlice
		if dl := d.deadline.Load(); dl != 0 {
			left := time.Until(time.Unix(0, dl))
			if left <= 0 {
				return 0, fmt.Errorf("serialport: %s: read: %w", d.name, os.ErrDeadlineExceeded)
			}
			slice = min(slice, left)
		}
		if err := d.port.SetReadTimeout(slice); err != nil {
			return 0, d.classify("read", err)
		}
		n, err := d.port.Read(p)
		if err != nil {
			return n, d.classify("read", err)
		}
		if n > 0 {
			return n, nil
		}
		// (0, nil): this slice timed out; check the deadline and go on.
	}
}

func (d *devicePort) Write(p []byte) (int, error) {
	if d.closed.Load() {
		return 0, fmt.Errorf("serialport: %s: write: %w", d.name, os.ErrClosed)
	}
	n, err := d.port.Write(p)
	if err != nil {
		return n, d.classify("write", err)
	}
	if n < len(p) {
		return n, d.classify("write", io.ErrShortWrite)
	}
	return n, nil
}

// classify tells our own Close apart from the line going away.
func (d *devicePort) classify(op string, err error) error {
	if d.closed.Load() {
		return fmt.Errorf("serialport: %s: %s: %w", d.name, op, os.ErrClosed)
	}
	var pe *serial.PortError
	if errors.As(err, &pe) && pe.Code() == serial.PortClosed {
		// The library's name for "read returned 0 bytes": the device or the
		// pty master is gone.
		err = io.EOF
	}
	return lost(d.name, op, err)
}

func (d *devicePort) Close() error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if d.closed.Swap(true) {
		return nil
	}
	if err := d.port.Close(); err != nil && !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.ENODEV) {
		return fmt.Errorf("serialport: close %s: %w", d.name, err)
	}
	return nil
}

// tcpPort is a raw TCP serial server connection.
type tcpPort struct {
	name   string
	conn   net.Conn
	closed atomic.Bool
}

func (t *tcpPort) Name() string                       { return t.name }
func (t *tcpPort) SetReadDeadline(tm time.Time) error { return t.conn.SetReadDeadline(tm) }

func (t *tcpPort) Read(p []byte) (int, error) {
	n, err := t.conn.Read(p)
	if err != nil {
		return n, t.classify("read", err)
	}
	return n, nil
}

func (t *tcpPort) Write(p []byte) (int, error) {
	n, err := t.conn.Write(p)
	if err != nil {
		return n, t.classify("write", err)
	}
	return n, nil
}

func (t *tcpPort) classify(op string, err error) error {
	switch {
	case t.closed.Load() || errors.Is(err, net.ErrClosed):
		return fmt.Errorf("serialport: %s: %s: %w", t.name, op, os.ErrClosed)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("serialport: %s: %s: %w", t.name, op, err)
	}
	return lost(t.name, op, err)
}

func (t *tcpPort) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	return t.conn.Close()
}

// lost builds the lab error for a line that went away.
func lost(name, op string, cause error) error {
	return harness.LabError(fmt.Errorf("serialport: %s: %s: %w (device unplugged, reset, or other side closed): %w", name, op, ErrPortLost, cause))
}
