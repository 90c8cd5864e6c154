package broker

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ddhil/ddhil/broker/defender"
)

// refusedFilterPrefix replaces a subscription filter the broker refuses
// (QoS 2) so mochi's ACL check denies it and answers SUBACK 0x80; no client
// can publish on "$ddhil/..." topics.
const refusedFilterPrefix = "$ddhil/refused/"

// hook makes mochi behave like AWS IoT Core with Device Defender. It runs on
// each client's read goroutine, so it only decides and records; responses
// go through the broker's queue.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "ddhil-aws-iot" }

func (h *hook) Provides(e byte) bool {
	switch e {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnConnect, mqtt.OnDisconnect,
		mqtt.OnPacketRead, mqtt.OnPacketSent, mqtt.OnSubscribe, mqtt.OnSubscribed,
		mqtt.OnPublish, mqtt.OnPublished:
		return true
	}
	return false
}

// OnConnectAuthenticate admits every CONNECT: mutual TLS already
// authenticated the device, and plain/mem listeners are for labs.
func (h *hook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// OnACLCheck allows everything except filters the hook marked as refused;
// the strict policy is enforced by disconnecting in OnPacketRead instead,
// because AWS disconnects rather than answering "not authorized".
func (h *hook) OnACLCheck(_ *mqtt.Client, topic string, write bool) bool {
	return write || !strings.HasPrefix(topic, refusedFilterPrefix)
}

// OnConnect records the client's identity. When a duplicate client ID
// takes over an MQTT 3.1.1 connection, it silences the old connection so
// mochi's takeover closes it without the DISCONNECT packet mochi would send
// (3.1.1 has no server DISCONNECT; AWS just closes the socket).
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	c := connOf(cl)
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.clientID = cl.ID
	if c.tls == nil {
		c.thing = cl.ID
	}
	c.mu.Unlock()
	if cl.ID == mqtt.InlineClientId { // the broker's own publisher: refuse, or it would be taken over
		_ = h.b.srv.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
		return packets.ErrClientIdentifierNotValid
	}
	// mochi publishes wills straight to subscribers, past OnPacketRead: judge
	// the will as the publish it will become, or a client could plant a fake
	// Defender answer (or an unjudged report) by dropping its socket.
	if pk.Connect.WillFlag {
		r := h.checkPublish(c, pk.Connect.WillTopic, pk.Connect.WillRetain)
		if r == nil {
			if kind, _, ok := defender.MatchTopic(pk.Connect.WillTopic); ok && kind.IsPublish() {
				r = &refusal{pk.Connect.WillTopic, RefusedPolicy, ReasonAuthError, packets.ErrNotAuthorized,
					"a will on a Device Defender report topic would bypass validation: " + pk.Connect.WillTopic}
			}
		}
		if r != nil {
			ev := c.event(EventPolicy)
			ev.Reason, ev.Error, ev.Topic, ev.Retain = r.reason, "will: "+r.detail, r.topic, pk.Connect.WillRetain
			h.b.rec.Record(ev)
			c.setEnd(r.lifecycle, "will refused: "+r.detail, "")
			_ = h.b.srv.SendConnack(cl, packets.ErrNotAuthorized, false, nil)
			return packets.ErrNotAuthorized
		}
	}
	if old, ok := h.b.srv.Clients.Get(cl.ID); ok && old != cl && !old.Closed() {
		if oc := connOf(old); oc != nil {
			oc.setEnd(ReasonDuplicateClient, "session taken over by "+c.id, "")
			if old.Properties.ProtocolVersion < 5 {
				oc.silenced.Store(true)
			}
		}
	}
	return nil
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	if c := connOf(cl); c != nil {
		c.mu.Lock()
		c.stopCause = cl.StopCause()
		c.mu.Unlock()
	}
}

// OnPacketSent logs the connection when its CONNACK goes out, so the
// connect event knows the session-present flag and return code.
func (h *hook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Publish {
		// Detect's num-messages-received counts deliveries per topic.
		if c := connOf(cl); c != nil {
			ev := c.event(EventDeliver)
			ev.Topic, ev.QoS, ev.Retain, ev.Size = pk.TopicName, pk.FixedHeader.Qos, pk.FixedHeader.Retain, len(pk.Payload)
			h.b.rec.Record(ev)
		}
		return
	}
	if pk.FixedHeader.Type != packets.Connack {
		return
	}
	c := connOf(cl)
	if c == nil {
		return
	}
	c.mu.Lock()
	c.clientID = cl.ID
	if c.connect != nil {
		c.connect.SessionPresent = pk.SessionPresent
		c.connect.ReturnCode = pk.ReasonCode
	}
	info, tlsInfo := c.connect, c.tls
	c.connected = true
	c.mu.Unlock()
	ev := c.event(EventConnect)
	ev.TLS = tlsInfo
	if info != nil {
		ci := *info
		ev.Connect = &ci
	}
	if pk.ReasonCode != 0 {
		ev.Error = fmt.Sprintf("CONNACK refused with code 0x%02x", pk.ReasonCode)
	}
	h.b.rec.Record(ev)
}

// OnPacketRead sees every packet as decoded, before mochi acts on it. The
// refusals that AWS answers by closing the connection are taken here so the
// packet is never processed: QoS 2 publishes, oversize payloads, retained
// "$" publishes, publishes on response topics, and strict-policy breaches.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	c := connOf(cl)
	if c == nil {
		return pk, nil
	}
	switch pk.FixedHeader.Type {
	case packets.Connect:
		c.mu.Lock()
		c.clientID = pk.Connect.ClientIdentifier
		c.connect = &ConnectInfo{
			ProtocolVersion: pk.ProtocolVersion,
			CleanSession:    pk.Connect.Clean,
			KeepAlive:       pk.Connect.Keepalive,
			Username:        string(pk.Connect.Username),
			WillTopic:       pk.Connect.WillTopic,
		}
		c.mu.Unlock()
	case packets.Publish:
		var r *refusal
		switch {
		case pk.FixedHeader.Qos > 1:
			r = &refusal{pk.TopicName, RefusedQoS2, ReasonClientError, packets.ErrQosNotSupported, "QoS 2 publish; AWS IoT Core supports QoS 0 and 1"}
		case len(pk.Payload) > defender.MaxPayload:
			r = &refusal{pk.TopicName, RefusedOversize, ReasonClientError, packets.ErrPacketTooLarge,
				fmt.Sprintf("payload of %d bytes exceeds %d", len(pk.Payload), defender.MaxPayload)}
		case pk.TopicName != "": // alias-only MQTT 5 publishes are checked in OnPublish
			r = h.checkPublish(c, pk.TopicName, pk.FixedHeader.Retain)
		}
		if r != nil {
			return pk, h.refuse(cl, c, r, pk)
		}
	case packets.Subscribe:
		if r := h.checkSubscribe(c, pk.Filters); r != nil {
			return pk, h.refuse(cl, c, r, pk)
		}
	}
	return pk, nil
}

// OnSubscribe keeps the original filters for the subscribe events and
// swaps QoS 2 filters for a refused marker (SUBACK 0x80, nothing stored).
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	c := connOf(cl)
	if c == nil {
		return pk
	}
	c.pendingSub = append(packets.Subscriptions(nil), pk.Filters...)
	filters := append(packets.Subscriptions(nil), pk.Filters...)
	for i := range filters {
		if filters[i].Qos > 1 {
			filters[i].Filter = refusedFilterPrefix + strconv.Itoa(i)
		}
	}
	pk.Filters = filters
	return pk
}

// OnSubscribed logs one event per filter with its SUBACK return code.
func (h *hook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, codes []byte) {
	c := connOf(cl)
	if c == nil {
		return
	}
	for i, f := range c.pendingSub {
		ev := c.event(EventSubscribe)
		ev.Topic, ev.QoS = f.Filter, f.Qos
		if i < len(codes) {
			code := codes[i]
			ev.ReturnCode = &code
			if code >= 0x80 {
				ev.Error = fmt.Sprintf("refused with SUBACK 0x%02x", code)
				if f.Qos > 1 {
					ev.Error += ": QoS 2 subscriptions are not supported"
				}
			}
		}
		h.b.rec.Record(ev)
	}
	c.pendingSub = nil
}

// OnPublish logs every client publish (with its topic alias resolved) and
// refuses alias-only publishes that OnPacketRead could not judge.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	c := connOf(cl)
	if c == nil {
		return pk, nil
	}
	if r := h.checkPublish(c, pk.TopicName, pk.FixedHeader.Retain); r != nil {
		_ = h.refuse(cl, c, r, pk)
		cl.Stop(r.code)
		return pk, packets.ErrRejectPacket
	}
	ev := c.event(EventPublish)
	ev.Topic, ev.QoS, ev.Retain = pk.TopicName, pk.FixedHeader.Qos, pk.FixedHeader.Retain
	// The report event keeps a Defender report's whole payload; the publish
	// event keeps a bounded prefix, so a client looping 128 KB publishes on
	// other topics cannot grow the in-memory log at network speed.
	ev.Payload = bytes.Clone(pk.Payload[:min(len(pk.Payload), maxPublishPayloadLogged)])
	ev.Size = len(pk.Payload)
	if kind, thing, ok := defender.MatchTopic(pk.TopicName); ok && kind.IsPublish() {
		ev.Thing, ev.Format = thing, kind.Format()
	}
	h.b.rec.Record(ev)
	c.pendingReport, c.pendingJob = false, nil
	if kind, thing, ok := defender.MatchTopic(pk.TopicName); ok && kind.IsPublish() {
		c.pendingReport = true
		c.pendingJob = h.b.judgeReport(c, pk, kind, thing)
	}
	return pk, nil
}

// OnPublished runs after mochi acknowledged and routed the publish, so a
// Defender response can never overtake the PUBACK of its report.
func (h *hook) OnPublished(cl *mqtt.Client, _ packets.Packet) {
	c := connOf(cl)
	if c == nil || !c.pendingReport {
		return
	}
	job := c.pendingJob
	c.pendingReport, c.pendingJob = false, nil
	h.b.afterReport(cl, c, job)
}

// maxPublishPayloadLogged bounds the payload bytes a publish event keeps.
const maxPublishPayloadLogged = 1024

// refusal is an action AWS IoT Core answers by closing the connection.
type refusal struct {
	topic     string       // the offending topic or filter
	reason    string       // Refused* (policy event)
	lifecycle string       // Reason* (disconnect event)
	code      packets.Code // MQTT 5 DISCONNECT reason code
	detail    string
}

func (h *hook) checkPublish(c *conn, topic string, retain bool) *refusal {
	_, thing := c.identity()
	if h.b.cfg.Policy == PolicyStrict && !ownTopic(thing, topic) {
		return &refusal{topic, RefusedPolicy, ReasonAuthError, packets.ErrNotAuthorized,
			fmt.Sprintf("strict policy: thing %q may not publish to %s", thing, topic)}
	}
	if kind, _, ok := defender.MatchTopic(topic); ok && kind.IsResponse() {
		return &refusal{topic, RefusedResponseTopic, ReasonAuthError, packets.ErrNotAuthorized,
			"publish to a Device Defender response topic, which is subscribe-only: " + topic}
	}
	if retain && strings.HasPrefix(topic, "$") {
		return &refusal{topic, RefusedRetainAWS, ReasonClientError, packets.ErrRetainNotSupported,
			"retained publish to reserved topic " + topic}
	}
	return nil
}

func (h *hook) checkSubscribe(c *conn, filters packets.Subscriptions) *refusal {
	if h.b.cfg.Policy != PolicyStrict {
		return nil
	}
	_, thing := c.identity()
	for _, f := range filters {
		if !ownTopic(thing, f.Filter) {
			return &refusal{f.Filter, RefusedPolicy, ReasonAuthError, packets.ErrNotAuthorized,
				fmt.Sprintf("strict policy: thing %q may not subscribe to %s", thing, f.Filter)}
		}
	}
	return nil
}

// ownTopic reports whether a topic or filter stays under the thing's own
// "$aws/things/<thing>/" level (wildcards only below it).
// An identity that is not a valid thing name ("+", "a/b", "#") owns nothing:
// it would otherwise smuggle wildcards or extra levels into the prefix.
func ownTopic(thing, topic string) bool {
	return defender.ValidThingName(thing) == nil && strings.HasPrefix(topic, "$aws/things/"+thing+"/")
}

// refuse logs a policy event, marks why the connection ends, sends MQTT 5
// clients a DISCONNECT with the reason code, and returns the error that
// makes mochi drop the connection (it also publishes the will, as AWS does
// for a connection that did not end cleanly).
func (h *hook) refuse(cl *mqtt.Client, c *conn, r *refusal, pk packets.Packet) error {
	ev := c.event(EventPolicy)
	ev.Reason, ev.Error, ev.Topic = r.reason, r.detail, r.topic
	if pk.FixedHeader.Type == packets.Publish {
		ev.QoS, ev.Retain = pk.FixedHeader.Qos, pk.FixedHeader.Retain
		ev.Payload = bytes.Clone(pk.Payload)
	}
	h.b.rec.Record(ev)
	c.setEnd(r.lifecycle, r.detail, "")
	if cl.Properties.ProtocolVersion >= 5 {
		_ = h.b.srv.DisconnectClient(cl, r.code)
	}
	return fmt.Errorf("%w: %s", packets.ErrRejectPacket, r.detail)
}
