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
	"offset": Offset,
	"human":  Human,
	"bytes":  func(n any) string { return Bytes(toInt64(n)) },
	"upper":  strings.ToUpper,
	"plural": plural,
	"utc":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"icon":   func(s Status) string { return statusIcon[s] },
	"pct":    func(f float64) string { return strconv.FormatFloat(f*100, 'f', -1, 64) + " %" },
	"join":   strings.Join,
}).Parse(htmlSource))

type htmlView struct {
	R         *Report
	Timeline  *svgTimeline
	Checks    []htmlCheck
	Reports   []htmlReport
	Expect    []fact
	TargetExt []fact
	Artefacts []Artefact
}

type fact struct{ K, V string }

type htmlCheck struct {
	Check
	Anchor   string
	Findings []htmlFinding
}

type htmlFinding struct {
	Finding
	N          int
	ReportText string
	AtText     string
	Facts      []fact // the evidence, formatted
	Values     string // expected/observed numbers with unit
	WindowText string
}

type htmlReport struct {
	Received
	N           int
	Anchor      string
	ReportText  string
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
	for i, rc := range f.Reports {
		hr := htmlReport{Received: rc, N: i + 1, Anchor: "report-" + strconv.Itoa(i+1), ReportText: "—", Raw: Excerpt(rc.Payload, htmlExcerptBytes)}
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
	for _, c := range f.Checks {
		hc := htmlCheck{Check: c, Anchor: "check-" + c.ID}
		for j, fd := range c.Findings {
			hf := htmlFinding{Finding: fd, N: j + 1}
			if fd.ReportID != nil {
				hf.ReportText = strconv.FormatUint(*fd.ReportID, 10)
			}
			if fd.At != nil {
				hf.AtText = Offset(*fd.At)
			}
			if fd.Window != nil {
				hf.WindowText = Offset(fd.Window.From) + " – " + Offset(fd.Window.To)
			}
			if (fd.ExpectedValue != nil || fd.ObservedValue != nil) && fd.Expected == "" && fd.Observed == "" {
				hf.Values = numbers(fd)
			}
			for _, k := range slices.Sorted(maps.Keys(fd.Evidence)) {
				hf.Facts = append(hf.Facts, fact{k, evidenceValue(fd.Evidence[k])})
			}
			hc.Findings = append(hc.Findings, hf)
		}
		v.Checks = append(v.Checks, hc)
	}
	v.Expect = expectations(f.Profile.Expect)
	for _, k := range slices.Sorted(maps.Keys(f.Target.Extra)) {
		v.TargetExt = append(v.TargetExt, fact{k, f.Target.Extra[k]})
	}
	v.Timeline = layoutTimeline(f, reportAnchors(f))

	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, v); err != nil {
		return fmt.Errorf("report: render html: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("report: write html: %w", err)
	}
	return nil
}

// reportAnchors links a report mark to the received report at the same
// offset (and with the same report_id, when both have one).
func reportAnchors(f *Report) func(Mark) string {
	used := make([]bool, len(f.Reports))
	return func(m Mark) string {
		for i, rc := range f.Reports {
			if used[i] || rc.At != m.At {
				continue
			}
			if m.ReportID != nil && rc.ReportID != nil && *m.ReportID != *rc.ReportID {
				continue
			}
			used[i] = true
			return "#report-" + strconv.Itoa(i+1)
		}
		return ""
	}
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

func numbers(f Finding) string {
	val := func(p *float64) string {
		if p == nil {
			return "—"
		}
		s := strconv.FormatFloat(*p, 'g', -1, 64)
		if f.Unit != "" {
			s += " " + f.Unit
		}
		return s
	}
	return "expected " + val(f.ExpectedValue) + ", observed " + val(f.ObservedValue)
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
