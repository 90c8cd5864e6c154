// Package session ties one run together: the broker that plays AWS IoT, a
// started target, the emulated Wi-Fi module on the target's transport UART
// (dialling into the broker), the console provisioned from a device profile,
// and the recordings of all of them on one clock. It is what the end-to-end
// suites and `ddhil run` drive; the checks read its Capture.
package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/certs"
	"github.com/ddhil/ddhil/broker/defender"
	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/hostload"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/link/console"
	"github.com/ddhil/ddhil/harness/link/espat"
	"github.com/ddhil/ddhil/harness/target"
)

// Addresses of the in-memory network between the emulated module and the
// broker (RFC 5737 TEST-NET-1: never routed, so never confused with a real
// host).
const (
	DefaultEndpoint = "192.0.2.1"   // the broker as the device sees it
	DeviceIP        = "192.0.2.100" // the module's station address
)

// Config describes a session. Target and Profile are required.
type Config struct {
	// Target is the firmware's runtime, not yet started; the session starts
	// and closes it.
	Target target.Target
	// Broker is an already started broker to use (the caller closes it);
	// nil makes the session build one from BrokerConfig and own it.
	Broker       *broker.Broker
	BrokerConfig broker.Config
	// Profile drives the console; Vars fill its placeholders. "thing" is
	// required; "endpoint" defaults to Endpoint.
	Profile *profile.Profile
	Vars    profile.Vars
	// Endpoint is the host name or IP the module resolves to the in-memory
	// broker (default DefaultEndpoint); other hosts are dialled over real
	// TCP. A name resolves (AT+CIPDOMAIN, the module's DNS) to
	// DefaultEndpoint unless Module.Hosts maps it, and a link to that
	// address reaches the broker too. Devices report remote_addr as
	// ip:port, so a firmware that dials the name must resolve it itself.
	Endpoint string
	// Module tunes the emulated module; SSID, Password, Dial and Epoch are
	// set by the session (from the vars "ssid" and "password").
	Module espat.Config
	// SkipProvision leaves the firmware as it boots.
	SkipProvision bool
	// Faults are firmware faults (profile fault step) switched on during
	// the first provisioning, before its reset, so they shape the device
	// from the boot the run observes; with SkipProvision, right after boot.
	Faults []string
	// OutDir, when set, receives console.log (raw bytes, written live),
	// and at Close events.jsonl (broker), link.jsonl (module) and
	// actions.jsonl.
	OutDir string
	// Logf, when set, gets progress lines.
	Logf func(format string, args ...any)
}

// Session is one running capture.
type Session struct {
	cfg     Config
	epoch   time.Time
	broker  *broker.Broker
	ownsB   bool
	target  target.Target
	con     *console.Console
	module  *espat.Module
	prof    *profile.Profile
	vars    profile.Vars
	host    string
	port    int
	conLog  *os.File
	cancel  context.CancelFunc // ends the module
	modDone chan error
	clock   *clockSampler     // nil: the target has no clock (a board)
	load    *hostload.Monitor // emulator run-queue delay, harness lateness
	lines   []console.Line    // every console line, for console.jsonl
	linesMu sync.Mutex

	mu        sync.Mutex
	published []Published
	actions   []timedAction
	nextPort  int
	mark      uint64
	closed    bool
	closeErr  error

	// brokerIP is the endpoint's address on the emulated network when the
	// endpoint is a name: what the module's DNS answers for it, so a
	// firmware that resolves first and then dials the address (TinyGo's
	// espat, Zephyr with DNS offload) reaches the broker too. Set in Start.
	brokerIP string
}

type timedAction struct {
	at time.Time
	a  conformance.Action
}

// Start builds the session: broker, target, module, console, then waits for
// the boot marker and provisions. On error everything started is torn down
// and the error says whether the lab (harness.ErrLab) or the firmware
// (harness.ErrFirmwareCrash, or a failed step) is to blame.
func Start(ctx context.Context, cfg Config) (s *Session, err error) {
	if cfg.Target == nil || cfg.Profile == nil {
		return nil, errors.New("session: Target and Profile are required")
	}
	if err := configureForTarget(&cfg); err != nil {
		_ = cfg.Target.Close()
		return nil, harness.LabError(err)
	}
	s = &Session{cfg: cfg, target: cfg.Target, prof: cfg.Profile, nextPort: 50152, modDone: make(chan error, 1)}
	s.host = cfg.Endpoint
	if s.host == "" {
		s.host = DefaultEndpoint
	}
	vars := profile.Vars{"endpoint": s.host}
	for k, v := range cfg.Vars {
		vars[k] = v
	}
	s.vars = cfg.Profile.Resolve(vars)
	if s.vars["thing"] == "" {
		return nil, errors.New(`session: Vars["thing"] is required`)
	}
	s.port = 1883
	if p := s.vars["port"]; p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("session: port %q is not a TCP port", p)
		}
		s.port = n
	}
	var runCtx context.Context
	runCtx, s.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			_ = s.Close()
			s = nil
		}
	}()

	if cfg.OutDir != "" {
		if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
			return s, harness.LabError(fmt.Errorf("session: out dir: %w", err))
		}
		if s.conLog, err = os.Create(filepath.Join(cfg.OutDir, "console.log")); err != nil {
			return s, harness.LabError(fmt.Errorf("session: %w", err))
		}
	}

	if cfg.Profile.Module.TLS && cfg.Module.TLS == nil && cfg.Broker == nil {
		if err := s.moduleTLS(&cfg); err != nil {
			return s, harness.LabError(err)
		}
	}
	s.epoch = time.Now()
	if cfg.Broker != nil {
		s.broker = cfg.Broker
	} else {
		b, err := broker.New(cfg.BrokerConfig)
		if err != nil {
			return s, fmt.Errorf("session: %w", err)
		}
		s.broker, s.ownsB = b, true
		// Closed explicitly by Close, after the device's connections ended.
		if err := b.Start(context.Background()); err != nil {
			return s, harness.LabError(fmt.Errorf("session: %w", err))
		}
	}

	s.logf("starting %s target", cfg.Target.Info().Kind)
	if err := s.target.Start(ctx); err != nil {
		return s, fmt.Errorf("session: start target: %w", err)
	}
	pid := 0
	if p, ok := s.target.(target.Pider); ok {
		pid = p.Pid()
	}
	s.load = hostload.Start(s.epoch, pid)
	if clk, ok := target.ClockOf(s.target); ok {
		s.clock = startClock(clk, s.epoch)
	}
	ccfg := cfg.Profile.ConsoleConfig()
	ccfg.Epoch = s.epoch
	if s.conLog != nil {
		ccfg.RawLog = s.conLog
	}
	s.con = console.New(s.target.Console(), s.target.Console(), ccfg)
	go s.collectLines(s.con.Subscribe(regexp.MustCompile(``)))
	if re := cfg.Profile.Marker("report_published"); re != nil {
		go s.collectPublished(s.con.Subscribe(re), re)
	}

	if tr := s.target.Transport(); tr != nil {
		mc := cfg.Module
		if net.ParseIP(s.host) == nil {
			hosts := map[string]string{s.host: DefaultEndpoint}
			for k, v := range mc.Hosts {
				hosts[k] = v
			}
			mc.Hosts = hosts
			s.brokerIP = DefaultEndpoint
			for k, v := range hosts {
				if strings.EqualFold(strings.TrimSuffix(k, "."), s.host) {
					s.brokerIP = v
				}
			}
		}
		mc.SSID, mc.Password = s.vars["ssid"], s.vars["password"]
		mc.Dial = s.dial
		if mc.DialUDP == nil {
			mc.DialUDP = refuseUDP // sealed: only the module's own DNS answers
		}
		if mc.Dialect == "" {
			mc.Dialect = espat.Dialect(cfg.Profile.Module.Dialect)
		}
		if mc.Disabled == nil {
			mc.Disabled = cfg.Profile.Module.Disabled
		}
		mc.Epoch = s.epoch
		s.module = espat.New(mc)
		act := newActivity(tr)
		go func() { s.modDone <- s.module.Serve(runCtx, act) }()
		if st, ok := s.target.(target.Stepper); ok && st.Steps() {
			// Virtual time advances only while the module has nothing
			// left to say (docs/timing.md).
			go func() {
				err := st.Step(runCtx, func(ctx context.Context) error { return act.quiet(ctx, StepQuiet) })
				if err != nil && runCtx.Err() == nil {
					s.logf("stepping stopped: %v", err)
				}
			}()
		}
	}

	line, err := s.waitBoot(ctx)
	if err != nil {
		return s, err
	}
	s.logf("booted: %s", line.Text)
	if !cfg.SkipProvision {
		if err := s.provision(ctx, s.vars, cfg.Faults); err != nil {
			return s, err
		}
	} else if err := s.setFaults(ctx, cfg.Faults); err != nil {
		return s, err
	}
	s.Mark()
	return s, nil
}

func (s *Session) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// dial is the module's network: the endpoint goes to the broker in memory
// (net.Pipe, served as listener "mem" under the device's address), any
// other host over real TCP.
func (s *Session) dial(ctx context.Context, host string, port int) (net.Conn, error) {
	toBroker := host == s.host || (s.brokerIP != "" && host == s.brokerIP)
	if toBroker && port == s.tlsPort() {
		return s.dialTLSListener(ctx, host, port)
	}
	if !toBroker {
		// The emulated network reaches the broker and this machine's
		// loopback, nothing else: a firmware dialling the internet must
		// not make the harness do so.
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("session: network unreachable: the emulated network reaches the broker (%s) and loopback addresses only, not %s", s.host, host)
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return nil, fmt.Errorf("%w: %v", espat.ErrNoSuchHost, err)
		}
		return c, err
	}
	if port != s.port {
		return nil, fmt.Errorf("session: connection refused: the broker listens on %s:%d, not %d", s.host, s.port, port)
	}
	s.mu.Lock()
	lp := s.nextPort
	s.nextPort++
	if s.nextPort > 65535 {
		s.nextPort = 49152
	}
	s.mu.Unlock()
	local := &net.TCPAddr{IP: net.ParseIP(DeviceIP), Port: lp}
	var remote net.Addr = pipeAddr(net.JoinHostPort(host, strconv.Itoa(port)))
	if ip := net.ParseIP(host); ip != nil {
		remote = &net.TCPAddr{IP: ip, Port: port}
	}
	client, server := net.Pipe()
	if err := s.broker.ServeConn(server, local.String()); err != nil {
		client.Close()
		return nil, err
	}
	return &addrConn{Conn: client, local: local, remote: remote}, nil
}

// tlsPort is the port on which the device reaches the broker's mutual-TLS
// listener through the module (an SSL link: DD-X01 on the module path):
// the "tls_port" variable, else 8883, when the broker listens for TLS.
func (s *Session) tlsPort() int {
	if s.broker == nil || s.broker.Addr("tls") == "" {
		return -1
	}
	if p, err := strconv.Atoi(s.vars["tls_port"]); err == nil {
		return p
	}
	return 8883
}

// dialTLSListener connects a module link to the broker's TLS listener over
// loopback TCP, keeping the addresses the device believes in.
func (s *Session) dialTLSListener(ctx context.Context, host string, port int) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.broker.Addr("tls"))
	if err != nil {
		return nil, harness.LabError(fmt.Errorf("session: the broker's TLS listener: %w", err))
	}
	remote := net.Addr(pipeAddr(net.JoinHostPort(host, strconv.Itoa(port))))
	if ip := net.ParseIP(host); ip != nil {
		remote = &net.TCPAddr{IP: ip, Port: port}
	}
	return &addrConn{Conn: c, local: c.LocalAddr(), remote: remote}, nil
}

// moduleTLS makes a lab CA for the run (in OutDir/pki, else a temporary
// folder), gives the broker a mutual-TLS listener on loopback and the
// module the thing's certificate, so SSL links are judged like a network
// device's connection (DD-X01).
func (s *Session) moduleTLS(cfg *Config) error {
	dir := filepath.Join(cfg.OutDir, "pki")
	if cfg.OutDir == "" {
		d, err := os.MkdirTemp("", "ddhil-pki-")
		if err != nil {
			return fmt.Errorf("session: module TLS: %w", err)
		}
		dir = d
	}
	thing := s.vars["thing"]
	if err := certs.InitCA(dir, []string{s.host}); err != nil {
		return fmt.Errorf("session: module TLS: %w", err)
	}
	if _, _, err := certs.IssueDevice(dir, thing, nil); err != nil {
		return fmt.Errorf("session: module TLS: %w", err)
	}
	server, err := certs.ServerTLSConfig(dir)
	if err != nil {
		return fmt.Errorf("session: module TLS: %w", err)
	}
	client, err := certs.ClientTLSConfig(dir, thing, s.host)
	if err != nil {
		return fmt.Errorf("session: module TLS: %w", err)
	}
	cfg.BrokerConfig.TLS, cfg.BrokerConfig.MQTTSAddr = server, "127.0.0.1:0"
	cfg.Module.TLS = client
	return nil
}

// refuseUDP keeps a firmware's UDP traffic (other than DNS, which the
// module answers itself) inside the harness.
func refuseUDP(_ context.Context, host string, port int) (net.Conn, error) {
	return nil, fmt.Errorf("session: network unreachable: UDP to %s:%d leaves the emulated network", host, port)
}

type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *addrConn) LocalAddr() net.Addr  { return c.local }
func (c *addrConn) RemoteAddr() net.Addr { return c.remote }

type pipeAddr string

func (a pipeAddr) Network() string { return "mem" }
func (a pipeAddr) String() string  { return string(a) }

// targetErr returns the target's death as the error when it died, else err.
//
// A console that closes is how a dying target first shows: QEMU's exit
// status (a Lockup is the firmware's crash, anything else the lab's) comes
// a moment later, so wait briefly for it. A target that cannot report its
// death (Renode, a board) losing its console is a lab failure: the
// emulator died or the port vanished.
func (s *Session) targetErr(err error) error {
	consoleClosed := err != nil && errors.Is(err, console.ErrClosed)
	if err != nil && s.con != nil {
		select {
		case <-s.con.Done(): // a wait cancelled by withTarget when the console closed
			consoleClosed = true
		default:
		}
	}
	if x, ok := s.target.(target.Exiter); ok {
		if consoleClosed {
			select {
			case <-x.Done():
			case <-time.After(2 * time.Second):
			}
		}
		select {
		case <-x.Done():
			if xe := x.Err(); xe != nil {
				return fmt.Errorf("session: target ended: %w (while: %v)", xe, err)
			}
		default:
		}
		return err
	}
	if consoleClosed && !errors.Is(err, harness.ErrLab) {
		return harness.LabError(fmt.Errorf("session: the target's console closed (emulator gone or port vanished): %w", err))
	}
	return err
}

// withTarget returns a context that also ends when the target dies.
func (s *Session) withTarget(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	var conDone <-chan struct{}
	if s.con != nil {
		conDone = s.con.Done()
	}
	if x, ok := s.target.(target.Exiter); ok {
		go func() {
			select {
			case <-x.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
	} else if conDone != nil {
		go func() {
			select {
			case <-conDone:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	return ctx, cancel
}

func (s *Session) waitBoot(ctx context.Context) (console.Line, error) {
	wctx, cancel := s.withTarget(ctx)
	defer cancel()
	l, err := s.prof.WaitBoot(wctx, s.con)
	if err != nil {
		return l, s.targetErr(fmt.Errorf("session: %w", err))
	}
	return l, nil
}

func (s *Session) provision(ctx context.Context, vars profile.Vars, faults []string) error {
	wctx, cancel := s.withTarget(ctx)
	defer cancel()
	if err := s.prof.Configure(wctx, s.con, vars); err != nil {
		return s.targetErr(fmt.Errorf("session: %w", err))
	}
	if err := s.setFaults(wctx, faults); err != nil {
		return err
	}
	if s.prof.ResetStep != nil {
		// The profile's reset applies the configuration: it is a reboot.
		s.action(conformance.ActionReset, "console reset after provisioning")
		if err := s.prof.ConsoleReset(wctx, s.con, vars); err != nil {
			return s.targetErr(fmt.Errorf("session: %w", err))
		}
	}
	s.logf("provisioned %s (format=%s keys=%s period_ms=%s)", vars["thing"], vars["format"], vars["keys"], vars["period_ms"])
	return nil
}

func (s *Session) setFaults(ctx context.Context, faults []string) error {
	for _, f := range faults {
		if err := s.SetFault(ctx, f, true); err != nil {
			return err
		}
	}
	return nil
}

// Provision re-provisions with vars merged over the session's current ones
// (e.g. another format), including the profile's reset.
func (s *Session) Provision(ctx context.Context, vars profile.Vars) error {
	s.mu.Lock()
	merged := profile.Vars{}
	for k, v := range s.vars {
		merged[k] = v
	}
	for k, v := range vars {
		merged[k] = v
	}
	s.mu.Unlock()
	if err := s.provision(ctx, merged, nil); err != nil {
		return err
	}
	s.mu.Lock()
	s.vars = merged
	s.mu.Unlock()
	return nil
}

// Reset is a hardware reset through the target; it returns once the boot
// marker and the prompt have been seen.
func (s *Session) Reset(ctx context.Context) error {
	s.con.Skip(s.con.Mark())
	s.action(conformance.ActionReset, "target reset")
	// Drop the line the firmware may be half-way through before the reset,
	// and whatever of it is still in flight after.
	s.con.Restart()
	if err := s.target.Reset(ctx); err != nil {
		return fmt.Errorf("session: reset: %w", err)
	}
	_, err := s.waitBoot(ctx)
	return err
}

// SetFault switches a firmware fault with the profile's fault command.
func (s *Session) SetFault(ctx context.Context, name string, on bool) error {
	wctx, cancel := s.withTarget(ctx)
	defer cancel()
	if err := s.prof.SetFault(wctx, s.con, name, on); err != nil {
		return s.targetErr(fmt.Errorf("session: %w", err))
	}
	state := "off"
	if on {
		state = "on"
	}
	s.action(conformance.ActionFault, name+" "+state)
	return nil
}

// Action records something the harness did, for the checks.
func (s *Session) Action(kind, detail string) { s.action(kind, detail) }

func (s *Session) action(kind, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actions = append(s.actions, timedAction{at: time.Now(), a: conformance.Action{Kind: kind, Detail: detail}})
}

// Mark remembers the broker log's current end; WaitReports counts from it.
func (s *Session) Mark() uint64 {
	seq := s.broker.Recorder().Last()
	s.mu.Lock()
	s.mark = seq
	s.mu.Unlock()
	return seq
}

// WaitReports waits until n Defender reports of the session's thing have
// reached the broker since the last Mark (Start sets one after
// provisioning) and returns them. It fails early, with the target's error,
// when the target dies.
func (s *Session) WaitReports(ctx context.Context, n int) ([]broker.Event, error) {
	s.mu.Lock()
	after, thing := s.mark, s.vars["thing"]
	s.mu.Unlock()
	return s.WaitReportsAfter(ctx, after, n, thing)
}

// WaitReportsAfter waits for n reports of thing ("" = any) with Seq > after.
func (s *Session) WaitReportsAfter(ctx context.Context, after uint64, n int, thing string) ([]broker.Event, error) {
	wctx, cancel := s.withTarget(ctx)
	defer cancel()
	var got []broker.Event
	_, err := s.broker.Recorder().WaitForAfter(wctx, after, func(ev broker.Event) bool {
		if ev.Kind == broker.EventReport && (thing == "" || ev.Thing == thing) {
			got = append(got, ev)
		}
		return len(got) >= n
	})
	if err != nil {
		return got, s.targetErr(fmt.Errorf("session: %d of %d reports; console tail:\n%s: %w", len(got), n, s.con.Tail(10), err))
	}
	return got, nil
}

// Published is one "report published" log line of the firmware: what the
// device says it sent. At is on the session's epoch (see Capture for the
// broker clock).
type Published struct {
	At     time.Duration `json:"at"`
	ID     uint64        `json:"id"`
	Format string        `json:"format,omitempty"`
	Keys   string        `json:"keys,omitempty"`
	Bytes  int           `json:"bytes,omitempty"`
	Line   string        `json:"line"`
	// Stamp is the firmware's own time of the line (the marker's optional
	// (?P<ms>...) group, in ms): the report's time at its source, which no
	// host delay between the target and the harness can move.
	Stamp *time.Duration `json:"stamp_ns,omitempty"`
}

func (s *Session) collectPublished(sub *console.Subscription, re *regexp.Regexp) {
	group := func(m []string, name string) string {
		if i := re.SubexpIndex(name); i >= 0 && i < len(m) {
			return m[i]
		}
		return ""
	}
	for l := range sub.C {
		m := re.FindStringSubmatch(l.Text)
		if m == nil {
			continue
		}
		id, err := strconv.ParseUint(group(m, "id"), 10, 64)
		if err != nil {
			continue
		}
		n, _ := strconv.Atoi(group(m, "bytes"))
		p := Published{At: l.Mono, ID: id, Format: group(m, "format"), Keys: group(m, "keys"), Bytes: n, Line: l.Text}
		if ms, err := strconv.ParseUint(group(m, "ms"), 10, 63); err == nil {
			st := time.Duration(ms) * time.Millisecond
			p.Stamp = &st
		}
		s.mu.Lock()
		s.published = append(s.published, p)
		s.mu.Unlock()
	}
}

// Published returns the reports the firmware logged as published, in order.
func (s *Session) Published() []Published {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Published(nil), s.published...)
}

// Console is the firmware's console.
func (s *Session) Console() *console.Console { return s.con }

// Module is the emulated Wi-Fi module (nil on targets without a transport).
func (s *Session) Module() *espat.Module { return s.module }

// Broker is the broker the device talks to.
func (s *Session) Broker() *broker.Broker { return s.broker }

// Target is the running target.
func (s *Session) Target() target.Target { return s.target }

// Vars are the variables currently provisioned.
func (s *Session) Vars() profile.Vars {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := profile.Vars{}
	for k, v := range s.vars {
		out[k] = v
	}
	return out
}

// brokerShift converts session-epoch offsets to the broker's monotonic
// clock. Broker events keep time.Now's monotonic reading in memory, so
// Time - Mono is the recorder's exact start.
func (s *Session) brokerShift(events []broker.Event) time.Duration {
	for _, ev := range events {
		if !ev.Time.IsZero() {
			start := ev.Time.Add(-ev.Mono)
			return s.epoch.Sub(start)
		}
	}
	return 0
}

// settleTimeout bounds the wait for sends under way when a capture is
// taken; a write outlasting it (the module's send timeout is shorter) is a
// lab problem.
const settleTimeout = 30 * time.Second

// Capture assembles what the checks judge, on the broker's clock.
func (s *Session) Capture() (*conformance.Capture, error) {
	events := s.broker.Events()
	shift := s.brokerShift(events)
	s.mu.Lock()
	vars := profile.Vars{}
	for k, v := range s.vars {
		vars[k] = v
	}
	actions := append([]timedAction(nil), s.actions...)
	s.mu.Unlock()

	exp, err := s.prof.Expectations(vars)
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	format, _ := s.prof.Value(s.prof.Expect.Format, vars)
	c := &conformance.Capture{Thing: vars["thing"], Format: defender.Format(format), Expect: exp, Events: events,
		End: time.Since(s.epoch) + shift}
	if s.clock != nil {
		c.TargetClock = s.clock.TargetClock(shift)
		for _, p := range s.Published() {
			if p.Stamp != nil {
				if c.ReportStamps == nil {
					c.ReportStamps = map[uint64]time.Duration{}
				}
				c.ReportStamps[p.ID] = *p.Stamp
			}
		}
	}
	if s.load != nil {
		for _, st := range s.load.Samples() {
			c.Stalls = append(c.Stalls, conformance.Stall{At: st.At + shift, Emulator: st.Emulator, Harness: st.Harness})
		}
	}
	if s.module != nil {
		// The broker's events were read first: every report in them left
		// the module, whose send may not be recorded yet.
		sctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
		err := s.module.Settle(sctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("session: the emulated module's log is incomplete: %w", err)
		}
		mevs := s.module.Events()
		c.Link = LinkEvents(mevs, shift)
		for _, e := range mevs {
			if e.Kind == espat.EventCommand {
				c.Commands = append(c.Commands, conformance.ATCommand{At: e.Mono + shift, Command: e.Text, Result: e.Result, Answer: e.Answer, Reason: e.Reason})
			}
		}
		if len(c.Reports()) == 0 {
			c.Stopped = espat.Diagnose(mevs)
		}
	}
	for _, a := range actions {
		act := a.a
		act.At = a.at.Sub(s.epoch) + shift
		c.Actions = append(c.Actions, act)
	}
	return c, nil
}

// LinkEvents converts module events to the checks' link events, shifted
// onto another clock and sorted by time.
func LinkEvents(evs []espat.Event, shift time.Duration) []conformance.LinkEvent {
	var out []conformance.LinkEvent
	for _, e := range evs {
		le := conformance.LinkEvent{At: e.Mono + shift, Link: e.Link, Bytes: e.Bytes, LocalPort: e.LocalPort, Proto: e.Proto}
		if e.Host != "" {
			le.Remote = net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
			if e.Remote != le.Remote {
				le.Addr = e.Remote
			}
		}
		switch e.Kind {
		case espat.EventLinkOpen:
			le.Kind = conformance.LinkOpen
		case espat.EventLinkClose:
			le.Kind = conformance.LinkClose
		case espat.EventSend:
			if !e.OK {
				continue // SEND FAIL: neither side counts it
			}
			le.Kind = conformance.LinkSend
		case espat.EventRecv:
			le.Kind = conformance.LinkRecv
		default:
			continue
		}
		out = append(out, le)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out
}

// Close stops the module, closes the target (reaping its processes), closes
// an owned broker and writes the recordings to OutDir. It returns the first
// error, the target's death included (a crash is not hidden by Close).
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return s.closeErr
	}
	s.closed = true
	s.mu.Unlock()

	var errs []error
	if s.clock != nil {
		s.clock.Stop()
	}
	if s.load != nil {
		s.load.Stop()
	}
	if x, ok := s.target.(target.Exiter); ok {
		select {
		case <-x.Done():
			if xe := x.Err(); xe != nil {
				errs = append(errs, xe)
			}
		default:
		}
	}
	// Stop the module first (its link to the broker closes), then the
	// target, and close the broker only once the device's connections have
	// ended: closing it while mochi still detaches a client can deadlock
	// (mochi v2.7.9 Clients.GetByListener takes its read lock twice).
	if s.cancel != nil {
		s.cancel()
	}
	if s.module != nil {
		select {
		case <-s.modDone:
		case <-time.After(5 * time.Second):
			errs = append(errs, errors.New("session: module did not stop"))
		}
	}
	if err := s.target.Close(); err != nil {
		errs = append(errs, fmt.Errorf("session: close target: %w", err))
	}
	if s.con != nil {
		select {
		case <-s.con.Done():
		case <-time.After(5 * time.Second):
		}
	}
	if s.broker != nil {
		s.waitConnsClosed(5 * time.Second)
	}
	if s.broker != nil && s.ownsB {
		if err := s.broker.Close(); err != nil {
			errs = append(errs, fmt.Errorf("session: close broker: %w", err))
		}
	}
	if s.conLog != nil {
		if err := s.conLog.Close(); err != nil {
			errs = append(errs, harness.LabError(fmt.Errorf("session: console.log: %w", err)))
		}
	}
	if s.cfg.OutDir != "" && s.broker != nil {
		if err := s.writeOut(); err != nil {
			errs = append(errs, harness.LabError(err))
		}
	}
	s.mu.Lock()
	s.closeErr = errors.Join(errs...)
	s.mu.Unlock()
	return s.closeErr
}

// waitConnsClosed waits (bounded) until every connection the broker logged
// has its disconnect event.
func (s *Session) waitConnsClosed(limit time.Duration) {
	open := map[string]bool{}
	track := func(ev broker.Event) bool {
		switch {
		case ev.ConnID == "":
		case ev.Kind == broker.EventDisconnect:
			delete(open, ev.ConnID)
		case ev.Kind == broker.EventConnect:
			open[ev.ConnID] = true
		}
		return len(open) == 0
	}
	rec := s.broker.Recorder()
	last := rec.Last()
	for _, ev := range rec.Events() {
		track(ev)
	}
	if len(open) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	_, _ = rec.WaitForAfter(ctx, last, track)
}

func (s *Session) writeOut() error {
	events := s.broker.Events()
	write := func(name string, f func(*os.File) error) error {
		fh, err := os.Create(filepath.Join(s.cfg.OutDir, name))
		if err != nil {
			return fmt.Errorf("session: %w", err)
		}
		werr := f(fh)
		if cerr := fh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("session: write %s: %w", name, werr)
		}
		return nil
	}
	jsonl := func(items []any) func(*os.File) error {
		return func(fh *os.File) error {
			enc := json.NewEncoder(fh)
			for _, it := range items {
				if err := enc.Encode(it); err != nil {
					return err
				}
			}
			return nil
		}
	}
	c, cerr := s.Capture()
	var local, onBroker *conformance.TargetClock // session-epoch and broker-clock mappings
	if s.clock != nil {
		local = s.clock.TargetClock(0)
		if cerr == nil {
			onBroker = c.TargetClock
		}
	}
	var errs []error
	var evs []any
	for _, ev := range events {
		evs = append(evs, stamp(onBroker, ev, ev.Mono))
	}
	errs = append(errs, write("events.jsonl", jsonl(evs)))
	if s.module != nil {
		var items []any
		for _, e := range s.module.Events() {
			items = append(items, stamp(local, e, e.Mono))
		}
		errs = append(errs, write("link.jsonl", jsonl(items)))
	}
	if cerr == nil {
		var items []any
		for _, a := range c.Actions {
			items = append(items, stamp(onBroker, a, a.At))
		}
		errs = append(errs, write("actions.jsonl", jsonl(items)))
	}
	s.linesMu.Lock()
	var lines []any
	for _, l := range s.lines {
		lines = append(lines, stamp(local, l, l.Mono))
	}
	s.linesMu.Unlock()
	errs = append(errs, write("console.jsonl", jsonl(lines)))
	if local != nil {
		var items []any
		for _, smp := range local.Samples {
			items = append(items, smp)
		}
		errs = append(errs, write("clock.jsonl", jsonl(items)))
	}
	if s.load != nil {
		var items []any
		for _, st := range s.load.Samples() {
			items = append(items, st)
		}
		errs = append(errs, write("stalls.jsonl", jsonl(items)))
	}
	return errors.Join(errs...)
}

// configureForTarget lets a target that sets its session up itself (a
// board on the bench LAN, target.SessionConfigurer) change the config.
func configureForTarget(cfg *Config) error {
	sc, ok := cfg.Target.(target.SessionConfigurer)
	if !ok {
		return nil
	}
	setup := target.SessionSetup{
		ProfileName: cfg.Profile.Name, Transport: cfg.Profile.Expect.Transport, NeedsSigner: cfg.Profile.NeedsSigner(),
		Vars: cfg.Vars, Endpoint: cfg.Endpoint,
		BrokerTLSAddr: cfg.BrokerConfig.MQTTSAddr, BrokerTLS: cfg.BrokerConfig.TLS,
	}
	if err := sc.ConfigureSession(&setup); err != nil {
		return err
	}
	cfg.Vars, cfg.Endpoint = setup.Vars, setup.Endpoint
	if setup.ModuleReadyDelay > 0 && cfg.Module.ReadyDelay == 0 {
		cfg.Module.ReadyDelay = setup.ModuleReadyDelay
	}
	cfg.BrokerConfig.MQTTSAddr, cfg.BrokerConfig.TLS = setup.BrokerTLSAddr, setup.BrokerTLS
	if setup.Signer != nil {
		cfg.Profile = cfg.Profile.WithSigner(setup.Signer)
	}
	return nil
}
