package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/ddhil/ddhil/harness/judge/audit"
	"github.com/ddhil/ddhil/harness/judge/detect"
)

func init() {
	register("detect", command{summary: "evaluate Device Defender security profiles (and Audit checks) on recorded runs", run: runDetect})
}

const detectHelp = `usage: ddhil detect --security-profile F [--security-profile F ...] --events run/events.jsonl|DIR [flags]

Re-evaluates recorded runs against AWS IoT Device Defender Detect security
profiles, offline, as a run with --security-profile does (docs/detect.md):
device-side metrics from the reports the broker accepted, cloud-side metrics
from what the broker saw. --security-profile takes AWS's own JSON: the output
of describe-security-profile, a bare behaviors array (create-security-profile
--behaviors), or the describe-custom-metric / describe-dimension output the
profiles refer to. --events is an events.jsonl or a directory searched for
them (a directory of runs). Next to each events.jsonl, report.json gives the
time scale (test period vs production period) and actions.jsonl the normal
phase, which is all that is evaluated unless --whole-run.

--audit (implied by --iot-policy, --revoked, --weak-keys) adds the
device-facing Audit checks on the certificates and client IDs the broker saw.

Writes detect.json next to each events.jsonl, or under --out DIR.

exit status:
  0  no behaviour alarmed (and no audit finding)
  1  a behaviour alarmed, or an audit check found something
  2  usage error: a bad or invalid security profile, unreadable events

flags:
`

type detectOutput struct {
	Events      string         `json:"events"`
	Window      string         `json:"window"`
	ScaleSource string         `json:"scale_source"`
	Detect      *detect.Result `json:"detect,omitempty"`
	Audit       *auditOutput   `json:"audit,omitempty"`
}

type auditOutput struct {
	Findings []audit.Finding `json:"findings"`
}

func runDetect(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("detect", stderr)
	var profiles, events, baselines, policies, revoked []string
	multi := func(dst *[]string) func(string) error {
		return func(s string) error { *dst = append(*dst, s); return nil }
	}
	fs.Func("security-profile", "security profile, behaviors array, custom metric or dimension `file` (AWS JSON; repeatable)", multi(&profiles))
	fs.Func("events", "a run's events.jsonl, or a `dir` of runs (repeatable)", multi(&events))
	fs.Func("baseline", "fleet recording (events.jsonl) statistical thresholds take percentiles from (repeatable)", multi(&baselines))
	out := fs.String("out", "", "write detect.json files under this `dir` (default: next to each events.jsonl)")
	wholeRun := fs.Bool("whole-run", false, "evaluate the whole run, not only its normal phase")
	testPeriod := fs.Duration("test-period", 0, "the run's report period (default: from report.json, else the median report interval)")
	prodPeriod := fs.Duration("production-period", 300*time.Second, "the period AWS durations are written for")
	doAudit := fs.Bool("audit", false, "run the device-facing Audit checks too")
	fs.Func("iot-policy", "IoT policy `file` to audit (policy document or get-policy output; repeatable)", multi(&policies))
	fs.Func("revoked", "CRL (PEM/DER) or list of revoked serials / certificate SHA-256 `file` (repeatable)", multi(&revoked))
	weakKeys := fs.String("weak-keys", "", "openssl-blacklist `file` of Debian-weak RSA fingerprints")
	expDays := fs.Int("expiration-days", 30, "CERT_EXPIRATION_THRESHOLD_IN_DAYS (30..3652)")
	ageDays := fs.Int("age-days", 365, "CERT_AGE_THRESHOLD_IN_DAYS (30..3652)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), detectHelp)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	*doAudit = *doAudit || len(policies) > 0 || len(revoked) > 0 || *weakKeys != ""
	switch {
	case len(events) == 0:
		return exitUsage, fmt.Errorf("%w: --events is required", errUsage)
	case len(profiles) == 0 && !*doAudit:
		return exitUsage, fmt.Errorf("%w: give --security-profile (and/or --audit)", errUsage)
	}
	var defs *detect.Definitions
	if len(profiles) > 0 {
		var err error
		if defs, err = detect.Load(profiles...); err != nil {
			return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	acfg, err := auditConfig(*doAudit, policies, revoked, *weakKeys, *expDays, *ageDays)
	if err != nil {
		return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
	}
	var base detect.Baseline
	for _, b := range baselines {
		run, err := detect.LoadRun(b, detect.Scale{}, true)
		if err != nil {
			return exitUsage, fmt.Errorf("%w: baseline: %v", errUsage, err)
		}
		base = append(base, run.Recording)
	}
	type job struct{ path, outDir string }
	var jobs []job
	for _, e := range events {
		found, err := findEvents(e)
		if err != nil {
			return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
		}
		for _, p := range found {
			dir := filepath.Dir(p)
			if *out != "" {
				rel := "."
				if st, err := os.Stat(e); err == nil && st.IsDir() {
					rel, _ = filepath.Rel(e, dir)
				}
				dir = filepath.Join(*out, rel)
			}
			jobs = append(jobs, job{p, dir})
		}
	}
	scale := detect.Scale{}
	if *testPeriod > 0 {
		scale = detect.Scale{TestPeriod: *testPeriod, ProductionPeriod: *prodPeriod}
	}
	code := exitOK
	for _, j := range jobs {
		run, err := detect.LoadRun(j.path, scale, *wholeRun)
		if err != nil {
			return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
		}
		o := detectOutput{Events: j.path, Window: run.Window, ScaleSource: run.ScaleSource}
		fmt.Fprintf(stdout, "%s (%s; %s)\n", j.path, run.Window, run.Recording.Scale)
		if defs != nil {
			o.Detect = defs.Evaluate(run.Recording, base)
			printViolations(stdout, o.Detect)
			if o.Detect.Alarmed() {
				code = exitFail
			}
		}
		if acfg != nil {
			fs, err := audit.Run(run.Recording.Events, *acfg)
			if err != nil {
				return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
			}
			o.Audit = &auditOutput{Findings: fs}
			for _, f := range fs {
				fmt.Fprintf(stdout, "  audit %-8s %s: %s\n", f.Severity, f.CheckName, f.ReasonForNonCompliance)
				code = exitFail
			}
		}
		if err := writeJSONFile(filepath.Join(j.outDir, "detect.json"), o); err != nil {
			return exitFail, err
		}
	}
	return code, nil
}

func auditConfig(on bool, policies, revoked []string, weakKeys string, expDays, ageDays int) (*audit.Config, error) {
	if !on {
		return nil, nil
	}
	cfg := &audit.Config{ExpirationDays: expDays, AgeDays: ageDays}
	for _, p := range policies {
		pol, err := audit.LoadPolicy(p)
		if err != nil {
			return nil, err
		}
		cfg.Policies = append(cfg.Policies, pol)
	}
	if len(revoked) > 0 {
		r, err := audit.LoadRevoked(revoked...)
		if err != nil {
			return nil, err
		}
		cfg.Revoked = r
	}
	if weakKeys != "" {
		w, err := audit.LoadWeakKeys(weakKeys)
		if err != nil {
			return nil, err
		}
		cfg.WeakKeys = w
	}
	return cfg, nil
}

// printViolations prints one line per violation event and the skipped
// behaviours.
func printViolations(w io.Writer, r *detect.Result) {
	if len(r.Violations) == 0 {
		fmt.Fprintf(w, "  no violation (%d profile(s))\n", len(r.Profiles))
	}
	for _, v := range r.Violations {
		val := ""
		if v.Value != nil {
			val = " value " + v.Value.String()
		}
		fmt.Fprintf(w, "  %-17s %s/%s %s thing %s at %s%s\n", v.State, v.Profile, v.Behavior, v.Metric, v.Thing, v.At.Round(time.Millisecond), val)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(w, "  skipped %s/%s: %s\n", s.Profile, s.Behavior, s.Reason)
	}
}

// findEvents returns path itself, or every events.jsonl under a directory.
func findEvents(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return []string{path}, nil
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "events.jsonl" {
			out = append(out, p)
		}
		return nil
	})
	if err == nil && len(out) == 0 {
		err = errors.New(path + ": no events.jsonl in this directory")
	}
	sort.Strings(out)
	return out, err
}

func writeJSONFile(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
