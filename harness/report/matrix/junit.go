package matrix

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/ddhil/ddhil/harness/report"
)

// JUnit layout: one <testsuite> per run (named after its label) and one
// <testcase> per check in it, classname "ddhil.<label>". CI test reporters
// (GitLab, Jenkins, the GitHub Actions JUnit reporters) render a suite as a
// group with its own counts, so each board/firmware/target gets its own
// group and the totals count failing cells. The run label is in the
// classname because most of them identify a test by classname+name: with the
// bare check ID the same check from different runs would collapse into one
// test and its history. A check a run did not run is <skipped>; a run with a
// lab error, an incomplete run or one that judged nothing gets an extra
// "run completed" case with an <error>, as `ddhil report --junit` does, so
// no view shows green for a run that did not judge.

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

// WriteJUnit writes the matrix as JUnit XML, one suite per run.
func WriteJUnit(w io.Writer, m *Matrix) error {
	doc := junitSuites{Name: "ddhil merge"}
	var total float64
	for j, r := range m.Runs {
		rep := r.Report
		class := "ddhil." + strings.NewReplacer(".", "_", " ", "_").Replace(r.Label)
		s := junitSuite{
			Name:       r.Label,
			Time:       seconds(rep.Run.Duration.Seconds()),
			Hostname:   rep.Run.Host,
			Properties: properties(r),
		}
		total += rep.Run.Duration.Seconds()
		if !rep.Run.Started.IsZero() {
			s.Timestamp = rep.Run.Started.UTC().Format("2006-01-02T15:04:05")
		}
		checks := map[string]report.Check{}
		for _, c := range rep.Checks {
			checks[c.ID] = c
		}
		for _, row := range m.Rows {
			tc := junitCase{Classname: class, Name: row.ID + " " + row.Title, Time: "0"}
			cell := row.Cells[j]
			c := checks[row.ID]
			switch {
			case !cell.Ran:
				tc.Skipped = &junitSkipped{Message: "not run: this run's report has no " + row.ID}
				s.Skipped++
			case cell.Status == report.StatusFail:
				tc.Failure = &junitProblem{Message: cell.Detail, Type: "fail", Body: xmlSafe(findingsBody(c))}
				s.Failures++
			case cell.Status == report.StatusError:
				tc.Error = &junitProblem{Message: cell.Detail, Type: "error", Body: xmlSafe(c.Error)}
				s.Errors++
			case cell.Status == report.StatusSkip:
				tc.Skipped = &junitSkipped{Message: cell.Detail}
				s.Skipped++
			case cell.Status == report.StatusWarn:
				tc.SystemOut = &junitCDATA{xmlSafe("warning: " + findingsBody(c))}
			}
			s.Cases = append(s.Cases, tc)
		}
		if rep.Run.LabError != "" || rep.Run.Incomplete || (r.Outcome == report.Error && errored(rep) == 0) {
			s.Cases = append(s.Cases, junitCase{
				Classname: class, Name: "run completed", Time: s.Time,
				Error: &junitProblem{Message: oneLine(r.Reason), Type: "error", Body: xmlSafe(r.Reason)},
			})
			s.Errors++
		}
		s.Tests = len(s.Cases)
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
		doc.Skipped += s.Skipped
		doc.Suites = append(doc.Suites, s)
	}
	doc.Time = seconds(total)
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("matrix: encode junit: %w", err)
	}
	if _, err := io.WriteString(w, xml.Header+string(out)+"\n"); err != nil {
		return fmt.Errorf("matrix: write junit: %w", err)
	}
	return nil
}

func errored(r *report.Report) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == report.StatusError {
			n++
		}
	}
	return n
}

func properties(r Run) []junitProperty {
	rep, h := r.Report, r.Header()
	p := []junitProperty{
		{"ddhil.report", r.Path},
		{"ddhil.verdict", string(r.Outcome)},
		{"ddhil.verdict_reason", r.Reason},
		{"ddhil.tool_version", rep.Run.ToolVersion},
		{"target.kind", rep.Target.Kind},
		{"target.name", rep.Target.Name},
		{"target.version", rep.Target.Version},
		{"firmware.path", rep.Firmware.Path},
		{"firmware.sha256", rep.Firmware.SHA256},
		{"profile.name", h.Profile},
		{"profile.thing", h.Thing},
		{"profile.format", h.Format},
		{"profile.keys", h.Keys},
	}
	if h.Incomplete != "" {
		p = append(p, junitProperty{"run.incomplete_reason", h.Incomplete})
	}
	if h.LabError != "" {
		p = append(p, junitProperty{"run.lab_error", h.LabError})
	}
	return p
}

func findingsBody(c report.Check) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s\n", c.ID, c.Title, plural(len(c.Findings), "finding"))
	for _, f := range c.Findings {
		b.WriteString("- " + oneLine(f.Text()) + "\n")
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

func seconds(s float64) string { return fmt.Sprintf("%.3f", s) }

// xmlSafe replaces what XML 1.0 cannot carry (most control characters,
// invalid UTF-8) with U+FFFD; encoding/xml writes CDATA verbatim.
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
