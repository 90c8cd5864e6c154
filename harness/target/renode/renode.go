// Package renode is the target.Target driver for Renode: a local renode
// binary (or launcher script) or the antmicro/renode image through
// testcontainers-go. It drives Renode through the XML-RPC robot server
// (every monitor line via ExecuteCommand; the telnet monitor is the
// fallback), loads a generated .resc (stm32f4_discovery, offline platform,
// reset macro, raw socket terminals) or the user's own, and connects the
// console (USART2) and transport (USART1) socket terminals before `start`,
// so no output is lost. docs/renode.md says what was verified and how.
package renode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/firmware"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/renode/container"
	"github.com/ddhil/ddhil/harness/target/renode/monitor"
	"github.com/ddhil/ddhil/harness/target/renode/resc"
	"github.com/ddhil/ddhil/harness/target/renode/robot"
	"github.com/ddhil/ddhil/internal/proc"
)

// DefaultImage is the Renode image used when neither Binary nor Image is
// given and no renode is in PATH. renode-docker builds images from the
// release .deb (build arg RENODE_VERSION); the tag pins the release whose
// behaviour the recordings captured. "antmicro/renode:latest" is the last
// numbered release.
const DefaultImage = "antmicro/renode:1.16.1"

// Container-side ports (published on random host ports).
const (
	containerRobotPort     = 9999 // as renode-keywords.robot uses
	containerMonitorPort   = 1234 // Renode's default telnet port
	containerConsolePort   = 3456
	containerTransportPort = 3457
)

// Config selects and sets up Renode.
type Config struct {
	// Binary is a local renode executable or launcher script. Empty: use
	// Image if set, else "renode" from PATH, else DefaultImage.
	Binary string
	// Image is the container image (with tag) to run instead of a binary.
	Image string
	// Firmware is the ELF to load (required).
	Firmware string
	// Resc is the user's own script, run with `include` instead of the
	// generated one. It must create the machine, load the platform and
	// firmware and define `macro reset`; it must not create socket terminals
	// named "console"/"transport" nor `start` (the driver does both).
	Resc string
	// Platform replaces the offline stm32f4_discovery description in the
	// generated script.
	Platform string
	// Machine is the machine name in the generated script (default "dut").
	Machine string
	// ConsoleUART and TransportUART are the peripherals wired to the socket
	// terminals (defaults sysbus.usart2 and sysbus.usart1, see
	// docs/firmware-console.md). TransportUART "-" means no transport.
	ConsoleUART   string
	TransportUART string
	// Extra monitor lines run after the platform is loaded (generated
	// script only), e.g. "nvic Frequency 168000000".
	Extra []string
	// Files are extra host files a user's script reads; in container mode
	// they are copied in at the same absolute paths.
	Files []string
	// Telnet drives Renode through the telnet monitor instead of XML-RPC.
	Telnet bool
	// Log receives Renode's log (its stdout and stderr). Nil discards it.
	Log io.Writer
	// Compress lets virtual time run ahead of host time while the firmware
	// idles (quantum 10 ms, AdvanceImmediately): a 300 s production period
	// is judged in seconds. Only sound when every host-side timer the
	// firmware waits on is short against its own timeouts (docs/timing.md).
	Compress bool
	// StepSlice, with Compress, makes the session step virtual time in
	// slices of this length, each only once the harness is idle (see
	// Step): a slow host then costs the firmware at most one slice per
	// exchange. 0 runs freely.
	StepSlice time.Duration
	// StartTimeout bounds process start-up to the ready log line (default
	// 60 s local, 180 s container: the first run may pull the image).
	StartTimeout time.Duration
}

// Target runs firmware in Renode. It implements target.Target.
type Target struct {
	cfg     Config
	mode    string // "local" or "container"
	binary  string
	image   string
	workDir string
	log     *logSink

	proc *process
	ctr  *container.Container

	mu        sync.Mutex // serialises monitor commands
	ctl       controller
	stepMu    sync.Mutex // held by a slice in progress and by Reset
	stepping  bool       // Step paused the emulation: Reset must not start it
	console   net.Conn
	transport net.Conn

	infoMu sync.Mutex
	info   target.Info

	closeOnce sync.Once
	closeErr  error
}

var _ target.Target = (*Target)(nil)

// controller is the way monitor lines reach Renode.
type controller interface {
	Execute(ctx context.Context, cmd string) (string, error)
	Stop(ctx context.Context) error
	Close()
}

// New checks the configuration and picks local or container mode; nothing
// is started until Start.
func New(cfg Config) (*Target, error) {
	if cfg.Firmware == "" {
		return nil, errors.New("renode: no firmware ELF given")
	}
	fw, err := filepath.Abs(cfg.Firmware)
	if err != nil {
		return nil, fmt.Errorf("renode: %w", err)
	}
	if _, err := os.Stat(fw); err != nil {
		return nil, harness.LabError(fmt.Errorf("renode: firmware: %w (build it with `make firmware`)", err))
	}
	cfg.Firmware = fw
	if cfg.StepSlice < 0 || (cfg.StepSlice > 0 && !cfg.Compress) {
		return nil, fmt.Errorf("renode: step slice %s needs Compress (and a positive length)", cfg.StepSlice)
	}
	for _, p := range []*string{&cfg.Resc, &cfg.Platform} {
		if *p == "" {
			continue
		}
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, fmt.Errorf("renode: %w", err)
		}
		if _, err := os.Stat(*p); err != nil {
			return nil, harness.LabError(fmt.Errorf("renode: %w", err))
		}
	}
	if cfg.ConsoleUART == "" {
		cfg.ConsoleUART = "sysbus.usart2"
	}
	if cfg.TransportUART == "" {
		cfg.TransportUART = "sysbus.usart1"
	}
	if cfg.Machine == "" {
		cfg.Machine = resc.DefaultMachine
	}
	t := &Target{cfg: cfg, log: &logSink{w: cfg.Log}}
	switch {
	case cfg.Binary != "":
		t.mode = "local"
		if t.binary, err = exec.LookPath(cfg.Binary); err != nil {
			return nil, harness.LabError(fmt.Errorf("renode: binary %q: %w%s", cfg.Binary, err, installHint))
		}
	case cfg.Image != "":
		t.mode, t.image = "container", cfg.Image
	default:
		if p, err := exec.LookPath("renode"); err == nil {
			t.mode, t.binary = "local", p
		} else {
			t.mode, t.image = "container", DefaultImage
		}
	}
	t.info = target.Info{Kind: "renode", Name: cfg.Machine, Firmware: cfg.Firmware,
		Extra: map[string]string{"mode": t.mode, "control": t.control(), "platform": t.platformName()}}
	if t.binary != "" {
		t.info.Extra["binary"] = t.binary
	}
	if t.image != "" {
		t.info.Extra["image"] = t.image
	}
	if cfg.Compress {
		t.info.Extra["time"] = "compressed (quantum " + CompressQuantum + " s, advance immediately)"
		if cfg.StepSlice > 0 {
			t.info.Extra["time"] += ", stepped in " + cfg.StepSlice.String() + " slices while the harness is idle"
		}
	}
	if cfg.Resc != "" {
		t.info.Extra["resc"] = cfg.Resc
	}
	return t, nil
}

// dockerAvailable is container.Available; a variable so a test can play a
// machine without Docker (testcontainers always finds this host's engine).
var dockerAvailable = container.Available

// installHint is appended to errors when Renode cannot be run at all.
const installHint = "; install Renode (https://renode.io: renode_1.16.1_amd64.deb or the portable build) and pass its path " +
	"(ddhil run --renode PATH; go test: -ddhil.renode=PATH or DDHIL_RENODE), or start a Docker engine that can pull " + DefaultImage +
	" (ddhil run --renode-image IMAGE; go test: -ddhil.renode-image=IMAGE or DDHIL_RENODE_IMAGE)"

// Probe says whether Renode can run with cfg here, and how; the error is a
// reason to skip (it wraps harness.ErrLab).
func Probe(ctx context.Context, cfg Config) (string, error) {
	if cfg.Firmware == "" {
		cfg.Firmware = os.Args[0] // only the mode matters here
	}
	t, err := New(cfg)
	if err != nil {
		return "", err
	}
	if t.mode == "local" {
		return "local renode " + t.binary, nil
	}
	if err := dockerAvailable(ctx); err != nil {
		// The hint first: the engine's own message may run over several lines.
		return "", harness.LabError(fmt.Errorf("renode: no renode binary and no Docker engine%s: %w", installHint, err))
	}
	return "container " + t.image, nil
}

// Start launches Renode, runs the script, connects the UARTs and starts the
// emulation. On failure everything started so far is stopped again.
func (t *Target) Start(ctx context.Context) error {
	if err := t.start(ctx); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = t.shutdown(cctx)
		return harness.LabError(err)
	}
	return nil
}

func (t *Target) start(ctx context.Context) error {
	dir, err := proc.TempDir("ddhil-renode-")
	if err != nil {
		return fmt.Errorf("renode: %w", err)
	}
	t.workDir = dir
	if t.mode == "local" {
		err = t.startLocal(ctx)
	} else {
		err = t.startContainer(ctx)
	}
	if err != nil {
		return err
	}
	version, err := t.execute(ctx, "version")
	if err != nil {
		return err
	}
	t.infoMu.Lock()
	t.info.Version = parseVersion(version)
	t.infoMu.Unlock()
	if _, err := t.execute(ctx, "include @"+t.scriptPath()); err != nil {
		return err
	}
	if t.cfg.Resc != "" {
		for _, c := range resc.TerminalCommands(t.uarts(t.renodePorts())) {
			if _, err := t.execute(ctx, c); err != nil {
				return err
			}
		}
	}
	if t.cfg.Compress {
		for _, c := range compressCommands {
			if _, err := t.execute(ctx, c); err != nil {
				return err
			}
		}
	}
	console, transport := t.renodePorts()
	if t.console, err = t.dialUART(ctx, "console", console); err != nil {
		return err
	}
	if t.cfg.TransportUART != "-" {
		if t.transport, err = t.dialUART(ctx, "transport", transport); err != nil {
			return err
		}
	}
	_, err = t.execute(ctx, "start")
	return err
}

func (t *Target) control() string {
	if t.cfg.Telnet {
		return "telnet"
	}
	return "xmlrpc"
}

func (t *Target) platformName() string {
	switch {
	case t.cfg.Resc != "":
		return filepath.Base(t.cfg.Resc)
	case t.cfg.Platform != "":
		return filepath.Base(t.cfg.Platform)
	}
	return "stm32f4_discovery (offline repl)"
}

var versionRE = regexp.MustCompile(`Renode, version (\S+)(?: \(([^)]*)\))?`)

// parseVersion turns "Renode, version 1.16.1 (-202611271442)" into
// "1.16.1 (-202611271442)".
func parseVersion(s string) string {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return strings.TrimSpace(s)
	}
	if m[2] != "" {
		return m[1] + " (" + m[2] + ")"
	}
	return m[1]
}

// uarts wires the configured peripherals to terminals on Renode-side ports.
func (t *Target) uarts(console, transport int) []resc.UART {
	u := []resc.UART{{Peripheral: t.cfg.ConsoleUART, Name: "console", Port: console}}
	if t.cfg.TransportUART != "-" {
		u = append(u, resc.UART{Peripheral: t.cfg.TransportUART, Name: "transport", Port: transport})
	}
	return u
}

// writeScript writes the offline platform and the generated script into
// the work dir (unless the user gave a script).
func (t *Target) writeScript(console, transport int) error {
	if t.cfg.Resc != "" {
		return nil
	}
	platform := t.cfg.Platform
	if platform == "" {
		platform = filepath.Join(t.workDir, "stm32f4_discovery-offline.repl")
		if err := os.WriteFile(platform, resc.OfflinePlatform, 0o644); err != nil {
			return fmt.Errorf("renode: %w", err)
		}
	}
	s := resc.Script{Machine: t.cfg.Machine, Platform: platform, Firmware: t.cfg.Firmware,
		UARTs: t.uarts(console, transport), Extra: t.cfg.Extra}
	// The vector table is where the image puts it: flash at 0x08000000 on
	// an STM32, address 0 on an nRF52.
	if img, err := firmware.Check(t.cfg.Firmware); err == nil {
		s.VectorTable, s.VectorTableAtZero = uint32(img.VectorBase), img.VectorBase == 0
	}
	script, err := s.Render()
	if err != nil {
		return fmt.Errorf("renode: %w", err)
	}
	if err := os.WriteFile(t.scriptPath(), script, 0o644); err != nil {
		return fmt.Errorf("renode: %w", err)
	}
	return nil
}

func (t *Target) scriptPath() string {
	if t.cfg.Resc != "" {
		return t.cfg.Resc
	}
	return filepath.Join(t.workDir, "ddhil.resc")
}

// renodePorts are the console and transport ports as Renode sees them.
func (t *Target) renodePorts() (int, int) {
	if t.mode == "container" {
		return containerConsolePort, containerTransportPort
	}
	return t.proc.consolePort, t.proc.transportPort
}

// execute runs one monitor line.
func (t *Target) execute(ctx context.Context, cmd string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctl == nil {
		return "", errors.New("renode: not started")
	}
	out, err := t.ctl.Execute(ctx, cmd)
	if err != nil {
		return out, fmt.Errorf("renode: %q: %w%s", cmd, err, t.log.tail())
	}
	return out, nil
}

// dialUART connects to a socket terminal, polling until ctx ends (the
// terminal listens as soon as its command returned; in container mode the
// published port goes through Docker's proxy).
func (t *Target) dialUART(ctx context.Context, name string, renodePort int) (net.Conn, error) {
	addr, err := t.addr(ctx, renodePort)
	if err != nil {
		return nil, err
	}
	var last error
	for {
		d := net.Dialer{Timeout: 2 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("renode: %s UART at %s: %w (last error: %v)", name, addr, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// addr is the host address of a Renode-side port.
func (t *Target) addr(ctx context.Context, renodePort int) (string, error) {
	if t.mode == "container" {
		return t.ctr.Addr(ctx, renodePort)
	}
	return fmt.Sprintf("127.0.0.1:%d", renodePort), nil
}

// Console is the console UART (USART2 by default), raw bytes.
func (t *Target) Console() io.ReadWriter {
	if t.console == nil {
		return nil
	}
	return t.console
}

// Transport is the transport UART (USART1 by default), or nil.
func (t *Target) Transport() io.ReadWriter {
	if t.transport == nil {
		return nil
	}
	return t.transport
}

// Reset is a hardware-like reset: pause, `machine Reset` (peripherals reset,
// the reset macro reloads the ELF and the vector table offset), start. The
// socket terminals stay connected. RAM is not cleared (Renode's behaviour).
func (t *Target) Reset(ctx context.Context) error {
	t.stepMu.Lock()
	defer t.stepMu.Unlock()
	cmds := []string{"pause", "machine Reset", "start"}
	if t.stepping {
		cmds = cmds[:2] // the stepper runs the next slice
	}
	for _, c := range cmds {
		if _, err := t.execute(ctx, c); err != nil {
			return harness.LabError(err)
		}
	}
	return nil
}

// Info describes the target; Version is known once Start has asked
// Renode (it stays set after Close, for reports of failed runs).
// ConfigureSession (target.SessionConfigurer): under time compression the
// module's power-up delay, which runs on host time, would be 300 ms × the
// speed-up (10 s of the firmware's time at 34×, near its 15 s AT sync
// limit), so it is kept short against every firmware timeout.
func (t *Target) ConfigureSession(s *target.SessionSetup) error {
	if t.cfg.Compress {
		s.ModuleReadyDelay = 10 * time.Millisecond
	}
	return nil
}

func (t *Target) Info() target.Info {
	t.infoMu.Lock()
	defer t.infoMu.Unlock()
	info := t.info
	info.Extra = make(map[string]string, len(t.info.Extra))
	for k, v := range t.info.Extra {
		info.Extra[k] = v
	}
	return info
}

// Close stops Renode (StopRemoteServer or quit, then the process or
// container is reaped or removed) and deletes the work dir. Safe to call
// more than once.
func (t *Target) Close() error {
	t.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		t.closeErr = t.shutdown(ctx)
	})
	return t.closeErr
}

func (t *Target) shutdown(ctx context.Context) error {
	var errs []error
	for _, c := range []net.Conn{t.console, t.transport} {
		if c != nil {
			c.Close()
		}
	}
	quitting := false
	t.mu.Lock()
	if t.ctl != nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		quitting = t.ctl.Stop(sctx) == nil // if Renode is gone already, the reaping below decides
		cancel()
		t.ctl.Close()
		t.ctl = nil
	}
	t.mu.Unlock()
	if t.proc != nil {
		errs = append(errs, t.proc.stop(quitting, 5*time.Second))
	}
	if t.ctr != nil {
		errs = append(errs, t.ctr.Terminate(ctx))
	}
	if t.workDir != "" {
		errs = append(errs, os.RemoveAll(t.workDir))
	}
	return errors.Join(errs...)
}

// robotControl adapts the XML-RPC client.
type robotControl struct{ c *robot.Client }

func (r robotControl) Execute(ctx context.Context, cmd string) (string, error) {
	return r.c.ExecuteCommand(ctx, cmd)
}
func (r robotControl) Stop(ctx context.Context) error { return r.c.StopRemoteServer(ctx) }
func (r robotControl) Close()                         { r.c.Close() }

// telnetControl adapts the monitor client.
type telnetControl struct{ c *monitor.Client }

func (m telnetControl) Execute(ctx context.Context, cmd string) (string, error) {
	return m.c.Execute(ctx, cmd)
}
func (m telnetControl) Stop(ctx context.Context) error { return m.c.Quit(ctx) }
func (m telnetControl) Close()                         { m.c.Close() }

// connectControl opens the control channel once Renode is ready.
func (t *Target) connectControl(ctx context.Context, robotAddr, monitorAddr string) error {
	if t.cfg.Telnet {
		c, err := monitor.Dial(ctx, monitorAddr)
		if err != nil {
			return fmt.Errorf("renode: telnet monitor: %w", err)
		}
		t.ctl = telnetControl{c}
		return nil
	}
	t.ctl = robotControl{robot.New(robotAddr)}
	return nil
}
