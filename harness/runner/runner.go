// Package runner is one conformance run from start to verdict: it builds the
// target, starts a session (broker, emulated module, console, provisioning),
// plays the scenario, evaluates the catalogue on the capture and writes the
// reports. `ddhil run` and the fault-proof suite both call Run, so a verdict
// means the same thing from the CLI and from `go test`.
package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/hostload"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/scenario"
	"github.com/ddhil/ddhil/harness/session"
	"github.com/ddhil/ddhil/harness/target"
)

// Options describe one run. Target, Firmware and Profile are required;
// a target's preparer may fill Firmware and Profile (the board target takes
// them from the hardware map).
type Options struct {
	Target   string // qemu | renode | board
	Firmware string // ELF path
	Profile  string // device profile YAML
	OutDir   string // where the reports go (created)
	// Periods is the number of report intervals of the normal phase.
	Periods int
	// Only limits the checks (IDs); empty means the whole catalogue.
	Only []string
	// Faults are reference-firmware faults switched on after provisioning
	// (before the reset that applies the configuration).
	Faults []string
	// Vars override the profile's variables (thing, format, keys, period_ms...).
	Vars profile.Vars
	// Expect overrides the profile's expectations field by field (zero
	// fields keep the profile's value).
	Expect conformance.Expectations
	// Plan overrides the scenario (default scenario.Full(Periods)).
	Plan *scenario.Plan
	// Target-specific settings.
	QEMUBinary   string
	RenodeBinary string
	RenodeImage  string
	// Compress runs Renode with time compression (docs/timing.md).
	Compress bool
	// StepSlice, with Compress, steps Renode's virtual time in slices run
	// only while the emulated module is idle (docs/timing.md).
	StepSlice time.Duration
	// TickSymbol names the firmware's millisecond counter QEMU reads as the
	// target clock (default ticks_lo when the ELF has it; "-": none).
	TickSymbol string
	HWMap      string
	Board      string
	// Screenshot renders report.png with headless Chromium when available.
	Screenshot bool
	// Command is the command line recorded in the report.
	Command []string
	// Progress receives one line per phase (nil: discarded).
	Progress io.Writer
}

// TargetFactory builds an unstarted target for a run.
type TargetFactory func(o Options, log io.Writer) (target.Target, error)

// Targets maps --target names to factories; drivers register in their own
// files of this package.
var Targets = map[string]TargetFactory{}

// TargetPreparer completes the options of a run before anything starts.
type TargetPreparer func(o *Options) error

// Preparers holds the optional preparers of targets, by --target name.
var Preparers = map[string]TargetPreparer{}

// SessionConfigurer is a target that needs its session set up for it (a
// network board: the broker's TLS listener on the bench LAN, the endpoint).
type SessionConfigurer interface {
	ConfigureSession(cfg *session.Config) error
}

// Version is the tool version written into reports.
var Version = "dev"

// Run performs the run and writes every report into o.OutDir. The returned
// report carries the verdict (report.ExitCode); err is non-nil only when
// the reports themselves could not be written. A lab failure is a report
// with verdict "error", not an err.
func Run(ctx context.Context, o Options) (*report.Report, error) {
	started := time.Now()
	rep := report.New()
	rep.Run.ToolVersion = Version
	rep.Run.Started = started
	rep.Run.Clock = "wall"
	rep.Run.Command = o.Command
	rep.Run.Host, _ = os.Hostname()
	if o.Periods <= 0 {
		o.Periods = 5
	}
	logf := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
		}
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}

	checks, err := conformance.Select(o.Only)
	if err != nil {
		return nil, err
	}
	hostStart, _ := hostload.Read()
	capture, labErr := execute(ctx, o, rep, logf)
	finish(rep, capture, checks, labErr, ctx.Err(), started)
	recordHost(rep, capture, hostStart)
	judged := rep.Run.TargetClock
	if judged == "" {
		judged = "host time"
	}
	logf("host: %s; timing judged on %s", rep.Run.HostLoad, judged)
	if err := report.WriteAll(o.OutDir, rep); err != nil {
		return rep, fmt.Errorf("runner: writing reports: %w", err)
	}
	if o.Screenshot && ctx.Err() == nil {
		screenshot(o.OutDir, logf)
	}
	logf("verdict %s: %s", rep.Verdict(), rep.VerdictReason())
	return rep, nil
}

// execute runs target + session + scenario and returns what was captured
// (possibly partial) and the lab error that stopped it, if any.
func execute(ctx context.Context, o Options, rep *report.Report, logf func(string, ...any)) (*conformance.Capture, error) {
	if prepare := Preparers[o.Target]; prepare != nil {
		if err := prepare(&o); err != nil {
			return nil, harness.LabError(err)
		}
	}
	prof, err := profile.Load(o.Profile)
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("runner: profile: %w", err))
	}
	rep.Profile = report.Profile{Name: prof.Name, Path: o.Profile}
	// Emulators run in their own working directory: hand them absolute paths.
	if abs, err := filepath.Abs(o.Firmware); err == nil {
		o.Firmware = abs
	}
	fw, err := hashFile(o.Firmware)
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("runner: firmware: %w", err))
	}
	rep.Firmware = fw

	factory, ok := Targets[o.Target]
	if !ok {
		return nil, harness.LabError(fmt.Errorf("runner: unknown target %q (known: %s)", o.Target, knownTargets()))
	}
	targetLog, err := os.Create(filepath.Join(o.OutDir, "target.log"))
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("runner: %w", err))
	}
	defer targetLog.Close()
	rep.Target.Kind = o.Target
	target, err := factory(o, targetLog)
	if err != nil {
		return nil, err
	}
	rep.Target = target.Info()

	vars := profile.Vars{"thing": "ddhil-dut-1"}
	for k, v := range o.Vars {
		vars[k] = v
	}
	logf("starting %s target with %s", o.Target, filepath.Base(o.Firmware))
	cfg := session.Config{
		Target:       target,
		BrokerConfig: broker.Config{Throttle: broker.NoThrottle},
		Profile:      prof,
		Vars:         vars,
		Faults:       o.Faults,
		OutDir:       o.OutDir,
		Logf:         logf,
	}
	if o.Compress {
		// The module's power-up delay runs on host time: at a 34× speed-up
		// 300 ms would be 10 s of the firmware's time, near its 15 s AT
		// sync limit. Keep it short against every firmware timeout.
		cfg.Module.ReadyDelay = 10 * time.Millisecond
	}
	if sc, ok := target.(SessionConfigurer); ok {
		if err := sc.ConfigureSession(&cfg); err != nil {
			_ = target.Close()
			return nil, harness.LabError(err)
		}
	}
	s, err := session.Start(ctx, cfg)
	if err != nil {
		rep.Target = target.Info() // e.g. the emulator version, even when the firmware never booted
		if s == nil {
			_ = target.Close()
		}
		return nil, err
	}
	rep.Target = target.Info()
	var capture *conformance.Capture
	defer func() {
		if cerr := s.Close(); cerr != nil {
			logf("closing session: %v", cerr)
		}
	}()

	exp, err := prof.Expectations(s.Vars())
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("runner: %w", err))
	}
	exp = overrideExpectations(exp, o.Expect)
	fillExpectations(rep, s.Vars(), exp)
	plan := scenario.Full(o.Periods)
	if o.Plan != nil {
		plan = *o.Plan
	}
	logf("scenario: %s", plan)
	runErr := scenario.Run(ctx, s, scenario.Config{Thing: s.Vars()["thing"], Expect: exp, Logf: logf}, plan)
	capture, cerr := s.Capture()
	if cerr != nil && runErr == nil {
		runErr = harness.LabError(cerr)
	}
	if capture != nil {
		capture.Expect = exp
	}
	return capture, runErr
}

// recordHost puts the host's CPUs, load, steal time and the stalls it
// caused into the report: a timing verdict is only as good as its host.
func recordHost(rep *report.Report, c *conformance.Capture, start hostload.Snapshot) {
	end, _ := hostload.Read()
	rec := hostload.Between(start, end)
	if c != nil {
		var samples []hostload.Sample
		for _, st := range c.Stalls {
			samples = append(samples, hostload.Sample{At: st.At, Emulator: st.Emulator, Harness: st.Harness})
		}
		hostload.Summarise(&rec, samples)
		if tb := c.TimeBase(); tb != "host" {
			rep.Run.TargetClock = tb
		}
	}
	rep.Run.HostLoad = &rec
}

// finish evaluates the checks and fills the report.
func finish(rep *report.Report, c *conformance.Capture, checks []conformance.Check, runErr, ctxErr error, started time.Time) {
	rep.Run.Finished = time.Now()
	rep.Run.Duration = rep.Run.Finished.Sub(started)
	switch {
	case ctxErr != nil:
		rep.Run.Incomplete = true
		rep.Run.IncompleteReason = "interrupted: " + ctxErr.Error()
	case runErr != nil && errors.Is(runErr, harness.ErrFirmwareCrash):
		// A crash is the firmware's failure: judged below, and recorded.
		rep.Run.Incomplete = true
		rep.Run.IncompleteReason = "firmware crashed: " + runErr.Error()
	case runErr != nil && !errors.Is(runErr, context.Canceled):
		rep.Run.LabError = runErr.Error()
		rep.Run.Incomplete = true
		rep.Run.IncompleteReason = "lab error"
	}
	crashed := runErr != nil && errors.Is(runErr, harness.ErrFirmwareCrash)
	if crashed {
		rep.Checks = append(rep.Checks, report.Check{ID: "DD-RUN", Title: "Firmware keeps running", Category: "other", Severity: report.SeverityFail,
			Status: report.StatusFail, Findings: []report.Finding{{Message: runErr.Error()}}})
	}
	if c == nil {
		// Nothing was captured: a crash is still the firmware's failure
		// (the checks could not judge: skip); anything else is the lab's.
		for _, ch := range checks {
			rc := report.Check{ID: ch.ID, Title: ch.Title, Severity: report.Severity(ch.Severity), Citation: ch.Citation, Findings: []report.Finding{}}
			if crashed {
				rc.Status, rc.SkipReason = report.StatusSkip, "the firmware crashed before anything could be judged"
			} else {
				rc.Status, rc.Error = report.StatusError, "no capture: "+firstNonEmpty(rep.Run.LabError, rep.Run.IncompleteReason, "the run did not start")
			}
			rep.Checks = append(rep.Checks, rc)
		}
		return
	}
	results := conformance.Evaluate(c, checks)
	for _, r := range results {
		rep.Checks = append(rep.Checks, checkOf(r))
	}
	fillTimeline(rep, c, started)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func hashFile(path string) (report.Firmware, error) {
	f, err := os.Open(path)
	if err != nil {
		return report.Firmware{Path: path}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return report.Firmware{Path: path}, err
	}
	return report.Firmware{Path: path, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}

func knownTargets() string {
	s := ""
	for k := range Targets {
		if s != "" {
			s += ", "
		}
		s += k
	}
	return s
}

func fillExpectations(rep *report.Report, vars profile.Vars, e conformance.Expectations) {
	e = e.WithDefaults()
	ex := report.Expectations{Thing: vars["thing"], Period: e.TestPeriod, Tolerance: e.Tolerance,
		JitterP95: time.Duration(e.JitterP95 * float64(e.TestPeriod)), FirstReportBound: e.FirstReportBound,
		ReconnectBound: e.ReconnectBound, ListeningTCPPorts: []uint64{}, ListeningUDPPorts: []uint64{},
		Extra: map[string]string{"production_period": e.ProductionPeriod.String(), "transport": e.Transport}}
	if f := vars["format"]; f != "" {
		ex.Format = defenderFormat(f)
	}
	if e.ProductionPeriod > 0 {
		ex.PeriodScale = float64(e.ProductionPeriod) / float64(e.TestPeriod)
	}
	for _, p := range e.ListeningTCP {
		ex.ListeningTCPPorts = append(ex.ListeningTCPPorts, uint64(p))
	}
	for _, p := range e.ListeningUDP {
		ex.ListeningUDPPorts = append(ex.ListeningUDPPorts, uint64(p))
	}
	for k, v := range vars {
		if k != "password" && k != "thing" {
			ex.Extra["var."+k] = v
		}
	}
	rep.Profile.Expect = ex
	rep.Schedule = &report.Schedule{Period: e.TestPeriod, Tolerance: e.Tolerance, FirstReportBound: e.FirstReportBound}
}

// overrideExpectations applies the non-zero fields of o over e.
func overrideExpectations(e, o conformance.Expectations) conformance.Expectations {
	if o.TestPeriod != 0 {
		e.TestPeriod = o.TestPeriod
	}
	if o.ProductionPeriod != 0 {
		e.ProductionPeriod = o.ProductionPeriod
	}
	if o.Tolerance != 0 {
		e.Tolerance = o.Tolerance
	}
	if o.JitterP95 != 0 {
		e.JitterP95 = o.JitterP95
	}
	if o.FirstReportBound != 0 {
		e.FirstReportBound = o.FirstReportBound
	}
	if o.ReconnectBound != 0 {
		e.ReconnectBound = o.ReconnectBound
	}
	if o.ListeningTCP != nil {
		e.ListeningTCP = o.ListeningTCP
	}
	if o.ListeningUDP != nil {
		e.ListeningUDP = o.ListeningUDP
	}
	if o.Transport != "" {
		e.Transport = o.Transport
	}
	return e
}
