package report

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

// The tests here fail when the page stops carrying the evidence a reviewer
// signs: expected and observed values per finding, what every judged check
// measured, failures first, long lists folded with their count.

// TestSampleCarriesEvidence keeps the golden sample honest: every finding
// has expected and observed values, every judged check says what it
// measured.
func TestSampleCarriesEvidence(t *testing.T) {
	for _, c := range sampleReport().Checks {
		if c.Status != StatusSkip && c.Status != StatusError {
			assert.NotEmpty(t, c.Measured, "%s says what it measured", c.ID)
		}
		for i, f := range c.Findings {
			assert.NotEmpty(t, f.Expected, "%s finding %d: expected", c.ID, i)
			assert.NotEmpty(t, f.Observed, "%s finding %d: observed", c.ID, i)
		}
	}
}

func TestHTMLShowsExpectedObservedAndMeasured(t *testing.T) {
	r := sampleWithVerdict(Fail)
	doc := parseHTML(t, r)
	rows := findAll(doc, func(n *html.Node) bool {
		return element("tr")(n) && n.Parent != nil && n.Parent.Data == "tbody" && hasClass(n.Parent.Parent, "findings")
	})
	want := 0
	for _, c := range r.Checks {
		want += len(c.Findings)
	}
	require.Equal(t, want, len(rows), "one row per finding, folded ones included")
	for _, row := range rows {
		cells := findAll(row, func(n *html.Node) bool { return element("td")(n) && hasClass(n, "eo") })
		require.Len(t, cells, 2)
		assert.NotEmpty(t, strings.TrimSpace(text(cells[0])), "expected cell empty in %s", text(row))
		assert.NotEmpty(t, strings.TrimSpace(text(cells[1])), "observed cell empty in %s", text(row))
	}

	sections := findAll(doc, func(n *html.Node) bool { return element("section")(n) && hasClass(n, "check") })
	byID := map[string]*html.Node{}
	for _, s := range sections {
		byID[strings.TrimPrefix(attr(s, "id"), "check-")] = s
	}
	for _, c := range r.Checks {
		s := byID[c.ID]
		require.NotNil(t, s, c.ID)
		if c.Measured != "" {
			assert.Contains(t, text(s), "Measured: "+c.Measured, c.ID)
		}
	}
	// The check table says it too, pass or fail.
	table := findAll(doc, func(n *html.Node) bool { return element("table")(n) && hasClass(n, "checks") })[0]
	assert.Contains(t, text(table), "10 intervals: median 10.005s", "a passing check's measurement")
	assert.Contains(t, text(table), "skipped: no report carried custom_metrics", "a skipped check's reason")
}

func TestHTMLFailingChecksFirst(t *testing.T) {
	doc := parseHTML(t, sampleReport())
	var got []Status
	for _, s := range findAll(doc, func(n *html.Node) bool { return element("section")(n) && hasClass(n, "check") }) {
		for _, st := range []Status{StatusPass, StatusFail, StatusWarn, StatusError, StatusSkip} {
			if hasClass(s, "st-"+string(st)) {
				got = append(got, st)
			}
		}
	}
	require.Len(t, got, 22)
	for i := 1; i < len(got); i++ {
		assert.LessOrEqual(t, got[i-1].Rank(), got[i].Rank(), "section %d (%s) after %s", i, got[i], got[i-1])
	}
	assert.Equal(t, StatusFail, got[0])
}

func TestHTMLFoldsLongFindingLists(t *testing.T) {
	doc := parseHTML(t, sampleWithVerdict(Fail))
	a01 := findAll(doc, func(n *html.Node) bool { return attr(n, "id") == "check-DD-A01" })[0]
	more := findAll(a01, func(n *html.Node) bool { return element("details")(n) && hasClass(n, "more") })
	require.Len(t, more, 1, "10 findings fold")
	assert.Contains(t, text(findAll(more[0], element("summary"))[0]), "7 more findings (10 in all)")
	shown := findAll(a01, func(n *html.Node) bool { return element("tr")(n) && len(findAll(n, element("td"))) > 0 })
	assert.Len(t, shown, 10, "all rows are in the page, 7 of them folded")

	s05 := findAll(doc, func(n *html.Node) bool { return attr(n, "id") == "check-DD-S05" })[0]
	assert.Empty(t, findAll(s05, element("details")), "one finding is not folded")
}

func TestHTMLLabErrorBannerIsOneLine(t *testing.T) {
	r := sampleReport()
	r.Run.LabError = "qemu: QMP handshake failed: EOF\nR00=00000000 R01=00000000\nR02=00000000 R03=00000000\n" + strings.Repeat("PC=08000000 ", 40)
	doc := parseHTML(t, r)
	banner := findAll(doc, func(n *html.Node) bool { return hasClass(n, "banner") })
	require.Len(t, banner, 1)
	details := findAll(banner[0], element("details"))
	require.Len(t, details, 1, "the wall of lines is folded")
	assert.Contains(t, text(details[0]), "R02=00000000")
	direct := ""
	for c := banner[0].FirstChild; c != nil && c != details[0]; c = c.NextSibling {
		direct += text(c)
	}
	assert.Equal(t, "Lab error: qemu: QMP handshake failed: EOF", strings.TrimSpace(direct))
	assert.Equal(t, "lab error: qemu: QMP handshake failed: EOF", r.VerdictReason(), "the verdict line gives the cause only")
}

func TestHTMLUnsentAnswerIsNotADrop(t *testing.T) {
	r := sampleReport()
	r.Reports[len(r.Reports)-1].Answer = AnswerUnsent
	doc := parseHTML(t, r)
	last := findAll(doc, func(n *html.Node) bool { return attr(n, "id") == "report-12" })[0]
	sum := text(findAll(last, element("summary"))[0])
	assert.Contains(t, sum, "answer: none: the run ended before it was sent")
	assert.NotContains(t, sum, "dropped")
}

func TestLabErrorCauseNamesTheFatalLine(t *testing.T) {
	msg := "session: start target: qemu: qmp handshake: connection closed before the reply; qemu output:\n" +
		"qemu-system-arm: -serial unix:/tmp/x.sock: info: QEMU waiting for connection\n" +
		"qemu: fatal: Lockup: can't escalate 3 to HardFault (current priority -1)\n\nR00=00000000 R01=00000000\n"
	cause, detail := foldText(msg)
	assert.Equal(t, "session: start target: qemu: qmp handshake: connection closed before the reply; qemu output: "+
		"qemu: fatal: Lockup: can't escalate 3 to HardFault (current priority -1)", cause)
	assert.Equal(t, strings.TrimSpace(msg), detail)
	cause, detail = foldText("flash failed")
	assert.Equal(t, "flash failed", cause)
	assert.Empty(t, detail, "nothing to fold")
}

func TestVerdictMentionsSkippedChecks(t *testing.T) {
	assert.Contains(t, sampleWithVerdict(Pass).VerdictReason(), "3 skipped: DD-S06, DD-T03, DD-X01")
	assert.Contains(t, sampleWithVerdict(Fail).VerdictReason(), "3 skipped: DD-S06, DD-T03, DD-X01")
	r := sampleWithVerdict(Pass)
	for i := range r.Checks {
		if r.Checks[i].Status == StatusSkip {
			r.Checks[i].Status, r.Checks[i].SkipReason = StatusPass, ""
		}
	}
	assert.NotContains(t, r.VerdictReason(), "skipped")
}
