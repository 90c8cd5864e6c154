// Package matrix merges many runs' reports (boards × firmware builds ×
// targets, one CI job or board-farm job each) into one conformance matrix:
// checks as rows, runs as columns. Build is the pure model; WriteHTML,
// WriteMarkdown and WriteJUnit render it. Reading files and deciding where
// the outputs go is the CLI's job (ddhil merge).
package matrix

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ddhil/ddhil/harness/report"
)

// Input is one run to merge.
type Input struct {
	// Path is where the report was read from (its report.json); it names the
	// run's column. Empty for reports that do not come from a file.
	Path   string
	Report *report.Report
	// HTML is the run's report.html when it exists, else empty; the HTML
	// matrix links its cells there.
	HTML string
}

// Matrix is the merged view: Rows[i].Cells[j] is check Rows[i] in Runs[j].
type Matrix struct {
	Runs []Run
	Rows []Row
}

// Run is one column: a run and what the header says about it.
type Run struct {
	Label   string // unique among the matrix's runs
	Path    string
	HTML    string
	Report  *report.Report
	Outcome report.Outcome
	Reason  string // why the verdict is what it is, one sentence
}

// Row is one check across every run.
type Row struct {
	ID       string
	Title    string
	Category report.Category
	Severity report.Severity
	Cells    []Cell
	rank     int // see Build
}

// Cell is one check in one run. Ran is false when the run's report has no
// such check (shown as "—"); Status is then empty.
type Cell struct {
	Ran      bool
	Status   report.Status
	Findings int
	// Detail is one line for people: the first finding, the error or the
	// skip reason.
	Detail string
}

// Build merges the inputs in the order given (the column order). Rows come
// in catalogue order (the order checks first appear across the runs), then
// stable-sorted so that rows with a failure come first, then rows with an
// error, then warnings, then rows some run did not run, then the rest. The
// errored checks of a run with a run-level lab error do not move rows: that
// run errored every check, which its header already says.
func Build(inputs []Input) (*Matrix, error) {
	if len(inputs) == 0 {
		return nil, errors.New("matrix: no runs to merge")
	}
	m := &Matrix{}
	labels := Labels(inputs)
	index := map[string]int{} // check ID → row
	for j, in := range inputs {
		r := in.Report
		if r == nil {
			return nil, fmt.Errorf("matrix: run %d (%s): nil report", j+1, in.Path)
		}
		m.Runs = append(m.Runs, Run{
			Label: labels[j], Path: in.Path, HTML: in.HTML, Report: r,
			Outcome: r.Verdict(), Reason: r.VerdictReason(),
		})
		for _, c := range r.Checks {
			if _, ok := index[c.ID]; ok {
				continue
			}
			index[c.ID] = len(m.Rows)
			m.Rows = append(m.Rows, Row{ID: c.ID, Title: c.Title, Category: c.Category, Severity: c.Severity})
		}
	}
	for i := range m.Rows {
		m.Rows[i].Cells = make([]Cell, len(inputs))
	}
	for j, in := range inputs {
		for _, c := range in.Report.Checks {
			m.Rows[index[c.ID]].Cells[j] = Cell{Ran: true, Status: c.Status, Findings: len(c.Findings), Detail: detail(c)}
		}
	}
	for i := range m.Rows {
		m.Rows[i].rank = rank(m.Rows[i].Cells, m.Runs)
	}
	slices.SortStableFunc(m.Rows, func(a, b Row) int { return a.rank - b.rank })
	return m, nil
}

// rank orders rows: what needs attention first.
func rank(cells []Cell, runs []Run) int {
	has := func(s report.Status) bool {
		for j, c := range cells {
			if c.Ran && c.Status == s && (s != report.StatusError || runs[j].Report.Run.LabError == "") {
				return true
			}
		}
		return false
	}
	switch {
	case has(report.StatusFail):
		return 0
	case has(report.StatusError):
		return 1
	case has(report.StatusWarn):
		return 2
	case slices.ContainsFunc(cells, func(c Cell) bool { return !c.Ran }):
		return 3
	default:
		return 4
	}
}

// Attention is the status that put the row where it is: "fail" when a run
// failed the check, else "error", "warn", "none" (some run did not run it)
// or "ok".
func (r Row) Attention() string { return attention[r.rank] }

var attention = [...]string{"fail", "error", "warn", "none", "ok"}

func detail(c report.Check) string {
	var s string
	switch {
	case c.Status == report.StatusError:
		s = c.Error
	case c.Status == report.StatusSkip:
		s = c.SkipReason
	case len(c.Findings) > 0:
		s = c.Findings[0].Text()
		if len(c.Findings) > 1 {
			s += fmt.Sprintf(" (and %d more)", len(c.Findings)-1)
		}
	}
	return strings.Join(strings.Fields(s), " ")
}

// Outcome is the merged verdict: error when any run errored (the lab broke
// somewhere, so the matrix cannot be trusted whole), else fail when any run
// failed, else pass.
func (m *Matrix) Outcome() report.Outcome {
	out := report.Pass
	for _, r := range m.Runs {
		switch r.Outcome {
		case report.Error:
			return report.Error
		case report.Fail:
			out = report.Fail
		}
	}
	return out
}

// ExitCode maps Outcome to the CLI's exit codes: 0 pass, 1 fail, 3 error.
func (m *Matrix) ExitCode() int { return report.ExitCodeOf(m.Outcome()) }

// Tally counts the runs by verdict.
func (m *Matrix) Tally() (pass, fail, errored int) {
	for _, r := range m.Runs {
		switch r.Outcome {
		case report.Pass:
			pass++
		case report.Fail:
			fail++
		default:
			errored++
		}
	}
	return pass, fail, errored
}

// Labels names each input's column after where its report lies, which in a
// CI matrix is the artefact or job name: the report's directory relative to
// the directory all inputs share ("board-a/fw-1.2"), or the directory's own
// name when the report lies in that shared directory. A file not named
// report.json adds its stem. Inputs without a path are named after their
// target. Equal labels get " #2", " #3", ... in input order.
func Labels(inputs []Input) []string {
	dirs := make([]string, len(inputs))
	for i, in := range inputs {
		if in.Path != "" {
			dirs[i] = filepath.Dir(absOr(in.Path))
		}
	}
	common := commonDir(dirs)
	out := make([]string, len(inputs))
	for i, in := range inputs {
		var l string
		if in.Path != "" {
			rel, err := filepath.Rel(common, dirs[i])
			if err != nil || rel == "." {
				rel = filepath.Base(dirs[i])
			}
			l = filepath.ToSlash(rel)
			if base := filepath.Base(in.Path); base != report.FileJSON {
				l = path.Join(l, strings.TrimSuffix(base, filepath.Ext(base)))
			}
		} else if in.Report != nil {
			l = strings.Join(nonEmpty(in.Report.Target.Kind, in.Report.Target.Name), " ")
		}
		if l == "" || l == "/" || l == "." {
			l = "run"
		}
		out[i] = l
	}
	taken := map[string]bool{}
	for i, l := range out {
		c := l
		for n := 2; taken[c]; n++ {
			c = fmt.Sprintf("%s #%d", l, n)
		}
		taken[c], out[i] = true, c
	}
	return out
}

func absOr(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// commonDir is the longest directory every non-empty dir lies in.
func commonDir(dirs []string) string {
	var common []string
	first := true
	for _, d := range dirs {
		if d == "" {
			continue
		}
		parts := strings.Split(d, string(filepath.Separator))
		if first {
			common, first = parts, false
			continue
		}
		n := 0
		for n < len(common) && n < len(parts) && common[n] == parts[n] {
			n++
		}
		common = common[:n]
	}
	if len(common) == 1 && common[0] == "" {
		return string(filepath.Separator)
	}
	return strings.Join(common, string(filepath.Separator))
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Header is what a column's header says about its run, for every renderer.
type Header struct {
	Target   string // "qemu netduinoplus2"
	Firmware string // the firmware's file name
	SHA256   string // full hex digest
	Short    string // its first 12 digits
	Profile  string
	Thing    string
	Format   string
	Keys     string
	// Incomplete is the reason a run stopped before judging everything.
	Incomplete string
	LabError   string
}

// Header describes run r.
func (r Run) Header() Header {
	rep := r.Report
	h := Header{
		Target:   strings.Join(nonEmpty(rep.Target.Kind, rep.Target.Name), " "),
		SHA256:   rep.Firmware.SHA256,
		Profile:  rep.Profile.Name,
		Thing:    rep.Profile.Expect.Thing,
		Format:   string(rep.Profile.Expect.Format),
		Keys:     rep.Profile.Expect.Extra["var.keys"],
		LabError: rep.Run.LabError,
	}
	if h.Format == "" {
		h.Format = rep.Profile.Expect.Extra["var.format"]
	}
	if p := rep.Firmware.Path; p != "" {
		// Reports from other hosts may carry either separator.
		h.Firmware = p[strings.LastIndexAny(p, `/\`)+1:]
	}
	h.Short = h.SHA256
	if len(h.Short) > 12 {
		h.Short = h.Short[:12]
	}
	if rep.Run.Incomplete {
		h.Incomplete = rep.Run.IncompleteReason
		if h.Incomplete == "" {
			h.Incomplete = "incomplete"
		}
	}
	return h
}
