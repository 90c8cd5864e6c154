package conformance

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ddhil/ddhil/broker"
)

// onTargetClock lists the checks judged on the target's clock when the
// capture has a trusted one (see Capture.TargetClock): everything that
// measures a time span of the firmware.
var onTargetClock = map[string]bool{"DD-T01": true, "DD-T02": true, "DD-T03": true, "DD-R01": true, "DD-R02": true}

// stampClocks puts findings judged on the view v back on the capture's
// host clock (the timeline's) and records both clocks in the evidence.
func stampClocks(v *Capture, fs []Finding) {
	for i := range fs {
		f := &fs[i]
		if f.Evidence == nil {
			f.Evidence = map[string]any{}
		}
		f.Evidence["clock"] = v.TimeBase()
		if v.host != nil {
			f.Evidence["target_at"] = round(f.At).String()
			f.At = v.hostAt(f.At)
			f.Evidence["host_at"] = round(f.At).String()
		} else if v.TargetClock != nil {
			_, why := v.ClockTrusted()
			f.Evidence["clock_note"] = why
		}
	}
}

// absorb turns a finding that the host's stalls can explain into an
// inconclusive outcome: excess is how far past its bound the finding's
// measure went, stall what the host took over the span it was measured on
// (stallIn). A finding the stalls cannot explain stays a failure.
func absorb(c *Capture, out *Outcome, f Finding, excess, stall time.Duration, why string) {
	if stall > 0 && stall >= excess {
		if out.Inconclusive == "" {
			out.Inconclusive = fmt.Sprintf("%s (judged on %s): the host stalled the run by up to %s in that window (%s), more than the %s past the bound",
				f.Message, c.TimeBase(), round(stall), why, round(excess))
		}
		return
	}
	if f.Evidence != nil {
		f.Evidence["host_stall"] = round(stall).String()
	}
	out.Findings = append(out.Findings, f)
}

// normalReports returns the reports of the normal-reporting phase (all of
// them when the capture records no phases), in order.
func (c *Capture) normalReports() []ReportView {
	hasPhases := len(c.ActionsOf(ActionPhase)) > 0
	var out []ReportView
	for _, r := range c.Reports() {
		if !hasPhases || c.phaseAt(r.At()) == "normal" {
			out = append(out, r)
		}
	}
	return out
}

// cycles collapses reports closer than half a period into one reporting
// cycle, so a burst is judged by DD-T03 and not again as a bad period.
func cycles(reports []ReportView, period time.Duration) []ReportView {
	var out []ReportView
	for _, r := range reports {
		if n := len(out); n > 0 && out[n-1].Event.ConnID == r.Event.ConnID && r.At()-out[n-1].At() < period/2 {
			continue
		}
		out = append(out, r)
	}
	return out
}

// checkFirstReport: after every MQTT connection that stays up long enough,
// the first report arrives within the bound.
func checkFirstReport(c *Capture) Outcome {
	bound := c.Expect.FirstReportBound
	conns := c.Connects()
	if len(conns) == 0 {
		return skip("the device never connected")
	}
	reports := c.Reports()
	var out Outcome
	var delays []string
	for _, conn := range conns {
		end := c.End
		for _, ev := range c.Events {
			if ev.Kind == broker.EventDisconnect && ev.ConnID == conn.ConnID && ev.Mono >= conn.Mono {
				end = ev.Mono
				break
			}
		}
		var first *ReportView
		for i := range reports {
			if reports[i].Event.ConnID == conn.ConnID {
				first = &reports[i]
				break
			}
		}
		if first != nil {
			delays = append(delays, round(first.At()-conn.Mono).String())
		} else {
			delays = append(delays, "none in "+round(end-conn.Mono).String())
		}
		switch {
		case first != nil && first.At()-conn.Mono > bound:
			st, why := c.stallIn(conn.Mono, first.At())
			absorb(c, &out, finding(first,
				fmt.Sprintf("first report %s after the connection; bound %s", round(first.At()-conn.Mono), bound),
				map[string]any{"connected_at": conn.Mono.String(), "first_report_at": first.At().String(), "bound": bound.String()}).
				expecting("≤ "+bound.String(), round(first.At()-conn.Mono).String()),
				first.At()-conn.Mono-bound, st, why)
		case first == nil && end-conn.Mono > bound:
			out.Findings = append(out.Findings, Finding{At: conn.Mono,
				Message:  fmt.Sprintf("no report within %s of the connection (connection lasted %s)", bound, round(end-conn.Mono)),
				Evidence: map[string]any{"connected_at": conn.Mono.String(), "bound": bound.String(), "conn_id": conn.ConnID}}.
				expecting("a report within "+bound.String(), "none in "+round(end-conn.Mono).String()))
		}
	}
	out.Measured = fmt.Sprintf("%s; first report after %s (bound %s, on %s)", plural(len(conns), "connection"), strings.Join(delays, ", "), bound, c.TimeBase())
	return out
}

// checkPeriod: the median interval between reporting cycles on one
// connection is within tolerance of the provisioned period, and the 95th
// percentile of the deviation from it is bounded.
func checkPeriod(c *Capture) Outcome {
	period := c.Expect.TestPeriod
	cyc := cycles(c.normalReports(), period)
	var intervals []time.Duration
	for i := 1; i < len(cyc); i++ {
		if cyc[i].Event.ConnID == cyc[i-1].Event.ConnID {
			intervals = append(intervals, cyc[i].At()-cyc[i-1].At())
		}
	}
	if len(intervals) < 3 {
		return skip("fewer than 3 report intervals in the normal phase (%d)", len(intervals))
	}
	sorted := append([]time.Duration(nil), intervals...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	median := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	// What the host took from each interval: enough of it explains a
	// deviation (inconclusive), too little leaves it the firmware's.
	var stalls []time.Duration
	var stallWhy []string
	for i := 1; i < len(cyc); i++ {
		if cyc[i].Event.ConnID == cyc[i-1].Event.ConnID {
			st, why := c.stallIn(cyc[i-1].At(), cyc[i].At())
			stalls, stallWhy = append(stalls, st), append(stallWhy, why)
		}
	}
	dev := make([]time.Duration, len(intervals))
	for i, iv := range intervals {
		d := iv - median
		if d < 0 {
			d = -d
		}
		dev[i] = d
	}
	sort.Slice(dev, func(i, j int) bool { return dev[i] < dev[j] })
	p95 := dev[(len(dev)*95+99)/100-1]
	ev := map[string]any{"expected_period": period.String(), "median_interval": round(median).String(),
		"jitter_p95": round(p95).String(), "intervals": len(intervals), "tolerance": c.Expect.Tolerance}
	ev["clock"] = c.TimeBase()
	jitterBound := time.Duration(c.Expect.JitterP95 * float64(period))
	out := Outcome{Measured: fmt.Sprintf("%d intervals on %s: median %s (expected %s ± %.0f%%), jitter p95 %s (bound %s)",
		len(intervals), c.TimeBase(), round(median), period, c.Expect.Tolerance*100, round(p95), round(jitterBound))}
	rel := float64(median-period) / float64(period)
	if rel > c.Expect.Tolerance || rel < -c.Expect.Tolerance {
		off := median - period
		if off < 0 {
			off = -off
		}
		excess := off - time.Duration(c.Expect.Tolerance*float64(period))
		st, why := quantile(stalls, stallWhy, 50)
		absorb(c, &out, Finding{At: cyc[len(cyc)-1].At(), Evidence: ev,
			Message: fmt.Sprintf("median report interval %s is %+.0f%% off the expected %s (tolerance ±%.0f%%)",
				round(median), rel*100, period, c.Expect.Tolerance*100),
			Expected: fmt.Sprintf("median %s ± %.0f%%", period, c.Expect.Tolerance*100), Observed: fmt.Sprintf("median %s (%+.0f%%)", round(median), rel*100)},
			excess, st, "median interval: "+why)
	}
	if p95 > jitterBound {
		st, why := quantile(stalls, stallWhy, 95)
		absorb(c, &out, Finding{At: cyc[len(cyc)-1].At(), Evidence: ev,
			Message:  fmt.Sprintf("interval jitter p95 %s exceeds %.0f%% of the period", round(p95), c.Expect.JitterP95*100),
			Expected: "jitter p95 ≤ " + round(jitterBound).String(), Observed: "jitter p95 " + round(p95).String()},
			p95-jitterBound, st, "p95 interval: "+why)
	}
	return out
}

// quantile returns the q-th percentile of vs with its explanation.
func quantile(vs []time.Duration, why []string, q int) (time.Duration, string) {
	if len(vs) == 0 {
		return 0, ""
	}
	idx := make([]int, len(vs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return vs[idx[a]] < vs[idx[b]] })
	k := (len(vs)*q+99)/100 - 1
	if k < 0 {
		k = 0
	}
	return vs[idx[k]], why[idx[k]]
}

// checkThrottle: the production period respects AWS's 300 s throttle, and the
// device never sends two reports in one cycle (a burst that AWS would answer
// with Throttled). Pairs separated by a reset, a reconnect or a rejection are
// left to DD-I02/DD-R01/DD-R02.
func checkThrottle(c *Capture) Outcome {
	var out Outcome
	if c.Expect.ProductionPeriod < c.Expect.ThrottleWindow {
		out.Findings = append(out.Findings, Finding{
			Message: fmt.Sprintf("declared production period %s is shorter than the %s throttle window: AWS would reject reports as Throttled",
				c.Expect.ProductionPeriod, c.Expect.ThrottleWindow),
			Evidence: map[string]any{"production_period": c.Expect.ProductionPeriod.String(), "throttle_window": c.Expect.ThrottleWindow.String()},
			Expected: "production period ≥ " + c.Expect.ThrottleWindow.String(), Observed: c.Expect.ProductionPeriod.String()})
	}
	reports := c.Reports()
	if len(reports) < 2 && len(out.Findings) == 0 {
		return skip("fewer than 2 reports")
	}
	minGap := c.Expect.TestPeriod / 2
	for i := 1; i < len(reports); i++ {
		prev, cur := &reports[i-1], &reports[i]
		if cur.Event.ConnID != prev.Event.ConnID || c.interruptedBetween(prev, cur) {
			continue
		}
		if gap := cur.At() - prev.At(); gap < minGap {
			// A stall can bunch two reports of different cycles together.
			st, why := c.stallIn(prev.At()-c.Expect.TestPeriod, cur.At())
			absorb(c, &out, finding(cur,
				fmt.Sprintf("two reports %s apart in one cycle (period %s); at the production period AWS throttles the second", round(gap), c.Expect.TestPeriod),
				map[string]any{"gap": round(gap).String(), "previous_at": prev.At().String()}).
				expecting("reports ≥ "+minGap.String()+" apart", round(gap).String()+" apart"), minGap-gap, st, why)
		}
	}
	bursts := len(out.Findings)
	if c.Expect.ProductionPeriod < c.Expect.ThrottleWindow {
		bursts--
	}
	out.Measured = fmt.Sprintf("production period %s (throttle window %s); %d reports, %d closer than %s on one connection",
		c.Expect.ProductionPeriod, c.Expect.ThrottleWindow, len(reports), bursts, minGap)
	return out
}

// interruptedBetween reports whether a harness action or a rejection lies
// between two reports.
func (c *Capture) interruptedBetween(a, b *ReportView) bool {
	for _, act := range c.Actions {
		if act.Kind != ActionPhase && act.Kind != ActionFault && act.At >= a.At() && act.At <= b.At() {
			return true
		}
	}
	return a.Response != nil && a.Response.Response != nil && a.Response.Response.Status != "ACCEPTED"
}
