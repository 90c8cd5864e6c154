package broker

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/certs"
	"github.com/ddhil/ddhil/broker/defender"
)

func TestPacketCounter(t *testing.T) {
	cases := []struct {
		name   string
		stream []byte
		want   uint64
	}{
		{"pingreq", []byte{0xc0, 0x00}, 1},
		{"two pings", []byte{0xc0, 0x00, 0xd0, 0x00}, 2},
		{"puback", []byte{0x40, 0x02, 0x00, 0x01}, 1},
		{"incomplete body", []byte{0x30, 0x05, 0x00, 0x01, 'a'}, 0},
		{"header only", []byte{0x30}, 0},
		{"two-byte length", append([]byte{0x30, 0x80, 0x01}, make([]byte, 128)...), 1},
		{"two-byte length short by one", append([]byte{0x30, 0x80, 0x01}, make([]byte, 127)...), 0},
		{"malformed length resyncs", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0xc0, 0x00}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, and split at every position: the count must not depend
			// on how reads and writes chunk the stream.
			for split := 0; split <= len(tc.stream); split++ {
				var n atomic.Uint64
				pc := newPacketCounter(&n)
				pc.feed(tc.stream[:split])
				pc.feed(tc.stream[split:])
				require.Equal(t, tc.want, n.Load(), "split at %d", split)
			}
			var n atomic.Uint64
			pc := newPacketCounter(&n)
			for i := range tc.stream {
				pc.feed(tc.stream[i : i+1])
			}
			require.Equal(t, tc.want, n.Load(), "byte by byte")
		})
	}
}

// countingConn counts the bytes the test client itself moves on its raw
// socket, to compare with the broker's meter.
type countingConn struct {
	net.Conn
	in, out atomic.Uint64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(uint64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(uint64(n))
	return n, err
}

// meterSession runs a known exchange and returns the packets the client
// sent and received: CONNECT, SUBSCRIBE, PUBLISH (QoS 1 report), PUBACK (of
// the response), PINGREQ, DISCONNECT in; CONNACK, SUBACK, PUBACK, PUBLISH
// (response), PINGRESP out.
func meterSession(t *testing.T, rc *rawClient) (sent, received uint64) {
	rc.connect("meter-dev", true)
	rc.subscribe(1, topicOf("meter-dev", defender.JSONAccepted), 1)
	rc.publish(topicOf("meter-dev", defender.JSONPublish), 1, false, 2, reportJSON(1))
	assert.Equal(t, uint16(2), rc.expect(packets.Puback).PacketID, "PUBACK precedes the response")
	resp := rc.expect(packets.Publish)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: resp.PacketID})
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	rc.expect(packets.Pingresp)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	assert.Empty(t, rc.expectClosed())
	return 6, 5
}

func TestMetersExact(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, certs.InitCA(dir, nil))
	_, _, err := certs.IssueDevice(dir, "meter-dev", nil)
	require.NoError(t, err)
	srvTLS, err := certs.ServerTLSConfig(dir)
	require.NoError(t, err)
	cliTLS, err := certs.ClientTLSConfig(dir, "meter-dev", "127.0.0.1")
	require.NoError(t, err)

	cases := []struct {
		name string
		dial func(t *testing.T, b *Broker) (net.Conn, *countingConn)
	}{
		{"tcp", func(t *testing.T, b *Broker) (net.Conn, *countingConn) {
			raw, err := net.DialTimeout("tcp", b.Addr("tcp"), waitLimit)
			require.NoError(t, err)
			cc := &countingConn{Conn: raw}
			return cc, cc
		}},
		{"tls includes record and handshake overhead", func(t *testing.T, b *Broker) (net.Conn, *countingConn) {
			raw, err := net.DialTimeout("tcp", b.Addr("tls"), waitLimit)
			require.NoError(t, err)
			cc := &countingConn{Conn: raw}
			return tls.Client(cc, cliTLS), cc
		}},
		{"mem", func(t *testing.T, b *Broker) (net.Conn, *countingConn) {
			c, err := b.DialMem("uart-bridge")
			require.NoError(t, err)
			cc := &countingConn{Conn: c}
			return cc, cc
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, Config{TLS: srvTLS})
			conn, raw := tc.dial(t, b)
			rc := newRawClient(t, conn, 4)
			sent, received := meterSession(t, rc)

			dis := waitEvent(t, b, "disconnect", kindIs(EventDisconnect, "meter-dev"))
			require.NotNil(t, dis.Meter)
			want := Meter{BytesIn: raw.out.Load(), BytesOut: raw.in.Load(), PacketsIn: sent, PacketsOut: received}
			assert.Equal(t, want, *dis.Meter)
			if tc.name == "tcp" || tc.name == "mem" {
				assert.Equal(t, rc.wrote.Load(), dis.Meter.BytesIn, "without TLS the meter equals the MQTT bytes")
			} else {
				assert.Greater(t, dis.Meter.BytesIn, rc.wrote.Load()+1000, "TLS overhead (handshake, certificate) is counted")
			}
			snap, ok := b.MeterSnapshot(dis.ConnID)
			require.True(t, ok)
			assert.Equal(t, want, snap, "a snapshot after the end gives the final counters")
			final := waitEvent(t, b, "final meter", func(ev Event) bool { return ev.Kind == EventMeter && ev.Seq == dis.Seq-1 })
			assert.Equal(t, want, *final.Meter)
		})
	}
	_, ok := (&Broker{conns: map[string]*conn{}}).MeterSnapshot("nope")
	assert.False(t, ok)
}
