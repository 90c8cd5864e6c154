package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// JUnit XML as read by GitLab's junit artifacts, Jenkins and the GitHub
// Actions test reporters: <testsuites> with one <testsuite name="ddhil">
// and one <testcase> per check. Warnings pass and carry their findings in
// <system-out>; a lab error or an unfinished run adds a "ddhil.run" test
// case with an <error>, so a CI view never shows green for a run that did not
// judge.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Hostname   string          `xml:"hostname,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Classname string        `xml:"classname,attr"`
	Name      string        `xml:"name,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure"`
	Error     *junitProblem `xml:"error"`
	Skipped   *junitSkipped `xml:"skipped"`
	SystemOut *junitCDATA   `xml:"system-out"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",cdata"`
}

type junitCDATA struct {
	Text string `xml:",cdata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// WriteJUnit writes r as JUnit XML.
func WriteJUnit(w io.Writer, r *Report) error {
	f, err := prepare(r)
	if err != nil {
		return err
	}
	s := junitSuite{
		Name:       "ddhil",
		Time:       seconds(f.Run.Duration.Seconds()),
		Hostname:   f.Run.Host,
		Properties: junitProperties(f),
	}
	if !f.Run.Started.IsZero() {
		s.Timestamp = f.Run.Started.UTC().Format("2006-01-02T15:04:05")
	}
	for _, c := range f.Checks {
		tc := junitCase{Classname: "ddhil." + c.Category, Name: c.ID + " " + c.Title, Time: "0"}
		switch c.Status {
		case StatusFail:
			tc.Failure = &junitProblem{Message: summary(c.Findings), Type: "fail", Body: xmlSafe(findingsBody(c))}
			s.Failures++
		case StatusError:
			tc.Error = &junitProblem{Message: oneLine(c.Error), Type: "error", Body: xmlSafe(c.Error)}
			s.Errors++
		case StatusSkip:
			tc.Skipped = &junitSkipped{Message: oneLine(c.SkipReason)}
			s.Skipped++
		case StatusWarn:
			tc.SystemOut = &junitCDATA{xmlSafe("warning: " + findingsBody(c))}
		}
		s.Cases = append(s.Cases, tc)
	}
	if f.Detect != nil || f.Audit != nil {
		// The verdict is DD-D01's; this case only lists what was found.
		s.Cases = append(s.Cases, junitCase{Classname: "ddhil.detect", Name: "security profiles and audit", Time: "0",
			SystemOut: &junitCDATA{xmlSafe(detectJUnit(f))}})
	}
	if f.Run.LabError != "" || f.Run.Incomplete || (f.Outcome == Error && f.Counts.Error == 0) {
		s.Cases = append(s.Cases, junitCase{
			Classname: "ddhil.run", Name: "run completed", Time: seconds(f.Run.Duration.Seconds()),
			Error: &junitProblem{Message: oneLine(f.OutcomeReason), Type: "error", Body: xmlSafe(f.OutcomeReason)},
		})
		s.Errors++
	}
	s.Tests = len(s.Cases)
	doc := junitSuites{
		Name: "ddhil", Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Skipped: s.Skipped,
		Time: s.Time, Suites: []junitSuite{s},
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

func junitProperties(f *Report) []junitProperty {
	p := []junitProperty{
		{"ddhil.schema", f.Schema},
		{"ddhil.verdict", string(f.Outcome)},
		{"ddhil.verdict_reason", f.OutcomeReason},
		{"ddhil.tool_version", f.Run.ToolVersion},
		{"target.kind", f.Target.Kind},
		{"target.name", f.Target.Name},
		{"target.version", f.Target.Version},
	}
	for _, k := range slices.Sorted(maps.Keys(f.Target.Extra)) {
		p = append(p, junitProperty{"target." + k, f.Target.Extra[k]})
	}
	p = append(p,
		junitProperty{"firmware.path", f.Firmware.Path},
		junitProperty{"firmware.sha256", f.Firmware.SHA256},
		junitProperty{"firmware.size", strconv.FormatInt(f.Firmware.Size, 10)},
		junitProperty{"profile.name", f.Profile.Name},
		junitProperty{"profile.path", f.Profile.Path},
		junitProperty{"run.command", strings.Join(f.Run.Command, " ")},
		junitProperty{"reports.received", strconv.Itoa(f.Counts.Reports)},
		junitProperty{"reports.accepted", strconv.Itoa(f.Counts.Accepted)},
		junitProperty{"reports.rejected", strconv.Itoa(f.Counts.Rejected)},
	)
	if f.Run.Incomplete {
		p = append(p, junitProperty{"run.incomplete_reason", f.Run.IncompleteReason})
	}
	if f.Run.LabError != "" {
		p = append(p, junitProperty{"run.lab_error", f.Run.LabError})
	}
	return p
}

// summary is the first finding on one line, with how many more there are.
func summary(fs []Finding) string {
	if len(fs) == 0 {
		return ""
	}
	s := oneLine(fs[0].Text())
	if len(fs) > 1 {
		s += fmt.Sprintf(" (and %d more)", len(fs)-1)
	}
	return s
}

func findingsBody(c Check) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s\n", c.ID, c.Title, plural(len(c.Findings), "finding"))
	for _, f := range c.Findings {
		b.WriteString("- " + oneLine(f.Text()) + "\n")
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

// xmlSafe replaces what XML 1.0 cannot carry (most control characters,
// invalid UTF-8) with U+FFFD; encoding/xml escapes attributes and text
// itself but writes CDATA sections verbatim.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r >= 0xD800 && r <= 0xDFFF, r == 0xFFFE, r == 0xFFFF:
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}
