package broker

import (
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

// fakeClock is a settable clock for the throttle window.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// device is a paho client subscribed to its thing's four response topics.
type device struct {
	c     paho.Client
	thing string
	resp  <-chan paho.Message
}

func newDevice(t *testing.T, b *Broker, thing string) *device {
	t.Helper()
	c := connectPaho(t, pahoOpts(b, thing))
	ch := make(chan paho.Message, 64)
	for _, k := range []defender.TopicKind{defender.JSONAccepted, defender.JSONRejected, defender.CBORAccepted, defender.CBORRejected} {
		tok := c.Subscribe(topicOf(thing, k), 1, func(_ paho.Client, m paho.Message) { ch <- m })
		require.True(t, tok.WaitTimeout(waitLimit))
		require.NoError(t, tok.Error())
	}
	return &device{c: c, thing: thing, resp: ch}
}

// report publishes a payload and returns the decoded response and its topic.
func (d *device) report(t *testing.T, f defender.Format, payload []byte) (defender.Response, string) {
	t.Helper()
	kind := defender.JSONPublish
	if f == defender.CBOR {
		kind = defender.CBORPublish
	}
	publishPaho(t, d.c, topicOf(d.thing, kind), 1, payload)
	m := receive(t, d.resp)
	return decodeResponse(t, f, m.Payload()), m.Topic()
}

func TestReportVerdicts(t *testing.T) {
	cases := []struct {
		name       string
		cfg        Config
		format     defender.Format
		payload    func(t testing.TB) []byte
		wantTopic  defender.TopicKind
		wantStatus string
		wantCode   string
		wantID     *uint64
	}{
		{"json accepted", Config{}, defender.JSON, func(testing.TB) []byte { return reportJSON(7) },
			defender.JSONAccepted, defender.StatusAccepted, "", ptr(uint64(7))},
		{"cbor accepted", Config{}, defender.CBOR, func(t testing.TB) []byte { return reportCBOR(t, 8) },
			defender.CBORAccepted, defender.StatusAccepted, "", ptr(uint64(8))},
		{"json invalid echoes reportId", Config{}, defender.JSON, func(testing.TB) []byte { return invalidJSON(9) },
			defender.JSONRejected, defender.StatusRejected, defender.CodeInvalidPayload, ptr(uint64(9))},
		{"json invalid without reportId (AWS doc example)", Config{OmitReportIDOnInvalid: true}, defender.JSON,
			func(testing.TB) []byte { return invalidJSON(9) },
			defender.JSONRejected, defender.StatusRejected, defender.CodeInvalidPayload, nil},
		{"garbage json has no reportId", Config{}, defender.JSON, func(testing.TB) []byte { return []byte("{not json") },
			defender.JSONRejected, defender.StatusRejected, defender.CodeInvalidPayload, nil},
		{"json payload on cbor topic", Config{}, defender.CBOR, func(testing.TB) []byte { return reportJSON(3) },
			defender.CBORRejected, defender.StatusRejected, defender.CodeInvalidPayload, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, tc.cfg)
			d := newDevice(t, b, "thing-1")
			resp, topic := d.report(t, tc.format, tc.payload(t))
			assert.Equal(t, topicOf("thing-1", tc.wantTopic), topic)
			assert.Equal(t, "thing-1", resp.ThingName)
			assert.Equal(t, tc.wantStatus, resp.Status)
			assert.Equal(t, tc.wantID, resp.ReportID)
			assert.InDelta(t, time.Now().UnixMilli(), resp.Timestamp, float64(waitLimit.Milliseconds()))
			if tc.wantCode == "" {
				assert.Nil(t, resp.StatusDetails)
			} else {
				require.NotNil(t, resp.StatusDetails)
				assert.Equal(t, tc.wantCode, resp.StatusDetails.ErrorCode)
				assert.Equal(t, defender.MsgMalformed, resp.StatusDetails.ErrorMessage)
			}

			rep := waitEvent(t, b, "report event", kindIs(EventReport, "thing-1"))
			require.NotNil(t, rep.Result)
			assert.Equal(t, tc.wantCode == "", rep.Result.Accepted())
			assert.Equal(t, "thing-1", rep.Thing)
			assert.Equal(t, tc.format, rep.Format)
			assert.NotEmpty(t, rep.Payload)
			resEv := waitEvent(t, b, "response event", kindIs(EventResponse, "thing-1"))
			assert.Greater(t, resEv.Seq, rep.Seq)
			assert.Equal(t, rep.ConnID, resEv.ConnID)
			assert.Equal(t, topic, resEv.Topic)
			require.NotNil(t, resEv.Response)
			assert.Equal(t, resp, *resEv.Response, "the logged response is the one sent")
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestCBORResponseWireFormat decodes the CBOR answer with fxamacker/cbor
// directly: a map with text keys, as the AWS v4 SDK system test reads it.
func TestCBORResponseWireFormat(t *testing.T) {
	b := startBroker(t, Config{})
	c := connectPaho(t, pahoOpts(b, "thing-c"))
	acc := subscribePaho(t, c, topicOf("thing-c", defender.CBORAccepted), 1)
	rej := subscribePaho(t, c, topicOf("thing-c", defender.CBORRejected), 1)

	publishPaho(t, c, topicOf("thing-c", defender.CBORPublish), 0, reportCBOR(t, 41))
	var m map[string]any
	require.NoError(t, cbor.Unmarshal(receive(t, acc).Payload(), &m))
	assert.Equal(t, "thing-c", m["thingName"])
	assert.Equal(t, uint64(41), m["reportId"])
	assert.Equal(t, "ACCEPTED", m["status"])
	assert.IsType(t, uint64(0), m["timestamp"])

	publishPaho(t, c, topicOf("thing-c", defender.CBORPublish), 0, []byte{0xff, 0x00})
	var r map[string]any
	require.NoError(t, cbor.Unmarshal(receive(t, rej).Payload(), &r))
	assert.Equal(t, "REJECTED", r["status"])
	details, ok := r["statusDetails"].(map[any]any)
	require.True(t, ok, "statusDetails is a map: %T", r["statusDetails"])
	assert.Equal(t, "InvalidPayload", details["ErrorCode"])
}

// TestWildcardSubscribers: responses reach every matching filter, including
// the STM32 reference's "+" thing level and the Go SDK's "json/+".
func TestWildcardSubscribers(t *testing.T) {
	b := startBroker(t, Config{})
	dev := connectPaho(t, pahoOpts(b, "thing-w"))
	watcher := connectPaho(t, pahoOpts(b, "watcher"))
	plusThing := subscribePaho(t, watcher, "$aws/things/+/defender/metrics/cbor/accepted", 1)
	plusSuffix := subscribePaho(t, dev, "$aws/things/thing-w/defender/metrics/cbor/+", 1)
	hash := subscribePaho(t, watcher, "$aws/things/thing-w/#", 0)

	publishPaho(t, dev, topicOf("thing-w", defender.CBORPublish), 1, reportCBOR(t, 5))
	for name, ch := range map[string]<-chan paho.Message{"+ thing": plusThing, "+ suffix": plusSuffix} {
		m := receive(t, ch)
		assert.Equal(t, topicOf("thing-w", defender.CBORAccepted), m.Topic(), name)
		assert.Equal(t, uint64(5), *decodeResponse(t, defender.CBOR, m.Payload()).ReportID, name)
	}
	// "#" sees the report itself, then the response.
	assert.Equal(t, topicOf("thing-w", defender.CBORPublish), receive(t, hash).Topic())
	assert.Equal(t, topicOf("thing-w", defender.CBORAccepted), receive(t, hash).Topic())
}

// TestGatewayPublishesForAnotherThing: the response goes to the thing named
// in the topic, whoever published (AWS FAQ: Thing-1 may report for Thing-2).
func TestGatewayPublishesForAnotherThing(t *testing.T) {
	b := startBroker(t, Config{})
	other := newDevice(t, b, "thing-2")
	gw := connectPaho(t, pahoOpts(b, "gateway"))
	publishPaho(t, gw, topicOf("thing-2", defender.JSONPublish), 1, reportJSON(1))
	m := receive(t, other.resp)
	assert.Equal(t, topicOf("thing-2", defender.JSONAccepted), m.Topic())
}

func TestThrottle(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, Config{clock: clock.Now}) // default 300 s
	d := newDevice(t, b, "thing-t")

	steps := []struct {
		name    string
		advance time.Duration
		payload []byte
		want    string // "" = accepted, else ErrorCode
	}{
		{"first report starts the window", 0, reportJSON(1), ""},
		{"invalid report is judged before the throttle", time.Second, invalidJSON(2), defender.CodeInvalidPayload},
		{"valid report inside the window", time.Second, reportJSON(3), defender.CodeThrottled},
		{"still inside, rejections did not restart it", 297 * time.Second, reportJSON(4), defender.CodeThrottled},
		{"window over (300 s after the accepted one)", time.Second, reportJSON(5), ""},
		{"next window", 299 * time.Second, reportJSON(6), defender.CodeThrottled},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		resp, _ := d.report(t, defender.JSON, s.payload)
		if s.want == "" {
			assert.Equal(t, defender.StatusAccepted, resp.Status, s.name)
			continue
		}
		require.NotNil(t, resp.StatusDetails, s.name)
		assert.Equal(t, s.want, resp.StatusDetails.ErrorCode, s.name)
		if s.want == defender.CodeThrottled {
			assert.Equal(t, defender.MsgThrottled, resp.StatusDetails.ErrorMessage, s.name)
		}
	}

	// The window is per thing.
	other := newDevice(t, b, "thing-u")
	resp, _ := other.report(t, defender.JSON, reportJSON(1))
	assert.Equal(t, defender.StatusAccepted, resp.Status)
}

func TestThrottleDisabled(t *testing.T) {
	b := startBroker(t, Config{Throttle: NoThrottle})
	d := newDevice(t, b, "thing-n")
	for id := uint64(1); id <= 3; id++ {
		resp, _ := d.report(t, defender.JSON, reportJSON(id))
		assert.Equal(t, defender.StatusAccepted, resp.Status)
	}
}

func TestDuplicateReportIDs(t *testing.T) {
	cases := []struct {
		policy   string
		wantDup  string // "accepted", "rejected" or "dropped"
		wantCode string
	}{
		{DuplicatesAccept, "accepted", ""},
		{DuplicatesReject, "rejected", defender.CodeInvalidPayload},
		{DuplicatesDrop, "dropped", ""},
	}
	for _, tc := range cases {
		t.Run(tc.policy, func(t *testing.T) {
			b := startBroker(t, Config{Throttle: NoThrottle, DuplicateIDs: tc.policy})
			d := newDevice(t, b, "thing-d")
			resp, _ := d.report(t, defender.JSON, reportJSON(10))
			require.Equal(t, defender.StatusAccepted, resp.Status)

			// Same id again, then a fresh one: the fresh one's response proves
			// what happened to the duplicate, because responses keep order.
			publishPaho(t, d.c, topicOf("thing-d", defender.JSONPublish), 1, reportJSON(10))
			publishPaho(t, d.c, topicOf("thing-d", defender.JSONPublish), 1, reportJSON(11))
			first := decodeResponse(t, defender.JSON, receive(t, d.resp).Payload())
			switch tc.wantDup {
			case "accepted":
				assert.Equal(t, defender.StatusAccepted, first.Status)
				assert.Equal(t, uint64(10), *first.ReportID)
			case "rejected":
				assert.Equal(t, defender.StatusRejected, first.Status)
				assert.Equal(t, tc.wantCode, first.StatusDetails.ErrorCode)
				assert.Equal(t, uint64(10), *first.ReportID)
			case "dropped":
				assert.Equal(t, uint64(11), *first.ReportID, "the duplicate got no response")
				ev := waitEvent(t, b, "dropped response", func(ev Event) bool { return ev.Kind == EventResponse && ev.Fault == FaultDrop })
				assert.Contains(t, ev.Reason, "duplicate report_id 10")
				return
			}
			second := decodeResponse(t, defender.JSON, receive(t, d.resp).Payload())
			assert.Equal(t, uint64(11), *second.ReportID)
			assert.Equal(t, defender.StatusAccepted, second.Status)
		})
	}
}

func TestReportEventsCarryMeterAfterReport(t *testing.T) {
	b := startBroker(t, Config{})
	d := newDevice(t, b, "thing-m")
	d.report(t, defender.JSON, reportJSON(1))
	rep := waitEvent(t, b, "report", kindIs(EventReport, "thing-m"))
	m := waitEvent(t, b, "meter", func(ev Event) bool { return ev.Kind == EventMeter && ev.Seq > rep.Seq })
	assert.Equal(t, rep.Seq+1, m.Seq, "the meter snapshot follows its report directly")
	assert.Equal(t, rep.ConnID, m.ConnID)
	require.NotNil(t, m.Meter)
	// CONNECT, 4 SUBSCRIBE, the report PUBLISH.
	assert.Equal(t, uint64(6), m.Meter.PacketsIn)
	assert.Greater(t, m.Meter.BytesIn, uint64(len(rep.Payload)))
}
