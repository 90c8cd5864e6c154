package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func markdown(t *testing.T, r *Report) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, WriteMarkdown(&buf, r))
	return buf.String()
}

// unescapedPipes counts the | that delimit table cells.
func unescapedPipes(line string) int {
	n := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '|':
			n++
		}
	}
	return n
}

func TestMarkdownVerdictLine(t *testing.T) {
	cases := []struct {
		name   string
		report *Report
		first  string
	}{
		{"error", sampleReport(), "## 🛑 ddhil: ERROR"},
		{"fail", sampleWithVerdict(Fail), "## ❌ ddhil: FAIL"},
		{"pass", sampleWithVerdict(Pass), "## ✅ ddhil: PASS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			md := markdown(t, tc.report)
			assert.Equal(t, tc.first, strings.SplitN(md, "\n", 2)[0])
			assert.Contains(t, md, "| DD-S01 |")
			assert.Contains(t, md, "- [report.html](report.html)")
			assert.Contains(t, md, "- [console.log](console.log) — firmware console, timestamped")
		})
	}
}

func TestMarkdownQuotesFirstFindingsOnly(t *testing.T) {
	md := markdown(t, sampleReport())
	assert.Equal(t, mdFindingsPerCheck, strings.Count(md, "bytes\\_out looks like a running total"))
	assert.Contains(t, md, "- … and 7 more in report.html")
	assert.Contains(t, md, "**DD-A02 Traffic counters agree with the bytes the broker counted** — 🛑 error\n- no meter event")
	assert.NotContains(t, md, "**DD-S01", "passing checks are not repeated under Findings")
	assert.Less(t, len(md), 16*1024, "a summary, not a copy of the report")
}

func TestMarkdownEscapesEverything(t *testing.T) {
	r := sampleWithVerdict(Fail)
	r.Checks[4].Title = "a | b <script>alert(1)</script> [x](javascript:alert(2))"
	r.Checks[4].Findings[0].Message = "line one\nline two | cell *bold* `code` <b>"
	r.Checks[4].Measured = "x | y <i>"
	r.Firmware.Path = "fw`|weird.elf"
	r.Artefacts = []Artefact{{Name: "odd (name).log", Kind: "other"}, {Name: "javascript:alert(3)", Kind: "other"}}
	md := markdown(t, r)

	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| DD-") {
			assert.Equal(t, 6, unescapedPipes(line), "table row keeps 5 cells: %s", line)
		}
	}
	assert.NotContains(t, md, "<script>")
	assert.NotContains(t, md, "<b>")
	assert.NotRegexp(t, `[^\\]\]\(javascript:`, md, "no link with a javascript: target")
	assert.Contains(t, md, `\[x\]`)
	assert.Contains(t, md, "line one line two \\| cell \\*bold\\*", "newlines folded, markup escaped")
	assert.Contains(t, md, "`fw'\\|weird.elf`")
	assert.Contains(t, md, "[odd (name).log](odd%20%28name%29.log)")
	assert.Contains(t, md, "[javascript:alert(3)](./javascript:alert%283%29)")
}

func TestMarkdownIncompleteRun(t *testing.T) {
	r := sampleWithVerdict(Pass)
	r.Run.Incomplete, r.Run.IncompleteReason = true, "interrupted (SIGINT)"
	r.Run.LabError = "serial port /dev/ttyACM0 vanished"
	md := markdown(t, r)
	assert.Contains(t, md, "## 🛑 ddhil: ERROR")
	assert.Contains(t, md, "> **Run incomplete:** interrupted (SIGINT)")
	assert.Contains(t, md, "> **Lab error:** serial port /dev/ttyACM0 vanished")
}
