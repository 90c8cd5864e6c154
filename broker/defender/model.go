// Package defender is the AWS IoT Device Defender device protocol with no I/O:
// topics, the report model, JSON and CBOR decoding with long and short key
// names, validation with the service's outcomes, lint findings beyond AWS, and
// response encoding. The broker and the conformance checks share it, so the
// verdict on a payload is computed in exactly one place.
package defender

// Format is the wire format named by the topic's last publish level.
type Format string

const (
	JSON Format = "json"
	CBOR Format = "cbor"
)

// TopicKind numbers the six Defender topics exactly like the embedded SDK's
// DefenderTopic_t, so the SDK's unit-test vectors read across unchanged.
type TopicKind int

const (
	InvalidTopic TopicKind = -1
	JSONPublish  TopicKind = 0
	JSONAccepted TopicKind = 1
	JSONRejected TopicKind = 2
	CBORPublish  TopicKind = 3
	CBORAccepted TopicKind = 4
	CBORRejected TopicKind = 5
)

// Report is the typed model of a version "1.0" report, whichever key style
// and format it arrived in. Optional numbers are pointers so "absent" and
// "zero" stay distinguishable.
type Report struct {
	Header        Header                  `json:"header"`
	Metrics       *Metrics                `json:"metrics,omitempty"`
	CustomMetrics map[string]CustomMetric `json:"custom_metrics,omitempty"`
	// KeyStyle is "long", "short" or "mixed" (mixed is a lint finding).
	KeyStyle string `json:"key_style"`
}

type Header struct {
	ReportID uint64 `json:"report_id"`
	Version  string `json:"version"`
}

type Metrics struct {
	TCPConnections    *TCPConnections `json:"tcp_connections,omitempty"`
	ListeningTCPPorts *Ports          `json:"listening_tcp_ports,omitempty"`
	ListeningUDPPorts *Ports          `json:"listening_udp_ports,omitempty"`
	NetworkStats      *NetworkStats   `json:"network_stats,omitempty"`
}

type TCPConnections struct {
	Established *EstablishedConnections `json:"established_connections,omitempty"`
}

type EstablishedConnections struct {
	Connections []Connection `json:"connections,omitempty"`
	Total       *uint64      `json:"total,omitempty"`
}

type Connection struct {
	RemoteAddr     string  `json:"remote_addr"`
	LocalPort      *uint64 `json:"local_port,omitempty"`
	LocalInterface string  `json:"local_interface,omitempty"`
}

type Ports struct {
	Ports []Port  `json:"ports,omitempty"`
	Total *uint64 `json:"total,omitempty"`
}

type Port struct {
	Port      uint64 `json:"port"`
	Interface string `json:"interface,omitempty"`
}

type NetworkStats struct {
	BytesIn    *uint64 `json:"bytes_in,omitempty"`
	BytesOut   *uint64 `json:"bytes_out,omitempty"`
	PacketsIn  *uint64 `json:"packets_in,omitempty"`
	PacketsOut *uint64 `json:"packets_out,omitempty"`
}

// CustomMetric holds exactly one of the four value kinds AWS defines.
type CustomMetric struct {
	Kind       string    `json:"kind"` // number | number_list | string_list | ip_list
	Number     float64   `json:"number,omitempty"`
	NumberList []float64 `json:"number_list,omitempty"`
	StringList []string  `json:"string_list,omitempty"`
	IPList     []string  `json:"ip_list,omitempty"`
}

// Error codes and the message AWS sends with them.
const (
	CodeInvalidPayload = "InvalidPayload"
	CodeThrottled      = "Throttled"
	MsgMalformed       = "Malformed metrics report"
	MsgThrottled       = "Report rejected due to throttling"
)

// Problem is why a payload is rejected: the AWS-visible code and message, plus
// the precise detail AWS does not give (a JSON pointer and a reason).
type Problem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Path    string `json:"path"` // JSON pointer, e.g. /metrics/listening_tcp_ports/ports/0/port
	Reason  string `json:"reason"`
	// Category files the problem for conformance checks: one of the
	// Category* constants.
	Category string `json:"category,omitempty"`
}

// Problem categories: which part of the report is at fault.
const (
	CategoryDecode       = "decode"        // not strict JSON / CBOR at all
	CategoryHeader       = "header"        // header block, report_id, version
	CategoryStructure    = "structure"     // sections, shapes, types, unknown keys
	CategoryRange        = "range"         // ports, counters, addresses out of range
	CategoryCustomMetric = "custom_metric" // custom_metrics shapes and kinds
	CategorySize         = "size"          // over the 128 KB payload cap
)

func (p *Problem) Error() string {
	return "defender: " + p.Code + " at " + p.Path + ": " + p.Reason
}

// Finding is a lint observation beyond AWS; it never changes the outcome.
type Finding struct {
	Rule    string `json:"rule"` // e.g. mixed-keys, unknown-key, camelcase-key, total-below-list, dropped-custom-value, near-size-cap
	Path    string `json:"path"`
	Message string `json:"message"`
}

// Options tune validation; the zero value is AWS-strict.
type Options struct {
	// Lenient accepts unknown keys with a lint finding instead of rejecting.
	Lenient bool
}

// Result is the verdict on one payload.
type Result struct {
	Report       *Report   `json:"report,omitempty"`  // nil when decoding failed
	HeaderParsed bool      `json:"header_parsed"`     // true when report_id could be read
	ReportID     uint64    `json:"report_id"`         // valid when HeaderParsed
	Problem      *Problem  `json:"problem,omitempty"` // nil when accepted
	Lint         []Finding `json:"lint,omitempty"`
}

// Accepted reports whether AWS would accept the payload.
func (r Result) Accepted() bool { return r.Problem == nil }

// Status values in responses.
const (
	StatusAccepted = "ACCEPTED"
	StatusRejected = "REJECTED"
)

// Response is the service's answer on /accepted or /rejected.
type Response struct {
	ThingName     string         `json:"thingName" cbor:"thingName"`
	ReportID      *uint64        `json:"reportId,omitempty" cbor:"reportId,omitempty"`
	Status        string         `json:"status" cbor:"status"`
	Timestamp     int64          `json:"timestamp" cbor:"timestamp"` // epoch ms
	StatusDetails *StatusDetails `json:"statusDetails,omitempty" cbor:"statusDetails,omitempty"`
}

type StatusDetails struct {
	ErrorCode    string `json:"ErrorCode" cbor:"ErrorCode"`
	ErrorMessage string `json:"ErrorMessage" cbor:"ErrorMessage"`
}
