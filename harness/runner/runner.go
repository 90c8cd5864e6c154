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
	"strings"
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
	"github.com/ddhil/ddhil/internal/version"
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
	// Settings are the target driver's options (its CLI flags, see
	// target.Driver.Options); they override the profile's target block.
	Settings target.Settings
	// Screenshot renders report.png with headless Chromium when available.
	Screenshot bool
	// SecurityProfiles are Detect definition files (security profiles,
	// custom metrics, dimensions in AWS JSON) evaluated by DD-D01, on top
	// of the device profile's security_profiles. An invalid one stops the
	// run before anything boots with an error wrapping
	// detect.ErrInvalidProfile.
	SecurityProfiles []string
	// Baselines are fleet recordings (events.jsonl) for statistical
	// thresholds.
	Baselines []string
	// Audit runs the device-facing Audit checks on the run; IoTPolicies
	// (policy documents) and Revoked (CRLs or lists) feed them.
	Audit       bool
	IoTPolicies []string
	Revoked     []string
	// BrokerPolicy is broker.PolicyOpen ("" too) or broker.PolicyStrict
	// (a device may use only its own thing's topics; a breach is an
	// authorization failure, as DD-D01's dd-bad-topic needs).
	BrokerPolicy string
	// Command is the command line recorded in the report.
	Command []string
	// Progress receives one line per phase (nil: discarded).
	Progress io.Writer
}

// Version is the tool version written into reports.
var Version = version.Read().String()

// Run performs the run and writes every report into o.OutDir. The returned
// report carries the verdict (report.ExitCode); err is non-nil only when
// the reports themselves could not be written. A lab failure is a report
// with verdict "error", not an err.
func Run(ctx context.Context, o Options) (*report.Report, error) {
	started := time.Now()
	rep := newReport(started)
	rep.Run.Command = o.Command
	logf := func(format string, args ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
		}
	}
	p, err := Prepare(o)
	if errors.Is(err, harness.ErrUsage) {
		return nil, err // nothing started, nothing written
	}
	o = p.Options
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	if err != nil {
		// The lab failed before anything started (a board not attached):
		// still a report, verdict error.
		finish(rep, nil, p.Checks, err, nil, started)
		if werr := report.WriteAll(o.OutDir, rep); werr != nil {
			return rep, fmt.Errorf("runner: writing reports: %w", werr)
		}
		logf("verdict %s: %s", rep.Verdict(), rep.VerdictReason())
		return rep, nil
	}
	hostStart, _ := hostload.Read()
	capture, labErr := execute(ctx, p, rep, logf)
	checks := p.Checks
	finish(rep, capture, checks, labErr, ctx.Err(), started)
	recordHost(rep, capture, hostStart)
	judged := rep.Run.TargetClock
	if judged == "" {
		judged = "host time"
	}
	logf("host: %s; timing judged on %s", rep.Run.HostLoad, judged)
	if capture != nil {
		fillDetect(rep, capture, started)
		if err := fillAudit(rep, capture, o, started); err != nil {
			logf("audit: %v", err)
		}
	}
	if err := report.WriteAll(o.OutDir, rep); err != nil {
		return rep, fmt.Errorf("runner: writing reports: %w", err)
	}
	if o.Screenshot && ctx.Err() == nil {
		screenshot(o.OutDir, logf)
	}
	logf("verdict %s: %s", rep.Verdict(), rep.VerdictReason())
	return rep, nil
}

// Judge evaluates checks on a capture and returns the report, as a run
// would write it (hiltest uses it for the reports it keeps).
func Judge(c *conformance.Capture, checks []conformance.Check, started time.Time) *report.Report {
	rep := newReport(started)
	finish(rep, c, checks, nil, nil, started)
	return rep
}

// newReport is a report of a run that started at started, on this host.
func newReport(started time.Time) *report.Report {
	rep := report.New()
	rep.Run.ToolVersion = Version
	rep.Run.Started = started
	rep.Run.Clock = "wall"
	rep.Run.Host, _ = os.Hostname()
	return rep
}

// Describe fills what a report says about the run's inputs: the target,
// the profile and the firmware (with its hash).
func Describe(rep *report.Report, p *Prepared, t target.Target) {
	if t != nil {
		rep.Target = t.Info()
	}
	if p.Profile != nil {
		rep.Profile = report.Profile{Name: p.Profile.Name, Path: p.Options.Profile}
	}
	if fw, err := hashFile(p.Options.Firmware); err == nil {
		rep.Firmware = fw
	}
}

// execute runs target + session + scenario and returns what was captured
// (possibly partial) and the lab error that stopped it, if any.
func execute(ctx context.Context, p *Prepared, rep *report.Report, logf func(string, ...any)) (*conformance.Capture, error) {
	o, prof := p.Options, p.Profile
	rep.Profile = report.Profile{Name: prof.Name, Path: o.Profile}
	fw, err := hashFile(o.Firmware)
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("runner: firmware: %w", err))
	}
	rep.Firmware = fw

	targetLog, err := os.Create(filepath.Join(o.OutDir, "target.log"))
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("runner: %w", err))
	}
	defer targetLog.Close()
	rep.Target.Kind = o.Target
	p.Setup.Log = targetLog
	if av := p.Driver.Probe(ctx, &p.Setup); av.State != target.Available {
		return nil, harness.LabError(errors.New(av.Reason))
	}
	target, err := p.Driver.New(&p.Setup)
	if err != nil {
		return nil, harness.LabError(err)
	}
	rep.Target = target.Info()

	vars := profile.Vars{"thing": "ddhil-dut-1"}
	for k, v := range o.Vars {
		vars[k] = v
	}
	logf("starting %s target with %s", o.Target, filepath.Base(o.Firmware))
	cfg := session.Config{
		Target:       target,
		BrokerConfig: broker.Config{Throttle: broker.NoThrottle, Policy: o.BrokerPolicy},
		Profile:      prof,
		Vars:         vars,
		Faults:       o.Faults,
		OutDir:       o.OutDir,
		Logf:         logf,
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
		capture.SecurityProfiles, capture.Baseline = p.Detect, p.Baseline
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
			Status: report.StatusFail, Measured: "console and target watched for a crash for the whole run",
			Findings: []report.Finding{{Message: runErr.Error(), Expected: "runs until the harness stops it", Observed: "crashed"}}})
	}
	if c == nil {
		// Nothing was captured: a crash is still the firmware's failure
		// (the checks could not judge: skip); anything else is the lab's.
		for _, ch := range checks {
			rc := report.Check{ID: ch.ID, Title: ch.Title, Severity: ch.Severity, Citation: ch.Citation, Findings: []report.Finding{}}
			if crashed {
				rc.Status, rc.SkipReason = report.StatusSkip, "the firmware crashed before anything could be judged"
			} else {
				rc.Status, rc.Error = report.StatusError, "no capture: "+firstNonEmpty(rep.Run.LabError, rep.Run.IncompleteReason, "the run did not start")
			}
			rep.Checks = append(rep.Checks, rc)
		}
		return
	}
	stopped := c.Stopped
	if ctxErr != nil || runErr != nil {
		stopped = "" // an interrupted or broken run did not get to show it
	}
	rep.Run.Stopped = stopped
	if failed := c.ActionsOf(conformance.ActionStepFailed); len(failed) > 0 || stopped != "" {
		// A scenario step the device did not complete is the firmware's
		// failure, in every report format.
		rc := report.Check{ID: "DD-SCN", Title: "Scenario steps completed", Category: "other", Severity: report.SeverityFail,
			Status: report.StatusFail, Findings: []report.Finding{},
			Measured: fmt.Sprintf("%d scenario step(s) not completed", len(failed))}
		if stopped != "" {
			rc.Measured = "the device never reached the broker"
			rc.Findings = append(rc.Findings, report.Finding{Message: "no report reached the broker: " + stopped,
				Expected: "Wi-Fi joined, MQTT connected, reports published", Observed: stopped})
		}
		for _, a := range failed {
			at := a.At
			phase, what, _ := strings.Cut(a.Detail, ": ")
			rc.Findings = append(rc.Findings, report.Finding{Message: a.Detail, At: &at,
				Expected: "the device completes the " + phase + " step", Observed: what})
		}
		rep.Checks = append(rep.Checks, rc)
	}
	results := conformance.Evaluate(c, checks)
	for _, r := range results {
		rep.Checks = append(rep.Checks, checkOf(r))
	}
	fillTimeline(rep, c, started)
	fillATExchange(rep, c, started)
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
