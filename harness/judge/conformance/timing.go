package conformance

import (
	"fmt"
	"sort"
	"time"
)

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
	jitterBound := time.Duration(c.Expect.JitterP95 * float64(period))
	out := Outcome{Measured: fmt.Sprintf("%d intervals: median %s (expected %s ± %.0f%%), jitter p95 %s (bound %s)",
		len(intervals), round(median), period, c.Expect.Tolerance*100, round(p95), round(jitterBound))}
	rel := float64(median-period) / float64(period)
	if rel > c.Expect.Tolerance || rel < -c.Expect.Tolerance {
		out.Findings = append(out.Findings, Finding{At: cyc[len(cyc)-1].At(), Evidence: ev,
			Message: fmt.Sprintf("median report interval %s is %+.0f%% off the expected %s (tolerance ±%.0f%%)",
				round(median), rel*100, period, c.Expect.Tolerance*100),
			Expected: fmt.Sprintf("median %s ± %.0f%%", period, c.Expect.Tolerance*100), Observed: fmt.Sprintf("median %s (%+.0f%%)", round(median), rel*100)})
	}
	if float64(p95) > c.Expect.JitterP95*float64(period) {
		out.Findings = append(out.Findings, Finding{At: cyc[len(cyc)-1].At(), Evidence: ev,
			Message:  fmt.Sprintf("interval jitter p95 %s exceeds %.0f%% of the period", round(p95), c.Expect.JitterP95*100),
			Expected: "jitter p95 ≤ " + round(jitterBound).String(), Observed: "jitter p95 " + round(p95).String()})
	}
	return out
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
			out.Findings = append(out.Findings, finding(cur,
				fmt.Sprintf("two reports %s apart in one cycle (period %s); at the production period AWS throttles the second", round(gap), c.Expect.TestPeriod),
				map[string]any{"gap": round(gap).String(), "previous_at": prev.At().String()}).
				expecting("reports ≥ "+minGap.String()+" apart", round(gap).String()+" apart"))
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
