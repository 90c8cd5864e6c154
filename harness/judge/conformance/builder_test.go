package conformance

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
)

// device is a small model of a correct reference agent: it reports every
// period, counts module traffic the way the firmware does, and produces the
// broker events and link events a real run would. Tests derive faulty
// captures from it by switching one behaviour.
type device struct {
	t       *testing.T
	c       *Capture
	seq     uint64
	now     time.Duration
	conn    int
	connID  string
	link    int
	lport   int
	lastID  uint64
	bootAt  time.Duration
	counted linkCounters // firmware counters since boot
	base    linkCounters // at the previous report

	// behaviours a test may switch
	cumulative  bool
	inflate     bool
	ridTicks    bool
	ridRepeat   bool
	wrongThing  bool
	clientID    string
	camel       bool
	noSubscribe bool
	retain      bool
	bareCmet    bool
	ports       []int
	lportLie    int
	retryStorm  bool
	rejectNext  string // answer the next report with this code
	dropNext    bool   // answer nothing to the next report
}

func newDevice(t *testing.T) *device {
	d := &device{t: t, lastID: 1_764_000_000_000, ports: []int{8080}}
	d.c = &Capture{Thing: "dut-1", Format: defender.JSON, Expect: Expectations{TestPeriod: time.Second, ListeningTCP: []int{8080}, ListeningUDP: nil}}
	return d
}

func (d *device) event(ev broker.Event) {
	d.seq++
	ev.Seq = d.seq
	ev.Mono = d.now
	ev.Time = time.Unix(1_764_000_000, 0).Add(d.now)
	if ev.ConnID == "" {
		ev.ConnID = d.connID
	}
	if ev.ClientID == "" {
		ev.ClientID = d.client()
	}
	d.c.Events = append(d.c.Events, ev)
}

func (d *device) client() string {
	if d.clientID != "" {
		return d.clientID
	}
	return d.c.Thing
}

func (d *device) linkEv(kind string, n int) {
	d.c.Link = append(d.c.Link, LinkEvent{At: d.now, Kind: kind, Link: d.link, Bytes: n, LocalPort: d.lport, Remote: "127.0.0.1:1883"})
	switch kind {
	case LinkSend:
		d.counted.bytesOut += uint64(n)
		d.counted.pktsOut++
	case LinkRecv:
		d.counted.bytesIn += uint64(n)
		d.counted.pktsIn++
	}
}

// connect opens the link and the MQTT session (CONNECT/CONNACK, SUBSCRIBE/SUBACK).
func (d *device) connect() {
	d.conn++
	d.link++
	d.lport = 50000 + d.link
	d.connID = fmt.Sprintf("c%d", d.conn)
	d.linkEv(LinkOpen, 0)
	d.advance(5 * time.Millisecond)
	d.linkEv(LinkSend, 30)
	d.linkEv(LinkRecv, 4)
	d.event(broker.Event{Kind: broker.EventConnect})
	if !d.noSubscribe {
		d.advance(2 * time.Millisecond)
		d.linkEv(LinkSend, 110)
		for _, acc := range []bool{true, false} {
			d.event(broker.Event{Kind: broker.EventSubscribe, Topic: defender.ResponseTopic(d.c.Thing, defender.JSON, acc), QoS: 1})
		}
		d.linkEv(LinkRecv, 6)
	}
	d.advance(10 * time.Millisecond)
}

func (d *device) advance(dt time.Duration) { d.now += dt }

// report builds, sends and gets an answer for one report.
func (d *device) report() uint64 {
	id := uint64(1_764_000_000_000) + uint64(d.now/time.Millisecond)
	if id <= d.lastID {
		id = d.lastID + 1
	}
	if d.ridTicks {
		id = uint64((d.now - d.bootAt) / time.Millisecond)
	}
	if d.ridRepeat && d.lastID > 1_764_000_000_000 {
		id = d.lastID
	}
	d.lastID = id
	delta := linkCounters{d.counted.bytesOut - d.base.bytesOut, d.counted.pktsOut - d.base.pktsOut, d.counted.bytesIn - d.base.bytesIn, d.counted.pktsIn - d.base.pktsIn}
	if d.cumulative {
		delta = d.counted
	}
	if d.inflate {
		delta.bytesOut += delta.bytesOut / 10
	}
	d.base = d.counted
	payload := d.payload(id, delta)
	thing := d.c.Thing
	if d.wrongThing {
		thing += "-other"
	}
	topic, _ := defender.Topic(thing, defender.JSONPublish)
	d.linkEv(LinkSend, publishSize(topic, len(payload), 1))
	d.advance(3 * time.Millisecond)
	d.event(broker.Event{Kind: broker.EventPublish, Topic: topic, QoS: 1, Retain: d.retain, Payload: payload})
	if d.retain {
		d.event(broker.Event{Kind: broker.EventPolicy, Topic: topic, Retain: true, Reason: "retain on reserved topic"})
		return id
	}
	verdict := defender.Validate(defender.JSON, payload, defender.Options{})
	d.event(broker.Event{Kind: broker.EventReport, Topic: topic, QoS: 1, Payload: payload, Thing: thing, Format: defender.JSON, Result: &verdict})
	res := verdict
	d.linkEv(LinkRecv, 4) // PUBACK
	fault := ""
	switch {
	case d.rejectNext != "":
		res.Problem = &defender.Problem{Code: d.rejectNext, Message: "injected"}
		d.rejectNext = ""
		fault = "reject"
	case d.dropNext:
		d.dropNext = false
		fault = "drop"
	}
	d.respond(thing, res, fault)
	if res.Problem != nil && d.retryStorm {
		d.retryStorm = false // one storm of retries is enough to see
		d.advance(10 * time.Millisecond)
		d.report()
	}
	return id
}

func (d *device) respond(thing string, res defender.Result, fault string) {
	d.advance(2 * time.Millisecond)
	resp := defender.Response{ThingName: thing, Status: defender.StatusAccepted, Timestamp: 1}
	if res.HeaderParsed {
		id := res.ReportID
		resp.ReportID = &id
	}
	if res.Problem != nil {
		resp.Status = defender.StatusRejected
		resp.StatusDetails = &defender.StatusDetails{ErrorCode: res.Problem.Code, ErrorMessage: res.Problem.Message}
	}
	d.event(broker.Event{Kind: broker.EventResponse, Thing: thing, Response: &resp, Fault: fault})
	if fault != "drop" {
		d.linkEv(LinkRecv, 120)
	}
}

func (d *device) payload(id uint64, ns linkCounters) []byte {
	keys := map[string]string{"lt": "listening_tcp_ports", "ns": "network_stats", "tc": "tcp_connections"}
	if d.camel {
		keys = map[string]string{"lt": "listeningTcpPorts", "ns": "networkStats", "tc": "tcpConnections"}
	}
	ports := []map[string]any{}
	for _, p := range d.ports {
		ports = append(ports, map[string]any{"port": p})
	}
	lport := d.lport
	if d.lportLie != 0 {
		lport = d.lportLie
	}
	cmet := any([]map[string]any{{"number": 512}})
	if d.bareCmet {
		cmet = map[string]any{"number": 512}
	}
	r := map[string]any{
		"header": map[string]any{"report_id": id, "version": "1.0"},
		"metrics": map[string]any{
			keys["lt"]: map[string]any{"ports": ports, "total": len(ports)},
			keys["ns"]: map[string]any{"bytes_in": ns.bytesIn, "bytes_out": ns.bytesOut, "packets_in": ns.pktsIn, "packets_out": ns.pktsOut},
			keys["tc"]: map[string]any{"established_connections": map[string]any{
				"connections": []map[string]any{{"remote_addr": "127.0.0.1:1883", "local_port": lport}}, "total": 1}},
		},
		"custom_metrics": map[string]any{"stack_high_water_mark": cmet},
	}
	b, err := json.Marshal(r)
	if err != nil {
		d.t.Fatal(err)
	}
	return b
}

// kick drops the connection from the broker side.
func (d *device) kick() {
	d.c.Actions = append(d.c.Actions, Action{At: d.now, Kind: ActionKick})
	d.event(broker.Event{Kind: broker.EventDisconnect, Reason: "kicked"})
	d.linkEv(LinkClose, 0)
}

// reset reboots the device: counters and tick ids restart.
func (d *device) reset() {
	d.c.Actions = append(d.c.Actions, Action{At: d.now, Kind: ActionReset})
	d.event(broker.Event{Kind: broker.EventDisconnect, Reason: "closed"})
	d.linkEv(LinkClose, 0)
	d.bootAt = d.now
	d.counted, d.base = linkCounters{}, linkCounters{}
}

func (d *device) phase(name string) {
	d.c.Actions = append(d.c.Actions, Action{At: d.now, Kind: ActionPhase, Detail: name})
}

// reportNormally connects and reports n times, one period apart, in the
// normal phase.
func (d *device) reportNormally(n int) {
	d.phase("normal")
	d.connect()
	for i := 0; i < n; i++ {
		d.report()
		d.advance(time.Second)
	}
}

// run plays the standard scenario: normal reporting, a broker drop, a
// reboot, each followed by reports.
func (d *device) run(periods int) *Capture {
	d.phase("normal")
	d.connect()
	for i := 0; i < periods; i++ {
		d.report()
		d.advance(time.Second - 20*time.Millisecond)
	}
	d.phase("disconnect")
	d.kick()
	d.advance(1200 * time.Millisecond)
	d.connect()
	d.report()
	d.advance(time.Second)
	d.phase("reset")
	d.reset()
	d.advance(800 * time.Millisecond)
	d.connect()
	d.report()
	d.advance(time.Second)
	d.report()
	d.advance(time.Second)
	d.phase("reject")
	d.c.Actions = append(d.c.Actions, Action{At: d.now, Kind: ActionReject, Detail: defender.CodeThrottled})
	d.rejectNext = defender.CodeThrottled
	d.report()
	d.advance(2 * time.Second)
	d.c.Actions = append(d.c.Actions, Action{At: d.now, Kind: ActionDropResponse})
	d.dropNext = true
	d.report()
	d.advance(time.Second)
	d.report()
	d.advance(500 * time.Millisecond)
	d.c.End = d.now
	return d.c
}
