package conformance

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Severity says whether a failing check fails the verdict (fail) or only
// warns (warn).
type Severity string

const (
	SeverityFail Severity = "fail"
	SeverityWarn Severity = "warn"
)

// Status is a check's outcome on one capture.
type Status string

const (
	StatusPass  Status = "pass"
	StatusFail  Status = "fail"
	StatusWarn  Status = "warn"
	StatusError Status = "error"
	StatusSkip  Status = "skip"
)

// Finding is one violation with its evidence.
type Finding struct {
	Message  string         `json:"message"`
	ReportID *uint64        `json:"report_id,omitempty"`
	At       time.Duration  `json:"at"`
	Evidence map[string]any `json:"evidence,omitempty"`
}

// Outcome is what a check function returns: every violation (not the
// first), or a reason why the check does not apply to this capture.
type Outcome struct {
	Findings   []Finding
	SkipReason string
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

// Category is the letter group of the ID: S, P, T, I, A, R or X.
func (c Check) Category() string {
	name := map[byte]string{'S': "schema", 'P': "protocol", 'T': "timing", 'I': "identity", 'A': "accuracy", 'R': "resilience", 'X': "security"}
	if len(c.ID) > 3 {
		if n, ok := name[c.ID[3]]; ok {
			return n
		}
	}
	return "other"
}

// Result is a check's outcome on one capture.
type Result struct {
	Check      Check
	Status     Status
	Findings   []Finding
	SkipReason string
	Error      string
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
	switch {
	case len(o.Findings) > 0 && ch.Severity == SeverityWarn:
		res.Status = StatusWarn
	case len(o.Findings) > 0:
		res.Status = StatusFail
	case o.Inconclusive != "":
		res.Status = StatusError
		res.Error = "inconclusive (lab problem, not a firmware failure): " + o.Inconclusive
	case o.SkipReason != "":
		res.Status = StatusSkip
		res.SkipReason = o.SkipReason
	default:
		res.Status = StatusPass
	}
	return res
}

// skip is shorthand for a not-applicable outcome.
func skip(format string, args ...any) Outcome {
	return Outcome{SkipReason: fmt.Sprintf(format, args...)}
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
