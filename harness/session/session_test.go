package session

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/certs"
	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/link/espat"
	"github.com/ddhil/ddhil/harness/target/qemu"
)

// mqttConnect is an MQTT 3.1.1 CONNECT for client "dut-1", keep-alive 60 s.
var mqttConnect = []byte{0x10, 0x11, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x05, 'd', 'u', 't', '-', '1'}

func startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Config{})
	require.NoError(t, err)
	require.NoError(t, b.Start(context.Background()))
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// hangUp closes the device's connections and waits until the broker has
// detached them: closing the broker while mochi still detaches a client can
// deadlock (mochi v2.7.9, see Session.Close).
func hangUp(t *testing.T, b *broker.Broker, conns ...net.Conn) {
	t.Helper()
	for _, c := range conns {
		c.Close()
	}
	s := &Session{broker: b}
	s.waitConnsClosed(5 * time.Second)
}

func connack(t *testing.T, c net.Conn) []byte {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := c.Write(mqttConnect)
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	return buf
}

func TestDialInMemoryReachesBroker(t *testing.T) {
	b := startBroker(t)
	s := &Session{broker: b, host: DefaultEndpoint, port: 1883, nextPort: 50152}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	c, err := s.dial(ctx, DefaultEndpoint, 1883)
	require.NoError(t, err)
	assert.Equal(t, "192.0.2.100:50152", c.LocalAddr().String())
	assert.Equal(t, "192.0.2.1:1883", c.RemoteAddr().String())
	assert.Equal(t, []byte{0x20, 0x02, 0x00, 0x00}, connack(t, c), "CONNACK accepted")
	ev, err := b.WaitFor(ctx, func(e broker.Event) bool { return e.Kind == broker.EventConnect })
	require.NoError(t, err)
	assert.Equal(t, "mem", ev.Listener)
	assert.Equal(t, "192.0.2.100:50152", ev.Remote, "the broker sees the device's address")
	assert.Equal(t, "dut-1", ev.ClientID)

	c2, err := s.dial(ctx, DefaultEndpoint, 1883)
	require.NoError(t, err)
	defer hangUp(t, b, c, c2)
	assert.Equal(t, "192.0.2.100:50153", c2.LocalAddr().String(), "one port per link")
	// Complete the handshake and see it logged: hangUp can only wait for
	// connections the broker has logged.
	connack(t, c2)
	_, err = b.WaitFor(ctx, func(e broker.Event) bool { return e.Kind == broker.EventConnect && e.ConnID != ev.ConnID })
	require.NoError(t, err)

	_, err = s.dial(ctx, DefaultEndpoint, 8883)
	require.ErrorContains(t, err, "refused")
}

// With a named endpoint, a link to the address the module resolved the
// name to reaches the broker as well as one to the name.
func TestDialResolvedEndpointName(t *testing.T) {
	b := startBroker(t)
	const name = "a1b2c3-ats.iot.eu-west-1.amazonaws.com"
	s := &Session{broker: b, host: name, brokerIP: DefaultEndpoint, port: 1883, nextPort: 50152}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.dial(ctx, DefaultEndpoint, 1883)
	require.NoError(t, err)
	assert.Equal(t, "192.0.2.1:1883", c.RemoteAddr().String())
	connack(t, c)
	c2, err := s.dial(ctx, name, 1883)
	require.NoError(t, err)
	defer hangUp(t, b, c, c2)
	assert.Equal(t, name+":1883", c2.RemoteAddr().String())
	connack(t, c2)
	_, err = s.dial(ctx, "192.0.2.2", 1883)
	require.ErrorContains(t, err, "unreachable")
}

func TestDialOtherHostsOverTCP(t *testing.T) {
	b := startBroker(t)
	s := &Session{broker: b, host: DefaultEndpoint, port: 1883, nextPort: 50152}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	host, portStr, err := net.SplitHostPort(b.Addr("tcp"))
	require.NoError(t, err)
	port, _ := strconv.Atoi(portStr)
	c, err := s.dial(ctx, host, port)
	require.NoError(t, err)
	defer hangUp(t, b, c)
	assert.Equal(t, []byte{0x20, 0x02, 0x00, 0x00}, connack(t, c))
	ev, err := b.WaitFor(ctx, func(e broker.Event) bool { return e.Kind == broker.EventConnect })
	require.NoError(t, err)
	assert.Equal(t, "tcp", ev.Listener)
	assert.Equal(t, c.LocalAddr().String(), ev.Remote)
}

// TestBrokerClockAlignment: an instant stamped on the session's epoch maps
// to the broker's Mono of the same instant.
func TestBrokerClockAlignment(t *testing.T) {
	b := startBroker(t)
	s := &Session{broker: b, host: DefaultEndpoint, port: 1883, nextPort: 50152}
	s.epoch = time.Now() // after the recorder started: a positive shift
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.dial(ctx, DefaultEndpoint, 1883)
	require.NoError(t, err)
	defer hangUp(t, b, c)
	connack(t, c)
	_, err = b.WaitFor(ctx, func(e broker.Event) bool { return e.Kind == broker.EventConnect })
	require.NoError(t, err)
	events := b.Events()
	shift := s.brokerShift(events)
	assert.Greater(t, shift, time.Duration(0))
	for _, ev := range events {
		assert.Equal(t, ev.Mono, ev.Time.Sub(s.epoch)+shift, "event %d", ev.Seq)
	}
}

func TestLinkEvents(t *testing.T) {
	tot := &espat.Counters{}
	in := []espat.Event{
		{Kind: espat.EventCommand, Mono: 1, Text: "AT"},
		{Kind: espat.EventLinkOpen, Mono: 10, Link: 1, Host: "192.0.2.1", Port: 1883, LocalPort: 50152, Totals: tot},
		{Kind: espat.EventRecv, Mono: 30, Link: 1, Bytes: 4, Host: "192.0.2.1", Port: 1883, LocalPort: 50152, Totals: tot},
		{Kind: espat.EventSend, Mono: 20, Link: 1, Bytes: 14, OK: true, Host: "192.0.2.1", Port: 1883, LocalPort: 50152, Totals: tot},
		{Kind: espat.EventSend, Mono: 40, Link: 1, Bytes: 9, OK: false, Host: "192.0.2.1", Port: 1883, LocalPort: 50152, Totals: tot},
		{Kind: espat.EventLinkClose, Mono: 50, Link: 1, Host: "192.0.2.1", Port: 1883, LocalPort: 50152, Totals: tot},
	}
	got := LinkEvents(in, 100)
	want := []conformance.LinkEvent{
		{At: 110, Kind: conformance.LinkOpen, Link: 1, LocalPort: 50152, Remote: "192.0.2.1:1883"},
		{At: 120, Kind: conformance.LinkSend, Link: 1, Bytes: 14, LocalPort: 50152, Remote: "192.0.2.1:1883"},
		{At: 130, Kind: conformance.LinkRecv, Link: 1, Bytes: 4, LocalPort: 50152, Remote: "192.0.2.1:1883"},
		{At: 150, Kind: conformance.LinkClose, Link: 1, LocalPort: 50152, Remote: "192.0.2.1:1883"},
	}
	assert.Equal(t, want, got, "sorted by time, failed sends and commands left out")
}

func fixtureProfile(t *testing.T) *profile.Profile {
	_, file, _, _ := runtime.Caller(0)
	p, err := profile.Load(filepath.Join(filepath.Dir(file), "..", "..", "fixtures", "profiles", "ddagent.yaml"))
	require.NoError(t, err)
	return p
}

func TestStartErrors(t *testing.T) {
	badQEMU, err := qemu.New(qemu.Config{Binary: "/nonexistent/qemu-system-arm", Firmware: "fw.elf"})
	require.NoError(t, err)
	cases := []struct {
		name   string
		cfg    Config
		lab    bool
		substr string
	}{
		{"no target", Config{Profile: fixtureProfile(t)}, false, "Target and Profile are required"},
		{"no thing", Config{Target: badQEMU, Profile: fixtureProfile(t)}, false, `Vars["thing"] is required`},
		{"bad port", Config{Target: badQEMU, Profile: fixtureProfile(t), Vars: profile.Vars{"thing": "t", "port": "http"}}, false, "not a TCP port"},
		{"emulator missing", Config{Target: badQEMU, Profile: fixtureProfile(t), Vars: profile.Vars{"thing": "t"}, OutDir: t.TempDir()}, true, "apt-get install qemu-system-arm"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := Start(ctx, tc.cfg)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Contains(t, err.Error(), tc.substr)
			assert.Equal(t, tc.lab, errors.Is(err, harness.ErrLab), "%v", err)
		})
	}
}

func TestLinkEventsKeepProtoAndResolvedAddr(t *testing.T) {
	tot := &espat.Counters{}
	in := []espat.Event{{Kind: espat.EventLinkOpen, Mono: 10, Link: 1, Proto: "MQTT", Host: "abc-ats.iot.eu-west-1.amazonaws.com",
		Port: 8883, Remote: "192.0.2.1:8883", LocalPort: 50152, Totals: tot}}
	assert.Equal(t, []conformance.LinkEvent{{At: 10, Kind: conformance.LinkOpen, Link: 1, LocalPort: 50152, Proto: "MQTT",
		Remote: "abc-ats.iot.eu-west-1.amazonaws.com:8883", Addr: "192.0.2.1:8883"}}, LinkEvents(in, 0))
}

// The emulated network is sealed: the broker's address and loopback only.
func TestDialIsSealed(t *testing.T) {
	b := startBroker(t)
	s := &Session{broker: b, host: DefaultEndpoint, port: 1883, nextPort: 50152}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, host := range []string{"8.8.8.8", "example.com", "10.0.0.1"} {
		_, err := s.dial(ctx, host, 443)
		require.Error(t, err, host)
		assert.Contains(t, err.Error(), "network unreachable", host)
	}
	_, err := refuseUDP(ctx, "8.8.8.8", 123)
	assert.ErrorContains(t, err, "network unreachable")
}

// With a mutual-TLS listener, the endpoint's TLS port reaches it over
// loopback TCP (DD-X01 on the module path), keeping the device's view of
// the remote address.
func TestDialTLSPortReachesTheTLSListener(t *testing.T) {
	ca := newTestCA(t)
	b, err := broker.New(broker.Config{TLS: ca.server, MQTTSAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, b.Start(context.Background()))
	t.Cleanup(func() { _ = b.Close() })
	s := &Session{broker: b, host: DefaultEndpoint, port: 1883, nextPort: 50152, vars: profile.Vars{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := s.dial(ctx, DefaultEndpoint, 8883)
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, DefaultEndpoint+":8883", c.RemoteAddr().String())
	tc := tls.Client(c, ca.client)
	require.NoError(t, tc.HandshakeContext(ctx), "a TLS handshake with the broker's listener")
	assert.Equal(t, "x-amzn-mqtt-ca", tc.ConnectionState().NegotiatedProtocol)
}

type testCA struct{ server, client *tls.Config }

// newTestCA makes a lab CA with a broker certificate and a device one.
func newTestCA(t *testing.T) testCA {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, certs.InitCA(dir, []string{DefaultEndpoint, "127.0.0.1"}))
	_, _, err := certs.IssueDevice(dir, "dut-1", nil)
	require.NoError(t, err)
	server, err := certs.ServerTLSConfig(dir)
	require.NoError(t, err)
	client, err := certs.ClientTLSConfig(dir, "dut-1", DefaultEndpoint)
	require.NoError(t, err)
	client.NextProtos = []string{"x-amzn-mqtt-ca"}
	return testCA{server: server, client: client}
}
