// Package espat emulates an Espressif ESP-AT Wi-Fi module on a UART: the
// "transport bridge" through which firmware without its own network reaches
// the broker. It speaks the dialects real host drivers speak, byte for byte
// (research notes esp-at.md and esp-at-dialects.md): the single-link subset
// (transcripts T1-T10), multi-link mode, passive receive, UDP and TLS links,
// the init and station commands of the Zephyr, Arduino WiFiEspAT and Mbed
// drivers, module DNS, the module's own MQTT client, and the NonOS 1.7
// dialect as a profile. It dials the endpoints the firmware asks for through
// caller-supplied dialers, and counts every byte it carries exactly as the
// firmware can count it, so network statistics can be checked without
// tolerance (docs/harness.md lists the definitions per mode).
//
// This is a stand-in for hardware that cannot exist here (a real module); it
// follows the documented v2 behaviour, and docs/harness.md lists where it
// deliberately differs.
package espat

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// Dialer opens the TCP link AT+CIPSTART asks for. Return an error wrapping
// ErrNoSuchHost for a name that does not resolve (the module answers ERROR
// only); any other error counts as refused/unreachable (ERROR then CLOSED).
type Dialer func(ctx context.Context, host string, port int) (net.Conn, error)

// ErrNoSuchHost makes AT+CIPSTART fail like a DNS failure.
var ErrNoSuchHost = errors.New("espat: no such host")

// ErrServing is returned by Serve when the module already serves a stream.
var ErrServing = errors.New("espat: module already serving")

// Config describes the emulated module and its surroundings. Zero values
// give a module that joins any access point and dials real TCP.
type Config struct {
	// SSID and Password are the access point the module can join. An empty
	// SSID accepts any SSID and password.
	SSID     string
	Password string
	// Dial opens links (default: TCP with net.Dialer).
	Dial Dialer
	// DialTimeout bounds AT+CIPSTART (default 10 s).
	DialTimeout time.Duration
	// ReadyDelay is the boot time before `ready` (default 300 ms, §5).
	ReadyDelay time.Duration
	// JoinDelay is how long AT+CWJAP runs (default 0: immediate).
	JoinDelay time.Duration
	// ReconnectDelay is how long after WiFiDrop the station is back
	// (default 1 s, the module's reconn_interval).
	ReconnectDelay time.Duration
	// SyncDelay is how long after AT+CIPSNTPCFG (with Wi-Fi up) SNTP stays
	// unsynchronised and AT+CIPSNTPTIME? shows 1970 + uptime (default 0).
	SyncDelay time.Duration
	// SendTimeout bounds handing a CIPSEND payload to the link (default 10 s).
	SendTimeout time.Duration
	// Now is the wall clock for SNTP and event stamps (default time.Now).
	Now func() time.Time
	// Epoch is time zero of Event.Mono (default: when New ran).
	Epoch time.Time
	// NameIP is the remote IP shown for a link to a host name whose
	// connection has no IP address of its own (default 192.0.2.1).
	NameIP string
	// OnEvent, when set, sees every event as it is recorded; it runs with
	// the module's lock held and must not call back into the module.
	OnEvent func(Event)

	// Dialect selects the firmware line the module imitates: DialectV2
	// (default, ESP-AT 2.x-5.x) or Dialect17 (ESP8266 NonOS AT 1.7: _CUR/_DEF
	// names, 1.7 reply shapes, error texts).
	Dialect Dialect
	// Disabled are commands this module's AT firmware was built without
	// (ESP-AT builds can leave command sets out), e.g. "AT+CWDHCP": they
	// answer ERROR as unsupported.
	Disabled []string
	// DialUDP opens UDP links (default: net.Dial "udp"). Datagrams to port
	// 53 of the module's DNS servers never reach it: the module's resolver
	// answers them.
	DialUDP Dialer
	// TLS holds the device certificate and key (Certificates) and the CAs
	// that verify the server (RootCAs) for SSL links and MQTT over TLS, as
	// the module's PKI partition would. ServerName, when set, overrides the
	// name verified (default: the SNI, else the host dialled).
	TLS *tls.Config
	// Hosts is the module's DNS: name -> IPv4 address. Names of the AWS IoT
	// data endpoint form (<prefix>-ats.iot.<region>.amazonaws.com) resolve
	// to NameIP unless listed. Other names are passed to the dialers as they
	// are (and fail AT+CIPDOMAIN).
	Hosts map[string]string
	// Station addresses shown by AT+CIPSTA?/AT+CIFSR once Wi-Fi is up
	// (defaults 192.0.2.100, gateway 192.0.2.254, netmask 255.255.255.0),
	// the MAC (default 24:0a:c4:00:00:01) and the DNS server DHCP hands out
	// (default: the gateway).
	StationIP, Gateway, Netmask, MAC, DNSServer string
	// AccessPoints are what AT+CWLAP finds (default: one WPA2 access point
	// named SSID, or "ddhil-lab" when SSID is empty).
	AccessPoints []AccessPoint
	// MQTTTimeout bounds the module MQTT client's connect, subscribe and
	// publish (default 15 s, AT+MQTTCONN's default timeout).
	MQTTTimeout time.Duration
}

// Dialect is the AT firmware line the module imitates.
type Dialect string

const (
	DialectV2 Dialect = "v2"  // ESP-AT 2.x and later
	Dialect17 Dialect = "1.7" // ESP8266 NonOS AT 1.7.x
)

// AccessPoint is one network AT+CWLAP reports.
type AccessPoint struct {
	SSID    string
	BSSID   string // aa:bb:cc:dd:ee:ff
	RSSI    int
	Channel int
	Ecn     int // 0 open, 3 WPA2_PSK, ...
}

// Module is one emulated ESP-AT module. Create it with New, then Serve it on
// the transport UART.
type Module struct {
	cfg Config
	// timer is the seam for delays; tests replace it to gate them.
	timer func(what string, d time.Duration) <-chan time.Time

	mu      sync.Mutex
	serving bool
	stop    chan struct{} // closed when Serve ends
	ctx     context.Context
	out     *outQueue

	// Module state (esp-at.md §5), reset on boot.
	gen uint64 // boot generation; work started before a reboot is discarded
	// inflight counts slow work (a dial, a send) whose outcome is not yet
	// recorded; Settle waits for it so a capture is never missing the send
	// of a report the broker already has.
	inflight   int
	idle       chan struct{} // closed when inflight drops to zero
	bootAt     time.Time
	booting    bool
	running    bool // a slow command is in progress: lines get busy p...
	echo       bool
	cwmode     int
	cipdinfo   bool
	sysstore   int
	uartRate   int
	wifiUp     bool
	joinTried  bool
	joinedSSID string // auto-reconnect target after WiFiDrop
	linkClosed bool   // a link was closed since Wi-Fi came up (CIPSTATUS 4)
	sntpOn     bool
	sntpAt     time.Time
	synced     bool
	tzMinutes  int

	lineBuf      []byte // the command line so far (CR included), at most maxLine bytes
	lineLong     int    // length of a line that outgrew maxLine (0: none)
	lastCR       bool
	payloadWant  int
	payload      []byte
	payloadDone  func([]byte) // what to do with the payload once complete
	injectPrompt []byte       // test hook: +IPD between OK and >

	// Multi-link, receive and network state (esp-at-dialects.md §1-§3).
	mux      bool
	passive  bool
	links    [maxLinks]*link // single mode uses slot 0
	net      netState
	ssl      [maxLinks + 1]sslConf // per link id; index maxLinks is "all"
	mqtt     *mqttSession
	mqttCfg  mqttConfig
	cur      *pendingCmd // the command being answered
	unsolMsg int         // >0: emits are URCs, not part of cur's answer

	linkSeq  int
	nextPort int
	totals   Counters

	events []Event
	seq    uint64
}

// New returns a module; nothing runs until Serve.
func New(cfg Config) *Module {
	if cfg.Dial == nil {
		cfg.Dial = func(ctx context.Context, host string, port int) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, fmt.Sprint(port)))
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) {
				return nil, fmt.Errorf("%w: %v", ErrNoSuchHost, err)
			}
			return c, err
		}
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.ReadyDelay <= 0 {
		cfg.ReadyDelay = 300 * time.Millisecond
	}
	if cfg.ReconnectDelay <= 0 {
		cfg.ReconnectDelay = time.Second
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Epoch.IsZero() {
		cfg.Epoch = cfg.Now()
	}
	if cfg.NameIP == "" {
		cfg.NameIP = "192.0.2.1"
	}
	if cfg.Dialect == "" {
		cfg.Dialect = DialectV2
	}
	if cfg.DialUDP == nil {
		cfg.DialUDP = func(ctx context.Context, host string, port int) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", net.JoinHostPort(host, fmt.Sprint(port)))
		}
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&cfg.StationIP, "192.0.2.100")
	def(&cfg.Gateway, "192.0.2.254")
	def(&cfg.Netmask, "255.255.255.0")
	def(&cfg.MAC, "24:0a:c4:00:00:01")
	def(&cfg.DNSServer, cfg.Gateway)
	if len(cfg.AccessPoints) == 0 {
		ssid := cfg.SSID
		if ssid == "" {
			ssid = "ddhil-lab"
		}
		cfg.AccessPoints = []AccessPoint{{SSID: ssid, BSSID: "aa:bb:cc:dd:ee:ff", RSSI: -45, Channel: 6, Ecn: 3}}
	}
	if cfg.MQTTTimeout <= 0 {
		cfg.MQTTTimeout = 15 * time.Second
	}
	m := &Module{cfg: cfg, nextPort: firstLocalPort}
	m.timer = func(_ string, d time.Duration) <-chan time.Time {
		if d <= 0 {
			c := make(chan time.Time, 1)
			c <- time.Time{}
			return c
		}
		return time.After(d)
	}
	m.resetState()
	return m
}

// firstLocalPort starts the synthesized ephemeral ports (esp-at.md §3.11's
// example), used when a link's connection has no TCP port of its own.
const firstLocalPort = 50152

// resetState applies the state after boot/AT+RST (esp-at.md §5).
func (m *Module) resetState() {
	m.echo = true
	m.cwmode = 1
	m.cipdinfo = false
	m.sysstore = 1
	m.uartRate = 115200
	m.wifiUp = false
	m.joinTried = false
	m.linkClosed = false
	m.sntpOn = false
	m.synced = false
	m.tzMinutes = 0
	m.running = false
	m.lineBuf, m.lineLong, m.lastCR = m.lineBuf[:0], 0, false
	m.payloadWant = 0
	m.payload = nil
	m.payloadDone = nil
	m.mux = false
	m.passive = false
	m.net = m.defaultNet()
	m.ssl = [maxLinks + 1]sslConf{}
	m.mqttCfg = mqttConfig{}
}

// Serve runs the module on the transport UART until ctx ends or the stream
// fails. It boots the module first (power-up: `ready` after ReadyDelay;
// bytes sent while booting are lost, as on hardware). When ctx ends, Serve
// unblocks its reader through SetReadDeadline if rw has one; otherwise the
// owner of rw must close it.
func (m *Module) Serve(ctx context.Context, rw io.ReadWriter) error {
	m.mu.Lock()
	if m.serving {
		m.mu.Unlock()
		return ErrServing
	}
	m.serving = true
	m.stop = make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.ctx = ctx
	m.out = newOutQueue(rw)
	m.mu.Unlock()

	writerDone := make(chan error, 1)
	go func() { writerDone <- m.out.run(m.stop) }()

	m.mu.Lock()
	m.bootLocked("power-up")
	m.mu.Unlock()

	readErr := make(chan error, 1)
	go func() { readErr <- m.readLoop(rw) }()

	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
		if d, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
			_ = d.SetReadDeadline(time.Now())
			<-readErr
		}
	case err = <-readErr:
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed) {
			err = nil
		} else {
			err = fmt.Errorf("espat: transport read: %w", err)
		}
	case werr := <-writerDone:
		err = fmt.Errorf("espat: transport write: %w", werr)
		writerDone <- werr
	}

	cancel()
	m.mu.Lock()
	m.finishCmdLocked("", "interrupted: module stopped")
	m.closeAllLocked("stopped", false)
	m.mqttDropLocked("stopped", false)
	m.gen++
	m.serving = false
	close(m.stop)
	m.mu.Unlock()
	<-writerDone
	return err
}

func (m *Module) readLoop(r io.Reader) error {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m.input(buf[:n])
		}
		if err != nil {
			return err
		}
	}
}

// input runs the host→module byte machine for one chunk: payload bytes for a
// pending CIPSEND, else command lines ended by CR LF (§1.1), echoed as they
// arrive when echo is on (§1.2).
func (m *Module) input(b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.serving {
		return
	}
	var echo []byte
	flushEcho := func() {
		if len(echo) > 0 {
			m.out.push(echo) // echo is never part of an answer
			echo = nil
		}
	}
	for i := 0; i < len(b); {
		if m.booting {
			m.recordLocked(Event{Kind: EventDiscard, Bytes: len(b) - i, Reason: "booting"})
			break
		}
		if m.payloadWant > 0 {
			take := m.payloadWant - len(m.payload)
			if take > len(b)-i {
				take = len(b) - i
			}
			m.payload = append(m.payload, b[i:i+take]...)
			i += take
			if len(m.payload) == m.payloadWant {
				flushEcho()
				data, done := m.payload, m.payloadDone
				m.payload, m.payloadWant, m.payloadDone = nil, 0, nil
				done(data)
				m.settleLocked()
			}
			continue
		}
		c := b[i]
		i++
		if m.echo {
			echo = append(echo, c)
		}
		if c == '\n' && m.lastCR {
			line := string(m.lineBuf)
			long := m.lineLong
			m.lineBuf, m.lineLong, m.lastCR = m.lineBuf[:0], 0, false
			flushEcho()
			if long > 0 {
				m.recordLocked(Event{Kind: EventDiscard, Bytes: long + 1, Reason: "line too long"}) // + LF
				continue
			}
			m.lineLocked(strings.TrimSuffix(line, "\r"))
			continue
		}
		m.lastCR = c == '\r'
		switch {
		case m.lineLong > 0:
			m.lineLong++
		case len(m.lineBuf) >= maxLine:
			m.lineLong = len(m.lineBuf) + 1 // keep counting, stop storing
		default:
			m.lineBuf = append(m.lineBuf, c)
		}
	}
	flushEcho()
}

// maxLine is the longest command line a module accepts (§1.2).
const maxLine = 256

func (m *Module) lineLocked(line string) {
	if len(line)+2 > maxLine {
		m.recordLocked(Event{Kind: EventDiscard, Bytes: len(line) + 2, Reason: "line too long"})
		return
	}
	if m.running {
		m.out.push([]byte(busyP))
		running := ""
		if m.cur != nil {
			running = " (" + m.cur.line + " still running)"
		}
		m.recordLocked(Event{Kind: EventCommand, Text: line, Answer: busyP, Result: "busy p...",
			Reason: "busy: a command was running" + running})
		return
	}
	m.cur = &pendingCmd{line: line, at: m.cfg.Now()}
	m.dispatchLocked(line)
	m.settleLocked()
}

// settleLocked records the running command once nothing of it is pending
// (no slow work, no payload awaited).
func (m *Module) settleLocked() {
	if !m.running && m.payloadWant == 0 {
		m.finishCmdLocked("", "")
	}
}

// emit queues one message; it is written in one piece (§5). Called with
// m.mu held so that queue order equals state order. Outside unsolicited
// paths the bytes are part of the running command's answer.
func (m *Module) emit(b []byte) <-chan error {
	if m.cur != nil && m.unsolMsg == 0 {
		m.cur.answer = append(m.cur.answer, b...)
	}
	return m.out.push(b)
}

// urc queues an unsolicited message: never part of a command's answer.
func (m *Module) urc(b []byte) <-chan error { return m.out.push(b) }

// unsolicited runs f with every emit treated as a URC (peer data and
// closes, hooks, timers).
func (m *Module) unsolicited(f func()) {
	m.unsolMsg++
	defer func() { m.unsolMsg-- }()
	f()
}

// asyncLocked runs slow work outside the lock while the module is busy
// (lines arriving meanwhile get busy p...). The func work returns is called
// with the lock held: live is false when the module rebooted or stopped
// meanwhile, and then it must only release what work acquired.
func (m *Module) asyncLocked(work func(ctx context.Context) func(live bool)) {
	m.running = true
	gen := m.gen
	ctx := m.ctx
	if m.inflight == 0 {
		m.idle = make(chan struct{})
	}
	m.inflight++
	go func() {
		finish := work(ctx)
		m.mu.Lock()
		defer m.mu.Unlock()
		defer func() {
			if m.inflight--; m.inflight == 0 {
				close(m.idle)
			}
		}()
		live := m.gen == gen && m.serving
		if live {
			m.running = false
		}
		if finish != nil {
			finish(live)
		}
		if live {
			m.settleLocked()
		}
	}()
}

// after calls f with the lock held once d has passed, unless the module
// rebooted or stopped meanwhile.
func (m *Module) afterLocked(what string, d time.Duration, f func()) {
	gen := m.gen
	ch := m.timer(what, d)
	stop := m.stop
	go func() {
		select {
		case <-ch:
		case <-stop:
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.gen != gen || !m.serving {
			return
		}
		m.unsolicited(f)
	}()
}

// bootLocked reboots: links vanish without CLOSED (§3.3 allows either),
// state resets, input is ignored until `ready`.
func (m *Module) bootLocked(reason string) {
	if m.cur != nil && m.cur.line != "AT+RST" && !strings.HasPrefix(m.cur.line, "AT+RESTORE") {
		m.finishCmdLocked("", "interrupted: module rebooted ("+reason+")")
	} else {
		m.finishCmdLocked("", "")
	}
	m.closeAllLocked("reboot", false)
	m.mqttDropLocked("reboot", false)
	if m.wifiUp {
		m.recordLocked(Event{Kind: EventWiFiDown, Reason: reason})
	}
	m.gen++
	m.resetState()
	m.booting = true
	m.bootAt = m.cfg.Now()
	m.afterLocked("ready", m.cfg.ReadyDelay, func() {
		m.booting = false
		m.urc([]byte(readyURC))
		m.recordLocked(Event{Kind: EventBoot, Reason: reason})
	})
}

// outQueue serialises writes to the host without ever blocking the module:
// each push is one Write.
type outQueue struct {
	w     io.Writer
	mu    sync.Mutex
	queue []outMsg
	kick  chan struct{}
	err   error
}

type outMsg struct {
	b    []byte
	done chan error
}

func newOutQueue(w io.Writer) *outQueue {
	return &outQueue{w: w, kick: make(chan struct{}, 1)}
}

func (q *outQueue) push(b []byte) <-chan error {
	done := make(chan error, 1)
	q.mu.Lock()
	if q.err != nil {
		done <- q.err
		q.mu.Unlock()
		return done
	}
	q.queue = append(q.queue, outMsg{b: b, done: done})
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	return done
}

func (q *outQueue) run(stop <-chan struct{}) error {
	fail := func(err error) error {
		q.mu.Lock()
		q.err = err
		pending := q.queue
		q.queue = nil
		q.mu.Unlock()
		for _, p := range pending {
			p.done <- err
		}
		return err
	}
	for {
		q.mu.Lock()
		batch := q.queue
		q.queue = nil
		q.mu.Unlock()
		for i, msg := range batch {
			_, err := q.w.Write(msg.b)
			msg.done <- err
			if err != nil {
				for _, p := range batch[i+1:] {
					p.done <- err
				}
				return fail(err)
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-q.kick:
		case <-stop:
			return fail(errors.New("espat: module stopped"))
		}
	}
}
