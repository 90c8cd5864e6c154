package broker

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

// TestRefusalsDisconnect covers every action AWS IoT Core answers by
// closing the connection, over MQTT 3.1.1 (socket closed, no DISCONNECT
// packet) and MQTT 5 (DISCONNECT with a reason code first).
func TestRefusalsDisconnect(t *testing.T) {
	big := bytes.Repeat([]byte("x"), defender.MaxPayload+1)
	cases := []struct {
		name       string
		policy     string
		act        func(rc *rawClient)
		wantPolicy string
		wantReason string
		wantCode   byte // MQTT 5 DISCONNECT reason code
	}{
		{"qos2 publish", PolicyOpen,
			func(rc *rawClient) { rc.publish("a/b", 2, false, 1, []byte("x")) },
			RefusedQoS2, ReasonClientError, packets.ErrQosNotSupported.Code},
		{"payload over 128 KB", PolicyOpen,
			func(rc *rawClient) { rc.publish("a/b", 1, false, 1, big) },
			RefusedOversize, ReasonClientError, packets.ErrPacketTooLarge.Code},
		{"retained publish on $aws", PolicyOpen,
			func(rc *rawClient) { rc.publish("$aws/things/dev/shadow/update", 1, true, 1, []byte("{}")) },
			RefusedRetainAWS, ReasonClientError, packets.ErrRetainNotSupported.Code},
		{"publish on a response topic", PolicyOpen,
			func(rc *rawClient) { rc.publish(topicOf("dev", defender.JSONAccepted), 0, false, 0, []byte("{}")) },
			RefusedResponseTopic, ReasonAuthError, packets.ErrNotAuthorized.Code},
		{"strict: publish for another thing", PolicyStrict,
			func(rc *rawClient) { rc.publish(topicOf("other", defender.JSONPublish), 1, false, 1, reportJSON(1)) },
			RefusedPolicy, ReasonAuthError, packets.ErrNotAuthorized.Code},
		{"strict: publish outside $aws/things", PolicyStrict,
			func(rc *rawClient) { rc.publish("telemetry/dev", 0, false, 0, []byte("1")) },
			RefusedPolicy, ReasonAuthError, packets.ErrNotAuthorized.Code},
		{"strict: subscribe to another thing", PolicyStrict,
			func(rc *rawClient) {
				rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
					Filters: packets.Subscriptions{{Filter: topicOf("other", defender.JSONAccepted), Qos: 1}}})
			},
			RefusedPolicy, ReasonAuthError, packets.ErrNotAuthorized.Code},
		{"strict: subscribe with + thing level", PolicyStrict,
			func(rc *rawClient) {
				rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
					Filters: packets.Subscriptions{{Filter: "$aws/things/+/defender/metrics/json/accepted", Qos: 1}}})
			},
			RefusedPolicy, ReasonAuthError, packets.ErrNotAuthorized.Code},
	}
	for _, tc := range cases {
		for _, version := range []byte{4, 5} {
			name := tc.name + "/mqtt3"
			if version == 5 {
				name = tc.name + "/mqtt5"
			}
			t.Run(name, func(t *testing.T) {
				b := startBroker(t, Config{Policy: tc.policy})
				rc := dialRaw(t, b.Addr("tcp"), version)
				rc.connect("dev", true)
				tc.act(rc)
				seen := rc.expectClosed()
				if version == 5 {
					require.Len(t, seen, 1, "MQTT 5 gets exactly a DISCONNECT")
					assert.Equal(t, packets.Disconnect, seen[0].FixedHeader.Type)
					assert.Equal(t, tc.wantCode, seen[0].ReasonCode)
				} else {
					assert.Empty(t, seen, "MQTT 3.1.1 has no server DISCONNECT: nothing, not even an ack")
				}
				pol := waitEvent(t, b, "policy event", kindIs(EventPolicy, "dev"))
				assert.Equal(t, tc.wantPolicy, pol.Reason)
				assert.NotEmpty(t, pol.Error)
				assert.NotEmpty(t, pol.Topic)
				dis := waitEvent(t, b, "disconnect", kindIs(EventDisconnect, "dev"))
				assert.Equal(t, tc.wantReason, dis.Reason)
				assert.Zero(t, countEvents(b, kindIs(EventReport, "")), "a refused publish is never judged")
			})
		}
	}
}

// TestAllowedNearRefusals: the neighbours of each refusal pass.
func TestAllowedNearRefusals(t *testing.T) {
	exact := bytes.Repeat([]byte("x"), defender.MaxPayload)
	cases := []struct {
		name   string
		policy string
		act    func(rc *rawClient)
	}{
		{"payload of exactly 128 KB", PolicyOpen, func(rc *rawClient) {
			rc.publish("a/b", 1, false, 1, exact)
			rc.expect(packets.Puback)
		}},
		{"retained publish on a plain topic", PolicyOpen, func(rc *rawClient) {
			rc.publish("status/dev", 1, true, 1, []byte("up"))
			rc.expect(packets.Puback)
		}},
		{"qos 1 publish", PolicyOpen, func(rc *rawClient) {
			rc.publish("a/b", 1, false, 7, []byte("x"))
			assert.Equal(t, uint16(7), rc.expect(packets.Puback).PacketID)
		}},
		{"strict: own report topic", PolicyStrict, func(rc *rawClient) {
			rc.publish(topicOf("dev", defender.JSONPublish), 1, false, 1, reportJSON(1))
			rc.expect(packets.Puback)
		}},
		{"strict: own wildcard below the thing", PolicyStrict, func(rc *rawClient) {
			ack := rc.subscribe(1, "$aws/things/dev/defender/metrics/json/+", 1)
			assert.Equal(t, []byte{1}, ack.ReasonCodes)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, Config{Policy: tc.policy})
			rc := dialRaw(t, b.Addr("tcp"), 4)
			rc.connect("dev", true)
			tc.act(rc)
			rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
			for {
				pk := rc.expectAny()
				if pk.FixedHeader.Type == packets.Pingresp {
					break
				}
			}
			assert.Zero(t, countEvents(b, kindIs(EventPolicy, "")))
		})
	}
}

// TestPacketTooLargeForMochi: a packet far above the cap is cut off while
// its header is read, still logged as an oversize refusal.
func TestPacketTooLargeForMochi(t *testing.T) {
	b := startBroker(t, Config{})
	rc := dialRaw(t, b.Addr("tcp"), 4)
	rc.connect("dev", true)
	// Fixed header of a PUBLISH announcing 1 MB; the body never needs to follow.
	rc.writeBytes([]byte{0x30, 0x80, 0x80, 0x40})
	assert.Empty(t, rc.expectClosed())
	pol := waitEvent(t, b, "policy", kindIs(EventPolicy, "dev"))
	assert.Equal(t, RefusedOversize, pol.Reason)
	dis := waitEvent(t, b, "disconnect", kindIs(EventDisconnect, "dev"))
	assert.Equal(t, ReasonClientError, dis.Reason)
}

// TestQoS2SubscriptionRefused: SUBACK 0x80 for the QoS 2 filter only (AWS's
// own answer is not documented: its 2022 text says no SUBACK at all).
func TestQoS2SubscriptionRefused(t *testing.T) {
	for _, version := range []byte{4, 5} {
		t.Run([]string{4: "mqtt3", 5: "mqtt5"}[version], func(t *testing.T) {
			b := startBroker(t, Config{})
			rc := dialRaw(t, b.Addr("tcp"), version)
			rc.connect("dev", true)
			rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 3,
				Filters: packets.Subscriptions{{Filter: "a/b", Qos: 2}, {Filter: "c/d", Qos: 1}}})
			ack := rc.expect(packets.Suback)
			assert.Equal(t, []byte{0x80, 0x01}, ack.ReasonCodes)

			// Nothing is delivered on the refused filter, the other one works.
			other := dialRaw(t, b.Addr("tcp"), 4)
			other.connect("pub", true)
			other.publish("a/b", 0, false, 0, []byte("no"))
			other.publish("c/d", 0, false, 0, []byte("yes"))
			pk := rc.expect(packets.Publish)
			assert.Equal(t, "c/d", pk.TopicName)

			subs := []Event{}
			for _, ev := range b.Events() {
				if ev.Kind == EventSubscribe {
					subs = append(subs, ev)
				}
			}
			require.Len(t, subs, 2)
			assert.Equal(t, "a/b", subs[0].Topic, "the event keeps the filter the client sent")
			assert.Equal(t, byte(2), subs[0].QoS)
			assert.Equal(t, byte(0x80), *subs[0].ReturnCode)
			assert.Contains(t, subs[0].Error, "QoS 2")
			assert.Equal(t, byte(1), *subs[1].ReturnCode)
			assert.Empty(t, subs[1].Error)
		})
	}
}

// TestDuplicateClientID: the newer connection wins, the older one is
// closed (3.1.1: without a DISCONNECT packet; 5: DISCONNECT 0x8E).
func TestDuplicateClientID(t *testing.T) {
	for _, version := range []byte{4, 5} {
		t.Run([]string{4: "mqtt3", 5: "mqtt5"}[version], func(t *testing.T) {
			b := startBroker(t, Config{})
			first := dialRaw(t, b.Addr("tcp"), version)
			first.connect("dev", true)
			second := dialRaw(t, b.Addr("tcp"), version)
			second.connect("dev", true)
			seen := first.expectClosed()
			if version == 5 {
				require.Len(t, seen, 1)
				assert.Equal(t, packets.ErrSessionTakenOver.Code, seen[0].ReasonCode)
			} else {
				assert.Empty(t, seen)
			}
			dis := waitEvent(t, b, "disconnect of the first", kindIs(EventDisconnect, "dev"))
			assert.Equal(t, ReasonDuplicateClient, dis.Reason)
			assert.Equal(t, "tcp-1", dis.ConnID)

			// The survivor still works end to end.
			second.subscribe(1, topicOf("dev", defender.JSONAccepted), 1)
			second.publish(topicOf("dev", defender.JSONPublish), 1, false, 2, reportJSON(1))
			got := map[byte]int{}
			for got[packets.Publish] == 0 {
				got[second.expectAny().FixedHeader.Type]++
			}
			assert.Equal(t, 1, got[packets.Puback])
		})
	}
}

// TestPersistentSession: cleanSession=0 resumes subscriptions and queued
// QoS 1 responses across a reconnect, with sessionPresent set.
func TestPersistentSession(t *testing.T) {
	b := startBroker(t, Config{})
	rc := dialRaw(t, b.Addr("tcp"), 4)
	ack := rc.connect("dev", false)
	assert.False(t, ack.SessionPresent)
	rc.subscribe(1, topicOf("dev", defender.JSONAccepted), 1)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	rc.expectClosed()
	dis := waitEvent(t, b, "disconnect", kindIs(EventDisconnect, "dev"))
	assert.Equal(t, ReasonClientDisconnect, dis.Reason)

	// A report made while the device is away is answered into its session.
	gw := dialRaw(t, b.Addr("tcp"), 4)
	gw.connect("gateway", true)
	gw.publish(topicOf("dev", defender.JSONPublish), 1, false, 1, reportJSON(9))
	gw.expect(packets.Puback)
	waitEvent(t, b, "response", kindIs(EventResponse, "gateway"))

	back := dialRaw(t, b.Addr("tcp"), 4)
	ack = back.connect("dev", false)
	assert.True(t, ack.SessionPresent)
	pk := back.expect(packets.Publish)
	assert.Equal(t, topicOf("dev", defender.JSONAccepted), pk.TopicName)
	assert.Equal(t, uint64(9), *decodeResponse(t, defender.JSON, pk.Payload).ReportID)
	conn := waitEvent(t, b, "reconnect", func(ev Event) bool { return ev.Kind == EventConnect && ev.ConnID == "tcp-3" })
	require.NotNil(t, conn.Connect)
	assert.True(t, conn.Connect.SessionPresent)
	assert.False(t, conn.Connect.CleanSession)

	// And a clean session starts empty.
	back.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	back.expectClosed()
	clean := dialRaw(t, b.Addr("tcp"), 4)
	assert.False(t, clean.connect("dev", true).SessionPresent)
}

func TestMQTT5RoundTrip(t *testing.T) {
	b := startBroker(t, Config{})
	rc := dialRaw(t, b.Addr("tcp"), 5)
	ack := rc.connect("dev5", true)
	assert.True(t, ack.Properties.MaximumQosFlag)
	assert.Equal(t, byte(1), ack.Properties.MaximumQos, "CONNACK announces AWS's QoS 1 maximum")
	rc.subscribe(1, topicOf("dev5", defender.CBORAccepted), 1)
	rc.publish(topicOf("dev5", defender.CBORPublish), 1, false, 2, reportCBOR(t, 77))
	var resp packets.Packet
	for resp.FixedHeader.Type != packets.Publish {
		resp = rc.expectAny()
	}
	assert.Equal(t, uint64(77), *decodeResponse(t, defender.CBOR, resp.Payload).ReportID)
	conn := waitEvent(t, b, "connect", kindIs(EventConnect, "dev5"))
	assert.Equal(t, byte(5), conn.Connect.ProtocolVersion)
}

func TestMQTT31Refused(t *testing.T) {
	b := startBroker(t, Config{})
	rc := dialRaw(t, b.Addr("tcp"), 3)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ProtocolName: []byte("MQIsdp"), Clean: true, Keepalive: 30, ClientIdentifier: "old"}})
	ack := rc.expect(packets.Connack)
	assert.Equal(t, byte(0x01), ack.ReasonCode, "unacceptable protocol version")
	ev := waitEvent(t, b, "connect", kindIs(EventConnect, ""))
	assert.Contains(t, ev.Error, "0x01")
}

func TestKeepAliveTimeout(t *testing.T) {
	b := startBroker(t, Config{})
	rc := dialRaw(t, b.Addr("tcp"), 4)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 1, ClientIdentifier: "sleepy"}})
	rc.expect(packets.Connack)
	start := time.Now()
	rc.expectClosed() // nothing sent: the broker gives up after 1.5 x keep-alive (1 s, rounded down)
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond)
	dis := waitEvent(t, b, "disconnect", kindIs(EventDisconnect, "sleepy"))
	assert.Equal(t, ReasonKeepAlive, dis.Reason)
}

func TestNoConnectInTime(t *testing.T) {
	b := startBroker(t, Config{ConnectTimeout: 200 * time.Millisecond})
	rc := dialRaw(t, b.Addr("tcp"), 4)
	rc.expectClosed()
	ev := waitEvent(t, b, "connect failure", kindIs(EventConnect, ""))
	assert.NotEmpty(t, ev.Error)
	dis := waitEvent(t, b, "disconnect", kindIs(EventDisconnect, ""))
	assert.Equal(t, ReasonClientError, dis.Reason)
	assert.Equal(t, "no CONNECT in time", dis.Error)
}

// TestInlineClientIDRefused: "inline" is mochi's internal publisher; a
// device using it would hijack the responses' sender, so it is refused.
func TestInlineClientIDRefused(t *testing.T) {
	b := startBroker(t, Config{})
	rc := dialRaw(t, b.Addr("tcp"), 4)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "inline"}})
	ack := rc.expect(packets.Connack)
	assert.Equal(t, byte(0x02), ack.ReasonCode, "identifier rejected")
	rc.expectClosed()

	d := newDevice(t, b, "thing-i") // responses still flow
	resp, _ := d.report(t, defender.JSON, reportJSON(1))
	assert.Equal(t, defender.StatusAccepted, resp.Status)
}

// TestTopicAliasRefusal: an MQTT 5 publish that names its topic only by
// alias is judged on the resolved topic.
func TestTopicAliasRefusal(t *testing.T) {
	b := startBroker(t, Config{})
	rc := dialRaw(t, b.Addr("tcp"), 5)
	rc.connect("dev", true)
	alias := packets.Properties{TopicAlias: 1, TopicAliasFlag: true}
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1,
		TopicName: "$aws/things/dev/shadow/update", Properties: alias, Payload: []byte("{}")})
	rc.expect(packets.Puback)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true}, PacketID: 2,
		Properties: alias, Payload: []byte("{}")})
	seen := rc.expectClosed()
	require.Len(t, seen, 1)
	assert.Equal(t, packets.Disconnect, seen[0].FixedHeader.Type)
	pol := waitEvent(t, b, "policy", kindIs(EventPolicy, "dev"))
	assert.Equal(t, RefusedRetainAWS, pol.Reason)
	assert.Equal(t, "$aws/things/dev/shadow/update", pol.Topic)
	pubs := countEvents(b, kindIs(EventPublish, "dev"))
	assert.Equal(t, 1, pubs, "only the first, allowed publish is logged")
}

// TestWillsAreJudgedAtConnect: mochi publishes wills past the publish hook,
// so a will that would be refused as a publish (a fake answer on a response
// topic, an unjudged report, a retained $aws message) refuses the CONNECT.
func TestWillsAreJudgedAtConnect(t *testing.T) {
	b := startBroker(t, Config{})
	for _, tc := range []struct{ name, topic string }{
		{"response-topic", topicOf("victim", defender.JSONAccepted)},
		{"report-topic", topicOf("evil", defender.JSONPublish)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, b.Addr("tcp"), 4)
			rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
				ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "evil-" + tc.name,
				WillFlag: true, WillTopic: tc.topic, WillPayload: []byte(`{"status":"ACCEPTED"}`), WillRetain: true}})
			ack := rc.expect(packets.Connack)
			require.NotEqual(t, byte(0), ack.ReasonCode, "CONNACK must refuse the will")
			rc.expectClosed()
			waitEvent(t, b, "policy event", func(ev Event) bool {
				return ev.Kind == EventPolicy && ev.Topic == tc.topic && strings.HasPrefix(ev.Error, "will: ")
			})
		})
	}
}

// TestStrictPolicyRefusesIdentitiesThatAreNotThingNames: a client ID of "+"
// would otherwise own "$aws/things/+/..." and read every device's reports.
func TestStrictPolicyRefusesIdentitiesThatAreNotThingNames(t *testing.T) {
	b := startBroker(t, Config{Policy: PolicyStrict})
	rc := dialRaw(t, b.Addr("tcp"), 4)
	rc.connect("+", true)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "$aws/things/+/defender/metrics/json", Qos: 1}}})
	rc.expectClosed()
	waitEvent(t, b, "policy event", func(ev Event) bool { return ev.Kind == EventPolicy && ev.Reason == RefusedPolicy })
}
