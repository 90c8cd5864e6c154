// Package board is the target.Target for a real STM32 board described by a
// hardware-map entry: flash through OpenOCD (by probe serial), open the
// console and module-UART serial lines, then reset so the firmware boots
// with both lines already open and no output is lost.
package board

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/debug/openocd"
	"github.com/ddhil/ddhil/harness/device/hwmap"
	"github.com/ddhil/ddhil/harness/link/serialport"
	"github.com/ddhil/ddhil/harness/target"
)

// Prober flashes and resets the board. The default drives OpenOCD with the
// board's configuration and probe serial.
type Prober interface {
	// Flash programs and verifies elf and leaves the core halted (no reset):
	// Start resets it once the serial lines are open.
	Flash(ctx context.Context, elf string) error
	// Reset restarts the firmware (reset run).
	Reset(ctx context.Context) error
	Close() error
}

// Reset methods for the OpenOCD prober.
const (
	ResetOneShot = "oneshot" // one OpenOCD per reset: init; reset run; shutdown
	ResetRPC     = "rpc"     // one OpenOCD kept running, reset over Tcl RPC
)

// Config selects the board and the firmware.
type Config struct {
	Board     hwmap.Board
	ELF       string
	SkipFlash bool             // the board already runs this firmware
	OpenOCD   string           // openocd binary; "openocd" when empty
	ResetVia  string           // ResetOneShot (default) or ResetRPC
	Retry     serialport.Retry // opening and re-opening ports; serialport.DefaultRetry when zero
	Log       io.Writer        // OpenOCD's output (optional)
	Prober    Prober           // replaces the OpenOCD prober (tests, other probes)
}

// Target is a board under test. Safe to Close more than once.
type Target struct {
	cfg    Config
	prober Prober

	mu        sync.Mutex
	console   *serialport.Stream
	transport *serialport.Stream
	version   string
	closed    bool
}

var _ target.Target = (*Target)(nil)

// New checks the configuration; nothing is started until Start.
func New(cfg Config) (*Target, error) {
	b := cfg.Board
	switch {
	case b.ID == "":
		return nil, errors.New("board: no board given")
	case b.Console.Port == "":
		return nil, fmt.Errorf("board %s: no console port", b.ID)
	case b.Transport.Kind == hwmap.TransportModule && b.Transport.Port == "":
		return nil, fmt.Errorf("board %s: transport module has no port", b.ID)
	case cfg.ELF == "" && !cfg.SkipFlash:
		return nil, fmt.Errorf("board %s: no firmware ELF (or SkipFlash)", b.ID)
	}
	if cfg.ResetVia == "" {
		cfg.ResetVia = ResetOneShot
	}
	if cfg.ResetVia != ResetOneShot && cfg.ResetVia != ResetRPC {
		return nil, fmt.Errorf("board %s: unknown reset method %q (want %s or %s)", b.ID, cfg.ResetVia, ResetOneShot, ResetRPC)
	}
	if cfg.Retry.Attempts == 0 {
		cfg.Retry = serialport.DefaultRetry
	}
	t := &Target{cfg: cfg, prober: cfg.Prober}
	if t.prober == nil {
		t.prober = &openocdProber{board: b, bin: cfg.OpenOCD, resetVia: cfg.ResetVia, log: cfg.Log}
	}
	return t, nil
}

// Start flashes (unless SkipFlash), opens the serial lines, then resets.
func (t *Target) Start(ctx context.Context) error {
	b := t.cfg.Board
	t.mu.Lock()
	if t.closed || t.console != nil {
		t.mu.Unlock()
		return fmt.Errorf("board %s: Start on a target already started or closed", b.ID)
	}
	t.mu.Unlock()
	if !t.cfg.SkipFlash {
		fctx := ctx
		if b.FlashTimeout > 0 {
			var cancel context.CancelFunc
			fctx, cancel = context.WithTimeout(ctx, time.Duration(b.FlashTimeout)+5*time.Second)
			defer cancel()
		}
		if err := t.prober.Flash(fctx, t.cfg.ELF); err != nil {
			return harness.LabError(fmt.Errorf("board %s: %w", b.ID, err))
		}
	}
	bctx := ctx
	if b.BootTimeout > 0 {
		var cancel context.CancelFunc
		bctx, cancel = context.WithTimeout(ctx, time.Duration(b.BootTimeout))
		defer cancel()
	}
	console, err := serialport.OpenStream(bctx, b.Console.Port, b.Console.Baud, t.cfg.Retry)
	if err != nil {
		return fmt.Errorf("board %s: console: %w", b.ID, err)
	}
	var transport *serialport.Stream
	if b.Transport.Kind == hwmap.TransportModule {
		transport, err = serialport.OpenStream(bctx, b.Transport.Port, b.Transport.Baud, t.cfg.Retry)
		if err != nil {
			console.Close()
			return fmt.Errorf("board %s: transport: %w", b.ID, err)
		}
	}
	t.mu.Lock()
	t.console, t.transport = console, transport
	t.mu.Unlock()
	if err := t.prober.Reset(bctx); err != nil {
		return harness.LabError(fmt.Errorf("board %s: reset after opening the ports: %w", b.ID, err))
	}
	return nil
}

// Console is the console line; it survives resets (see serialport.Stream).
// Nil before Start.
func (t *Target) Console() io.ReadWriter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.console == nil {
		return nil
	}
	return t.console
}

// Transport is the module UART line, or nil for a network board.
func (t *Target) Transport() io.ReadWriter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.transport == nil {
		return nil
	}
	return t.transport
}

// Reset restarts the firmware through the probe. The serial lines stay
// open; if a USB CDC port re-enumerates, the streams re-open it themselves
// (bounded by Config.Retry) and report a lab error if it never returns.
func (t *Target) Reset(ctx context.Context) error {
	if err := t.prober.Reset(ctx); err != nil {
		return harness.LabError(fmt.Errorf("board %s: %w", t.cfg.Board.ID, err))
	}
	return nil
}

// Info describes the board for reports.
func (t *Target) Info() target.Info {
	b := t.cfg.Board
	t.mu.Lock()
	if t.version == "" && t.cfg.Prober == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.version, _ = openocd.Version(ctx, t.cfg.OpenOCD)
		cancel()
	}
	version := t.version
	t.mu.Unlock()
	extra := map[string]string{
		"platform":     b.Platform,
		"probe_serial": b.ProbeSerial,
		"console":      b.Console.Port,
		"transport":    b.Transport.Kind,
		"reset":        t.cfg.ResetVia,
	}
	if b.Transport.Kind == hwmap.TransportModule {
		extra["transport_port"] = b.Transport.Port
	}
	if b.BrokerListen != "" {
		extra["broker_listen"] = b.BrokerListen
	}
	return target.Info{Kind: "board", Name: b.ID, Version: version, Firmware: t.cfg.ELF, Extra: extra}
}

// Close closes the serial lines and stops any OpenOCD left running.
func (t *Target) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	console, transport := t.console, t.transport
	t.mu.Unlock()
	var errs []error
	for _, s := range []*serialport.Stream{console, transport} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	errs = append(errs, t.prober.Close())
	return errors.Join(errs...)
}

// openocdProber flashes with a one-shot OpenOCD and resets with another one
// or over the Tcl RPC of one kept running.
type openocdProber struct {
	board    hwmap.Board
	bin      string
	resetVia string
	log      io.Writer

	mu  sync.Mutex
	srv *openocd.Server
}

func (p *openocdProber) Flash(ctx context.Context, elf string) error {
	p.stopServer() // the probe serves one OpenOCD at a time
	return openocd.Flash(ctx, openocd.FlashConfig{
		Binary: p.bin, ConfigFiles: p.board.OpenOCD, ProbeSerial: p.board.ProbeSerial,
		ELF: elf, NoReset: true, Timeout: time.Duration(p.board.FlashTimeout), Log: p.log,
	})
}

func (p *openocdProber) Reset(ctx context.Context) error {
	if p.resetVia == ResetOneShot {
		return openocd.Reset(ctx, openocd.ResetConfig{
			Binary: p.bin, ConfigFiles: p.board.OpenOCD, ProbeSerial: p.board.ProbeSerial, Log: p.log,
		})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv == nil {
		srv, err := openocd.StartServer(ctx, openocd.ServerConfig{
			Binary: p.bin, ConfigFiles: p.board.OpenOCD, ProbeSerial: p.board.ProbeSerial, Log: p.log,
		})
		if err != nil {
			return err
		}
		p.srv = srv
	}
	err := p.srv.Reset(ctx, openocd.ResetRun)
	if errors.Is(err, harness.ErrLab) {
		select {
		case <-p.srv.Exited(): // it died: start afresh next time
			p.srv.Close()
			p.srv = nil
		default:
		}
	}
	return err
}

func (p *openocdProber) stopServer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		p.srv.Close()
		p.srv = nil
	}
}

func (p *openocdProber) Close() error {
	p.stopServer()
	return nil
}
