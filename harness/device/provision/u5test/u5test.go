// Package u5test is a scripted stand-in for the STM32U5 FreeRTOS IoT
// reference firmware (B-U585I-IOT02A) as its console and network show it.
// No U5 board is available where ddhil is developed, so every behaviour
// here follows the research note shared/docs/stm32-reference.md (§1 console,
// §2 CLI and pki, §3 connection, §4 log markers, §5 Defender task): the
// `> ` prompt, per-byte echo, Ctrl-C, log lines redrawn with `\r ESC[K`
// while the CLI waits, `conf` keys, `pki generate key|csr`, `pki import
// cert` reading a PEM line by line (64-character limit, silent on parse
// failures), `reset` printing `Resetting device.` without a newline, and,
// with Config.Network, a mutual-TLS MQTT client that publishes CBOR
// short-key Defender reports. It is a test fixture, not an emulator: only
// what the harness relies on is modelled.
package u5test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/ddhil/ddhil/broker/defender"
)

// Limits of the reference CLI (cli.h, cli_pki.c).
const (
	MaxCommand = 127 // longer command lines are dropped silently
	MaxPEMLine = 64  // longer PEM lines end the import with an error
)

// Config tunes the stand-in.
type Config struct {
	// Network makes the device connect to its configured broker after every
	// boot with a complete configuration (mutual TLS, MQTT 3.1.1) and publish
	// a Defender report at once and then every ReportPeriod.
	Network bool
	// ReportPeriod is MS_BETWEEN_REPORTS (default 300 s, as compiled in).
	ReportPeriod time.Duration
	// ResponseTimeout bounds the wait for accepted/rejected (default 30 s).
	ResponseTimeout time.Duration
	// SilentImport lists labels whose `pki import cert` prints nothing, as
	// the firmware does when the PEM does not parse.
	SilentImport []string
	// NoCSR makes `pki generate csr` print no PEM (its failures only show as
	// <ERR> log lines).
	NoCSR bool
}

// Device is one simulated board on the host end of a console line.
type Device struct {
	cfg  Config
	conn net.Conn

	mu        sync.Mutex
	boots     int
	bootAt    time.Time
	softReset bool
	waiting   bool   // the CLI printed its prompt and waits for input
	partial   []byte // current input line
	lastCR    bool
	pemLabel  string // non-empty while `pki import cert` reads a PEM
	pemLines  []string
	staged    map[string]string
	committed map[string]string
	key       *ecdsa.PrivateKey
	certs     map[string]*x509.Certificate
	commands  []string
	netCancel context.CancelFunc
	netWG     sync.WaitGroup
	closed    bool
}

var confKeys = map[string]bool{ // name -> numeric
	"thing_name": false, "mqtt_endpoint": false, "mqtt_port": true,
	"wifi_ssid": false, "wifi_credential": false, "time_hwm": true,
}

// Start boots the device on conn (the device's end of a console line, e.g.
// one side of net.Pipe) in the background and serves it until conn closes
// or Close.
func Start(conn net.Conn, cfg Config) *Device {
	if cfg.ReportPeriod <= 0 {
		cfg.ReportPeriod = 300 * time.Second
	}
	if cfg.ResponseTimeout <= 0 {
		cfg.ResponseTimeout = 30 * time.Second
	}
	d := &Device{cfg: cfg, conn: conn, committed: map[string]string{"mqtt_port": "8883", "time_hwm": "0"},
		certs: map[string]*x509.Certificate{}}
	go func() {
		// Boot output blocks until the host reads (net.Pipe): not in Start.
		d.mu.Lock()
		if !d.closed {
			d.bootLocked()
		}
		d.mu.Unlock()
		d.readLoop()
	}()
	return d
}

// Reboot is a hardware reset (the probe's reset run).
func (d *Device) Reboot() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.bootLocked()
	}
}

// Close stops the device and its network client.
func (d *Device) Close() error {
	err := d.conn.Close() // first: a write blocked on the line (holding mu) ends
	d.mu.Lock()
	d.closed = true
	if d.netCancel != nil {
		d.netCancel()
	}
	d.mu.Unlock()
	d.netWG.Wait()
	return err
}

// Committed returns the configuration saved by `conf commit`.
func (d *Device) Committed() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for k, v := range d.committed {
		out[k] = v
	}
	return out
}

// Cert returns the certificate imported under label (nil when none).
func (d *Device) Cert(label string) *x509.Certificate {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.certs[label]
}

// PublicKey is the key pair's public half (nil before `pki generate key`).
func (d *Device) PublicKey() *ecdsa.PublicKey {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.key == nil {
		return nil
	}
	return &d.key.PublicKey
}

// Commands lists the command lines the CLI executed, in order.
func (d *Device) Commands() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.commands...)
}

// Boots counts boots (the first included).
func (d *Device) Boots() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.boots
}

func (d *Device) write(s string) { _, _ = d.conn.Write([]byte(s)) }

// logLocked prints a log line in logging.c's format; while the CLI waits it
// is wrapped in the redraw (`\r ESC[K` ... CR LF, prompt, partial input).
func (d *Device) logLocked(level, task, msg, src string) {
	ms := time.Since(d.bootAt).Milliseconds() & 0xFFFFFF
	line := fmt.Sprintf("<%s> %8d [%-10.10s] %s (%s)", level, ms, task, msg, src)
	if d.waiting {
		d.write("\r\x1b[K" + line + "\r\n> " + string(d.partial))
		return
	}
	d.write(line + "\r\n")
}

// bootLocked runs the boot sequence of app_main.c: reset source, hardware
// init, the CLI's prompt, then the file system (the KV store) is mounted.
func (d *Device) bootLocked() {
	if d.netCancel != nil {
		d.netCancel()
		d.netCancel = nil
	}
	d.boots++
	d.bootAt = time.Now()
	d.waiting, d.partial, d.pemLabel, d.pemLines = false, nil, "", nil
	d.staged = map[string]string{}
	for k, v := range d.committed {
		d.staged[k] = v
	}
	src := "0x04000000 : PINRSTF: Pin Reset."
	if d.softReset {
		src = "0x10000000 : SFTRSTF: Software."
	}
	d.softReset = false
	d.logLocked("INF", "Init", "Reset Source: "+src, "app_main.c:312")
	d.logLocked("INF", "Init", "HW Init Complete.", "app_main.c:334")
	d.write("> ")
	d.waiting = true
	d.logLocked("INF", "Init", "File System mounted.", "app_main.c:218")
	if d.cfg.Network {
		ctx, cancel := context.WithCancel(context.Background())
		d.netCancel = cancel
		d.netWG.Add(1)
		go d.network(ctx, d.boots)
	}
}

func (d *Device) readLoop() {
	buf := make([]byte, 256)
	for {
		n, err := d.conn.Read(buf)
		if err != nil {
			return
		}
		d.mu.Lock()
		for _, b := range buf[:n] {
			d.input(b)
		}
		d.mu.Unlock()
	}
}

// input is uart_readline: echo, line editing, Ctrl-C, line end.
func (d *Device) input(b byte) {
	prevCR := d.lastCR
	d.lastCR = b == '\r'
	switch {
	case b == 0x03:
		d.partial = nil
		d.pemLabel, d.pemLines = "", nil
		d.write("\r\n> ")
		d.waiting = true
	case b == '\n' && prevCR:
	case b == '\r' || b == '\n' || b == 0:
		if len(d.partial) == 0 {
			return // empty lines are ignored
		}
		line := string(d.partial)
		d.partial = nil
		d.write("\r\n")
		d.waiting = false
		if d.pemLabel != "" {
			d.pemLine(line)
		} else if len(line) <= MaxCommand {
			d.commands = append(d.commands, line)
			d.exec(line)
		}
		if !d.waiting && !d.closed {
			d.write("> ")
			d.waiting = true
		}
	case b == '\b' || b == 0x7f:
		if len(d.partial) > 0 {
			d.partial = d.partial[:len(d.partial)-1]
			d.write("\b \b")
		}
	default:
		d.partial = append(d.partial, b)
		d.write(string(b))
	}
}

func (d *Device) exec(line string) {
	a := strings.Fields(line)
	if len(a) == 0 {
		return // blanks only
	}
	switch {
	case a[0] == "conf":
		d.conf(a[1:])
	case a[0] == "pki":
		d.pki(a[1:])
	case a[0] == "reset" && len(a) == 1:
		d.write("Resetting device.")
		d.softReset = true
		d.bootLocked()
	default:
		d.write("Command not recognized. Enter 'help' to view a list of available commands.\r\n")
	}
}

func (d *Device) confLine(k string) string {
	if confKeys[k] {
		return k + "=" + d.staged[k]
	}
	return k + "=\"" + d.staged[k] + "\""
}

func (d *Device) conf(a []string) {
	switch {
	case len(a) >= 1 && a[0] == "get":
		if len(a) == 1 {
			keys := make([]string, 0, len(confKeys))
			for k := range confKeys {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				d.write(d.confLine(k) + "\r\n")
			}
			return
		}
		if _, ok := confKeys[a[1]]; !ok {
			d.write("Error: key: " + a[1] + " was not recognized.\r\n")
			return
		}
		d.write(d.confLine(a[1]) + "\r\n")
	case len(a) >= 3 && a[0] == "set":
		numeric, ok := confKeys[a[1]]
		if !ok {
			d.write("Error: key: " + a[1] + " was not recognized.\r\n")
			return
		}
		if numeric {
			if _, err := strconv.ParseUint(a[2], 10, 32); err != nil {
				d.write("Error: value: " + a[2] + " is not valid for key: " + a[1] + "\r\n")
				return
			}
		}
		d.staged[a[1]] = a[2] // only the first word of the value is used
		d.write(d.confLine(a[1]) + "\r\n")
	case len(a) == 1 && a[0] == "commit":
		for k, v := range d.staged {
			d.committed[k] = v
		}
		d.write("Configuration saved to NVM.\r\n")
	default:
		d.write("conf:\r\n    Usage:\r\n    conf get [key]\r\n    conf set <key> <value>\r\n    conf commit\r\n")
	}
}

func (d *Device) pki(a []string) {
	switch {
	case len(a) >= 2 && a[0] == "generate" && a[1] == "key":
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			d.write("ERROR: Failed to generate public/private key pair.\r\n")
			return
		}
		d.key = key
		der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
		// The public label is written with the private label's length: a NUL.
		d.write("SUCCESS: Key pair generated and stored in\r\nPrivate Key Label: tls_key_priv\r\nPublic Key Label: tls_key_pub\x00\r\n")
		d.writePEM("PUBLIC KEY", der)
	case len(a) >= 2 && a[0] == "generate" && a[1] == "csr":
		if d.key == nil || d.cfg.NoCSR {
			d.logLocked("ERR", "CLI", "Failed to generate Certificate Request.", "cli_pki.c:275")
			return
		}
		tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: d.staged["thing_name"]},
			SignatureAlgorithm: x509.ECDSAWithSHA256}
		der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, d.key)
		if err != nil {
			d.logLocked("ERR", "CLI", "Failed to generate Certificate Request.", "cli_pki.c:275")
			return
		}
		d.writePEM("CERTIFICATE REQUEST", der)
	case len(a) >= 2 && a[0] == "import" && a[1] == "cert":
		label := "tls_cert"
		if len(a) >= 3 {
			label = a[2]
		}
		d.pemLabel, d.pemLines = label, nil
	default:
		d.write("pki:\r\n    Usage:\r\n    pki generate key [label]\r\n    pki generate csr [label]\r\n    pki import cert [label]\r\n")
	}
}

func (d *Device) writePEM(typ string, der []byte) {
	for _, l := range strings.Split(strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))), "\n") {
		d.write(l + "\r\n")
	}
}

// pemLine takes one line of `pki import cert`; the import ends at the first
// "-----END " line. Base64 and X.509 failures print nothing.
func (d *Device) pemLine(line string) {
	label := d.pemLabel
	if len(line) > MaxPEMLine {
		d.write("Error: Current line exceeds maximum line length for a PEM file.\r\n")
		d.pemLabel, d.pemLines = "", nil
		return
	}
	if len(d.pemLines) == 0 && !strings.HasPrefix(line, "-----BEGIN ") {
		d.write("Error: PEM header does not match the expected format.\r\n")
		d.pemLabel = ""
		return
	}
	d.pemLines = append(d.pemLines, line)
	if !strings.HasPrefix(line, "-----END ") {
		return // the next line gets its own prompt
	}
	text := strings.Join(d.pemLines, "\n") + "\n"
	d.pemLabel, d.pemLines = "", nil
	blk, _ := pem.Decode([]byte(text))
	if blk == nil || slices.Contains(d.cfg.SilentImport, label) {
		return
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return
	}
	d.certs[label] = cert
	d.write("Success: Certificate loaded to label: '" + label + "'.\r\n")
}

// network is the MQTT agent plus the Defender task of one boot.
func (d *Device) network(ctx context.Context, boot int) {
	defer d.netWG.Done()
	logf := func(level, task, msg, src string) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.boots != boot || d.closed {
			return false
		}
		d.logLocked(level, task, msg, src)
		return true
	}
	d.mu.Lock()
	thing, host, port := d.committed["thing_name"], d.committed["mqtt_endpoint"], d.committed["mqtt_port"]
	key, cert, ca := d.key, d.certs["tls_cert"], d.certs["root_ca_cert"]
	d.mu.Unlock()
	switch {
	case thing == "":
		logf("ERR", "MQTTAgent", "Invalid client identifier read from KVStore.", "mqtt_agent_task.c:882")
		return
	case host == "":
		logf("ERR", "MQTTAgent", "Invalid mqtt endpoint read from KVStore.", "mqtt_agent_task.c:919")
		return
	case key == nil:
		logf("ERR", "MQTTAgent", "Failed to add private key to TLS context.", "mbedtls_transport.c:643")
		return
	case cert == nil:
		logf("ERR", "MQTTAgent", "Failed to add client certificate to TLS context.", "mbedtls_transport.c:651")
		return
	case ca == nil:
		logf("ERR", "MQTTAgent", "Failed to load any valid Root CA Certificates.", "mbedtls_transport.c:823")
		return
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}},
		RootCAs:      pool, ServerName: host, NextProtos: []string{"x-amzn-mqtt-ca"},
		MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
	}
	addr := net.JoinHostPort(host, port)
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		if !logf("INF", "MQTTAgent", "Attempting a TLS connection to "+addr+".", "mqtt_agent_task.c:1101") {
			return
		}
		err := d.session(ctx, thing, addr, tlsCfg, logf)
		if ctx.Err() != nil {
			return
		}
		logf("WRN", "MQTTAgent", fmt.Sprintf("Disconnected from the MQTT Broker. Retrying in %d ms. (%v)", backoff.Milliseconds(), err), "mqtt_agent_task.c:1251")
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff): // the firmware's reconnect back-off, not a synchronisation
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// session is one MQTT connection: subscribe, then report until it drops.
func (d *Device) session(ctx context.Context, thing, addr string, tlsCfg *tls.Config,
	logf func(level, task, msg, src string) bool) error {
	var localPort uint64
	var mu sync.Mutex
	opts := mqtt.NewClientOptions().AddBroker("ssl://" + addr).SetClientID(thing).
		SetUsername("?SDK=FreeRTOS&Version=V10.5.1&Platform=STM32U5xx IoT Discovery Kit&MQTTLib=coreMQTT@v2.1.1").
		SetCleanSession(true).SetKeepAlive(60 * time.Second).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetCustomOpenConnectionFn(func(*url.URL, mqtt.ClientOptions) (net.Conn, error) {
			c, err := (&tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: tlsCfg}).DialContext(ctx, "tcp", addr)
			if err != nil {
				logf("ERR", "MQTTAgent", "Failed to perform TLS handshake: "+err.Error(), "mbedtls_transport.c:1359")
				return nil, err
			}
			logf("INF", "MQTTAgent", "TLS handshake successful.", "mbedtls_transport.c:1367")
			mu.Lock()
			localPort = uint64(c.LocalAddr().(*net.TCPAddr).Port)
			mu.Unlock()
			return c, nil
		})
	lost := make(chan error, 1)
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case lost <- err:
		default:
		}
	})
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		logf("ERR", "MQTTAgent", "Failed to connect to mqtt broker.", "mqtt_agent_task.c:1190")
		if tok.Error() != nil {
			return tok.Error()
		}
		return fmt.Errorf("u5test: connect timed out")
	}
	defer client.Disconnect(100)
	logf("INF", "MQTTAgent", "Connection to "+addr+" established.", "mbedtls_transport.c:1374")
	logf("INF", "MQTTAgent", "Starting a clean MQTT Session.", "mqtt_agent_task.c:1182")

	answers := make(chan bool, 4)
	for _, suffix := range []string{"accepted", "rejected"} {
		accepted := suffix == "accepted"
		topic := "$aws/things/+/defender/metrics/cbor/" + suffix
		tok := client.Subscribe(topic, 1, func(mqtt.Client, mqtt.Message) {
			select {
			case answers <- accepted:
			default:
			}
		})
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return fmt.Errorf("u5test: subscribe %s: %v", topic, tok.Error())
		}
	}
	logf("INF", "AWSDefende", "Subscribed to defender MQTT topics successfully.", "defender_task.c:615")
	pubTopic, err := defender.Topic(thing, defender.CBORPublish)
	if err != nil {
		return err
	}
	for {
		logf("INF", "AWSDefende", "Collecting device metrics...", "defender_task.c:688")
		d.mu.Lock()
		rid := uint64(time.Since(d.bootAt).Milliseconds()) & 0xFFFFFFFF
		d.mu.Unlock()
		mu.Lock()
		lp := localPort
		mu.Unlock()
		payload, err := defender.EncodeReport(defender.CBOR, report(rid, addr, lp), true)
		if err != nil {
			return err
		}
		logf("INF", "AWSDefende", "Publishing defender metrics report.", "defender_task.c:710")
		if tok := client.Publish(pubTopic, 1, false, payload); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			logf("ERR", "AWSDefende", "Failed to publish report.", "defender_task.c:701")
		} else {
			select {
			case ok := <-answers:
				if ok {
					logf("INF", "AWSDefende", "Defender report accepted.", "defender_task.c:735")
				} else {
					logf("ERR", "AWSDefende", "Defender report rejected.", "defender_task.c:740")
				}
			case <-time.After(d.cfg.ResponseTimeout):
				logf("ERR", "AWSDefende", "Defender report response not received.", "defender_task.c:745")
			case err := <-lost:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-time.After(d.cfg.ReportPeriod):
		case err := <-lost:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// report is what metrics_collector_lwip.c gathers: the iperf listener, the
// DHCP client's UDP port, the one TLS connection, and network counters the
// EMW3080 driver never updates (zero).
func report(rid uint64, remote string, localPort uint64) *defender.Report {
	u := func(v uint64) *uint64 { return &v }
	return &defender.Report{
		Header: defender.Header{ReportID: rid, Version: "1.0"},
		Metrics: &defender.Metrics{
			ListeningTCPPorts: &defender.Ports{Ports: []defender.Port{{Port: 5001}}, Total: u(1)},
			ListeningUDPPorts: &defender.Ports{Ports: []defender.Port{{Port: 68}}, Total: u(1)},
			NetworkStats:      &defender.NetworkStats{BytesIn: u(0), BytesOut: u(0), PacketsIn: u(0), PacketsOut: u(0)},
			TCPConnections: &defender.TCPConnections{Established: &defender.EstablishedConnections{
				Connections: []defender.Connection{{RemoteAddr: remote, LocalPort: u(localPort), LocalInterface: "lo0"}}, Total: u(1)}},
		},
	}
}
