// Package harness holds what every part of the harness shares: the classes
// of failure a run can end in. The parts live below it by role: target/
// (what runs the firmware), debug/ (flash and debug back-ends), link/ (the
// streams to the device: console, emulated Wi-Fi module, serial ports),
// device/ (profiles, hardware maps, provisioning), judge/ (checks), report/
// (the writers); session, scenario and runner orchestrate one run, and
// hiltest exposes it to users' own `go test` suites.
package harness

import "errors"

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

// ErrUsage marks a mistake in how a run was asked for (an unknown target,
// a misspelt profile key, a missing firmware file), found before anything
// boots. The CLI maps it to exit code 2.
var ErrUsage = errors.New("usage error")

// UsageError wraps err so that errors.Is(err, ErrUsage) holds.
func UsageError(err error) error {
	if err == nil || errors.Is(err, ErrUsage) {
		return err
	}
	return &usageError{err}
}

type usageError struct{ err error }

func (e *usageError) Error() string   { return e.err.Error() }
func (e *usageError) Unwrap() []error { return []error{e.err, ErrUsage} }
