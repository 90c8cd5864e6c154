package espat

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Counters are what the module carried on a link, defined exactly as the
// firmware can count its network statistics (docs/harness.md, "Counting"):
//   - socket links (TCP, UDP, SSL; single or multi-link): BytesOut = CIPSEND
//     payload bytes that got SEND OK, PacketsOut = those CIPSENDs; active
//     receive: BytesIn = +IPD data bytes, PacketsIn = +IPD messages (counted
//     when queued for the host, in stream order); passive receive: BytesIn
//     = bytes returned by AT+CIPRECVDATA, PacketsIn = CIPRECVDATA replies
//     that carried data (notices carry none and count nothing).
//   - the module's MQTT client: BytesOut = topic + payload bytes of each
//     MQTTPUB/MQTTPUBRAW that succeeded, PacketsOut = those publishes;
//     BytesIn = the <len> of each +MQTTSUBRECV piece, PacketsIn = pieces.
type Counters struct {
	BytesOut   uint64 `json:"bytes_out"`
	PacketsOut uint64 `json:"packets_out"`
	BytesIn    uint64 `json:"bytes_in"`
	PacketsIn  uint64 `json:"packets_in"`
}

// Sub returns c - o, the traffic between two snapshots of one link.
func (c Counters) Sub(o Counters) Counters {
	return Counters{c.BytesOut - o.BytesOut, c.PacketsOut - o.PacketsOut, c.BytesIn - o.BytesIn, c.PacketsIn - o.PacketsIn}
}

// EventKind names what the module did; values are stable (JSON Lines).
type EventKind string

const (
	EventBoot      EventKind = "boot"       // `ready` written
	EventCommand   EventKind = "command"    // a command line with its answer (see Event)
	EventDiscard   EventKind = "discard"    // input dropped (booting, line too long)
	EventWiFiUp    EventKind = "wifi_up"    // WIFI CONNECTED + GOT IP
	EventWiFiDown  EventKind = "wifi_down"  // station lost
	EventDialFail  EventKind = "dial_fail"  // CIPSTART / MQTTCONN failed
	EventLinkOpen  EventKind = "link_open"  // CONNECT (or +MQTTCONNECTED)
	EventLinkClose EventKind = "link_close" // link gone (Reason says why)
	EventSend      EventKind = "send"       // a CIPSEND / MQTT publish finished (OK tells success)
	EventRecv      EventKind = "recv"       // data handed to the host (+IPD, CIPRECVDATA, +MQTTSUBRECV)
)

// Event is one entry of the module's log, in Seq order. Mono is the
// monotonic offset since Config.Epoch; a send is stamped when its payload
// was handed to the link (before the peer can have seen it), and a command
// when its line arrived (it is recorded once answered), so such events may
// carry a Mono below an earlier Seq's. Totals are the link's counters after
// the event.
//
// A command event carries the line (Text), every byte the module answered
// to it (Answer: information lines, URCs it caused, result codes; not the
// echo, not unrelated URCs), the final result code (Result: OK, ERROR,
// SEND OK, busy p..., ...; empty if it never finished) and, for anything
// but success, why (Reason: "unsupported", "bad argument: ...", "wrong
// state: ...", "busy: ...", "dial: ...", "interrupted: ...").
type Event struct {
	Seq       uint64        `json:"seq"`
	Kind      EventKind     `json:"kind"`
	Mono      time.Duration `json:"mono_ns"`
	Time      time.Time     `json:"time"`
	Link      int           `json:"link,omitempty"`    // 1, 2, ... per CIPSTART / MQTT connection
	LinkID    *int          `json:"link_id,omitempty"` // multi-link mode: the AT link id 0-4
	Proto     string        `json:"proto,omitempty"`   // TCP, UDP, SSL, MQTT
	Host      string        `json:"host,omitempty"`    // as the host asked for it
	Port      int           `json:"port,omitempty"`    // remote port asked for
	Remote    string        `json:"remote,omitempty"`  // ip:port as CIPSTATE shows it
	LocalPort int           `json:"local_port,omitempty"`
	Bytes     int           `json:"bytes,omitempty"`
	OK        bool          `json:"ok,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	Text      string        `json:"text,omitempty"`
	Answer    string        `json:"answer,omitempty"`
	Result    string        `json:"result,omitempty"`
	Took      time.Duration `json:"took_ns,omitempty"`
	Totals    *Counters     `json:"totals,omitempty"`
}

func (e Event) forLink(l *link) Event {
	if l == nil {
		return e
	}
	e.Link = l.id
	if l.mux {
		id := l.slot
		e.LinkID = &id
	}
	e.Proto = l.typ
	e.Host = l.host
	e.Port = l.port
	e.Remote = fmt.Sprintf("%s:%d", l.remoteIP, l.port)
	e.LocalPort = l.localPort
	c := l.count
	e.Totals = &c
	return e
}

// maxLinks is AT_SOCKET_MAX_CONN_NUM (link ids 0-4, esp-at-dialects.md §1.2).
const maxLinks = 5

// rxWindow is the per-link passive receive buffer (§2.5); a full buffer
// back-pressures the peer.
const rxWindow = 5760

// link is one socket link: slot 0 in single mode, slot = link id with
// CIPMUX=1.
type link struct {
	id        int // sequence per CIPSTART (events)
	slot      int // AT link id
	mux       bool
	typ       string // TCP, UDP, SSL
	conn      net.Conn
	host      string
	port      int
	remoteIP  string
	localPort int
	count     Counters
	closed    bool
	opened    time.Time

	// Passive receive (§2): buffered bytes, whether a notice is
	// outstanding, a peer close held back while data is unread, and a
	// signal for the reader waiting for room.
	rx         []byte
	notified   bool
	peerClosed bool
	room       chan struct{}

	dns *dnsResponder // UDP link to the module's own DNS server

	// A CIPSEND payload is being handed to the peer: peer data (and its
	// close) read meanwhile is held and delivered after the SEND OK.
	sending bool
	held    [][]byte
	heldEOF bool
}

// LinkInfo describes an open link.
type LinkInfo struct {
	ID        int
	LinkID    int // AT link id (0 in single mode)
	Proto     string
	Host      string
	Port      int
	RemoteIP  string
	LocalPort int
	Counters  Counters
	Opened    time.Time
}

func (l *link) info() LinkInfo {
	return LinkInfo{ID: l.id, LinkID: l.slot, Proto: l.typ, Host: l.host, Port: l.port, RemoteIP: l.remoteIP,
		LocalPort: l.localPort, Counters: l.count, Opened: l.opened}
}

func (m *Module) openLinkLocked(slot int, typ string, conn net.Conn, host string, port int, dns *dnsResponder) *link {
	m.linkSeq++
	l := &link{id: m.linkSeq, slot: slot, mux: m.mux, typ: typ, conn: conn, host: host, port: port,
		remoteIP: m.remoteIP(conn, host), localPort: m.localPort(conn), opened: m.cfg.Now(),
		room: make(chan struct{}, 1), dns: dns}
	m.links[slot] = l
	m.recordLocked(Event{Kind: EventLinkOpen}.forLink(l))
	if dns == nil {
		go m.linkReader(l)
	}
	return l
}

// openLinks lists the open links in id order.
func (m *Module) openLinks() []*link {
	var out []*link
	for _, l := range m.links {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}

// closedURCFor is CLOSED in single mode, <id>,CLOSED with CIPMUX=1.
func closedURCFor(l *link) string {
	if l.mux {
		return fmt.Sprintf("%d,%s", l.slot, closedURC)
	}
	return closedURC
}

// closeLinkLocked ends a link from this side; urc says whether the host is
// told with CLOSED.
func (m *Module) closeLinkLocked(l *link, reason string, urc bool) {
	if l == nil || l.closed {
		return
	}
	if m.links[l.slot] == l {
		m.links[l.slot] = nil
	}
	l.closed = true
	m.linkClosed = true
	if l.conn != nil {
		_ = l.conn.Close()
	}
	select {
	case l.room <- struct{}{}:
	default:
	}
	if urc {
		m.emit([]byte(closedURCFor(l)))
	}
	m.recordLocked(Event{Kind: EventLinkClose, Reason: reason}.forLink(l))
}

// closeAllLocked ends every link.
func (m *Module) closeAllLocked(reason string, urc bool) {
	for _, l := range m.openLinks() {
		m.closeLinkLocked(l, reason, urc)
	}
}

// linkReader turns peer data into +IPD messages of at most 2920 bytes (or,
// in passive mode, into buffered data and a notice) and a peer close into
// CLOSED (§2, §1.4). It waits until each message is written (or buffered
// data fits) before reading more, so a slow host back-pressures the peer.
func (m *Module) linkReader(l *link) {
	buf := make([]byte, maxIPD)
	for {
		n, err := l.conn.Read(buf)
		if n > 0 {
			data := append([]byte(nil), buf[:n]...)
			m.mu.Lock()
			if l.closed {
				m.mu.Unlock()
				return
			}
			if l.sending {
				l.held = append(l.held, data)
				m.mu.Unlock()
				continue
			}
			stop := m.stop
			if m.passiveFor(l) {
				m.bufferLocked(l, data)
				full := len(l.rx) >= rxWindow
				m.mu.Unlock()
				if full {
					select {
					case <-l.room:
					case <-stop:
						return
					}
				}
			} else {
				var done <-chan error
				m.unsolicited(func() { done = m.ipdLocked(l, data) })
				m.mu.Unlock()
				select {
				case <-done:
				case <-stop:
					return
				}
			}
		}
		if err != nil {
			m.mu.Lock()
			if !l.closed && l.sending {
				l.heldEOF = true
			} else if !l.closed {
				m.unsolicited(func() { m.peerClosedLocked(l) })
			}
			m.mu.Unlock()
			return
		}
	}
}

// releaseLocked ends a payload hand-over once its result is written and
// delivers what the peer sent meanwhile. SEND OK means the payload was
// handed to the TCP/IP stack (esp-at.md §1), on a module before the peer
// can answer it; here the hand-over ends only once the peer has read the
// payload, so an answer is held until then, never written before the
// SEND OK of the data it answers.
func (m *Module) releaseLocked(l *link, live bool) {
	held, eof := l.held, l.heldEOF
	l.sending, l.held, l.heldEOF = false, nil, false
	if !live || l.closed {
		return
	}
	for _, data := range held {
		m.unsolicited(func() { m.deliverLocked(l, data) })
	}
	if eof {
		m.unsolicited(func() { m.peerClosedLocked(l) })
	}
}

// peerClosedLocked: in passive mode (v2) CLOSED is withheld while data is
// unread (§2.6); otherwise it is written at once.
func (m *Module) peerClosedLocked(l *link) {
	if len(l.rx) > 0 && m.cfg.Dialect != Dialect17 {
		l.peerClosed = true
		return
	}
	m.closeLinkLocked(l, "peer closed", true)
}

// passiveFor: passive receive applies to TCP and SSL, and in v2 to UDP
// (1.7: TCP only, §2.1).
func (m *Module) passiveFor(l *link) bool {
	if !m.passive {
		return false
	}
	return l.typ != "UDP" || m.cfg.Dialect != Dialect17
}

// bufferLocked keeps passive data and sends a notice when none is
// outstanding: <CR><LF>+IPD,<id>,<total><CR><LF> (single: +IPD,<total>).
func (m *Module) bufferLocked(l *link, data []byte) {
	l.rx = append(l.rx, data...)
	if !l.notified {
		l.notified = true
		m.unsolicited(func() { m.emit([]byte(m.passiveNotice(l))) })
	}
}

func (m *Module) passiveNotice(l *link) string {
	if l.mux {
		return fmt.Sprintf("\r\n+IPD,%d,%d\r\n", l.slot, len(l.rx))
	}
	return fmt.Sprintf("\r\n+IPD,%d\r\n", len(l.rx))
}

// ipdLocked queues one +IPD message and counts it at once: the queue keeps
// the order the host sees, so counters and events follow the byte stream.
// The returned channel is closed once the message is written.
func (m *Module) ipdLocked(l *link, data []byte) <-chan error {
	head := "\r\n+IPD,"
	if l.mux {
		head += fmt.Sprintf("%d,", l.slot)
	}
	head += fmt.Sprint(len(data))
	if m.cipdinfo {
		if m.cfg.Dialect == Dialect17 {
			head += fmt.Sprintf(",%s,%d", l.remoteIP, l.port)
		} else {
			head += fmt.Sprintf(",\"%s\",%d", l.remoteIP, l.port)
		}
	}
	head += ":"
	msg := make([]byte, 0, len(head)+len(data)+2)
	msg = append(append(msg, head...), data...)
	if m.cfg.Dialect != Dialect17 {
		msg = append(msg, '\r', '\n') // v2 appends CR LF; 1.7 nothing (§5.2)
	}
	m.countInLocked(l, len(data))
	return m.emit(msg)
}

func (m *Module) countInLocked(l *link, n int) {
	l.count.BytesIn += uint64(n)
	l.count.PacketsIn++
	m.totals.BytesIn += uint64(n)
	m.totals.PacketsIn++
	m.recordLocked(Event{Kind: EventRecv, Bytes: n}.forLink(l))
}

func (m *Module) countOutLocked(l *link, n int, at time.Time) {
	l.count.BytesOut += uint64(n)
	l.count.PacketsOut++
	m.totals.BytesOut += uint64(n)
	m.totals.PacketsOut++
	m.recordAtLocked(Event{Kind: EventSend, Bytes: n, OK: true}.forLink(l), at)
}

func (m *Module) recordLocked(e Event) { m.recordAtLocked(e, m.cfg.Now()) }

// recordAtLocked records e as having happened at now (which may be earlier
// than the moment of recording, e.g. the start of a write).
func (m *Module) recordAtLocked(e Event, now time.Time) {
	m.seq++
	e.Seq = m.seq
	e.Time = now
	e.Mono = now.Sub(m.cfg.Epoch)
	m.events = append(m.events, e)
	if m.cfg.OnEvent != nil {
		m.cfg.OnEvent(e)
	}
}

// Events returns a copy of everything recorded so far.
// Settle waits until every send and dial under way has its outcome
// recorded (or ctx ends). A payload reaches the peer before the module
// records its send, so whoever reads the peer's side first (the broker)
// must Settle before reading Events to see a consistent log.
func (m *Module) Settle(ctx context.Context) error {
	m.mu.Lock()
	if m.inflight == 0 {
		m.mu.Unlock()
		return nil
	}
	idle := m.idle
	m.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("espat: work still under way: %w", ctx.Err())
	}
}

func (m *Module) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}

// Link describes the open link with the lowest link id; ok is false when
// there is none.
func (m *Module) Link() (info LinkInfo, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ls := m.openLinks(); len(ls) > 0 {
		return ls[0].info(), true
	}
	return LinkInfo{}, false
}

// Links describes every open link in link id order.
func (m *Module) Links() []LinkInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []LinkInfo
	for _, l := range m.openLinks() {
		out = append(out, l.info())
	}
	return out
}

// Snapshot is the counters at one instant, for per-interval comparisons.
type Snapshot struct {
	Mono      time.Duration `json:"mono_ns"`
	Link      int           `json:"link,omitempty"` // 0: no link open
	LocalPort int           `json:"local_port,omitempty"`
	Current   Counters      `json:"current"` // the open link's counters (lowest link id)
	Totals    Counters      `json:"totals"`  // every link and MQTT session since New
}

// Snapshot returns the current counters.
func (m *Module) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{Mono: m.cfg.Now().Sub(m.cfg.Epoch), Totals: m.totals}
	if ls := m.openLinks(); len(ls) > 0 {
		l := ls[0]
		s.Link, s.LocalPort, s.Current = l.id, l.localPort, l.count
	}
	return s
}
