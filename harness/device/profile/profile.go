// Package profile reads device profiles: how to talk to a firmware's console
// (prompt, line ending, log lines), how to provision it (commands with
// {{placeholders}} and the reply that proves each worked), how to commit and
// reset, which log lines mark reports, and what the conformance checks may
// expect of it. A profile makes the harness work with firmware other than
// the reference agent without code changes.
package profile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/link/console"
	"github.com/ddhil/ddhil/internal/yamlerr"
)

// Profile is one device profile file.
type Profile struct {
	Name           string            `yaml:"name"`
	Description    string            `yaml:"description"`
	Console        Console           `yaml:"console"`
	Boot           Boot              `yaml:"boot"`
	Defaults       map[string]string `yaml:"defaults"` // variable defaults, overridden per run
	ProvisionSteps []Step            `yaml:"provision"`
	CommitSteps    []Step            `yaml:"commit"`
	PKISteps       []PKIStep         `yaml:"pki"`   // after commit: on-device keys, CSR signed by the lab CA (pki.go)
	ResetStep      *Step             `yaml:"reset"` // console-driven reset; nil: the target's reset only
	FaultStep      *Step             `yaml:"fault"` // uses {{fault}} and {{state}} (on|off)
	Markers        Markers           `yaml:"markers"`
	Expect         Expect            `yaml:"expectations"`
	// Module describes the emulated Wi-Fi module the firmware expects.
	Module Module `yaml:"module"`
	// Faults are the names the firmware's fault command accepts (empty:
	// any name is passed through).
	Faults []string `yaml:"faults"`
	// Target holds per-driver target settings (target.qemu.machine ...),
	// checked by the driver when a run starts.
	Target map[string]map[string]any `yaml:"target"`
	// SecurityProfiles are Detect security profiles (AWS JSON) every run of
	// this device is evaluated against (DD-D01), relative to this file.
	SecurityProfiles []string `yaml:"security_profiles"`

	path   string
	signer Signer // set by WithSigner; the pki steps need it
}

// Console describes the CLI.
type Console struct {
	Prompt       string `yaml:"prompt"`
	LineEnding   string `yaml:"line_ending"`
	LogPattern   string `yaml:"log_pattern"`
	ErrorPattern string `yaml:"error_pattern"`
	// ValuePattern is what a variable's value must match to be sent (a CLI
	// that splits on spaces cannot take values with spaces).
	ValuePattern string `yaml:"value_pattern"`
	// SyncEmptyLine: an empty line makes the CLI print a fresh prompt, so
	// Provision can sync on it before the first command.
	SyncEmptyLine bool `yaml:"sync_empty_line"`
	// SyncCtrlC: Ctrl-C (0x03) clears the input line and prints CR LF and a
	// fresh prompt (the STM32 reference CLI, which ignores empty lines).
	SyncCtrlC bool `yaml:"sync_ctrl_c"`
}

// Boot describes how a (re)boot shows on the console.
type Boot struct {
	Marker  string   `yaml:"marker"` // regexp of the first line after reset
	Timeout Duration `yaml:"timeout"`
}

// Step is one console command and the reply that proves it worked.
type Step struct {
	Name    string   `yaml:"name"`
	Send    string   `yaml:"send"`    // placeholders are replaced verbatim
	Expect  string   `yaml:"expect"`  // regexp; placeholders are replaced quoted
	Timeout Duration `yaml:"timeout"` // default 5 s
	// Optional skips the step when one of its variables has no value.
	Optional bool `yaml:"optional"`
	// Markers are patterns (placeholders replaced quoted) that must show on
	// the console, in this order, between sending and the line matching
	// Expect, e.g. the stages of a reboot. Several may match one line.
	Markers []string `yaml:"markers"`
}

// Markers are log-line patterns with named groups the session uses.
type Markers struct {
	ReportPublished string `yaml:"report_published"` // groups: id (required), format, keys, bytes
	ReportAccepted  string `yaml:"report_accepted"`  // group: id
	ReportRejected  string `yaml:"report_rejected"`  // groups: id, code
	Connected       string `yaml:"connected"`
	Disconnected    string `yaml:"disconnected"`
	// ReportSending marks a report being published by firmware that logs
	// no report id (report_published needs one); no groups required.
	ReportSending string `yaml:"report_sending"`
	// ReportUnanswered: the firmware gave up waiting for a response.
	ReportUnanswered string `yaml:"report_unanswered"`
}

// Expect is the expectations block; string fields may hold placeholders.
type Expect struct {
	TestPeriod       string  `yaml:"test_period"` // duration, e.g. "{{period_ms}}ms"
	ProductionPeriod string  `yaml:"production_period"`
	Tolerance        float64 `yaml:"tolerance"`
	JitterP95        float64 `yaml:"jitter_p95"`
	FirstReportBound string  `yaml:"first_report_bound"`
	ReconnectBound   string  `yaml:"reconnect_bound"`
	ListeningTCP     []int   `yaml:"listening_tcp"`
	ListeningUDP     []int   `yaml:"listening_udp"`
	Transport        string  `yaml:"transport"` // module | network
	HeaderOverhead   int     `yaml:"header_overhead"`
	Endpoint         string  `yaml:"endpoint"` // host:port
	Format           string  `yaml:"format"`   // json | cbor
	KeyStyle         string  `yaml:"key_style"`
	// UnreportedMetrics are metric sections the firmware does not report
	// (conformance.UnreportedMetrics); their accuracy checks skip.
	UnreportedMetrics []string `yaml:"unreported_metrics"`
}

// Duration is a time.Duration written as "5s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads "1.5s", "300ms", ...
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// Vars are the values for {{placeholders}}.
type Vars map[string]string

var placeholder = regexp.MustCompile(`\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}`)

// Load reads and checks a profile file.
func Load(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("device profile %s: no such file", path)
		}
		return nil, fmt.Errorf("device profile %s: %w", path, err)
	}
	p, err := parse(b, path)
	if err != nil {
		return nil, err
	}
	p.path = path
	return p, nil
}

// Parse reads a profile from YAML and checks it; unknown keys are errors.
func Parse(b []byte) (*Profile, error) { return parse(b, "profile") }

// parse decodes and checks a profile; errors say file:line and the key as
// written in YAML.
func parse(b []byte, name string) (*Profile, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("device profile %w", yamlerr.Explain(err, name, &p))
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("device profile %s: %w", name, err)
	}
	return &p, nil
}

func (p *Profile) check() error {
	var errs []error
	if p.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	for name, pat := range map[string]string{
		"console.log_pattern": p.Console.LogPattern, "console.error_pattern": p.Console.ErrorPattern,
		"console.value_pattern": p.Console.ValuePattern, "boot.marker": p.Boot.Marker,
		"markers.report_published": p.Markers.ReportPublished, "markers.report_accepted": p.Markers.ReportAccepted,
		"markers.report_rejected": p.Markers.ReportRejected, "markers.connected": p.Markers.Connected,
		"markers.disconnected": p.Markers.Disconnected, "markers.report_sending": p.Markers.ReportSending,
		"markers.report_unanswered": p.Markers.ReportUnanswered,
	} {
		if pat == "" {
			continue
		}
		if _, err := regexp.Compile(pat); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if p.Boot.Marker == "" {
		errs = append(errs, errors.New("boot.marker is empty"))
	}
	if p.Markers.ReportPublished != "" {
		re, err := regexp.Compile(p.Markers.ReportPublished)
		if err == nil && re.SubexpIndex("id") < 0 {
			errs = append(errs, errors.New("markers.report_published has no (?P<id>...) group"))
		}
	}
	steps := map[string][]Step{"provision": p.ProvisionSteps, "commit": p.CommitSteps}
	if p.ResetStep != nil {
		steps["reset"] = []Step{*p.ResetStep}
	}
	if p.FaultStep != nil {
		steps["fault"] = []Step{*p.FaultStep}
	}
	for group, ss := range steps {
		for i, s := range ss {
			if s.Send == "" || s.Expect == "" {
				errs = append(errs, fmt.Errorf("%s step %d (%s): send and expect are required", group, i+1, s.Name))
				continue
			}
			// The pattern must compile once its placeholders hold text.
			if _, err := regexp.Compile(placeholder.ReplaceAllString(s.Expect, "x")); err != nil {
				errs = append(errs, fmt.Errorf("%s step %d (%s): expect: %w", group, i+1, s.Name, err))
			}
			for j, m := range s.Markers {
				if _, err := regexp.Compile(placeholder.ReplaceAllString(m, "x")); err != nil {
					errs = append(errs, fmt.Errorf("%s step %d (%s): marker %d: %w", group, i+1, s.Name, j+1, err))
				}
			}
		}
	}
	errs = append(errs, p.checkPKI()...)
	if p.Console.SyncEmptyLine && p.Console.SyncCtrlC {
		errs = append(errs, errors.New("console: sync_empty_line and sync_ctrl_c exclude each other"))
	}
	switch p.Module.Dialect {
	case "", "v2", "1.7":
	default:
		errs = append(errs, fmt.Errorf("module.dialect %q: want v2 or 1.7", p.Module.Dialect))
	}
	switch p.Expect.Transport {
	case "", "module", "network":
	default:
		errs = append(errs, fmt.Errorf("expectations.transport %q: want module or network", p.Expect.Transport))
	}
	return errors.Join(errs...)
}

// Module is the profile's module section.
type Module struct {
	// Dialect is the AT command set: "v2" (ESP-AT 2.x, default) or "1.7"
	// (ESP8266 NonOS AT 1.7, the _CUR/_DEF names).
	Dialect string `yaml:"dialect"`
	// Disabled are AT commands the module's firmware was built without,
	// answered ERROR (e.g. [AT+CWDHCP]).
	Disabled []string `yaml:"disabled"`
	// TLS gives the module a device certificate from a lab CA made for the
	// run, and the broker a mutual-TLS listener on the endpoint's port 8883
	// (the "tls_port" variable): a firmware's AT+CIPSTART="SSL" links reach
	// it, and DD-X01 is judged on the module path.
	TLS bool `yaml:"tls"`
}

// Path is where the profile was loaded from ("" when parsed).
func (p *Profile) Path() string { return p.path }

// SecurityProfilePaths returns SecurityProfiles resolved against the
// profile file's directory.
func (p *Profile) SecurityProfilePaths() []string {
	var out []string
	for _, s := range p.SecurityProfiles {
		if !filepath.IsAbs(s) && p.path != "" {
			s = filepath.Join(filepath.Dir(p.path), s)
		}
		out = append(out, s)
	}
	return out
}

// ConsoleConfig is the console.Config this profile's CLI needs.
func (p *Profile) ConsoleConfig() console.Config {
	c := console.Config{Prompt: p.Console.Prompt, LineEnding: p.Console.LineEnding}
	if p.Console.Prompt == "" {
		c.NoPrompt = true
	}
	if p.Console.LogPattern != "" {
		c.LogPattern = regexp.MustCompile(p.Console.LogPattern)
	}
	if p.Console.ErrorPattern != "" {
		c.ErrorPattern = regexp.MustCompile(p.Console.ErrorPattern)
	} else {
		c.NoErrorPattern = true
	}
	return c
}

// merged returns the defaults overridden by vars.
func (p *Profile) merged(vars Vars) Vars {
	out := Vars{}
	for k, v := range p.Defaults {
		out[k] = v
	}
	for k, v := range vars {
		out[k] = v
	}
	return out
}

// Resolve returns the defaults overridden by vars, as Provision uses them.
func (p *Profile) Resolve(vars Vars) Vars { return p.merged(vars) }

// expand replaces the placeholders of s; quote escapes values for regexps.
// It reports the variables that have no value.
func expand(s string, vars Vars, quote bool) (string, []string) {
	var missing []string
	out := placeholder.ReplaceAllStringFunc(s, func(m string) string {
		name := placeholder.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok || v == "" {
			missing = append(missing, name)
			return m
		}
		if quote {
			return regexp.QuoteMeta(v)
		}
		return v
	})
	return out, missing
}

// checkValues rejects values the console cannot carry.
func (p *Profile) checkValues(vars Vars) error {
	var vp *regexp.Regexp
	if p.Console.ValuePattern != "" {
		vp = regexp.MustCompile(p.Console.ValuePattern)
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	var errs []error
	for _, k := range names {
		v := vars[k]
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			errs = append(errs, fmt.Errorf("variable %s=%q contains a control character", k, v))
		} else if vp != nil && v != "" && !vp.MatchString(v) {
			errs = append(errs, fmt.Errorf("variable %s=%q does not match console.value_pattern %q", k, v, p.Console.ValuePattern))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("profile %s: %w", p.Name, errors.Join(errs...))
	}
	return nil
}

// StepError is a provisioning step that failed; it names the step and
// carries the console's last lines.
type StepError struct {
	Profile string
	Group   string // provision | commit | reset | fault | boot
	Step    string
	Send    string
	Err     error
	Tail    string
}

func (e *StepError) Error() string {
	return fmt.Sprintf("profile %s: %s step %q (sent %q): %v\nconsole tail:\n%s", e.Profile, e.Group, e.Step, e.Send, e.Err, e.Tail)
}

func (e *StepError) Unwrap() error { return e.Err }

// run executes one step.
func (p *Profile) run(ctx context.Context, c *console.Console, group string, i int, s Step, vars Vars) error {
	name := s.Name
	if name == "" {
		name = fmt.Sprintf("#%d", i+1)
	}
	send, m1 := expand(s.Send, vars, false)
	expect, m2 := expand(s.Expect, vars, true)
	if missing := append(m1, m2...); len(missing) > 0 {
		if s.Optional {
			return nil
		}
		return &StepError{Profile: p.Name, Group: group, Step: name, Send: s.Send,
			Err: fmt.Errorf("no value for %s", strings.Join(dedupe(missing), ", ")), Tail: "  (not sent)\n"}
	}
	re, err := regexp.Compile(expect)
	if err != nil {
		return &StepError{Profile: p.Name, Group: group, Step: name, Send: send, Err: err, Tail: "  (not sent)\n"}
	}
	timeout := time.Duration(s.Timeout)
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	var markers []*regexp.Regexp
	for _, m := range s.Markers {
		v, _ := expand(m, vars, true) // the same variables as send/expect
		mre, err := regexp.Compile(v)
		if err != nil {
			return &StepError{Profile: p.Name, Group: group, Step: name, Send: send, Err: err, Tail: "  (not sent)\n"}
		}
		markers = append(markers, mre)
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := c.Mark()
	if _, err := c.Command(sctx, send, re); err != nil {
		return &StepError{Profile: p.Name, Group: group, Step: name, Send: send, Err: err, Tail: c.Tail(10)}
	}
	if missing := missingMarker(c.Lines(), start, send, re, markers); missing != nil {
		return &StepError{Profile: p.Name, Group: group, Step: name, Send: send,
			Err: fmt.Errorf("marker %q did not show (in order) before the line matching %q", missing.String(), re.String()), Tail: c.Tail(10)}
	}
	return nil
}

// missingMarker checks that markers appear in order in the lines after
// start (the command's echo excluded) up to the first line matching end;
// it returns the first marker that did not.
func missingMarker(lines []console.Line, start uint64, send string, end *regexp.Regexp, markers []*regexp.Regexp) *regexp.Regexp {
	if len(markers) == 0 {
		return nil
	}
	next := 0
	echo := false
	for _, l := range lines {
		if l.Seq <= start || next == len(markers) {
			continue
		}
		text := l.Text
		if !echo && !l.Log && strings.TrimSpace(text) == strings.TrimSpace(send) {
			echo = true
			continue
		}
		for next < len(markers) {
			loc := markers[next].FindStringIndex(text)
			if loc == nil {
				break
			}
			text = text[loc[1]:]
			next++
		}
		if end.MatchString(l.Text) {
			break
		}
	}
	if next < len(markers) {
		return markers[next]
	}
	return nil
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Sync makes sure the CLI is at its prompt: with sync_empty_line it sends an
// empty line, with sync_ctrl_c a Ctrl-C, and waits for the fresh prompt;
// else it is satisfied when the console shows the prompt or waits for one.
func (p *Profile) Sync(ctx context.Context, c *console.Console) error {
	if p.Console.Prompt == "" {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if !p.Console.SyncEmptyLine && !p.Console.SyncCtrlC && c.AtPrompt() {
		return nil
	}
	switch {
	case p.Console.SyncEmptyLine:
		c.Skip(c.Mark())
		if err := c.Send(""); err != nil {
			return &StepError{Profile: p.Name, Group: "sync", Step: "empty line", Err: err, Tail: c.Tail(10)}
		}
	case p.Console.SyncCtrlC:
		c.Skip(c.Mark())
		if _, err := c.Write([]byte{0x03}); err != nil {
			return &StepError{Profile: p.Name, Group: "sync", Step: "Ctrl-C", Err: fmt.Errorf("console: %w", err), Tail: c.Tail(10)}
		}
	}
	if err := c.ExpectPrompt(sctx); err != nil {
		return &StepError{Profile: p.Name, Group: "sync", Step: "prompt", Err: err, Tail: c.Tail(10)}
	}
	return nil
}

// Provision configures the firmware (Configure) and then runs the reset
// step when the profile has one (the reference agent applies its staged
// configuration after a reset). Variables missing from vars come from the
// profile's defaults.
func (p *Profile) Provision(ctx context.Context, c *console.Console, vars Vars) error {
	if err := p.Configure(ctx, c, vars); err != nil {
		return err
	}
	if p.ResetStep != nil {
		return p.ConsoleReset(ctx, c, vars)
	}
	return nil
}

// Configure syncs with the CLI and runs the provision, commit and pki steps
// (the pki steps need a Signer: WithSigner).
func (p *Profile) Configure(ctx context.Context, c *console.Console, vars Vars) error {
	vars = p.merged(vars)
	if err := p.checkValues(vars); err != nil {
		return err
	}
	if err := p.Sync(ctx, c); err != nil {
		return err
	}
	for i, s := range p.ProvisionSteps {
		if err := p.run(ctx, c, "provision", i, s, vars); err != nil {
			return err
		}
	}
	for i, s := range p.CommitSteps {
		if err := p.run(ctx, c, "commit", i, s, vars); err != nil {
			return err
		}
	}
	return p.runPKI(ctx, c, vars)
}

// ConsoleReset runs the reset step (its expect is usually the boot marker);
// with no reset step it is an error.
func (p *Profile) ConsoleReset(ctx context.Context, c *console.Console, vars Vars) error {
	if p.ResetStep == nil {
		return fmt.Errorf("profile %s: no reset step", p.Name)
	}
	return p.run(ctx, c, "reset", 0, *p.ResetStep, p.merged(vars))
}

// SetFault switches a firmware fault through the fault step.
func (p *Profile) SetFault(ctx context.Context, c *console.Console, name string, on bool) error {
	if p.FaultStep == nil {
		return fmt.Errorf("profile %s: no fault step", p.Name)
	}
	state := "off"
	if on {
		state = "on"
	}
	v := Vars{"fault": name, "state": state}
	if err := p.checkValues(v); err != nil {
		return err
	}
	return p.run(ctx, c, "fault", 0, *p.FaultStep, v)
}

// WaitBoot waits for the boot marker after the console's cursor and then for
// the prompt; it returns the marker line.
func (p *Profile) WaitBoot(ctx context.Context, c *console.Console) (console.Line, error) {
	timeout := time.Duration(p.Boot.Timeout)
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	bctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	l, err := c.Expect(bctx, regexp.MustCompile(p.Boot.Marker))
	if err != nil {
		return l, &StepError{Profile: p.Name, Group: "boot", Step: "boot marker", Err: err, Tail: c.Tail(10)}
	}
	if p.Console.Prompt != "" {
		if err := c.ExpectPrompt(bctx); err != nil {
			return l, &StepError{Profile: p.Name, Group: "boot", Step: "prompt after boot", Err: err, Tail: c.Tail(10)}
		}
	}
	return l, nil
}

// Marker compiles one of the marker patterns; nil when the profile has none.
func (p *Profile) Marker(name string) *regexp.Regexp {
	var s string
	switch name {
	case "report_published":
		s = p.Markers.ReportPublished
	case "report_accepted":
		s = p.Markers.ReportAccepted
	case "report_rejected":
		s = p.Markers.ReportRejected
	case "connected":
		s = p.Markers.Connected
	case "disconnected":
		s = p.Markers.Disconnected
	case "report_sending":
		s = p.Markers.ReportSending
	case "report_unanswered":
		s = p.Markers.ReportUnanswered
	case "boot":
		s = p.Boot.Marker
	}
	if s == "" {
		return nil
	}
	return regexp.MustCompile(s)
}

// Expectations resolves the expectations block with vars for the
// conformance checks; unset fields take the checks' defaults.
func (p *Profile) Expectations(vars Vars) (conformance.Expectations, error) {
	vars = p.merged(vars)
	e := conformance.Expectations{
		Tolerance: p.Expect.Tolerance, JitterP95: p.Expect.JitterP95,
		ListeningTCP: p.Expect.ListeningTCP, ListeningUDP: p.Expect.ListeningUDP,
		Transport: p.Expect.Transport, HeaderOverhead: p.Expect.HeaderOverhead,
		Unreported: p.Expect.UnreportedMetrics,
	}
	var errs []error
	for _, m := range p.Expect.UnreportedMetrics {
		if _, ok := conformance.UnreportedMetrics[m]; !ok {
			errs = append(errs, fmt.Errorf("expectations.unreported_metrics: unknown metric %q", m))
		}
	}
	dur := func(field, s string) time.Duration {
		if s == "" {
			return 0
		}
		v, missing := expand(s, vars, false)
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("expectations.%s: no value for %s", field, strings.Join(missing, ", ")))
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("expectations.%s: %w", field, err))
		}
		return d
	}
	e.TestPeriod = dur("test_period", p.Expect.TestPeriod)
	e.ProductionPeriod = dur("production_period", p.Expect.ProductionPeriod)
	e.FirstReportBound = dur("first_report_bound", p.Expect.FirstReportBound)
	e.ReconnectBound = dur("reconnect_bound", p.Expect.ReconnectBound)
	if p.Expect.Endpoint != "" {
		v, missing := expand(p.Expect.Endpoint, vars, false)
		if len(missing) > 0 {
			errs = append(errs, fmt.Errorf("expectations.endpoint: no value for %s", strings.Join(missing, ", ")))
		}
		e.Endpoint = v
	}
	if err := errors.Join(errs...); err != nil {
		return e, fmt.Errorf("profile %s: %w", p.Name, err)
	}
	return e.WithDefaults(), nil
}

// Value expands a single templated expectation string such as "{{format}}".
func (p *Profile) Value(tmpl string, vars Vars) (string, error) {
	v, missing := expand(tmpl, p.merged(vars), false)
	if len(missing) > 0 {
		return v, fmt.Errorf("profile %s: no value for %s", p.Name, strings.Join(missing, ", "))
	}
	return v, nil
}
