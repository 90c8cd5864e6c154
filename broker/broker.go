package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/ddhil/ddhil/broker/defender"
)

// maxPacket caps any MQTT packet at the 128 KB payload limit plus room for
// the topic, packet ID and MQTT 5 properties; a packet above it ends the
// connection before it is read into memory. Publishes between the two
// limits are refused by payload size in the hook.
const maxPacket = defender.MaxPayload + 4096

// Broker is the embedded MQTT broker playing AWS IoT Core and Device
// Defender: it answers Defender reports on their response topics, applies
// AWS's refusals, injects faults on demand, counts every connection's
// traffic below TLS and logs everything it sees.
type Broker struct {
	cfg       Config
	srv       *mqtt.Server
	rec       *Recorder
	faults    faults
	svc       service
	responses *fifo[responseJob]

	ctx    context.Context
	cancel context.CancelFunc
	stop   chan struct{} // closed when background goroutines must end

	mu        sync.Mutex
	conns     map[string]*conn
	listeners map[string]*listener
	started   bool
	closed    bool
	nextConn  atomic.Uint64

	connWG    sync.WaitGroup // one per connection goroutine
	bgWG      sync.WaitGroup // response worker, meter ticker
	closeOnce sync.Once
	closeErr  error
}

// New builds a broker from cfg without opening any socket; Start does that.
func New(cfg Config) (*Broker, error) {
	if err := cfg.ensureDefaults(); err != nil {
		return nil, err
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumQos = 1                              // AWS IoT Core: QoS 0 and 1 only
	caps.MaximumPacketSize = maxPacket               // oversize packets end the connection
	caps.MinimumProtocolVersion = 4                  // MQTT 3.1.1 and 5
	caps.TopicAliasMaximum = 8                       // AWS IoT Core's MQTT 5 limit
	caps.ReceiveMaximum = 100                        // AWS: 100 in-flight unacknowledged messages
	caps.MaximumSessionExpiryInterval = 3600         // AWS: persistent sessions last 1 h by default
	caps.Compatibilities.ObscureNotAuthorized = true // refused subscriptions get 0x80 on v3 and v5
	// mochi's default queue of 8192 pending writes costs 64 KiB per client
	// up front (640 MiB for a 10,000-agent fleet); 256 is ample for a
	// service that sends a client one response per report.
	caps.MaximumClientWritesPending = 256

	b := &Broker{
		cfg:       cfg,
		rec:       NewRecorder(cfg.Record),
		responses: newFIFO[responseJob](),
		stop:      make(chan struct{}),
		conns:     map[string]*conn{},
		listeners: map[string]*listener{},
	}
	b.svc.init()
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.srv = mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		InlineClient:           true, // responses are published by the broker itself
		Logger:                 cfg.Logger,
		SysTopicResendInterval: math.MaxInt32, // $SYS once at start, not every second
	})
	if err := b.srv.AddHook(&hook{b: b}, nil); err != nil {
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}
	return b, nil
}

// Start opens the listeners and starts serving. The broker runs until Close
// is called or ctx is done, whichever comes first.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	if b.started || b.closed {
		b.mu.Unlock()
		return errors.New("broker: Start called twice or after Close")
	}
	b.started = true
	b.mu.Unlock()

	specs := []struct {
		id, addr string
		tls      *tls.Config
	}{{"tcp", b.cfg.MQTTAddr, nil}}
	if b.cfg.TLS != nil {
		specs = append(specs, struct {
			id, addr string
			tls      *tls.Config
		}{"tls", b.cfg.MQTTSAddr, serverTLS(b.cfg.TLS)})
	}
	var opened []net.Listener
	for _, s := range specs {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, o := range opened {
				_ = o.Close()
			}
			return fmt.Errorf("broker: listen %s on %s: %w", s.id, s.addr, err)
		}
		opened = append(opened, ln)
		l := &listener{id: s.id, ln: ln, tls: s.tls, b: b}
		if err := b.srv.AddListener(l); err != nil {
			for _, o := range opened {
				_ = o.Close()
			}
			return fmt.Errorf("broker: add listener %s: %w", s.id, err)
		}
		b.mu.Lock()
		b.listeners[s.id] = l
		b.mu.Unlock()
	}
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.bgWG.Add(1)
	go b.responseWorker()
	if b.cfg.MeterInterval > 0 {
		b.bgWG.Add(1)
		go b.meterTicker(b.cfg.MeterInterval)
	}
	context.AfterFunc(ctx, func() { _ = b.Close() })
	return nil
}

// Addr returns the bound address of the "tcp" or "tls" listener, or "" when
// that listener is not open.
func (b *Broker) Addr(listenerID string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l, ok := b.listeners[listenerID]; ok {
		return l.ln.Addr().String()
	}
	return ""
}

// ServeConn serves an MQTT connection the caller already holds, such as
// the harness's emulated Wi-Fi module bridging a UART; name is logged as the
// remote address. It returns at once; the broker owns and closes conn.
func (b *Broker) ServeConn(c net.Conn, name string) error {
	if !b.addConn() {
		_ = c.Close()
		return errors.New("broker: serve conn: broker not started or closed")
	}
	go b.serve("mem", c, memAddr(name), nil)
	return nil
}

// DialMem returns the client end of an in-memory connection (net.Pipe)
// whose other end the broker serves as listener "mem". Writes block until
// the other side reads, as on net.Pipe: keep reading the returned conn.
func (b *Broker) DialMem(name string) (net.Conn, error) {
	client, server := net.Pipe()
	if err := b.ServeConn(server, name); err != nil {
		_ = client.Close()
		return nil, err
	}
	return client, nil
}

// Recorder returns the event log.
func (b *Broker) Recorder() *Recorder { return b.rec }

// Events returns a copy of every event so far.
func (b *Broker) Events() []Event { return b.rec.Events() }

// Subscribe is Recorder().Subscribe.
func (b *Broker) Subscribe(buffer int) (<-chan Event, func()) { return b.rec.Subscribe(buffer) }

// WaitFor is Recorder().WaitFor: the first event from the start of the log
// that matches, waiting until ctx is done.
func (b *Broker) WaitFor(ctx context.Context, match func(Event) bool) (Event, error) {
	return b.rec.WaitFor(ctx, match)
}

// MeterSnapshot returns the traffic counters of a connection, open or
// closed, and records them as a meter event.
func (b *Broker) MeterSnapshot(connID string) (Meter, bool) {
	b.mu.Lock()
	c, ok := b.conns[connID]
	b.mu.Unlock()
	if !ok {
		return Meter{}, false
	}
	m := c.m.snapshot()
	ev := c.event(EventMeter)
	ev.Meter = &m
	b.rec.Record(ev)
	return m, true
}

// Close disconnects every client, stops the listeners, sends nothing more,
// and flushes the event log. It is idempotent and returns the event log's
// write error, if any.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		conns := make([]*conn, 0, len(b.conns))
		for _, c := range b.conns {
			conns = append(conns, c)
		}
		lns := make([]*listener, 0, len(b.listeners))
		for _, l := range b.listeners {
			lns = append(lns, l)
		}
		b.mu.Unlock()

		for _, l := range lns {
			_ = l.ln.Close()
		}
		for _, c := range conns {
			c.setEnd(ReasonServerDisconnect, "broker closed", "")
			_ = c.raw.Close()
		}
		// Let every connection goroutine finish before stopping mochi:
		// mochi v2.7.9's Close takes the clients' read lock twice and
		// deadlocks against a client being removed at the same moment.
		b.cancel()
		b.connWG.Wait()
		_ = b.srv.Close()
		close(b.stop)
		b.bgWG.Wait()
		b.closeErr = b.rec.Close()
	})
	return b.closeErr
}

// addConn reserves a connection goroutine unless the broker is closed.
func (b *Broker) addConn() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started || b.closed {
		return false
	}
	b.connWG.Add(1)
	return true
}

// serve runs one accepted connection from accept to its final events.
func (b *Broker) serve(listenerID string, raw net.Conn, remote net.Addr, tlsConf *tls.Config) {
	defer b.connWG.Done()
	c := b.register(listenerID, raw, remote)
	if c == nil {
		_ = raw.Close()
		return
	}
	var transport net.Conn = &byteCountConn{Conn: raw, m: &c.m}
	if tlsConf != nil {
		tc := tls.Server(transport, tlsConf)
		hctx, cancel := context.WithTimeout(b.ctx, b.cfg.HandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = raw.Close()
			c.setEnd(ReasonTLSHandshake, "tls handshake: "+err.Error(), "")
			b.finish(c, err)
			return
		}
		info := tlsInfoOf(tc.ConnectionState())
		c.mu.Lock()
		c.tls = info
		c.thing = info.PeerCN
		c.mu.Unlock()
		transport = tc
	}
	var override net.Addr
	if listenerID == "mem" {
		override = remote
	}
	mc := newMQTTConn(transport, c, override)
	_ = mc.SetDeadline(time.Now().Add(b.cfg.ConnectTimeout)) // mochi sets keep-alive deadlines after CONNECT
	err := b.srv.EstablishConnection(listenerID, mc)
	_ = mc.Close()
	_ = raw.Close()
	if c.pendingJob != nil { // the PUBACK failed: answer anyway, for a persistent session
		c.pendingJob.due = time.Now().Add(c.pendingJob.delay)
		b.responses.push(*c.pendingJob)
		c.pendingJob = nil
	}
	b.finish(c, err)
}

func (b *Broker) register(listenerID string, raw net.Conn, remote net.Addr) *conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	c := &conn{
		id:       fmt.Sprintf("%s-%d", listenerID, b.nextConn.Add(1)),
		listener: listenerID,
		remote:   remote.String(),
		local:    raw.LocalAddr().String(),
		raw:      raw,
	}
	if listenerID == "mem" {
		c.local = "mem"
	}
	b.conns[c.id] = c
	return c
}

// finish records the end of a connection: the connect failure when no
// CONNACK was sent, an oversize refusal detected by mochi, the final meter
// and the disconnect with its reason.
func (b *Broker) finish(c *conn, err error) {
	c.mu.Lock()
	logged := c.connected
	reason, detail, fault := c.endReason, c.endDetail, c.endFault
	stopCause := c.stopCause
	info, tlsInfo := c.connect, c.tls
	c.done = true
	c.mu.Unlock()

	if reason == "" {
		reason, detail = classify(err, stopCause, logged)
	}
	if !logged {
		ev := c.event(EventConnect)
		ev.TLS, ev.Connect = tlsInfo, info
		ev.Error = detail
		if ev.Error == "" {
			ev.Error = "connection ended before CONNACK"
		}
		b.rec.Record(ev)
	}
	if errors.Is(err, packets.ErrPacketTooLarge) {
		ev := c.event(EventPolicy)
		ev.Reason = RefusedOversize
		ev.Error = fmt.Sprintf("packet larger than %d bytes", maxPacket)
		b.rec.Record(ev)
	}
	m := c.m.snapshot()
	mev := c.event(EventMeter)
	mev.Meter = &m
	b.rec.Record(mev)
	dev := c.event(EventDisconnect)
	dev.Reason, dev.Error, dev.Fault = reason, detail, fault
	dev.Meter = &m
	b.rec.Record(dev)
}

// classify maps how mochi ended a connection to an AWS lifecycle reason.
func classify(err, stopCause error, connected bool) (reason, detail string) {
	if err != nil {
		detail = err.Error()
	} else if stopCause != nil {
		detail = stopCause.Error()
	}
	switch {
	case errors.Is(stopCause, packets.ErrSessionTakenOver):
		return ReasonDuplicateClient, "session taken over by a newer connection with the same client ID"
	case errors.Is(stopCause, packets.CodeDisconnect) && err == nil,
		errors.Is(err, packets.CodeDisconnectWillMessage):
		return ReasonClientDisconnect, ""
	case errors.Is(err, os.ErrDeadlineExceeded) && connected:
		return ReasonKeepAlive, "no packet within 1.5 x keep-alive"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonClientError, "no CONNECT in time"
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrClosedPipe):
		return ReasonConnectionLost, detail
	default:
		return ReasonClientError, detail
	}
}

// disconnect ends a client's connection as AWS IoT Core does: MQTT 5
// clients get a DISCONNECT with the reason code first, MQTT 3.1.1 clients
// (which have no server DISCONNECT) just see the socket close.
func (b *Broker) disconnect(cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion >= 5 {
		_ = b.srv.DisconnectClient(cl, code)
		return
	}
	cl.Stop(code)
}

func (b *Broker) meterTicker(every time.Duration) {
	defer b.bgWG.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.mu.Lock()
			var open []*conn
			for _, c := range b.conns {
				c.mu.Lock()
				if !c.done {
					open = append(open, c)
				}
				c.mu.Unlock()
			}
			b.mu.Unlock()
			for _, c := range open {
				m := c.m.snapshot()
				ev := c.event(EventMeter)
				ev.Meter = &m
				b.rec.Record(ev)
			}
		}
	}
}

// listener is a mochi listener over a net.Listener that hands each
// accepted connection to the broker, which meters it (and runs the TLS
// handshake off the accept loop).
type listener struct {
	id  string
	ln  net.Listener
	tls *tls.Config
	b   *Broker
	log *slog.Logger
}

var _ listeners.Listener = (*listener)(nil)

func (l *listener) ID() string                  { return l.id }
func (l *listener) Address() string             { return l.ln.Addr().String() }
func (l *listener) Protocol() string            { return l.id }
func (l *listener) Init(log *slog.Logger) error { l.log = log; return nil }

// Serve accepts until the listener is closed; temporary accept errors
// (e.g. out of file descriptors) back off like net/http does.
func (l *listener) Serve(listeners.EstablishFn) {
	var backoff time.Duration
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			l.log.Warn("accept failed", "error", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.b.stop:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		if !l.b.addConn() {
			_ = raw.Close()
			continue
		}
		go l.b.serve(l.id, raw, raw.RemoteAddr(), l.tls)
	}
}

// Close stops accepting. It does not call mochi's closeClients: Broker.Close
// has already ended every connection, and mochi v2.7.9's GetByListener
// takes the clients' read lock twice, which can deadlock against its
// session-expiry loop.
func (l *listener) Close(listeners.CloseFn) {
	_ = l.ln.Close()
}

func tlsInfoOf(cs tls.ConnectionState) *TLSInfo {
	ti := &TLSInfo{
		Version:     tls.VersionName(cs.Version),
		CipherSuite: tls.CipherSuiteName(cs.CipherSuite),
		ALPN:        cs.NegotiatedProtocol,
		ServerName:  cs.ServerName,
	}
	if len(cs.PeerCertificates) == 0 {
		return ti
	}
	leaf := cs.PeerCertificates[0]
	ti.PeerCN = leaf.Subject.CommonName
	ti.PeerNotBefore, ti.PeerNotAfter = leaf.NotBefore, leaf.NotAfter
	ti.PeerSigAlg = leaf.SignatureAlgorithm.String()
	sum := sha256.Sum256(leaf.Raw)
	ti.PeerCertSHA256, ti.PeerCert = hex.EncodeToString(sum[:]), leaf.Raw
	switch k := leaf.PublicKey.(type) {
	case *ecdsa.PublicKey:
		ti.PeerKeyType = "ECDSA " + k.Curve.Params().Name
		ti.PeerKeyBits = k.Curve.Params().BitSize
	case *rsa.PublicKey:
		ti.PeerKeyType = "RSA"
		ti.PeerKeyBits = k.N.BitLen()
	case ed25519.PublicKey:
		ti.PeerKeyType = "Ed25519"
		ti.PeerKeyBits = 256
	default:
		ti.PeerKeyType = fmt.Sprintf("%T", k)
	}
	return ti
}
