package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ddhil/ddhil/harness/judge/audit"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/judge/detect"
	"github.com/ddhil/ddhil/harness/report"
)

// errAuditInput marks an unreadable policy or revocation file (bad input,
// found before anything boots).
var errAuditInput = errors.New("runner: bad audit input")

// loadDetect reads and validates the security profiles and baselines; nil
// definitions when none are given.
func loadDetect(paths, baselines []string) (*detect.Definitions, detect.Baseline, error) {
	if len(paths) == 0 {
		return nil, nil, nil
	}
	defs, err := detect.Load(paths...)
	if err != nil {
		return nil, nil, err
	}
	var base detect.Baseline
	for _, b := range baselines {
		run, err := detect.LoadRun(b, detect.Scale{}, true)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: baseline %s: %v", detect.ErrInvalidProfile, b, err)
		}
		base = append(base, run.Recording)
	}
	return defs, base, nil
}

func checkAuditInputs(o Options) error {
	_, err := auditConfig(o)
	return err
}

func auditConfig(o Options) (*audit.Config, error) {
	cfg := &audit.Config{}
	for _, p := range o.IoTPolicies {
		pol, err := audit.LoadPolicy(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errAuditInput, err)
		}
		cfg.Policies = append(cfg.Policies, pol)
	}
	if len(o.Revoked) > 0 {
		r, err := audit.LoadRevoked(o.Revoked...)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errAuditInput, err)
		}
		cfg.Revoked = r
	}
	return cfg, nil
}

// fillDetect writes the Detect evaluation DD-D01 judged into the report,
// rebased on the run start.
func fillDetect(rep *report.Report, c *conformance.Capture, started time.Time) {
	res, window := c.EvaluateDetect()
	if res == nil {
		return
	}
	shift := shiftOf(c, started)
	end, _ := c.DetectWindow()
	d := &report.Detect{Violations: []report.Violation{}, Window: window, WindowEnd: end + shift, TimeScale: res.TimeScale}
	for _, p := range res.Profiles {
		d.SecurityProfiles = append(d.SecurityProfiles, report.DetectProfile{Name: p.Name, Path: p.Path, Behaviors: p.Behaviors})
	}
	for _, s := range res.Skipped {
		d.Skipped = append(d.Skipped, report.DetectSkipped{Profile: s.Profile, Behavior: s.Behavior, Reason: s.Reason})
	}
	for _, v := range res.Violations {
		rv := report.Violation{Behavior: v.Behavior, Metric: v.Metric, State: v.State, At: v.At + shift, Datapoints: v.Datapoints,
			Profile: v.Profile, Thing: v.Thing, ViolationID: v.ID, Threshold: v.Threshold, Suppressed: v.Suppressed}
		if v.Value != nil {
			rv.Value, _ = json.Marshal(v.Value)
		}
		d.Violations = append(d.Violations, rv)
	}
	rep.Detect = d
}

// fillAudit runs the Audit checks when asked for.
func fillAudit(rep *report.Report, c *conformance.Capture, o Options, started time.Time) error {
	if !o.Audit && len(o.IoTPolicies) == 0 && len(o.Revoked) == 0 {
		return nil
	}
	cfg, err := auditConfig(o)
	if err != nil {
		return err
	}
	fs, err := audit.Run(c.Events, *cfg)
	if err != nil {
		return err
	}
	a := &report.Audit{Findings: []report.AuditFinding{}}
	for _, f := range fs {
		raw, _ := json.Marshal(f)
		a.Findings = append(a.Findings, report.AuditFinding{CheckName: f.CheckName, Severity: f.Severity,
			Resource: f.NonCompliantResource.ResourceType + " " + f.ResourceKey(), Reason: f.ReasonForNonCompliance,
			ReasonCode: f.ReasonForNonComplianceCode, Finding: raw})
	}
	rep.Audit = a
	return nil
}
