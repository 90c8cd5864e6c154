package board

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/hwmap"
	"github.com/ddhil/ddhil/harness/device/provision"
	"github.com/ddhil/ddhil/harness/link/serialport"
	"github.com/ddhil/ddhil/harness/target"
)

// The board driver: `ddhil run --target board --hwmap F [--board ID]`.
func init() {
	target.Register(target.Driver{
		Name:    "board",
		Summary: "a real STM32 on the bench: OpenOCD flash, serial console and module UART (hardware map)",
		Options: []target.Option{
			{Flag: "hwmap", Usage: "hardware map YAML (docs/boards.md)"},
			{Flag: "board", Usage: "board id in the hardware map (default: its only board, or its only attached one)"},
		},
		Prepare:  prepare,
		Validate: validate,
		Probe:    probe,
		New:      newTarget,
	})
}

// validate: a board run needs a hardware map, and the map must load.
func validate(s target.Settings) error {
	path := s.Get("hwmap")
	if path == "" {
		return errors.New("target board needs a hardware map: --hwmap FILE (docs/boards.md)")
	}
	m, err := hwmap.Load(path)
	if err != nil {
		return err
	}
	if id := s.Get("board"); id != "" {
		if _, ok := m.Board(id); !ok {
			return fmt.Errorf("no board %q in %s (boards: %s)", id, path, strings.Join(m.IDs(), ", "))
		}
	}
	return nil
}

// probe: the board must be attached now.
func probe(_ context.Context, s *target.Setup) target.Availability {
	if _, err := Locate(s.Settings.Get("hwmap"), s.Settings.Get("board")); err != nil {
		if errors.Is(err, ErrBoardNotAttached) {
			return target.Absent("%v", err)
		}
		return target.Failing("%v", err)
	}
	return target.Ready()
}

// ErrBoardNotAttached marks a mapped board whose probe or serial ports are
// not on this machine now (always together with harness.ErrLab).
var ErrBoardNotAttached = errors.New("board not attached")

// PlatformDefault is what a run uses for a platform when neither the
// command line nor the hardware-map entry names a profile or firmware.
type PlatformDefault struct {
	Profile  string // relative to the working directory (the repository root)
	Firmware string // "" = none: --firmware is required
}

// PlatformDefaults: the reference agent's board profiles and its
// nucleo-f446re build (register-compatible with the F407 of the
// STM32F4-Discovery, see fixtures/profiles/ddagent-stm32f4disc.yaml), and
// the STM32U5 reference, whose image comes from STM32CubeIDE.
var PlatformDefaults = map[string]PlatformDefault{
	"nucleo-f446re":     {Profile: "fixtures/profiles/ddagent-nucleo-f446re.yaml", Firmware: "firmware/build/nucleo-f446re/ddagent.elf"},
	"stm32f4-discovery": {Profile: "fixtures/profiles/ddagent-stm32f4disc.yaml", Firmware: "firmware/build/nucleo-f446re/ddagent.elf"},
	"b-u585i-iot02a":    {Profile: "fixtures/profiles/stm32u5-iot-reference.yaml"},
}

// ListProbes lists the USB serial numbers present now; tests replace it
// to stand in for probes that are not plugged in.
var ListProbes = usbSerials

// sysUSB is where Linux lists USB devices.
var sysUSB = "/sys/bus/usb/devices"

// usbSerials returns the serial numbers of the ST-LINK virtual COM ports
// and of every USB device in sysfs, so probes without a COM port (ST-LINK/V2,
// J-Link) count too. A serial that is not printable text (old ST-LINK/V2s)
// is also listed as upper-case hex, OpenOCD's spelling of it.
func usbSerials() ([]string, error) {
	var out []string
	ports, derr := serialport.Discover()
	for _, p := range ports {
		out = append(out, p.SerialNumber)
	}
	entries, err := os.ReadDir(sysUSB)
	if err != nil && derr != nil {
		return out, fmt.Errorf("%v; %w", derr, err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(sysUSB, e.Name(), "serial"))
		if err != nil {
			continue
		}
		s := strings.TrimRight(string(b), "\n")
		if s == "" {
			continue
		}
		out = append(out, s)
		if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			out = append(out, strings.ToUpper(hex.EncodeToString([]byte(s))))
		}
	}
	return out, nil
}

// Locate loads the hardware map and returns the board to run on: id,
// or when id is empty the map's only board, or its only attached board. The
// board must be attached (probe serial among the USB devices, local serial
// ports present). Every error wraps harness.ErrLab; one about a board that
// is not attached also wraps ErrBoardNotAttached.
func Locate(mapPath, id string) (hwmap.Board, error) {
	if mapPath == "" {
		return hwmap.Board{}, harness.LabError(errors.New("board: target board needs a hardware map (--hwmap FILE; docs/boards.md)"))
	}
	m, err := hwmap.Load(mapPath)
	if err != nil {
		return hwmap.Board{}, harness.LabError(fmt.Errorf("board: %w", err))
	}
	serials, probeErr := ListProbes()
	missing := func(b hwmap.Board) string {
		p := b.Check(serials)
		if p.Ready() {
			return ""
		}
		var why []string
		if !p.Probe {
			found := fmt.Sprintf("%d USB serial numbers seen", len(serials))
			if probeErr != nil {
				found += "; listing them failed: " + probeErr.Error()
			}
			why = append(why, fmt.Sprintf("probe %s is not among the attached USB devices (%s)", b.ProbeSerial, found))
		}
		if p.Console == "missing" {
			why = append(why, "console port "+b.Console.Port+" is missing")
		}
		if p.Transport == "missing" {
			why = append(why, "module port "+b.Transport.Port+" is missing")
		}
		return strings.Join(why, ", ")
	}
	hint := "; check the bench with: ddhil boards --hwmap " + mapPath
	pick := func(b hwmap.Board) (hwmap.Board, error) {
		if why := missing(b); why != "" {
			return b, harness.LabError(&notAttached{fmt.Sprintf("board %q (%s) of %s is not attached: %s%s", b.ID, b.Platform, mapPath, why, hint)})
		}
		return b, nil
	}
	if id != "" {
		b, ok := m.Board(id)
		if !ok {
			return hwmap.Board{}, harness.LabError(fmt.Errorf("board: no board %q in %s (boards: %s)", id, mapPath, strings.Join(m.IDs(), ", ")))
		}
		return pick(b)
	}
	if len(m.Boards) == 1 {
		return pick(m.Boards[0])
	}
	var ready []string
	var reasons []string
	for _, b := range m.Boards {
		if why := missing(b); why != "" {
			reasons = append(reasons, fmt.Sprintf("%s (%s): %s", b.ID, b.Platform, why))
			continue
		}
		ready = append(ready, b.ID)
	}
	switch len(ready) {
	case 1:
		b, _ := m.Board(ready[0])
		return b, nil
	case 0:
		return hwmap.Board{}, harness.LabError(&notAttached{fmt.Sprintf("board: none of the %d boards of %s is attached (--board picks one):\n  %s\n%s",
			len(m.Boards), mapPath, strings.Join(reasons, "\n  "), strings.TrimPrefix(hint, "; "))})
	}
	return hwmap.Board{}, harness.LabError(fmt.Errorf("board: %d boards of %s are attached (%s): choose one with --board", len(ready), mapPath, strings.Join(ready, ", ")))
}

// notAttached is the ErrBoardNotAttached error with its explanation.
type notAttached struct{ msg string }

func (e *notAttached) Error() string        { return e.msg }
func (e *notAttached) Is(target error) bool { return target == ErrBoardNotAttached }

// prepare picks the board and fills what the user left out: the profile
// from the hardware-map entry, else from PlatformDefaults; the firmware
// from PlatformDefaults.
func prepare(s *target.Setup) error {
	b, err := Locate(s.Settings.Get("hwmap"), s.Settings.Get("board"))
	if err != nil {
		return err
	}
	s.Device = b.ID
	def := PlatformDefaults[b.Platform]
	if s.Profile == "" {
		s.Profile = b.Profile
	}
	if s.Profile == "" {
		s.Profile = def.Profile
	}
	if s.Profile == "" {
		return harness.LabError(fmt.Errorf("board %q (%s): no device profile: pass --profile or set profile: in %s", b.ID, b.Platform, s.Settings.Get("hwmap")))
	}
	if s.Firmware == "" {
		s.Firmware = def.Firmware
	}
	if s.Firmware == "" {
		return harness.LabError(fmt.Errorf("board %q (%s): no firmware: pass --firmware <ELF>", b.ID, b.Platform))
	}
	return nil
}

func newTarget(s *target.Setup) (target.Target, error) {
	id := s.Device
	if id == "" {
		id = s.Settings.Get("board")
	}
	b, err := Locate(s.Settings.Get("hwmap"), id)
	if err != nil {
		return nil, err
	}
	t, err := New(Config{Board: b, ELF: s.Firmware, Log: s.Log})
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("board: %w", err))
	}
	return WithSession(t, b, filepath.Join(s.OutDir, "pki")), nil
}

// WithSession wraps a board's target so that it sets up its session for
// the board (see ConfigureSession); the lab CA is kept in pkiDir.
func WithSession(t target.Target, b hwmap.Board, pkiDir string) target.Target {
	return &sessionTarget{Target: t, board: b, pkiDir: pkiDir}
}

// sessionTarget is a board plus what its session needs.
type sessionTarget struct {
	target.Target
	board  hwmap.Board
	pkiDir string
}

func (t *sessionTarget) ConfigureSession(s *target.SessionSetup) error {
	return ConfigureSession(s, t.board, t.pkiDir)
}

// ConfigureSession sets a session up for a board. The profile's transport
// must be the board's. A module board needs nothing: the session plays the
// Wi-Fi module on its module UART and the broker stays in memory. A network
// board dials the broker itself: the broker gets a mutual-TLS listener on
// the map's broker_listen address, certified by a lab CA kept in pkiDir
// (made on first use; the certificate names the endpoint the device is
// given: broker_listen's IP, or Vars["endpoint"] when set, e.g. a DNS name
// of this host), the device is provisioned with that endpoint and
// broker_listen's port, and the CA signs the profile's pki steps.
func ConfigureSession(s *target.SessionSetup, b hwmap.Board, pkiDir string) error {
	want := s.Transport
	if want == "" {
		want = hwmap.TransportModule
	}
	if want != b.Transport.Kind {
		return harness.LabError(fmt.Errorf("board: profile %s expects transport %s, but board %q is mapped with transport %s: pick the profile for this board (--profile) or fix the hardware map",
			s.ProfileName, want, b.ID, b.Transport.Kind))
	}
	if b.Transport.Kind != hwmap.TransportNetwork {
		if s.NeedsSigner {
			return harness.LabError(fmt.Errorf("board: profile %s provisions TLS certificates, but board %q reaches the broker through the emulated module (plain MQTT)", s.ProfileName, b.ID))
		}
		return nil
	}
	host, port, err := net.SplitHostPort(b.BrokerListen)
	if err != nil {
		return harness.LabError(fmt.Errorf("board %q: broker_listen %q: %w", b.ID, b.BrokerListen, err))
	}
	vars := map[string]string{}
	for k, v := range s.Vars {
		vars[k] = v
	}
	hosts := []string{host}
	if ep := vars["endpoint"]; ep != "" && ep != host {
		hosts = append(hosts, ep)
	}
	ca, err := provision.OpenCA(pkiDir, hosts)
	if err != nil {
		return harness.LabError(fmt.Errorf("board %q: %w", b.ID, err))
	}
	tlsCfg, err := ca.ServerTLS()
	if err != nil {
		return harness.LabError(fmt.Errorf("board %q: %w", b.ID, err))
	}
	vars["port"] = port // the device must dial the port the broker listens on
	s.Vars = vars
	s.Endpoint = host
	s.BrokerTLSAddr = b.BrokerListen
	s.BrokerTLS = tlsCfg
	s.Signer = ca
	return nil
}
