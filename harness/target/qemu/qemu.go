// Package qemu runs firmware on qemu-system-arm (7.2, machine netduinoplus2)
// as a target.Target. Every UART is a socket QEMU serves with wait=on, so
// QEMU does not run the guest before the harness holds all of them and no
// output is lost; control is through QMP (reset, quit, status).
//
// The sockets are Unix-domain sockets in a private temporary directory: no
// TCP port is picked, so there is no port race with other processes.
package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/internal/proc"

	"github.com/ddhil/ddhil/harness"
)

// Config describes one QEMU run. The zero value (plus Firmware) runs the
// reference agent's QEMU profile: transport USART1 = serial0, console
// USART2 = serial1 (docs/firmware-console.md).
type Config struct {
	// Binary is the emulator (default "qemu-system-arm" from PATH).
	Binary string
	// Machine is the -M value (default "netduinoplus2").
	Machine string
	// Firmware is the ELF given to -kernel.
	Firmware string
	// Serials is how many USARTs get a socket, in -serial order (default 2).
	Serials int
	// ConsoleSerial and TransportSerial index the serials (defaults 1 and 0);
	// TransportSerial -1 means the target has no transport UART.
	ConsoleSerial   int
	TransportSerial int
	// ExtraArgs are appended to the command line (e.g. "-icount", "shift=4").
	ExtraArgs []string
	// Stderr receives QEMU's stdout and stderr as they come (a log file).
	Stderr io.Writer
	// StartTimeout bounds Start when its context has no deadline (default 20 s).
	StartTimeout time.Duration
	// TickSymbol names the firmware's 32-bit tick counter (a RAM variable
	// its SysTick handler increments), read as the target's clock (see
	// clock.go). Empty: DefaultTickSymbol when the ELF has it; "-": none. A
	// symbol named here that the ELF lacks is an error.
	TickSymbol string
	// TickHz is the counter's rate (default 1000: a millisecond counter).
	TickHz int
}

// QEMU is a running (or not yet started) emulator. It implements
// target.Target.
type QEMU struct {
	cfg     Config
	version string

	mu      sync.Mutex
	started bool
	dir     string
	cmd     *exec.Cmd
	cancel  context.CancelFunc
	serials []net.Conn
	qmp     *qmpClient
	closing bool

	tickAddr uint32
	tickOK   bool

	stderr  *tailBuffer
	done    chan struct{}
	exitErr error // classified exit, valid once done is closed
	once    sync.Once
}

var _ target.Target = (*QEMU)(nil)

// New checks cfg and returns a target that Start boots.
func New(cfg Config) (*QEMU, error) {
	if cfg.Binary == "" {
		cfg.Binary = "qemu-system-arm"
	}
	if cfg.Machine == "" {
		cfg.Machine = "netduinoplus2"
	}
	if cfg.Serials == 0 {
		cfg.Serials = 2
	}
	if cfg.Serials < 0 || cfg.Serials > 7 {
		return nil, fmt.Errorf("qemu: %d serials: netduinoplus2 has 7 USARTs", cfg.Serials)
	}
	if cfg.ConsoleSerial == 0 && cfg.TransportSerial == 0 {
		cfg.ConsoleSerial = 1
	}
	if cfg.ConsoleSerial < 0 || cfg.ConsoleSerial >= cfg.Serials {
		return nil, fmt.Errorf("qemu: console serial %d outside 0..%d", cfg.ConsoleSerial, cfg.Serials-1)
	}
	if cfg.TransportSerial >= cfg.Serials || cfg.TransportSerial < -1 {
		return nil, fmt.Errorf("qemu: transport serial %d outside -1..%d", cfg.TransportSerial, cfg.Serials-1)
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 20 * time.Second
	}
	if cfg.TickHz < 0 {
		return nil, fmt.Errorf("qemu: tick rate %d Hz", cfg.TickHz)
	}
	if cfg.TickHz == 0 {
		cfg.TickHz = 1000
	}
	return &QEMU{cfg: cfg, stderr: &tailBuffer{max: 64 * 1024}, done: make(chan struct{})}, nil
}

// Probe reports whether the emulator binary can run here; the error wraps
// harness.ErrLab and says how to install it.
func Probe(binary string) error {
	if binary == "" {
		binary = "qemu-system-arm"
	}
	if _, err := exec.LookPath(binary); err != nil {
		return harness.LabError(fmt.Errorf("qemu: %s not found (install it: apt-get install qemu-system-arm): %w", binary, err))
	}
	return nil
}

// Args is the command line Start runs, for logs and reports.
func (q *QEMU) args(dir string) []string {
	a := []string{"-M", q.cfg.Machine, "-nodefaults", "-display", "none", "-monitor", "none",
		"-qmp", "unix:" + filepath.Join(dir, "qmp.sock") + ",server=on,wait=off"}
	for i := 0; i < q.cfg.Serials; i++ {
		a = append(a, "-serial", fmt.Sprintf("unix:%s,server=on,wait=on", q.serialPath(dir, i)))
	}
	a = append(a, "-kernel", q.cfg.Firmware)
	return append(a, q.cfg.ExtraArgs...)
}

func (q *QEMU) serialPath(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("serial%d.sock", i))
}

// Start boots QEMU and connects every serial before the guest runs. On
// error the partly started QEMU is already torn down (Close is still safe).
func (q *QEMU) Start(ctx context.Context) (err error) {
	q.mu.Lock()
	if q.started {
		q.mu.Unlock()
		return errors.New("qemu: already started")
	}
	q.started = true
	q.mu.Unlock()

	if err := Probe(q.cfg.Binary); err != nil {
		return err
	}
	if st, err := os.Stat(q.cfg.Firmware); err != nil || st.IsDir() {
		return harness.LabError(fmt.Errorf("qemu: firmware %q: not a readable file (build it first, e.g. make -C firmware): %v", q.cfg.Firmware, err))
	}
	switch q.cfg.TickSymbol {
	case "-":
	case "":
		if addr, err := resolveTick(q.cfg.Firmware, DefaultTickSymbol); err == nil {
			q.tickAddr, q.tickOK, q.cfg.TickSymbol = addr, true, DefaultTickSymbol
		}
	default:
		addr, err := resolveTick(q.cfg.Firmware, q.cfg.TickSymbol)
		if err != nil {
			return err
		}
		q.tickAddr, q.tickOK = addr, true
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, q.cfg.StartTimeout)
		defer cancel()
	}
	q.version = binaryVersion(ctx, q.cfg.Binary)

	dir, err := proc.TempDir("ddhil-qemu-")
	if err != nil {
		return harness.LabError(fmt.Errorf("qemu: temp dir: %w", err))
	}
	procCtx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(procCtx, q.cfg.Binary, q.args(dir)...)
	cmd.Dir = dir // a core dump, if any, lands in the temp dir
	cmd.SysProcAttr = proc.Attr()
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = 5 * time.Second
	var sink io.Writer = q.stderr
	if q.cfg.Stderr != nil {
		sink = io.MultiWriter(q.stderr, q.cfg.Stderr)
	}
	cmd.Stdout, cmd.Stderr = sink, sink

	q.mu.Lock()
	q.dir, q.cmd, q.cancel = dir, cmd, cancel
	q.mu.Unlock()
	defer func() {
		if err != nil {
			_ = q.Close()
		}
	}()

	if err := cmd.Start(); err != nil {
		close(q.done)
		return harness.LabError(fmt.Errorf("qemu: start %s: %w", q.cfg.Binary, err))
	}
	go q.wait()

	for i := 0; i < q.cfg.Serials; i++ {
		c, err := q.dialUnix(ctx, q.serialPath(dir, i), fmt.Sprintf("serial%d", i))
		if err != nil {
			return err
		}
		q.mu.Lock()
		q.serials = append(q.serials, c)
		q.mu.Unlock()
	}
	c, err := q.dialUnix(ctx, filepath.Join(dir, "qmp.sock"), "qmp")
	if err != nil {
		return err
	}
	qc, err := dialQMP(ctx, c)
	if err != nil {
		return q.startError("qmp handshake", err)
	}
	q.mu.Lock()
	q.qmp = qc
	q.mu.Unlock()
	return nil
}

// dialUnix connects to a socket QEMU serves, polling until it exists; it
// fails early when QEMU exits.
func (q *QEMU) dialUnix(ctx context.Context, path, what string) (net.Conn, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return c, nil
		}
		lastErr = err
		select {
		case <-q.done:
			if xe := q.exitErr; xe != nil { // already classified, output included
				return nil, fmt.Errorf("qemu: connect %s: %w", what, xe)
			}
			return nil, q.startError("connect "+what, errors.New("qemu exited"))
		case <-ctx.Done():
			return nil, q.startError("connect "+what, errors.Join(lastErr, ctx.Err()))
		case <-tick.C:
		}
	}
}

func (q *QEMU) startError(step string, err error) error {
	e := fmt.Errorf("qemu: %s: %w; qemu output:\n%s", step, err, q.stderr.String())
	if errors.Is(err, harness.ErrFirmwareCrash) {
		return e
	}
	return harness.LabError(e)
}

// wait reaps QEMU and classifies how it ended.
func (q *QEMU) wait() {
	err := q.cmd.Wait()
	q.mu.Lock()
	closing := q.closing
	q.mu.Unlock()
	q.exitErr = classifyExit(err, q.stderr.String(), closing)
	close(q.done)
}

// classifyExit: our own quit/kill is a clean end; "Lockup" or SIGABRT
// (exit status 134 in a shell) is a firmware crash; anything else is the lab.
func classifyExit(err error, stderr string, closing bool) error {
	lockup := strings.Contains(stderr, "Lockup")
	var ee *exec.ExitError
	aborted := false
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGABRT {
			aborted = true
		}
	}
	switch {
	case lockup || aborted || code == 134:
		return fmt.Errorf("qemu: %w: %s", harness.ErrFirmwareCrash, lastLine(stderr, "Lockup", err))
	case closing:
		return nil
	case err == nil:
		return harness.LabError(errors.New("qemu: exited unexpectedly (status 0)"))
	default:
		return harness.LabError(fmt.Errorf("qemu: exited unexpectedly: %w; output:\n%s", err, stderr))
	}
}

func lastLine(s, want string, err error) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, want) {
			return strings.TrimSpace(l)
		}
	}
	if err != nil {
		return err.Error()
	}
	return "aborted"
}

// Done is closed when QEMU has exited (and been reaped).
func (q *QEMU) Done() <-chan struct{} { return q.done }

// Wait blocks until QEMU exits and returns why: nil after Close, an error
// wrapping harness.ErrFirmwareCrash for a lockup, harness.ErrLab otherwise.
func (q *QEMU) Wait() error {
	<-q.done
	return q.exitErr
}

// Err is Wait without blocking: nil while QEMU runs.
func (q *QEMU) Err() error {
	select {
	case <-q.done:
		return q.exitErr
	default:
		return nil
	}
}

// Console is the console UART's socket.
func (q *QEMU) Console() io.ReadWriter { return q.Serial(q.cfg.ConsoleSerial) }

// Transport is the transport UART's socket, or nil.
func (q *QEMU) Transport() io.ReadWriter {
	if q.cfg.TransportSerial < 0 {
		return nil
	}
	return q.Serial(q.cfg.TransportSerial)
}

// Serial returns serial i's connection (nil before Start).
func (q *QEMU) Serial(i int) net.Conn {
	q.mu.Lock()
	defer q.mu.Unlock()
	if i < 0 || i >= len(q.serials) {
		return nil
	}
	return q.serials[i]
}

// Reset is a hardware reset through QMP system_reset; the serial sockets
// stay connected.
func (q *QEMU) Reset(ctx context.Context) error {
	qc, err := q.control()
	if err != nil {
		return err
	}
	if _, err := qc.Execute(ctx, "system_reset", nil); err != nil {
		return q.controlError("reset", err)
	}
	return nil
}

// Status is QMP query-status ("running", "paused", ...).
func (q *QEMU) Status(ctx context.Context) (string, error) {
	qc, err := q.control()
	if err != nil {
		return "", err
	}
	raw, err := qc.Execute(ctx, "query-status", nil)
	if err != nil {
		return "", q.controlError("query-status", err)
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("qemu: query-status reply %s: %w", raw, err)
	}
	return st.Status, nil
}

// Events returns the QMP events seen so far (RESET, SHUTDOWN, ...).
func (q *QEMU) Events() []QMPEvent {
	q.mu.Lock()
	qc := q.qmp
	q.mu.Unlock()
	if qc == nil {
		return nil
	}
	return qc.Events()
}

func (q *QEMU) control() (*qmpClient, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.Err(); err != nil {
		return nil, err
	}
	if q.qmp == nil || q.closing {
		return nil, harness.LabError(errors.New("qemu: not running"))
	}
	return q.qmp, nil
}

// controlError prefers the exit reason when QEMU died under a command.
func (q *QEMU) controlError(what string, err error) error {
	if xe := q.Err(); xe != nil {
		return xe
	}
	return harness.LabError(fmt.Errorf("qemu: %s: %w", what, err))
}

// Info describes the target.
func (q *QEMU) Info() target.Info {
	return target.Info{Kind: "qemu", Name: q.cfg.Machine, Version: q.version, Firmware: q.cfg.Firmware,
		Extra: map[string]string{"binary": q.cfg.Binary}}
}

// Pid is QEMU's process id (0 before Start).
func (q *QEMU) Pid() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cmd == nil || q.cmd.Process == nil {
		return 0
	}
	return q.cmd.Process.Pid
}

// Close quits QEMU (QMP quit, then SIGKILL to its process group), reaps it,
// closes the sockets and removes the temp dir. It is safe to call twice.
func (q *QEMU) Close() error {
	q.once.Do(func() {
		q.mu.Lock()
		q.closing = true
		cmd, qc, serials, dir, cancel := q.cmd, q.qmp, q.serials, q.dir, q.cancel
		q.mu.Unlock()
		if cmd != nil && cmd.Process != nil {
			if qc != nil {
				ctx, c := context.WithTimeout(context.Background(), 2*time.Second)
				if _, err := qc.Execute(ctx, "quit", nil); err == nil {
					select { // QEMU acknowledged quit; give it a moment to exit
					case <-q.done:
					case <-time.After(3 * time.Second):
					}
				}
				c()
			}
			select {
			case <-q.done:
			default:
				// QEMU ignored quit (or could not be asked): kill its whole
				// process group, only while it is unreaped so the group id
				// cannot have been reused.
				_ = killGroup(cmd)
			}
			<-q.done
			if cancel != nil {
				cancel()
			}
		} else if cancel != nil {
			cancel()
		}
		if qc != nil {
			_ = qc.Close()
		}
		for _, c := range serials {
			_ = c.Close()
		}
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
	})
	return nil
}

func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

func binaryVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--version")
	cmd.SysProcAttr = proc.Attr()
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(strings.TrimPrefix(first, "QEMU emulator version "))
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
