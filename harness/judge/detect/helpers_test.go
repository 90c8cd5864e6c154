package detect

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
)

// T0 is the note's worked-example epoch (2026-01-01T00:00:00Z, note §6).
var T0 = time.Unix(1767225600, 0).UTC()

// log builds a broker event log the way the broker writes it: reports go
// through the real validator, so a datapoint is what AWS would accept.
type log struct {
	t      testing.TB
	events []broker.Event
}

func newLog(t testing.TB) *log { return &log{t: t} }

func (l *log) add(ev broker.Event) {
	ev.Seq = uint64(len(l.events)) + 1
	ev.Time = T0.Add(ev.Mono)
	l.events = append(l.events, ev)
}

// report records a JSON report from thing at offset at; metrics is the
// body after the header (e.g. `"metrics":{...}`).
func (l *log) report(at time.Duration, thing string, id int, body string) *log {
	l.t.Helper()
	payload := fmt.Sprintf(`{"header":{"report_id":%d,"version":"1.0"},%s}`, id, body)
	res := defender.Validate(defender.JSON, []byte(payload), defender.Options{})
	topic := "$aws/things/" + thing + "/defender/metrics/json"
	l.add(broker.Event{Kind: broker.EventPublish, Mono: at, ConnID: "c-" + thing, ClientID: thing, Topic: topic, Size: len(payload)})
	l.add(broker.Event{Kind: broker.EventReport, Mono: at, ConnID: "c-" + thing, ClientID: thing, Topic: topic, Thing: thing,
		Format: defender.JSON, Result: &res, Payload: []byte(payload)})
	return l
}

// bytesOut records a report carrying only network_stats.bytes_out.
func (l *log) bytesOut(at time.Duration, thing string, id int, n int) *log {
	return l.report(at, thing, id, fmt.Sprintf(`"metrics":{"network_stats":{"bytes_in":1,"bytes_out":%d,"packets_in":1,"packets_out":1}}`, n))
}

func (l *log) connect(at time.Duration, connID, client, remote string) *log {
	l.add(broker.Event{Kind: broker.EventConnect, Mono: at, ConnID: connID, ClientID: client, Remote: remote})
	return l
}

func (l *log) refusedConnect(at time.Duration, connID, client string) *log {
	l.add(broker.Event{Kind: broker.EventConnect, Mono: at, ConnID: connID, ClientID: client, Error: "CONNACK refused with code 0x87"})
	return l
}

func (l *log) disconnect(at time.Duration, connID string) *log {
	l.add(broker.Event{Kind: broker.EventDisconnect, Mono: at, ConnID: connID, Reason: broker.ReasonConnectionLost})
	return l
}

func (l *log) publish(at time.Duration, connID, client, topic string, size int) *log {
	l.add(broker.Event{Kind: broker.EventPublish, Mono: at, ConnID: connID, ClientID: client, Topic: topic, Size: size})
	return l
}

func (l *log) deliver(at time.Duration, connID, client, topic string, size int) *log {
	l.add(broker.Event{Kind: broker.EventDeliver, Mono: at, ConnID: connID, ClientID: client, Topic: topic, Size: size})
	return l
}

func (l *log) policy(at time.Duration, connID, client, topic string) *log {
	l.add(broker.Event{Kind: broker.EventPolicy, Mono: at, ConnID: connID, ClientID: client, Topic: topic, Reason: broker.RefusedPolicy})
	return l
}

func (l *log) rec(end time.Duration) *Recording {
	return &Recording{Events: l.events, End: end}
}

// defs parses definition files given as JSON texts (named f0.json, ...)
// and fails the test when they are invalid.
func defs(t *testing.T, files ...string) *Definitions {
	t.Helper()
	d, errs := tryDefs(files...)
	if len(errs) > 0 {
		t.Fatalf("definitions invalid: %v", errs)
	}
	return d
}

func tryDefs(files ...string) (*Definitions, []error) {
	d := &Definitions{CustomMetrics: map[string]CustomMetric{}, Dimensions: map[string]Dimension{}}
	for i, f := range files {
		if err := d.Add(fmt.Sprintf("f%d.json", i), []byte(f)); err != nil {
			return d, []error{err}
		}
	}
	return d, d.Validate()
}

// profile wraps behaviours into a describe-security-profile document.
func profile(name string, behaviors ...string) string {
	return fmt.Sprintf(`{"securityProfileName":%q,"securityProfileArn":"arn:aws:iot:eu-west-1:123456789012:securityprofile/%s","behaviors":[%s],"version":1}`,
		name, name, strings.Join(behaviors, ","))
}

// states renders violations as "state@offset=value/datapoints" for
// compact expectations.
func states(vs []Violation) []string {
	var out []string
	for _, v := range vs {
		s := fmt.Sprintf("%s@%s", v.State, v.At)
		if v.Value != nil {
			b, _ := json.Marshal(v.Value)
			s += "=" + string(b)
		}
		out = append(out, s)
	}
	return out
}

const min5 = 300 * time.Second
