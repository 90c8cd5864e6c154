package conformance

import (
	"fmt"
	"strings"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
)

// checkSubscribeFirst: on every connection that carried a report, the device
// subscribed to both response topics of its format before the first report.
// A filter with '+' at the thing level counts (the STM32U5 reference does
// that); so does "…/<format>/+".
func checkSubscribeFirst(c *Capture) Outcome {
	reports := c.Reports()
	if len(reports) == 0 {
		return skip("no report was published")
	}
	subs := map[string][]broker.Event{} // connID -> subscriptions so far
	firstReport := map[string]bool{}
	var out Outcome
	ri := 0
	for _, ev := range c.Events {
		switch ev.Kind {
		case broker.EventSubscribe:
			if ev.Error == "" {
				subs[ev.ConnID] = append(subs[ev.ConnID], ev)
			}
		case broker.EventReport:
			r := &reports[ri]
			ri++
			if firstReport[ev.ConnID] {
				continue
			}
			firstReport[ev.ConnID] = true
			f := r.Kind.Format()
			var missing []string
			for _, accepted := range []bool{true, false} {
				want := defender.ResponseTopic(c.Thing, f, accepted)
				if !subscribed(subs[ev.ConnID], want) {
					missing = append(missing, want)
				}
			}
			if len(missing) > 0 {
				have := []string{}
				for _, s := range subs[ev.ConnID] {
					have = append(have, s.Topic)
				}
				observed := "no subscription yet"
				if len(have) > 0 {
					observed = "subscribed only to " + strings.Join(have, ", ")
				}
				out.Findings = append(out.Findings, finding(r,
					"first report on this connection was published before subscribing to "+strings.Join(missing, " and "),
					map[string]any{"missing": missing, "subscribed": have, "conn_id": ev.ConnID}).
					expecting("subscribed to its accepted and rejected topics first", observed))
			}
		}
	}
	out.Measured = fmt.Sprintf("subscriptions before the first report checked on %s", plural(len(firstReport), "connection"))
	return out
}

// subscribed reports whether any filter in subs matches topic (MQTT rules).
func subscribed(subs []broker.Event, topic string) bool {
	for _, s := range subs {
		if filterMatches(s.Topic, topic) {
			return true
		}
	}
	return false
}

func filterMatches(filter, topic string) bool {
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true
		}
		if i >= len(tl) {
			return false
		}
		if f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

// checkQoSRetain: reports use QoS 0 or 1 and never set RETAIN on the
// reserved $aws topics (AWS refuses both).
func checkQoSRetain(c *Capture) Outcome {
	var out Outcome
	n := 0
	qos := map[byte]int{}
	retained := 0
	for _, ev := range c.Events {
		if ev.Kind == broker.EventPolicy && (strings.Contains(ev.Reason, "retain") || strings.Contains(ev.Reason, "qos")) {
			out.Findings = append(out.Findings, Finding{At: ev.Mono, Message: "broker refused a publish: " + ev.Reason,
				Evidence: map[string]any{"topic": ev.Topic, "qos": ev.QoS, "retain": ev.Retain}}.
				expecting("QoS 0 or 1 without RETAIN", fmt.Sprintf("QoS %d, retain %t", ev.QoS, ev.Retain)))
		}
		if ev.Kind != broker.EventPublish || !strings.HasPrefix(ev.Topic, "$aws/") {
			continue
		}
		n++
		qos[ev.QoS]++
		if ev.QoS > 1 {
			out.Findings = append(out.Findings, Finding{At: ev.Mono, Message: fmt.Sprintf("publish to %s with QoS %d; AWS IoT Core supports QoS 0 and 1 only", ev.Topic, ev.QoS),
				Evidence: map[string]any{"topic": ev.Topic, "qos": ev.QoS}}.expecting("QoS 0 or 1", fmt.Sprintf("QoS %d", ev.QoS)))
		}
		if ev.Retain {
			retained++
			out.Findings = append(out.Findings, Finding{At: ev.Mono, Message: "retained publish to reserved topic " + ev.Topic,
				Evidence: map[string]any{"topic": ev.Topic, "retain": true}}.expecting("RETAIN off", "RETAIN on"))
		}
	}
	if n == 0 && len(out.Findings) == 0 {
		return skip("no publish to a reserved topic")
	}
	out.Measured = fmt.Sprintf("%d publishes to $aws/ topics: QoS 0 ×%d, QoS 1 ×%d, QoS 2 ×%d; %d retained",
		n, qos[0], qos[1], qos[2], retained)
	return out
}

// checkClientID: AWS recommends client ID == thing name.
func checkClientID(c *Capture) Outcome {
	return perReport(c, func(r *ReportView) []Finding {
		if r.Event.ClientID == r.Thing {
			return nil
		}
		return []Finding{finding(r,
			fmt.Sprintf("client ID %q differs from the thing name %q in the topic", r.Event.ClientID, r.Thing),
			map[string]any{"client_id": r.Event.ClientID, "thing": r.Thing}).
			expecting(fmt.Sprintf("client ID %q", r.Thing), fmt.Sprintf("client ID %q", r.Event.ClientID))}
	}, func(n int) string {
		var ids []string
		seen := map[string]bool{}
		for _, r := range c.Reports() {
			if id := fmt.Sprintf("%q", r.Event.ClientID); !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
		return fmt.Sprintf("%s from client ID %s (thing %q)", plural(n, "report"), strings.Join(ids, ", "), c.Thing)
	})
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
