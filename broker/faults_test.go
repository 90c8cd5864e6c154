package broker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

func responseEvents(b *Broker) []Event {
	var out []Event
	for _, ev := range b.Events() {
		if ev.Kind == EventResponse {
			out = append(out, ev)
		}
	}
	return out
}

// responseTo matches the response event answering report id.
func responseTo(id uint64) func(Event) bool {
	return func(ev Event) bool {
		return ev.Kind == EventResponse && ev.Response != nil && ev.Response.ReportID != nil && *ev.Response.ReportID == id
	}
}

func TestDelayResponses(t *testing.T) {
	b := startBroker(t, Config{Throttle: NoThrottle})
	d := newDevice(t, b, "thing-f")
	const delay = 300 * time.Millisecond
	b.DelayResponses(delay)
	start := time.Now()
	resp, _ := d.report(t, defender.JSON, reportJSON(1))
	assert.GreaterOrEqual(t, time.Since(start), delay)
	assert.Equal(t, uint64(1), *resp.ReportID)
	ev := waitEvent(t, b, "response", kindIs(EventResponse, "thing-f"))
	rep := waitEvent(t, b, "report", kindIs(EventReport, "thing-f"))
	assert.Equal(t, FaultDelay, ev.Fault)
	assert.GreaterOrEqual(t, ev.Mono-rep.Mono, delay, "the log shows the delay too")

	b.DelayResponses(0)
	d.report(t, defender.JSON, reportJSON(2))
	second := waitEvent(t, b, "second response", responseTo(2))
	assert.Empty(t, second.Fault)
}

// TestDropResponses: dropped responses are never sent; the next response a
// device receives belongs to the first report sent after the drop ended
// (responses keep their order, so nothing can still be in flight).
func TestDropResponses(t *testing.T) {
	cases := []struct {
		name  string
		setup func(b *Broker)
		drops int // reports sent while dropping
		reset func(b *Broker)
	}{
		{"all until resumed", func(b *Broker) { b.DropResponses(true) }, 3, func(b *Broker) { b.DropResponses(false) }},
		{"next two", func(b *Broker) { b.DropNextResponses(2) }, 2, func(*Broker) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, Config{Throttle: NoThrottle})
			d := newDevice(t, b, "thing-f")
			tc.setup(b)
			for id := 1; id <= tc.drops; id++ {
				publishPaho(t, d.c, topicOf("thing-f", defender.JSONPublish), 1, reportJSON(uint64(id)))
			}
			tc.reset(b)
			resp, _ := d.report(t, defender.JSON, reportJSON(100))
			assert.Equal(t, uint64(100), *resp.ReportID)

			waitEvent(t, b, "last response", responseTo(100)) // the client may see it before it is logged
			evs := responseEvents(b)
			require.Len(t, evs, tc.drops+1)
			for i, ev := range evs[:tc.drops] {
				assert.Equal(t, FaultDrop, ev.Fault, "response %d", i)
				assert.Equal(t, uint64(i+1), *ev.Response.ReportID)
			}
			assert.Empty(t, evs[tc.drops].Fault)
		})
	}
}

func TestRejectAll(t *testing.T) {
	b := startBroker(t, Config{Throttle: NoThrottle})
	d := newDevice(t, b, "thing-f")
	cases := []struct {
		code    string
		wantMsg string
	}{
		{defender.CodeThrottled, defender.MsgThrottled},
		{defender.CodeInvalidPayload, defender.MsgMalformed},
		{"InternalError", "InternalError"},
	}
	for i, tc := range cases {
		b.RejectAll(tc.code)
		resp, topic := d.report(t, defender.JSON, reportJSON(uint64(i+1)))
		assert.Equal(t, topicOf("thing-f", defender.JSONRejected), topic)
		require.NotNil(t, resp.StatusDetails)
		assert.Equal(t, tc.code, resp.StatusDetails.ErrorCode)
		assert.Equal(t, tc.wantMsg, resp.StatusDetails.ErrorMessage)
		assert.Equal(t, uint64(i+1), *resp.ReportID)
	}
	b.RejectAll("")
	resp, _ := d.report(t, defender.JSON, reportJSON(10))
	assert.Equal(t, defender.StatusAccepted, resp.Status)
	rep := waitEvent(t, b, "report", kindIs(EventReport, "thing-f"))
	assert.Equal(t, FaultRejectAll, rep.Fault)
	assert.False(t, rep.Result.Accepted())
}

func TestDropConnectionAfter(t *testing.T) {
	b := startBroker(t, Config{Throttle: NoThrottle})
	opts := pahoOpts(b, "thing-f")
	lost := lostNotifier(opts)
	c := connectPaho(t, opts)
	b.DropConnectionAfter(2)
	publishPaho(t, c, topicOf("thing-f", defender.JSONPublish), 1, reportJSON(1))
	require.Empty(t, lost, "still connected after the first report")
	// The second report's PUBACK may never come: the link drops right after it.
	c.Publish(topicOf("thing-f", defender.JSONPublish), 1, false, reportJSON(2))
	waitLost(t, lost)
	dis := waitEvent(t, b, "disconnect", kindIs(EventDisconnect, "thing-f"))
	assert.Equal(t, ReasonServerDisconnect, dis.Reason)
	assert.Equal(t, FaultDropConnection, dis.Fault)
	assert.Equal(t, 2, countEvents(b, kindIs(EventReport, "thing-f")))

	// The next connection is dropped after its own second report, and the
	// switch turns off with 0.
	b.DropConnectionAfter(0)
	c2 := connectPaho(t, pahoOpts(b, "thing-f"))
	for id := uint64(3); id <= 5; id++ {
		publishPaho(t, c2, topicOf("thing-f", defender.JSONPublish), 1, reportJSON(id))
	}
	assert.True(t, c2.IsConnectionOpen())
}

func TestKick(t *testing.T) {
	b := startBroker(t, Config{})
	opts := pahoOpts(b, "thing-k")
	lost := lostNotifier(opts)
	connectPaho(t, opts)
	require.NoError(t, b.Kick("thing-k"))
	waitLost(t, lost)
	dis := waitEvent(t, b, "disconnect", kindIs(EventDisconnect, "thing-k"))
	assert.Equal(t, ReasonAPIDisconnect, dis.Reason)
	assert.Equal(t, FaultKick, dis.Fault)

	require.ErrorContains(t, b.Kick("nobody"), "no connected client")
	// Reconnecting after a kick works.
	connectPaho(t, pahoOpts(b, "thing-k"))
}
