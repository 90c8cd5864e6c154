package conformance

import (
	"testing"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// editReports changes every parsed report of a capture in place.
func editReports(c *Capture, f func(m *defender.Metrics)) {
	for i := range c.Events {
		ev := &c.Events[i]
		if ev.Kind == broker.EventReport && ev.Result != nil && ev.Result.Report != nil && ev.Result.Report.Metrics != nil {
			f(ev.Result.Report.Metrics)
		}
	}
}

func eachConn(m *defender.Metrics, f func(cn *defender.Connection)) {
	if m.TCPConnections == nil || m.TCPConnections.Established == nil {
		return
	}
	for i := range m.TCPConnections.Established.Connections {
		f(&m.TCPConnections.Established.Connections[i])
	}
}

func resultOf(t *testing.T, c *Capture, id string) Result {
	t.Helper()
	check, ok := Lookup(id)
	require.True(t, ok)
	return Evaluate(c, []Check{check})[0]
}

// TestConnectionsMatchOnRemoteWithoutLocalPort: AWS makes local_port
// optional; an entry without it matches on remote_addr, and the check says so.
func TestConnectionsMatchOnRemoteWithoutLocalPort(t *testing.T) {
	c := newDevice(t).run(6)
	res := resultOf(t, c, "DD-A03")
	require.Equal(t, StatusPass, res.Status)
	require.Len(t, res.Notes, 1)
	assert.Regexp(t, `^\d+ report\(s\) matched the live connection on remote_addr and local_port$`, res.Notes[0])

	editReports(c, func(m *defender.Metrics) { eachConn(m, func(cn *defender.Connection) { cn.LocalPort = nil }) })
	res = resultOf(t, c, "DD-A03")
	assert.Equal(t, StatusPass, res.Status, "%v", res.Findings)
	require.Len(t, res.Notes, 1)
	assert.Regexp(t, `^\d+ report\(s\) matched the live connection on remote_addr \(local_port absent\)$`, res.Notes[0])

	// Without local_port the remote address still has to be right.
	editReports(c, func(m *defender.Metrics) {
		eachConn(m, func(cn *defender.Connection) { cn.RemoteAddr = "198.51.100.9:1883" })
	})
	res = resultOf(t, c, "DD-A03")
	require.Equal(t, StatusFail, res.Status)
	assert.Contains(t, res.Findings[0].Message, "remote_addr=127.0.0.1:1883")
	assert.Equal(t, []string{"198.51.100.9:1883 (no local_port)"}, res.Findings[0].Evidence["listed"])
}

// A wrong local_port still fails even though remote_addr matches (tc-stale).
func TestConnectionsWrongLocalPortFails(t *testing.T) {
	d := newDevice(t)
	d.lportLie = 1
	res := resultOf(t, d.run(6), "DD-A03")
	assert.Equal(t, StatusFail, res.Status)
	assert.Empty(t, res.Notes)
}

// TestConnectionsFollowTheCarryingLink: in multi-link mode a later link
// (a DNS lookup over UDP) may open after the broker link; the live
// connection is the link whose sends carried the report.
func TestConnectionsFollowTheCarryingLink(t *testing.T) {
	d := newDevice(t)
	d.phase("normal")
	d.connect()
	d.report()
	mqttLink := d.link
	d.advance(100e6)
	d.c.Link = append(d.c.Link, LinkEvent{At: d.now, Kind: LinkOpen, Link: mqttLink + 1, LocalPort: 50999, Remote: "192.0.2.254:53"})
	d.advance(900e6)
	d.report()
	d.advance(1e9)
	d.report()
	d.c.End = d.now
	res := resultOf(t, d.c, "DD-A03")
	assert.Equal(t, StatusPass, res.Status, "%v", res.Findings)
}

// TestUnreportedMetricsSkip: a metric the profile declares the firmware
// does not report skips its accuracy checks with that reason.
func TestUnreportedMetricsSkip(t *testing.T) {
	d := newDevice(t)
	d.inflate = true // network_stats that disagree
	c := d.run(6)
	c.Expect.ListeningUDP = []int{53} // a UDP port the firmware never reports
	editReports(c, func(m *defender.Metrics) { m.TCPConnections = nil })
	st, _ := statuses(t, c)
	assert.Equal(t, StatusFail, st["DD-A02"], "without the declaration")
	assert.Equal(t, StatusFail, st["DD-A03"])
	assert.Equal(t, StatusFail, st["DD-A04"])

	c.Expect.Unreported = []string{"network_stats", "tcp_connections", "listening_udp_ports"}
	_, res := statuses(t, c)
	got := map[string]Result{}
	for _, r := range res {
		got[r.Check.ID] = r
	}
	for _, id := range []string{"DD-A01", "DD-A02"} {
		assert.Equal(t, StatusSkip, got[id].Status, id)
		assert.Equal(t, "the device profile declares the firmware does not report network_stats", got[id].SkipReason)
	}
	assert.Equal(t, StatusSkip, got["DD-A03"].Status)
	assert.Equal(t, "the device profile declares the firmware does not report tcp_connections", got["DD-A03"].SkipReason)
	assert.Equal(t, StatusPass, got["DD-A04"].Status, "the TCP side is still judged")

	c.Expect.Unreported = append(c.Expect.Unreported, "listening_tcp_ports")
	assert.Equal(t, StatusSkip, resultOf(t, c, "DD-A04").Status)
	for m := range UnreportedMetrics {
		assert.NotEmpty(t, c.unreported(m), m)
	}
}

// TestModuleMQTTCounting: with the module's own MQTT client a report is
// one publish counted as topic + payload; the accuracy checks find it.
func TestModuleMQTTCounting(t *testing.T) {
	d := newDevice(t)
	d.moduleMQTT = true
	st, res := statuses(t, d.run(6))
	for _, r := range res {
		if r.Status != StatusPass && r.Status != StatusSkip {
			t.Logf("%s %s %v", r.Check.ID, r.Status, r.Findings)
		}
	}
	for _, id := range []string{"DD-A01", "DD-A02", "DD-A03"} {
		assert.Equal(t, StatusPass, st[id], id)
	}
	d = newDevice(t)
	d.moduleMQTT, d.inflate = true, true
	st, _ = statuses(t, d.run(6))
	assert.Equal(t, StatusFail, st["DD-A02"])
}

// TestConnectionsByResolvedAddress: a device that dialled the AWS endpoint
// name reports the address the module resolved it to.
func TestConnectionsByResolvedAddress(t *testing.T) {
	c := newDevice(t).run(6)
	for i := range c.Link {
		c.Link[i].Remote, c.Link[i].Addr = "abc-ats.iot.eu-west-1.amazonaws.com:1883", "127.0.0.1:1883"
	}
	res := resultOf(t, c, "DD-A03")
	assert.Equal(t, StatusPass, res.Status, "%v", res.Findings)
	for i := range c.Link {
		c.Link[i].Addr = ""
	}
	assert.Equal(t, StatusFail, resultOf(t, c, "DD-A03").Status)
}

// DD-R01 does not pass when nothing reconnected within a run that ended
// before the bound: it skips and says so.
func TestReconnectNotJudgedIsASkip(t *testing.T) {
	c := &Capture{Thing: "dut", End: 8 * time.Second, Expect: Expectations{ReconnectBound: 40 * time.Second, FirstReportBound: 5 * time.Second},
		Actions: []Action{{At: time.Second, Kind: ActionReset, Detail: "console reset after provisioning"}}}
	out := checkReconnect(c)
	assert.NotEmpty(t, out.SkipReason, "skipped, not passed")
	assert.Contains(t, out.SkipReason, "no reconnect seen")
	assert.Empty(t, out.Findings)
}
