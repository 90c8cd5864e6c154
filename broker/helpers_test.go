package broker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/fxamacker/cbor/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

// waitLimit bounds every wait in these tests; nothing here takes long.
const waitLimit = 10 * time.Second

func startBroker(t testing.TB, cfg Config) *Broker {
	t.Helper()
	b, err := New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		require.NoError(t, b.Close())
	})
	require.NoError(t, b.Start(ctx))
	return b
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// waitEvent waits for the first event (from the start of the log) that
// matches, failing the test after waitLimit.
func waitEvent(t testing.TB, b *Broker, what string, match func(Event) bool) Event {
	t.Helper()
	ev, err := b.WaitFor(testCtx(t), match)
	require.NoError(t, err, "waiting for %s", what)
	return ev
}

func kindIs(k EventKind, clientID string) func(Event) bool {
	return func(ev Event) bool { return ev.Kind == k && (clientID == "" || ev.ClientID == clientID) }
}

func countEvents(b *Broker, match func(Event) bool) int {
	n := 0
	for _, ev := range b.Events() {
		if match(ev) {
			n++
		}
	}
	return n
}

// pahoOpts returns paho options for a plain connection to the broker with
// reconnects off, so a refused action shows as a lost connection.
func pahoOpts(b *Broker, clientID string) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker("tcp://" + b.Addr("tcp")).
		SetClientID(clientID).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(waitLimit).
		SetWriteTimeout(waitLimit).
		SetKeepAlive(30 * time.Second).
		SetCleanSession(true)
}

// connectPaho connects and registers a cleanup disconnect.
func connectPaho(t testing.TB, opts *paho.ClientOptions) paho.Client {
	t.Helper()
	c := paho.NewClient(opts)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(waitLimit), "connect timed out")
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func lostNotifier(opts *paho.ClientOptions) <-chan error {
	lost := make(chan error, 1)
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		select {
		case lost <- err:
		default:
		}
	})
	return lost
}

func waitLost(t testing.TB, lost <-chan error) {
	t.Helper()
	select {
	case <-lost:
	case <-time.After(waitLimit):
		t.Fatal("client was not disconnected")
	}
}

// subscribePaho subscribes and returns a channel of received messages.
func subscribePaho(t testing.TB, c paho.Client, filter string, qos byte) <-chan paho.Message {
	t.Helper()
	ch := make(chan paho.Message, 64)
	tok := c.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) { ch <- m })
	require.True(t, tok.WaitTimeout(waitLimit), "subscribe timed out")
	require.NoError(t, tok.Error())
	return ch
}

func publishPaho(t testing.TB, c paho.Client, topic string, qos byte, payload []byte) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	require.True(t, tok.WaitTimeout(waitLimit), "publish timed out")
	require.NoError(t, tok.Error())
}

func receive(t testing.TB, ch <-chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(waitLimit):
		t.Fatal("no message received")
		return nil
	}
}

// reportJSON is a small valid report with the given id.
func reportJSON(id uint64) []byte {
	return fmt.Appendf(nil, `{"header":{"report_id":%d,"version":"1.0"},"metrics":{"network_stats":{"bytes_in":10,"bytes_out":20,"packets_in":1,"packets_out":2}}}`, id)
}

// reportCBOR is reportJSON encoded as CBOR with short keys.
func reportCBOR(t testing.TB, id uint64) []byte {
	t.Helper()
	b, err := cbor.Marshal(map[string]any{
		"hed": map[string]any{"rid": id, "v": "1.0"},
		"met": map[string]any{"ns": map[string]any{"bi": 10, "bo": 20, "pi": 1, "po": 2}},
	})
	require.NoError(t, err)
	return b
}

// invalidJSON has a parsable header but a port out of range.
func invalidJSON(id uint64) []byte {
	return fmt.Appendf(nil, `{"header":{"report_id":%d,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":[{"port":70000}]}}}`, id)
}

func topicOf(thing string, kind defender.TopicKind) string {
	s, err := defender.Topic(thing, kind)
	if err != nil {
		panic(err)
	}
	return s
}

func decodeResponse(t testing.TB, f defender.Format, b []byte) defender.Response {
	t.Helper()
	r, err := defender.DecodeResponse(f, b)
	require.NoError(t, err, "response %q", b)
	return r
}

// rawClient speaks MQTT by hand over a net.Conn, counting every byte it
// writes and reads, for the protocol cases paho cannot express.
type rawClient struct {
	t       testing.TB
	conn    net.Conn
	r       *bufio.Reader
	version byte
	wrote   atomic.Uint64
	read    atomic.Uint64
}

type countReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(uint64(n))
	return n, err
}

func dialRaw(t testing.TB, addr string, version byte) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitLimit)
	require.NoError(t, err)
	return newRawClient(t, conn, version)
}

func newRawClient(t testing.TB, conn net.Conn, version byte) *rawClient {
	rc := &rawClient{t: t, conn: conn, version: version}
	rc.r = bufio.NewReader(countReader{conn, &rc.read})
	t.Cleanup(func() { conn.Close() })
	return rc
}

func (rc *rawClient) encode(pk packets.Packet) []byte {
	rc.t.Helper()
	pk.ProtocolVersion = rc.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		rc.t.Fatalf("rawClient: cannot encode packet type %d", pk.FixedHeader.Type)
	}
	require.NoError(rc.t, err)
	return buf.Bytes()
}

func (rc *rawClient) writeBytes(b []byte) {
	rc.t.Helper()
	require.NoError(rc.t, rc.conn.SetWriteDeadline(time.Now().Add(waitLimit)))
	n, err := rc.conn.Write(b)
	rc.wrote.Add(uint64(n))
	require.NoError(rc.t, err)
}

func (rc *rawClient) send(pk packets.Packet) { rc.t.Helper(); rc.writeBytes(rc.encode(pk)) }

// next reads one packet; err is non-nil when the connection ended.
func (rc *rawClient) next() (packets.Packet, error) {
	rc.t.Helper()
	if err := rc.conn.SetReadDeadline(time.Now().Add(waitLimit)); err != nil {
		return packets.Packet{}, err
	}
	b, err := rc.r.ReadByte()
	if err != nil {
		return packets.Packet{}, err
	}
	var pk packets.Packet
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	rem, _, err := packets.DecodeLength(rc.r)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = rem
	body := make([]byte, rem)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = rc.version
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("rawClient: unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

func (rc *rawClient) expect(typ byte) packets.Packet {
	rc.t.Helper()
	pk, err := rc.next()
	require.NoError(rc.t, err)
	require.Equal(rc.t, typ, pk.FixedHeader.Type, "packet type")
	return pk
}

// expectClosed reads until the broker closes the connection and returns
// the packets seen before that.
func (rc *rawClient) expectClosed() []packets.Packet {
	rc.t.Helper()
	var seen []packets.Packet
	for {
		pk, err := rc.next()
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				rc.t.Fatalf("connection still open after %s; saw %d packets", waitLimit, len(seen))
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
				errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrClosedPipe):
				return seen
			default:
				// Only a closed connection counts: a packet the client
				// could not decode or did not expect means it is still open.
				rc.t.Fatalf("want the connection closed, got %v after %d packets", err, len(seen))
			}
		}
		seen = append(seen, pk)
	}
}

func (rc *rawClient) connect(clientID string, clean bool) packets.Packet {
	rc.t.Helper()
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Connect},
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            clean,
			Keepalive:        30,
			ClientIdentifier: clientID,
		},
	}
	rc.send(pk)
	ack := rc.expect(packets.Connack)
	require.Equal(rc.t, byte(0), ack.ReasonCode, "CONNACK code")
	return ack
}

func (rc *rawClient) publish(topic string, qos byte, retain bool, id uint16, payload []byte) {
	rc.t.Helper()
	rc.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		PacketID:    id,
		Payload:     payload,
	})
}

func (rc *rawClient) subscribe(id uint16, filter string, qos byte) packets.Packet {
	rc.t.Helper()
	rc.send(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    id,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: qos}},
	})
	return rc.expect(packets.Suback)
}

// memPaho returns paho options that reach the broker through DialMem.
func memPaho(b *Broker, clientID string) *paho.ClientOptions {
	return pahoOpts(b, clientID).SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
		return b.DialMem("bridge:" + clientID)
	})
}

// expectAny reads the next packet, whatever its type.
func (rc *rawClient) expectAny() packets.Packet {
	rc.t.Helper()
	pk, err := rc.next()
	require.NoError(rc.t, err)
	return pk
}
