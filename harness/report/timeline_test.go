package report

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

// runReport generates the report of a reference-agent run of n normal
// periods of 1 s followed by the scenario's short phases (disconnect,
// reject, drop-response, reset), with a fault switched on and off in every
// phase: the shape of `ddhil run --periods n`, where the later phases
// crowd into the right end of the timeline as n grows.
func runReport(n int) *Report {
	r := sampleReport()
	r.Timeline, r.Reports = nil, nil
	r.Checks = []Check{{ID: "DD-A02", Title: "traffic agrees", Severity: SeverityFail, Status: StatusFail}}
	at := time.Duration(0)
	mark := func(kind MarkKind, label string) {
		r.Timeline = append(r.Timeline, Mark{At: at, Kind: kind, Label: label})
	}
	id := uint64(0)
	report := func(conn string) {
		id++
		rid := id
		r.Timeline = append(r.Timeline, Mark{At: at, Kind: MarkReport, ReportID: &rid, Status: MarkAccepted, ConnID: conn})
		rc := Received{At: at, ReportID: &rid, ConnID: conn, Topic: "t", Accepted: true, Answer: MarkAccepted}
		rc.KeepPayload([]byte(`{}`))
		r.Reports = append(r.Reports, rc)
		if id%3 == 0 { // every third report has a finding against it
			at := at
			r.Checks[0].Findings = append(r.Checks[0].Findings, Finding{Message: "disagrees", ReportID: &rid, At: &at, Expected: "1", Observed: "2"})
		}
	}
	mark(MarkPhase, "boot")
	mark(MarkFault, "ns-inflate on")
	at += 200 * time.Millisecond
	r.Timeline = append(r.Timeline, Mark{At: at, Kind: MarkConnect, ConnID: "c1"})
	mark(MarkPhase, "normal")
	for i := 0; i < n+1; i++ {
		at += time.Second
		report("c1")
	}
	for _, phase := range []string{"disconnect", "reject", "drop-response", "reset"} {
		at += 100 * time.Millisecond
		mark(MarkPhase, phase)
		mark(MarkFault, "drop-link "+phase)
		if phase == "reset" {
			mark(MarkReset, "hardware reset (QMP system_reset)")
		}
		at += 400 * time.Millisecond
		report("c1")
	}
	at += 50 * time.Millisecond
	mark(MarkPhase, "teardown")
	mark(MarkFault, "ns-inflate off")
	r.Run.Duration = at + 100*time.Millisecond
	r.Run.Finished = r.Run.Started.Add(r.Run.Duration)
	return r
}

// TestTimelineLabelsNeverOverlap lays out generated runs of 5, 30 and 100
// periods: no two labels drawn in the timeline overlap, and each stays in
// the drawing. TestChromiumTimelineLabels checks the same with the sizes a
// browser really renders.
func TestTimelineLabelsNeverOverlap(t *testing.T) {
	for _, n := range []int{5, 30, 100} {
		t.Run(fmt.Sprint(n, " periods"), func(t *testing.T) {
			f := runReport(n).finalized()
			tl := layoutTimeline(f, reportMarks(f), make([][]string, len(f.Reports)))
			type box struct {
				text           string
				x0, x1, y0, y1 float64
			}
			var boxes []box
			for _, l := range tl.Labels {
				w := textWidth(l.Text)
				x0 := float64(l.X)
				switch l.Anchor {
				case "end":
					x0 -= w
				case "middle":
					x0 -= w / 2
				}
				b := box{l.Text, x0, x0 + w, float64(l.Y) - 11, float64(l.Y) + 2}
				assert.GreaterOrEqual(t, b.x0, 0.0, "%q runs off the left", l.Text)
				assert.LessOrEqual(t, b.x1, svgWidth, "%q runs off the right", l.Text)
				boxes = append(boxes, b)
			}
			require.Greater(t, len(boxes), 10)
			for i, a := range boxes {
				for _, b := range boxes[i+1:] {
					if a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 {
						t.Errorf("labels overlap: %q [%.0f–%.0f] and %q [%.0f–%.0f] at y %.0f/%.0f", a.text, a.x0, a.x1, b.text, b.x0, b.x1, a.y0, b.y0)
					}
				}
			}
		})
	}
}

// TestTimelineMarksReportsWithFindings: a report with a finding against it
// gets a ring naming the check; the others do not.
func TestTimelineMarksReportsWithFindings(t *testing.T) {
	doc := parseHTML(t, runReport(30))
	svg := findAll(doc, element("svg"))[0]
	flags := findAll(svg, func(n *html.Node) bool { return element("circle")(n) && hasClass(n, "flag") })
	assert.Len(t, flags, 11, "every third of the 35 reports")
	for _, f := range flags {
		assert.Contains(t, text(f), "findings: DD-A02")
	}
}
