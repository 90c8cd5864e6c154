package matrix

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/report/markup"
)

var statusIcon = map[report.Status]string{
	report.StatusPass: "✅", report.StatusFail: "❌", report.StatusWarn: "⚠️",
	report.StatusError: "🛑", report.StatusSkip: "⏭️",
}

var verdictIcon = map[report.Outcome]string{report.Pass: "✅", report.Fail: "❌", report.Error: "🛑"}

// notRun is what a cell shows for a check its run's report does not have.
const notRun = "—"

// WriteMarkdown writes a GitHub job summary: the merged verdict, one line
// per run, the matrix as a table (icons, with the number of findings) and a
// short list of what failed where. It has no links: a job summary cannot
// reach the runs' report.html files.
func WriteMarkdown(w io.Writer, m *Matrix) error {
	var b bytes.Buffer
	o := m.Outcome()
	fmt.Fprintf(&b, "## %s ddhil merge: %s\n\n%s\n\n", verdictIcon[o], strings.ToUpper(string(o)), tallyText(m))

	b.WriteString("| Run | Verdict | Target | Firmware | Profile | Why |\n|---|---|---|---|---|---|\n")
	for _, r := range m.Runs {
		h := r.Header()
		verdict := verdictIcon[r.Outcome] + " " + string(r.Outcome)
		if h.Incomplete != "" {
			verdict += " (incomplete)"
		}
		fw := markup.Code(h.Firmware)
		if h.Short != "" {
			fw += " " + markup.Code(h.Short)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n",
			markup.Code(r.Label), verdict, markup.MD(h.Target), fw, markup.MD(strings.Join(nonEmpty(h.Profile, h.Thing, h.Format, h.Keys), " · ")), markup.MD(clip(r.Reason, 160)))
	}

	b.WriteString("\n| Check | Title |")
	for _, r := range m.Runs {
		fmt.Fprintf(&b, " %s |", markup.MD(r.Label))
	}
	b.WriteString("\n|---|---|")
	b.WriteString(strings.Repeat(":-:|", len(m.Runs)))
	b.WriteString("\n")
	for _, row := range m.Rows {
		fmt.Fprintf(&b, "| %s | %s |", markup.MD(row.ID), markup.MD(row.Title))
		for _, c := range row.Cells {
			fmt.Fprintf(&b, " %s |", cellText(c))
		}
		b.WriteString("\n")
	}
	b.WriteString("\n<sub>✅ pass · ❌ fail · ⚠️ warn · 🛑 error (lab) · ⏭️ skip · — not run; a number counts findings</sub>\n")

	if wrong := whatFailed(m); len(wrong) > 0 {
		b.WriteString("\n### What failed where\n\n")
		for _, l := range wrong {
			b.WriteString(l + "\n")
		}
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("matrix: write markdown: %w", err)
	}
	return nil
}

func tallyText(m *Matrix) string {
	pass, fail, errored := m.Tally()
	return fmt.Sprintf("%s merged: %d pass · %d fail · %d error · %d checks",
		plural(len(m.Runs), "run"), pass, fail, errored, len(m.Rows))
}

func cellText(c Cell) string {
	if !c.Ran {
		return notRun
	}
	s := statusIcon[c.Status]
	if c.Findings > 0 {
		s += fmt.Sprintf(" %d", c.Findings)
	}
	return s
}

// whatFailed lists, first, the runs that did not finish or hit a lab error
// (their errored checks are not repeated), then one item per failing or
// errored check with a sub-item per run and its first finding.
func whatFailed(m *Matrix) []string {
	var out []string
	labRun := make([]bool, len(m.Runs))
	for j, r := range m.Runs {
		h := r.Header()
		switch {
		case h.LabError != "":
			labRun[j] = true
			out = append(out, fmt.Sprintf("- 🛑 %s: lab error: %s", markup.Code(r.Label), markup.MD(h.LabError)))
		case h.Incomplete != "":
			out = append(out, fmt.Sprintf("- %s %s: run incomplete: %s", verdictIcon[r.Outcome], markup.Code(r.Label), markup.MD(h.Incomplete)))
		case r.Outcome == report.Error:
			out = append(out, fmt.Sprintf("- 🛑 %s: %s", markup.Code(r.Label), markup.MD(r.Reason)))
		}
	}
	for _, row := range m.Rows {
		var items []string
		for j, c := range row.Cells {
			if !c.Ran || (c.Status != report.StatusFail && c.Status != report.StatusError) || (c.Status == report.StatusError && labRun[j]) {
				continue
			}
			item := fmt.Sprintf("  - %s %s %s", statusIcon[c.Status], markup.Code(m.Runs[j].Label), c.Status)
			if c.Findings > 0 {
				item += " (" + plural(c.Findings, "finding") + ")"
			}
			if c.Detail != "" {
				item += ": " + markup.MD(clip(c.Detail, 300))
			}
			items = append(items, item)
		}
		if len(items) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("- **%s** %s — %d of %d runs", markup.MD(row.ID), markup.MD(row.Title), len(items), len(m.Runs)))
		out = append(out, items...)
	}
	return out
}

// clip cuts s to at most n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
