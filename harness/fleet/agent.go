package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/ddhil/ddhil/broker/defender"
)

// keepAlive is the CONNECT keep-alive (AWS allows 30..1200 s); an idle
// agent pings at half of it.
const keepAlive = 1200 * time.Second

// writeTimeout bounds one write, so a stalled broker cannot wedge an agent.
const writeTimeout = 10 * time.Second

// ipBindAddressNoPort (Linux IP_BIND_ADDRESS_NO_PORT) defers the source
// port choice to connect(), where it only has to be unique per 4-tuple.
const ipBindAddressNoPort = 24

// agent is one simulated Device Defender agent: a single goroutine that
// reads its connection with a deadline set to its next duty (report,
// answer timeout, ping), so it needs no timer goroutine and no lock.
type agent struct {
	r    *run
	d    *device
	rng  *rand.Rand
	conn net.Conn
	buf  []byte // unread inbound bytes
	out  []byte // scratch for outbound packets

	topic                      string // the report topic
	accepted, rejected         string // the response topics
	pktID                      uint16
	pending                    bool
	pendingID                  uint64
	sentAt, answerBy, next, lw time.Time // lw: last write (keep-alive)
}

// connect dials, sends CONNECT and SUBSCRIBE (accepted and rejected, QoS
// 1, as the STM32 reference and embedded-C demo do) and waits for the
// CONNACK and SUBACK, within ctx.
func (a *agent) connect(ctx context.Context, local net.Addr) error {
	kind, acc, rej := defender.JSONPublish, defender.JSONAccepted, defender.JSONRejected
	if a.d.format == defender.CBOR {
		kind, acc, rej = defender.CBORPublish, defender.CBORAccepted, defender.CBORRejected
	}
	a.topic, _ = defender.Topic(a.d.thing, kind)
	a.accepted, _ = defender.Topic(a.d.thing, acc)
	a.rejected, _ = defender.Topic(a.d.thing, rej)

	dl := net.Dialer{LocalAddr: local}
	if local != nil {
		dl.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	conn, err := dl.DialContext(ctx, "tcp", a.r.o.Addr)
	if err != nil {
		return fmt.Errorf("fleet: %s: dial: %w", a.d.thing, err)
	}
	a.conn = conn
	a.buf = make([]byte, 0, 512)
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	stopWatch := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stopWatch()
	fail := func(err error) error {
		_ = conn.Close()
		return fmt.Errorf("fleet: %s: %w", a.d.thing, err)
	}
	if _, err := conn.Write(connectPacket(a.d.thing, uint16(keepAlive/time.Second))); err != nil {
		return fail(fmt.Errorf("send CONNECT: %w", err))
	}
	pk, err := a.await(pkConnack)
	if err != nil {
		return fail(fmt.Errorf("wait for CONNACK: %w", err))
	}
	if rc := pk.body[1]; rc != 0 {
		return fail(fmt.Errorf("CONNACK refused with code %d", rc))
	}
	a.pktID = 1
	if _, err := conn.Write(subscribePacket(a.pktID, a.accepted, a.rejected)); err != nil {
		return fail(fmt.Errorf("send SUBSCRIBE: %w", err))
	}
	pk, err = a.await(pkSuback)
	if err != nil {
		return fail(fmt.Errorf("wait for SUBACK: %w", err))
	}
	for _, code := range pk.body[2:] {
		if code >= 0x80 {
			return fail(errors.New("subscription to the response topics refused"))
		}
	}
	_ = conn.SetDeadline(time.Time{})
	a.lw = time.Now()
	return nil
}

// await reads until a packet of type typ arrives (others before it are
// protocol errors during setup).
func (a *agent) await(typ byte) (packet, error) {
	for {
		pk, n, need, err := nextPacket(a.buf)
		if err != nil {
			return pk, err
		}
		if n > 0 {
			a.consume(n)
			if pk.typ != typ {
				return pk, fmt.Errorf("got packet type %d", pk.typ)
			}
			return pk, nil
		}
		if err := a.fill(need); err != nil {
			return pk, err
		}
	}
}

// fill reads more bytes, growing the buffer for a packet of need bytes.
func (a *agent) fill(need int) error {
	if need > cap(a.buf) {
		nb := make([]byte, len(a.buf), need)
		copy(nb, a.buf)
		a.buf = nb
	}
	n, err := a.conn.Read(a.buf[len(a.buf):cap(a.buf)])
	a.buf = a.buf[:len(a.buf)+n]
	return err
}

// consume drops the first n bytes (the packet just handled). The handled
// packet's slices are dead by now.
func (a *agent) consume(n int) {
	rest := copy(a.buf, a.buf[n:])
	a.buf = a.buf[:rest]
	if cap(a.buf) > 4096 && rest < 512 { // a rare big packet: give the memory back
		nb := make([]byte, rest, 512)
		copy(nb, a.buf)
		a.buf = nb
	}
}

// wake makes the agent re-check its duties now (used to stop it).
func (a *agent) wake(now time.Time) {
	if a.conn != nil {
		_ = a.conn.SetReadDeadline(now)
	}
}

func (a *agent) write(b []byte) error {
	now := time.Now()
	_ = a.conn.SetWriteDeadline(now.Add(writeTimeout))
	_, err := a.conn.Write(b)
	a.lw = now
	return err
}

// scaled is the device's next wait: its period over period_scale,
// stretched by a uniform [0, jitter) fraction.
func (a *agent) scaled() time.Duration {
	p := float64(a.d.period) / a.r.p.PeriodScale
	return time.Duration(p * (1 + a.rng.Float64()*a.r.p.Jitter))
}

// loop waits for the steady phase, then reports on the device's period
// until told to stop, answering broker publishes with PUBACK.
func (a *agent) loop() {
	defer a.conn.Close()
	select {
	case <-a.r.start:
	case <-a.r.stopCh:
		a.hangUp()
		return
	}
	// Spread first reports over one period so the fleet does not report in
	// lockstep (devices boot at different times).
	first := time.Duration(a.rng.Float64() * float64(a.d.period) / a.r.p.PeriodScale)
	a.next = a.r.startAt.Add(first)
	for {
		now := time.Now()
		stopping := a.r.stop.Load()
		if a.pending && now.After(a.answerBy) {
			a.r.lost.Add(1)
			a.pending = false
			a.next = now.Add(a.scaled())
		}
		if stopping && !a.pending {
			a.hangUp()
			return
		}
		if !stopping && !a.pending && !now.Before(a.next) {
			if err := a.publish(now); err != nil {
				a.lostConn(err)
				return
			}
		}
		if now.Sub(a.lw) >= keepAlive/2 {
			if err := a.write(pingreqPacket); err != nil {
				a.lostConn(err)
				return
			}
		}
		due := a.lw.Add(keepAlive / 2)
		if a.pending {
			due = earlier(due, a.answerBy)
		} else if !stopping {
			due = earlier(due, a.next)
		}
		_ = a.conn.SetReadDeadline(due)
		if a.r.stop.Load() && !stopping {
			_ = a.conn.SetReadDeadline(now)
		}
		if err := a.fill(0); err != nil {
			if isTimeout(err) {
				continue
			}
			a.lostConn(err)
			return
		}
		if !a.handleAll() {
			return
		}
	}
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// publish sends the next report (QoS 1).
func (a *agent) publish(now time.Time) error {
	payload, id, err := a.d.payload(a.r.p, a.rng, now)
	if err != nil {
		return err
	}
	a.pktID++
	if a.pktID == 0 {
		a.pktID = 1
	}
	a.out = appendPublishQoS1(a.out[:0], a.topic, a.pktID, payload)
	a.pending, a.pendingID, a.sentAt, a.answerBy = true, id, now, now.Add(a.r.o.ResponseTimeout)
	a.r.sent.Add(1)
	if len(a.out) > 4096 {
		defer func() { a.out = nil }()
	}
	return a.write(a.out)
}

// handleAll handles every complete packet in the buffer; false means the
// connection is unusable (already counted).
func (a *agent) handleAll() bool {
	for {
		pk, n, need, err := nextPacket(a.buf)
		if err != nil {
			a.lostConn(err)
			return false
		}
		if n == 0 {
			if need > cap(a.buf) {
				nb := make([]byte, len(a.buf), need)
				copy(nb, a.buf)
				a.buf = nb
			}
			return true
		}
		if pk.typ == pkPublish {
			if err := a.onPublish(pk); err != nil {
				a.lostConn(err)
				return false
			}
		}
		a.consume(n)
	}
}

// onPublish handles a Defender response: PUBACK it, match it to the
// outstanding report, and time the round trip.
func (a *agent) onPublish(pk packet) error {
	now := time.Now()
	if (pk.flags>>1)&3 == 1 {
		a.out = appendPuback(a.out[:0], pk.id)
		if err := a.write(a.out); err != nil {
			return err
		}
	}
	accepted := pk.topic == a.accepted
	if !accepted && pk.topic != a.rejected {
		return nil // not ours (a shared subscription would bring others')
	}
	resp, err := defender.DecodeResponse(a.d.format, pk.payload)
	if err != nil {
		a.r.fail(fmt.Errorf("fleet: %s: undecodable response on %s: %w", a.d.thing, pk.topic, err))
		return nil
	}
	if !a.pending || resp.ReportID == nil || *resp.ReportID != a.pendingID {
		return nil // a late answer to a report already counted lost
	}
	a.pending = false
	a.next = now.Add(a.scaled())
	if accepted && resp.Status == defender.StatusAccepted {
		a.r.accepted.Add(1)
		a.r.rtt.add(now.Sub(a.sentAt))
		at := int64(now.Sub(a.r.startAt))
		for {
			last := a.r.lastAccept.Load()
			if at <= last || a.r.lastAccept.CompareAndSwap(last, at) {
				break
			}
		}
		return nil
	}
	a.r.rejected.Add(1)
	detail := resp.Status
	if resp.StatusDetails != nil {
		detail = resp.StatusDetails.ErrorCode + ": " + resp.StatusDetails.ErrorMessage
	}
	a.r.fail(fmt.Errorf("fleet: %s: report %d rejected (%s)", a.d.thing, a.pendingID, detail))
	return nil
}

// hangUp ends the session cleanly (DISCONNECT, as a device shutting down).
func (a *agent) hangUp() {
	_ = a.write(disconnectPacket)
}

// lostConn counts a connection that broke during the run.
func (a *agent) lostConn(err error) {
	if a.pending {
		a.r.lost.Add(1)
		a.pending = false
	}
	a.r.dropped.Add(1)
	if !strings.Contains(err.Error(), a.d.thing) {
		err = fmt.Errorf("fleet: %s: connection lost: %w", a.d.thing, err)
	}
	a.r.fail(err)
}
