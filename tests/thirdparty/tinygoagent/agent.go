// Package tinygoagent is test material, not product: a Device Defender
// agent written as a TinyGo firmware author would write it, on a
// third-party ESP-AT driver nobody on ddhil wrote — tinygo.org/x/drivers
// espat, used unmodified as a normal module dependency — so the suite can
// show that ddhil's emulated module serves a driver it was not built
// around. It runs in-process as the firmware of the fake target
// harness/target/targettest: on the host, compiled by the standard Go
// toolchain, not on an MCU (README.md in the parent folder).
//
// What the agent does with the driver: AT (Connected), ATE0 (Echo),
// AT+CIPCLOSE (DisconnectSocket), AT+CWMODE/AT+CWJAP
// (ConnectToAccessPoint), AT+CIPSTA? (GetClientIP), then through the
// driver's net package AT+CIPDOMAIN (ResolveTCPAddr), AT+CIPSTART (DialTCP)
// and one AT+CIPSEND per MQTT packet (Conn.Write), reading +IPD data with
// Conn.Read. MQTT 3.1.1 is encoded with paho's packets package, the codec of
// TinyGo's net/mqtt client. That client itself is not used: it starts a
// reader, a keep-alive and a router goroutine that read and write the
// driver's buffers and its own fields (lastSend, connected, shutdown)
// without synchronisation — harmless under TinyGo's cooperative scheduler
// on one core, a data race under Go's (go test -race reports it), and two
// goroutines then consume each other's replies from the one UART.
//
// The driver reads +IPD data up to the end of what the UART holds, as the
// ESP8266 NonOS AT 1.x firmware it was written for frames it: the profile
// selects the module's 1.7 dialect. (ESP-AT v2 appends CR LF after the
// data, which this driver passes into the TCP stream: the agent never gets
// past CONNECT, TestTinyGoAgentOnV2Module.)
//
// network_stats are counted from what the driver reports: bytes_out and
// packets_out are the Conn.Write calls that succeeded (one CIPSEND each,
// counted on SEND OK), packets_in the Conn.Reads that returned data, and
// bytes_in the bytes of the MQTT packets parsed from them. The driver hides
// +IPD boundaries and framing: packets_in equals the module's +IPD count
// only while at most one +IPD is pending per read (the agent's
// request/response rhythm keeps it so), and the driver hands over whatever
// follows +IPD data in the same UART read (a CLOSED\r\n), which the agent
// cannot tell from data except by parsing, so bytes that do not parse are
// not counted (nor are a packet's first bytes before the rest arrived). It
// cannot learn its local port (the driver never asks AT+CIPSTATUS), so
// tcp_connections carries remote_addr only, and it notices a dropped link
// only when its next report's CIPSEND fails (the driver swallows CLOSED).
package tinygoagent

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"tinygo.org/x/drivers/espat"
	tnet "tinygo.org/x/drivers/net"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/target/targettest"
)

// Profile is the device profile for this agent (profile.yaml).
//
//go:embed profile.yaml
var Profile []byte

// Config is what the console provisions.
type Config struct {
	Thing, Endpoint, SSID, Password string
	Port                            int
	Period                          time.Duration
	ListenTCP, ListenUDP            []int
}

// Agent is the device: its non-volatile memory survives resets (the
// committed configuration and the last report ID), everything else is
// rebuilt at every boot.
type Agent struct {
	mu        sync.Mutex
	staged    Config
	committed *Config
	lastID    uint64
}

// New returns a device with an empty memory.
func New() *Agent {
	return &Agent{staged: Config{Port: 1883, Period: time.Second}}
}

// Firmware is the program targettest runs at every boot.
func (a *Agent) Firmware(ctx context.Context, d *targettest.Device) {
	boot := time.Now()
	con := &console{d: d, boot: boot}
	con.line(fmt.Sprintf("boot: tinygoagent boot=%d", d.Boot))
	var wg sync.WaitGroup
	start := func(cfg Config) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.run(ctx, d, cfg, con)
		}()
	}
	a.mu.Lock()
	started := a.committed != nil
	if started {
		start(*a.committed)
	}
	a.mu.Unlock()
	con.prompt()
	for {
		l, err := d.ReadLine()
		if err != nil {
			break
		}
		answer, cfg := a.command(strings.TrimSpace(l))
		con.answer(answer)
		if cfg != nil && !started {
			started = true
			start(*cfg)
		}
	}
	wg.Wait()
}

// command answers one console line; a commit returns the configuration.
func (a *Agent) command(l string) (string, *Config) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := strings.Fields(l)
	switch {
	case len(f) == 0:
		return "", nil
	case f[0] == "set" && len(f) == 3:
		k, v := f[1], f[2]
		c := &a.staged
		switch k {
		case "thing":
			c.Thing = v
		case "endpoint":
			c.Endpoint = v
		case "ssid":
			c.SSID = v
		case "password":
			c.Password = v
			return "password=***", nil
		case "port", "period_ms":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return "Error: " + k + " wants a positive number", nil
			}
			if k == "port" {
				c.Port = n
			} else {
				c.Period = time.Duration(n) * time.Millisecond
			}
		default:
			return "Error: unknown setting " + k, nil
		}
		return k + "=" + v, nil
	case f[0] == "listen" && len(f) == 2 && f[1] == "clear":
		a.staged.ListenTCP, a.staged.ListenUDP = nil, nil
		return a.listening(), nil
	case f[0] == "listen" && len(f) == 3 && (f[1] == "tcp" || f[1] == "udp"):
		p, err := strconv.Atoi(f[2])
		if err != nil || p < 1 || p > 65535 {
			return "Error: listen wants a port 1-65535", nil
		}
		if f[1] == "tcp" {
			a.staged.ListenTCP = append(a.staged.ListenTCP, p)
		} else {
			a.staged.ListenUDP = append(a.staged.ListenUDP, p)
		}
		return a.listening(), nil
	case l == "commit":
		c := a.staged
		if c.Thing == "" || c.Endpoint == "" {
			return "Error: thing and endpoint are required", nil
		}
		c.ListenTCP = append([]int(nil), c.ListenTCP...)
		c.ListenUDP = append([]int(nil), c.ListenUDP...)
		first := a.committed == nil
		a.committed = &c
		if !first {
			return "committed (applies at the next boot)", nil
		}
		return "committed", &c
	}
	return "Error: unknown command", nil
}

func (a *Agent) listening() string {
	return "listen: tcp=" + joinInts(a.staged.ListenTCP) + " udp=" + joinInts(a.staged.ListenUDP)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// nextID is the report ID after the last one used, from NVM: report IDs
// keep increasing across reconnects and reboots.
func (a *Agent) nextID() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastID + 1
}

func (a *Agent) sentID(id uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastID = id
}

// console serialises the firmware's output: log lines redraw the prompt,
// as the reference agent's do.
type console struct {
	mu   sync.Mutex
	d    *targettest.Device
	boot time.Time
}

func (c *console) stamp() string {
	return fmt.Sprintf("[%08d] ", time.Since(c.boot).Milliseconds())
}

// line prints a log line before any prompt (the boot banner).
func (c *console) line(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d.Println(c.stamp() + s)
}

func (c *console) prompt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d.Print("> ")
}

// logf prints a log line over the prompt and redraws it.
func (c *console) logf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d.Print("\r\x1b[K" + c.stamp() + fmt.Sprintf(format, args...) + "\r\n> ")
}

// answer ends the echoed command line, prints the answer and a prompt.
func (c *console) answer(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := "\r\n"
	if s != "" {
		out += s + "\r\n"
	}
	c.d.Print(out + "> ")
}

// run is the network side of one boot: the driver's handshake, Wi-Fi, and
// MQTT connections with reports until the boot ends. A panic in the
// driver or the agent is the firmware's crash, as a hard fault would be.
func (a *Agent) run(ctx context.Context, d *targettest.Device, cfg Config, con *console) {
	defer func() {
		if r := recover(); r != nil {
			d.Crash(fmt.Errorf("tinygoagent: panic: %v: %w", r, harness.ErrFirmwareCrash))
		}
	}()
	u := newUART(ctx, d.Module)
	defer u.close()
	drv := espat.New(u)
	drv.Configure() // installs a copy as espat.ActiveDevice and net.ActiveDevice
	dev := espat.ActiveDevice

	if !handshake(ctx, dev) {
		con.logf("at: no answer from the module")
		return
	}
	con.logf("at: module answers")
	st := &traffic{}
	var base traffic // counters at the last report sent
	wifi := false
	for ctx.Err() == nil {
		if !wifi {
			if err := dev.ConnectToAccessPoint(cfg.SSID, cfg.Password, 10*time.Second); err != nil {
				con.logf("wifi: join failed: %v", oneLine(err))
				if !pause(ctx, time.Second) {
					return
				}
				continue
			}
			wifi = true
			ip, _ := dev.GetClientIP()
			con.logf("wifi: joined %s", stationIP(ip))
		}
		err := a.connection(ctx, dev, u, cfg, con, st, &base)
		if ctx.Err() != nil {
			return
		}
		con.logf("mqtt: disconnected reason=%s", oneLine(err))
		if !pause(ctx, 200*time.Millisecond) {
			return
		}
	}
}

// handshake waits for the module: Connected sends AT and looks once, at
// once, so its OK usually lands after it looked; Response then takes it,
// so no stale answer is left for the next command. The same for ATE0.
func handshake(ctx context.Context, dev *espat.Device) bool {
	ok := false
	for i := 0; i < 20 && !ok && ctx.Err() == nil; i++ {
		ok = dev.Connected()
		if !ok {
			_, err := dev.Response(300)
			ok = err == nil
		}
	}
	if !ok {
		return false
	}
	dev.Echo(false)
	_, _ = dev.Response(300)
	// A link the previous boot left open (a target reset does not reset
	// the module) would make AT+CIPSTART answer ALREADY CONNECTED.
	_ = dev.DisconnectSocket()
	// Data a link of the previous boot delivered while the MCU reset (the
	// driver keeps any +IPD it sees) is not this boot's traffic.
	buf := make([]byte, 512)
	for dev.IsSocketDataAvailable() {
		if n, _ := dev.ReadSocket(buf); n == 0 {
			break
		}
	}
	return true
}

// pause is the agent's retry delay (its own policy, not a synchronisation).
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// connection dials the broker, subscribes to the report responses and
// reports every period until something fails.
func (a *Agent) connection(ctx context.Context, dev *espat.Device, u *uart, cfg Config, con *console, st, base *traffic) error {
	conn, err := tnet.Dial("tcp", net.JoinHostPort(cfg.Endpoint, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	remote := conn.RemoteAddr().String()
	l := &link{conn: conn, dev: dev, uart: u, stats: st}

	cp := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion = "MQTT", 4
	cp.CleanSession = true
	cp.ClientIdentifier = cfg.Thing
	cp.Keepalive = 60
	if err := l.send(cp); err != nil {
		return err
	}
	handle := func(p packets.ControlPacket) { a.response(p, con) }
	ack, err := l.await(ctx, packets.Connack, 5*time.Second, handle)
	if err != nil {
		return err
	}
	if rc := ack.(*packets.ConnackPacket).ReturnCode; rc != 0 {
		return fmt.Errorf("CONNACK return code %d", rc)
	}
	con.logf("mqtt: connected")
	prefix := "$aws/things/" + cfg.Thing + "/defender/metrics/json"
	sp := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	sp.MessageID = l.nextID()
	sp.Topics = []string{prefix + "/accepted", prefix + "/rejected"}
	sp.Qoss = []byte{0, 0}
	if err := l.send(sp); err != nil {
		return err
	}
	if _, err := l.await(ctx, packets.Suback, 5*time.Second, handle); err != nil {
		return err
	}

	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-u.Arrived():
		case <-timer.C:
			if err := a.report(l, cfg, prefix, remote, con, st, base); err != nil {
				return err
			}
			now := time.Now()
			for !next.After(now) {
				next = next.Add(cfg.Period)
			}
			timer.Reset(time.Until(next))
		}
		ps, err := l.poll()
		for _, p := range ps {
			handle(p)
		}
		if err != nil {
			return err
		}
	}
}

// report publishes one Device Defender report (QoS 0, no retain).
func (a *Agent) report(l *link, cfg Config, prefix, remote string, con *console, st, base *traffic) error {
	// The ID is stored before the send: a reset between the broker
	// receiving the report and the driver seeing SEND OK must not make the
	// next boot reuse it (AWS would discard that report as a duplicate).
	id := a.nextID()
	a.sentID(id)
	now := *st
	body, err := json.Marshal(buildReport(id, cfg, remote, now.sub(*base)))
	if err != nil {
		return err
	}
	pp := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	pp.TopicName = prefix
	pp.Payload = body
	if err := l.send(pp); err != nil {
		return err
	}
	*base = now
	con.logf("report: published id=%d format=json keys=long bytes=%d", id, len(body))
	return nil
}

// response logs a Device Defender response.
func (a *Agent) response(p packets.ControlPacket, con *console) {
	pp, ok := p.(*packets.PublishPacket)
	if !ok {
		return
	}
	var r struct {
		ReportID      uint64 `json:"reportId"`
		Status        string `json:"status"`
		StatusDetails struct {
			ErrorCode string `json:"ErrorCode"`
		} `json:"statusDetails"`
	}
	if err := json.Unmarshal(pp.Payload, &r); err != nil {
		con.logf("report: unreadable response on %s", pp.TopicName)
		return
	}
	switch {
	case strings.HasSuffix(pp.TopicName, "/accepted"):
		con.logf("report: accepted id=%d", r.ReportID)
	case strings.HasSuffix(pp.TopicName, "/rejected"):
		con.logf("report: rejected id=%d code=%s", r.ReportID, r.StatusDetails.ErrorCode)
	}
}

// traffic is what the driver carried for this boot.
type traffic struct{ bytesOut, pktsOut, bytesIn, pktsIn uint64 }

func (t *traffic) sent(n int) { t.bytesOut += uint64(n); t.pktsOut++ }
func (t traffic) sub(o traffic) traffic {
	return traffic{t.bytesOut - o.bytesOut, t.pktsOut - o.pktsOut, t.bytesIn - o.bytesIn, t.pktsIn - o.pktsIn}
}

// The report, in the long-key JSON form of the Device Defender spec.
type (
	report struct {
		Header  header  `json:"header"`
		Metrics metrics `json:"metrics"`
	}
	header struct {
		ReportID uint64 `json:"report_id"`
		Version  string `json:"version"`
	}
	metrics struct {
		ListeningTCP ports      `json:"listening_tcp_ports"`
		ListeningUDP ports      `json:"listening_udp_ports"`
		NetworkStats netStats   `json:"network_stats"`
		TCP          tcpSection `json:"tcp_connections"`
	}
	ports struct {
		Ports []port `json:"ports"`
		Total int    `json:"total"`
	}
	port struct {
		Port int `json:"port"`
	}
	netStats struct {
		BytesIn    uint64 `json:"bytes_in"`
		BytesOut   uint64 `json:"bytes_out"`
		PacketsIn  uint64 `json:"packets_in"`
		PacketsOut uint64 `json:"packets_out"`
	}
	tcpSection struct {
		Established established `json:"established_connections"`
	}
	established struct {
		Connections []connection `json:"connections"`
		Total       int          `json:"total"`
	}
	connection struct {
		RemoteAddr string `json:"remote_addr"`
	}
)

func buildReport(id uint64, cfg Config, remote string, d traffic) report {
	r := report{Header: header{ReportID: id, Version: "1.0"}}
	r.Metrics.ListeningTCP = portList(cfg.ListenTCP)
	r.Metrics.ListeningUDP = portList(cfg.ListenUDP)
	r.Metrics.NetworkStats = netStats{BytesIn: d.bytesIn, BytesOut: d.bytesOut, PacketsIn: d.pktsIn, PacketsOut: d.pktsOut}
	r.Metrics.TCP.Established = established{Connections: []connection{{RemoteAddr: remote}}, Total: 1}
	return r
}

func portList(v []int) ports {
	s := append([]int(nil), v...)
	sort.Ints(s)
	p := ports{Ports: []port{}, Total: len(s)}
	for _, n := range s {
		p.Ports = append(p.Ports, port{Port: n})
	}
	return p
}

// stationIP picks the address out of the driver's raw AT+CIPSTA? answer.
func stationIP(raw string) string {
	for _, l := range strings.Split(raw, "\n") {
		if i := strings.Index(l, "ip:"); i >= 0 {
			return "ip=" + strings.Trim(strings.TrimSpace(l[i+3:]), `"`)
		}
	}
	return "(address not read)"
}

func oneLine(err error) string {
	if err == nil {
		return "none"
	}
	return strings.Join(strings.Fields(err.Error()), "_")
}
