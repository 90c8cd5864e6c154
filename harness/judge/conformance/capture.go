// Package conformance is the check catalogue: each check has a stable ID, a
// title, a severity and a citation, and is a pure function over a captured
// session. The CLI (`ddhil run`) and `go test` suites call the same functions,
// so a verdict means the same thing wherever it was produced.
package conformance

import (
	"sort"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
	"github.com/ddhil/ddhil/harness/judge/detect"
)

// Capture is everything a run observed. All times are offsets on one clock:
// the broker's monotonic clock (broker.Event.Mono); whoever builds a Capture
// converts other sources (module link, console, actions) onto it.
type Capture struct {
	Thing  string          // the thing the device was provisioned as
	Format defender.Format // the format it was provisioned to report in
	Expect Expectations
	// Events is the broker's event log, in order.
	Events []broker.Event
	// Link is what the emulated Wi-Fi module carried for the device
	// (empty on a target with its own network).
	Link []LinkEvent
	// Actions are what the harness did to the device or the broker.
	Actions []Action
	// End is when the capture stopped; windows still open at End are judged
	// only as far as End.
	End time.Duration
	// Stopped says where the device's network bring-up stopped when no
	// report reached the broker (from the module's log; "" otherwise).
	Stopped string
	// Commands are the AT commands the firmware sent the emulated module,
	// with its answers (evidence; no check judges them).
	Commands []ATCommand
	// SecurityProfiles are the Detect profiles DD-D01 evaluates (nil: the
	// check is skipped); Baseline is the fleet recording statistical
	// thresholds take their percentiles from.
	SecurityProfiles *detect.Definitions
	Baseline         detect.Baseline
}

// Expectations come from the device profile, overridable per run.
type Expectations struct {
	// TestPeriod is the report period the device was provisioned with for
	// this run; ProductionPeriod is what it uses in the field.
	TestPeriod       time.Duration `json:"test_period" yaml:"test_period"`
	ProductionPeriod time.Duration `json:"production_period" yaml:"production_period"`
	// Tolerance is the allowed relative deviation of the median interval.
	Tolerance float64 `json:"tolerance" yaml:"tolerance"`
	// JitterP95 bounds the 95th percentile of |interval - median|, relative
	// to the period.
	JitterP95 float64 `json:"jitter_p95" yaml:"jitter_p95"`
	// FirstReportBound: first report after each MQTT connection.
	FirstReportBound time.Duration `json:"first_report_bound" yaml:"first_report_bound"`
	// ReconnectBound: from a broker-side drop to the next CONNECT.
	ReconnectBound time.Duration `json:"reconnect_bound" yaml:"reconnect_bound"`
	// ThrottleWindow is AWS's per-thing window (300 s).
	ThrottleWindow time.Duration `json:"throttle_window" yaml:"throttle_window"`
	// ListeningTCP and ListeningUDP are the ports the device must report.
	ListeningTCP []int `json:"listening_tcp" yaml:"listening_tcp"`
	ListeningUDP []int `json:"listening_udp" yaml:"listening_udp"`
	// Transport is "module" (emulated Wi-Fi module: exact counters) or
	// "network" (own TCP/TLS stack: bounded overhead).
	Transport string `json:"transport" yaml:"transport"`
	// HeaderOverhead is the per-packet allowance on the network path
	// (TCP/IP headers; TLS records are already counted by the broker).
	HeaderOverhead int `json:"header_overhead" yaml:"header_overhead"`
	// Endpoint is the host:port the device was told to connect to.
	Endpoint string `json:"endpoint" yaml:"endpoint"`
	// Unreported are the metric sections the device profile declares the
	// firmware does not report (UnreportedMetrics); their accuracy checks
	// skip instead of failing.
	Unreported []string `json:"unreported,omitempty" yaml:"unreported_metrics"`
}

// UnreportedMetrics are the metric sections a profile may declare the
// firmware does not report, and the accuracy checks each one skips.
var UnreportedMetrics = map[string]string{
	"network_stats":       "DD-A01, DD-A02",
	"tcp_connections":     "DD-A03",
	"listening_tcp_ports": "DD-A04 (TCP side)",
	"listening_udp_ports": "DD-A04 (UDP side)",
}

// WithDefaults fills zero fields with the documented defaults.
func (e Expectations) WithDefaults() Expectations {
	if e.TestPeriod == 0 {
		e.TestPeriod = time.Second
	}
	if e.ProductionPeriod == 0 {
		e.ProductionPeriod = 300 * time.Second
	}
	if e.Tolerance == 0 {
		e.Tolerance = 0.10
	}
	if e.JitterP95 == 0 {
		e.JitterP95 = 0.25
	}
	if e.FirstReportBound == 0 {
		e.FirstReportBound = 2*e.TestPeriod + 2*time.Second
	}
	if e.ReconnectBound == 0 {
		e.ReconnectBound = 40 * time.Second
	}
	if e.ThrottleWindow == 0 {
		e.ThrottleWindow = 300 * time.Second
	}
	if e.Transport == "" {
		e.Transport = "module"
	}
	if e.HeaderOverhead == 0 {
		e.HeaderOverhead = 80
	}
	return e
}

// LinkEvent is one thing the emulated module did on the device's behalf.
type LinkEvent struct {
	At        time.Duration `json:"at"`
	Kind      string        `json:"kind"` // open | close | send | recv
	Link      int           `json:"link"` // increments per CIPSTART
	Bytes     int           `json:"bytes,omitempty"`
	LocalPort int           `json:"local_port,omitempty"`
	Remote    string        `json:"remote,omitempty"` // host:port as the device asked for it
	// Proto is the link's kind as the module reports it (TCP, UDP, SSL, or
	// MQTT for the module's own MQTT client, whose sends count topic +
	// payload bytes rather than MQTT packets).
	Proto string `json:"proto,omitempty"`
	// Addr is the remote as an address (ip:port) when Remote names a host
	// the module resolved (e.g. the AWS endpoint name); devices report
	// remote_addr as an address.
	Addr string `json:"addr,omitempty"`
}

// Link event kinds: send is one CIPSEND that got SEND OK (device to network),
// recv is one +IPD message (network to device).
const (
	LinkOpen  = "open"
	LinkClose = "close"
	LinkSend  = "send"
	LinkRecv  = "recv"
)

// Action is something the harness did that checks must know about.
type Action struct {
	At     time.Duration `json:"at"`
	Kind   string        `json:"kind"`
	Detail string        `json:"detail,omitempty"`
}

// ATCommand is one AT command and the module's answer, on the broker's
// clock.
type ATCommand struct {
	At              time.Duration
	Command, Result string
	Answer, Reason  string
}

// Action kinds.
const (
	ActionPhase        = "phase"         // Detail: phase name (normal, disconnect, reject, reset, ...)
	ActionReset        = "reset"         // target reset
	ActionKick         = "kick"          // broker dropped the device's connection
	ActionReject       = "reject"        // broker answered the next report with Detail code
	ActionDropResponse = "drop-response" // broker answered nothing to the next report
	ActionFault        = "fault"         // Detail: "name on|off"
	ActionStepFailed   = "step-failed"   // Detail: "<phase>: what the device did not do"
	ActionKickMissed   = "kick-missed"   // the device was not connected when the broker was to drop it
)

// ReportView is one Defender report with what the broker did about it.
type ReportView struct {
	Event    broker.Event
	Response *broker.Event // nil when no response was sent
	Kind     defender.TopicKind
	Thing    string // thing named in the topic
}

// At is when the broker received the report.
func (r ReportView) At() time.Duration { return r.Event.Mono }

// Result is the validation verdict the broker recorded.
func (r ReportView) Result() defender.Result {
	if r.Event.Result == nil {
		return defender.Result{}
	}
	return *r.Event.Result
}

// ID returns the report id when the header parsed.
func (r ReportView) ID() (uint64, bool) {
	res := r.Result()
	return res.ReportID, res.HeaderParsed
}

// Reports lists every Defender report publish in arrival order, paired with
// the response the broker sent for it.
func (c *Capture) Reports() []ReportView {
	var out []ReportView
	open := map[string]int{} // connID -> index of last report awaiting response
	for i := range c.Events {
		ev := c.Events[i]
		switch ev.Kind {
		case broker.EventReport:
			kind, thing, _ := defender.MatchTopic(ev.Topic)
			out = append(out, ReportView{Event: ev, Kind: kind, Thing: thing})
			open[ev.ConnID] = len(out) - 1
		case broker.EventResponse:
			// A response the broker dropped on purpose never reached the
			// device; the report stays unanswered.
			if ev.Fault == broker.FaultDrop || ev.Fault == broker.FaultUndelivered {
				continue
			}
			if idx, ok := open[ev.ConnID]; ok && out[idx].Response == nil {
				e := ev
				out[idx].Response = &e
				delete(open, ev.ConnID)
			}
		}
	}
	return out
}

// Connects lists accepted MQTT connections in order.
func (c *Capture) Connects() []broker.Event {
	var out []broker.Event
	for _, ev := range c.Events {
		if ev.Kind == broker.EventConnect && ev.Error == "" {
			out = append(out, ev)
		}
	}
	return out
}

// ActionsOf lists the actions of one kind.
func (c *Capture) ActionsOf(kind string) []Action {
	var out []Action
	for _, a := range c.Actions {
		if a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

// phaseAt names the scenario phase in force at t ("" before the first).
func (c *Capture) phaseAt(t time.Duration) string {
	name := ""
	for _, a := range c.Actions {
		if a.Kind == ActionPhase && a.At <= t {
			name = a.Detail
		}
	}
	return name
}

// boots returns the times the firmware (re)started: the capture start and
// every reset action.
func (c *Capture) boots() []time.Duration {
	out := []time.Duration{0}
	for _, a := range c.ActionsOf(ActionReset) {
		out = append(out, a.At)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
