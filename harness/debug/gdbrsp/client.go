// Package gdbrsp is a small GDB remote serial protocol client: enough to load
// an ELF into an emulator or board, run it, stop it, read memory and send
// monitor commands. It speaks to QEMU's gdbstub, OpenOCD's gdb server and
// Renode's GDB server; where they differ (see Stub) the client adapts.
package gdbrsp

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ddhil/ddhil/harness"
)

// Stub names the GDB server on the other end.
type Stub int

// Known stubs. They differ in reset commands and flash handling (LoadELF).
const (
	StubQEMU    Stub = iota // qemu-system-arm -gdb: monitor = HMP, "system_reset"; flash is ROM written with M
	StubOpenOCD             // OpenOCD gdb server: monitor = OpenOCD commands; flash needs OpenOCD's flash driver
	StubRenode              // Renode: monitor = Renode monitor; its reset wipes memory written over GDB
)

func (s Stub) String() string {
	switch s {
	case StubQEMU:
		return "qemu"
	case StubOpenOCD:
		return "openocd"
	case StubRenode:
		return "renode"
	}
	return "stub(" + strconv.Itoa(int(s)) + ")"
}

// defaultPacketSize is assumed when qSupported does not say.
const defaultPacketSize = 256

// ackTimeout bounds the wait for '+' after a packet in ack mode.
const ackTimeout = 5 * time.Second

// Options configure a Client.
type Options struct {
	Stub Stub
	// Output receives console output the stub sends in O packets while the
	// target runs (semihosting, OpenOCD messages). Optional.
	Output io.Writer
}

// Client talks RSP over one connection. Commands run one at a time; while the
// target runs (after Continue) only WaitStop and Interrupt are allowed.
type Client struct {
	conn   net.Conn
	opts   Options
	wmu    sync.Mutex // serialises writes (the reader sends acks)
	callMu sync.Mutex // one exchange at a time

	acks    chan byte
	packets chan []byte
	done    chan struct{}
	quit    chan struct{} // closed by Close so the reader never blocks
	readErr error

	noAck      atomic.Bool
	running    atomic.Bool
	closed     atomic.Bool
	badFrames  atomic.Int64
	packetSize int
	features   map[string]string
}

// Dial connects to a stub at addr ("host:port" over TCP) and runs Handshake.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("gdbrsp: dial %s: %w", addr, err))
	}
	c := NewClient(conn, opts)
	if err := c.Handshake(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// NewClient runs the protocol over conn without handshaking (see Handshake).
func NewClient(conn net.Conn, opts Options) *Client {
	c := &Client{
		conn:       conn,
		opts:       opts,
		acks:       make(chan byte, 16),
		packets:    make(chan []byte, 64),
		done:       make(chan struct{}),
		quit:       make(chan struct{}),
		packetSize: defaultPacketSize,
	}
	go c.readLoop()
	return c
}

// readLoop splits the byte stream into acks and packets, checks checksums,
// acknowledges packets in ack mode and expands run-length encoding.
func (c *Client) readLoop() {
	defer close(c.done)
	br := bufio.NewReaderSize(c.conn, 64<<10)
	for {
		b, err := br.ReadByte()
		if err != nil {
			c.readErr = err
			return
		}
		switch b {
		case '+', '-':
			select {
			case c.acks <- b:
			default: // nobody waits for it (no-ack mode or a stray ack)
			}
			continue
		case '$', '%': // '%' = non-stop notification, read and dropped
		default:
			continue // noise between packets
		}
		body, err := br.ReadBytes('#')
		if err != nil {
			c.readErr = err
			return
		}
		var sum [2]byte
		if _, err := io.ReadFull(br, sum[:]); err != nil {
			c.readErr = err
			return
		}
		body = body[:len(body)-1]
		want, perr := strconv.ParseUint(string(sum[:]), 16, 8)
		ok := perr == nil && byte(want) == checksum(body)
		if !c.noAck.Load() {
			ack := []byte{'+'}
			if !ok {
				ack[0] = '-'
			}
			c.write(ack)
		}
		if !ok {
			c.badFrames.Add(1)
			continue
		}
		if b == '%' {
			continue
		}
		payload, err := decodeRLE(body)
		if err != nil {
			c.badFrames.Add(1)
			continue
		}
		select {
		case c.packets <- payload:
		case <-c.quit:
			c.readErr = net.ErrClosed
			return
		}
	}
}

func (c *Client) write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(p)
	return err
}

// send transmits one packet; in ack mode it resends on '-' (three tries).
func (c *Client) send(ctx context.Context, payload []byte) error {
	pkt := frame(payload)
	for try := 0; ; try++ {
		if err := c.write(pkt); err != nil {
			return c.lost(err)
		}
		if c.noAck.Load() {
			return nil
		}
		timer := time.NewTimer(ackTimeout)
		select {
		case a := <-c.acks:
			timer.Stop()
			if a == '+' {
				return nil
			}
			if try == 2 {
				return harness.LabError(fmt.Errorf("gdbrsp: %q refused three times ('-')", short(payload)))
			}
		case <-timer.C:
			return harness.LabError(fmt.Errorf("gdbrsp: no ack for %q within %s", short(payload), ackTimeout))
		case <-c.done:
			timer.Stop()
			return c.lost(c.readErr)
		case <-ctx.Done():
			timer.Stop()
			return c.broken(ctx.Err())
		}
	}
}

// recv returns the next packet from the stub.
func (c *Client) recv(ctx context.Context) (string, error) {
	select {
	case p := <-c.packets:
		return string(p), nil
	default:
	}
	select {
	case p := <-c.packets:
		return string(p), nil
	case <-c.done:
		return "", c.lost(c.readErr)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// exchange sends a command and returns the stub's reply.
func (c *Client) exchange(ctx context.Context, payload string) (string, error) {
	if c.running.Load() {
		return "", fmt.Errorf("gdbrsp: %q: target is running; Interrupt or WaitStop first", short([]byte(payload)))
	}
	if err := c.send(ctx, []byte(payload)); err != nil {
		return "", err
	}
	reply, err := c.recv(ctx)
	if err != nil && ctx.Err() != nil {
		return "", c.broken(err)
	}
	return reply, err
}

// Command sends one packet and returns the reply, for requests this package
// has no method for. An "Enn" reply is returned as an error.
func (c *Client) Command(ctx context.Context, payload string) (string, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	reply, err := c.exchange(ctx, payload)
	if err != nil {
		return "", err
	}
	return reply, replyError(payload, reply)
}

// Handshake learns the stub's features (qSupported: PacketSize, ...) and
// switches to no-ack mode when the stub offers QStartNoAckMode.
func (c *Client) Handshake(ctx context.Context) error {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	reply, err := c.exchange(ctx, "qSupported:swbreak+;hwbreak+;xmlRegisters=arm")
	if err != nil {
		return err
	}
	c.features = map[string]string{}
	for _, f := range strings.Split(reply, ";") {
		switch {
		case f == "":
		case strings.Contains(f, "="):
			k, v, _ := strings.Cut(f, "=")
			c.features[k] = v
		default:
			c.features[f[:len(f)-1]] = f[len(f)-1:] // "+", "-" or "?"
		}
	}
	if v, ok := c.features["PacketSize"]; ok {
		n, err := strconv.ParseUint(v, 16, 32)
		if err != nil || n < 64 {
			return harness.LabError(fmt.Errorf("gdbrsp: bad PacketSize %q in %q", v, reply))
		}
		c.packetSize = int(n)
	}
	if c.features["QStartNoAckMode"] == "+" {
		reply, err := c.exchange(ctx, "QStartNoAckMode")
		if err != nil {
			return err
		}
		if reply == "OK" {
			c.noAck.Store(true)
		}
	}
	return nil
}

// PacketSize is the largest packet the stub accepts.
func (c *Client) PacketSize() int { return c.packetSize }

// Feature returns a qSupported feature's value ("+", "-", "?" or the text
// after '='), and whether the stub mentioned it.
func (c *Client) Feature(name string) (string, bool) {
	v, ok := c.features[name]
	return v, ok
}

// NoAck reports whether no-ack mode is on.
func (c *Client) NoAck() bool { return c.noAck.Load() }

// BadFrames counts packets dropped for a wrong checksum or bad encoding.
func (c *Client) BadFrames() int64 { return c.badFrames.Load() }

// StopReason asks why the target is stopped ("?").
func (c *Client) StopReason(ctx context.Context) (StopReply, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	reply, err := c.exchange(ctx, "?")
	if err != nil {
		return StopReply{}, err
	}
	return parseStopReply(reply)
}

// chunk is the largest number of memory bytes per m or M packet: two hex
// digits per byte plus the command's own bytes must fit in PacketSize.
func (c *Client) chunk() int { return (c.packetSize - 32) / 2 }

// ReadMemory reads n bytes at addr with m packets under PacketSize.
func (c *Client) ReadMemory(ctx context.Context, addr uint64, n int) ([]byte, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	out := make([]byte, 0, n)
	for len(out) < n {
		want := min(n-len(out), c.chunk())
		at := addr + uint64(len(out))
		cmd := fmt.Sprintf("m%x,%x", at, want)
		reply, err := c.exchange(ctx, cmd)
		if err != nil {
			return nil, err
		}
		if err := replyError(cmd, reply); err != nil {
			return nil, err
		}
		data, err := hex.DecodeString(reply)
		if err != nil || len(data) == 0 || len(data) > want {
			return nil, fmt.Errorf("gdbrsp: %s: bad reply %q", cmd, short([]byte(reply)))
		}
		out = append(out, data...) // a short read continues where it stopped
	}
	return out, nil
}

// WriteMemory writes data at addr with M packets under PacketSize.
func (c *Client) WriteMemory(ctx context.Context, addr uint64, data []byte) error {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	for off := 0; off < len(data); {
		n := min(len(data)-off, c.chunk())
		cmd := fmt.Sprintf("M%x,%x:%s", addr+uint64(off), n, hex.EncodeToString(data[off:off+n]))
		reply, err := c.exchange(ctx, cmd)
		if err != nil {
			return err
		}
		if reply != "OK" {
			if err := replyError(cmd, reply); err != nil {
				return err
			}
			return fmt.Errorf("gdbrsp: write %d bytes at 0x%x: unexpected reply %q", n, addr+uint64(off), short([]byte(reply)))
		}
		off += n
	}
	return nil
}

// WriteMemoryBinary writes data at addr with X packets (binary, escaped),
// half the traffic of M. QEMU 7.2 answers X with an empty reply (unsupported).
func (c *Client) WriteMemoryBinary(ctx context.Context, addr uint64, data []byte) error {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	budget := c.packetSize - 32
	for off := 0; off < len(data); {
		// Worst case every byte is escaped; fill up to the budget exactly.
		var esc []byte
		n := 0
		for off+n < len(data) {
			e := escapeBinary(data[off+n : off+n+1])
			if len(esc)+len(e) > budget {
				break
			}
			esc = append(esc, e...)
			n++
		}
		cmd := append(fmt.Appendf(nil, "X%x,%x:", addr+uint64(off), n), esc...)
		if c.running.Load() {
			return errors.New("gdbrsp: X: target is running")
		}
		if err := c.send(ctx, cmd); err != nil {
			return err
		}
		reply, err := c.recv(ctx)
		if err != nil {
			return c.broken(err)
		}
		switch {
		case reply == "OK":
		case reply == "":
			return fmt.Errorf("gdbrsp: X: %w", ErrUnsupported)
		default:
			if err := replyError("X", reply); err != nil {
				return err
			}
			return fmt.Errorf("gdbrsp: X: unexpected reply %q", short([]byte(reply)))
		}
		off += n
	}
	return nil
}

// Monitor sends a monitor command (qRcmd) and returns its output, collected
// from O packets or a hex reply. The command language is the stub's: HMP for
// QEMU ("system_reset", "info status"), OpenOCD commands ("reset halt"),
// Renode monitor commands.
func (c *Client) Monitor(ctx context.Context, command string) (string, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	cmd := "qRcmd," + hex.EncodeToString([]byte(command))
	reply, err := c.exchange(ctx, cmd)
	var out strings.Builder
	for err == nil {
		switch {
		case reply == "OK":
			return out.String(), nil
		case reply == "":
			return "", fmt.Errorf("gdbrsp: monitor %q: %w", command, ErrUnsupported)
		case reply[0] == 'O' && len(reply) > 1:
			b, derr := hex.DecodeString(reply[1:])
			if derr != nil {
				return "", fmt.Errorf("gdbrsp: monitor %q: bad output packet %q", command, short([]byte(reply)))
			}
			out.Write(b)
		default:
			if rerr := replyError("monitor "+command, reply); rerr != nil {
				return out.String(), rerr
			}
			b, derr := hex.DecodeString(reply)
			if derr != nil {
				return "", fmt.Errorf("gdbrsp: monitor %q: unexpected reply %q", command, short([]byte(reply)))
			}
			out.Write(b) // output as the final reply
			return out.String(), nil
		}
		reply, err = c.recv(ctx)
		if err != nil && ctx.Err() != nil {
			err = c.broken(err)
		}
	}
	return out.String(), err
}

// Continue resumes the target ("c") and returns once the stub has the
// command; the stop reply comes later, to WaitStop or Interrupt.
func (c *Client) Continue(ctx context.Context) error {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	if c.running.Load() {
		return errors.New("gdbrsp: continue: target is already running")
	}
	if err := c.send(ctx, []byte("c")); err != nil {
		return err
	}
	c.running.Store(true)
	return nil
}

// Running reports whether the target was continued and has not stopped.
func (c *Client) Running() bool { return c.running.Load() }

// WaitStop waits for the running target to stop (breakpoint, exit, fault).
// O packets on the way go to Options.Output. When ctx ends first the target
// is still running and WaitStop may be called again.
func (c *Client) WaitStop(ctx context.Context) (StopReply, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	return c.waitStop(ctx)
}

func (c *Client) waitStop(ctx context.Context) (StopReply, error) {
	if !c.running.Load() {
		return StopReply{}, errors.New("gdbrsp: wait: target is not running")
	}
	for {
		reply, err := c.recv(ctx)
		if err != nil {
			return StopReply{}, err
		}
		if len(reply) > 1 && reply[0] == 'O' {
			if b, err := hex.DecodeString(reply[1:]); err == nil && c.opts.Output != nil {
				_, _ = c.opts.Output.Write(b)
			}
			continue
		}
		sr, err := parseStopReply(reply)
		if err != nil {
			return StopReply{}, err
		}
		c.running.Store(false)
		return sr, nil
	}
}

// Interrupt stops the running target (the 0x03 byte) and returns its stop
// reply, usually T02/S02 (SIGINT).
func (c *Client) Interrupt(ctx context.Context) (StopReply, error) {
	c.callMu.Lock()
	defer c.callMu.Unlock()
	if !c.running.Load() {
		return StopReply{}, errors.New("gdbrsp: interrupt: target is not running")
	}
	if err := c.write([]byte{0x03}); err != nil {
		return StopReply{}, c.lost(err)
	}
	sr, err := c.waitStop(ctx)
	if err != nil && ctx.Err() != nil {
		return sr, c.broken(err)
	}
	return sr, err
}

// Detach ends the debugging session ("D"); the target keeps running and the
// connection is closed. (There is no Kill: "k" makes QEMU exit.)
func (c *Client) Detach(ctx context.Context) error {
	c.callMu.Lock()
	reply, err := c.exchange(ctx, "D")
	c.callMu.Unlock()
	if err == nil {
		err = replyError("D", reply)
	}
	c.Close()
	return err
}

// Close drops the connection.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	close(c.quit)
	err := c.conn.Close()
	<-c.done
	return err
}

// ErrUnsupported is the stub's empty reply: it does not know the request.
var ErrUnsupported = errors.New("not supported by the stub")

// RemoteError is an "Enn" (or "E.message") reply.
type RemoteError struct {
	Command string
	Reply   string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("gdbrsp: %s: stub replied %s", e.Command, e.Reply)
}

// replyError turns "Enn" replies into a *RemoteError.
func replyError(cmd, reply string) error {
	if len(reply) >= 3 && reply[0] == 'E' && (isHex(reply[1:3]) || reply[1] == '.') {
		return &RemoteError{Command: string(short([]byte(cmd))), Reply: reply}
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// lost reports the connection gone (stub exited or closed it).
func (c *Client) lost(err error) error {
	if c.closed.Load() {
		return fmt.Errorf("gdbrsp: connection closed: %w", net.ErrClosed)
	}
	return harness.LabError(fmt.Errorf("gdbrsp: connection to the stub lost: %w", err))
}

// broken closes a connection whose request/reply pairing can no longer be
// trusted (a reply may still be on its way).
func (c *Client) broken(err error) error {
	c.Close()
	return harness.LabError(fmt.Errorf("gdbrsp: gave up waiting, connection closed: %w", err))
}

// short trims long payloads for error messages.
func short(p []byte) string {
	if len(p) > 40 {
		return string(p[:40]) + "..."
	}
	return string(p)
}
