package matrix

import (
	"bytes"
	"encoding/xml"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/ddhil/ddhil/harness/report"
)

// sample is three runs: one passes, one fails DD-S02 and warns on DD-S03
// (and lacks DD-T01), one hit a lab error and did not finish. Only the first
// two have a report.html.
func sample(t *testing.T) *Matrix {
	t.Helper()
	pass := report.StatusPass
	ok := run("qemu", check("DD-S01", pass), check("DD-S02", pass), check("DD-S03", pass), check("DD-T01", pass))
	bad := run("qemu", check("DD-S01", pass), check("DD-S02", report.StatusFail), check("DD-S03", report.StatusWarn))
	bad.Checks[1].Findings[0].Message = `payload <script>alert(1)</script> | "quoted"`
	lab := run("renode", check("DD-S01", report.StatusError), check("DD-S02", report.StatusError), check("DD-S03", report.StatusError), check("DD-T01", report.StatusError))
	lab.Run.LabError = "flash failed: probe vanished"
	lab.Run.Incomplete, lab.Run.IncompleteReason = true, "lab error"
	m, err := Build([]Input{
		{Path: "/ci/runs/f4|json/report.json", Report: ok, HTML: "/ci/runs/f4|json/report.html"},
		{Path: "/ci/runs/f4-cbor/report.json", Report: bad, HTML: "/ci/runs/f4-cbor/report.html"},
		{Path: "/ci/runs/l4/report.json", Report: lab},
	})
	require.NoError(t, err)
	return m
}

func render(t *testing.T, write func(*bytes.Buffer) error) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, write(&buf))
	return buf.String()
}

func TestHTML(t *testing.T) {
	m := sample(t)
	page := render(t, func(b *bytes.Buffer) error { return WriteHTML(b, m, "/ci/out") })
	doc, err := html.Parse(strings.NewReader(page))
	require.NoError(t, err)

	var cells, scripts []*html.Node
	var rows [][]*html.Node
	var runHeads []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch {
			case n.Data == "script":
				scripts = append(scripts, n)
			case n.Data == "tr" && strings.HasPrefix(attr(n, "id"), "row-"):
				rows = append(rows, nil)
			case n.Data == "td" && strings.Contains(attr(n, "class"), "cell"):
				cells = append(cells, n)
				rows[len(rows)-1] = append(rows[len(rows)-1], n)
			case n.Data == "th" && strings.Contains(attr(n, "class"), "run"):
				runHeads = append(runHeads, text(n))
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)

	assert.Empty(t, scripts, "finding text is escaped, never markup")
	require.Len(t, rows, 4)
	for i, r := range rows {
		assert.Len(t, r, 3, "row %d has a cell per run", i)
	}
	assert.Len(t, cells, 12)
	assert.Equal(t, "row-DD-S02", attr(rows[0][0].Parent, "id"), "the failing row comes first")

	// Cells link to the run's report at the check, relative to the page;
	// the run without report.html gets no links.
	assert.Equal(t, "../runs/f4%7Cjson/report.html#check-DD-S02", attr(rows[0][0].FirstChild, "href"))
	assert.Equal(t, "../runs/f4-cbor/report.html#check-DD-S02", attr(rows[0][1].FirstChild, "href"))
	assert.Equal(t, html.TextNode, rows[0][2].FirstChild.Type, "no link for a run without report.html")
	assert.Equal(t, "fail · 2", text(rows[0][1]))
	assert.Contains(t, attr(rows[0][1], "title"), `payload <script>alert(1)</script> | "quoted" (and 1 more)`)
	assert.Equal(t, "cell c-fail", attr(rows[0][1], "class"))
	assert.Equal(t, "cell c-error", attr(rows[0][2], "class"))

	// DD-T01 is not in the second run: "—".
	var t01 []*html.Node
	for _, r := range rows {
		if attr(r[0].Parent, "id") == "row-DD-T01" {
			t01 = r
		}
	}
	require.NotNil(t, t01)
	assert.Equal(t, "—", text(t01[1]))
	assert.Equal(t, "cell c-none", attr(t01[1], "class"))

	require.Len(t, runHeads, 3)
	assert.Contains(t, runHeads[0], "f4|json")
	assert.Contains(t, runHeads[0], "pass")
	assert.Contains(t, runHeads[1], "fail")
	assert.Contains(t, runHeads[2], "l4")
	assert.Contains(t, runHeads[2], "error")
	assert.Contains(t, runHeads[2], "incomplete")
	assert.NotContains(t, runHeads[1], "incomplete")
	assert.Contains(t, runHeads[0], "qemu m")

	assert.Contains(t, page, `<header class="verdict v-error"`)
	assert.NotContains(t, page, "http://", "self-contained: no network references")
	assert.NotContains(t, page, "https://")
}

func TestHTMLLinksFromTheCurrentDirectory(t *testing.T) {
	m := sample(t)
	m.Runs[1].HTML = filepath.Join("runs", "b", "report.html")
	page := render(t, func(b *bytes.Buffer) error { return WriteHTML(b, m, "") })
	assert.Contains(t, page, `href="runs/b/report.html#check-DD-S02"`)
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data + " ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// cells splits a Markdown table row on unescaped pipes.
var pipe = regexp.MustCompile(`(^|[^\\])\|`)

func TestMarkdown(t *testing.T) {
	m := sample(t)
	out := render(t, func(b *bytes.Buffer) error { return WriteMarkdown(b, m) })
	lines := strings.Split(out, "\n")
	assert.Equal(t, "## 🛑 ddhil merge: ERROR", lines[0])

	// Two tables: runs, then the matrix. Every row of a table has its
	// header's number of cells, escaped pipes notwithstanding.
	var tables [][]string
	inTable := false
	for _, l := range lines {
		if strings.HasPrefix(l, "|") {
			if !inTable {
				tables = append(tables, nil)
			}
			tables[len(tables)-1] = append(tables[len(tables)-1], l)
		}
		inTable = strings.HasPrefix(l, "|")
	}
	require.Len(t, tables, 2)
	for _, tb := range tables {
		n := len(pipe.FindAllStringIndex(tb[0], -1))
		for _, row := range tb {
			assert.Len(t, pipe.FindAllStringIndex(row, -1), n, row)
		}
	}
	assert.Len(t, tables[0], 2+3, "runs table: header, rule, a row per run")
	assert.Len(t, tables[1], 2+4, "matrix: header, rule, a row per check")
	assert.Equal(t, "| Check | Title | f4\\|json | f4-cbor | l4 |", tables[1][0])
	assert.Equal(t, "| DD-S02 | title of DD-S02 | ✅ | ❌ 2 | 🛑 |", tables[1][2], "failing row first, with its findings")
	assert.Contains(t, out, "| DD-T01 | title of DD-T01 | ✅ | — | 🛑 |")
	assert.Contains(t, tables[0][4], "🛑 error (incomplete)")

	wrong := out[strings.Index(out, "### What failed where"):]
	assert.Contains(t, wrong, "- 🛑 `l4`: lab error: flash failed: probe vanished\n")
	assert.Contains(t, wrong, "- **DD-S02** title of DD-S02 — 1 of 3 runs\n  - ❌ `f4-cbor` fail (2 findings): payload \\<script\\>alert(1)\\</script\\> \\| \"quoted\" (and 1 more)\n")
	assert.NotContains(t, wrong, "DD-S01", "the lab run's errored checks are covered by its lab error")
	assert.NotContains(t, wrong, "DD-S03", "a warning is not a failure")
	assert.NotContains(t, out, "](", "no links: a job summary cannot reach the runs' files")
}

func TestMarkdownAllPassHasNoFailureList(t *testing.T) {
	m, err := Build([]Input{in("a/report.json", run("qemu", check("DD-S01", report.StatusPass)))})
	require.NoError(t, err)
	out := render(t, func(b *bytes.Buffer) error { return WriteMarkdown(b, m) })
	assert.True(t, strings.HasPrefix(out, "## ✅ ddhil merge: PASS\n\n1 run merged: 1 pass · 0 fail · 0 error · 1 checks\n"), out)
	assert.NotContains(t, out, "What failed")
}

type xmlSuites struct {
	Tests    int        `xml:"tests,attr"`
	Failures int        `xml:"failures,attr"`
	Errors   int        `xml:"errors,attr"`
	Skipped  int        `xml:"skipped,attr"`
	Suites   []xmlSuite `xml:"testsuite"`
}

type xmlSuite struct {
	Name     string `xml:"name,attr"`
	Tests    int    `xml:"tests,attr"`
	Failures int    `xml:"failures,attr"`
	Errors   int    `xml:"errors,attr"`
	Skipped  int    `xml:"skipped,attr"`
	Props    []struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	} `xml:"properties>property"`
	Cases []struct {
		Classname string    `xml:"classname,attr"`
		Name      string    `xml:"name,attr"`
		Failure   *xmlIssue `xml:"failure"`
		Error     *xmlIssue `xml:"error"`
		Skipped   *xmlIssue `xml:"skipped"`
		SystemOut *string   `xml:"system-out"`
	} `xml:"testcase"`
}

type xmlIssue struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

func TestJUnit(t *testing.T) {
	m := sample(t)
	out := render(t, func(b *bytes.Buffer) error { return WriteJUnit(b, m) })
	var doc xmlSuites
	require.NoError(t, xml.Unmarshal([]byte(out), &doc))
	require.Len(t, doc.Suites, 3, "one suite per run")

	sum := xmlSuites{}
	for i, s := range doc.Suites {
		assert.Equal(t, m.Runs[i].Label, s.Name)
		assert.Equal(t, len(s.Cases), s.Tests)
		var f, e, sk int
		for _, c := range s.Cases {
			if c.Failure != nil {
				f++
			}
			if c.Error != nil {
				e++
			}
			if c.Skipped != nil {
				sk++
			}
		}
		assert.Equal(t, [3]int{f, e, sk}, [3]int{s.Failures, s.Errors, s.Skipped}, "suite %s counts its cases", s.Name)
		sum.Tests += s.Tests
		sum.Failures += s.Failures
		sum.Errors += s.Errors
		sum.Skipped += s.Skipped
	}
	assert.Equal(t, [4]int{sum.Tests, sum.Failures, sum.Errors, sum.Skipped}, [4]int{doc.Tests, doc.Failures, doc.Errors, doc.Skipped})

	pass, bad, lab := doc.Suites[0], doc.Suites[1], doc.Suites[2]
	assert.Equal(t, [4]int{4, 0, 0, 0}, [4]int{pass.Tests, pass.Failures, pass.Errors, pass.Skipped})
	assert.Equal(t, [4]int{4, 1, 0, 1}, [4]int{bad.Tests, bad.Failures, bad.Errors, bad.Skipped}, "DD-T01 not run: skipped")
	assert.Equal(t, [4]int{5, 0, 5, 0}, [4]int{lab.Tests, lab.Failures, lab.Errors, lab.Skipped}, "4 errored checks + run completed")

	c := bad.Cases[0]
	assert.Equal(t, "ddhil.f4-cbor", c.Classname, "the run is in the classname so reporters keep runs apart")
	assert.Equal(t, "DD-S02 title of DD-S02", c.Name)
	require.NotNil(t, c.Failure)
	assert.Contains(t, c.Failure.Body, `- payload <script>alert(1)</script> | "quoted"`)
	// Cases follow the matrix rows: DD-S02 fail, DD-S03 warn, DD-T01 not
	// run somewhere, DD-S01 (errored only in the lab-error run).
	var names []string
	for _, c := range bad.Cases {
		names = append(names, c.Name[:6])
	}
	assert.Equal(t, []string{"DD-S02", "DD-S03", "DD-T01", "DD-S01"}, names)
	require.NotNil(t, bad.Cases[1].SystemOut, "a warning passes with its findings in system-out")
	assert.Contains(t, *bad.Cases[1].SystemOut, "DD-S03 is odd")
	var skipped string
	for _, c := range bad.Cases {
		if c.Skipped != nil {
			skipped = c.Name + ": " + c.Skipped.Message
		}
	}
	assert.Equal(t, "DD-T01 title of DD-T01: not run: this run's report has no DD-T01", skipped)
	last := lab.Cases[len(lab.Cases)-1]
	assert.Equal(t, "run completed", last.Name)
	require.NotNil(t, last.Error)
	assert.Contains(t, last.Error.Message, "flash failed: probe vanished")

	props := map[string]string{}
	for _, p := range lab.Props {
		props[p.Name] = p.Value
	}
	assert.Equal(t, "error", props["ddhil.verdict"])
	assert.Equal(t, "/ci/runs/l4/report.json", props["ddhil.report"])
	assert.Equal(t, "flash failed: probe vanished", props["run.lab_error"])
	assert.Equal(t, "renode", props["target.kind"])
}

func TestJUnitClassnameHasNoStrayDots(t *testing.T) {
	m, err := Build([]Input{in("d/fw-1.2.3 rc/report.json", run("qemu", check("DD-S01", report.StatusPass)))})
	require.NoError(t, err)
	out := render(t, func(b *bytes.Buffer) error { return WriteJUnit(b, m) })
	assert.Contains(t, out, `classname="ddhil.fw-1_2_3_rc"`, "Jenkins splits package and class at the last dot")
	assert.Contains(t, out, `<testsuite name="fw-1.2.3 rc"`)
}
