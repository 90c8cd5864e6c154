package report

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/ddhil/ddhil/harness/report/markup"
)

// mdFindingsPerCheck bounds the findings quoted per check: the summary is a
// pointer to report.html, not a copy of it, and GitHub caps step summaries
// at 1 MiB.
const mdFindingsPerCheck = 3

var statusIcon = map[Status]string{
	StatusPass: "✅", StatusFail: "❌", StatusWarn: "⚠️", StatusError: "🛑", StatusSkip: "⏭️",
}

var verdictIcon = map[Outcome]string{Pass: "✅", Fail: "❌", Error: "🛑"}

// WriteMarkdown writes a short GitHub-flavoured summary, fit for
// $GITHUB_STEP_SUMMARY or a merge-request note: the verdict, one table row
// per check, the first findings of every check that did not pass, and links
// to the artefacts (relative to the report's directory).
func WriteMarkdown(w io.Writer, r *Report) error {
	f, err := prepare(r)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	c := f.Counts
	fmt.Fprintf(&b, "## %s ddhil: %s\n\n", verdictIcon[f.Outcome], strings.ToUpper(string(f.Outcome)))
	fmt.Fprintf(&b, "%s\n\n", markup.MD(f.OutcomeReason))
	if f.Run.Incomplete {
		fmt.Fprintf(&b, "> **Run incomplete:** %s\n\n", markup.MD(f.Run.IncompleteReason))
	}
	if f.Run.LabError != "" {
		cause, detail := foldText(f.Run.LabError)
		fmt.Fprintf(&b, "> **Lab error:** %s", markup.MD(cause))
		if detail != "" {
			b.WriteString(" (details in report.json)")
		}
		b.WriteString("\n\n")
	}

	target := strings.Join(nonEmpty(f.Target.Kind, f.Target.Name, f.Target.Version), " · ")
	fmt.Fprintf(&b, "**Target** %s · **Firmware** %s", markup.MD(target), markup.Code(f.Firmware.Path))
	if f.Firmware.SHA256 != "" {
		fmt.Fprintf(&b, " (sha256 %s)", markup.Code(short(f.Firmware.SHA256, 12)))
	}
	if f.Profile.Name != "" {
		fmt.Fprintf(&b, " · **Profile** %s", markup.MD(f.Profile.Name))
	}
	fmt.Fprintf(&b, " · **Reports** %d (%d accepted, %d rejected) · **Duration** %s\n\n",
		c.Reports, c.Accepted, c.Rejected, Human(f.Run.Duration))
	fmt.Fprintf(&b, "%d checks: %d pass · %d fail · %d warn · %d error · %d skip\n\n",
		c.Checks, c.Pass, c.Fail, c.Warn, c.Error, c.Skip)

	b.WriteString("| Check | Title | Status | Measured | Findings |\n|---|---|---|---|---|\n")
	checks := ByConcern(f.Checks)
	for _, ch := range checks {
		measured := ch.Measured
		switch {
		case measured != "":
		case ch.Status == StatusSkip:
			measured = "skipped: " + ch.SkipReason
		case ch.Status == StatusError:
			cause, _ := foldText(ch.Error)
			measured = "could not run: " + cause
		}
		fmt.Fprintf(&b, "| %s | %s | %s %s | %s | %d |\n", markup.MD(ch.ID), markup.MD(ch.Title), statusIcon[ch.Status], ch.Status, markup.MD(measured), len(ch.Findings))
	}

	first := true
	for _, ch := range checks {
		if ch.Status != StatusFail && ch.Status != StatusWarn && ch.Status != StatusError {
			continue
		}
		if first {
			b.WriteString("\n### Findings\n")
			first = false
		}
		fmt.Fprintf(&b, "\n**%s %s** — %s %s\n", markup.MD(ch.ID), markup.MD(ch.Title), statusIcon[ch.Status], ch.Status)
		if ch.Status == StatusError {
			fmt.Fprintf(&b, "- %s\n", markup.MD(ch.Error))
		}
		for i, fd := range ch.Findings {
			if i == mdFindingsPerCheck {
				fmt.Fprintf(&b, "- … and %d more in %s\n", len(ch.Findings)-i, FileHTML)
				break
			}
			fmt.Fprintf(&b, "- %s\n", markup.MD(fd.Text()))
		}
	}

	b.WriteString(detectMarkdown(f))

	var links []Artefact
	for _, fm := range Formats() {
		if fm.File != FileMarkdown {
			links = append(links, Artefact{Name: fm.File, Kind: "report"})
		}
	}
	b.WriteString("\n### Artefacts\n\n")
	for _, a := range append(links, f.Artefacts...) {
		fmt.Fprintf(&b, "- [%s](%s)", markup.MD(a.Name), linkTarget(a.Name))
		if a.Description != "" {
			fmt.Fprintf(&b, " — %s", markup.MD(a.Description))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\n<sub>%s · %s %s</sub>\n", markup.MD(f.Schema), markup.MD(f.Run.Tool), markup.MD(f.Run.ToolVersion))
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("report: write markdown: %w", err)
	}
	return nil
}

// linkTarget percent-encodes a relative file name for a Markdown link; a
// colon in the first segment gets "./" so it cannot read as a URL scheme.
func linkTarget(name string) string {
	s := (&url.URL{Path: name}).String()
	return strings.NewReplacer("(", "%28", ")", "%29").Replace(s)
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
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
