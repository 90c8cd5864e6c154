package detect

import "strings"

// Side says where a metric is measured: by the device (reports) or by the
// cloud (the broker).
type Side string

const (
	DeviceSide Side = "device"
	CloudSide  Side = "cloud"
)

// valueKind is the MetricValue member a metric's criteria use.
type valueKind string

const (
	kindCount   valueKind = "count"
	kindNumber  valueKind = "number"
	kindPorts   valueKind = "ports"
	kindCIDRs   valueKind = "cidrs"
	kindNumbers valueKind = "numbers"
	kindStrings valueKind = "strings"
)

// durationRule says whether criteria.durationSeconds is required (one of
// the five values), optional (then one of them) or forbidden (list
// metrics) (note §2.2 rules 4 and 5).
type durationRule int

const (
	durRequired durationRule = iota
	durOptional
	durForbidden
)

// metricInfo is one row of the metric catalogue (note §3).
type metricInfo struct {
	side      Side
	kind      valueKind
	duration  durationRule
	ml        bool // ML Detect allowed
	dimension bool // TOPIC_FILTER dimension allowed
	// counter: a delta accumulated (summed) over durationSeconds; else a
	// gauge whose latest value counts (note §3.1).
	counter bool
	// ops overrides the operator family of kind (disconnect-duration).
	ops []string
}

var (
	numericOps = []string{"less-than", "less-than-equals", "greater-than", "greater-than-equals"}
	cidrOps    = []string{"in-cidr-set", "not-in-cidr-set"}
	portOps    = []string{"in-port-set", "not-in-port-set"}
	setOps     = []string{"in-set", "not-in-set"}
)

// builtins is the catalogue of aws: metrics (note §3).
var builtins = map[string]metricInfo{
	"aws:all-bytes-out":                   {side: DeviceSide, kind: kindCount, duration: durRequired, ml: true, counter: true},
	"aws:all-bytes-in":                    {side: DeviceSide, kind: kindCount, duration: durRequired, ml: true, counter: true},
	"aws:all-packets-out":                 {side: DeviceSide, kind: kindCount, duration: durRequired, ml: true, counter: true},
	"aws:all-packets-in":                  {side: DeviceSide, kind: kindCount, duration: durRequired, ml: true, counter: true},
	"aws:listening-tcp-ports":             {side: DeviceSide, kind: kindPorts, duration: durForbidden},
	"aws:listening-udp-ports":             {side: DeviceSide, kind: kindPorts, duration: durForbidden},
	"aws:num-listening-tcp-ports":         {side: DeviceSide, kind: kindCount, duration: durRequired, ml: true},
	"aws:num-listening-udp-ports":         {side: DeviceSide, kind: kindCount, duration: durRequired, ml: true},
	"aws:num-established-tcp-connections": {side: DeviceSide, kind: kindCount, duration: durOptional, ml: true},
	"aws:destination-ip-addresses":        {side: DeviceSide, kind: kindCIDRs, duration: durForbidden},
	"aws:message-byte-size":               {side: CloudSide, kind: kindCount, duration: durOptional, ml: true, dimension: true, counter: true},
	"aws:num-messages-sent":               {side: CloudSide, kind: kindCount, duration: durRequired, ml: true, dimension: true, counter: true},
	"aws:num-messages-received":           {side: CloudSide, kind: kindCount, duration: durRequired, ml: true, dimension: true, counter: true},
	"aws:num-authorization-failures":      {side: CloudSide, kind: kindCount, duration: durRequired, ml: true, dimension: true, counter: true},
	"aws:source-ip-address":               {side: CloudSide, kind: kindCIDRs, duration: durForbidden, dimension: true},
	"aws:num-connection-attempts":         {side: CloudSide, kind: kindCount, duration: durRequired, ml: true, counter: true},
	"aws:num-disconnects":                 {side: CloudSide, kind: kindCount, duration: durRequired, ml: true, counter: true},
	"aws:disconnect-duration":             {side: CloudSide, kind: kindCount, duration: durForbidden, ops: []string{"less-than", "less-than-equals"}},
}

// customInfo is the catalogue row of a custom metric type (note §1.6, §3).
var customInfo = map[string]metricInfo{
	"number":          {side: DeviceSide, kind: kindNumber, duration: durOptional, ml: true},
	"number-list":     {side: DeviceSide, kind: kindNumbers, duration: durForbidden},
	"string-list":     {side: DeviceSide, kind: kindStrings, duration: durForbidden},
	"ip-address-list": {side: DeviceSide, kind: kindCIDRs, duration: durForbidden},
}

// allowedDurations are the durationSeconds values AWS accepts (note §2.2
// rule 4).
var allowedDurations = []int64{300, 600, 900, 1800, 3600}

// operators returns the comparison operators of a metric.
func (m metricInfo) operators() []string {
	if m.ops != nil {
		return m.ops
	}
	switch m.kind {
	case kindCount, kindNumber:
		return numericOps
	case kindCIDRs:
		return cidrOps
	case kindPorts:
		return portOps
	default:
		return setOps
	}
}

// numeric reports whether the metric compares numbers.
func (m metricInfo) numeric() bool { return m.kind == kindCount || m.kind == kindNumber }

// lookup finds a metric: a built-in, or a custom metric the definitions
// declare.
func (d *Definitions) lookup(metric string) (metricInfo, bool) {
	if strings.HasPrefix(metric, "aws:") {
		m, ok := builtins[metric]
		return m, ok
	}
	cm, ok := d.CustomMetrics[metric]
	if !ok {
		return metricInfo{}, false
	}
	m, ok := customInfo[cm.Type]
	return m, ok
}

// statistics are the percentiles statisticalThreshold accepts (note §1.4).
var statistics = map[string]float64{"p0": 0, "p0.1": 0.1, "p0.01": 0.01, "p1": 1, "p10": 10, "p50": 50,
	"p90": 90, "p99": 99, "p99.9": 99.9, "p99.99": 99.99, "p100": 100}
