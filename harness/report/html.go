package report

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// htmlExcerptBytes bounds the raw payload shown per report in the HTML.
const htmlExcerptBytes = 4096

//go:embed report.html.tmpl
var htmlSource string

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"offset":       Offset,
	"human":        Human,
	"bytes":        func(n any) string { return Bytes(toInt64(n)) },
	"upper":        strings.ToUpper,
	"plural":       plural,
	"utc":          func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"icon":         func(s Status) string { return statusIcon[s] },
	"pct":          func(f float64) string { return strconv.FormatFloat(f*100, 'f', -1, 64) + " %" },
	"join":         strings.Join,
	"findingCount": func(c htmlCheck) int { return len(c.Findings) + len(c.Folded) },
	"foldText": func(s string) struct{ Cause, Detail string } {
		c, d := foldText(s)
		return struct{ Cause, Detail string }{c, d}
	},
}).Parse(htmlSource))

type htmlView struct {
	R         *Report
	Timeline  *svgTimeline
	Checks    []htmlCheck // failing first (ByConcern)
	Reports   []htmlReport
	Expect    []fact
	TargetExt []fact
	Artefacts []Artefact
	// LabCause is the lab error's first line; LabDetail the whole text
	// when it has more to say (folded in the page).
	LabCause, LabDetail string
	// ATRefused counts the module's refusals in the AT exchange.
	ATRefused int
}

type fact struct{ K, V string }

type htmlCheck struct {
	Check
	Anchor   string
	Findings []htmlFinding // shown
	// Folded are the findings past the first few of a long list, shown
	// under a <details> with their count.
	Folded []htmlFinding
}

// A check with more than foldAfter findings shows the first foldShown and
// folds the rest.
const (
	foldAfter = 5
	foldShown = 3
)

type htmlFinding struct {
	Finding
	N          int
	ReportText string
	ReportHref string // the received report it is about, when known
	AtText     string
	Facts      []fact // the evidence, formatted
	// ExpectedText and ObservedText are Expected and Observed, or the
	// numbers with their unit when only those were given.
	ExpectedText, ObservedText string
	WindowText                 string
}

type htmlReport struct {
	Received
	N           int
	Anchor      string
	ReportText  string
	AnswerText  string
	Flagged     []string // checks with findings on this report
	DecodedJSON string
	Raw         string
}

// WriteHTML writes a self-contained page (inline CSS, no script, no network)
// with the verdict, a check table, an SVG timeline of the run, every check's
// evidence and every received report. All text goes through html/template.
func WriteHTML(w io.Writer, r *Report) error {
	f, err := prepare(r)
	if err != nil {
		return err
	}
	v := htmlView{R: f, Artefacts: f.Artefacts}
	for _, c := range f.ATExchange {
		if c.Refused() {
			v.ATRefused++
		}
	}
	v.LabCause, v.LabDetail = foldText(f.Run.LabError)
	about := findingReports(f)
	flagged := make([][]string, len(f.Reports))
	for _, c := range f.Checks {
		for _, fd := range c.Findings {
			if i, ok := about(fd); ok && !slices.Contains(flagged[i], c.ID) {
				flagged[i] = append(flagged[i], c.ID)
			}
		}
	}
	for i, rc := range f.Reports {
		hr := htmlReport{Received: rc, N: i + 1, Anchor: reportAnchor(i), ReportText: "—", Raw: Excerpt(rc.Payload, htmlExcerptBytes),
			AnswerText: answerText(rc.Answer), Flagged: flagged[i]}
		if rc.ReportID != nil {
			hr.ReportText = strconv.FormatUint(*rc.ReportID, 10)
		}
		if rc.Decoded != nil {
			b, err := json.MarshalIndent(rc.Decoded, "", "  ")
			if err != nil {
				return fmt.Errorf("report: encode decoded report %d: %w", i+1, err)
			}
			hr.DecodedJSON = string(b)
		}
		v.Reports = append(v.Reports, hr)
	}
	for _, c := range ByConcern(f.Checks) {
		hc := htmlCheck{Check: c, Anchor: "check-" + c.ID}
		for j, fd := range c.Findings {
			hf := htmlFinding{Finding: fd, N: j + 1, ExpectedText: fd.Expected, ObservedText: fd.Observed}
			if fd.ReportID != nil {
				hf.ReportText = strconv.FormatUint(*fd.ReportID, 10)
			}
			if i, ok := about(fd); ok {
				hf.ReportHref = "#" + reportAnchor(i)
			}
			if fd.At != nil {
				hf.AtText = Offset(*fd.At)
			}
			if fd.Window != nil {
				hf.WindowText = Offset(fd.Window.From) + " – " + Offset(fd.Window.To)
			}
			if hf.ExpectedText == "" {
				hf.ExpectedText = number(fd.ExpectedValue, fd.Unit)
			}
			if hf.ObservedText == "" {
				hf.ObservedText = number(fd.ObservedValue, fd.Unit)
			}
			for _, k := range slices.Sorted(maps.Keys(fd.Evidence)) {
				hf.Facts = append(hf.Facts, fact{k, evidenceValue(fd.Evidence[k])})
			}
			if len(c.Findings) > foldAfter && j >= foldShown {
				hc.Folded = append(hc.Folded, hf)
			} else {
				hc.Findings = append(hc.Findings, hf)
			}
		}
		v.Checks = append(v.Checks, hc)
	}
	v.Expect = expectations(f.Profile.Expect)
	for _, k := range slices.Sorted(maps.Keys(f.Target.Extra)) {
		v.TargetExt = append(v.TargetExt, fact{k, f.Target.Extra[k]})
	}
	v.Timeline = layoutTimeline(f, reportMarks(f), flagged)

	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, v); err != nil {
		return fmt.Errorf("report: render html: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("report: write html: %w", err)
	}
	return nil
}

func reportAnchor(i int) string { return "report-" + strconv.Itoa(i+1) }

// reportMarks pairs a report mark with the received report at the same
// offset (and with the same report_id, when both have one), each received
// report with one mark at most: call it once per mark.
func reportMarks(f *Report) func(Mark) (int, bool) {
	used := make([]bool, len(f.Reports))
	return func(m Mark) (int, bool) {
		if m.Kind != MarkReport {
			return 0, false
		}
		for i, rc := range f.Reports {
			if used[i] || rc.At != m.At {
				continue
			}
			if m.ReportID != nil && rc.ReportID != nil && *m.ReportID != *rc.ReportID {
				continue
			}
			used[i] = true
			return i, true
		}
		return 0, false
	}
}

// findingReports finds the received report a finding is about: the one at
// the finding's offset with its report_id (either may be missing, not both).
func findingReports(f *Report) func(Finding) (int, bool) {
	return func(fd Finding) (int, bool) {
		if fd.At == nil && fd.ReportID == nil {
			return 0, false
		}
		for i, rc := range f.Reports {
			if fd.At != nil && rc.At != *fd.At {
				continue
			}
			if fd.ReportID != nil && (rc.ReportID == nil || *rc.ReportID != *fd.ReportID) {
				continue
			}
			if fd.At == nil && fd.ReportID != nil && i > 0 && slices.ContainsFunc(f.Reports[:i], func(p Received) bool {
				return p.ReportID != nil && *p.ReportID == *fd.ReportID
			}) {
				continue // a repeated id without a time: the first is the one
			}
			return i, true
		}
		return 0, false
	}
}

// answerText says in words what a report got back.
func answerText(a string) string {
	switch a {
	case AnswerUnsent:
		return "none: the run ended before it was sent"
	case AnswerDropped:
		return "dropped (injected fault)"
	}
	return a
}

// foldText splits a long message into its cause, on one line (the first
// line, plus the first fatal or error line of the output it introduces when
// it ends in a colon, cut to a sentence's length), and the whole text when
// the cause does not say it all.
func foldText(s string) (cause, detail string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ""
	}
	first, rest, _ := strings.Cut(s, "\n")
	cause = strings.TrimSpace(first)
	if strings.HasSuffix(cause, ":") {
		// "…; qemu output:" introduces a log: its most telling line is
		// the cause a reader needs.
		for _, l := range strings.Split(rest, "\n") {
			low := strings.ToLower(l)
			if strings.Contains(low, "fatal") || strings.Contains(low, "error") || strings.Contains(low, "panic") {
				cause += " " + strings.TrimSpace(l)
				break
			}
		}
	}
	if r := []rune(cause); len(r) > 240 {
		cause = string(r[:239]) + "…"
	}
	if cause != s {
		detail = s
	}
	return cause, detail
}

// evidenceValue shows a string as it is and anything else as compact JSON.
func evidenceValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil { // Validate rejects these; never reached from a writer
		return fmt.Sprint(v)
	}
	return string(b)
}

// number formats a machine value with its unit ("" for none).
func number(p *float64, unit string) string {
	if p == nil {
		return ""
	}
	s := strconv.FormatFloat(*p, 'g', -1, 64)
	if unit != "" {
		s += " " + unit
	}
	return s
}

func expectations(e Expectations) []fact {
	var out []fact
	add := func(k, v string) {
		if v != "" {
			out = append(out, fact{k, v})
		}
	}
	dur := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return Human(d)
	}
	add("thing", e.Thing)
	add("format", string(e.Format))
	add("period", dur(e.Period))
	if e.Tolerance != 0 {
		add("tolerance", "± "+strconv.FormatFloat(e.Tolerance*100, 'f', -1, 64)+" % of the period")
	}
	add("jitter p95", dur(e.JitterP95))
	add("first report within", dur(e.FirstReportBound))
	add("reconnect within", dur(e.ReconnectBound))
	if e.PeriodScale != 0 {
		add("period scale", "×"+strconv.FormatFloat(e.PeriodScale, 'f', -1, 64))
	}
	add("listening TCP ports", joinPorts(e.ListeningTCPPorts))
	add("listening UDP ports", joinPorts(e.ListeningUDPPorts))
	for _, k := range slices.Sorted(maps.Keys(e.Extra)) {
		add(k, e.Extra[k])
	}
	return out
}

func joinPorts(ps []uint64) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.FormatUint(p, 10)
	}
	return strings.Join(s, ", ")
}

func toInt64(n any) int64 {
	switch v := n.(type) {
	case int:
		return int64(v)
	case int64:
		return v
	}
	return 0
}
