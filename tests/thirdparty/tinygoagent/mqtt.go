package tinygoagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"tinygo.org/x/drivers/espat"
	tnet "tinygo.org/x/drivers/net"
)

// link is one MQTT 3.1.1 connection over a TinyGo net.Conn, i.e. over the
// driver's single ESP-AT TCP link. Packets are encoded and decoded with
// paho's packets package, the codec TinyGo's net/mqtt client uses; the
// client logic is here, in one goroutine, because net/mqtt's own reader,
// keep-alive and router goroutines share the driver and their fields
// without synchronisation (see the package comment).
type link struct {
	conn  tnet.Conn
	dev   *espat.Device
	uart  *uart
	stats *traffic
	in    []byte // received stream not parsed yet
	mid   uint16
}

// send writes one packet: one conn.Write, which the driver turns into one
// AT+CIPSEND. Only a write the driver saw succeed (SEND OK) is counted.
func (l *link) send(p packets.ControlPacket) error {
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		return err
	}
	n, err := l.conn.Write(b.Bytes())
	if err != nil {
		return fmt.Errorf("send %s: %w", packets.PacketNames[typeOf(p)], err)
	}
	l.stats.sent(n)
	return nil
}

// typeOf is a packet's MQTT control packet type.
func typeOf(p packets.ControlPacket) uint8 {
	switch p.(type) {
	case *packets.ConnectPacket:
		return packets.Connect
	case *packets.ConnackPacket:
		return packets.Connack
	case *packets.PublishPacket:
		return packets.Publish
	case *packets.SubscribePacket:
		return packets.Subscribe
	case *packets.SubackPacket:
		return packets.Suback
	case *packets.PingreqPacket:
		return packets.Pingreq
	case *packets.PingrespPacket:
		return packets.Pingresp
	case *packets.DisconnectPacket:
		return packets.Disconnect
	}
	return 0
}

// poll takes what the driver received (each conn.Read returns the data of
// the +IPD message the driver parsed) and returns the complete packets.
// A read with data counts as a packet in; its bytes count once they parse
// as MQTT: the driver passes whatever follows the +IPD data in the same
// UART read into the stream (CLOSED\r\n when the broker drops the link
// right after answering), and that is no traffic.
func (l *link) poll() ([]packets.ControlPacket, error) {
	buf := make([]byte, 2048)
	for l.dev.IsSocketDataAvailable() {
		n, _ := l.conn.Read(buf)
		if n == 0 {
			break // only lines the driver does not pass on (CLOSED, ...)
		}
		l.stats.pktsIn++
		l.in = append(l.in, buf[:n]...)
	}
	var out []packets.ControlPacket
	for len(l.in) > 0 {
		r := bytes.NewReader(l.in)
		p, err := packets.ReadPacket(r)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break // the rest of the packet is still to come
		}
		if err != nil {
			return out, fmt.Errorf("mqtt stream: %w", err)
		}
		used := len(l.in) - r.Len()
		l.stats.bytesIn += uint64(used)
		l.in = l.in[used:]
		out = append(out, p)
	}
	return out, nil
}

// await polls until a packet of type want arrives (other packets go to
// other), the timeout passes or ctx ends. It waits on the UART, not on a
// clock: the driver's own polling has its sleeps, this code none.
func (l *link) await(ctx context.Context, want uint8, within time.Duration, other func(packets.ControlPacket)) (packets.ControlPacket, error) {
	t := time.NewTimer(within)
	defer t.Stop()
	for {
		ps, err := l.poll()
		var got packets.ControlPacket
		for _, p := range ps {
			if got == nil && typeOf(p) == want {
				got = p
			} else if other != nil {
				other(p)
			}
		}
		if got != nil || err != nil {
			return got, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, fmt.Errorf("no %s within %s", packets.PacketNames[want], within)
		case <-l.uart.Arrived():
		}
	}
}

func (l *link) nextID() uint16 {
	l.mid++
	if l.mid == 0 {
		l.mid = 1
	}
	return l.mid
}
