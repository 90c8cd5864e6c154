package conformance

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ddhil/ddhil/harness/judge/verdict"
)

// The judging vocabulary is package verdict's; these names re-export it so
// that code using the catalogue needs one import. They are the same types,
// not copies: no conversion is ever needed between them.
type (
	Severity = verdict.Severity
	Status   = verdict.Status
)

const (
	SeverityFail = verdict.SeverityFail
	SeverityWarn = verdict.SeverityWarn

	StatusPass  = verdict.StatusPass
	StatusFail  = verdict.StatusFail
	StatusWarn  = verdict.StatusWarn
	StatusError = verdict.StatusError
	StatusSkip  = verdict.StatusSkip
)

// Finding is one violation with its evidence. Expected and Observed say,
// in a few words each, what the rule wanted and what the device did, so a
// reviewer can sign the finding without reading the evidence map.
type Finding struct {
	Message  string         `json:"message"`
	ReportID *uint64        `json:"report_id,omitempty"`
	At       time.Duration  `json:"at"`
	Expected string         `json:"expected,omitempty"`
	Observed string         `json:"observed,omitempty"`
	Evidence map[string]any `json:"evidence,omitempty"`
}

// Outcome is what a check function returns: every violation (not the
// first), or a reason why the check does not apply to this capture.
// Measured summarises in one line what the check looked at and found
// (intervals and their median, reports judged, totals compared), for
// passing checks as much as failing ones: a pass must say what it rests on.
type Outcome struct {
	Findings   []Finding
	SkipReason string
	// Notes say how a check judged (e.g. which fields it matched on).
	Notes    []string
	Measured string
	// Inconclusive, with no findings, says the check could not judge because
	// the host stalled the run more than its tolerance absorbs: a lab
	// problem (status error), never the firmware's failure.
	Inconclusive string
}

// Check is one entry of the catalogue. IDs are stable once published.
type Check struct {
	ID       string
	Title    string
	Severity Severity
	// Citation is the clause of the AWS documentation or the protocol note
	// the rule comes from.
	Citation string
	// ProvenBy names the reference firmware fault that turns this check red
	// (see firmware/README.md), or how it is proven when no firmware fault
	// can reach it.
	ProvenBy string
	Run      func(c *Capture) Outcome
}

// Category is the catalogue section the ID names.
func (c Check) Category() verdict.Category { return verdict.CategoryOf(c.ID) }

// Result is a check's outcome on one capture.
type Result struct {
	Check      Check
	Status     Status
	Findings   []Finding
	SkipReason string
	Measured   string // Outcome.Measured
	Error      string
	Notes      []string
}

// Catalogue returns every check in ID order.
func Catalogue() []Check {
	out := append([]Check(nil), catalogue...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Lookup finds a check by ID.
func Lookup(id string) (Check, bool) {
	for _, c := range catalogue {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

// Select returns the checks named in ids (all when ids is empty), or an
// error naming the unknown ones.
func Select(ids []string) ([]Check, error) {
	if len(ids) == 0 {
		return Catalogue(), nil
	}
	var out []Check
	var unknown []string
	for _, id := range ids {
		c, ok := Lookup(strings.ToUpper(strings.TrimSpace(id)))
		if !ok {
			unknown = append(unknown, id)
			continue
		}
		out = append(out, c)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("conformance: unknown check id(s) %s", strings.Join(unknown, ", "))
	}
	return out, nil
}

// Evaluate runs the checks on the capture. A check that panics is reported as
// an error of that check, never as a pass.
func Evaluate(c *Capture, checks []Check) []Result {
	c.Expect = c.Expect.WithDefaults()
	out := make([]Result, 0, len(checks))
	for _, ch := range checks {
		out = append(out, evaluateOne(c, ch))
	}
	return out
}

func evaluateOne(c *Capture, ch Check) (res Result) {
	res.Check = ch
	defer func() {
		if p := recover(); p != nil {
			res.Status = StatusError
			res.Error = fmt.Sprintf("check panicked: %v", p)
		}
	}()
	judged := c
	if onTargetClock[ch.ID] {
		judged = c.inTargetTime()
	}
	o := ch.Run(judged)
	if onTargetClock[ch.ID] {
		stampClocks(judged, o.Findings)
	}
	res.Findings = o.Findings
	res.Notes = o.Notes
	res.Measured = o.Measured
	res.Status = verdict.Of(ch.Severity, len(o.Findings), o.SkipReason)
	if len(o.Findings) == 0 && o.Inconclusive != "" {
		res.Status = StatusError
		res.Error = "inconclusive (lab problem, not a firmware failure): " + o.Inconclusive
	}
	if res.Status == StatusSkip {
		res.SkipReason = o.SkipReason
	}
	return res
}

// skip is shorthand for a not-applicable outcome.
func skip(format string, args ...any) Outcome {
	return Outcome{SkipReason: fmt.Sprintf(format, args...)}
}

// expecting returns f with what the rule expected and what the device did,
// each in a few words ("≤ 5s", "7.2s").
func (f Finding) expecting(expected, observed string) Finding {
	f.Expected, f.Observed = expected, observed
	return f
}

// finding builds a Finding tied to a report (nil view for none).
func finding(r *ReportView, msg string, ev map[string]any) Finding {
	f := Finding{Message: msg, Evidence: ev}
	if r != nil {
		f.At = r.At()
		if id, ok := r.ID(); ok {
			f.ReportID = &id
		}
	}
	return f
}
