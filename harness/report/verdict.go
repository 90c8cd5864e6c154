package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ddhil/ddhil/harness/judge/verdict"
)

// Verdict computes the run's outcome from its checks and run metadata:
//
//  1. error when a check errored or the run has a lab error: the lab broke,
//     so any failure seen may be the lab's doing and none can be trusted;
//  2. fail when a fail-severity check failed (warn-severity findings never
//     fail a run);
//  3. error when the run is incomplete (an unfinished run is never a pass)
//     or judged nothing (every check skipped, or no checks at all);
//  4. pass otherwise.
func (r *Report) Verdict() Outcome {
	o, _ := r.judge()
	return o
}

// VerdictReason says in one sentence why Verdict is what it is.
func (r *Report) VerdictReason() string {
	_, why := r.judge()
	return why
}

// ExitCode maps the verdict to the CLI's exit codes: 0 pass, 1 fail, 3 error.
func (r *Report) ExitCode() int { return ExitCodeOf(r.Verdict()) }

// ExitCodeOf maps an outcome to the CLI's exit codes: 0 pass, 1 fail, 3 error.
func ExitCodeOf(o Outcome) int {
	switch o {
	case Pass:
		return 0
	case Fail:
		return 1
	default:
		return 3
	}
}

func (r *Report) judge() (Outcome, string) {
	c := r.countChecks()
	// Skipped checks judged nothing; a verdict that does not say so reads
	// as if they had passed.
	skipped := ""
	if c.Skip > 0 {
		skipped = fmt.Sprintf("; %d skipped: %s", c.Skip, r.idsWith(StatusSkip))
	}
	switch {
	case r.Run.LabError != "":
		cause, _ := foldText(r.Run.LabError)
		return Error, "lab error: " + cause
	case c.Error > 0:
		return Error, fmt.Sprintf("%s errored (lab problem): %s", plural(c.Error, "check"), r.idsWith(StatusError))
	case c.Fail > 0:
		why := fmt.Sprintf("%s failed: %s", plural(c.Fail, "check"), r.idsWith(StatusFail))
		if r.Run.Stopped != "" {
			why = r.Run.Stopped + "; " + why
		}
		if r.Run.Incomplete {
			why += " (run incomplete: " + r.Run.IncompleteReason + ")"
		}
		return Fail, why + skipped
	case r.Run.Incomplete:
		return Error, "run incomplete with no failure so far: " + r.Run.IncompleteReason
	case c.Pass+c.Warn == 0:
		return Error, "nothing was judged: every check skipped"
	case c.Warn > 0:
		return Pass, fmt.Sprintf("%s passed, %s warned: %s", plural(c.Pass, "check"), plural(c.Warn, "check"), r.idsWith(StatusWarn)) + skipped
	default:
		return Pass, fmt.Sprintf("all %s judged passed", plural(c.Pass, "check")) + skipped
	}
}

// ByConcern returns the checks most alarming first (fail, error, warn,
// skip, pass; ID order within each), the order every human-facing writer
// lists them in. The receiver is not modified.
func ByConcern(checks []Check) []Check {
	out := slices.Clone(checks)
	slices.SortStableFunc(out, func(a, b Check) int { return a.Status.Rank() - b.Status.Rank() })
	return out
}

func (r *Report) idsWith(s Status) string {
	var ids []string
	for _, c := range r.Checks {
		if c.Status == s {
			ids = append(ids, c.ID)
		}
	}
	return strings.Join(ids, ", ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (r *Report) countChecks() Counts {
	var c Counts
	c.Checks = len(r.Checks)
	for _, ch := range r.Checks {
		switch ch.Status {
		case StatusPass:
			c.Pass++
		case StatusFail:
			c.Fail++
		case StatusWarn:
			c.Warn++
		case StatusError:
			c.Error++
		case StatusSkip:
			c.Skip++
		}
	}
	c.Reports = len(r.Reports)
	for _, rc := range r.Reports {
		if rc.Accepted {
			c.Accepted++
		} else {
			c.Rejected++
		}
	}
	return c
}

// Validate reports every inconsistency that would make the report mislead:
// a wrong schema, duplicate or empty check IDs, unknown severities or
// statuses, a failed warn-severity check, a skip without a reason, an error
// without a message, an incomplete run without a reason, a stored verdict or
// count that disagrees with the checks.
func (r *Report) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if r.Schema != "" && r.Schema != SchemaVersion {
		bad("schema is %q, want %q", r.Schema, SchemaVersion)
	}
	if r.Run.Incomplete && r.Run.IncompleteReason == "" {
		bad("run is incomplete but incomplete_reason is empty")
	}
	if !r.Run.Started.IsZero() && !r.Run.Finished.IsZero() && r.Run.Finished.Before(r.Run.Started) {
		bad("run finished (%s) before it started (%s)", r.Run.Finished, r.Run.Started)
	}
	seen := map[string]bool{}
	for i, c := range r.Checks {
		where := fmt.Sprintf("checks[%d] %s", i, c.ID)
		switch {
		case c.ID == "":
			bad("checks[%d]: empty id", i)
		case seen[c.ID]:
			bad("%s: duplicate id", where)
		}
		seen[c.ID] = true
		if c.Severity != SeverityFail && c.Severity != SeverityWarn {
			bad("%s: severity %q is not fail or warn", where, c.Severity)
		}
		if !c.Status.Valid() {
			bad("%s: status %q is not pass, fail, warn, error or skip", where, c.Status)
		}
		if c.Status == StatusFail && c.Severity == SeverityWarn {
			bad("%s: a warn-severity check cannot fail (status must be warn)", where)
		}
		if c.Status == StatusWarn && c.Severity == SeverityFail {
			bad("%s: a fail-severity check with findings must have status fail", where)
		}
		if (c.Status == StatusFail || c.Status == StatusWarn) && len(c.Findings) == 0 {
			bad("%s: status %s without findings", where, c.Status)
		}
		if c.Status == StatusSkip && c.SkipReason == "" {
			bad("%s: skipped without skip_reason", where)
		}
		if c.Status == StatusError && c.Error == "" {
			bad("%s: errored without an error message", where)
		}
		for j, f := range c.Findings {
			if f.Message == "" {
				bad("%s: findings[%d]: empty message", where, j)
			}
			if _, err := json.Marshal(f.Evidence); err != nil {
				bad("%s: findings[%d]: evidence does not encode as JSON: %v", where, j, err)
			}
		}
	}
	for i, m := range r.Timeline {
		if m.Kind == "" {
			bad("timeline[%d]: empty kind", i)
		}
	}
	got, _ := r.judge()
	if r.Outcome != "" && r.Outcome != got {
		bad("verdict is %q but the checks give %q", r.Outcome, got)
	}
	if r.Counts != (Counts{}) && r.Counts != r.countChecks() {
		bad("counts %+v disagree with the checks and reports %+v", r.Counts, r.countChecks())
	}
	if len(errs) > 0 {
		return fmt.Errorf("report: invalid: %w", errors.Join(errs...))
	}
	return nil
}

// finalized returns a copy with the derived fields (verdict, counts,
// categories) computed and nil lists made empty, which is what every writer
// renders. The receiver is not modified.
func (r *Report) finalized() *Report {
	f := *r
	f.Schema = SchemaVersion
	f.Outcome, f.OutcomeReason = r.judge()
	f.Counts = r.countChecks()
	f.Checks = make([]Check, len(r.Checks))
	for i, c := range r.Checks {
		if c.Category == "" {
			c.Category = verdict.CategoryOf(c.ID)
		}
		findings := make([]Finding, len(c.Findings))
		for j, fd := range c.Findings {
			fd.Evidence = canonicalEvidence(fd.Evidence)
			findings[j] = fd
		}
		c.Findings = findings
		f.Checks[i] = c
	}
	f.Reports = make([]Received, len(r.Reports))
	for i, rc := range r.Reports {
		if rc.Payload == nil {
			rc.Payload = []byte{}
		}
		f.Reports[i] = rc
	}
	if f.Timeline == nil {
		f.Timeline = []Mark{}
	}
	if f.Artefacts == nil {
		f.Artefacts = []Artefact{}
	}
	if f.Run.Command == nil {
		f.Run.Command = []string{}
	}
	if f.Run.Duration == 0 && !f.Run.Finished.IsZero() && !f.Run.Started.IsZero() {
		f.Run.Duration = f.Run.Finished.Sub(f.Run.Started)
	}
	return &f
}

// canonicalEvidence returns evidence as ReadJSON would give it back (numbers
// as json.Number, nested objects as map[string]any), so a report compares
// equal to itself after a round trip through report.json.
func canonicalEvidence(ev map[string]any) map[string]any {
	if ev == nil {
		return nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return ev // Validate reports it
	}
	var out map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return ev
	}
	return out
}

// prepare validates r and returns its finalized copy; writers start here.
func prepare(r *Report) (*Report, error) {
	if r == nil {
		return nil, errors.New("report: nil report")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r.finalized(), nil
}
