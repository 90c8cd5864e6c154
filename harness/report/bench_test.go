package report

import (
	"io"
	"testing"
	"time"

	"github.com/ddhil/ddhil/broker/defender"
	"golang.org/x/net/html"
)

// soakReport is a long run: n reports every 300 s on one connection.
func soakReport(n int) *Report {
	r := sampleWithVerdict(Pass)
	r.Timeline = r.Timeline[:3] // phases and the first connect
	r.Reports = nil
	topic := "$aws/things/" + sampleThing + "/defender/metrics/json"
	for i := range n {
		at := time.Duration(i+1) * 300 * time.Second
		spec := sampleReportSpec{at: at, id: uint64(i + 1), conn: "c1", bytesIn: 96, bytesOut: 412}
		payload, dec := samplePayload(spec)
		rc := Received{At: at, ReportID: u64(spec.id), ConnID: "c1", Topic: topic, Format: defender.JSON, Accepted: true, Decoded: dec}
		rc.KeepPayload(payload)
		r.Reports = append(r.Reports, rc)
		r.Timeline = append(r.Timeline, Mark{At: at, Kind: MarkReport, ReportID: u64(spec.id), Status: MarkAccepted, ConnID: "c1"})
	}
	r.Run.Duration = time.Duration(n+1) * 300 * time.Second
	r.Run.Finished = r.Run.Started.Add(r.Run.Duration)
	r.Schedule.Period = 300 * time.Second
	return r
}

func BenchmarkWriters(b *testing.B) {
	for _, tc := range []struct {
		name string
		r    *Report
	}{{"sample", sampleReport()}, {"soak-1000", soakReport(1000)}} {
		for _, f := range Formats() {
			b.Run(tc.name+"/"+f.File, func(b *testing.B) {
				for b.Loop() {
					if err := f.Write(io.Discard, tc.r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func TestSoakReportRenders(t *testing.T) {
	doc := parseHTML(t, soakReport(1000))
	svg := findAll(doc, element("svg"))[0]
	dots := findAll(svg, func(n *html.Node) bool { return element("circle")(n) && hasClass(n, "report") })
	if len(dots) != 1000 {
		t.Fatalf("want 1000 report markers, got %d", len(dots))
	}
}
