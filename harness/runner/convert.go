package runner

import (
	"context"
	"path/filepath"
	"sort"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/report"
)

func defenderFormat(s string) defender.Format { return defender.Format(s) }

// checkOf turns a conformance result into the report's check; both use
// package verdict's vocabulary, so nothing is converted but the layout.
func checkOf(r conformance.Result) report.Check {
	c := report.Check{ID: r.Check.ID, Title: r.Check.Title, Category: r.Check.Category(),
		Severity: r.Check.Severity, Citation: r.Check.Citation, Measured: r.Measured,
		Status: r.Status, SkipReason: r.SkipReason, Error: r.Error, Findings: []report.Finding{}}
	for _, f := range r.Findings {
		at := f.At
		rf := report.Finding{Message: f.Message, ReportID: f.ReportID, At: &at, Evidence: f.Evidence,
			Expected: f.Expected, Observed: f.Observed}
		if ex, ok := f.Evidence["payload_excerpt"].(string); ok {
			rf.Excerpt = ex
		}
		if p, ok := f.Evidence["path"].(string); ok {
			rf.Path = p
		}
		c.Findings = append(c.Findings, rf)
	}
	return c
}

// shiftOf is the offset from the run start to the capture's clock zero
// (the broker's start).
func shiftOf(c *conformance.Capture, started time.Time) time.Duration {
	for _, ev := range c.Events {
		if !ev.Time.IsZero() {
			return ev.Time.Add(-ev.Mono).Sub(started)
		}
	}
	return 0
}

// fillATExchange keeps the AT dialogue (the first and last commands of a
// long run) on the run's clock.
func fillATExchange(rep *report.Report, c *conformance.Capture, started time.Time) {
	shift := shiftOf(c, started)
	cmds := c.Commands
	if n := report.MaxATExchange; len(cmds) > n {
		cmds = append(append([]conformance.ATCommand(nil), cmds[:n/2]...), cmds[len(cmds)-n/2:]...)
	}
	for _, cmd := range cmds {
		rep.ATExchange = append(rep.ATExchange, report.ATCommand{At: cmd.At + shift, Command: cmd.Command,
			Result: cmd.Result, Answer: cmd.Answer, Reason: cmd.Reason})
	}
}

// fillTimeline rebases the capture on the run start and fills the
// timeline, the received reports and the findings' offsets.
func fillTimeline(rep *report.Report, c *conformance.Capture, started time.Time) {
	shift := shiftOf(c, started)
	for i := range rep.Checks {
		for j := range rep.Checks[i].Findings {
			if at := rep.Checks[i].Findings[j].At; at != nil {
				v := *at + shift
				rep.Checks[i].Findings[j].At = &v
			}
		}
	}
	rep.Timeline = []report.Mark{}
	rep.Reports = []report.Received{}
	answered := answers(c.Events)
	for _, ev := range c.Events {
		at := ev.Mono + shift
		switch ev.Kind {
		case broker.EventConnect:
			status := ""
			if ev.Error != "" {
				status = "refused"
			}
			rep.Timeline = append(rep.Timeline, report.Mark{At: at, Kind: report.MarkConnect, Label: ev.ClientID, Status: status, ConnID: ev.ConnID})
		case broker.EventSubscribe:
			rep.Timeline = append(rep.Timeline, report.Mark{At: at, Kind: report.MarkSubscribe, Label: ev.Topic, ConnID: ev.ConnID})
		case broker.EventDisconnect:
			rep.Timeline = append(rep.Timeline, report.Mark{At: at, Kind: report.MarkDisconnect, Label: ev.Reason, ConnID: ev.ConnID})
		case broker.EventPolicy:
			rep.Timeline = append(rep.Timeline, report.Mark{At: at, Kind: report.MarkDisconnect, Label: "refused: " + ev.Reason, ConnID: ev.ConnID})
		case broker.EventResponse:
			status := ""
			if ev.Response != nil {
				status = map[string]string{defender.StatusAccepted: report.MarkAccepted, defender.StatusRejected: report.MarkRejected}[ev.Response.Status]
			}
			label := ev.Fault
			switch ev.Fault {
			case broker.FaultDrop:
				status = report.AnswerDropped
			case broker.FaultUndelivered:
				status, label = report.AnswerUnsent, "not sent: the run ended first"
			}
			m := report.Mark{At: at, Kind: report.MarkResponse, Status: status, ConnID: ev.ConnID, Label: label}
			if ev.Response != nil && ev.Response.ReportID != nil {
				id := *ev.Response.ReportID
				m.ReportID = &id
			}
			rep.Timeline = append(rep.Timeline, m)
		case broker.EventReport:
			res := defender.Result{}
			if ev.Result != nil {
				res = *ev.Result
			}
			rc := report.Received{At: at, ConnID: ev.ConnID, Topic: ev.Topic, Format: ev.Format, Accepted: res.Accepted(),
				Problem: res.Problem, Lint: res.Lint, Decoded: res.Report, Answer: answered[ev.Seq]}
			if res.HeaderParsed {
				id := res.ReportID
				rc.ReportID = &id
			}
			if res.Problem != nil {
				rc.Code = res.Problem.Code
			}
			rc.KeepPayload(ev.Payload)
			rep.Reports = append(rep.Reports, rc)
			status := report.MarkAccepted
			if !res.Accepted() {
				status = report.MarkRejected
			}
			rep.Timeline = append(rep.Timeline, report.Mark{At: at, Kind: report.MarkReport, ReportID: rc.ReportID, Status: status, ConnID: ev.ConnID})
		}
	}
	for _, a := range c.Actions {
		at := a.At + shift
		switch a.Kind {
		case conformance.ActionPhase:
			rep.Timeline = append(rep.Timeline, report.Mark{At: at, Kind: report.MarkPhase, Label: a.Detail})
		case conformance.ActionReset:
			rep.Timeline = append(rep.Timeline, report.Mark{At: at, Kind: report.MarkReset, Label: a.Detail})
		default:
			// Short labels: the timeline has little room; the JSON keeps
			// the actions in actions.jsonl.
			label := a.Kind
			switch a.Kind {
			case conformance.ActionFault:
				label = a.Detail
			case conformance.ActionReject:
				label = "reject " + a.Detail
			}
			rep.Timeline = append(rep.Timeline, report.Mark{At: at, Kind: report.MarkFault, Label: label})
		}
	}
	stampTarget(rep, c, shift)
	sortMarks(rep.Timeline)
	rep.Artefacts = append(rep.Artefacts, report.RunArtefacts()...)
}

// answers gives each report event (by Seq) what the harness answered: the
// next response event on its connection says accepted, rejected or dropped
// (a fault the run injected); a report with no response sent, because the
// run shut down first (the broker records the queued answer as
// undelivered) or the connection closed, is "unsent", not a drop.
func answers(events []broker.Event) map[uint64]string {
	out := map[uint64]string{}
	pending := map[string]uint64{} // conn -> seq of the report awaiting an answer
	for _, ev := range events {
		switch ev.Kind {
		case broker.EventReport:
			out[ev.Seq] = report.AnswerUnsent
			pending[ev.ConnID] = ev.Seq
		case broker.EventResponse:
			seq, ok := pending[ev.ConnID]
			if !ok {
				continue
			}
			delete(pending, ev.ConnID)
			switch {
			case ev.Fault == broker.FaultDrop:
				out[seq] = report.AnswerDropped
			case ev.Fault == broker.FaultUndelivered:
				out[seq] = report.AnswerUnsent
			case ev.Response != nil && ev.Response.Status == defender.StatusAccepted:
				out[seq] = report.MarkAccepted
			default:
				out[seq] = report.MarkRejected
			}
		}
	}
	return out
}

// stampTarget adds the target's clock to every mark and received report
// when the capture has a trusted one (both clocks in the timeline).
func stampTarget(rep *report.Report, c *conformance.Capture, shift time.Duration) {
	if ok, _ := c.ClockTrusted(); !ok {
		return
	}
	at := func(d time.Duration) *time.Duration {
		t := c.TargetClock.At(d - shift)
		return &t
	}
	for i := range rep.Timeline {
		rep.Timeline[i].TargetAt = at(rep.Timeline[i].At)
	}
	for i := range rep.Reports {
		rep.Reports[i].TargetAt = at(rep.Reports[i].At)
	}
}

func sortMarks(m []report.Mark) {
	sort.SliceStable(m, func(i, j int) bool { return m[i].At < m[j].At })
}

// screenshot renders the whole of report.html into report.png for
// reviewers; a missing browser is only logged.
func screenshot(dir string, logf func(string, ...any)) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	png := filepath.Join(dir, report.FileScreenshot)
	if err := report.ScreenshotPage(ctx, filepath.Join(dir, report.FileHTML), png, 1280); err != nil {
		logf("screenshot skipped: %v", err)
		return
	}
	logf("screenshot: %s", png)
}
