package fakerenode

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// terminal is `emulation CreateServerSocketTerminal <port> "<name>" false`
// with the behaviour recorded in uart-socket.md: bound to 0.0.0.0, one
// client at a time (later ones wait in the backlog), nothing sent on
// connect, output buffered while no client is connected, client bytes
// queued while the emulation is paused. The "firmware" behind it is the
// recorded echo_irq.elf ("echo ready\r\n" on boot, then an echo), or, in
// QEMU mode, a serial port of the QEMU that runs the loaded ELF (wire).
type terminal struct {
	name string
	ln   net.Listener
	e    *emulation

	mu      sync.Mutex
	conn    net.Conn
	wire    net.Conn // QEMU mode: the USART's QEMU serial socket
	pending []byte   // firmware output not yet delivered
	rx      []byte   // client bytes received while paused
	running bool
	booted  bool
	closed  bool
}

func listenTerminal(name string, port int, e *emulation) (*terminal, error) {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	t := &terminal{name: name, ln: ln, e: e}
	go t.serve()
	return t, nil
}

func (t *terminal) serve() {
	for {
		conn, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.mu.Lock()
		t.conn = conn
		if len(t.pending) > 0 {
			_, _ = conn.Write(t.pending)
			t.pending = nil
		}
		t.mu.Unlock()
		buf := make([]byte, 1024)
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				t.receive(buf[:n])
			}
			if err != nil {
				break
			}
		}
		t.mu.Lock()
		t.conn = nil
		t.mu.Unlock()
		conn.Close()
	}
}

func (t *terminal) receive(b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.running {
		t.rx = append(t.rx, b...)
		return
	}
	t.toFirmwareLocked(b)
}

// toFirmwareLocked hands client bytes to the firmware: the echo sends them
// back, QEMU gets them on its serial port.
func (t *terminal) toFirmwareLocked(b []byte) {
	if t.wire == nil {
		t.emitLocked(b)
		return
	}
	_ = t.wire.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = t.wire.Write(b) // a dead QEMU shows in the log; the UART just goes quiet
}

// attach wires the terminal to a QEMU serial socket and pumps the
// firmware's output to the client until the socket closes.
func (t *terminal) attach(wire net.Conn) {
	t.mu.Lock()
	t.wire = wire
	t.mu.Unlock()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := wire.Read(buf)
			if n > 0 {
				t.mu.Lock()
				t.emitLocked(buf[:n])
				t.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
}

func (t *terminal) emitLocked(b []byte) {
	if t.conn != nil {
		_ = t.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := t.conn.Write(b); err == nil {
			return
		}
	}
	t.pending = append(t.pending, b...)
}

// run starts or pauses the firmware behind this UART.
func (t *terminal) run(on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running = on
	if !on {
		return
	}
	if !t.booted && t.wire == nil {
		t.booted = true
		t.emitLocked([]byte("echo ready\r\n"))
	}
	if len(t.rx) > 0 {
		t.toFirmwareLocked(t.rx)
		t.rx = nil
	}
}

// boot restarts the firmware (machine Reset with a reset macro).
func (t *terminal) boot(running bool) {
	t.mu.Lock()
	t.booted = false
	t.mu.Unlock()
	if running {
		t.run(true)
	}
}

func (t *terminal) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.closed = true
	t.ln.Close()
	if t.conn != nil {
		t.conn.Close() // the UART client gets EOF when Renode quits
	}
}

// logger writes Renode-style log lines: "HH:MM:SS.ffff [LEVEL] message".
type logger struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *logger) line(level, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	fmt.Fprintf(l.w, "%s.%04d [%s] %s\n", now.Format("15:04:05"), now.Nanosecond()/100000, level, s)
}

// Write passes raw text through (QEMU's own output in QEMU mode).
func (l *logger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *logger) info(s string)    { l.line("INFO", s) }
func (l *logger) warning(s string) { l.line("WARNING", s) }
func (l *logger) errorf(s string)  { l.line("ERROR", s) }
