package conformance

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
)

// Schema checks judge each report as AWS would (the verdict comes from
// broker/defender, recorded by the broker) and file every rejection under
// the one check its cause belongs to.

func checkTopic(c *Capture) Outcome {
	return perReport(c, func(r *ReportView) (out []Finding) {
		if r.Thing != c.Thing {
			out = append(out, finding(r,
				fmt.Sprintf("report published for thing %q, but the device is %q", r.Thing, c.Thing),
				map[string]any{"topic": r.Event.Topic, "expected_thing": c.Thing}).
				expecting(fmt.Sprintf("thing %q in the topic", c.Thing), fmt.Sprintf("thing %q (%s)", r.Thing, r.Event.Topic)))
		}
		got := sniffFormat(r.Event.Payload)
		if got != "" && got != r.Kind.Format() {
			out = append(out, finding(r,
				fmt.Sprintf("payload looks like %s but was published on the %s topic", got, r.Kind.Format()),
				map[string]any{"topic": r.Event.Topic, "payload_excerpt": excerpt(r.Event.Payload)}).
				expecting(fmt.Sprintf("a %s payload on the %s topic", r.Kind.Format(), r.Kind.Format()), fmt.Sprintf("a %s payload", got)))
		}
		if c.Format != "" && r.Kind.Format() != c.Format {
			out = append(out, finding(r,
				fmt.Sprintf("report sent as %s, the device was provisioned for %s", r.Kind.Format(), c.Format),
				map[string]any{"topic": r.Event.Topic}).
				expecting(string(c.Format)+" (provisioned)", string(r.Kind.Format())))
		}
		return out
	}, func(n int) string {
		return fmt.Sprintf("%s: topics %s", plural(n, "report"), strings.Join(c.topicsSeen(), ", "))
	})
}

// perReport runs f on every report and gathers its findings; a capture
// without reports is not applicable. measured summarises what was judged,
// given the number of reports.
func perReport(c *Capture, f func(r *ReportView) []Finding, measured func(n int) string) Outcome {
	reports := c.Reports()
	if len(reports) == 0 {
		return skip("no report was published")
	}
	var out Outcome
	for i := range reports {
		out.Findings = append(out.Findings, f(&reports[i])...)
	}
	out.Measured = measured(len(reports))
	return out
}

// topicsSeen lists the distinct topics reports arrived on, in order.
func (c *Capture) topicsSeen() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range c.Reports() {
		if !seen[r.Event.Topic] {
			seen[r.Event.Topic] = true
			out = append(out, r.Event.Topic)
		}
	}
	return out
}

// verdictCounts counts the reports the validator accepted, rejected as
// InvalidPayload (under says how many of those belong to check id), and
// those rejected otherwise (a rejection the run injected, such as
// Throttled).
func (c *Capture) verdictCounts(id string) (accepted, invalid, under, other int) {
	for _, r := range c.Reports() {
		res := r.Result()
		switch {
		case res.Accepted():
			accepted++
		case res.Problem != nil && res.Problem.Code == defender.CodeInvalidPayload:
			invalid++
			if problemCheck(res.Problem) == id {
				under++
			}
		default:
			other++
		}
	}
	return accepted, invalid, under, other
}

// plural is "1 report", "3 reports".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// sniffFormat guesses a payload's encoding from its first byte: JSON
// reports start with '{' (after whitespace), CBOR maps with major type 5.
func sniffFormat(p []byte) defender.Format {
	s := strings.TrimLeft(string(p), " \t\r\n")
	switch {
	case len(s) == 0:
		return ""
	case s[0] == '{':
		return defender.JSON
	case p[0]>>5 == 5:
		return defender.CBOR
	}
	return ""
}

// problemCheck files a rejection under the check its cause belongs to.
func problemCheck(p *defender.Problem) string {
	if p == nil {
		return ""
	}
	switch p.Category {
	case defender.CategoryDecode:
		return "DD-S02"
	case defender.CategoryHeader:
		return "DD-S03"
	case defender.CategoryStructure:
		return "DD-S04"
	case defender.CategoryRange:
		return "DD-S05"
	case defender.CategoryCustomMetric:
		return "DD-S06"
	case defender.CategorySize:
		return "DD-S08"
	}
	// Fallback for problems recorded without a category (older recordings).
	path := p.Path
	reason := strings.ToLower(p.Reason)
	switch {
	case strings.Contains(reason, "128 kb") || strings.Contains(reason, "exceeds") && strings.Contains(reason, "size"):
		return "DD-S08"
	case path == "" || path == "/":
		if strings.Contains(reason, "header") || strings.Contains(reason, "metrics") {
			if strings.Contains(reason, "header") {
				return "DD-S03"
			}
			return "DD-S04"
		}
		return "DD-S02"
	case hasSection(path, "header", "hed"):
		return "DD-S03"
	case hasSection(path, "custom_metrics", "cmet"):
		return "DD-S06"
	case strings.Contains(reason, "range") || strings.Contains(reason, "negative") || strings.Contains(reason, "ip:port") ||
		strings.Contains(reason, "port") && strings.Contains(reason, "65535"):
		return "DD-S05"
	}
	return "DD-S04"
}

func hasSection(path string, names ...string) bool {
	for _, n := range names {
		if path == "/"+n || strings.HasPrefix(path, "/"+n+"/") {
			return true
		}
	}
	return false
}

// rejectedUnder returns a check function failing every report whose
// rejection belongs to id.
func rejectedUnder(id string) func(c *Capture) Outcome {
	return func(c *Capture) Outcome {
		return perReport(c, func(r *ReportView) []Finding {
			res := r.Result()
			// Only the validator's own verdicts count: an injected
			// rejection (Throttled, RejectAll) says nothing about the payload.
			if res.Problem == nil || res.Problem.Code != defender.CodeInvalidPayload || problemCheck(res.Problem) != id {
				return nil
			}
			return []Finding{finding(r,
				fmt.Sprintf("rejected %s at %s: %s", res.Problem.Code, orRoot(res.Problem.Path), res.Problem.Reason),
				map[string]any{"code": res.Problem.Code, "path": res.Problem.Path, "reason": res.Problem.Reason,
					"payload_excerpt": excerpt(r.Event.Payload)}).
				expecting("a payload AWS accepts at "+orRoot(res.Problem.Path), res.Problem.Code+": "+res.Problem.Reason)}
		}, func(n int) string {
			acc, inv, under, other := c.verdictCounts(id)
			m := fmt.Sprintf("%s validated as AWS would: %d accepted, %d InvalidPayload (%d of them under %s)", plural(n, "report"), acc, inv, under, id)
			if other > 0 {
				m += fmt.Sprintf(", %d rejected by the run's own injection", other)
			}
			return m
		})
	}
}

func checkLint(c *Capture) Outcome {
	return perReport(c, func(r *ReportView) (out []Finding) {
		for _, l := range r.Result().Lint {
			out = append(out, finding(r, fmt.Sprintf("%s at %s: %s", l.Rule, orRoot(l.Path), l.Message),
				map[string]any{"rule": l.Rule, "path": l.Path}).
				expecting("nothing for lint rule "+l.Rule+" to flag", l.Message))
		}
		return out
	}, func(n int) string {
		lint := 0
		for _, r := range c.Reports() {
			lint += len(r.Result().Lint)
		}
		return fmt.Sprintf("%s linted: %s", plural(n, "report"), plural(lint, "lint finding"))
	})
}

func checkSize(c *Capture) Outcome {
	var out Outcome
	seen, largest := 0, 0
	for _, ev := range c.Events {
		switch {
		case ev.Kind == broker.EventPolicy && strings.Contains(strings.ToLower(ev.Reason), "oversize"):
			out.Findings = append(out.Findings, Finding{At: ev.Mono,
				Message:  "publish over AWS IoT Core's 128 KB payload limit; the broker disconnected the client as AWS does",
				Evidence: map[string]any{"reason": ev.Reason, "topic": ev.Topic, "client_id": ev.ClientID}}.
				expecting(fmt.Sprintf("≤ %d bytes", defender.MaxPayload), "refused by the broker: "+ev.Reason))
		case ev.Kind == broker.EventReport:
			seen++
			largest = max(largest, len(ev.Payload))
			if len(ev.Payload) > defender.MaxPayload {
				out.Findings = append(out.Findings, Finding{At: ev.Mono,
					Message:  fmt.Sprintf("report of %d bytes exceeds 128 KB", len(ev.Payload)),
					Evidence: map[string]any{"bytes": len(ev.Payload), "limit": defender.MaxPayload}}.
					expecting(fmt.Sprintf("≤ %d bytes", defender.MaxPayload), fmt.Sprintf("%d bytes", len(ev.Payload))))
			}
		}
	}
	if seen == 0 && len(out.Findings) == 0 {
		return skip("no report was published")
	}
	out.Measured = fmt.Sprintf("%s received, largest %d bytes (limit %d)", plural(seen, "report"), largest, defender.MaxPayload)
	return out
}

func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// excerpt renders at most 160 bytes of a payload for evidence: text as is,
// binary as hex.
func excerpt(p []byte) string {
	const max = 160
	cut := p
	if len(cut) > max {
		cut = cut[:max]
	}
	if utf8.Valid(cut) && !strings.ContainsAny(string(cut), "\x00") {
		s := string(cut)
		if len(p) > max {
			s += "…"
		}
		return s
	}
	s := fmt.Sprintf("%x", cut)
	if len(p) > max {
		s += "…"
	}
	return "hex:" + s
}
