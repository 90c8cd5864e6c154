// Package targettest is a fake target for tests of what sits above a
// target (the session, hiltest): the firmware is a Go function that talks
// over in-memory pipes, so a test scripts a boot, a dialogue, a reset in
// the middle of a line or a crash without an emulator, in milliseconds.
package targettest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"github.com/ddhil/ddhil/harness/target"
)

// Firmware is the device's program. It runs from each boot until it
// returns or its context ends (a reset or Close); Boot counts boots from 1.
type Firmware func(ctx context.Context, d *Device)

// Options configure the fake.
type Options struct {
	// Transport gives the target a module UART (Transport() non-nil); the
	// firmware's end is Device.Module.
	Transport bool
	// NoExit hides Done/Err (target.Exiter), like a board or Renode,
	// whose death shows only as a closed console.
	NoExit bool
	// Info is what the target reports (Kind defaults to "fake").
	Info target.Info
}

// Device is the firmware's view of the hardware.
type Device struct {
	Boot    int
	Console net.Conn // the console UART, firmware side
	Module  net.Conn // the module UART, firmware side (nil without Transport)
	ctx     context.Context
	t       *Target
}

// Print writes s to the console as is (no line ending).
func (d *Device) Print(s string) { _, _ = io.WriteString(d.Console, s) }

// Println writes s and CR LF.
func (d *Device) Println(s string) { d.Print(s + "\r\n") }

// ReadLine returns the next line the harness sent, without its ending; it
// returns an error when the boot ends (reset, Close) or the console closed.
func (d *Device) ReadLine() (string, error) {
	select {
	case l, ok := <-d.t.in:
		if !ok {
			return "", io.EOF
		}
		return l, nil
	case <-d.ctx.Done():
		return "", d.ctx.Err()
	}
}

// Crash ends the target as an emulator dies: the console closes and, unless
// NoExit, Done closes with err (wrap harness.ErrFirmwareCrash for a
// firmware fault, harness.ErrLab for the lab).
func (d *Device) Crash(err error) { d.t.die(err) }

// Target is the fake. It implements target.Target and target.Exiter.
type Target struct {
	fw   Firmware
	opts Options

	mu       sync.Mutex
	started  bool
	closed   bool
	host     net.Conn // harness side of the console
	dev      net.Conn
	hostMod  net.Conn
	devMod   net.Conn
	cancel   context.CancelFunc
	running  chan struct{} // closed when the current boot's firmware returned
	boot     int
	resets   int
	done     chan struct{}
	exitErr  error
	exitOnce sync.Once
	in       chan string // lines the harness sent, read once for all boots
}

// New returns an unstarted fake target running fw.
func New(fw Firmware, opts Options) target.Target {
	t := &Target{fw: fw, opts: opts, done: make(chan struct{})}
	if t.opts.Info.Kind == "" {
		t.opts.Info.Kind = "fake"
	}
	if opts.NoExit {
		return noExit{t}
	}
	return t
}

// noExit hides the Exiter methods.
type noExit struct{ t *Target }

func (n noExit) Start(ctx context.Context) error { return n.t.Start(ctx) }
func (n noExit) Console() io.ReadWriter          { return n.t.Console() }
func (n noExit) Transport() io.ReadWriter        { return n.t.Transport() }
func (n noExit) Reset(ctx context.Context) error { return n.t.Reset(ctx) }
func (n noExit) Info() target.Info               { return n.t.Info() }
func (n noExit) Close() error                    { return n.t.Close() }

// Unwrap returns the fake behind a target New made (for Resets, Boots).
func Unwrap(t target.Target) *Target {
	switch x := t.(type) {
	case *Target:
		return x
	case noExit:
		return x.t
	}
	return nil
}

// Start connects the pipes and boots the firmware.
func (t *Target) Start(context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started || t.closed {
		return errors.New("targettest: started twice or closed")
	}
	t.started = true
	t.host, t.dev = net.Pipe()
	t.in = make(chan string, 64)
	go readLines(t.dev, t.in)
	if t.opts.Transport {
		t.hostMod, t.devMod = net.Pipe()
	}
	t.bootLocked()
	return nil
}

func (t *Target) bootLocked() {
	t.boot++
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	running := make(chan struct{})
	t.running = running
	d := &Device{Boot: t.boot, Console: t.dev, Module: t.devMod, ctx: ctx, t: t}
	go func() {
		defer close(running)
		t.fw(ctx, d)
	}()
}

// Console is the harness's end of the console UART.
func (t *Target) Console() io.ReadWriter { return t.host }

// Transport is the harness's end of the module UART, or nil.
func (t *Target) Transport() io.ReadWriter {
	if t.hostMod == nil {
		return nil
	}
	return t.hostMod
}

// Reset stops the running firmware (its context ends) and boots it again;
// the pipes stay connected, as a hardware reset keeps the UARTs.
func (t *Target) Reset(ctx context.Context) error {
	t.mu.Lock()
	if !t.started || t.closed {
		t.mu.Unlock()
		return errors.New("targettest: reset of a target that is not running")
	}
	t.cancel()
	running := t.running
	t.mu.Unlock()
	select {
	case <-running:
	case <-ctx.Done():
		return fmt.Errorf("targettest: the firmware did not stop for the reset: %w", ctx.Err())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.resets++
	t.bootLocked()
	return nil
}

// Resets counts Reset calls.
func (t *Target) Resets() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.resets
}

// Info describes the fake.
func (t *Target) Info() target.Info { return t.opts.Info }

// Done is closed when the target died (Crash) or was closed.
func (t *Target) Done() <-chan struct{} { return t.done }

// Err is why it died (nil after a plain Close).
func (t *Target) Err() error {
	select {
	case <-t.done:
		return t.exitErr
	default:
		return nil
	}
}

func (t *Target) die(err error) {
	t.exitOnce.Do(func() {
		t.exitErr = err
		t.mu.Lock()
		host, hostMod := t.host, t.hostMod
		t.mu.Unlock()
		if host != nil {
			host.Close()
		}
		if hostMod != nil {
			hostMod.Close()
		}
		close(t.done)
	})
}

// Close stops the firmware and closes the pipes; safe to call twice. It
// returns once the firmware function has returned.
func (t *Target) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	running := t.running
	if t.cancel != nil {
		t.cancel()
	}
	for _, c := range []net.Conn{t.host, t.dev, t.hostMod, t.devMod} {
		if c != nil {
			c.Close()
		}
	}
	t.mu.Unlock()
	t.die(nil)
	if running != nil {
		<-running
	}
	return nil
}

// Closed reports whether Close ran.
func (t *Target) Closed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// readLines feeds the lines written to the console to in until it closes.
func readLines(r io.Reader, in chan<- string) {
	defer close(in)
	br := bufio.NewReader(r)
	for {
		s, err := br.ReadString('\n')
		if s != "" {
			in <- strings.TrimRight(s, "\r\n")
		}
		if err != nil {
			return
		}
	}
}
