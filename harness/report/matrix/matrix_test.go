package matrix

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/target"
)

// check is a check with status st; fail and warn get one finding, error and
// skip their reason, so the reports are consistent.
func check(id string, st report.Status) report.Check {
	c := report.Check{ID: id, Title: "title of " + id, Category: "schema", Severity: report.SeverityFail, Status: st}
	switch st {
	case report.StatusFail:
		c.Findings = []report.Finding{{Message: id + " is wrong"}, {Message: "again"}}
	case report.StatusWarn:
		c.Severity = report.SeverityWarn
		c.Findings = []report.Finding{{Message: id + " is odd"}}
	case report.StatusError:
		c.Error = "lab broke\nbadly"
	case report.StatusSkip:
		c.SkipReason = "not here"
	}
	return c
}

func run(kind string, checks ...report.Check) *report.Report {
	r := report.New()
	r.Target = target.Info{Kind: kind, Name: "m"}
	r.Checks = checks
	return r
}

func in(path string, r *report.Report) Input { return Input{Path: path, Report: r} }

func ids(m *Matrix) []string {
	var out []string
	for _, r := range m.Rows {
		out = append(out, r.ID)
	}
	return out
}

func TestBuildOrdersRowsByWhatNeedsAttention(t *testing.T) {
	pass := report.StatusPass
	a := run("qemu", check("DD-A01", pass), check("DD-S01", pass), check("DD-S02", pass), check("DD-S03", pass), check("DD-S04", pass))
	b := run("qemu", check("DD-A01", pass), check("DD-S01", report.StatusWarn), check("DD-S02", report.StatusError),
		check("DD-S04", report.StatusFail), check("DD-X09", report.StatusSkip))
	m, err := Build([]Input{in("/r/a/report.json", a), in("/r/b/report.json", b)})
	require.NoError(t, err)

	// fail, error, warn, not run somewhere, then the rest in catalogue order
	// (first appearance: a's checks, then b's new DD-X09).
	assert.Equal(t, []string{"DD-S04", "DD-S02", "DD-S01", "DD-S03", "DD-X09", "DD-A01"}, ids(m))
	var att []string
	for _, r := range m.Rows {
		att = append(att, r.Attention())
	}
	assert.Equal(t, []string{"fail", "error", "warn", "none", "none", "ok"}, att)
}

func TestBuildLabErrorRunDoesNotReorderRows(t *testing.T) {
	pass := report.StatusPass
	a := run("qemu", check("DD-S01", pass), check("DD-S02", pass), check("DD-S03", report.StatusWarn))
	lab := run("renode", check("DD-S01", report.StatusError), check("DD-S02", report.StatusError), check("DD-S03", report.StatusError))
	lab.Run.LabError = "emulator missing"
	m, err := Build([]Input{in("", a), in("", lab)})
	require.NoError(t, err)
	assert.Equal(t, []string{"DD-S03", "DD-S01", "DD-S02"}, ids(m), "the warning leads; the lab run's errors rank nothing")
	assert.Equal(t, "ok", m.Rows[1].Attention())

	// The same errors without a run-level lab error (a check that could not
	// run) do rank their rows.
	lab.Run.LabError = ""
	lab.Checks[1].Status, lab.Checks[1].Error = report.StatusPass, ""
	m, err = Build([]Input{in("", a), in("", lab)})
	require.NoError(t, err)
	assert.Equal(t, []string{"DD-S01", "DD-S03", "DD-S02"}, ids(m))
	assert.Equal(t, "error", m.Rows[0].Attention())
}

func TestBuildMarksChecksARunDidNotRun(t *testing.T) {
	a := run("qemu", check("DD-S01", report.StatusPass), check("DD-T02", report.StatusFail))
	b := run("renode", check("DD-S01", report.StatusPass))
	m, err := Build([]Input{in("x/a/report.json", a), in("x/b/report.json", b)})
	require.NoError(t, err)
	require.Equal(t, []string{"DD-T02", "DD-S01"}, ids(m))

	t02 := m.Rows[0]
	assert.Equal(t, Cell{Ran: true, Status: report.StatusFail, Findings: 2, Detail: "DD-T02 is wrong (and 1 more)"}, t02.Cells[0])
	assert.Equal(t, Cell{}, t02.Cells[1], "b has no DD-T02: not run")
	assert.Equal(t, "title of DD-T02", t02.Title)
	assert.Equal(t, report.SeverityFail, t02.Severity)
	assert.True(t, m.Rows[1].Cells[1].Ran)
}

func TestBuildCellDetails(t *testing.T) {
	m, err := Build([]Input{in("", run("qemu", check("DD-S01", report.StatusError), check("DD-S02", report.StatusSkip), check("DD-S03", report.StatusWarn)))})
	require.NoError(t, err)
	got := map[string]string{}
	for _, r := range m.Rows {
		got[r.ID] = r.Cells[0].Detail
	}
	assert.Equal(t, map[string]string{"DD-S01": "lab broke badly", "DD-S02": "not here", "DD-S03": "DD-S03 is odd"}, got)
}

func TestBuildRejectsNothingAndNil(t *testing.T) {
	_, err := Build(nil)
	assert.ErrorContains(t, err, "no runs")
	_, err = Build([]Input{{Path: "a/report.json"}})
	assert.ErrorContains(t, err, "run 1 (a/report.json): nil report")
}

func TestLabels(t *testing.T) {
	r := run("qemu")
	cases := []struct {
		name  string
		paths []string
		want  []string
	}{
		{"artefact directories", []string{"dl/qemu-json/report.json", "dl/board-a/report.json"}, []string{"qemu-json", "board-a"}},
		{"nested matrix", []string{"dl/f4/fw1/report.json", "dl/f4/fw2/report.json", "dl/l4/fw1/report.json"}, []string{"f4/fw1", "f4/fw2", "l4/fw1"}},
		{"one run is its own directory", []string{"dl/latest/report.json"}, []string{"latest"}},
		{"one report in the shared directory", []string{"dl/report.json", "dl/x/report.json"}, []string{"dl", "x"}},
		{"equal labels get a suffix", []string{"a/run/report.json", "b/dl/report.json", "b/dl/report.json", "b/dl/report.json"}, []string{"a/run", "b/dl", "b/dl #2", "b/dl #3"}},
		{"a suffix never repeats a label", []string{"d/x #2/report.json", "d/x/report.json", "d/x/report.json"}, []string{"x #2", "x", "x #3"}},
		{"other file names add their stem", []string{"d/a/one.json", "d/a/two.json"}, []string{"a/one", "a/two"}},
		{"no paths: the target", []string{"", ""}, []string{"qemu m", "qemu m #2"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ins []Input
			for _, p := range tc.paths {
				ins = append(ins, in(filepath.FromSlash(p), r))
			}
			assert.Equal(t, tc.want, Labels(ins))
		})
	}
}

func TestOutcomeAndExitCode(t *testing.T) {
	pass := run("qemu", check("DD-S01", report.StatusPass))
	fail := run("qemu", check("DD-S01", report.StatusFail))
	errd := run("qemu", check("DD-S01", report.StatusError))
	lab := run("renode", check("DD-S01", report.StatusPass))
	lab.Run.LabError = "flash failed"
	unfinished := run("qemu", check("DD-S01", report.StatusPass))
	unfinished.Run.Incomplete, unfinished.Run.IncompleteReason = true, "interrupted"
	nothing := run("qemu", check("DD-S01", report.StatusSkip))

	cases := []struct {
		name string
		runs []*report.Report
		want report.Outcome
		code int
	}{
		{"all pass", []*report.Report{pass, pass}, report.Pass, 0},
		{"one fails", []*report.Report{pass, fail, pass}, report.Fail, 1},
		{"a lab error wins over a failure", []*report.Report{fail, errd, pass}, report.Error, 3},
		{"run-level lab error", []*report.Report{lab, fail}, report.Error, 3},
		{"an unfinished run is an error", []*report.Report{pass, unfinished}, report.Error, 3},
		{"a run that judged nothing is an error", []*report.Report{nothing, pass}, report.Error, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ins []Input
			for _, r := range tc.runs {
				ins = append(ins, in("", r))
			}
			m, err := Build(ins)
			require.NoError(t, err)
			assert.Equal(t, tc.want, m.Outcome())
			assert.Equal(t, tc.code, m.ExitCode())
		})
	}
}

func TestTally(t *testing.T) {
	m, err := Build([]Input{
		in("", run("a", check("DD-S01", report.StatusPass))),
		in("", run("b", check("DD-S01", report.StatusFail))),
		in("", run("c", check("DD-S01", report.StatusFail))),
		in("", run("d", check("DD-S01", report.StatusError))),
	})
	require.NoError(t, err)
	p, f, e := m.Tally()
	assert.Equal(t, [3]int{1, 2, 1}, [3]int{p, f, e})
}

func TestHeader(t *testing.T) {
	r := run("board", check("DD-S01", report.StatusPass))
	r.Target.Name = "nucleo-f429zi"
	r.Firmware = report.Firmware{Path: `C:\build\agent.elf`, SHA256: "41ed0473ace3a07d2799e60f07ca26434f9fbfcdcc24d8d50a16762efcbb99bc"}
	r.Profile = report.Profile{Name: "ddagent", Expect: report.Expectations{Thing: "dut-1", Extra: map[string]string{"var.format": "cbor", "var.keys": "short"}}}
	r.Run.Incomplete, r.Run.IncompleteReason = true, "interrupted"
	m, err := Build([]Input{in("", r)})
	require.NoError(t, err)
	assert.Equal(t, Header{
		Target: "board nucleo-f429zi", Firmware: "agent.elf",
		SHA256: r.Firmware.SHA256, Short: "41ed0473ace3",
		Profile: "ddagent", Thing: "dut-1", Format: "cbor", Keys: "short", Incomplete: "interrupted",
	}, m.Runs[0].Header())

	r.Profile.Expect.Format = "json" // the profile's own format wins over the provisioning variable
	r.Firmware = report.Firmware{}
	h := m.Runs[0].Header()
	assert.Equal(t, "json", h.Format)
	assert.Empty(t, h.Firmware+h.Short)
}
