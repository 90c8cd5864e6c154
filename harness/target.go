// Package harness holds the seam between the conformance suite and the thing
// that runs firmware: an emulator (QEMU, Renode) or a real board. Each driver
// lives in its own package under harness/ and exports one New(Config).
package harness

import (
	"context"
	"errors"
	"io"
)

// Target runs the firmware under test. Implementations are safe to Close
// more than once and always reap the processes they started.
type Target interface {
	// Start boots the firmware; when it returns, Console (and Transport, when
	// the target has one) are connected and no output has been lost.
	Start(ctx context.Context) error
	// Console is the firmware's console UART.
	Console() io.ReadWriter
	// Transport is the UART wired to the (emulated) Wi-Fi module, or nil for
	// a target with its own network.
	Transport() io.ReadWriter
	// Reset restarts the firmware as a hardware reset would; the streams stay
	// connected.
	Reset(ctx context.Context) error
	// Info describes the target for reports.
	Info() Info
	Close() error
}

// Info is what a report says about the target.
type Info struct {
	Kind     string            `json:"kind"`     // qemu | renode | board
	Name     string            `json:"name"`     // machine or board id
	Version  string            `json:"version"`  // emulator version or probe firmware
	Firmware string            `json:"firmware"` // path of the ELF
	Extra    map[string]string `json:"extra,omitempty"`
}

// ErrLab marks failures of the lab rather than of the firmware: an emulator
// missing, a flash that failed, a serial port that vanished. The CLI maps it to
// exit code 3; wrap it with fmt.Errorf("...: %w", harness.ErrLab) or LabError.
var ErrLab = errors.New("lab error")

// ErrFirmwareCrash marks a target that died because of the firmware (QEMU's
// "Lockup", a hard fault); it is a firmware failure, not a lab error.
var ErrFirmwareCrash = errors.New("firmware crashed")

// LabError wraps err so that errors.Is(err, ErrLab) holds.
func LabError(err error) error {
	if err == nil || errors.Is(err, ErrLab) {
		return err
	}
	return &labError{err}
}

type labError struct{ err error }

func (e *labError) Error() string   { return e.err.Error() }
func (e *labError) Unwrap() []error { return []error{e.err, ErrLab} }
