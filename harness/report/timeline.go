package report

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The timeline is laid out here, in Go, and only printed by the HTML
// template: x is time since the run started, one lane per kind of thing.
// Geometry is in SVG user units; the SVG scales to the page width.
const (
	svgWidth   = 1200.0
	svgLeft    = 112.0 // room for lane names
	svgRight   = 20.0
	svgTop     = 6.0
	laneHeight = 38.0
	axisHeight = 24.0
	maxTicks   = 2000 // expected-schedule ticks drawn at most
	// charWidth over-estimates the width of a label character at 11px
	// semi-bold (system-ui measures 5.5-6.4 in Chromium), so labels placed
	// by the estimate never overlap in a browser.
	charWidth    = 6.8
	labelRowStep = 15.0
	labelGap     = 8.0 // between two labels in one row
	labelPad     = 5.0 // above the first and below the last label row
)

// num is an SVG coordinate printed with one decimal.
type num float64

func (n num) String() string { return strconv.FormatFloat(float64(n), 'f', 1, 64) }

type svgTimeline struct {
	Width, Height num
	PlotLeft      num
	PlotRight     num
	PlotTop       num
	PlotBottom    num
	Lanes         []svgLane
	Axis          []svgText
	AxisTicks     []svgLine
	Rects         []svgRect
	Lines         []svgLine
	Dots          []svgDot
	Paths         []svgPath
	Labels        []svgText
	// Flags ring the report dots that have findings against them.
	Flags []svgDot
	// ReportMarkers is the number of report dots drawn.
	ReportMarkers int
}

type svgLane struct {
	Name         string
	Top, Mid     num
	Bottom, H    num
	LabelY       num
	Alternate    bool
	LabelX, Left num
}

type svgRect struct {
	X, Y, W, H num
	Class      string
	Title      string
}

type svgLine struct {
	X1, Y1, X2, Y2 num
	Class          string
	Title          string
}

type svgDot struct {
	X, Y, R num
	Class   string
	Title   string
	Href    string
}

type svgPath struct {
	D     string
	Class string
	Title string
}

type svgText struct {
	X, Y   num
	Anchor string
	Class  string
	Text   string
}

type laneID int

const (
	lanePhase laneID = iota
	laneHarness
	laneLink
	laneExpected
	laneReports
	laneResponses
	laneAlarms
)

var laneNames = map[laneID]string{
	lanePhase: "phases", laneHarness: "harness", laneLink: "connection", laneExpected: "expected",
	laneReports: "reports", laneResponses: "responses", laneAlarms: "alarms",
}

// layoutTimeline turns the report's timeline, schedule and reports into
// drawable shapes. reportOf gives the index of the received report a report
// mark stands for (called once per mark); flagged[i] names the checks with
// findings on received report i.
func layoutTimeline(f *Report, reportOf func(m Mark) (int, bool), flagged [][]string) *svgTimeline {
	marks := slices.Clone(f.Timeline)
	slices.SortStableFunc(marks, func(a, b Mark) int { return cmp.Compare(a.At, b.At) })

	span := f.Run.Duration
	for _, m := range marks {
		span = max(span, m.At)
	}
	for _, rc := range f.Reports {
		span = max(span, rc.At)
	}
	if span <= 0 {
		span = time.Second
	}
	plotW := svgWidth - svgLeft - svgRight
	x := func(d time.Duration) num {
		d = min(max(d, 0), span)
		return num(svgLeft + float64(d)/float64(span)*plotW)
	}

	// Labels first: the lanes that carry them grow a row whenever labels
	// would otherwise overlap.
	var phases []Mark
	phaseRows, harnessRows := newLabelRows(svgLeft, svgWidth-svgRight), newLabelRows(svgLeft, svgWidth-svgRight)
	type placedLabel struct {
		row   int
		at    num
		class string
		text  string
	}
	var phaseLabels, harnessLabels []placedLabel
	for _, m := range marks {
		switch m.Kind {
		case MarkPhase:
			phases = append(phases, m)
			text := fitLabel(m.Label)
			row, at := phaseRows.place(float64(x(m.At)), text)
			phaseLabels = append(phaseLabels, placedLabel{row, num(at), "phaselabel", text})
		case MarkReset, MarkFault:
			text := string(m.Kind)
			if m.Label != "" {
				text += ": " + m.Label
			}
			text = fitLabel(text)
			row, at := harnessRows.place(float64(x(m.At)), text)
			harnessLabels = append(harnessLabels, placedLabel{row, num(at), "marklabel " + string(m.Kind), text})
		}
	}

	var lanes []laneID
	if len(phases) > 0 {
		lanes = append(lanes, lanePhase)
	}
	if len(harnessLabels) > 0 {
		lanes = append(lanes, laneHarness)
	}
	lanes = append(lanes, laneLink)
	if f.Schedule != nil && f.Schedule.Period > 0 {
		lanes = append(lanes, laneExpected)
	}
	lanes = append(lanes, laneReports)
	has := map[MarkKind]bool{}
	for _, m := range marks {
		has[m.Kind] = true
	}
	if has[MarkResponse] {
		lanes = append(lanes, laneResponses)
	}
	if f.Detect != nil {
		lanes = append(lanes, laneAlarms)
	}

	t := &svgTimeline{
		Width: svgWidth, PlotLeft: svgLeft, PlotRight: svgWidth - svgRight, PlotTop: svgTop,
	}
	laneAt := map[laneID]svgLane{}
	top := svgTop
	for i, id := range lanes {
		h := laneHeight
		switch id {
		case lanePhase:
			h = max(h, phaseRows.height())
		case laneHarness:
			h = max(h, harnessRows.height())
		}
		l := svgLane{
			Name: laneNames[id], Top: num(top), Mid: num(top + h/2), Bottom: num(top + h), H: num(h),
			LabelY: num(top + h/2 + 4), LabelX: svgLeft - 10, Left: svgLeft, Alternate: i%2 == 1,
		}
		laneAt[id] = l
		t.Lanes = append(t.Lanes, l)
		top += h
	}
	t.PlotBottom = num(top)
	t.Height = t.PlotBottom + axisHeight

	// Axis.
	step := axisStep(span)
	for d := time.Duration(0); d <= span; d += step {
		t.AxisTicks = append(t.AxisTicks, svgLine{X1: x(d), Y1: t.PlotTop, X2: x(d), Y2: t.PlotBottom + 4, Class: "grid"})
		t.Axis = append(t.Axis, svgText{X: x(d), Y: t.PlotBottom + 17, Anchor: "middle", Class: "axis", Text: axisLabel(d)})
	}
	t.Labels = append(t.Labels, svgText{X: svgLeft - 10, Y: t.PlotBottom + 17, Anchor: "end", Class: "lanename",
		Text: "time (" + clockName(f.Run.Clock) + ")"})

	// Phases: alternating bands from each phase mark to the next.
	if l, ok := laneAt[lanePhase]; ok {
		for i, m := range phases {
			end := span
			if i+1 < len(phases) {
				end = phases[i+1].At
			}
			t.Rects = append(t.Rects, svgRect{X: x(m.At), Y: l.Top + 3, W: x(end) - x(m.At), H: l.H - 6,
				Class: "phase p" + strconv.Itoa(i%2), Title: fmt.Sprintf("phase %s: %s – %s", m.Label, Offset(m.At), Offset(end))})
		}
		for _, pl := range phaseLabels {
			t.Labels = append(t.Labels, svgText{X: pl.at, Y: l.Top + num(labelRowY(pl.row)), Anchor: "start", Class: pl.class, Text: pl.text})
		}
	}
	if l, ok := laneAt[laneHarness]; ok {
		for _, pl := range harnessLabels {
			t.Labels = append(t.Labels, svgText{X: pl.at, Y: l.Top + num(labelRowY(pl.row)), Anchor: "start", Class: pl.class, Text: pl.text})
		}
	}

	// Connection lane: a bar per connection, markers for the rest.
	l := laneAt[laneLink]
	for i, m := range marks {
		switch m.Kind {
		case MarkConnect:
			if m.Status == "refused" {
				t.Paths = append(t.Paths, svgPath{D: triangle(x(m.At), l.Mid), Class: "refused", Title: markTitle(m)})
				continue
			}
			end := span
			for _, n := range marks[i+1:] {
				if n.Kind == MarkDisconnect && (m.ConnID == "" || n.ConnID == "" || n.ConnID == m.ConnID) {
					end = n.At
					break
				}
			}
			title := fmt.Sprintf("connection %s: %s – %s", m.ConnID, Offset(m.At), Offset(end))
			t.Rects = append(t.Rects, svgRect{X: x(m.At), Y: l.Mid - 5, W: max(x(end)-x(m.At), 1), H: 10, Class: "conn", Title: title})
			t.Lines = append(t.Lines, svgLine{X1: x(m.At), Y1: l.Mid - 9, X2: x(m.At), Y2: l.Mid + 9, Class: "connect", Title: markTitle(m)})
		case MarkDisconnect:
			t.Paths = append(t.Paths, svgPath{D: cross(x(m.At), l.Mid, 6), Class: "disconnect", Title: markTitle(m)})
		case MarkSubscribe:
			t.Dots = append(t.Dots, svgDot{X: x(m.At), Y: l.Mid + 13, R: 2.5, Class: "sub", Title: markTitle(m)})
		case MarkReset, MarkFault:
			t.Lines = append(t.Lines, svgLine{X1: x(m.At), Y1: t.PlotTop, X2: x(m.At), Y2: t.PlotBottom, Class: string(m.Kind), Title: markTitle(m)})
		case MarkPhase, MarkReport, MarkResponse:
		default: // a kind this version does not know: draw it plainly
			t.Lines = append(t.Lines, svgLine{X1: x(m.At), Y1: l.Mid - 4, X2: x(m.At), Y2: l.Mid + 4, Class: "other", Title: markTitle(m)})
		}
	}

	// Expected schedule: per connection, the first-report window, then a
	// tick (with its tolerance band) every period from the first report.
	if l, ok := laneAt[laneExpected]; ok {
		s := f.Schedule
		var starts []time.Duration
		for _, m := range marks {
			if m.Kind == MarkConnect && m.Status != "refused" {
				starts = append(starts, m.At)
			}
		}
		if len(starts) == 0 {
			starts = []time.Duration{0}
		}
		ticks := 0
		for i, start := range starts {
			end := span
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			if s.FirstReportBound > 0 {
				due := min(start+s.FirstReportBound, end)
				t.Rects = append(t.Rects, svgRect{X: x(start), Y: l.Top + 8, W: max(x(due)-x(start), 1), H: laneHeight - 16, Class: "due",
					Title: fmt.Sprintf("first report due within %s of connecting (by %s)", Human(s.FirstReportBound), Offset(start+s.FirstReportBound))})
			}
			anchor := time.Duration(-1)
			for _, m := range marks {
				if m.Kind == MarkReport && m.At >= start && m.At < end {
					anchor = m.At
					break
				}
			}
			if anchor < 0 {
				if s.FirstReportBound <= 0 {
					continue
				}
				anchor = start + s.FirstReportBound
			}
			tol := time.Duration(s.Tolerance * float64(s.Period))
			for k := 0; ticks < maxTicks; k++ {
				at := anchor + time.Duration(k)*s.Period
				if at >= end || at > span {
					break
				}
				ticks++
				what := "schedule anchor (first report)"
				if k > 0 {
					what = fmt.Sprintf("report expected at %s ± %s", Offset(at), Human(tol))
				}
				if tol > 0 && k > 0 {
					t.Rects = append(t.Rects, svgRect{X: x(at - tol), Y: l.Top + 10, W: max(x(at+tol)-x(at-tol), 1), H: laneHeight - 20, Class: "tol", Title: what})
				}
				t.Lines = append(t.Lines, svgLine{X1: x(at), Y1: l.Top + 6, X2: x(at), Y2: l.Bottom - 6, Class: "tick", Title: what})
			}
		}
	}

	// Reports and responses.
	lr := laneAt[laneReports]
	lresp, hasResp := laneAt[laneResponses]
	for _, m := range marks {
		switch m.Kind {
		case MarkReport:
			title, href := markTitle(m), ""
			if i, ok := reportOf(m); ok {
				href = "#" + reportAnchor(i)
				if ids := flagged[i]; len(ids) > 0 {
					title += " · findings: " + strings.Join(ids, ", ")
					t.Flags = append(t.Flags, svgDot{X: x(m.At), Y: lr.Mid, R: 9.5, Class: "flag", Title: title})
				}
			}
			t.Dots = append(t.Dots, svgDot{X: x(m.At), Y: lr.Mid, R: 6, Class: "report " + statusClass(m.Status), Title: title, Href: href})
			t.ReportMarkers++
		case MarkResponse:
			if hasResp {
				t.Paths = append(t.Paths, svgPath{D: diamond(x(m.At), lresp.Mid, 6), Class: "resp " + statusClass(m.Status), Title: markTitle(m)})
			}
		}
	}
	if la, ok := laneAt[laneAlarms]; ok {
		alarmLayer(t, f, la, x, span)
	}
	return t
}

// statusClass maps a mark status to a CSS class: accepted, rejected or other.
func statusClass(s string) string {
	switch strings.ToLower(s) {
	case MarkAccepted:
		return "accepted"
	case MarkRejected:
		return "rejected"
	}
	return "other"
}

func markTitle(m Mark) string {
	parts := []string{Offset(m.At), string(m.Kind)}
	if m.TargetAt != nil {
		parts[0] += " (target " + Offset(*m.TargetAt) + ")"
	}
	if m.ReportID != nil {
		parts = append(parts, "report_id "+strconv.FormatUint(*m.ReportID, 10))
	}
	if m.Status != "" {
		parts = append(parts, m.Status)
	}
	if m.ConnID != "" {
		parts = append(parts, "conn "+m.ConnID)
	}
	if m.Label != "" {
		parts = append(parts, m.Label)
	}
	return strings.Join(parts, " · ")
}

func clockName(c string) string {
	if c == "" {
		return "wall"
	}
	return c
}

var axisSteps = []time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

// axisStep picks a round step giving at most 12 axis labels.
func axisStep(span time.Duration) time.Duration {
	for _, s := range axisSteps {
		if span/s <= 12 {
			return s
		}
	}
	return span / 12
}

// axisLabel formats a round offset compactly: 0, 500ms, 2.5s, 1m30s, 2h.
func axisLabel(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	if d < time.Second {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	var b strings.Builder
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dh", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dm", m)
		d -= m * time.Minute
	}
	if d > 0 {
		b.WriteString(strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
		b.WriteString("s")
	}
	return b.String()
}

// labelRows places labels left to right in as many rows as they need. A
// label starts just right of its mark, or ends just left of it when it
// would run past the plot's right edge; it goes in the first row that is
// free from there on, and opens a new row when none is. So labels in one row never overlap,
// however many marks crowd together.
type labelRows struct {
	end         []float64
	left, right float64
}

func newLabelRows(left, right float64) *labelRows { return &labelRows{left: left, right: right} }

func (r *labelRows) place(x float64, text string) (row int, at float64) {
	w := textWidth(text)
	at = x + 3
	if at+w > r.right {
		at = max(min(x-3-w, r.right-w), r.left) // end at the mark instead
	}
	for i, e := range r.end {
		if e <= at {
			r.end[i] = at + w + labelGap
			return i, at
		}
	}
	r.end = append(r.end, at+w+labelGap)
	return len(r.end) - 1, at
}

// height is what a lane needs for the rows used so far.
func (r *labelRows) height() float64 {
	return 2*labelPad + float64(len(r.end))*labelRowStep
}

// labelRowY is the baseline of a label row, from the top of its lane.
func labelRowY(row int) float64 { return labelPad + 11 + float64(row)*labelRowStep }

// textWidth estimates a label's width in SVG units.
func textWidth(text string) float64 { return float64(utf8.RuneCountInString(text)) * charWidth }

// maxLabelRunes keeps a label within a quarter of the plot; the mark's
// tooltip has the full text.
const maxLabelRunes = 40

func fitLabel(text string) string {
	if utf8.RuneCountInString(text) <= maxLabelRunes {
		return text
	}
	return string([]rune(text)[:maxLabelRunes-1]) + "…"
}

func triangle(x, y num) string {
	return fmt.Sprintf("M%s %sL%s %sL%s %sZ", x, y-6, x+6, y+5, x-6, y+5)
}

func cross(x, y, r num) string {
	return fmt.Sprintf("M%s %sL%s %sM%s %sL%s %s", x-r, y-r, x+r, y+r, x-r, y+r, x+r, y-r)
}

func diamond(x, y, r num) string {
	return fmt.Sprintf("M%s %sL%s %sL%s %sL%s %sZ", x, y-r, x+r, y, x, y+r, x-r, y)
}
