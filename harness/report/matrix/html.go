package matrix

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/ddhil/ddhil/harness/report"
)

//go:embed matrix.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("matrix").Funcs(template.FuncMap{
	"upper": strings.ToUpper,
}).Parse(htmlSource))

type htmlView struct {
	Outcome report.Outcome
	Tally   string
	Runs    []htmlRun
	Rows    []htmlRow
	Schema  string
}

type htmlRun struct {
	Run
	H    Header
	Href string // the run's report.html relative to the page, or empty
}

type htmlRow struct {
	Row
	Cells []htmlCell
}

type htmlCell struct {
	Class string // a status, or "none" when not run
	Text  string
	Href  string
	Title string
}

// WriteHTML writes the matrix as one self-contained page (inline CSS, no
// script, no network): the merged verdict, a header per run, one row per
// check with failing rows first, and a cell per run that links to that run's
// report.html at the check. dir is the directory the page will be written
// to, so the links are relative to it ("" means the current directory); runs
// without a report.html get no links.
func WriteHTML(w io.Writer, m *Matrix, dir string) error {
	v := htmlView{Outcome: m.Outcome(), Tally: tallyText(m), Schema: report.SchemaVersion}
	for _, r := range m.Runs {
		v.Runs = append(v.Runs, htmlRun{Run: r, H: r.Header(), Href: relLink(dir, r.HTML)})
	}
	for _, row := range m.Rows {
		hr := htmlRow{Row: row}
		for j, c := range row.Cells {
			hc := htmlCell{Class: "none", Text: notRun, Title: fmt.Sprintf("%s not run: %s has no such check", row.ID, m.Runs[j].Label)}
			if c.Ran {
				hc.Class = string(c.Status)
				hc.Text = string(c.Status)
				if c.Findings > 0 {
					hc.Text += fmt.Sprintf(" · %d", c.Findings)
				}
				hc.Title = m.Runs[j].Label + ": " + string(c.Status)
				if c.Detail != "" {
					hc.Title += ": " + clip(c.Detail, 500)
				}
				if v.Runs[j].Href != "" {
					hc.Href = v.Runs[j].Href + "#check-" + url.PathEscape(row.ID)
				}
			}
			hr.Cells = append(hr.Cells, hc)
		}
		v.Rows = append(v.Rows, hr)
	}
	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, v); err != nil {
		return fmt.Errorf("matrix: render html: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("matrix: write html: %w", err)
	}
	return nil
}

// relLink is target as a relative URL from the directory dir, or empty when
// there is no target or no relative path to it.
func relLink(dir, target string) string {
	if target == "" {
		return ""
	}
	if dir == "" {
		dir = "."
	}
	rel, err := filepath.Rel(absOr(dir), absOr(target))
	if err != nil {
		return ""
	}
	// url.URL adds "./" when a colon in the first segment would read as a
	// scheme.
	return (&url.URL{Path: filepath.ToSlash(rel)}).String()
}
