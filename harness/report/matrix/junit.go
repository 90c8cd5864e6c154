package matrix

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/report/markup"
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

// WriteJUnit writes the matrix as JUnit XML, one suite per run.
func WriteJUnit(w io.Writer, m *Matrix) error {
	doc := markup.JUnitSuites{Name: "ddhil merge"}
	var total float64
	for j, r := range m.Runs {
		rep := r.Report
		class := "ddhil." + strings.NewReplacer(".", "_", " ", "_").Replace(r.Label)
		s := markup.JUnitSuite{
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
			tc := markup.JUnitCase{Classname: class, Name: row.ID + " " + row.Title, Time: "0"}
			cell := row.Cells[j]
			c := checks[row.ID]
			switch {
			case !cell.Ran:
				tc.Skipped = &markup.JUnitSkipped{Message: "not run: this run's report has no " + row.ID}
				s.Skipped++
			case cell.Status == report.StatusFail:
				tc.Failure = &markup.JUnitProblem{Message: cell.Detail, Type: "fail", Body: markup.XMLSafe(findingsBody(c))}
				s.Failures++
			case cell.Status == report.StatusError:
				tc.Error = &markup.JUnitProblem{Message: cell.Detail, Type: "error", Body: markup.XMLSafe(c.Error)}
				s.Errors++
			case cell.Status == report.StatusSkip:
				tc.Skipped = &markup.JUnitSkipped{Message: cell.Detail}
				s.Skipped++
			case cell.Status == report.StatusWarn:
				tc.SystemOut = &markup.JUnitCDATA{Text: markup.XMLSafe("warning: " + findingsBody(c))}
			}
			s.Cases = append(s.Cases, tc)
		}
		if rep.Run.LabError != "" || rep.Run.Incomplete || (r.Outcome == report.Error && errored(rep) == 0) {
			s.Cases = append(s.Cases, markup.JUnitCase{
				Classname: class, Name: "run completed", Time: s.Time,
				Error: &markup.JUnitProblem{Message: markup.OneLine(r.Reason), Type: "error", Body: markup.XMLSafe(r.Reason)},
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

func properties(r Run) []markup.JUnitProperty {
	rep, h := r.Report, r.Header()
	p := []markup.JUnitProperty{
		{Name: "ddhil.report", Value: r.Path},
		{Name: "ddhil.verdict", Value: string(r.Outcome)},
		{Name: "ddhil.verdict_reason", Value: r.Reason},
		{Name: "ddhil.tool_version", Value: rep.Run.ToolVersion},
		{Name: "target.kind", Value: rep.Target.Kind},
		{Name: "target.name", Value: rep.Target.Name},
		{Name: "target.version", Value: rep.Target.Version},
		{Name: "firmware.path", Value: rep.Firmware.Path},
		{Name: "firmware.sha256", Value: rep.Firmware.SHA256},
		{Name: "profile.name", Value: h.Profile},
		{Name: "profile.thing", Value: h.Thing},
		{Name: "profile.format", Value: h.Format},
		{Name: "profile.keys", Value: h.Keys},
	}
	if h.Incomplete != "" {
		p = append(p, markup.JUnitProperty{Name: "run.incomplete_reason", Value: h.Incomplete})
	}
	if h.LabError != "" {
		p = append(p, markup.JUnitProperty{Name: "run.lab_error", Value: h.LabError})
	}
	return p
}

func findingsBody(c report.Check) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s\n", c.ID, c.Title, plural(len(c.Findings), "finding"))
	for _, f := range c.Findings {
		b.WriteString("- " + markup.OneLine(f.Text()) + "\n")
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
