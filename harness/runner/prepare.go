package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/firmware"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/judge/detect"
	"github.com/ddhil/ddhil/harness/target"
	_ "github.com/ddhil/ddhil/harness/target/drivers" // every --target
)

// Prepared is a run whose every input was checked before anything boots.
type Prepared struct {
	Options Options
	Driver  target.Driver
	Setup   target.Setup
	Profile *profile.Profile
	Checks  []conformance.Check
	// Detect holds the security profiles DD-D01 evaluates (nil: none),
	// Baseline the fleet recordings of their statistical thresholds.
	Detect   *detect.Definitions
	Baseline detect.Baseline
}

// Prepare checks everything about a run that can be known before it
// boots: the target and its settings, the checks selected, the device
// profile, the faults, variables and numbers, and the firmware file. Its
// errors wrap harness.ErrUsage (exit 2), except what the lab decides (a
// board that is not attached: harness.ErrLab), for which the returned
// Prepared still carries the selected checks.
func Prepare(o Options) (*Prepared, error) {
	p := &Prepared{Options: o}
	usage := func(format string, args ...any) (*Prepared, error) {
		return p, harness.UsageError(fmt.Errorf(format, args...))
	}
	if o.Periods < 0 {
		return usage("--periods %d: want at least 1", o.Periods)
	}
	if o.Periods == 0 {
		p.Options.Periods = 5
	}
	if o.OutDir == "" {
		return usage("no output folder (--out)")
	}
	var err error
	if p.Checks, err = conformance.Select(o.Only); err != nil {
		return usage("%v", err)
	}
	d, ok := target.Lookup(o.Target)
	if !ok {
		return usage("%v", target.UnknownError(o.Target))
	}
	p.Driver = d
	if err := checkVars(o.Vars); err != nil {
		return usage("%v", err)
	}
	if err := checkExpect(o.Expect); err != nil {
		return usage("%v", err)
	}
	if err := checkSettingsKnown(d, o.Settings); err != nil {
		return usage("%v", err)
	}
	// The board driver picks the board, and with it the profile and
	// firmware, from the hardware map: its map must be valid first.
	if d.Validate != nil && o.Profile == "" {
		if err := d.Validate(o.Settings); err != nil {
			return usage("target %s: %v", d.Name, err)
		}
	}
	p.Setup = target.Setup{Firmware: o.Firmware, Profile: o.Profile, OutDir: o.OutDir, Settings: o.Settings}
	if p.Setup.Settings == nil {
		p.Setup.Settings = target.Settings{}
	}
	if d.Prepare != nil {
		if err := d.Prepare(&p.Setup); err != nil {
			if errors.Is(err, harness.ErrLab) {
				return p, err
			}
			return usage("%v", err)
		}
	}
	if p.Setup.Profile == "" {
		return usage("no device profile (--profile)")
	}
	if p.Profile, err = profile.Load(p.Setup.Profile); err != nil {
		return usage("%v", err)
	}
	p.Options.Profile = p.Setup.Profile
	// Every block of the profile's target section must make sense, not
	// only the selected target's: a misspelt one would be silently unused.
	for name, block := range p.Profile.Target {
		other, ok := target.Lookup(name)
		if !ok {
			return usage("profile %s: target.%s: %v", p.Setup.Profile, name, target.UnknownError(name))
		}
		if _, err := target.FromProfile(other, block, filepath.Dir(p.Setup.Profile)); err != nil {
			return usage("profile %s: %v", p.Setup.Profile, err)
		}
	}
	// The profile's target block, then the run's own settings.
	fromProfile, err := target.FromProfile(d, p.Profile.Target[d.Name], filepath.Dir(p.Setup.Profile))
	if err != nil {
		return usage("profile %s: %v", p.Setup.Profile, err)
	}
	p.Setup.Settings = fromProfile.With(o.Settings)
	if d.Validate != nil {
		if err := d.Validate(p.Setup.Settings); err != nil {
			return usage("target %s: %v", d.Name, err)
		}
	}
	if err := checkFaults(p.Profile, o.Faults); err != nil {
		return usage("%v", err)
	}
	// Security profiles, baselines and audit inputs: a bad one is a
	// usage mistake, told before anything boots.
	paths := append(append([]string(nil), o.SecurityProfiles...), p.Profile.SecurityProfilePaths()...)
	if p.Detect, p.Baseline, err = loadDetect(paths, o.Baselines); err != nil {
		return p, harness.UsageError(err)
	}
	if err := checkAuditInputs(o); err != nil {
		return p, harness.UsageError(err)
	}
	if p.Setup.Firmware == "" && d.DefaultFirmware != nil {
		p.Setup.Firmware = referencePath(d.DefaultFirmware(p.Setup.Settings))
	}
	if p.Setup.Firmware == "" {
		return usage("target %s: no firmware: pass --firmware <ELF>", d.Name)
	}
	// Emulators run in their own working directory: hand them absolute paths.
	if abs, err := filepath.Abs(p.Setup.Firmware); err == nil {
		p.Setup.Firmware = abs
	}
	if _, err := firmware.Check(p.Setup.Firmware); err != nil {
		return usage("%v", err)
	}
	p.Options.Firmware = p.Setup.Firmware
	p.Options.Settings = p.Setup.Settings
	return p, nil
}

// Probe asks the prepared target's driver whether it can run here now.
func (p *Prepared) Probe(ctx context.Context) target.Availability {
	return p.Driver.Probe(ctx, &p.Setup)
}

// checkSettingsKnown refuses settings of another driver (--renode with
// --target qemu is a mistake, not something to ignore).
func checkSettingsKnown(d target.Driver, s target.Settings) error {
	for flag, v := range s {
		if len(v) == 0 {
			continue
		}
		if !slices.ContainsFunc(d.Options, func(o target.Option) bool { return o.Flag == flag }) {
			return fmt.Errorf("--%s does not apply to target %s", flag, d.Name)
		}
	}
	return nil
}

// checkVars validates the variables every Defender agent shares.
func checkVars(v profile.Vars) error {
	if f := v["format"]; f != "" && f != "json" && f != "cbor" {
		return fmt.Errorf("--format %q: want json or cbor", f)
	}
	if k := v["keys"]; k != "" && k != "long" && k != "short" {
		return fmt.Errorf("--keys %q: want long or short", k)
	}
	if ms := v["period_ms"]; ms != "" {
		n, err := strconv.Atoi(ms)
		if err != nil || n < 100 || n > 24*3600*1000 {
			return fmt.Errorf("--period-ms %s: want a whole number of milliseconds from 100 to 86400000", ms)
		}
	}
	if t, ok := v["thing"]; ok && (t == "" || len(t) > 128 || strings.ContainsAny(t, "/#+ ")) {
		return fmt.Errorf("--thing %q: a thing name is 1 to 128 characters without / # + or spaces", t)
	}
	return nil
}

// checkExpect validates expectation overrides.
func checkExpect(e conformance.Expectations) error {
	switch {
	case e.Tolerance < 0 || e.Tolerance >= 1:
		return fmt.Errorf("--tolerance %g: want a fraction from 0 to 1, e.g. 0.1", e.Tolerance)
	case e.ProductionPeriod < 0:
		return fmt.Errorf("--production-period %s: must be positive", e.ProductionPeriod)
	case e.FirstReportBound < 0:
		return fmt.Errorf("--first-report-bound %s: must be positive", e.FirstReportBound)
	case e.ReconnectBound < 0:
		return fmt.Errorf("--reconnect-bound %s: must be positive", e.ReconnectBound)
	}
	return nil
}

// checkFaults: faults need the profile's fault command, and a profile that
// lists its firmware's faults refuses any other name.
func checkFaults(p *profile.Profile, faults []string) error {
	if len(faults) == 0 {
		return nil
	}
	if p.FaultStep == nil {
		return fmt.Errorf("--fault: profile %s has no fault command (fault:)", p.Name)
	}
	if len(p.Faults) == 0 {
		return nil
	}
	for _, f := range faults {
		if !slices.Contains(p.Faults, f) {
			return fmt.Errorf("--fault %q: not a fault of %s (known: %s)", f, p.Name, strings.Join(p.Faults, ", "))
		}
	}
	return nil
}

// referencePath resolves a path of ddhil's own tree (the reference agent's
// builds): from the working directory when it is there (the repository
// root, as `ddhil run` is used), else from the ddhil module's source root
// (go test runs in a package directory; a user's module with a replace to
// a ddhil checkout).
func referencePath(rel string) string {
	if rel == "" || filepath.IsAbs(rel) {
		return rel
	}
	if _, err := os.Stat(rel); err == nil {
		return rel
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return rel
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, rel)); err == nil {
		return filepath.Join(root, rel)
	}
	return rel
}
