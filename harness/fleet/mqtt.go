package fleet

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A minimal MQTT 3.1.1 client codec: just the packets a Defender agent
// exchanges (CONNECT, SUBSCRIBE, QoS 1 PUBLISH both ways, PUBACK, PINGREQ,
// DISCONNECT). A paho client costs several goroutines and tens of KB per
// connection; ten thousand agents need one goroutine and a 512-byte buffer.

// MQTT 3.1.1 control packet types (high nibble of the first byte).
const (
	pkConnect    = 1
	pkConnack    = 2
	pkPublish    = 3
	pkPuback     = 4
	pkSubscribe  = 8
	pkSuback     = 9
	pkPingreq    = 12
	pkPingresp   = 13
	pkDisconnect = 14
)

// appendVarint appends MQTT's remaining-length encoding.
func appendVarint(b []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// connectPacket is a clean-session CONNECT with the given keep-alive.
func connectPacket(clientID string, keepAlive uint16) []byte {
	rem := 10 + 2 + len(clientID)
	b := make([]byte, 0, 2+4+rem)
	b = append(b, pkConnect<<4)
	b = appendVarint(b, rem)
	b = appendString(b, "MQTT")
	b = append(b, 4, 0x02) // protocol level 4 (3.1.1), clean session
	b = binary.BigEndian.AppendUint16(b, keepAlive)
	return appendString(b, clientID)
}

// subscribePacket subscribes to filters at QoS 1.
func subscribePacket(id uint16, filters ...string) []byte {
	rem := 2
	for _, f := range filters {
		rem += 2 + len(f) + 1
	}
	b := make([]byte, 0, 5+rem)
	b = append(b, pkSubscribe<<4|0x02)
	b = appendVarint(b, rem)
	b = binary.BigEndian.AppendUint16(b, id)
	for _, f := range filters {
		b = appendString(b, f)
		b = append(b, 1)
	}
	return b
}

// appendPublishQoS1 appends a QoS 1 PUBLISH.
func appendPublishQoS1(b []byte, topic string, id uint16, payload []byte) []byte {
	b = append(b, pkPublish<<4|0x02)
	b = appendVarint(b, 2+len(topic)+2+len(payload))
	b = appendString(b, topic)
	b = binary.BigEndian.AppendUint16(b, id)
	return append(b, payload...)
}

func appendPuback(b []byte, id uint16) []byte {
	return append(b, pkPuback<<4, 2, byte(id>>8), byte(id))
}

var (
	pingreqPacket    = []byte{pkPingreq << 4, 0}
	disconnectPacket = []byte{pkDisconnect << 4, 0}
)

// packet is one decoded inbound packet; slices alias the read buffer.
type packet struct {
	typ     byte
	flags   byte
	body    []byte
	topic   string // PUBLISH
	id      uint16 // PUBLISH (QoS > 0), PUBACK, SUBACK
	payload []byte // PUBLISH
}

var errShortPacket = errors.New("fleet: malformed MQTT packet")

// nextPacket splits one packet off buf. n is 0 when buf holds no complete
// packet yet; need is then the total size when known (for growing the
// buffer), else 0.
func nextPacket(buf []byte) (pk packet, n, need int, err error) {
	if len(buf) < 2 {
		return pk, 0, 0, nil
	}
	rem, mult, i := 0, 1, 1
	for {
		if i >= len(buf) {
			return pk, 0, 0, nil
		}
		c := buf[i]
		rem += int(c&0x7f) * mult
		i++
		if c&0x80 == 0 {
			break
		}
		if mult *= 128; mult > 128*128*128 {
			return pk, 0, 0, fmt.Errorf("%w: remaining length over 4 bytes", errShortPacket)
		}
	}
	total := i + rem
	if len(buf) < total {
		return pk, 0, total, nil
	}
	pk.typ, pk.flags, pk.body = buf[0]>>4, buf[0]&0x0f, buf[i:total]
	switch pk.typ {
	case pkPublish:
		body := pk.body
		if len(body) < 2 {
			return pk, 0, 0, errShortPacket
		}
		tl := int(binary.BigEndian.Uint16(body))
		if len(body) < 2+tl {
			return pk, 0, 0, errShortPacket
		}
		pk.topic = string(body[2 : 2+tl])
		body = body[2+tl:]
		if (pk.flags>>1)&3 > 0 {
			if len(body) < 2 {
				return pk, 0, 0, errShortPacket
			}
			pk.id = binary.BigEndian.Uint16(body)
			body = body[2:]
		}
		pk.payload = body
	case pkPuback, pkSuback:
		if len(pk.body) < 2 {
			return pk, 0, 0, errShortPacket
		}
		pk.id = binary.BigEndian.Uint16(pk.body)
	case pkConnack:
		if len(pk.body) < 2 {
			return pk, 0, 0, errShortPacket
		}
	}
	return pk, total, total, nil
}
