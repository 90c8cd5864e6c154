package conformance

import (
	"fmt"
	"strings"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
)

// checkReconnect: after the broker drops the link, and after a reboot, the
// device reconnects within its bound and resumes reporting. A run that
// ended before the bound (Ctrl-C) is not judged.
func checkReconnect(c *Capture) Outcome {
	var restarts []Action
	for _, a := range c.Actions {
		if a.Kind == ActionKick || a.Kind == ActionReset {
			restarts = append(restarts, a)
		}
	}
	if len(restarts) == 0 {
		why := "the run neither dropped the device's connection nor reset it"
		if missed := c.ActionsOf(ActionKickMissed); len(missed) > 0 {
			why += " (" + missed[0].Detail + ")"
		}
		return skip("%s", why)
	}
	var out Outcome
	judged := 0
	var took []string
	for _, k := range restarts {
		what := map[string]string{ActionKick: "the broker dropped the link", ActionReset: "the reset"}[k.Kind]
		var conn *broker.Event
		for i := range c.Events {
			ev := &c.Events[i]
			// Any new connection counts: the device may use a client ID
			// other than its thing name (DD-P03 only warns about that).
			if ev.Kind == broker.EventConnect && ev.Error == "" && ev.Mono > k.At {
				conn = ev
				break
			}
		}
		limit := k.At + c.Expect.ReconnectBound
		if conn == nil || conn.Mono > limit {
			if c.End < limit && conn == nil {
				took = append(took, k.Kind+": run ended first")
				continue // the run ended before the bound: nothing to judge
			}
			judged++
			observed := "no reconnect before the run ended"
			if conn != nil {
				observed = "reconnected after " + round(conn.Mono-k.At).String()
			}
			took = append(took, k.Kind+": "+observed)
			out.Findings = append(out.Findings, Finding{At: k.At, Message: fmt.Sprintf("no reconnect within %s after %s", c.Expect.ReconnectBound, what),
				Evidence: map[string]any{"action": k.Kind, "at": k.At.String(), "bound": c.Expect.ReconnectBound.String()}}.
				expecting("reconnect within "+c.Expect.ReconnectBound.String(), observed))
			continue
		}
		judged++
		took = append(took, fmt.Sprintf("%s: %s", k.Kind, round(conn.Mono-k.At)))
		resumed := false
		for _, r := range c.Reports() {
			if r.Event.ConnID == conn.ConnID {
				resumed = true
				break
			}
		}
		if !resumed && c.End-conn.Mono > c.Expect.FirstReportBound {
			out.Findings = append(out.Findings, Finding{At: conn.Mono, Message: fmt.Sprintf("reconnected after %s but sent no report within %s", what, c.Expect.FirstReportBound),
				Evidence: map[string]any{"action": k.Kind, "reconnected_at": conn.Mono.String(), "reconnect_after": round(conn.Mono - k.At).String()}}.
				expecting("a report within "+c.Expect.FirstReportBound.String()+" of reconnecting", "none in "+round(c.End-conn.Mono).String()))
		}
	}
	if judged == 0 {
		// Not a pass: nothing was seen to reconnect.
		return skip("the run ended within the reconnect bound (%s) of every drop and reset, with no reconnect seen", c.Expect.ReconnectBound)
	}
	out.Measured = fmt.Sprintf("reconnect after %s (bound %s)", strings.Join(took, ", "), c.Expect.ReconnectBound)
	return out
}

// checkBackoff: after a rejection (Throttled or other) the device does not
// storm the service, and when a response never comes it carries on.
func checkBackoff(c *Capture) Outcome {
	reports := c.Reports()
	period := c.Expect.TestPeriod
	var out Outcome
	judged, rejections, drops := 0, 0, 0
	for i := range reports {
		r := &reports[i]
		if r.Thing != c.Thing {
			continue
		}
		if r.Response != nil && r.Response.Response != nil && r.Response.Response.Status == defender.StatusRejected {
			judged++
			rejections++
			t := r.Response.Mono
			var storm []string
			for j := i + 1; j < len(reports); j++ {
				if reports[j].At() >= t+period/2 {
					break
				}
				// A reset or reconnect the harness caused (even one that raced
				// the response) explains a quick report.
				if reports[j].Thing == c.Thing && !c.restartBetween(r.At(), reports[j].At()) {
					storm = append(storm, round(reports[j].At()-t).String())
				}
			}
			// ... and carries on: Throttled may cost it a period or two,
			// not its reporting.
			resume := t + 4*period + c.Expect.FirstReportBound
			if c.End > resume && !c.restartBetween(r.At(), resume) && !c.reportBetween(t, resume) {
				out.Findings = append(out.Findings, finding(r,
					fmt.Sprintf("no report within %s after a rejection: the device stopped reporting", round(resume-t)), nil).
					expecting("a report within "+round(resume-t).String(), "none"))
			}
			if len(storm) > 0 {
				code := ""
				if d := r.Response.Response.StatusDetails; d != nil {
					code = d.ErrorCode
				}
				out.Findings = append(out.Findings, finding(r,
					fmt.Sprintf("%d report(s) within %s of a %s rejection (after %s): the device retries instead of backing off", len(storm), period/2, code, strings.Join(storm, ", ")),
					map[string]any{"code": code, "retries_after": storm}).
					expecting(fmt.Sprintf("no report within %s", period/2), fmt.Sprintf("%d after %s", len(storm), strings.Join(storm, ", "))))
			}
		}
		if r.Response == nil && c.responseDropped(r) {
			judged++
			drops++
			deadline := r.At() + 3*period
			next := false
			for j := i + 1; j < len(reports); j++ {
				if reports[j].Thing == c.Thing && reports[j].At() <= deadline {
					next = true
				}
			}
			if !next && !c.restartBetween(r.At(), deadline) && c.End > deadline {
				out.Findings = append(out.Findings, finding(r,
					fmt.Sprintf("no report within %s after a report that got no response: the device stopped reporting", 3*period), nil).
					expecting("a report within "+(3*period).String(), "none"))
			}
		}
	}
	if judged == 0 {
		return skip("no rejection and no dropped response in this run")
	}
	out.Measured = fmt.Sprintf("behaviour after %s and %s judged", plural(rejections, "rejection"), plural(drops, "dropped response"))
	return out
}

// responseDropped reports whether the broker deliberately answered nothing
// to r (fault injection), as opposed to the run ending first.
func (c *Capture) responseDropped(r *ReportView) bool {
	for _, ev := range c.Events {
		if ev.Kind == broker.EventResponse && ev.ConnID == r.Event.ConnID && ev.Seq > r.Event.Seq && ev.Fault == broker.FaultDrop {
			return true
		}
	}
	return false
}

// restartBetween reports whether a reset or a kick happened in [a, b].
func (c *Capture) restartBetween(a, b time.Duration) bool {
	for _, act := range c.Actions {
		if (act.Kind == ActionReset || act.Kind == ActionKick) && act.At >= a && act.At <= b {
			return true
		}
	}
	return false
}

// reportBetween reports whether the device published a report in (a, b].
func (c *Capture) reportBetween(a, b time.Duration) bool {
	for _, r := range c.Reports() {
		if r.Thing == c.Thing && r.At() > a && r.At() <= b {
			return true
		}
	}
	return false
}
