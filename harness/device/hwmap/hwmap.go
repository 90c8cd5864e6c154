// Package hwmap reads the hardware map: which boards are on the bench, the
// probe that flashes each (by serial, always passed to OpenOCD), its
// OpenOCD configuration, console and transport serial lines, and what it can
// do. Modelled on Zephyr Twister's --hardware-map; validated with errors that
// name the file, line and board.
package hwmap

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ddhil/ddhil/internal/yamlerr"
	"gopkg.in/yaml.v3"
)

// Defaults for fields left out of a board entry.
const (
	DefaultBaud         = 115200
	DefaultFlashTimeout = 2 * time.Minute
	DefaultBootTimeout  = 30 * time.Second
)

// Map is a loaded, validated hardware map.
type Map struct {
	Path   string // file it came from ("" when parsed from memory)
	Boards []Board
}

// Board is one entry.
type Board struct {
	ID           string    `yaml:"id"`                      // unique name used on the command line
	Platform     string    `yaml:"platform"`                // nucleo-f446re, stm32f4-discovery, b-u585i-iot02a, ...
	ProbeSerial  string    `yaml:"probe_serial"`            // ST-LINK serial: OpenOCD -c "adapter serial"
	OpenOCD      []string  `yaml:"openocd"`                 // -f files, in order; "./" and "../" paths are relative to the map
	Console      Serial    `yaml:"console"`                 // the firmware's console UART
	Transport    Transport `yaml:"transport"`               // module UART adapter, or network
	BrokerListen string    `yaml:"broker_listen,omitempty"` // host:port on the bench LAN for network boards
	Fixtures     []string  `yaml:"fixtures,omitempty"`      // capabilities scenarios can require
	FlashTimeout Duration  `yaml:"flash_timeout"`           // whole flash; DefaultFlashTimeout when absent
	BootTimeout  Duration  `yaml:"boot_timeout"`            // reset to first console line; DefaultBootTimeout when absent
	Profile      string    `yaml:"profile,omitempty"`       // device profile, relative paths resolved against the map's directory
	Notes        string    `yaml:"notes,omitempty"`

	Line int `yaml:"-"` // line of the entry in the file
}

// Serial is a serial line: a device path or tcp://host:port (ser2net raw).
type Serial struct {
	Port string `yaml:"port"`
	Baud int    `yaml:"baud"`
}

// Transport kinds.
const (
	TransportModule  = "module"  // a USB-serial adapter wired to the board's module UART; the harness plays the module
	TransportNetwork = "network" // the board has its own network and reaches the broker on BrokerListen
)

// Transport is `transport: network` or `transport: {module: <port>, baud: N}`.
type Transport struct {
	Kind string
	Serial
}

// UnmarshalYAML accepts the scalar and the mapping form.
func (t *Transport) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value != TransportNetwork {
			return fmt.Errorf("line %d: unknown transport %q (want %q or a mapping {module: <port>, baud: N})", n.Line, n.Value, TransportNetwork)
		}
		t.Kind = TransportNetwork
		return nil
	case yaml.MappingNode:
		if err := checkKeys(n, "module", "baud"); err != nil {
			return err
		}
		var m struct {
			Module *string `yaml:"module"`
			Baud   int     `yaml:"baud"`
		}
		if err := n.Decode(&m); err != nil {
			return err
		}
		if m.Module == nil {
			return fmt.Errorf("line %d: transport mapping needs module: <serial port of the module UART adapter>", n.Line)
		}
		t.Kind, t.Port, t.Baud = TransportModule, *m.Module, m.Baud
		return nil
	}
	return fmt.Errorf("line %d: transport must be %q or {module: <port>, baud: N}", n.Line, TransportNetwork)
}

// MarshalYAML writes the form UnmarshalYAML reads.
func (t Transport) MarshalYAML() (any, error) {
	if t.Kind == TransportNetwork {
		return TransportNetwork, nil
	}
	return map[string]any{"module": t.Port, "baud": t.Baud}, nil
}

// Duration reads "90s", "2m" (Go syntax).
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: bad duration %q (write e.g. 90s or 2m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the Go duration string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Load reads and validates a hardware map file.
func Load(path string) (*Map, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hwmap: %w", err)
	}
	m, err := Parse(data, path)
	if err != nil {
		return nil, err
	}
	return m, nil
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// boardKeys are the keys a board entry may have.
var boardKeys = []string{"id", "platform", "probe_serial", "openocd", "console", "transport",
	"broker_listen", "fixtures", "flash_timeout", "boot_timeout", "profile", "notes"}

// Parse validates a hardware map held in memory. path, when not empty, is
// used in errors and to resolve relative profile paths.
func Parse(data []byte, path string) (*Map, error) {
	name, base := path, ""
	if path == "" {
		name = "hwmap"
	} else {
		base = filepath.Dir(path)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("hwmap: %s: %w", name, err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("hwmap: %s: empty file", name)
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("hwmap: %s:%d: want a mapping with a boards: list", name, doc.Line)
	}
	if err := checkKeys(doc, "boards"); err != nil {
		return nil, fmt.Errorf("hwmap: %s: %w", name, err)
	}
	var boards *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "boards" {
			boards = doc.Content[i+1]
		}
	}
	if boards == nil || boards.Kind != yaml.SequenceNode || len(boards.Content) == 0 {
		return nil, fmt.Errorf("hwmap: %s: boards: must be a non-empty list", name)
	}

	m := &Map{Path: path}
	var errs []error
	fail := func(line int, id, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if m := leadingLine.FindStringSubmatch(msg); m != nil { // "line N: ..." from yaml or checkKeys
			fmt.Sscan(m[1], &line)
			msg = msg[len(m[0]):]
		}
		where := fmt.Sprintf("%s:%d", name, line)
		if id != "" {
			where += fmt.Sprintf(": board %q", id)
		}
		errs = append(errs, fmt.Errorf("%s: %s", where, msg))
	}
	for _, n := range boards.Content {
		if n.Kind != yaml.MappingNode {
			fail(n.Line, "", "a board entry must be a mapping")
			continue
		}
		var b Board
		if kerrs := keyErrors(n, boardKeys...); len(kerrs) > 0 {
			for _, e := range kerrs {
				fail(n.Line, idOf(n), "%s", e)
			}
			continue
		}
		if err := n.Decode(&b); err != nil {
			fail(n.Line, idOf(n), "%v", trimYAMLError(err))
			continue
		}
		b.Line = n.Line
		m.Boards = append(m.Boards, b)
	}

	ids := map[string]int{}
	probes := map[string]string{}
	ports := map[string]string{}
	for i := range m.Boards {
		b := &m.Boards[i]
		b.setDefaults(base)
		for _, e := range b.validate() {
			fail(b.Line, b.ID, "%s", e)
		}
		if b.ID != "" {
			if first, dup := ids[b.ID]; dup {
				fail(b.Line, b.ID, "duplicate board id (first at line %d)", first)
			} else {
				ids[b.ID] = b.Line
			}
		}
		if b.ProbeSerial != "" {
			if other, dup := probes[b.ProbeSerial]; dup {
				fail(b.Line, b.ID, "probe serial %q is already board %q's", b.ProbeSerial, other)
			} else {
				probes[b.ProbeSerial] = b.ID
			}
		}
		for _, p := range []string{b.Console.Port, b.Transport.Port} {
			if p == "" {
				continue
			}
			if other, dup := ports[p]; dup && other != b.ID {
				fail(b.Line, b.ID, "serial port %s is already board %q's", p, other)
			}
			ports[p] = b.ID
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("hwmap: invalid hardware map:\n%w", errors.Join(errs...))
	}
	return m, nil
}

func (b *Board) setDefaults(baseDir string) {
	if b.Console.Baud == 0 {
		b.Console.Baud = DefaultBaud
	}
	if b.Transport.Kind == TransportModule && b.Transport.Baud == 0 {
		b.Transport.Baud = DefaultBaud
	}
	if b.FlashTimeout == 0 {
		b.FlashTimeout = Duration(DefaultFlashTimeout)
	}
	if b.BootTimeout == 0 {
		b.BootTimeout = Duration(DefaultBootTimeout)
	}
	for i, f := range b.OpenOCD {
		if baseDir != "" && (strings.HasPrefix(f, "./") || strings.HasPrefix(f, "../")) {
			b.OpenOCD[i] = filepath.Join(baseDir, f)
		}
	}
	if b.Profile != "" && !filepath.IsAbs(b.Profile) && baseDir != "" {
		b.Profile = filepath.Join(baseDir, b.Profile)
	}
}

// validate lists what is wrong with one entry.
func (b *Board) validate() []string {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	switch {
	case b.ID == "":
		add("missing id")
	case !idPattern.MatchString(b.ID):
		add("id %q may hold only letters, digits, '.', '_' and '-'", b.ID)
	}
	if b.Platform == "" {
		add("missing platform")
	}
	if strings.TrimSpace(b.ProbeSerial) == "" {
		add("missing probe_serial: OpenOCD must be told which probe to use (with two boards attached it would pick either, zephyr#82331)")
	}
	if len(b.OpenOCD) == 0 {
		add("missing openocd: list the configuration files, e.g. [board/st_nucleo_f4.cfg]")
	}
	for _, f := range b.OpenOCD {
		if strings.TrimSpace(f) == "" {
			add("empty openocd configuration file name")
		}
	}
	if b.Console.Port == "" {
		add("missing console.port")
	}
	if b.Console.Baud < 0 {
		add("console.baud %d must be positive", b.Console.Baud)
	}
	switch b.Transport.Kind {
	case "":
		add("missing transport: %q or {module: <port>, baud: N}", TransportNetwork)
	case TransportModule:
		if b.Transport.Port == "" {
			add("transport module port is empty")
		}
		if b.Transport.Port != "" && b.Transport.Port == b.Console.Port {
			add("transport module port and console port are both %s", b.Console.Port)
		}
		if b.Transport.Baud < 0 {
			add("transport baud %d must be positive", b.Transport.Baud)
		}
	case TransportNetwork:
		if b.BrokerListen == "" {
			add("transport network needs broker_listen: the bench LAN address the broker listens on, e.g. 192.168.1.10:8883")
		}
	}
	if b.BrokerListen != "" {
		host, port, err := net.SplitHostPort(b.BrokerListen)
		switch {
		case err != nil:
			add("broker_listen %q: %v", b.BrokerListen, err)
		case net.ParseIP(host) == nil:
			add("broker_listen %q: host must be an IP address of this machine", b.BrokerListen)
		case port == "" || port == "0":
			add("broker_listen %q: give a fixed port (the firmware is provisioned with it)", b.BrokerListen)
		}
	}
	if b.FlashTimeout < 0 {
		add("flash_timeout must be positive")
	}
	if b.BootTimeout < 0 {
		add("boot_timeout must be positive")
	}
	return errs
}

// Board returns the entry with the given id.
func (m *Map) Board(id string) (Board, bool) {
	for _, b := range m.Boards {
		if b.ID == id {
			return b, true
		}
	}
	return Board{}, false
}

// IDs lists the board ids in file order.
func (m *Map) IDs() []string {
	out := make([]string, len(m.Boards))
	for i, b := range m.Boards {
		out[i] = b.ID
	}
	return out
}

// WithFixture returns the boards that advertise every fixture named.
func (m *Map) WithFixture(fixtures ...string) []Board {
	var out []Board
	for _, b := range m.Boards {
		if b.HasFixtures(fixtures...) {
			out = append(out, b)
		}
	}
	return out
}

// HasFixtures reports whether the board advertises every fixture named.
func (b Board) HasFixtures(fixtures ...string) bool {
	have := map[string]bool{}
	for _, f := range b.Fixtures {
		have[f] = true
	}
	for _, f := range fixtures {
		if !have[f] {
			return false
		}
	}
	return true
}

var leadingLine = regexp.MustCompile(`^line (\d+): `)

// checkKeys reports keys of a mapping node that are not allowed, with lines,
// and duplicate keys.
func checkKeys(n *yaml.Node, allowed ...string) error {
	if errs := keyErrors(n, allowed...); len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// keyErrors lists checkKeys' findings one by one, each "line N: ...".
func keyErrors(n *yaml.Node, allowed ...string) []string {
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[a] = true
	}
	seen := map[string]bool{}
	var errs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !ok[k.Value] {
			sorted := append([]string(nil), allowed...)
			sort.Strings(sorted)
			if guess := yamlerr.Closest(k.Value, sorted); guess != "" {
				errs = append(errs, fmt.Sprintf("line %d: unknown key %q (did you mean %q?)", k.Line, k.Value, guess))
			} else {
				errs = append(errs, fmt.Sprintf("line %d: unknown key %q (known: %s)", k.Line, k.Value, strings.Join(sorted, ", ")))
			}
		}
		if seen[k.Value] {
			errs = append(errs, fmt.Sprintf("line %d: key %q given twice", k.Line, k.Value))
		}
		seen[k.Value] = true
	}
	return errs
}

// idOf finds the id of a board node for error messages.
func idOf(n *yaml.Node) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "id" {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// trimYAMLError drops yaml.v3's "yaml: unmarshal errors:\n  " preamble.
func trimYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// Marshal writes the map as YAML (defaults filled in).
func (m *Map) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(struct {
		Boards []Board `yaml:"boards"`
	}{m.Boards}); err != nil {
		return nil, fmt.Errorf("hwmap: %w", err)
	}
	return buf.Bytes(), nil
}
