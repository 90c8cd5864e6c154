// Package hiltest runs firmware under ddhil from a user's own `go test`
// suite, the way net/http/httptest runs a server: Start boots the device on
// the target chosen by flags, provisions it and hands back a DUT whose
// reports, console and emulated cloud the test asserts on.
//
// The target comes from flags (registered here, so `go test ./... -args
// -ddhil.target=renode` works in any module) or DDHIL_* variables:
//
//	-ddhil.target=qemu|renode|board   DDHIL_TARGET (default qemu)
//	-ddhil.<option>                   DDHIL_<OPTION>, one per driver option
//	                                  (-ddhil.renode, -ddhil.hwmap, -ddhil.qemu-machine ...)
//
// A target that cannot run here (no emulator, no Docker engine, no board
// attached) skips the test with the reason and how to install it, unless
// DDHIL_REQUIRE_TARGET=1 (a CI job that must run on it): then it fails. Every
// process is reaped in t.Cleanup. With DDHIL_OUT=dir, each test's recordings
// and conformance reports are kept in dir/<test name>.
package hiltest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/judge/verdict"
	"github.com/ddhil/ddhil/harness/link/console"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/session"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/internal/syncbuf"
)

// Options describe the device under test.
type Options struct {
	// Profile is the device profile (YAML), relative to the test's
	// package directory unless absolute. Required.
	Profile string
	// Firmware is the ELF; empty: the target's build of ddhil's reference
	// agent (when the ddhil module is a local checkout with it built).
	Firmware string
	// Vars override the profile's variables; "thing" defaults to a name
	// made from the test's name, so parallel tests do not collide.
	Vars map[string]string
	// Faults are firmware faults switched on during provisioning
	// (the reference agent's: see `ddhil run -h`).
	Faults []string
	// Settings are target driver options the test needs (e.g. a QEMU
	// machine); flags and DDHIL_* variables override them.
	Settings target.Settings
	// Broker configures the emulated service; the zero value turns the
	// throttle off (AWS allows one report per 300 s; tests report faster).
	Broker *broker.Config
	// SecurityProfiles are Detect security profiles (AWS JSON) DD-D01
	// evaluates, besides the device profile's own security_profiles.
	SecurityProfiles []string
	// SkipProvision leaves the firmware as it boots.
	SkipProvision bool
	// Timeout bounds Start and each wait (default 60 s).
	Timeout time.Duration
}

// Report is one Device Defender report the emulated service received.
type Report struct {
	broker.Event
	// ID is the report_id (0 when the header did not parse).
	ID uint64
	// Accepted is true when the service answered /accepted.
	Accepted bool
}

// Result is one check's outcome.
type Result struct {
	ID       string
	Status   verdict.Status // verdict.StatusPass ("pass"), fail, warn, skip or error
	Findings []conformance.Finding
	Reason   string // why it skipped or errored
}

// DUT is a started device under test.
type DUT struct {
	t        testing.TB
	s        *session.Session
	o        Options
	outDir   string
	started  time.Time
	prepared *runner.Prepared
	target   target.Target
}

// Start boots, provisions and returns the device; it fails t on any error
// (usage mistakes, a firmware that does not boot) and skips t when the
// target cannot run here.
func Start(t testing.TB, o Options) *DUT {
	t.Helper()
	if o.Profile == "" {
		t.Fatal("hiltest: Options.Profile is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	sel := Selected()
	vars := map[string]string{"thing": thingName(t.Name())}
	for k, v := range o.Vars {
		vars[k] = v
	}
	out := outDir(t)
	p, err := runner.Prepare(runner.Options{Target: sel.Target, Profile: o.Profile, Firmware: o.Firmware,
		OutDir: out, Vars: vars, Faults: o.Faults, Settings: o.Settings.With(sel.Settings), SecurityProfiles: o.SecurityProfiles})
	if err != nil {
		t.Fatalf("hiltest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	switch av := p.Probe(ctx); av.State {
	case target.Skip:
		if Required() {
			t.Fatalf("hiltest: target %s is required (DDHIL_REQUIRE_TARGET) but not available: %s", sel.Target, av.Reason)
		}
		t.Skipf("hiltest: target %s is not available here: %s", sel.Target, av.Reason)
	case target.Broken:
		t.Fatalf("hiltest: target %s: lab error: %s", sel.Target, av.Reason)
	}
	log := &syncbuf.Buffer{}
	p.Setup.Log = log
	tgt, err := p.Driver.New(&p.Setup)
	if err != nil {
		t.Fatalf("hiltest: target %s: %v", sel.Target, err)
	}
	bc := broker.Config{Throttle: broker.NoThrottle}
	if o.Broker != nil {
		bc = *o.Broker
	}
	d := &DUT{t: t, o: o, outDir: out, started: time.Now(), prepared: p, target: tgt}
	d.s, err = session.Start(ctx, session.Config{Target: tgt, BrokerConfig: bc, Profile: p.Profile,
		Vars: vars, Faults: o.Faults, OutDir: out, SkipProvision: o.SkipProvision, Logf: t.Logf})
	t.Cleanup(func() { d.close(log) })
	if err != nil {
		t.Fatalf("hiltest: start: %v", err)
	}
	return d
}

func (d *DUT) close(log *syncbuf.Buffer) {
	if d.s == nil {
		return
	}
	if d.t.Failed() {
		if c := d.s.Console(); c != nil {
			d.t.Logf("console tail:\n%s", c.Tail(40))
		}
		if log.Len() > 0 {
			d.t.Logf("target output:\n%s", tail(log.String(), 4096))
		}
	}
	keep := os.Getenv("DDHIL_OUT") != ""
	var capture *conformance.Capture
	if keep {
		capture, _ = d.capture()
	}
	if err := d.s.Close(); err != nil {
		d.t.Errorf("hiltest: closing the session: %v", err)
	}
	if keep && capture != nil {
		rep := runner.Judge(capture, conformance.Catalogue(), d.started)
		runner.Describe(rep, d.prepared, d.target)
		rep.Run.Command = []string{"go", "test", "-run", d.t.Name()}
		if err := report.WriteAll(d.outDir, rep); err != nil {
			d.t.Errorf("hiltest: writing reports: %v", err)
		} else {
			d.t.Logf("hiltest: reports in %s", d.outDir)
		}
	}
}

// capture is the session's capture with the run's security profiles.
func (d *DUT) capture() (*conformance.Capture, error) {
	c, err := d.s.Capture()
	if err == nil {
		c.SecurityProfiles, c.Baseline = d.prepared.Detect, d.prepared.Baseline
	}
	return c, err
}

// WaitReports waits for n reports of the device since Start (or the last
// Reset) and returns them; on timeout it fails the test with the console
// tail.
func (d *DUT) WaitReports(n int) []Report {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d.o.Timeout)
	defer cancel()
	evs, err := d.s.WaitReports(ctx, n)
	if err != nil {
		d.t.Fatalf("hiltest: waiting for %d reports: %v", n, err)
	}
	d.s.Mark()
	out := make([]Report, len(evs))
	for i, ev := range evs {
		out[i] = Report{Event: ev}
		if ev.Result != nil {
			out[i].ID = ev.Result.ReportID
			out[i].Accepted = ev.Result.Accepted()
		}
	}
	return out
}

// Expect waits for a console line matching the regexp and returns it.
func (d *DUT) Expect(pattern string) console.Line {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d.o.Timeout)
	defer cancel()
	l, err := d.s.Console().Expect(ctx, regexp.MustCompile(pattern))
	if err != nil {
		d.t.Fatalf("hiltest: console never printed /%s/: %v\nconsole tail:\n%s", pattern, err, d.s.Console().Tail(20))
	}
	return l
}

// Console is the firmware's console, expect-style.
func (d *DUT) Console() *console.Console { return d.s.Console() }

// Broker is the emulated AWS IoT Core + Device Defender service: kick the
// device, inject faults, read its events.
func (d *DUT) Broker() *broker.Broker { return d.s.Broker() }

// Session is the whole run: target, module, provisioning, capture.
func (d *DUT) Session() *session.Session { return d.s }

// Thing is the device's thing name.
func (d *DUT) Thing() string { return d.s.Vars()["thing"] }

// Reset restarts the firmware as a hardware reset would and waits for it
// to boot; later waits count reports from here.
func (d *DUT) Reset() {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d.o.Timeout)
	defer cancel()
	if err := d.s.Reset(ctx); err != nil {
		d.t.Fatalf("hiltest: reset: %v", err)
	}
	d.s.Mark()
}

// Evaluate judges what was captured so far against the checks named (the
// whole catalogue when none are): checks whose situation did not occur
// (no broker kick, no reset) skip.
func (d *DUT) Evaluate(ids ...string) []Result {
	d.t.Helper()
	checks, err := conformance.Select(ids)
	if err != nil {
		d.t.Fatalf("hiltest: %v", err)
	}
	c, err := d.capture()
	if err != nil {
		d.t.Fatalf("hiltest: capture: %v", err)
	}
	var out []Result
	for _, r := range conformance.Evaluate(c, checks) {
		reason := r.SkipReason
		if r.Error != "" {
			reason = r.Error
		}
		out = append(out, Result{ID: r.Check.ID, Status: r.Status, Findings: r.Findings, Reason: reason})
	}
	return out
}

// RequireConformance fails t, listing every finding, unless each named
// check (the whole catalogue when none are named) passes or skips.
func RequireConformance(t testing.TB, d *DUT, ids ...string) {
	t.Helper()
	var bad []string
	for _, r := range d.Evaluate(ids...) {
		switch r.Status {
		case verdict.StatusPass, verdict.StatusSkip:
			continue
		}
		line := fmt.Sprintf("%s %s", r.ID, r.Status)
		if r.Reason != "" {
			line += ": " + r.Reason
		}
		for _, f := range r.Findings {
			line += "\n    - " + f.Message
		}
		bad = append(bad, line)
	}
	if len(bad) > 0 {
		t.Fatalf("hiltest: not conformant:\n  %s", strings.Join(bad, "\n  "))
	}
}

// outDir is $DDHIL_OUT/<test name> (relative to the working directory)
// or a temporary directory.
func outDir(t testing.TB) string {
	base := os.Getenv("DDHIL_OUT")
	if base == "" {
		return t.TempDir()
	}
	return filepath.Join(base, strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == ':' {
			return '_'
		}
		return r
	}, t.Name()))
}

var thingUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// thingName turns a test name into a valid, short thing name.
func thingName(test string) string {
	n := strings.Trim(thingUnsafe.ReplaceAllString(strings.ToLower(test), "-"), "-")
	if len(n) > 60 {
		n = n[len(n)-60:]
	}
	return "dut-" + n
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
