package broker

import (
	"context"
	"crypto/tls"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/certs"
	"github.com/ddhil/ddhil/broker/defender"
)

// TestGarbageDoesNotHurtOthers: junk on one socket closes that socket only;
// a device connected before and after keeps its round trips.
func TestGarbageDoesNotHurtOthers(t *testing.T) {
	noise := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.UintN(256))
	}
	cases := []struct {
		name  string
		bytes []byte
		first bool // send a valid CONNECT first
	}{
		{"random bytes", noise, false},
		{"http request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false},
		{"tls client hello on the plain port", []byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03}, false},
		{"malformed remaining length", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, false},
		{"random bytes after connect", noise, true},
		{"second connect", []byte{0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x1e, 0x00, 0x00}, true},
		{"truncated publish then close", []byte{0x30, 0x7f, 0x00}, true},
	}
	b := startBroker(t, Config{Throttle: NoThrottle})
	good := newDevice(t, b, "good")
	var id uint64
	roundTrip := func() {
		id++
		resp, _ := good.report(t, defender.JSON, reportJSON(id))
		require.Equal(t, id, *resp.ReportID)
	}
	roundTrip()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, b.Addr("tcp"), 4)
			if tc.first {
				rc.connect("junk", true)
			}
			rc.writeBytes(tc.bytes)
			if tc.name == "truncated publish then close" {
				require.NoError(t, rc.conn.Close())
			} else {
				rc.expectClosed()
			}
			roundTrip()
		})
	}
	// Every junk connection ended with a connect (or connect failure) and a
	// disconnect; the good device is still connected.
	// A client sees its socket close before the broker records the
	// disconnect, so wait for every junk connection's event, not only the
	// last one's.
	for i := range cases {
		connID := "tcp-" + strconv.Itoa(i+2)
		waitEvent(t, b, "junk disconnect "+connID, func(ev Event) bool {
			return ev.Kind == EventDisconnect && ev.ConnID == connID
		})
	}
	assert.Equal(t, len(cases), countEvents(b, kindIs(EventDisconnect, "")))
	assert.True(t, good.c.IsConnectionOpen())
	roundTrip()
}

// TestMemListener: paho over DialMem through its custom-connection hook,
// and a raw net.Pipe handed to ServeConn.
func TestMemListener(t *testing.T) {
	b := startBroker(t, Config{})
	c := connectPaho(t, memPaho(b, "mem-dev"))
	acc := subscribePaho(t, c, topicOf("mem-dev", defender.JSONAccepted), 1)
	publishPaho(t, c, topicOf("mem-dev", defender.JSONPublish), 1, reportJSON(4))
	assert.Equal(t, uint64(4), *decodeResponse(t, defender.JSON, receive(t, acc).Payload()).ReportID)
	conn := waitEvent(t, b, "connect", kindIs(EventConnect, "mem-dev"))
	assert.Equal(t, "mem", conn.Listener)
	assert.Equal(t, "bridge:mem-dev", conn.Remote)
	assert.Equal(t, "mem", conn.Local)
	assert.True(t, strings.HasPrefix(conn.ConnID, "mem-"))

	client, server := net.Pipe()
	require.NoError(t, b.ServeConn(server, "uart0"))
	rc := newRawClient(t, client, 4)
	rc.connect("pipe-dev", true)
	rc.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	rc.expect(packets.Pingresp)
	ev := waitEvent(t, b, "pipe connect", kindIs(EventConnect, "pipe-dev"))
	assert.Equal(t, "uart0", ev.Remote)
}

// tlsLab is a CA with a server certificate, a device "dev-1", and a
// device of a foreign CA with the same name.
type tlsLab struct {
	dir, foreign string
	server       *tls.Config
}

func newTLSLab(t *testing.T) tlsLab {
	t.Helper()
	lab := tlsLab{dir: t.TempDir(), foreign: t.TempDir()}
	require.NoError(t, certs.InitCA(lab.dir, nil))
	require.NoError(t, certs.InitCA(lab.foreign, nil))
	for _, d := range []string{lab.dir, lab.foreign} {
		_, _, err := certs.IssueDevice(d, "dev-1", nil)
		require.NoError(t, err)
	}
	var err error
	lab.server, err = certs.ServerTLSConfig(lab.dir)
	require.NoError(t, err)
	return lab
}

func (lab tlsLab) client(t *testing.T, dir string, mutate func(*tls.Config)) *tls.Config {
	t.Helper()
	c, err := certs.ClientTLSConfig(dir, "dev-1", "127.0.0.1")
	require.NoError(t, err)
	c.RootCAs, err = certs.LoadPool(lab.dir + "/" + certs.CAFile)
	require.NoError(t, err)
	if mutate != nil {
		mutate(c)
	}
	return c
}

func TestMutualTLS(t *testing.T) {
	lab := newTLSLab(t)
	cases := []struct {
		name        string
		dir         func(lab tlsLab) string
		mutate      func(*tls.Config)
		wantErr     bool
		wantALPN    string
		wantVersion string
		wantSNI     string
	}{
		{"alpn x-amzn-mqtt-ca", func(l tlsLab) string { return l.dir },
			func(c *tls.Config) { c.NextProtos = []string{"x-amzn-mqtt-ca"} }, false, "x-amzn-mqtt-ca", "TLS 1.3", ""},
		{"no alpn, sni by dns name", func(l tlsLab) string { return l.dir },
			func(c *tls.Config) { c.ServerName = "localhost" }, false, "", "TLS 1.3", "localhost"},
		{"tls 1.2", func(l tlsLab) string { return l.dir },
			func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, false, "", "TLS 1.2", ""},
		{"tls 1.1 refused", func(l tlsLab) string { return l.dir },
			func(c *tls.Config) { c.MinVersion = tls.VersionTLS10; c.MaxVersion = tls.VersionTLS11 }, true, "", "", ""},
		{"untrusted client certificate", func(l tlsLab) string { return l.foreign }, nil, true, "", "", ""},
		{"no client certificate", func(l tlsLab) string { return l.dir },
			func(c *tls.Config) { c.Certificates = nil }, true, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t, Config{TLS: lab.server})
			opts := pahoOpts(b, "client-1").SetTLSConfig(lab.client(t, tc.dir(lab), tc.mutate))
			opts.Servers = nil
			opts.AddBroker("tls://" + b.Addr("tls"))
			c := paho.NewClient(opts)
			tok := c.Connect()
			require.True(t, tok.WaitTimeout(waitLimit))
			if tc.wantErr {
				require.Error(t, tok.Error())
				ev := waitEvent(t, b, "refused connect", kindIs(EventConnect, ""))
				assert.NotEmpty(t, ev.Error)
				dis := waitEvent(t, b, "disconnect", kindIs(EventDisconnect, ""))
				assert.Equal(t, ReasonTLSHandshake, dis.Reason)
				assert.Contains(t, dis.Error, "tls")
				return
			}
			require.NoError(t, tok.Error())
			t.Cleanup(func() { c.Disconnect(0) })
			acc := subscribePaho(t, c, topicOf("dev-1", defender.JSONAccepted), 1)
			publishPaho(t, c, topicOf("dev-1", defender.JSONPublish), 1, reportJSON(1))
			receive(t, acc)

			ev := waitEvent(t, b, "connect", kindIs(EventConnect, "client-1"))
			require.NotNil(t, ev.TLS)
			assert.Equal(t, "tls", ev.Listener)
			assert.Equal(t, tc.wantALPN, ev.TLS.ALPN)
			assert.Equal(t, tc.wantVersion, ev.TLS.Version)
			assert.Equal(t, "dev-1", ev.TLS.PeerCN)
			assert.Equal(t, "ECDSA P-256", ev.TLS.PeerKeyType)
			assert.Equal(t, 256, ev.TLS.PeerKeyBits)
			assert.Equal(t, "ECDSA-SHA256", ev.TLS.PeerSigAlg)
			assert.Equal(t, tc.wantSNI, ev.TLS.ServerName, "Go sends no SNI for an IP address")
			assert.True(t, ev.Time.After(ev.TLS.PeerNotBefore) && ev.Time.Before(ev.TLS.PeerNotAfter))
		})
	}
}

// TestStrictPolicyUsesCertificateCN: on TLS the thing is the certificate's
// CN, whatever the client ID says.
func TestStrictPolicyUsesCertificateCN(t *testing.T) {
	lab := newTLSLab(t)
	b := startBroker(t, Config{TLS: lab.server, Policy: PolicyStrict})
	conf := lab.client(t, lab.dir, nil)

	opts := pahoOpts(b, "not-the-cn").SetTLSConfig(conf)
	opts.Servers = nil
	opts.AddBroker("tls://" + b.Addr("tls"))
	lost := lostNotifier(opts)
	c := connectPaho(t, opts)
	acc := subscribePaho(t, c, topicOf("dev-1", defender.JSONAccepted), 1)
	publishPaho(t, c, topicOf("dev-1", defender.JSONPublish), 1, reportJSON(1))
	receive(t, acc)

	c.Publish(topicOf("not-the-cn", defender.JSONPublish), 1, false, reportJSON(2))
	waitLost(t, lost)
	pol := waitEvent(t, b, "policy", kindIs(EventPolicy, "not-the-cn"))
	assert.Equal(t, RefusedPolicy, pol.Reason)
	assert.Contains(t, pol.Error, `"dev-1"`)
}

func TestConfigErrors(t *testing.T) {
	lab := newTLSLab(t)
	noCA := lab.server.Clone()
	noCA.ClientCAs = nil
	cases := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"unknown policy", Config{Policy: "lax"}, "unknown policy"},
		{"unknown duplicate policy", Config{DuplicateIDs: "ignore"}, "duplicate report_id"},
		{"tls without client CAs", Config{TLS: noCA}, "ClientCAs"},
		{"tls without certificate", Config{TLS: &tls.Config{ClientCAs: lab.server.ClientCAs}}, "server certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}

	t.Run("address in use", func(t *testing.T) {
		first := startBroker(t, Config{})
		b, err := New(Config{MQTTAddr: first.Addr("tcp")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		require.ErrorContains(t, b.Start(context.Background()), "listen tcp")
	})
}

func TestLifecycle(t *testing.T) {
	t.Run("zero config serves", func(t *testing.T) {
		b := startBroker(t, Config{})
		host, port, err := net.SplitHostPort(b.Addr("tcp"))
		require.NoError(t, err)
		assert.Equal(t, "127.0.0.1", host)
		assert.NotEqual(t, "0", port)
		assert.Empty(t, b.Addr("tls"), "no TLS listener without TLS config")
	})
	t.Run("start twice and serve before start", func(t *testing.T) {
		b, err := New(Config{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = b.Close() })
		c1, c2 := net.Pipe()
		defer c1.Close()
		require.Error(t, b.ServeConn(c2, "early"))
		require.NoError(t, b.Start(context.Background()))
		require.Error(t, b.Start(context.Background()))
	})
	t.Run("close is idempotent and ends sessions", func(t *testing.T) {
		b, err := New(Config{})
		require.NoError(t, err)
		require.NoError(t, b.Start(context.Background()))
		opts := pahoOpts(b, "dev")
		lost := lostNotifier(opts)
		connectPaho(t, opts)
		idle := dialRaw(t, b.Addr("tcp"), 4) // never sends CONNECT
		b.DelayResponses(time.Hour)
		rc := dialRaw(t, b.Addr("tcp"), 4)
		rc.connect("slow", true)
		rc.publish(topicOf("slow", defender.JSONPublish), 0, false, 0, reportJSON(1))
		waitEvent(t, b, "report", kindIs(EventReport, "slow"))

		start := time.Now()
		require.NoError(t, b.Close())
		assert.Less(t, time.Since(start), 5*time.Second, "an idle socket does not hold Close up")
		require.NoError(t, b.Close())
		waitLost(t, lost)
		idle.expectClosed()

		dis := 0
		for _, ev := range b.Events() {
			if ev.Kind == EventDisconnect {
				dis++
				assert.Equal(t, ReasonServerDisconnect, ev.Reason)
			}
		}
		assert.Equal(t, 3, dis)
		undelivered := waitEvent(t, b, "undelivered response", kindIs(EventResponse, "slow"))
		assert.Equal(t, FaultUndelivered, undelivered.Fault)
		require.Error(t, b.ServeConn(&net.TCPConn{}, "late"))
	})
	t.Run("context cancel closes", func(t *testing.T) {
		b, err := New(Config{})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		require.NoError(t, b.Start(ctx))
		opts := pahoOpts(b, "dev")
		lost := lostNotifier(opts)
		connectPaho(t, opts)
		cancel()
		waitLost(t, lost)
		require.NoError(t, b.Close())
	})
	t.Run("periodic meters", func(t *testing.T) {
		b := startBroker(t, Config{MeterInterval: 10 * time.Millisecond})
		rc := dialRaw(t, b.Addr("tcp"), 4)
		rc.connect("ticker", true)
		first := waitEvent(t, b, "meter", kindIs(EventMeter, "ticker"))
		second, err := b.Recorder().WaitForAfter(testCtx(t), first.Seq, kindIs(EventMeter, "ticker"))
		require.NoError(t, err)
		assert.Equal(t, uint64(1), second.Meter.PacketsIn)
	})
}
