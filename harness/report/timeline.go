package report

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The timeline is laid out here, in Go, and only printed by the HTML
// template: x is time since the run started, one lane per kind of thing.
// Geometry is in SVG user units; the SVG scales to the page width.
const (
	svgWidth     = 1200.0
	svgLeft      = 112.0 // room for lane names
	svgRight     = 20.0
	svgTop       = 6.0
	laneHeight   = 38.0
	axisHeight   = 24.0
	maxTicks     = 2000 // expected-schedule ticks drawn at most
	charWidth    = 6.2  // estimated width of a label character at 11px
	labelRowStep = 12.0
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
	laneLink
	laneExpected
	laneReports
	laneResponses
)

var laneNames = map[laneID]string{
	lanePhase: "phases", laneLink: "connection", laneExpected: "expected",
	laneReports: "reports", laneResponses: "responses",
}

// layoutTimeline turns the report's timeline, schedule and reports into
// drawable shapes. reportAnchor gives the HTML id of the received report a
// report mark refers to ("" when there is none).
func layoutTimeline(f *Report, reportAnchor func(m Mark) string) *svgTimeline {
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

	has := map[MarkKind]bool{}
	for _, m := range marks {
		has[m.Kind] = true
	}
	var lanes []laneID
	if has[MarkPhase] {
		lanes = append(lanes, lanePhase)
	}
	lanes = append(lanes, laneLink)
	if f.Schedule != nil && f.Schedule.Period > 0 {
		lanes = append(lanes, laneExpected)
	}
	lanes = append(lanes, laneReports)
	if has[MarkResponse] {
		lanes = append(lanes, laneResponses)
	}

	t := &svgTimeline{
		Width: svgWidth, PlotLeft: svgLeft, PlotRight: svgWidth - svgRight, PlotTop: svgTop,
	}
	laneAt := map[laneID]svgLane{}
	for i, id := range lanes {
		top := svgTop + float64(i)*laneHeight
		l := svgLane{
			Name: laneNames[id], Top: num(top), Mid: num(top + laneHeight/2), Bottom: num(top + laneHeight), H: laneHeight,
			LabelY: num(top + laneHeight/2 + 4), LabelX: svgLeft - 10, Left: svgLeft, Alternate: i%2 == 1,
		}
		laneAt[id] = l
		t.Lanes = append(t.Lanes, l)
	}
	t.PlotBottom = num(svgTop + float64(len(lanes))*laneHeight)
	t.Height = t.PlotBottom + axisHeight
	plotW := svgWidth - svgLeft - svgRight
	x := func(d time.Duration) num {
		d = min(max(d, 0), span)
		return num(svgLeft + float64(d)/float64(span)*plotW)
	}

	// Axis.
	step := axisStep(span)
	for d := time.Duration(0); d <= span; d += step {
		t.AxisTicks = append(t.AxisTicks, svgLine{X1: x(d), Y1: t.PlotTop, X2: x(d), Y2: t.PlotBottom + 4, Class: "grid"})
		t.Axis = append(t.Axis, svgText{X: x(d), Y: t.PlotBottom + 17, Anchor: "middle", Class: "axis", Text: axisLabel(d)})
	}
	t.Labels = append(t.Labels, svgText{X: svgLeft - 10, Y: t.PlotBottom + 17, Anchor: "end", Class: "lanename",
		Text: "time (" + clockName(f.Run.Clock) + ")"})

	phaseRows, markRows := newLabelRows(2), newLabelRows(2)
	// Phases: alternating bands from each phase mark to the next, labels
	// staggered over two rows.
	if l, ok := laneAt[lanePhase]; ok {
		var phases []Mark
		for _, m := range marks {
			if m.Kind == MarkPhase {
				phases = append(phases, m)
			}
		}
		for i, m := range phases {
			end := span
			if i+1 < len(phases) {
				end = phases[i+1].At
			}
			t.Rects = append(t.Rects, svgRect{X: x(m.At), Y: l.Top + 3, W: x(end) - x(m.At), H: laneHeight - 6,
				Class: "phase p" + strconv.Itoa(i%2), Title: fmt.Sprintf("phase %s: %s – %s", m.Label, Offset(m.At), Offset(end))})
			row, at := phaseRows.place(float64(x(m.At)), m.Label)
			t.Labels = append(t.Labels, label(num(at), l.Top+15+num(row)*labelRowStep, "phaselabel", m.Label))
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
			class := string(m.Kind)
			t.Lines = append(t.Lines, svgLine{X1: x(m.At), Y1: t.PlotTop, X2: x(m.At), Y2: t.PlotBottom, Class: class, Title: markTitle(m)})
			text := string(m.Kind)
			if m.Label != "" {
				text += ": " + m.Label
			}
			row, at := markRows.place(float64(x(m.At)), text)
			y := l.Top + 11
			if row == 1 {
				y = l.Bottom - 3
			}
			t.Labels = append(t.Labels, label(num(at), y, "marklabel "+class, text))
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
			t.Dots = append(t.Dots, svgDot{X: x(m.At), Y: lr.Mid, R: 6, Class: "report " + statusClass(m.Status), Title: markTitle(m), Href: reportAnchor(m)})
			t.ReportMarkers++
		case MarkResponse:
			if hasResp {
				t.Paths = append(t.Paths, svgPath{D: diamond(x(m.At), lresp.Mid, 6), Class: "resp " + statusClass(m.Status), Title: markTitle(m)})
			}
		}
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

// labelRows places labels left to right in rows: in the first row that is
// free at x, else in the row that frees first, pushed right past the label
// before it so that labels never overlap.
type labelRows struct{ end []float64 }

func newLabelRows(n int) *labelRows {
	r := &labelRows{end: make([]float64, n)}
	for i := range r.end {
		r.end[i] = -1e9
	}
	return r
}

func (r *labelRows) place(x float64, text string) (row int, at float64) {
	for i, e := range r.end {
		if e <= x {
			row = i
			break
		}
		if e < r.end[row] {
			row = i
		}
	}
	at = max(x, r.end[row])
	r.end[row] = at + float64(len([]rune(text)))*charWidth + 8
	return row, at
}

// label puts text just right of x, or just left of it when it would run
// past the right edge of the plot.
func label(x, y num, class, text string) svgText {
	w := num(float64(len([]rune(text))) * charWidth)
	if x+3+w > svgWidth-svgRight {
		return svgText{X: x - 3, Y: y, Anchor: "end", Class: class, Text: text}
	}
	return svgText{X: x + 3, Y: y, Anchor: "start", Class: class, Text: text}
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
