package runner

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/hwmap"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/device/provision"
	"github.com/ddhil/ddhil/harness/link/serialport"
	"github.com/ddhil/ddhil/harness/session"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/board"
)

// The board target: `ddhil run --target board --hwmap F [--board ID]`.
func init() {
	Targets["board"] = newBoardTarget
	Preparers["board"] = prepareBoard
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

// attachedProbes lists the USB serial numbers present now (a seam for
// tests).
var attachedProbes = usbSerials

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

// LocateBoard loads the hardware map and returns the board to run on: id,
// or when id is empty the map's only board, or its only attached board. The
// board must be attached (probe serial among the USB devices, local serial
// ports present). Every error wraps harness.ErrLab; one about a board that
// is not attached also wraps ErrBoardNotAttached.
func LocateBoard(mapPath, id string) (hwmap.Board, error) {
	if mapPath == "" {
		return hwmap.Board{}, harness.LabError(errors.New("runner: target board needs a hardware map (--hwmap FILE; docs/boards.md)"))
	}
	m, err := hwmap.Load(mapPath)
	if err != nil {
		return hwmap.Board{}, harness.LabError(fmt.Errorf("runner: %w", err))
	}
	serials, probeErr := attachedProbes()
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
			return b, harness.LabError(&notAttached{fmt.Sprintf("runner: board %q (%s) of %s is not attached: %s%s", b.ID, b.Platform, mapPath, why, hint)})
		}
		return b, nil
	}
	if id != "" {
		b, ok := m.Board(id)
		if !ok {
			return hwmap.Board{}, harness.LabError(fmt.Errorf("runner: no board %q in %s (boards: %s)", id, mapPath, strings.Join(m.IDs(), ", ")))
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
		return hwmap.Board{}, harness.LabError(&notAttached{fmt.Sprintf("runner: none of the %d boards of %s is attached (--board picks one):\n  %s\n%s",
			len(m.Boards), mapPath, strings.Join(reasons, "\n  "), strings.TrimPrefix(hint, "; "))})
	}
	return hwmap.Board{}, harness.LabError(fmt.Errorf("runner: %d boards of %s are attached (%s): choose one with --board", len(ready), mapPath, strings.Join(ready, ", ")))
}

// notAttached is the ErrBoardNotAttached error with its explanation.
type notAttached struct{ msg string }

func (e *notAttached) Error() string        { return e.msg }
func (e *notAttached) Is(target error) bool { return target == ErrBoardNotAttached }

// prepareBoard picks the board and fills what the user left out: the
// profile from the hardware-map entry, else from PlatformDefaults; the
// firmware from PlatformDefaults.
func prepareBoard(o *Options) error {
	b, err := LocateBoard(o.HWMap, o.Board)
	if err != nil {
		return err
	}
	o.Board = b.ID
	def := PlatformDefaults[b.Platform]
	if o.Profile == "" {
		o.Profile = b.Profile
	}
	if o.Profile == "" {
		o.Profile = def.Profile
	}
	if o.Profile == "" {
		return harness.LabError(fmt.Errorf("runner: board %q (%s): no device profile: pass --profile or set profile: in %s", b.ID, b.Platform, o.HWMap))
	}
	if o.Firmware == "" {
		o.Firmware = def.Firmware
	}
	if o.Firmware == "" {
		return harness.LabError(fmt.Errorf("runner: board %q (%s): no firmware: pass --firmware <ELF>", b.ID, b.Platform))
	}
	return nil
}

func newBoardTarget(o Options, log io.Writer) (target.Target, error) {
	b, err := LocateBoard(o.HWMap, o.Board)
	if err != nil {
		return nil, err
	}
	t, err := board.New(board.Config{Board: b, ELF: o.Firmware, Log: log})
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("runner: %w", err))
	}
	return &boardTarget{Target: t, board: b, pkiDir: filepath.Join(o.OutDir, "pki")}, nil
}

// boardTarget is a board plus what its session needs.
type boardTarget struct {
	target.Target
	board  hwmap.Board
	pkiDir string
}

func (t *boardTarget) ConfigureSession(cfg *session.Config) error {
	return ConfigureBoardSession(cfg, t.board, t.pkiDir)
}

// ConfigureBoardSession sets a session up for a board. The profile's
// transport must be the board's. A module board needs nothing: the session
// plays the Wi-Fi module on its module UART and the broker stays in memory.
// A network board dials the broker itself: the broker gets a mutual-TLS
// listener on the map's broker_listen address, certified by a lab CA kept
// in pkiDir (made on first use; the certificate names the endpoint the
// device is given: broker_listen's IP, or Vars["endpoint"] when set, e.g. a
// DNS name of this host), the device is provisioned with that endpoint and
// broker_listen's port, and the CA signs the profile's pki steps.
func ConfigureBoardSession(cfg *session.Config, b hwmap.Board, pkiDir string) error {
	if cfg.Profile == nil {
		return errors.New("runner: session config without a profile")
	}
	want := cfg.Profile.Expect.Transport
	if want == "" {
		want = hwmap.TransportModule
	}
	if want != b.Transport.Kind {
		return harness.LabError(fmt.Errorf("runner: profile %s expects transport %s, but board %q is mapped with transport %s: pick the profile for this board (--profile) or fix the hardware map",
			cfg.Profile.Name, want, b.ID, b.Transport.Kind))
	}
	if b.Transport.Kind != hwmap.TransportNetwork {
		if cfg.Profile.NeedsSigner() {
			return harness.LabError(fmt.Errorf("runner: profile %s provisions TLS certificates, but board %q reaches the broker through the emulated module (plain MQTT)", cfg.Profile.Name, b.ID))
		}
		return nil
	}
	host, port, err := net.SplitHostPort(b.BrokerListen)
	if err != nil {
		return harness.LabError(fmt.Errorf("runner: board %q: broker_listen %q: %w", b.ID, b.BrokerListen, err))
	}
	vars := profile.Vars{}
	for k, v := range cfg.Vars {
		vars[k] = v
	}
	hosts := []string{host}
	if ep := vars["endpoint"]; ep != "" && ep != host {
		hosts = append(hosts, ep)
	}
	ca, err := provision.OpenCA(pkiDir, hosts)
	if err != nil {
		return harness.LabError(fmt.Errorf("runner: board %q: %w", b.ID, err))
	}
	tlsCfg, err := ca.ServerTLS()
	if err != nil {
		return harness.LabError(fmt.Errorf("runner: board %q: %w", b.ID, err))
	}
	vars["port"] = port // the device must dial the port the broker listens on
	cfg.Vars = vars
	cfg.Endpoint = host
	cfg.BrokerConfig.MQTTSAddr = b.BrokerListen
	cfg.BrokerConfig.TLS = tlsCfg
	cfg.Profile = cfg.Profile.WithSigner(ca)
	return nil
}
