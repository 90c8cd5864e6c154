package broker

import (
	"net"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// conn is the broker's record of one accepted network connection, from
// accept to the final disconnect event. It is kept after the connection
// ends so MeterSnapshot still answers for it.
type conn struct {
	id       string // "tcp-1", "tls-2", "mem-3"
	listener string // "tcp", "tls", "mem"
	remote   string
	local    string
	raw      net.Conn // closing it unblocks everything above
	m        meter
	silenced atomic.Bool // writes are discarded: the connection is being closed without a word

	// Owned by the client's read goroutine (no lock needed).
	pendingSub packets.Subscriptions // original filters of the SUBSCRIBE in progress
	reports    int                   // reports carried by this connection
	// A report judged in OnPublish whose response waits for OnPublished.
	pendingReport bool
	pendingJob    *responseJob

	mu        sync.Mutex
	clientID  string
	thing     string // identity for the strict policy: cert CN on TLS, else client ID
	tls       *TLSInfo
	connect   *ConnectInfo
	connected bool  // a CONNACK was sent (EventConnect emitted)
	stopCause error // why mochi stopped the client (Client.StopCause)
	endReason string
	endDetail string
	endFault  string
	done      bool
}

// setEnd records why the broker is ending the connection; the first
// reason wins, because later errors are consequences of it.
func (c *conn) setEnd(reason, detail, fault string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endReason != "" {
		return false
	}
	c.endReason, c.endDetail, c.endFault = reason, detail, fault
	return true
}

func (c *conn) identity() (clientID, thing string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.clientID, c.thing
}

// event returns an Event of kind pre-filled with the connection's identity.
func (c *conn) event(kind EventKind) Event {
	clientID, _ := c.identity()
	return Event{Kind: kind, ConnID: c.id, ClientID: clientID, Listener: c.listener, Remote: c.remote, Local: c.local}
}

// mqttConn is the net.Conn handed to mochi: the plaintext MQTT stream
// (TCP, in-memory, or the TLS connection), counting packets both ways.
type mqttConn struct {
	net.Conn
	c        *conn
	in, out  *packetCounter
	overAddr net.Addr // remote address override for in-memory connections
}

func newMQTTConn(transport net.Conn, c *conn, remote net.Addr) *mqttConn {
	return &mqttConn{
		Conn:     transport,
		c:        c,
		in:       newPacketCounter(&c.m.packetsIn),
		out:      newPacketCounter(&c.m.packetsOut),
		overAddr: remote,
	}
}

func (mc *mqttConn) Read(p []byte) (int, error) {
	n, err := mc.Conn.Read(p)
	mc.in.feed(p[:n])
	return n, err
}

func (mc *mqttConn) Write(p []byte) (int, error) {
	if mc.c.silenced.Load() {
		return len(p), nil
	}
	n, err := mc.Conn.Write(p)
	mc.out.feed(p[:n])
	return n, err
}

func (mc *mqttConn) RemoteAddr() net.Addr {
	if mc.overAddr != nil {
		return mc.overAddr
	}
	return mc.Conn.RemoteAddr()
}

// connOf finds the broker's record behind a mochi client; nil for the
// inline client.
func connOf(cl *mqtt.Client) *conn {
	if cl == nil || cl.Net.Inline {
		return nil
	}
	if mc, ok := cl.Net.Conn.(*mqttConn); ok {
		return mc.c
	}
	return nil
}

// memAddr names the peer of an in-memory connection.
type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }
