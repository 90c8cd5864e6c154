// Package openocd drives OpenOCD 0.12 for real boards: one-shot flashing and
// resetting judged by exit code, and a Tcl RPC client for a long-running
// session (reset, halt, resume, memory reads). Every OpenOCD process runs in
// its own process group and is reaped on every path; failures wrap
// harness.ErrLab because they are the lab's, not the firmware's.
package openocd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ddhil/ddhil/harness"
)

// DefaultFlashTimeout bounds a flash when FlashConfig.Timeout is zero. It is
// separate from any test timeout so that a hung flash is reported as a lab
// error, never as a test timeout (zephyr#32478).
const DefaultFlashTimeout = 2 * time.Minute

// ErrNoProbeSerial is returned when a command would let OpenOCD pick "any"
// probe. With two boards attached that flashes the wrong one (zephyr#82331).
var ErrNoProbeSerial = errors.New("openocd: no probe serial given (set AllowNoSerial only on a single-probe bench)")

// FlashConfig is one flash of one board.
type FlashConfig struct {
	Binary        string        // openocd executable; "openocd" when empty
	ConfigFiles   []string      // passed as -f, in order (board or interface+target files)
	ProbeSerial   string        // passed as -c "adapter serial <s>"
	AllowNoSerial bool          // permit an empty ProbeSerial
	ELF           string        // image to program
	NoReset       bool          // leave the target halted after programming instead of "reset"
	Timeout       time.Duration // whole flash; DefaultFlashTimeout when zero
	Log           io.Writer     // optional copy of OpenOCD's output
}

// Args returns the OpenOCD command line for the flash:
// -f <cfg>... -c "adapter serial <s>" -c "program <elf> verify reset exit".
func (c FlashConfig) Args() ([]string, error) {
	if c.ELF == "" {
		return nil, errors.New("openocd: flash: no ELF given")
	}
	args, err := probeArgs(c.ConfigFiles, c.ProbeSerial, c.AllowNoSerial)
	if err != nil {
		return nil, err
	}
	prog := "program " + tclWord(c.ELF) + " verify"
	if !c.NoReset {
		prog += " reset"
	}
	prog += " exit"
	return append(args, "-c", prog), nil
}

// Flash programs c.ELF with a one-shot OpenOCD and judges the result by its
// exit code. OpenOCD's output is kept and quoted in the error.
func Flash(ctx context.Context, c FlashConfig) error {
	args, err := c.Args()
	if err != nil {
		return harness.LabError(err)
	}
	if _, err := os.Stat(c.ELF); err != nil {
		return harness.LabError(fmt.Errorf("openocd: flash: %w", err))
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultFlashTimeout
	}
	what := fmt.Sprintf("flash %s on probe %q", c.ELF, c.ProbeSerial)
	return runOnce(ctx, binary(c.Binary), args, timeout, c.Log, what)
}

// ResetConfig is one reset of one board through a one-shot OpenOCD.
type ResetConfig struct {
	Binary        string
	ConfigFiles   []string
	ProbeSerial   string
	AllowNoSerial bool
	Mode          ResetMode     // ResetRun when empty
	Timeout       time.Duration // 30 s when zero
	Log           io.Writer
}

// Args returns -f <cfg>... -c "adapter serial <s>" with the servers disabled,
// then -c init -c "reset <mode>" -c shutdown.
func (c ResetConfig) Args() ([]string, error) {
	mode := c.Mode
	if mode == "" {
		mode = ResetRun
	}
	if err := mode.valid(); err != nil {
		return nil, err
	}
	args, err := probeArgs(c.ConfigFiles, c.ProbeSerial, c.AllowNoSerial)
	if err != nil {
		return nil, err
	}
	return append(args,
		"-c", "tcl_port disabled", "-c", "telnet_port disabled", "-c", "gdb_port disabled",
		"-c", "init", "-c", "reset "+string(mode), "-c", "shutdown"), nil
}

// Reset resets the board with a one-shot OpenOCD ("init; reset run; shutdown").
func Reset(ctx context.Context, c ResetConfig) error {
	args, err := c.Args()
	if err != nil {
		return harness.LabError(err)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	mode := c.Mode
	if mode == "" {
		mode = ResetRun
	}
	what := fmt.Sprintf("reset %s on probe %q", mode, c.ProbeSerial)
	return runOnce(ctx, binary(c.Binary), args, timeout, c.Log, what)
}

// runOnce runs OpenOCD to completion within timeout and turns anything but a
// clean exit into a lab error quoting OpenOCD's last lines.
func runOnce(ctx context.Context, bin string, args []string, timeout time.Duration, log io.Writer, what string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p, err := startProcess(bin, args, log, nil)
	if err != nil {
		return harness.LabError(err)
	}
	werr := p.wait(ctx)
	switch {
	case errors.Is(werr, context.DeadlineExceeded):
		return harness.LabError(fmt.Errorf("openocd: %s: timed out after %s: %w\n%s", what, timeout, werr, p.log.lastLines(10)))
	case werr != nil && ctx.Err() != nil:
		return harness.LabError(fmt.Errorf("openocd: %s: %w", what, werr))
	case werr != nil:
		return harness.LabError(fmt.Errorf("openocd: %s: %s%s: %s\n%s", what, p.exitSummary(),
			hint(p.log.String()), werr, p.log.lastLines(10)))
	}
	return nil
}

// hint names the usual cause of an OpenOCD failure from its log.
func hint(log string) string {
	switch {
	case strings.Contains(log, "Can't find "):
		return " (configuration file not found)"
	case strings.Contains(log, "open failed"), strings.Contains(log, "unable to open"),
		strings.Contains(log, "No device found"):
		return " (probe not found: is it plugged in, and is the serial right?)"
	case strings.Contains(log, "** Programming Failed **"):
		return " (programming failed)"
	case strings.Contains(log, "** Verify Failed **"):
		return " (verify failed)"
	}
	return ""
}

// probeArgs returns the -f and adapter-serial arguments shared by every run.
func probeArgs(configFiles []string, serial string, allowNoSerial bool) ([]string, error) {
	if len(configFiles) == 0 {
		return nil, errors.New("openocd: no configuration files given")
	}
	if serial == "" && !allowNoSerial {
		return nil, ErrNoProbeSerial
	}
	args := make([]string, 0, 2*len(configFiles)+2)
	for _, f := range configFiles {
		args = append(args, "-f", f)
	}
	if serial != "" {
		args = append(args, "-c", "adapter serial "+tclWord(serial))
	}
	return args, nil
}

func binary(b string) string {
	if b == "" {
		return "openocd"
	}
	return b
}

// tclWord quotes s as one Tcl word: bare when it holds only safe
// characters, otherwise with every special character backslash-escaped.
func tclWord(s string) string {
	if s == "" {
		return "{}"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./:-+=@,%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\\', '{', '}', '[', ']', '$', '"', ';', ' ', '#':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
