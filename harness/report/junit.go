package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/ddhil/ddhil/harness/report/markup"
)

// JUnit XML as read by GitLab's junit artifacts, Jenkins and the GitHub
// Actions test reporters: <testsuites> with one <testsuite name="ddhil">
// and one <testcase> per check. Warnings pass and carry their findings in
// <system-out>; a lab error or an unfinished run adds a "ddhil.run" test
// case with an <error>, so a CI view never shows green for a run that did not
// judge.

// WriteJUnit writes r as JUnit XML.
func WriteJUnit(w io.Writer, r *Report) error {
	f, err := prepare(r)
	if err != nil {
		return err
	}
	s := markup.JUnitSuite{
		Name:       "ddhil",
		Time:       seconds(f.Run.Duration.Seconds()),
		Hostname:   f.Run.Host,
		Properties: junitProperties(f),
	}
	if !f.Run.Started.IsZero() {
		s.Timestamp = f.Run.Started.UTC().Format("2006-01-02T15:04:05")
	}
	for _, c := range f.Checks {
		tc := markup.JUnitCase{Classname: "ddhil." + string(c.Category), Name: c.ID + " " + c.Title, Time: "0"}
		switch c.Status {
		case StatusFail:
			tc.Failure = &markup.JUnitProblem{Message: summary(c.Findings), Type: "fail", Body: markup.XMLSafe(findingsBody(c))}
			s.Failures++
		case StatusError:
			tc.Error = &markup.JUnitProblem{Message: markup.OneLine(c.Error), Type: "error", Body: markup.XMLSafe(c.Error)}
			s.Errors++
		case StatusSkip:
			tc.Skipped = &markup.JUnitSkipped{Message: markup.OneLine(c.SkipReason)}
			s.Skipped++
		case StatusWarn:
			tc.SystemOut = &markup.JUnitCDATA{Text: markup.XMLSafe("warning: " + findingsBody(c))}
		}
		if c.Measured != "" {
			// What the check rests on, passing or not, where CI views show
			// a test's output.
			out := "measured: " + c.Measured + "\n"
			if tc.SystemOut != nil {
				out += tc.SystemOut.Text
			}
			tc.SystemOut = &markup.JUnitCDATA{Text: markup.XMLSafe(out)}
		}
		s.Cases = append(s.Cases, tc)
	}
	if f.Detect != nil || f.Audit != nil {
		// The verdict is DD-D01's; this case only lists what was found.
		s.Cases = append(s.Cases, markup.JUnitCase{Classname: "ddhil.detect", Name: "security profiles and audit", Time: "0",
			SystemOut: &markup.JUnitCDATA{Text: markup.XMLSafe(detectJUnit(f))}})
	}
	if f.Run.LabError != "" || f.Run.Incomplete || (f.Outcome == Error && f.Counts.Error == 0) {
		s.Cases = append(s.Cases, markup.JUnitCase{
			Classname: "ddhil.run", Name: "run completed", Time: seconds(f.Run.Duration.Seconds()),
			Error: &markup.JUnitProblem{Message: markup.OneLine(f.OutcomeReason), Type: "error", Body: markup.XMLSafe(f.OutcomeReason)},
		})
		s.Errors++
	}
	s.Tests = len(s.Cases)
	doc := markup.JUnitSuites{
		Name: "ddhil", Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Skipped: s.Skipped,
		Time: s.Time, Suites: []markup.JUnitSuite{s},
	}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("report: encode junit: %w", err)
	}
	if _, err := io.WriteString(w, xml.Header+string(out)+"\n"); err != nil {
		return fmt.Errorf("report: write junit: %w", err)
	}
	return nil
}

func junitProperties(f *Report) []markup.JUnitProperty {
	p := []markup.JUnitProperty{
		{Name: "ddhil.schema", Value: f.Schema},
		{Name: "ddhil.verdict", Value: string(f.Outcome)},
		{Name: "ddhil.verdict_reason", Value: f.OutcomeReason},
		{Name: "ddhil.tool_version", Value: f.Run.ToolVersion},
		{Name: "target.kind", Value: f.Target.Kind},
		{Name: "target.name", Value: f.Target.Name},
		{Name: "target.version", Value: f.Target.Version},
	}
	for _, k := range slices.Sorted(maps.Keys(f.Target.Extra)) {
		p = append(p, markup.JUnitProperty{Name: "target." + k, Value: f.Target.Extra[k]})
	}
	p = append(p,
		markup.JUnitProperty{Name: "firmware.path", Value: f.Firmware.Path},
		markup.JUnitProperty{Name: "firmware.sha256", Value: f.Firmware.SHA256},
		markup.JUnitProperty{Name: "firmware.size", Value: strconv.FormatInt(f.Firmware.Size, 10)},
		markup.JUnitProperty{Name: "profile.name", Value: f.Profile.Name},
		markup.JUnitProperty{Name: "profile.path", Value: f.Profile.Path},
		markup.JUnitProperty{Name: "run.command", Value: strings.Join(f.Run.Command, " ")},
		markup.JUnitProperty{Name: "reports.received", Value: strconv.Itoa(f.Counts.Reports)},
		markup.JUnitProperty{Name: "reports.accepted", Value: strconv.Itoa(f.Counts.Accepted)},
		markup.JUnitProperty{Name: "reports.rejected", Value: strconv.Itoa(f.Counts.Rejected)},
	)
	if f.Run.Incomplete {
		p = append(p, markup.JUnitProperty{Name: "run.incomplete_reason", Value: f.Run.IncompleteReason})
	}
	if f.Run.LabError != "" {
		p = append(p, markup.JUnitProperty{Name: "run.lab_error", Value: f.Run.LabError})
	}
	return p
}

// summary is the first finding on one line, with how many more there are.
func summary(fs []Finding) string {
	if len(fs) == 0 {
		return ""
	}
	s := markup.OneLine(fs[0].Text())
	if len(fs) > 1 {
		s += fmt.Sprintf(" (and %d more)", len(fs)-1)
	}
	return s
}

func findingsBody(c Check) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s\n", c.ID, c.Title, plural(len(c.Findings), "finding"))
	for _, f := range c.Findings {
		b.WriteString("- " + markup.OneLine(f.Text()) + "\n")
		if len(f.Evidence) > 0 {
			b.WriteString("  evidence: " + evidenceValue(f.Evidence) + "\n")
		}
	}
	if c.Citation != "" {
		b.WriteString("citation: " + c.Citation)
		if c.CitationURL != "" {
			b.WriteString(" <" + c.CitationURL + ">")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func seconds(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) }
