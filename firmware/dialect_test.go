// Package firmware holds the reference agent's C sources; this test boots its
// QEMU builds against the real broker through a small ESP-AT module double
// that speaks every dialect the agent has (console setting at_mode): single
// link, multi link, passive receive and the module's own MQTT client. It
// proves, per dialect, that reports reach the broker and are accepted, and
// that each report's network_stats equal what the module counted by the
// firmware/README.md definition over the same interval.
//
// The harness's own emulated module (harness/link/espat) is the production
// path; this double exists so the firmware side is proven on its own.
package firmware

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/target/qemu"
	"github.com/ddhil/ddhil/harness/target/renode"
)

// dut is what the test needs of a target: qemu.QEMU and renode.Target.
type dut interface {
	Start(ctx context.Context) error
	Console() io.ReadWriter
	Transport() io.ReadWriter
	Close() error
}

// renodeBinary is $DDHIL_RENODE, else renode from PATH, else "".
func renodeBinary() string {
	if p := os.Getenv("DDHIL_RENODE"); p != "" {
		return p
	}
	p, _ := exec.LookPath("renode")
	return p
}

// nrfTarget runs the renode-nrf52840dk build through the user-script path
// with fixtures/renode/ddagent-nrf52840dk.resc (paths made absolute: Renode
// resolves them against its own working directory).
func nrfTarget(t *testing.T, bin string) dut {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	src, err := os.ReadFile(filepath.Join(root, "fixtures/renode/ddagent-nrf52840dk.resc"))
	require.NoError(t, err)
	script := strings.NewReplacer("@fixtures/", "@"+root+"/fixtures/", "@firmware/", "@"+root+"/firmware/").Replace(string(src))
	resc := filepath.Join(t.TempDir(), "dut.resc")
	require.NoError(t, os.WriteFile(resc, []byte(script), 0o644))
	r, err := renode.New(renode.Config{
		Binary:        bin,
		Firmware:      filepath.Join(root, "firmware/build/renode-nrf52840dk/ddagent.elf"),
		Resc:          resc,
		Files:         []string{filepath.Join(root, "fixtures/renode/nrf52840dk-offline.repl")},
		ConsoleUART:   "sysbus.uart0",
		TransportUART: "sysbus.uart1",
	})
	require.NoError(t, err)
	return r
}

func TestDialects(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-arm"); err != nil {
		t.Skip("qemu-system-arm not installed")
	}
	cases := []struct {
		mode, machine, elf string
		want               string // a command only this dialect sends
		faults             []string
	}{
		{"single", "netduinoplus2", "build/qemu-netduinoplus2/ddagent.elf", `AT+CIPSEND=`, nil},
		{"multi", "netduinoplus2", "build/qemu-netduinoplus2/ddagent.elf", `AT+CIPSEND=0,`, nil},
		{"passive", "netduinoplus2", "build/qemu-netduinoplus2/ddagent.elf", `AT+CIPRECVDATA=0,`, nil},
		{"mqtt", "netduinoplus2", "build/qemu-netduinoplus2/ddagent.elf", `AT+MQTTPUBRAW=0,`, nil},
		{"single", "lm3s6965evb", "build/qemu-lm3s6965evb/ddagent.elf", `AT+CIPSEND=`, nil},
		{"multi", "netduinoplus2", "build/qemu-netduinoplus2/ddagent.elf", `AT+CIPSEND=0,`, []string{"dd-extra-out", "dd-listen"}},
		{"mqtt", "netduinoplus2", "build/qemu-netduinoplus2/ddagent.elf", `AT+MQTTPUBRAW=0,`, []string{"dd-extra-out", "dd-listen"}},
		{"single", "netduinoplus2", "build/qemu-netduinoplus2/ddagent.elf", `AT+CIPSEND=`, []string{"dd-bad-topic"}},
		{"mqtt", "netduinoplus2", "build/qemu-netduinoplus2/ddagent.elf", `AT+MQTTPUBRAW=0,`, []string{"dd-bad-topic"}},
		{"passive", "renode-nrf52840dk", "build/renode-nrf52840dk/ddagent.elf", `AT+CIPRECVDATA=0,`, nil},
	}
	for _, c := range cases {
		name := c.mode + "/" + c.machine
		if len(c.faults) > 0 {
			name += "/" + strings.Join(c.faults, "+")
		}
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(c.elf); err != nil {
				t.Skipf("%s not built (make -C firmware)", c.elf)
			}
			if strings.HasPrefix(c.machine, "renode") && renodeBinary() == "" {
				t.Skip("no Renode (set DDHIL_RENODE or put renode in PATH)")
			}
			runDialect(t, c.mode, c.machine, c.elf, c.want, c.faults)
		})
	}
}

func runDialect(t *testing.T, mode, machine, elf, want string, faults []string) {
	mod := runDialectMod(t, mode, machine, elf, faults)
	checkDialect(t, mod, mode, want, faults)
}

func runDialectMod(t *testing.T, mode, machine, elf string, faults []string) *module {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	bcfg := broker.Config{Throttle: broker.NoThrottle}
	if contains(faults, "dd-bad-topic") {
		bcfg.Policy = broker.PolicyStrict // refuses the publish by closing the connection, as AWS does
	}
	b, err := broker.New(bcfg)
	require.NoError(t, err)
	require.NoError(t, b.Start(ctx))
	defer b.Close()

	var q dut
	if machine == "renode-nrf52840dk" {
		q = nrfTarget(t, renodeBinary())
	} else {
		abs, err := filepath.Abs(elf)
		require.NoError(t, err)
		cfg := qemu.Config{Machine: machine, Firmware: abs}
		if machine == "lm3s6965evb" {
			cfg.ConsoleSerial, cfg.TransportSerial = 0, 1 // UART0 console, UART1 module
		}
		q, err = qemu.New(cfg)
		require.NoError(t, err)
	}
	require.NoError(t, q.Start(ctx))
	defer q.Close()

	mod := newModule(t, q.Transport(), b)
	go mod.run()
	con := newConsole(t, q.Console())

	con.expect(ctx, `boot: ddagent \S+ profile=\S+ boot=`)
	if mode != "" {
		con.cmd(ctx, "conf set at_mode "+mode, `^at_mode="`+mode+`"$`)
	}
	con.cmd(ctx, "conf set report_period_ms 1000", `^report_period_ms=1000$`)
	con.cmd(ctx, "conf set mqtt_endpoint 10.0.2.2", `^mqtt_endpoint="10.0.2.2"$`) // remote_addr must be an IP
	con.cmd(ctx, "conf commit", `^Configuration saved`)
	for _, f := range faults {
		con.cmd(ctx, "fault "+f+" on", `^fault: `+f+` on$`)
	}
	con.cmd(ctx, "reset", `boot: ddagent `)
	for i := 0; i < 4; i++ {
		con.expect(ctx, `report: accepted id=\d+$`)
	}
	if contains(faults, "dd-bad-topic") {
		// Refused, the connection closed, and reports accepted again after the reconnect.
		con.expect(ctx, `mqtt: disconnected reason=closed$`)
		con.expect(ctx, `mqtt: subscribed$`)
		con.expect(ctx, `report: accepted id=\d+$`)
		refused := false
		for _, ev := range b.Events() {
			refused = refused || (ev.Kind == broker.EventPolicy && ev.Topic == "$aws/things/other-thing/shadow/update")
		}
		require.True(t, refused, "the broker's strict policy refused the publish outside the thing's tree")
	}

	mod.mu.Lock()
	defer mod.mu.Unlock()
	return mod
}

func checkDialect(t *testing.T, mod *module, mode, want string, faults []string) {
	mod.mu.Lock()
	defer mod.mu.Unlock()
	require.Contains(t, mod.transcript.String(), want, "the %s dialect's command", mode)
	if mode != "single" {
		require.NotRegexp(t, `(?m)^AT\+CIPSEND=\d+\r$`, mod.transcript.String(), "single-link CIPSEND in %s mode", mode)
	}
	// Report k covers everything from the start of report k-1's publish up to
	// report k: compare from the second report on.
	require.GreaterOrEqual(t, len(mod.reports), 3)
	for k := 1; k < len(mod.reports); k++ {
		prev, cur := mod.reports[k-1], mod.reports[k]
		var rep struct {
			Metrics struct {
				NS struct {
					BytesIn    uint64 `json:"bytes_in"`
					BytesOut   uint64 `json:"bytes_out"`
					PacketsIn  uint64 `json:"packets_in"`
					PacketsOut uint64 `json:"packets_out"`
				} `json:"network_stats"`
				TCP struct {
					Ports []struct{ Port int } `json:"ports"`
				} `json:"listening_tcp_ports"`
				TC struct {
					EC struct {
						Conns []map[string]any `json:"connections"`
					} `json:"established_connections"`
				} `json:"tcp_connections"`
			} `json:"metrics"`
		}
		require.NoError(t, json.Unmarshal(cur.payload, &rep), "report %d: %s", k, cur.payload)
		ns := rep.Metrics.NS
		want := [4]uint64{cur.at.bytesIn - prev.at.bytesIn, cur.at.bytesOut - prev.at.bytesOut,
			cur.at.pktsIn - prev.at.pktsIn, cur.at.pktsOut - prev.at.pktsOut}
		require.Equal(t, want, [4]uint64{ns.BytesIn, ns.BytesOut, ns.PacketsIn, ns.PacketsOut},
			"report %d network_stats (in, out, packets in, packets out) vs the module's counts", k)
		_, hasLP := rep.Metrics.TC.EC.Conns[0]["local_port"]
		require.Equal(t, mode != "mqtt", hasLP, "local_port present")
		has2323 := false
		for _, p := range rep.Metrics.TCP.Ports {
			has2323 = has2323 || p.Port == 2323
		}
		require.Equal(t, contains(faults, "dd-listen"), has2323, "listening port 2323")
		if contains(faults, "dd-extra-out") {
			require.Greater(t, ns.BytesOut, uint64(8192), "dd-extra-out traffic in bytes_out")
		} else {
			require.Less(t, ns.BytesOut, uint64(2048), "normal bytes_out")
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ---- console ----

type console struct {
	t     *testing.T
	w     io.Writer
	lines chan string
}

func newConsole(t *testing.T, rw io.ReadWriter) *console {
	c := &console{t: t, w: rw, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(rw)
		for sc.Scan() {
			l := strings.TrimRight(sc.Text(), "\r")
			if i := strings.LastIndex(l, "\x1b[K"); i >= 0 {
				l = l[i+3:]
			}
			l = strings.TrimPrefix(l, "> ")
			t.Log("console: " + l)
			c.lines <- l
		}
		close(c.lines)
	}()
	return c
}

func (c *console) expect(ctx context.Context, pattern string) string {
	c.t.Helper()
	re := regexp.MustCompile(pattern)
	for {
		select {
		case l, ok := <-c.lines:
			require.True(c.t, ok, "console closed while waiting for %q", pattern)
			if re.MatchString(l) {
				return l
			}
		case <-ctx.Done():
			c.t.Fatalf("no console line matching %q: %v", pattern, ctx.Err())
		}
	}
}

func (c *console) cmd(ctx context.Context, line, reply string) {
	c.t.Helper()
	_, err := io.WriteString(c.w, line+"\r")
	require.NoError(c.t, err)
	c.expect(ctx, reply)
}

// ---- ESP-AT module double ----

type counts struct{ bytesIn, bytesOut, pktsIn, pktsOut uint64 }

type report struct {
	at      counts // the module's counts just before this report's publish
	payload []byte
}

type module struct {
	t   *testing.T
	rw  io.ReadWriter
	b   *broker.Broker
	wmu sync.Mutex // one write per message

	mu         sync.Mutex
	transcript bytes.Buffer
	c          counts
	reports    []report
	echo       bool
	mux        bool
	passive    bool
	link       net.Conn // socket dialects: the broker connection of link 0
	held       []byte   // passive: bytes the module holds for link 0
	notified   bool     // passive: a notice is out and not yet read
	mq         *mqttClient
}

func newModule(t *testing.T, rw io.ReadWriter, b *broker.Broker) *module {
	return &module{t: t, rw: rw, b: b, echo: true}
}

func (m *module) write(s string) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	_, _ = io.WriteString(m.rw, s)
}

var reportTopic = regexp.MustCompile(`^\$aws/things/[^/]+/defender/metrics/json$`)

func (m *module) run() {
	r := bufio.NewReaderSize(m.rw, 4096)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		m.mu.Lock()
		m.transcript.WriteString(cmd + "\r\n")
		echo := m.echo
		m.mu.Unlock()
		if echo {
			m.write(line)
		}
		if !m.handle(cmd, r) {
			m.write("\r\nERROR\r\n")
		}
	}
}

var (
	reCIPSEND  = regexp.MustCompile(`^AT\+CIPSEND=(?:(\d),)?(\d+)$`)
	reCIPSTART = regexp.MustCompile(`^AT\+CIPSTART=(?:(\d),)?"TCP","[^"]+",\d+$`)
	reRECVDATA = regexp.MustCompile(`^AT\+CIPRECVDATA=0,(\d+)$`)
	rePUBRAW   = regexp.MustCompile(`^AT\+MQTTPUBRAW=0,"([^"]+)",(\d+),([01]),([01])$`)
	reSUB      = regexp.MustCompile(`^AT\+MQTTSUB=0,"([^"]+)",1$`)
)

func (m *module) handle(cmd string, r *bufio.Reader) bool {
	ok := func() bool { m.write("\r\nOK\r\n"); return true }
	switch {
	case cmd == "AT", cmd == "AT+CWMODE=1", cmd == "AT+CIPSNTPCFG=1,0,\"pool.ntp.org\"",
		strings.HasPrefix(cmd, "AT+CWJAP="), strings.HasPrefix(cmd, "AT+MQTTUSERCFG=0,1,"):
		return ok()
	case cmd == "ATE0":
		m.mu.Lock()
		m.echo = false
		m.transcript.Reset() // every boot sends AT, ATE0: judge only the last boot
		m.reports = nil
		m.mu.Unlock()
		return ok()
	case cmd == "AT+CIPMUX=1" || cmd == "AT+CIPMUX=0":
		m.mu.Lock()
		m.mux = cmd == "AT+CIPMUX=1"
		m.mu.Unlock()
		return ok()
	case cmd == "AT+CIPRECVMODE=1" || cmd == "AT+CIPRECVMODE=0":
		m.mu.Lock()
		m.passive = cmd == "AT+CIPRECVMODE=1"
		m.mu.Unlock()
		return ok()
	case cmd == "AT+CIPSNTPTIME?":
		m.write("+CIPSNTPTIME:" + time.Now().UTC().Format("Mon Jan _2 15:04:05 2006") + "\r\nOK\r\n")
		return true
	case cmd == "AT+CIPSTATE?":
		m.mu.Lock()
		open := m.link != nil
		m.mu.Unlock()
		if open {
			m.write("+CIPSTATE:0,\"TCP\",\"10.0.2.2\",1883,50001,0\r\n")
		}
		return ok()
	case reCIPSTART.MatchString(cmd):
		sm := reCIPSTART.FindStringSubmatch(cmd)
		m.mu.Lock()
		mux := m.mux
		m.mu.Unlock()
		if (sm[1] != "") != mux || (mux && sm[1] != "0") {
			return false
		}
		c, err := m.b.DialMem("dut")
		if err != nil {
			return false
		}
		m.mu.Lock()
		m.link = c
		m.mu.Unlock()
		go m.pump(c)
		if mux {
			m.write("0,CONNECT\r\n")
		} else {
			m.write("CONNECT\r\n")
		}
		return ok()
	case reCIPSEND.MatchString(cmd):
		sm := reCIPSEND.FindStringSubmatch(cmd)
		n, _ := strconv.Atoi(sm[2])
		m.mu.Lock()
		c, mux := m.link, m.mux
		m.mu.Unlock()
		if c == nil || (sm[1] != "") != mux {
			return false
		}
		m.write("\r\nOK\r\n\r\n>")
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return true
		}
		m.noteReport(data)
		m.write(fmt.Sprintf("\r\nRecv %d bytes\r\n", n))
		if _, err := c.Write(data); err != nil {
			m.write("\r\nSEND FAIL\r\n")
			return true
		}
		m.mu.Lock()
		m.c.bytesOut += uint64(n)
		m.c.pktsOut++
		m.mu.Unlock()
		m.write("\r\nSEND OK\r\n")
		return true
	case cmd == "AT+CIPCLOSE" || cmd == "AT+CIPCLOSE=0" || cmd == "AT+CIPCLOSE=5":
		m.mu.Lock()
		c := m.link
		m.link = nil
		m.mu.Unlock()
		if c == nil {
			return false
		}
		_ = c.Close()
		return ok()
	case reRECVDATA.MatchString(cmd):
		n, _ := strconv.Atoi(reRECVDATA.FindStringSubmatch(cmd)[1])
		m.mu.Lock()
		if len(m.held) == 0 {
			m.mu.Unlock()
			return false
		}
		n = min(n, len(m.held))
		data := m.held[:n:n]
		m.held = m.held[n:]
		m.c.bytesIn += uint64(n)
		m.c.pktsIn++
		rest := len(m.held)
		m.notified = rest > 0
		m.mu.Unlock()
		m.write(fmt.Sprintf("+CIPRECVDATA:%d,%s", n, data))
		m.write("\r\nOK\r\n")
		if rest > 0 {
			m.write(fmt.Sprintf("\r\n+IPD,0,%d\r\n", rest))
		}
		return true
	case cmd == "AT+MQTTCLEAN=0":
		m.mu.Lock()
		mq := m.mq
		m.mq = nil
		m.mu.Unlock()
		if mq == nil {
			return false
		}
		mq.close()
		return ok()
	case strings.HasPrefix(cmd, "AT+MQTTCONN=0,"):
		c, err := m.b.DialMem("dut")
		if err != nil {
			return false
		}
		mq, err := dialMQTT(c, "ddagent-1", m)
		if err != nil {
			return false
		}
		m.mu.Lock()
		m.mq = mq
		m.mu.Unlock()
		m.write("+MQTTCONNECTED:0,1,\"broker.ddhil\",\"1883\",\"\",0\r\n")
		return ok()
	case reSUB.MatchString(cmd):
		m.mu.Lock()
		mq := m.mq
		m.mu.Unlock()
		if mq == nil || mq.subscribe(reSUB.FindStringSubmatch(cmd)[1]) != nil {
			return false
		}
		return ok()
	case rePUBRAW.MatchString(cmd):
		sm := rePUBRAW.FindStringSubmatch(cmd)
		n, _ := strconv.Atoi(sm[2])
		m.mu.Lock()
		mq := m.mq
		m.mu.Unlock()
		if mq == nil {
			return false
		}
		m.write("\r\nOK\r\n\r\n>")
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return true
		}
		if reportTopic.MatchString(sm[1]) {
			m.mu.Lock()
			m.reports = append(m.reports, report{at: m.c, payload: data})
			m.mu.Unlock()
		}
		if err := mq.publish(sm[1], data, sm[3] == "1", sm[4] == "1"); err != nil {
			m.write("\r\n+MQTTPUB:FAIL\r\n")
			return true
		}
		m.mu.Lock()
		m.c.bytesOut += uint64(len(sm[1]) + n) // module MQTT: topic + payload
		m.c.pktsOut++
		m.mu.Unlock()
		m.write("\r\n+MQTTPUB:OK\r\n")
		return true
	}
	return false
}

// noteReport records the module's counts when a CIPSEND starts a report PUBLISH.
func (m *module) noteReport(data []byte) {
	if len(data) < 5 || data[0]&0xF0 != 0x30 {
		return
	}
	rem, i := 0, 1
	for shift := 0; i < len(data); i++ {
		rem |= int(data[i]&0x7F) << shift
		shift += 7
		if data[i]&0x80 == 0 {
			i++
			break
		}
	}
	if i+2 > len(data) {
		return
	}
	tl := int(binary.BigEndian.Uint16(data[i:]))
	if i+2+tl+2 > len(data) || !reportTopic.Match(data[i+2:i+2+tl]) {
		return
	}
	start := i + 2 + tl + 2 // QoS 1: packet id
	end := i + rem
	if end > len(data) {
		return // a report bigger than one CIPSEND: not in this test
	}
	m.mu.Lock()
	m.reports = append(m.reports, report{at: m.c, payload: append([]byte(nil), data[start:end]...)})
	m.mu.Unlock()
}

// pump delivers what the broker sends on link 0: +IPD (active) or a notice (passive).
func (m *module) pump(c net.Conn) {
	buf := make([]byte, 2920)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			m.mu.Lock()
			mux, passive := m.mux, m.passive
			if passive {
				m.held = append(m.held, buf[:n]...)
				notify := !m.notified
				m.notified = true
				total := len(m.held)
				m.mu.Unlock()
				if notify {
					m.write(fmt.Sprintf("\r\n+IPD,0,%d\r\n", total))
				}
				continue
			}
			m.c.bytesIn += uint64(n)
			m.c.pktsIn++
			m.mu.Unlock()
			if mux {
				m.write(fmt.Sprintf("\r\n+IPD,0,%d:%s\r\n", n, buf[:n]))
			} else {
				m.write(fmt.Sprintf("\r\n+IPD,%d:%s\r\n", n, buf[:n]))
			}
		}
		if err != nil {
			m.mu.Lock()
			mine := m.link == c
			if mine {
				m.link = nil
			}
			mux := m.mux
			m.mu.Unlock()
			if mine {
				if mux {
					m.write("0,CLOSED\r\n")
				} else {
					m.write("CLOSED\r\n")
				}
			}
			return
		}
	}
}

// ---- the module's MQTT client (QoS 0/1, 3.1.1), just what the agent uses ----

type mqttClient struct {
	c     net.Conn
	m     *module
	mu    sync.Mutex
	next  uint16
	acks  map[uint16]chan struct{}
	done  chan struct{}
	close func()
}

func dialMQTT(c net.Conn, id string, m *module) (*mqttClient, error) {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 120}
	body = binary.BigEndian.AppendUint16(body, uint16(len(id)))
	body = append(body, id...)
	if _, err := c.Write(packet(0x10, body)); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	typ, b, err := readPacket(r)
	if err != nil || typ>>4 != 2 || len(b) < 2 || b[1] != 0 {
		return nil, fmt.Errorf("connack: %x %x %v", typ, b, err)
	}
	q := &mqttClient{c: c, m: m, next: 1, acks: map[uint16]chan struct{}{}, done: make(chan struct{})}
	var once sync.Once
	q.close = func() { once.Do(func() { _ = c.Close() }) }
	go q.read(r)
	return q, nil
}

func packet(first byte, body []byte) []byte {
	out := []byte{first}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func readPacket(r *bufio.Reader) (byte, []byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for {
		d, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7F) * mult
		mult *= 128
		if d&0x80 == 0 {
			break
		}
	}
	b := make([]byte, n)
	_, err = io.ReadFull(r, b)
	return first, b, err
}

func (q *mqttClient) id() (uint16, chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	id := q.next
	q.next++
	ch := make(chan struct{})
	q.acks[id] = ch
	return id, ch
}

func (q *mqttClient) wait(ch chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-q.done:
		return io.EOF
	case <-time.After(10 * time.Second):
		return fmt.Errorf("no ack")
	}
}

func (q *mqttClient) subscribe(filter string) error {
	id, ch := q.id()
	body := binary.BigEndian.AppendUint16(nil, id)
	body = binary.BigEndian.AppendUint16(body, uint16(len(filter)))
	body = append(append(body, filter...), 1)
	if _, err := q.c.Write(packet(0x82, body)); err != nil {
		return err
	}
	return q.wait(ch)
}

func (q *mqttClient) publish(topic string, payload []byte, qos1, retain bool) error {
	first := byte(0x30)
	if retain {
		first |= 1
	}
	body := binary.BigEndian.AppendUint16(nil, uint16(len(topic)))
	body = append(body, topic...)
	var ch chan struct{}
	if qos1 {
		var id uint16
		id, ch = q.id()
		first |= 2
		body = binary.BigEndian.AppendUint16(body, id)
	}
	if _, err := q.c.Write(packet(first, append(body, payload...))); err != nil {
		return err
	}
	if ch == nil {
		return nil
	}
	return q.wait(ch)
}

func (q *mqttClient) read(r *bufio.Reader) {
	defer func() {
		close(q.done)
		q.m.mu.Lock()
		mine := q.m.mq == q
		if mine {
			q.m.mq = nil
		}
		q.m.mu.Unlock()
		if mine {
			q.m.write("+MQTTDISCONNECTED:0\r\n")
		}
	}()
	for {
		first, b, err := readPacket(r)
		if err != nil {
			return
		}
		switch first >> 4 {
		case 4, 9: // PUBACK, SUBACK
			if len(b) >= 2 {
				id := binary.BigEndian.Uint16(b)
				q.mu.Lock()
				if ch, ok := q.acks[id]; ok {
					close(ch)
					delete(q.acks, id)
				}
				q.mu.Unlock()
			}
		case 3: // PUBLISH
			tl := int(binary.BigEndian.Uint16(b))
			topic, rest := string(b[2:2+tl]), b[2+tl:]
			if first&0x06 != 0 {
				id := rest[:2]
				rest = rest[2:]
				_, _ = q.c.Write(packet(0x40, id))
			}
			q.m.mu.Lock()
			q.m.c.bytesIn += uint64(len(rest))
			q.m.c.pktsIn++
			q.m.mu.Unlock()
			q.m.write(fmt.Sprintf("+MQTTSUBRECV:0,\"%s\",%d,%s\r\n", topic, len(rest), rest))
		}
	}
}

// TestProfiles: the profiles of the second QEMU and Renode builds load, and
// their at_mode variable defaults to the original dialect.
func TestProfiles(t *testing.T) {
	for _, name := range []string{"ddagent-lm3s6965evb.yaml", "ddagent-nrf52840dk.yaml"} {
		t.Run(name, func(t *testing.T) {
			p, err := profile.Load(filepath.Join("..", "fixtures", "profiles", name))
			require.NoError(t, err)
			require.Equal(t, "single", p.Resolve(profile.Vars{})["at_mode"])
			require.Equal(t, "mqtt", p.Resolve(profile.Vars{"at_mode": "mqtt"})["at_mode"])
		})
	}
}
