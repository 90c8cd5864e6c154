package serialport

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.bug.st/serial/enumerator"
)

// STVendorID is STMicroelectronics' USB vendor ID as the enumerator reports
// it (upper-case hex). ST-LINK virtual COM ports carry it.
const STVendorID = "0483"

// PortInfo describes one USB serial port.
type PortInfo struct {
	Name         string // /dev/ttyACM0
	ByID         string // stable /dev/serial/by-id/... link to Name, when udev made one
	VID, PID     string // upper-case hex, "0483" / "374B"
	SerialNumber string // for an ST-LINK VCP: the probe's serial, as OpenOCD's "adapter serial" wants it
	Product      string // "STM32 STLink", "STLINK-V3", "FT232R USB UART", ...
	Manufacturer string
}

// ST reports whether the port belongs to an STMicroelectronics device.
func (p PortInfo) ST() bool { return strings.EqualFold(p.VID, STVendorID) }

// Stable is the path to put in a hardware map: the by-id link when there is
// one (ttyACM numbers change with plug order), else the device name.
func (p PortInfo) Stable() string {
	if p.ByID != "" {
		return p.ByID
	}
	return p.Name
}

// Seams for tests; the real values read the system.
var (
	listPorts = func() ([]*enumerator.PortDetails, error) { return enumerator.GetDetailedPortsList() }
	byIDDir   = "/dev/serial/by-id"
)

// USBPorts lists the USB serial ports attached now, sorted by name. Ptys
// and socat links never appear here (the enumerator scans /dev/tty*).
func USBPorts() ([]PortInfo, error) {
	details, err := listPorts()
	if err != nil {
		return nil, fmt.Errorf("serialport: list ports: %w", err)
	}
	links := byIDLinks()
	var out []PortInfo
	for _, d := range details {
		if d == nil || !d.IsUSB {
			continue
		}
		out = append(out, PortInfo{
			Name: d.Name, ByID: links[d.Name], VID: strings.ToUpper(d.VID), PID: strings.ToUpper(d.PID),
			SerialNumber: d.SerialNumber, Product: d.Product, Manufacturer: d.Manufacturer,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Discover lists the ST-LINK virtual COM ports attached now (VID 0483):
// one per board with an on-board ST-LINK/V2-1 or V3, whose serial number is
// the probe serial for OpenOCD.
func Discover() ([]PortInfo, error) {
	all, err := USBPorts()
	if err != nil {
		return nil, err
	}
	var st []PortInfo
	for _, p := range all {
		if p.ST() {
			st = append(st, p)
		}
	}
	return st, nil
}

// byIDLinks maps device names to their /dev/serial/by-id links.
func byIDLinks() map[string]string {
	out := map[string]string{}
	entries, err := os.ReadDir(byIDDir)
	if err != nil {
		return out // no udev links (container, no USB serial device)
	}
	for _, e := range entries {
		link := filepath.Join(byIDDir, e.Name())
		target, err := filepath.EvalSymlinks(link)
		if err != nil {
			continue
		}
		if _, dup := out[target]; !dup { // ReadDir is sorted: keep the first
			out[target] = link
		}
	}
	return out
}
