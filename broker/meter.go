package broker

import (
	"net"
	"sync"
	"sync/atomic"
)

// meter holds one connection's counters. Bytes are counted on the raw
// transport (below TLS); packets on the plaintext MQTT stream. Both are
// updated by the connection's own reads and writes and read atomically.
type meter struct {
	bytesIn, bytesOut     atomic.Uint64
	packetsIn, packetsOut atomic.Uint64
}

func (m *meter) snapshot() Meter {
	return Meter{
		BytesIn:    m.bytesIn.Load(),
		BytesOut:   m.bytesOut.Load(),
		PacketsIn:  m.packetsIn.Load(),
		PacketsOut: m.packetsOut.Load(),
	}
}

// byteCountConn counts every byte that crosses the raw transport, so TLS
// records, handshakes and alerts are included.
type byteCountConn struct {
	net.Conn
	m *meter
}

func (c *byteCountConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.m.bytesIn.Add(uint64(n))
	return n, err
}

func (c *byteCountConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.m.bytesOut.Add(uint64(n))
	return n, err
}

// packetCounter follows an MQTT byte stream incrementally and counts the
// control packets whose last byte has gone past: fixed header byte, the
// 1..4 byte remaining length, then the body. It never buffers the stream.
// A malformed remaining length (a fifth continuation byte) resets it to
// expect a new fixed header; garbage therefore counts as whatever packets
// it happens to frame, which is what a receiver would have framed too.
type packetCounter struct {
	mu       sync.Mutex
	state    uint8 // counterHeader, counterLength, counterBody
	lenBytes uint8
	mult     uint32
	left     uint32 // body bytes still to come (counterBody) / length so far
	n        *atomic.Uint64
}

const (
	counterHeader = iota
	counterLength
	counterBody
)

func newPacketCounter(n *atomic.Uint64) *packetCounter { return &packetCounter{n: n} }

// feed advances the parser over p and counts completed packets.
func (pc *packetCounter) feed(p []byte) {
	if len(p) == 0 {
		return
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for len(p) > 0 {
		switch pc.state {
		case counterHeader:
			p = p[1:]
			pc.state, pc.lenBytes, pc.mult, pc.left = counterLength, 0, 1, 0
		case counterLength:
			b := p[0]
			p = p[1:]
			pc.left += uint32(b&0x7f) * pc.mult
			pc.lenBytes++
			switch {
			case b&0x80 == 0 && pc.left == 0:
				pc.n.Add(1)
				pc.state = counterHeader
			case b&0x80 == 0:
				pc.state = counterBody
			case pc.lenBytes == 4: // malformed variable byte integer
				pc.state = counterHeader
			default:
				pc.mult *= 128
			}
		case counterBody:
			k := uint32(len(p))
			if k > pc.left {
				k = pc.left
			}
			p = p[k:]
			pc.left -= k
			if pc.left == 0 {
				pc.n.Add(1)
				pc.state = counterHeader
			}
		}
	}
}
