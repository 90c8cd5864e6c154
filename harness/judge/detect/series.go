package detect

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
)

// Scale maps AWS's production durations onto a run: a test build reports
// every TestPeriod instead of every ProductionPeriod, so every Detect
// duration (durationSeconds, the 5-minute cloud-side period, the two-day
// invalidation) shrinks by TestPeriod/ProductionPeriod, exactly as the
// timing checks scale the report period (conformance.Expectations). A zero
// Scale is production time.
type Scale struct {
	TestPeriod       time.Duration `json:"test_period_ns,omitempty"`
	ProductionPeriod time.Duration `json:"production_period_ns,omitempty"`
}

// Factor is run time per production time (1 when unscaled).
func (s Scale) Factor() float64 {
	if s.TestPeriod <= 0 || s.ProductionPeriod <= 0 {
		return 1
	}
	return float64(s.TestPeriod) / float64(s.ProductionPeriod)
}

// Of converts a production duration to run time.
func (s Scale) Of(d time.Duration) time.Duration { return time.Duration(float64(d) * s.Factor()) }

// String says how durations were scaled, for reports.
func (s Scale) String() string {
	if s.Factor() == 1 {
		return "durations in production time (no scaling)"
	}
	return fmt.Sprintf("durations scaled by test period %s / production period %s: 300 s of AWS time = %s of run time, the two-day invalidation = %s",
		s.TestPeriod, s.ProductionPeriod, s.Of(300*time.Second).Round(time.Millisecond), s.Of(invalidateAfter).Round(time.Millisecond))
}

// invalidateAfter is AWS's "no metrics for more than two days" (note §4.2).
const invalidateAfter = 48 * time.Hour

// cloudPeriod is the cloud-side evaluation period (note §3.1).
const cloudPeriod = 300 * time.Second

// Recording is one recorded run: the broker's events on its monotonic
// clock, where the run ended, and its time scale.
type Recording struct {
	Events []broker.Event
	// End is when the run stopped; zero means the last event.
	End   time.Duration
	Scale Scale
}

func (r *Recording) end() time.Duration {
	if r.End > 0 {
		return r.End
	}
	var end time.Duration
	for _, ev := range r.Events {
		end = max(end, ev.Mono)
	}
	return end
}

// wallAt converts a monotonic offset to the wall clock of the recording.
func (r *Recording) wallAt(at time.Duration) time.Time {
	for _, ev := range r.Events {
		if !ev.Time.IsZero() {
			return ev.Time.Add(at - ev.Mono)
		}
	}
	return time.Time{}
}

// datapoint is one value a behaviour is evaluated on.
type datapoint struct {
	thing  string
	at     time.Duration
	value  MetricValue
	num    float64 // numeric metrics: the value evaluated
	own    float64 // device-side counters: this report's own value (num may be a sum)
	window int     // aggregation window index (statistical thresholds)
}

// series computes a behaviour's datapoints per thing, in time order.
func (d *Definitions) series(b Behavior, m metricInfo, rec *Recording) map[string][]datapoint {
	if m.side == DeviceSide {
		return d.deviceSeries(b, m, rec)
	}
	return d.cloudSeries(b, rec)
}

// window is the run-time length of durationSeconds (0 when unset).
func window(b Behavior, s Scale) time.Duration {
	if b.Criteria == nil || b.Criteria.DurationSeconds == nil {
		return 0
	}
	return s.Of(time.Duration(*b.Criteria.DurationSeconds) * time.Second)
}

// deviceSeries gives one datapoint per accepted report that carries the
// metric (note §3.1). Counters with durationSeconds are summed over the
// reports of the last duration (with half a test period of slack, so
// report jitter neither adds nor loses a report); gauges take the latest.
func (d *Definitions) deviceSeries(b Behavior, m metricInfo, rec *Recording) map[string][]datapoint {
	out := map[string][]datapoint{}
	w := window(b, rec.Scale)
	slack := rec.Scale.TestPeriod / 2
	for _, ev := range rec.Events {
		if ev.Kind != broker.EventReport || ev.Result == nil || !ev.Result.Accepted() || ev.Result.Report == nil || ev.Thing == "" {
			continue
		}
		v, ok := d.deviceValue(b.Metric, ev.Result)
		if !ok {
			continue
		}
		dp := datapoint{thing: ev.Thing, at: ev.Mono, value: v, num: numOf(v), own: numOf(v)}
		if w > 0 {
			dp.window = int(ev.Mono / w)
			if m.counter {
				sum := dp.own
				prev := out[ev.Thing]
				for i := len(prev) - 1; i >= 0 && prev[i].at > ev.Mono-w+slack; i-- {
					sum += prev[i].own
				}
				n := int64(sum)
				dp.value, dp.num = MetricValue{Count: &n}, sum
			}
		}
		out[ev.Thing] = append(out[ev.Thing], dp)
	}
	return out
}

// deviceValue extracts a device-side metric from a report; false when the
// report does not carry it (no datapoint: the alarm state does not move).
func (d *Definitions) deviceValue(metric string, res *defender.Result) (MetricValue, bool) {
	r := res.Report
	ms := r.Metrics
	count := func(p *uint64) (MetricValue, bool) {
		if p == nil {
			return MetricValue{}, false
		}
		n := int64(min(*p, math.MaxInt64))
		return MetricValue{Count: &n}, true
	}
	ports := func(p *defender.Ports) (MetricValue, bool) {
		if p == nil {
			return MetricValue{}, false
		}
		out := []int{}
		for _, pt := range p.Ports {
			out = append(out, int(pt.Port))
		}
		sort.Ints(out)
		return MetricValue{Ports: out}, true
	}
	numPorts := func(p *defender.Ports) (MetricValue, bool) {
		if p == nil {
			return MetricValue{}, false
		}
		if p.Total != nil {
			return count(p.Total)
		}
		n := uint64(len(p.Ports))
		return count(&n)
	}
	switch metric {
	case "aws:all-bytes-out", "aws:all-bytes-in", "aws:all-packets-out", "aws:all-packets-in":
		if ms == nil || ms.NetworkStats == nil {
			return MetricValue{}, false
		}
		ns := ms.NetworkStats
		return count(map[string]*uint64{"aws:all-bytes-out": ns.BytesOut, "aws:all-bytes-in": ns.BytesIn,
			"aws:all-packets-out": ns.PacketsOut, "aws:all-packets-in": ns.PacketsIn}[metric])
	case "aws:listening-tcp-ports", "aws:num-listening-tcp-ports":
		if ms == nil {
			return MetricValue{}, false
		}
		if metric == "aws:listening-tcp-ports" {
			return ports(ms.ListeningTCPPorts)
		}
		return numPorts(ms.ListeningTCPPorts)
	case "aws:listening-udp-ports", "aws:num-listening-udp-ports":
		if ms == nil {
			return MetricValue{}, false
		}
		if metric == "aws:listening-udp-ports" {
			return ports(ms.ListeningUDPPorts)
		}
		return numPorts(ms.ListeningUDPPorts)
	case "aws:num-established-tcp-connections", "aws:destination-ip-addresses":
		if ms == nil || ms.TCPConnections == nil || ms.TCPConnections.Established == nil {
			return MetricValue{}, false
		}
		est := ms.TCPConnections.Established
		if metric == "aws:num-established-tcp-connections" {
			if est.Total != nil {
				return count(est.Total)
			}
			n := uint64(len(est.Connections))
			return count(&n)
		}
		ips := []string{}
		for _, c := range est.Connections {
			ips = append(ips, hostOf(c.RemoteAddr))
		}
		sort.Strings(ips)
		return MetricValue{CIDRs: ips}, true
	}
	cm, ok := r.CustomMetrics[metric]
	if !ok {
		return MetricValue{}, false
	}
	// A value AWS accepts but drops gives no datapoint (note §1.6).
	for _, f := range res.Lint {
		if f.Rule == defender.LintDroppedCustomValue && strings.HasPrefix(f.Path, "/custom_metrics/"+metric+"/") {
			return MetricValue{}, false
		}
	}
	switch want := d.CustomMetrics[metric].Type; {
	case want == "number" && cm.Kind == "number":
		n := cm.Number
		return MetricValue{Number: &n}, true
	case want == "number-list" && cm.Kind == "number_list":
		return MetricValue{Numbers: append([]float64{}, cm.NumberList...)}, true
	case want == "string-list" && cm.Kind == "string_list":
		return MetricValue{Strings: append([]string{}, cm.StringList...)}, true
	case want == "ip-address-list" && cm.Kind == "ip_list":
		return MetricValue{CIDRs: append([]string{}, cm.IPList...)}, true
	}
	return MetricValue{}, false // the device sent another kind than the definition
}

// hostOf strips the port (and IPv6 brackets) from "ip:port" (note §3.1).
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	if i := strings.LastIndexByte(addr, ':'); i > 0 && strings.Count(addr, ":") == 1 {
		return addr[:i]
	}
	return strings.Trim(addr, "[]")
}

func numOf(v MetricValue) float64 {
	switch {
	case v.Count != nil:
		return float64(*v.Count)
	case v.Number != nil:
		return *v.Number
	}
	return 0
}

// conn is one MQTT connection as the broker logged it.
type conn struct {
	clientID   string
	remote     string
	start, end time.Duration
	accepted   bool
}

// cloudEvent is one thing the broker counted for a client.
type cloudEvent struct {
	at    time.Duration
	topic string
	size  int
}

// cloudView is the broker's log grouped per client ID (the thing, for
// cloud-side metrics: note §3.1, identity).
type cloudView struct {
	conns      map[string][]*conn // by client ID, in connect order
	sent       map[string][]cloudEvent
	received   map[string][]cloudEvent
	authFail   map[string][]cloudEvent
	attempts   map[string][]cloudEvent
	disconnect map[string][]cloudEvent
	remoteOf   map[string]string // conn ID -> remote
	end        time.Duration
}

func newCloudView(rec *Recording) *cloudView {
	v := &cloudView{conns: map[string][]*conn{}, sent: map[string][]cloudEvent{}, received: map[string][]cloudEvent{},
		authFail: map[string][]cloudEvent{}, attempts: map[string][]cloudEvent{}, disconnect: map[string][]cloudEvent{},
		remoteOf: map[string]string{}, end: rec.end()}
	byID := map[string]*conn{}
	for _, ev := range rec.Events {
		v.remoteOf[ev.ConnID] = ev.Remote
		switch ev.Kind {
		case broker.EventConnect:
			if ev.ClientID == "" { // TLS refused before CONNECT: no identity, not counted
				continue
			}
			v.attempts[ev.ClientID] = append(v.attempts[ev.ClientID], cloudEvent{at: ev.Mono})
			if ev.Error == "" {
				c := &conn{clientID: ev.ClientID, remote: ev.Remote, start: ev.Mono, end: -1, accepted: true}
				byID[ev.ConnID] = c
				v.conns[ev.ClientID] = append(v.conns[ev.ClientID], c)
			}
		case broker.EventDisconnect:
			if c, ok := byID[ev.ConnID]; ok && c.end < 0 {
				c.end = ev.Mono
				v.disconnect[c.clientID] = append(v.disconnect[c.clientID], cloudEvent{at: ev.Mono})
			}
		case broker.EventPublish:
			size := ev.Size
			if size == 0 {
				size = len(ev.Payload)
			}
			v.sent[ev.ClientID] = append(v.sent[ev.ClientID], cloudEvent{at: ev.Mono, topic: ev.Topic, size: size})
		case broker.EventDeliver:
			v.received[ev.ClientID] = append(v.received[ev.ClientID], cloudEvent{at: ev.Mono, topic: ev.Topic, size: ev.Size})
		case broker.EventPolicy:
			if ev.Reason == broker.RefusedPolicy || ev.Reason == broker.RefusedResponseTopic {
				v.authFail[ev.ClientID] = append(v.authFail[ev.ClientID], cloudEvent{at: ev.Mono, topic: ev.Topic})
			}
		}
	}
	for _, cs := range v.conns {
		for _, c := range cs {
			if c.end < 0 {
				c.end = v.end
			}
		}
	}
	return v
}

// things lists every client ID the broker saw.
func (v *cloudView) things() []string {
	seen := map[string]bool{}
	for _, m := range []map[string][]cloudEvent{v.attempts, v.sent, v.received, v.authFail} {
		for k := range m {
			if k != "" {
				seen[k] = true
			}
		}
	}
	return sortedKeys(seen)
}

// live reports whether the client had a connection overlapping [from, to).
func (v *cloudView) live(client string, from, to time.Duration) bool {
	for _, c := range v.conns[client] {
		if c.start < to && c.end > from {
			return true
		}
	}
	return false
}

// cloudSeries aggregates a cloud-side metric into tumbling windows of
// durationSeconds aligned to the broker's start, one datapoint at each
// window's end for a client that was connected (or counted something) in
// it; message-byte-size without a duration and source-ip-address give one
// datapoint per message or connection (note §3.1).
func (d *Definitions) cloudSeries(b Behavior, rec *Recording) map[string][]datapoint {
	v := newCloudView(rec)
	out := map[string][]datapoint{}
	match := d.topicMatcher(b.MetricDimension)
	filtered := func(evs []cloudEvent, client string) []cloudEvent {
		var out []cloudEvent
		for _, e := range evs {
			if match(e.topic, client) {
				out = append(out, e)
			}
		}
		return out
	}
	count := func(n int64) MetricValue { return MetricValue{Count: &n} }
	w := window(b, rec.Scale)
	for _, client := range v.things() {
		var evs []cloudEvent
		sizes := false
		switch b.Metric {
		case "aws:num-messages-sent":
			evs = filtered(v.sent[client], client)
		case "aws:num-messages-received":
			evs = filtered(v.received[client], client)
		case "aws:num-authorization-failures":
			evs = filtered(v.authFail[client], client)
		case "aws:num-connection-attempts":
			evs = v.attempts[client]
		case "aws:num-disconnects":
			evs = v.disconnect[client]
		case "aws:message-byte-size":
			evs, sizes = filtered(v.sent[client], client), true
			if w == 0 {
				for _, e := range evs {
					out[client] = append(out[client], datapoint{thing: client, at: e.at, value: count(int64(e.size)), num: float64(e.size)})
				}
				continue
			}
		case "aws:source-ip-address":
			if b.MetricDimension != nil {
				for _, e := range filtered(v.sent[client], client) {
					ip := hostOf(v.remoteOfAt(client, e.at))
					out[client] = append(out[client], datapoint{thing: client, at: e.at, value: MetricValue{CIDRs: []string{ip}}})
				}
			} else {
				for _, c := range v.conns[client] {
					out[client] = append(out[client], datapoint{thing: client, at: c.start, value: MetricValue{CIDRs: []string{hostOf(c.remote)}}})
				}
			}
			continue
		case "aws:disconnect-duration":
			out[client] = v.disconnectDuration(client, rec.Scale)
			continue
		}
		if w <= 0 {
			continue
		}
		i := 0
		for k := 0; time.Duration(k+1)*w <= v.end; k++ {
			from, to := time.Duration(k)*w, time.Duration(k+1)*w
			var n int64
			for ; i < len(evs) && evs[i].at < to; i++ {
				if evs[i].at >= from {
					if sizes {
						n += int64(evs[i].size)
					} else {
						n++
					}
				}
			}
			// A window only counts while connected, or when something
			// was counted in it (refused connection attempts).
			if n == 0 && !v.live(client, from, to) {
				continue
			}
			out[client] = append(out[client], datapoint{thing: client, at: to, value: count(n), num: float64(n), window: k})
		}
	}
	return out
}

// remoteOfAt is the remote address of the client's connection at t.
func (v *cloudView) remoteOfAt(client string, t time.Duration) string {
	for _, c := range v.conns[client] {
		if c.start <= t && t <= c.end {
			return c.remote
		}
	}
	return ""
}

// disconnectDuration evaluates every (scaled) five minutes after the first
// connection: 0 while connected, else whole production minutes since the
// last disconnect (note §3.1).
func (v *cloudView) disconnectDuration(client string, s Scale) []datapoint {
	conns := v.conns[client]
	if len(conns) == 0 {
		return nil
	}
	step := s.Of(cloudPeriod)
	var out []datapoint
	for k := 1; time.Duration(k)*step <= v.end; k++ {
		t := time.Duration(k) * step
		if t <= conns[0].start {
			continue
		}
		var lastEnd time.Duration = -1
		connected := false
		for _, c := range conns {
			if c.start <= t && t < c.end {
				connected = true
			}
			if c.end <= t && c.end > lastEnd {
				lastEnd = c.end
			}
		}
		var n int64
		if !connected && lastEnd >= 0 {
			n = int64(float64(t-lastEnd) / s.Factor() / float64(time.Minute))
		}
		out = append(out, datapoint{thing: client, at: t, value: MetricValue{Count: &n}, num: float64(n), window: k})
	}
	return out
}

// topicMatcher returns whether a topic counts for a behaviour's dimension:
// IN counts topics matching a filter, NOT_IN those matching none; no
// dimension counts everything (note §1.5).
func (d *Definitions) topicMatcher(md *MetricDimension) func(topic, client string) bool {
	if md == nil {
		return func(string, string) bool { return true }
	}
	filters := d.Dimensions[md.DimensionName].StringValues
	notIn := md.Operator == "NOT_IN"
	return func(topic, client string) bool {
		hit := false
		for _, f := range filters {
			if matchFilter(strings.ReplaceAll(f, "${iot:ClientId}", client), topic) {
				hit = true
				break
			}
		}
		return hit != notIn
	}
}

// matchFilter is MQTT topic-filter matching ('+' one level, '#' the rest).
func matchFilter(filter, topic string) bool {
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		switch {
		case f == "#":
			return true
		case i >= len(ts):
			return false
		case f == "+":
		case f != ts[i]:
			return false
		}
	}
	return len(fs) == len(ts)
}

// ipsIn parses each element of a reported IP list; unparsable ones are
// kept invalid (they lie in no CIDR).
func ipsIn(list []string) []netip.Addr {
	out := make([]netip.Addr, 0, len(list))
	for _, s := range list {
		a, _ := netip.ParseAddr(strings.Trim(s, "[]"))
		out = append(out, a.Unmap())
	}
	return out
}
