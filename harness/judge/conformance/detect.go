package conformance

import (
	"fmt"
	"time"

	"github.com/ddhil/ddhil/harness/judge/detect"
)

const citeDetect = "AWS IoT Device Defender guide, Detect: behaviors, violations and alarms (detect-behaviors, detect-concepts, device-defender-troubleshoot); research note detect-audit.md §3-4"

// DetectWindow is the part of a capture Detect judges: up to the end of
// the normal phase (later phases are the harness's kicks, rejections and
// resets), or everything when no phase was recorded.
func (c *Capture) DetectWindow() (end time.Duration, what string) {
	var phases []detect.Phase
	for _, a := range c.ActionsOf(ActionPhase) {
		phases = append(phases, detect.Phase{At: a.At, Kind: a.Kind, Name: a.Detail})
	}
	end = c.End
	for _, ev := range c.Events {
		end = max(end, ev.Mono)
	}
	if e, ok := detect.NormalEnd(phases, end); ok {
		return e, fmt.Sprintf("normal phase (until %s)", e.Round(time.Millisecond))
	}
	return end, "whole run"
}

// EvaluateDetect evaluates the capture's security profiles over its normal
// phase, with durations scaled by the test period against the production
// period as the timing checks are. It returns nil when no profile was given.
func (c *Capture) EvaluateDetect() (*detect.Result, string) {
	if c.SecurityProfiles == nil || len(c.SecurityProfiles.Profiles) == 0 {
		return nil, ""
	}
	e := c.Expect.WithDefaults()
	end, window := c.DetectWindow()
	rec := (&detect.Recording{Events: c.Events, Scale: detect.Scale{TestPeriod: e.TestPeriod, ProductionPeriod: e.ProductionPeriod}}).Until(end)
	return c.SecurityProfiles.Evaluate(rec, c.Baseline), window
}

// checkDetect (DD-D01): no behaviour of the given security profiles goes
// into alarm while the device operates normally. Suppressed behaviours
// count too: AWS still records their violations.
func checkDetect(c *Capture) Outcome {
	res, window := c.EvaluateDetect()
	if res == nil {
		return skip("no security profile given (ddhil run --security-profile F, or security_profiles: in the device profile)")
	}
	var out Outcome
	for _, v := range res.Violations {
		if v.State != detect.InAlarm {
			continue
		}
		ev := map[string]any{"security_profile": v.Profile, "behavior": v.Behavior, "metric": v.Metric, "thing": v.Thing,
			"violation_id": v.ID, "datapoints": v.Datapoints, "window": window, "time_scale": res.TimeScale}
		val := ""
		if v.Value != nil {
			ev["value"] = v.Value.String()
			val = " with " + v.Value.String()
		}
		if v.Threshold != nil {
			ev["threshold"] = *v.Threshold
		}
		out.Findings = append(out.Findings, Finding{At: v.At, Evidence: ev,
			Message: fmt.Sprintf("behaviour %s of security profile %s (%s) went into alarm%s after %d violating datapoint(s)",
				v.Behavior, v.Profile, v.Metric, val, v.Datapoints)})
	}
	if len(out.Findings) > 0 {
		return out
	}
	n := 0
	for _, k := range res.Datapoints {
		n += k
	}
	if n == 0 {
		return skip("the security profiles' behaviours got no datapoint in the %s", window)
	}
	return out
}
