package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ddhil/ddhil/harness/report/markup"
)

// Detect is the Device Defender Detect evaluation of the run: the security
// profiles given with --security-profile and the violation events their
// behaviours raised (docs/detect.md). Offsets count from Run.Started.
type Detect struct {
	SecurityProfiles []DetectProfile `json:"security_profiles"`
	Violations       []Violation     `json:"violations"`
	// Skipped lists behaviours not evaluated (ML Detect, ...) with the reason.
	Skipped []DetectSkipped `json:"skipped,omitempty"`
	// Window says which part of the run was evaluated (its normal phase);
	// WindowEnd is where it ends (ns from the run start): an alarm still
	// open there is drawn up to it.
	Window    string        `json:"window,omitempty"`
	WindowEnd time.Duration `json:"window_end_ns,omitempty"`
	// TimeScale says how AWS's durations were scaled to the run.
	TimeScale string `json:"time_scale,omitempty"`
}

// DetectProfile names one security profile.
type DetectProfile struct {
	Name      string `json:"name"`
	Path      string `json:"path,omitempty"`
	Behaviors int    `json:"behaviors"`
}

// DetectSkipped is a behaviour that was not evaluated.
type DetectSkipped struct {
	Profile  string `json:"security_profile"`
	Behavior string `json:"behavior"`
	Reason   string `json:"reason"`
}

// Violation is one violation event (in-alarm, alarm-cleared or
// alarm-invalidated), shaped after AWS's ViolationEvent.
type Violation struct {
	Behavior string        `json:"behavior"`
	Metric   string        `json:"metric"`
	State    string        `json:"state"`
	At       time.Duration `json:"at"` // ns from the run start
	// Value is the datapoint as AWS's MetricValue ({"count": 6100},
	// {"ports": [23, 80]}, ...); absent for alarm-invalidated.
	Value json.RawMessage `json:"value,omitempty"`
	// Datapoints is the run of consecutive datapoints that caused the event.
	Datapoints  int      `json:"datapoints"`
	Profile     string   `json:"security_profile"`
	Thing       string   `json:"thing,omitempty"`
	ViolationID string   `json:"violation_id,omitempty"`
	Threshold   *float64 `json:"threshold,omitempty"`
	Suppressed  bool     `json:"suppressed,omitempty"`
}

// Audit holds the device-facing Audit findings of the run.
type Audit struct {
	Findings []AuditFinding `json:"findings"`
}

// AuditFinding is one Audit finding, summarised; Finding keeps AWS's whole
// AuditFinding object.
type AuditFinding struct {
	CheckName  string          `json:"check_name"`
	Severity   string          `json:"severity"`
	Resource   string          `json:"resource"`
	Reason     string          `json:"reason"`
	ReasonCode string          `json:"reason_code"`
	Finding    json.RawMessage `json:"finding,omitempty"`
}

// alarmSpan is one alarm from in-alarm to the event that ended it.
type alarmSpan struct {
	v        Violation
	end      time.Duration
	endState string
}

// alarmSpans pairs in-alarm events with their end (the run's end when
// still open).
func (d *Detect) alarmSpans(runEnd time.Duration) []alarmSpan {
	var out []alarmSpan
	open := map[string]int{}
	for _, v := range d.Violations {
		key := v.ViolationID
		if key == "" {
			key = v.Profile + "/" + v.Behavior + "/" + v.Thing
		}
		if v.State == "in-alarm" {
			open[key] = len(out)
			out = append(out, alarmSpan{v: v, end: runEnd})
			continue
		}
		if i, ok := open[key]; ok {
			out[i].end, out[i].endState = v.At, v.State
			delete(open, key)
		}
	}
	return out
}

// Text is a violation for humans, one line.
func (v Violation) Text() string {
	s := fmt.Sprintf("%s %s/%s (%s)", v.State, v.Profile, v.Behavior, v.Metric)
	if v.Thing != "" {
		s += " thing " + v.Thing
	}
	s += " at " + Offset(v.At)
	if len(v.Value) > 0 {
		var b bytes.Buffer
		if json.Compact(&b, v.Value) == nil {
			s += " value " + b.String()
		}
	}
	if v.Datapoints > 0 {
		s += fmt.Sprintf(" after %d datapoint(s)", v.Datapoints)
	}
	if v.Suppressed {
		s += " (alerts suppressed)"
	}
	return s
}

// detectMarkdown is the Markdown section listing violations and audit
// findings ("" when the run evaluated neither).
func detectMarkdown(f *Report) string {
	var b strings.Builder
	if d := f.Detect; d != nil {
		names := make([]string, 0, len(d.SecurityProfiles))
		for _, p := range d.SecurityProfiles {
			names = append(names, p.Name)
		}
		fmt.Fprintf(&b, "\n### Detect\n\n%d violation event(s) for security profile(s) %s; %s; %s.\n",
			len(d.Violations), markup.MD(strings.Join(names, ", ")), markup.MD(d.Window), markup.MD(d.TimeScale))
		if len(d.Violations) > 0 {
			b.WriteString("\n| State | Profile / behaviour | Metric | Thing | At | Value | Datapoints |\n|---|---|---|---|---|---|---|\n")
			for _, v := range d.Violations {
				val := ""
				if len(v.Value) > 0 {
					var c bytes.Buffer
					_ = json.Compact(&c, v.Value)
					val = markup.Code(c.String())
				}
				fmt.Fprintf(&b, "| %s | %s / %s | %s | %s | %s | %s | %d |\n", markup.MD(v.State), markup.MD(v.Profile), markup.MD(v.Behavior), markup.MD(v.Metric), markup.MD(v.Thing), Offset(v.At), val, v.Datapoints)
			}
		}
		for _, s := range d.Skipped {
			fmt.Fprintf(&b, "- skipped %s / %s: %s\n", markup.MD(s.Profile), markup.MD(s.Behavior), markup.MD(s.Reason))
		}
	}
	if a := f.Audit; a != nil {
		fmt.Fprintf(&b, "\n### Audit\n\n%d finding(s).\n", len(a.Findings))
		if len(a.Findings) > 0 {
			b.WriteString("\n| Severity | Check | Resource | Reason |\n|---|---|---|---|\n")
			for _, fd := range a.Findings {
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", markup.MD(fd.Severity), markup.MD(fd.CheckName), markup.MD(fd.Resource), markup.MD(fd.Reason))
			}
		}
	}
	return b.String()
}

// detectJUnit is the text a JUnit "ddhil.detect" test case carries.
func detectJUnit(f *Report) string {
	var b strings.Builder
	if d := f.Detect; d != nil {
		fmt.Fprintf(&b, "Detect: %d violation event(s); %s; %s\n", len(d.Violations), d.Window, d.TimeScale)
		for _, v := range d.Violations {
			b.WriteString("- " + v.Text() + "\n")
		}
		for _, s := range d.Skipped {
			fmt.Fprintf(&b, "- skipped %s/%s: %s\n", s.Profile, s.Behavior, s.Reason)
		}
	}
	if a := f.Audit; a != nil {
		fmt.Fprintf(&b, "Audit: %d finding(s)\n", len(a.Findings))
		for _, fd := range a.Findings {
			fmt.Fprintf(&b, "- %s %s %s: %s\n", fd.Severity, fd.CheckName, fd.Resource, fd.Reason)
		}
	}
	return b.String()
}

// alarmLayer draws each alarm span as a bar on its own timeline lane.
func alarmLayer(t *svgTimeline, f *Report, l svgLane, x func(time.Duration) num, span time.Duration) {
	last := span
	if f.Detect.WindowEnd > 0 {
		last = min(span, f.Detect.WindowEnd)
	}
	for _, s := range f.Detect.alarmSpans(last) {
		end := "still in alarm at the end of the evaluated window"
		if s.endState != "" {
			end = s.endState + " at " + Offset(s.end)
		}
		title := fmt.Sprintf("%s/%s (%s) thing %s: in-alarm at %s, %s", s.v.Profile, s.v.Behavior, s.v.Metric, s.v.Thing, Offset(s.v.At), end)
		t.Rects = append(t.Rects, svgRect{X: x(s.v.At), Y: l.Mid - 6, W: max(x(s.end)-x(s.v.At), 2), H: 12, Class: "alarm", Title: title})
	}
}
