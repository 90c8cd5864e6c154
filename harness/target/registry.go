package target

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ddhil/ddhil/internal/yamlerr"
)

// Driver describes one kind of target to everything that offers a choice of
// targets: `ddhil run --target`, hiltest's -ddhil.target flag, the tests.
// A new driver is one package that calls Register from its init function,
// plus one blank import in harness/target/drivers.
type Driver struct {
	// Name is the value of --target (qemu, renode, board).
	Name string
	// Summary is one line for --help.
	Summary string
	// Options are the driver's own settings, offered as CLI flags, hiltest
	// flags, DDHIL_* variables and the device profile's target.<name> block.
	Options []Option
	// DefaultFirmware is the reference agent's build for these settings,
	// relative to the repository root, or "" when the run must name one.
	DefaultFirmware func(s Settings) string
	// Prepare completes a run's set-up before anything starts (e.g. the
	// board driver picks the board and its profile and firmware). Optional.
	Prepare func(s *Setup) error
	// Validate checks the settings before anything boots; its errors are
	// usage mistakes. Optional.
	Validate func(s Settings) error
	// Probe says whether the target can run here now.
	Probe func(ctx context.Context, s *Setup) Availability
	// New builds an unstarted target for one run.
	New func(s *Setup) (Target, error)
}

// Option is one setting of a driver.
type Option struct {
	// Flag is the CLI flag name (`--qemu-machine`); hiltest registers it as
	// -ddhil.<Flag> and reads DDHIL_<FLAG> with dashes as underscores.
	Flag string
	// Key is its name in the profile's target.<driver> block ("" = not
	// settable from a profile).
	Key   string
	Usage string
	// List options repeat (`--qemu-arg A --qemu-arg B`; a YAML list).
	List bool
	// Bool options are switches: `--compress` alone sets "true".
	Bool bool
	// Path options name files: relative paths in a profile count from
	// the profile's folder.
	Path bool
}

// Value is a flag.Value that stores an option's values into settings;
// a Bool option is a boolean flag.
type Value struct {
	Opt      Option
	Settings Settings
}

func (v Value) String() string { return "" }

// Set records one value.
func (v Value) Set(s string) error {
	if v.Opt.Bool {
		switch s {
		case "true", "false":
		default:
			return fmt.Errorf("want true or false, got %q", s)
		}
	}
	if v.Opt.List {
		v.Settings[v.Opt.Flag] = append(v.Settings[v.Opt.Flag], s)
	} else {
		v.Settings[v.Opt.Flag] = []string{s}
	}
	return nil
}

// IsBoolFlag makes a Bool option a switch for package flag.
func (v Value) IsBoolFlag() bool { return v.Opt.Bool }

// Env is the environment variable that sets the option.
func (o Option) Env() string {
	return "DDHIL_" + strings.ToUpper(strings.ReplaceAll(o.Flag, "-", "_"))
}

// Settings are driver option values by Option.Flag. A list option keeps
// every value; a single one its last.
type Settings map[string][]string

// Get is the value of a single option ("" when unset).
func (s Settings) Get(flag string) string {
	v := s[flag]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// Int is the value of a single option as an integer; def when unset.
func (s Settings) Int(flag string, def int) (int, error) {
	v := s.Get(flag)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: not a number", flag, v)
	}
	return n, nil
}

// Set replaces an option's values.
func (s Settings) Set(flag string, v ...string) { s[flag] = v }

// With returns s overlaid with o: every option o sets replaces s's.
func (s Settings) With(o Settings) Settings {
	out := Settings{}
	for k, v := range s {
		out[k] = v
	}
	for k, v := range o {
		if len(v) > 0 {
			out[k] = v
		}
	}
	return out
}

// Setup is what a driver gets to build a run's target.
type Setup struct {
	Firmware string   // ELF path (absolute when the run starts)
	Profile  string   // device profile path (Prepare may fill it)
	OutDir   string   // the run's folder (drivers may keep files there)
	Settings Settings // the driver's options
	Log      io.Writer
	// Device is the board (or other unit) a driver picked in Prepare, for
	// reports ("" when not applicable).
	Device string
}

// Availability is a Probe's answer: the target can run, the caller should
// skip (the tool or board is absent, with the reason and how to get it),
// or the lab is broken (present but failing).
type Availability struct {
	State  AvailabilityState
	Reason string // for Skip and LabError: why, and the install hint
}

// AvailabilityState is one of Available, Skip, Broken.
type AvailabilityState int

const (
	Available AvailabilityState = iota
	Skip                        // absent: install hint in Reason
	Broken                      // present but failing: a lab error
)

// Ready is an Available answer.
func Ready() Availability { return Availability{State: Available} }

// Absent is a Skip answer with the reason and install hint.
func Absent(format string, args ...any) Availability {
	return Availability{State: Skip, Reason: fmt.Sprintf(format, args...)}
}

// Failing is a Broken answer.
func Failing(format string, args ...any) Availability {
	return Availability{State: Broken, Reason: fmt.Sprintf(format, args...)}
}

var (
	mu      sync.RWMutex
	drivers = map[string]Driver{}
)

// Register adds a driver; a second driver of the same name panics (a
// programming error, found at init).
func Register(d Driver) {
	mu.Lock()
	defer mu.Unlock()
	if d.Name == "" || d.New == nil || d.Probe == nil {
		panic("target: Register needs Name, New and Probe")
	}
	if _, dup := drivers[d.Name]; dup {
		panic("target: driver " + d.Name + " registered twice")
	}
	drivers[d.Name] = d
}

// Lookup returns the driver called name.
func Lookup(name string) (Driver, bool) {
	mu.RLock()
	defer mu.RUnlock()
	d, ok := drivers[name]
	return d, ok
}

// Names lists the registered drivers, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(drivers))
	for n := range drivers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Drivers lists the registered drivers by name.
func Drivers() []Driver {
	var out []Driver
	for _, n := range Names() {
		d, _ := Lookup(n)
		out = append(out, d)
	}
	return out
}

// UnknownError says which targets exist.
func UnknownError(name string) error {
	return fmt.Errorf("unknown target %q (known: %s)", name, strings.Join(Names(), ", "))
}

// AllOptions lists every driver's options once, in driver order, for the
// flag sets that offer all of them.
func AllOptions() []Option {
	var out []Option
	seen := map[string]bool{}
	for _, d := range Drivers() {
		for _, o := range d.Options {
			if !seen[o.Flag] {
				seen[o.Flag] = true
				out = append(out, o)
			}
		}
	}
	return out
}

// FromProfile converts a profile's target.<driver> block into settings,
// refusing keys the driver does not declare; relative Path options count
// from dir (the profile's folder).
func FromProfile(d Driver, block map[string]any, dir string) (Settings, error) {
	s := Settings{}
	for k, v := range block {
		var opt *Option
		var keys []string
		for i := range d.Options {
			if d.Options[i].Key != "" {
				keys = append(keys, d.Options[i].Key)
			}
			if d.Options[i].Key == k {
				opt = &d.Options[i]
			}
		}
		if opt == nil {
			if guess := yamlerr.Closest(k, keys); guess != "" {
				return nil, fmt.Errorf("target.%s: unknown key %q (did you mean %q?)", d.Name, k, guess)
			}
			return nil, fmt.Errorf("target.%s: unknown key %q (known: %s)", d.Name, k, strings.Join(keys, ", "))
		}
		switch x := v.(type) {
		case []any:
			if !opt.List {
				return nil, fmt.Errorf("target.%s.%s: want one value, got a list", d.Name, k)
			}
			for _, e := range x {
				s[opt.Flag] = append(s[opt.Flag], fmt.Sprint(e))
			}
		case map[string]any:
			return nil, fmt.Errorf("target.%s.%s: want a value, got a mapping", d.Name, k)
		case nil:
		default:
			if opt.List {
				return nil, fmt.Errorf("target.%s.%s: want a list", d.Name, k)
			}
			v := fmt.Sprint(x)
			if opt.Path && dir != "" && !filepath.IsAbs(v) {
				v = filepath.Join(dir, v)
			}
			s[opt.Flag] = []string{v}
		}
	}
	return s, nil
}
