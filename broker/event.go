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
	EventDeliver    EventKind = "deliver"    // a PUBLISH the broker sent to a client (no payload kept)
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
	// Size is the whole payload length of a publish or deliver event
	// (Payload may hold only a prefix).
	Size int `json:"size,omitempty"`

	Thing    string             `json:"thing,omitempty"`
	Format   defender.Format    `json:"format,omitempty"`
	Result   *defender.Result   `json:"result,omitempty"`   // EventReport
	Response *defender.Response `json:"response,omitempty"` // EventResponse
	// Fault names an injected fault that shaped this event ("drop", "delay", ...).
	Fault string `json:"fault,omitempty"`

	Meter *Meter `json:"meter,omitempty"`
	// TLS describes the handshake of a connection made on the TLS listener
	// (set on EventConnect).
	TLS *TLSInfo `json:"tls,omitempty"`
	// Connect describes the CONNECT and the CONNACK answering it (set on
	// EventConnect when a CONNECT was read).
	Connect *ConnectInfo `json:"connect,omitempty"`
	// ReturnCode is the SUBACK return code for this filter (EventSubscribe):
	// the granted QoS, or 0x80 when refused.
	ReturnCode *byte `json:"return_code,omitempty"`

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

// TLSInfo is what the security checks need from a mutual-TLS handshake.
type TLSInfo struct {
	Version       string    `json:"version"` // "TLS 1.2", "TLS 1.3"
	CipherSuite   string    `json:"cipher_suite"`
	ALPN          string    `json:"alpn,omitempty"`
	ServerName    string    `json:"server_name,omitempty"` // SNI the client sent
	PeerCN        string    `json:"peer_cn,omitempty"`
	PeerKeyType   string    `json:"peer_key_type,omitempty"` // "ECDSA P-256", "RSA", ...
	PeerKeyBits   int       `json:"peer_key_bits,omitempty"`
	PeerNotBefore time.Time `json:"peer_not_before,omitempty"`
	PeerNotAfter  time.Time `json:"peer_not_after,omitempty"`
	PeerSigAlg    string    `json:"peer_sig_alg,omitempty"`
	// PeerCertSHA256 is the SHA-256 of the client certificate's DER, AWS's
	// certificate ID; PeerCert is the DER itself, so audits can look at the
	// serial, the issuer and the public key after the run.
	PeerCertSHA256 string `json:"peer_cert_sha256,omitempty"`
	PeerCert       []byte `json:"peer_cert,omitempty"`
}

// ConnectInfo is what the protocol checks need from a CONNECT / CONNACK pair.
type ConnectInfo struct {
	ProtocolVersion byte   `json:"protocol_version"` // 4 = MQTT 3.1.1, 5 = MQTT 5
	CleanSession    bool   `json:"clean_session"`
	KeepAlive       uint16 `json:"keep_alive"` // seconds, as the client asked
	Username        string `json:"username,omitempty"`
	WillTopic       string `json:"will_topic,omitempty"`
	SessionPresent  bool   `json:"session_present"`
	ReturnCode      byte   `json:"return_code"` // CONNACK code as sent (v3 or v5 numbering)
}
