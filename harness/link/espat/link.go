package espat

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Counters are what the module carried on a link, defined exactly as the
// reference firmware counts its network statistics:
// BytesOut = CIPSEND payload bytes that got SEND OK, PacketsOut = successful
// CIPSENDs, BytesIn = +IPD payload bytes written to the host, PacketsIn =
// +IPD messages written (counted when queued for the host, in stream order).
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
	EventCommand   EventKind = "command"    // a command line (Reason "busy" when refused)
	EventDiscard   EventKind = "discard"    // input dropped (booting, line too long)
	EventWiFiUp    EventKind = "wifi_up"    // WIFI CONNECTED + GOT IP
	EventWiFiDown  EventKind = "wifi_down"  // station lost
	EventDialFail  EventKind = "dial_fail"  // CIPSTART failed
	EventLinkOpen  EventKind = "link_open"  // CONNECT
	EventLinkClose EventKind = "link_close" // link gone (Reason says why)
	EventSend      EventKind = "send"       // a CIPSEND finished (OK tells SEND OK)
	EventRecv      EventKind = "recv"       // one +IPD message written
)

// Event is one entry of the module's log, in Seq order. Mono is the
// monotonic offset since Config.Epoch; a send is stamped when its payload
// was handed to the link (before the peer can have seen it), so sends may
// carry a Mono slightly below an earlier Seq's. Totals are the link's
// counters after the event.
type Event struct {
	Seq       uint64        `json:"seq"`
	Kind      EventKind     `json:"kind"`
	Mono      time.Duration `json:"mono_ns"`
	Time      time.Time     `json:"time"`
	Link      int           `json:"link,omitempty"`   // 1, 2, ... per CIPSTART
	Host      string        `json:"host,omitempty"`   // as the host asked for it
	Port      int           `json:"port,omitempty"`   // remote port asked for
	Remote    string        `json:"remote,omitempty"` // ip:port as CIPSTATE shows it
	LocalPort int           `json:"local_port,omitempty"`
	Bytes     int           `json:"bytes,omitempty"`
	OK        bool          `json:"ok,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	Text      string        `json:"text,omitempty"`
	Totals    *Counters     `json:"totals,omitempty"`
}

func (e Event) forLink(l *link) Event {
	if l == nil {
		return e
	}
	e.Link = l.id
	e.Host = l.host
	e.Port = l.port
	e.Remote = fmt.Sprintf("%s:%d", l.remoteIP, l.port)
	e.LocalPort = l.localPort
	c := l.count
	e.Totals = &c
	return e
}

// link is the one TCP client link (CIPMUX=0).
type link struct {
	id        int
	conn      net.Conn
	host      string
	port      int
	remoteIP  string
	localPort int
	count     Counters
	closed    bool
	opened    time.Time
}

// LinkInfo describes the open link.
type LinkInfo struct {
	ID        int
	Host      string
	Port      int
	RemoteIP  string
	LocalPort int
	Counters  Counters
	Opened    time.Time
}

func (m *Module) openLinkLocked(conn net.Conn, host string, port int) {
	m.linkSeq++
	l := &link{id: m.linkSeq, conn: conn, host: host, port: port,
		remoteIP: m.remoteIP(conn, host), localPort: m.localPort(conn), opened: m.cfg.Now()}
	m.link = l
	m.recordLocked(Event{Kind: EventLinkOpen}.forLink(l))
	go m.linkReader(l)
}

// closeLinkLocked ends the link from this side; urc says whether the host
// is told with CLOSED.
func (m *Module) closeLinkLocked(reason string, urc bool) {
	l := m.link
	if l == nil {
		return
	}
	m.link = nil
	l.closed = true
	m.linkClosed = true
	_ = l.conn.Close()
	if urc {
		m.emit([]byte(closedURC))
	}
	m.recordLocked(Event{Kind: EventLinkClose, Reason: reason}.forLink(l))
}

// linkReader turns peer data into +IPD messages of at most 2920 bytes and a
// peer close into CLOSED (§2, §1.4). It waits until each message is written
// before reading more, so a slow host back-pressures the peer.
func (m *Module) linkReader(l *link) {
	buf := make([]byte, maxIPD)
	for {
		n, err := l.conn.Read(buf)
		if n > 0 {
			data := append([]byte(nil), buf[:n]...)
			m.mu.Lock()
			if l.closed || m.link != l {
				m.mu.Unlock()
				return
			}
			done := m.ipdLocked(l, data)
			stop := m.stop
			m.mu.Unlock()
			select {
			case <-done:
			case <-stop:
				return
			}
		}
		if err != nil {
			m.mu.Lock()
			if !l.closed && m.link == l {
				m.closeLinkLocked("peer closed", true)
			}
			m.mu.Unlock()
			return
		}
	}
}

// ipdLocked queues one +IPD message and counts it at once: the queue keeps
// the order the host sees, so counters and events follow the byte stream.
// The returned channel is closed once the message is written.
func (m *Module) ipdLocked(l *link, data []byte) <-chan error {
	head := fmt.Sprintf("\r\n+IPD,%d:", len(data))
	if m.cipdinfo {
		head = fmt.Sprintf("\r\n+IPD,%d,\"%s\",%d:", len(data), l.remoteIP, l.port)
	}
	msg := make([]byte, 0, len(head)+len(data)+2)
	msg = append(append(append(msg, head...), data...), '\r', '\n')
	l.count.BytesIn += uint64(len(data))
	l.count.PacketsIn++
	m.totals.BytesIn += uint64(len(data))
	m.totals.PacketsIn++
	m.recordLocked(Event{Kind: EventRecv, Bytes: len(data)}.forLink(l))
	return m.emit(msg)
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

// Link describes the open link; ok is false when there is none.
func (m *Module) Link() (info LinkInfo, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.link
	if l == nil {
		return LinkInfo{}, false
	}
	return LinkInfo{ID: l.id, Host: l.host, Port: l.port, RemoteIP: l.remoteIP,
		LocalPort: l.localPort, Counters: l.count, Opened: l.opened}, true
}

// Snapshot is the counters at one instant, for per-interval comparisons.
type Snapshot struct {
	Mono      time.Duration `json:"mono_ns"`
	Link      int           `json:"link,omitempty"` // 0: no link open
	LocalPort int           `json:"local_port,omitempty"`
	Current   Counters      `json:"current"` // the open link's counters
	Totals    Counters      `json:"totals"`  // every link since New
}

// Snapshot returns the current counters.
func (m *Module) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Snapshot{Mono: m.cfg.Now().Sub(m.cfg.Epoch), Totals: m.totals}
	if l := m.link; l != nil {
		s.Link, s.LocalPort, s.Current = l.id, l.localPort, l.count
	}
	return s
}
