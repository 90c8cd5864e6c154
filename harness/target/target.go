// Package target is the seam between a run and the thing that runs the
// firmware: an emulator (QEMU, Renode) or a real board. Each driver lives in
// a package below this one and registers itself (see Register); the
// optional capabilities a driver may have are the interfaces of this file.
package target

import (
	"context"
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
