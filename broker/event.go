package broker

import (
	"time"

	"github.com/ddhil/ddhil/broker/defender"
)

// EventKind names what happened; the values are stable because they are
// written to JSON Lines recordings and read back by `ddhil report`.
type EventKind string

const (
	EventConnect    EventKind = "connect"    // CONNECT accepted (or refused: Error set)
	EventSubscribe  EventKind = "subscribe"  // one event per filter
	EventPublish    EventKind = "publish"    // any client publish, raw payload kept
	EventReport     EventKind = "report"     // a Defender report with its verdict
	EventResponse   EventKind = "response"   // what the service answered (or dropped/delayed)
	EventDisconnect EventKind = "disconnect" // connection ended, with reason
	EventMeter      EventKind = "meter"      // traffic counters of one connection
	EventPolicy     EventKind = "policy"     // a refused action (policy, retain, oversize, ...)
)

// Event is one entry of the broker's log. Mono is the monotonic offset since
// the broker started, so events order and subtract correctly even when the
// wall clock steps; Time is the wall clock for humans.
type Event struct {
	Seq      uint64        `json:"seq"`
	Kind     EventKind     `json:"kind"`
	Time     time.Time     `json:"time"`
	Mono     time.Duration `json:"mono_ns"`
	ConnID   string        `json:"conn_id,omitempty"` // unique per network connection
	ClientID string        `json:"client_id,omitempty"`
	Listener string        `json:"listener,omitempty"` // "tcp", "tls", "mem"
	Remote   string        `json:"remote,omitempty"`
	Local    string        `json:"local,omitempty"`

	Topic   string `json:"topic,omitempty"`
	QoS     byte   `json:"qos,omitempty"`
	Retain  bool   `json:"retain,omitempty"`
	Payload []byte `json:"payload,omitempty"`

	Thing    string             `json:"thing,omitempty"`
	Format   defender.Format    `json:"format,omitempty"`
	Result   *defender.Result   `json:"result,omitempty"`   // EventReport
	Response *defender.Response `json:"response,omitempty"` // EventResponse
	// Fault names an injected fault that shaped this event ("drop", "delay", ...).
	Fault string `json:"fault,omitempty"`

	Meter *Meter `json:"meter,omitempty"`

	Reason string `json:"reason,omitempty"` // disconnect / policy reason
	Error  string `json:"error,omitempty"`
}

// Meter counts one connection's traffic at the transport, below TLS.
type Meter struct {
	BytesIn    uint64 `json:"bytes_in"`
	BytesOut   uint64 `json:"bytes_out"`
	PacketsIn  uint64 `json:"packets_in"`  // MQTT control packets received from the client
	PacketsOut uint64 `json:"packets_out"` // MQTT control packets sent to the client
}
