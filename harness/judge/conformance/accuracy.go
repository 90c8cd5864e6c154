package conformance

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
)

// Accuracy checks compare what the device says about its traffic with what
// the harness saw. Tolerance model (docs/checks.md):
//   - module transport: the emulated Wi-Fi module counts exactly what the
//     firmware counts (bytes and messages of successful CIPSENDs and of +IPD),
//     so outbound figures must match exactly. Inbound figures may differ by
//     the +IPD messages that arrived while the firmware was building the
//     report (between its snapshot and the CIPSEND carrying it): any value
//     within that window is accepted.
//   - network transport: the broker counts TCP payload bytes below TLS; the
//     device may count IP packets, so a report may exceed the broker's figure
//     by HeaderOverhead bytes per reported packet.

// inboundWindow is how long before the report's CIPSEND an +IPD may have
// landed without the firmware counting it.
const inboundWindow = 250 * time.Millisecond

// linkCounters are module counters over a span of link events.
type linkCounters struct{ bytesOut, pktsOut, bytesIn, pktsIn uint64 }

// counters sums the link events with index in [from, to) that belong to a
// link numbered minLink or later: the firmware counts only links its
// current boot opened.
func (c *Capture) counters(from, to, minLink int) linkCounters {
	var k linkCounters
	for _, ev := range c.Link[max(from, 0):min(max(to, 0), len(c.Link))] {
		if ev.Link < minLink {
			continue
		}
		switch ev.Kind {
		case LinkSend:
			k.bytesOut += uint64(ev.Bytes)
			k.pktsOut++
		case LinkRecv:
			k.bytesIn += uint64(ev.Bytes)
			k.pktsIn++
		}
	}
	return k
}

// windowRecv sums the +IPDs (of links >= minLink) in the inbound window
// just before the event at index cut.
func (c *Capture) windowRecv(cut, minLink int) (bytes, pkts uint64) {
	if cut <= 0 || cut > len(c.Link) {
		return 0, 0
	}
	limit := c.Link[min(cut, len(c.Link)-1)].At - inboundWindow
	for i := cut - 1; i >= 0 && c.Link[i].At >= limit; i-- {
		if c.Link[i].Kind == LinkRecv && c.Link[i].Link >= minLink {
			bytes += uint64(c.Link[i].Bytes)
			pkts++
		}
	}
	return bytes, pkts
}

// firstLinkAfter is the number of the first link opened at or after index
// boot (a very large number when none was).
func (c *Capture) firstLinkAfter(boot int) int {
	for _, ev := range c.Link[min(boot, len(c.Link)):] {
		if ev.Kind == LinkOpen {
			return ev.Link
		}
	}
	return int(^uint(0) >> 1)
}

// reportCut finds the index of the first link event that carried report r
// (walking back over the CIPSENDs before the report reached the broker until
// the MQTT PUBLISH's size is covered), or -1.
func (c *Capture) reportCut(r *ReportView) int {
	size := publishSize(r.Event.Topic, len(r.Event.Payload), r.Event.QoS)
	last := -1
	for i, ev := range c.Link {
		if ev.At > r.At() {
			break
		}
		if ev.Kind == LinkSend {
			last = i
		}
	}
	if last < 0 {
		return -1
	}
	if c.Link[last].Proto == "MQTT" {
		// The module's MQTT client: one publish command per report,
		// counted as topic + payload bytes.
		size = len(r.Event.Topic) + len(r.Event.Payload)
	}
	covered := 0
	for i := last; i >= 0; i-- {
		if c.Link[i].Kind != LinkSend {
			continue
		}
		covered += c.Link[i].Bytes
		if covered >= size {
			return i
		}
	}
	return -1
}

// publishSize is the length of an MQTT 3.1.1 PUBLISH packet.
func publishSize(topic string, payload int, qos byte) int {
	rl := 2 + len(topic) + payload
	if qos > 0 {
		rl += 2
	}
	n := 1
	for v := rl; ; v >>= 7 {
		n++
		if v < 128 {
			break
		}
	}
	return n + rl
}

// bootCut is the link index where the firmware's counters started for a
// report: the first link event after the last boot before it.
func (c *Capture) bootCut(at time.Duration) int {
	boot := time.Duration(0)
	for _, b := range c.boots() {
		if b <= at {
			boot = b
		}
	}
	for i, ev := range c.Link {
		if ev.At >= boot {
			return i
		}
	}
	return len(c.Link)
}

// statsSample pairs a report's network_stats with the oracle's figures.
type statsSample struct {
	r                 *ReportView
	ns                defender.NetworkStats
	delta, cumulative linkCounters // oracle: since previous report / since boot
	// Lower bounds of the inbound figures: +IPDs inside the window before
	// the cut may not have been counted yet.
	deltaInLowB, deltaInLowP   uint64
	deltaInHighB, deltaInHighP uint64
	// lostBaselines are the other deltas the firmware may have measured
	// from: when the link dropped after the previous report, a report it
	// built then may never have reached the broker, yet it moved the
	// firmware's baseline to some point before the drop.
	lostBaselines      []linkCounters
	cumInLowB, cumInLP uint64
	firstAfterBoot     bool
}

// samples pairs every accepted report carrying network_stats with the
// module's counters. ok is false when the module path is not in use.
func (c *Capture) statsSamples() (out []statsSample, reason string) {
	if c.Expect.Transport != "module" {
		return nil, "network transport"
	}
	if len(c.Link) == 0 {
		return nil, "no traffic recorded by the module emulation"
	}
	reports := c.Reports()
	prevCut := -1
	prevBoot := -1
	for i := range reports {
		r := &reports[i]
		cut := c.reportCut(r)
		if cut < 0 {
			continue
		}
		boot := c.bootCut(r.At())
		res := r.Result()
		first := boot != prevBoot
		if first {
			prevCut = boot
		}
		if r.Thing == c.Thing && res.Accepted() && res.Report != nil && res.Report.Metrics != nil && res.Report.Metrics.NetworkStats != nil {
			minLink := c.firstLinkAfter(boot)
			s := statsSample{r: r, ns: *res.Report.Metrics.NetworkStats, firstAfterBoot: first,
				delta:      c.counters(prevCut, cut, minLink),
				cumulative: c.counters(boot, cut, minLink),
			}
			wb, wp := c.windowRecv(cut, minLink)
			s.deltaInLowB, s.deltaInLowP = sub(s.delta.bytesIn, wb), sub(s.delta.pktsIn, wp)
			// +IPDs just before the previous report's cut may have been
			// counted only now.
			pb, pp := uint64(0), uint64(0)
			if !first {
				pb, pp = c.windowRecv(prevCut, minLink)
			}
			s.deltaInHighB, s.deltaInHighP = s.delta.bytesIn+pb, s.delta.pktsIn+pp
			if !first {
				for _, x := range c.lostReportPoints(prevCut, cut) {
					s.lostBaselines = append(s.lostBaselines, c.counters(x, cut, minLink))
				}
			}
			s.cumInLowB, s.cumInLP = sub(s.cumulative.bytesIn, wb), sub(s.cumulative.pktsIn, wp)
			out = append(out, s)
		}
		// The firmware's baseline moves at every report it builds, accepted
		// or not.
		prevCut, prevBoot = cut, boot
	}
	if len(out) == 0 {
		return nil, "no accepted report carried network_stats"
	}
	return out, ""
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// matches reports whether a sample's stats equal the oracle exactly on the
// outbound side and within the window on the inbound side.
func (s statsSample) matches(k linkCounters, inLowB, inLowP, inHighB, inHighP uint64) bool {
	return eq(s.ns.BytesOut, k.bytesOut, k.bytesOut) && eq(s.ns.PacketsOut, k.pktsOut, k.pktsOut) &&
		eq(s.ns.BytesIn, inLowB, inHighB) && eq(s.ns.PacketsIn, inLowP, inHighP)
}

func (s statsSample) matchesDelta() bool {
	if s.matches(s.delta, s.deltaInLowB, s.deltaInLowP, s.deltaInHighB, s.deltaInHighP) {
		return true
	}
	for _, d := range s.lostBaselines {
		if s.matches(d, d.bytesIn, d.pktsIn, d.bytesIn, d.pktsIn) {
			return true
		}
	}
	return false
}

// lostReportPoints lists the link-event indexes in (prevCut, close] where
// the firmware may have built a report that was lost with the link: only
// when a link closed between the previous report and this one.
func (c *Capture) lostReportPoints(prevCut, cut int) []int {
	closeIdx := -1
	for i := prevCut + 1; i < cut && i < len(c.Link); i++ {
		if c.Link[i].Kind == LinkClose {
			closeIdx = i
			break
		}
	}
	if closeIdx < 0 {
		return nil
	}
	var out []int
	for i := prevCut + 1; i <= closeIdx; i++ {
		out = append(out, i)
	}
	return out
}

func (s statsSample) matchesCumulative() bool {
	return s.matches(s.cumulative, s.cumInLowB, s.cumInLP, s.cumulative.bytesIn, s.cumulative.pktsIn)
}

func eq(v *uint64, lo, hi uint64) bool { return v != nil && *v >= lo && *v <= hi }

func val(v *uint64) any {
	if v == nil {
		return nil
	}
	return *v
}

func (s statsSample) evidence() map[string]any {
	return map[string]any{
		"reported":   map[string]any{"bytes_in": val(s.ns.BytesIn), "bytes_out": val(s.ns.BytesOut), "packets_in": val(s.ns.PacketsIn), "packets_out": val(s.ns.PacketsOut)},
		"delta":      map[string]any{"bytes_in": s.delta.bytesIn, "bytes_out": s.delta.bytesOut, "packets_in": s.delta.pktsIn, "packets_out": s.delta.pktsOut},
		"cumulative": map[string]any{"bytes_in": s.cumulative.bytesIn, "bytes_out": s.cumulative.bytesOut, "packets_in": s.cumulative.pktsIn, "packets_out": s.cumulative.pktsOut},
	}
}

// checkDeltas: network_stats are deltas since the previous report, not
// running totals. Only reports after the first one since boot can tell the
// two apart.
func checkDeltas(c *Capture) Outcome {
	if why := c.unreported("network_stats"); why != "" {
		return skip("%s", why)
	}
	samples, why := c.statsSamples()
	if why != "" {
		return skip("%s", why)
	}
	var out Outcome
	judged := 0
	for _, s := range samples {
		if s.firstAfterBoot || s.delta == s.cumulative {
			continue
		}
		judged++
		if s.isCumulative() {
			out.Findings = append(out.Findings, finding(s.r,
				"network_stats are running totals since boot, not deltas since the previous report", s.evidence()).
				expecting(s.carriedText()+" (carried since the previous report)", s.reportedText()+" (totals since boot)"))
		}
	}
	if judged == 0 && len(out.Findings) == 0 {
		return skip("no second report after a boot to tell deltas from totals")
	}
	out.Measured = deltasMeasured(samples, judged)
	return out
}

func (s statsSample) isCumulative() bool {
	return !s.matchesDelta() && s.matchesCumulative()
}

// checkTrafficAgrees: each report's network_stats equal what crossed the
// link since the previous report.
func checkTrafficAgrees(c *Capture) Outcome {
	if why := c.unreported("network_stats"); why != "" {
		return skip("%s", why)
	}
	if c.Expect.Transport == "network" {
		return checkTrafficNetwork(c)
	}
	samples, why := c.statsSamples()
	if why != "" {
		return skip("%s", why)
	}
	var out Outcome
	for _, s := range samples {
		if !s.matchesDelta() {
			out.Findings = append(out.Findings, finding(s.r, "network_stats disagree with the traffic the module carried: "+s.diff(), s.evidence()).
				expecting(s.carriedText()+" (carried)", s.reportedText()+" (reported)"))
		}
	}
	out.Measured = trafficMeasured(samples)
	return out
}

func (s statsSample) diff() string {
	var parts []string
	add := func(name string, v *uint64, lo, hi uint64) {
		switch {
		case v == nil:
			parts = append(parts, name+" missing")
		case *v < lo || *v > hi:
			if lo == hi {
				parts = append(parts, fmt.Sprintf("%s %d, carried %d", name, *v, hi))
			} else {
				parts = append(parts, fmt.Sprintf("%s %d, carried %d..%d", name, *v, lo, hi))
			}
		}
	}
	add("bytes_out", s.ns.BytesOut, s.delta.bytesOut, s.delta.bytesOut)
	add("packets_out", s.ns.PacketsOut, s.delta.pktsOut, s.delta.pktsOut)
	add("bytes_in", s.ns.BytesIn, s.deltaInLowB, s.deltaInHighB)
	add("packets_in", s.ns.PacketsIn, s.deltaInLowP, s.deltaInHighP)
	return strings.Join(parts, "; ")
}

// checkTrafficNetwork bounds reports by the broker's transport counters.
func checkTrafficNetwork(c *Capture) Outcome {
	reports := c.Reports()
	var out Outcome
	var prev *broker.Meter
	judged := 0
	for i := range reports {
		r := &reports[i]
		m := c.meterAfter(r)
		res := r.Result()
		if m == nil {
			continue
		}
		if prev != nil && res.Accepted() && res.Report != nil && res.Report.Metrics != nil && res.Report.Metrics.NetworkStats != nil {
			ns := res.Report.Metrics.NetworkStats
			judged++
			own := uint64(publishSize(r.Event.Topic, len(r.Event.Payload), r.Event.QoS))
			obsOut := sub(m.BytesIn-own, prev.BytesIn)
			if ns.BytesOut != nil && ns.PacketsOut != nil {
				hi := obsOut + *ns.PacketsOut*uint64(c.Expect.HeaderOverhead) + own
				lo := sub(obsOut, own)
				if *ns.BytesOut < lo || *ns.BytesOut > hi {
					out.Findings = append(out.Findings, finding(r, fmt.Sprintf("bytes_out %d outside %d..%d (broker saw %d)", *ns.BytesOut, lo, hi, obsOut),
						map[string]any{"reported": *ns.BytesOut, "broker_bytes": obsOut, "allowed_min": lo, "allowed_max": hi}).
						expecting(fmt.Sprintf("bytes_out %d..%d", lo, hi), fmt.Sprintf("bytes_out %d", *ns.BytesOut)))
				}
			}
		}
		prev = m
	}
	if judged == 0 && len(out.Findings) == 0 {
		return skip("no pair of accepted reports with broker meters")
	}
	out.Measured = fmt.Sprintf("bytes_out of %s compared with the broker's transport meters (± %d bytes per packet)", plural(judged, "report"), c.Expect.HeaderOverhead)
	return out
}

// meterAfter finds the meter snapshot the broker took right after report r.
func (c *Capture) meterAfter(r *ReportView) *broker.Meter {
	for _, ev := range c.Events {
		if ev.Kind == broker.EventMeter && ev.ConnID == r.Event.ConnID && ev.Seq > r.Event.Seq && ev.Meter != nil {
			return ev.Meter
		}
	}
	return nil
}

// unreported is the skip reason when the device profile declares that the
// firmware does not report metric, else "".
func (c *Capture) unreported(metric string) string {
	for _, m := range c.Expect.Unreported {
		if m == metric {
			return "the device profile declares the firmware does not report " + metric
		}
	}
	return ""
}

// Ways DD-A03 matched the live connection.
const (
	matchedRemotePort = "remote_addr and local_port"
	matchedRemote     = "remote_addr (local_port absent)"
)

// checkConnections: tcp_connections lists the live broker connection with
// its real remote address, and with its local port when it reports one:
// AWS makes local_port optional, and a driver in multi-link mode never
// learns it, so an entry without local_port matches on remote_addr alone.
// A local_port that is present must be right.
func checkConnections(c *Capture) Outcome {
	if why := c.unreported("tcp_connections"); why != "" {
		return skip("%s", why)
	}
	reports := c.Reports()
	var out Outcome
	judged := 0
	matched := map[string]int{}
	var live []string
	for i := range reports {
		r := &reports[i]
		res := r.Result()
		if !res.Accepted() || res.Report == nil || r.Thing != c.Thing {
			continue
		}
		wantRemote, wantPort, ok := c.liveConnection(r)
		if ok && !slicesContains(live, fmt.Sprintf("%s lp=%d", wantRemote, wantPort)) {
			live = append(live, fmt.Sprintf("%s lp=%d", wantRemote, wantPort))
		}
		if !ok {
			continue
		}
		wantAddr := c.liveAddr(r)
		judged++
		var conns []defender.Connection
		if m := res.Report.Metrics; m != nil && m.TCPConnections != nil && m.TCPConnections.Established != nil {
			conns = m.TCPConnections.Established.Connections
		}
		how := ""
		var listed []string
		for _, cn := range conns {
			if cn.LocalPort == nil {
				listed = append(listed, cn.RemoteAddr+" (no local_port)")
			} else {
				listed = append(listed, fmt.Sprintf("%s lp=%d", cn.RemoteAddr, *cn.LocalPort))
			}
			switch {
			case !sameAddr(cn.RemoteAddr, wantRemote) && (wantAddr == "" || !sameAddr(cn.RemoteAddr, wantAddr)):
			case cn.LocalPort == nil:
				if how == "" {
					how = matchedRemote
				}
			case *cn.LocalPort == uint64(wantPort):
				how = matchedRemotePort
			}
		}
		if how == "" {
			out.Findings = append(out.Findings, finding(r,
				fmt.Sprintf("tcp_connections does not list the live connection remote_addr=%s local_port=%d (an entry without local_port would match on remote_addr alone)", wantRemote, wantPort),
				map[string]any{"expected_remote_addr": wantRemote, "expected_local_port": wantPort, "listed": listed}).
				expecting(fmt.Sprintf("%s lp=%d listed", wantRemote, wantPort), listedText(listed)))
			continue
		}
		matched[how]++
	}
	if judged == 0 {
		return skip("no accepted report with a known live connection")
	}
	for _, how := range []string{matchedRemotePort, matchedRemote} {
		if n := matched[how]; n > 0 {
			out.Notes = append(out.Notes, fmt.Sprintf("%d report(s) matched the live connection on %s", n, how))
		}
	}
	out.Measured = fmt.Sprintf("tcp_connections of %s compared with the live connection (%s)", plural(judged, "report"), strings.Join(live, ", "))
	return out
}

// liveAddr is the resolved address (ip:port) of the module link carrying
// report r when the device dialled it by name, else "".
func (c *Capture) liveAddr(r *ReportView) string {
	if c.Expect.Transport != "module" {
		return ""
	}
	remote, port, ok := c.liveConnection(r)
	if !ok {
		return ""
	}
	for i := range c.Link {
		if c.Link[i].Kind == LinkOpen && c.Link[i].Remote == remote && c.Link[i].LocalPort == port && c.Link[i].At <= r.At() {
			return c.Link[i].Addr
		}
	}
	return ""
}

// liveConnection is the connection carrying report r as the device sees it.
// On the module path that is the link whose sends carried the report
// (several links may be open in multi-link mode), else the last one opened.
func (c *Capture) liveConnection(r *ReportView) (remote string, localPort int, ok bool) {
	if c.Expect.Transport == "module" {
		carrier := -1
		if cut := c.reportCut(r); cut >= 0 {
			carrier = c.Link[cut].Link
		}
		var open, last *LinkEvent
		for i := range c.Link {
			if c.Link[i].At > r.At() {
				break
			}
			if c.Link[i].Kind == LinkOpen {
				last = &c.Link[i]
				if c.Link[i].Link == carrier {
					open = &c.Link[i]
				}
			}
		}
		if open == nil {
			open = last
		}
		if open == nil {
			return "", 0, false
		}
		return open.Remote, open.LocalPort, true
	}
	for _, ev := range c.Events {
		if ev.Kind == broker.EventConnect && ev.ConnID == r.Event.ConnID {
			_, port, err := net.SplitHostPort(ev.Remote)
			if err != nil {
				return "", 0, false
			}
			p, _ := strconv.Atoi(port)
			return c.Expect.Endpoint, p, c.Expect.Endpoint != ""
		}
	}
	return "", 0, false
}

func sameAddr(a, b string) bool {
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil {
		return strings.EqualFold(a, b)
	}
	return strings.EqualFold(strings.Trim(ha, "[]"), strings.Trim(hb, "[]")) && pa == pb
}

// checkListeningPorts: the reported listening ports equal the expected set.
func checkListeningPorts(c *Capture) Outcome {
	tcpWhy, udpWhy := c.unreported("listening_tcp_ports"), c.unreported("listening_udp_ports")
	if tcpWhy != "" && udpWhy != "" {
		return skip("%s and listening_udp_ports", tcpWhy)
	}
	reports := c.Reports()
	var out Outcome
	judged := 0
	for i := range reports {
		r := &reports[i]
		res := r.Result()
		if !res.Accepted() || res.Report == nil || r.Thing != c.Thing {
			continue
		}
		judged++
		var tcp, udp *defender.Ports
		if m := res.Report.Metrics; m != nil {
			tcp, udp = m.ListeningTCPPorts, m.ListeningUDPPorts
		}
		for _, side := range []struct {
			name string
			got  *defender.Ports
			want []int
		}{{"listening_tcp_ports", tcp, c.Expect.ListeningTCP}, {"listening_udp_ports", udp, c.Expect.ListeningUDP}} {
			if c.unreported(side.name) != "" {
				continue
			}
			got := portSet(side.got)
			if !equalInts(got, sortedInts(side.want)) {
				out.Findings = append(out.Findings, finding(r,
					fmt.Sprintf("%s reports %v, expected %v", side.name, got, sortedInts(side.want)),
					map[string]any{"section": side.name, "reported": got, "expected": sortedInts(side.want)}).
					expecting(fmt.Sprintf("%s %v", side.name, sortedInts(side.want)), fmt.Sprintf("%s %v", side.name, got)))
			}
		}
	}
	if judged == 0 {
		return skip("no accepted report from the device")
	}
	out.Measured = fmt.Sprintf("listening ports of %s compared with TCP %v, UDP %v", plural(judged, "report"), sortedInts(c.Expect.ListeningTCP), sortedInts(c.Expect.ListeningUDP))
	return out
}

func portSet(p *defender.Ports) []int {
	out := []int{}
	if p == nil {
		return out
	}
	for _, pt := range p.Ports {
		out = append(out, int(pt.Port))
	}
	sort.Ints(out)
	return out
}

func sortedInts(in []int) []int {
	out := append([]int{}, in...)
	sort.Ints(out)
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
