package conformance

import (
	"fmt"
	"slices"
	"strings"
)

// What the accuracy checks say they compared: the oracle's figures and the
// device's, in the words a reviewer reads in the report.

// carriedText is what the module carried since the previous report, with
// the inbound window as a range: "out 597 B / 2 pkts, in 40..80 B / 1..2 pkts".
func (s statsSample) carriedText() string {
	return fmt.Sprintf("out %d B / %d pkts, in %s B / %s pkts", s.delta.bytesOut, s.delta.pktsOut,
		span(s.deltaInLowB, s.deltaInHighB), span(s.deltaInLowP, s.deltaInHighP))
}

// reportedText is the device's network_stats: "out 897 B / 2 pkts, in 40 B / 1 pkts".
func (s statsSample) reportedText() string {
	return fmt.Sprintf("out %s B / %s pkts, in %s B / %s pkts",
		orMissing(s.ns.BytesOut), orMissing(s.ns.PacketsOut), orMissing(s.ns.BytesIn), orMissing(s.ns.PacketsIn))
}

func span(lo, hi uint64) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d..%d", lo, hi)
}

func orMissing(v *uint64) string {
	if v == nil {
		return "missing"
	}
	return fmt.Sprint(*v)
}

// trafficMeasured totals every sample's reported and carried outbound bytes
// and packets: the compared totals DD-A02 rests on.
func trafficMeasured(samples []statsSample) string {
	var repB, repP, carB, carP uint64
	for _, s := range samples {
		if s.ns.BytesOut != nil {
			repB += *s.ns.BytesOut
		}
		if s.ns.PacketsOut != nil {
			repP += *s.ns.PacketsOut
		}
		carB += s.delta.bytesOut
		carP += s.delta.pktsOut
	}
	return fmt.Sprintf("network_stats of %s compared with the module's counts; outbound totals: reported %d B / %d pkts, carried %d B / %d pkts",
		plural(len(samples), "report"), repB, repP, carB, carP)
}

// deltasMeasured says how many reports could tell deltas from totals.
func deltasMeasured(samples []statsSample, judged int) string {
	return fmt.Sprintf("%s with network_stats; %d of them after another report since boot, where deltas and running totals differ",
		plural(len(samples), "report"), judged)
}

func listedText(listed []string) string {
	if len(listed) == 0 {
		return "no connection listed"
	}
	return "listed " + strings.Join(listed, ", ")
}

func slicesContains(list []string, s string) bool { return slices.Contains(list, s) }
