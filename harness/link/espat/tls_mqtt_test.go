package espat

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/certs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const awsName = "abc123-ats.iot.eu-west-1.amazonaws.com"

// lab is a real broker with a mutual-TLS listener and a device identity,
// and a module whose network reaches it over loopback TCP: port 8883 is
// the TLS listener, 1883 the plain one (transcripts S1, Q1).
type lab struct {
	b    *broker.Broker
	dir  string
	conf Config
}

func newLab(t *testing.T) *lab {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, certs.InitCA(dir, []string{awsName, "192.0.2.1"}))
	_, _, err := certs.IssueDevice(dir, "thing-01", nil)
	require.NoError(t, err)
	srv, err := certs.ServerTLSConfig(dir)
	require.NoError(t, err)
	b, err := broker.New(broker.Config{TLS: srv, Throttle: broker.NoThrottle})
	require.NoError(t, err)
	require.NoError(t, b.Start(context.Background()))
	t.Cleanup(func() { b.Close() })
	cert, key := certs.DeviceFiles(dir, "thing-01")
	mtls, err := TLSFromFiles(cert, key, filepath.Join(dir, certs.CAFile))
	require.NoError(t, err)
	l := &lab{b: b, dir: dir}
	l.conf = Config{TLS: mtls, MQTTTimeout: 5 * time.Second}
	return l
}

// opt routes the module's dials to the broker's listeners.
func (l *lab) opt(c *Config) {
	c.TLS, c.MQTTTimeout = l.conf.TLS, l.conf.MQTTTimeout
	c.Dial = func(ctx context.Context, host string, port int) (net.Conn, error) {
		addr := map[int]string{8883: l.b.Addr("tls"), 1883: l.b.Addr("tcp")}[port]
		if host != "192.0.2.1" || addr == "" {
			return nil, fmt.Errorf("refused: %s:%d", host, port)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// tlsConnect waits for the broker's record of a mutual-TLS CONNECT.
func (l *lab) tlsConnect(t *testing.T) *broker.TLSInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	ev, err := l.b.WaitFor(ctx, func(e broker.Event) bool { return e.Kind == broker.EventConnect && e.TLS != nil })
	require.NoError(t, err, "the broker saw no TLS session")
	return ev.TLS
}

// expectAnyOrder reads len(want) chunks and compares them as a set (a URC
// may land before or after a command's OK).
func (r *rig) expectAnyOrder(want ...string) {
	r.t.Helper()
	var got []string
	for range want {
		select {
		case c := <-r.chunks:
			got = append(got, c)
		case <-time.After(waitLimit):
			r.t.Fatalf("timeout; got %q, want %q", got, want)
		}
	}
	sort.Strings(got)
	w := append([]string(nil), want...)
	sort.Strings(w)
	require.Equal(r.t, w, got)
}

// TestS1TLSLink: an SSL link with mutual TLS into the broker's TLS
// listener; the broker sees the device certificate (what DD-X01 judges).
func TestS1TLSLink(t *testing.T) {
	l := newLab(t)
	r := newRig(t, nil, l.opt)
	r.muxUp()
	r.cmd("AT+CIPSSLCCONF=2,3,0,0", ok)
	r.cmd("AT+CIPSSLCSNI=2,\""+awsName+"\"", ok)
	r.cmd("AT+CIPSSLCALPN=2,1,\"x-amzn-mqtt-ca\"", ok)
	r.cmd("AT+CIPSSLCCONF?", "+CIPSSLCCONF:0,0,0,0\r\n+CIPSSLCCONF:1,0,0,0\r\n+CIPSSLCCONF:2,3,0,0\r\n+CIPSSLCCONF:3,0,0,0\r\n+CIPSSLCCONF:4,0,0,0\r\n", ok)
	r.cmd("AT+CIPSTART=2,\"SSL\",\""+awsName+"\",8883", "2,CONNECT\r\n", ok)
	connect := "\x10\x14\x00\x04MQTT\x04\x02\x00\x3c\x00\x08thing-01"
	r.cmd(fmt.Sprintf("AT+CIPSEND=2,%d", len(connect)), "\r\nOK\r\n\r\n>")
	r.send(connect)
	r.expect(fmt.Sprintf("\r\nRecv %d bytes\r\n", len(connect)))
	// The broker's CONNACK may overtake SEND OK (esp-at#481).
	r.expectAnyOrder("\r\nSEND OK\r\n", "\r\n+IPD,2,4:\x20\x02\x00\x00\r\n")
	r.cmd("AT+CIPSTATE?", fmt.Sprintf("+CIPSTATE:2,\"SSL\",\"127.0.0.1\",8883,%d,0\r\n", r.m.Links()[0].LocalPort), ok)
	tlsInfo := l.tlsConnect(t)
	assert.Equal(t, "thing-01", tlsInfo.PeerCN)
	assert.Equal(t, awsName, tlsInfo.ServerName)
	assert.Equal(t, "x-amzn-mqtt-ca", tlsInfo.ALPN)
	r.cmd("AT+CIPCLOSE=2", "2,CLOSED\r\n", ok)

	// A server that fails verification: ERROR, then CLOSED.
	r.cmd("AT+CIPSSLCSNI=2,\"wrong.example\"", ok)
	r.cmd("AT+CIPSTART=2,\"SSL\",\""+awsName+"\",8883", "\r\nERROR\r\n", "2,CLOSED\r\n")
	ev := r.m.Events()
	assert.Contains(t, ev[len(ev)-1].Reason, "tls handshake")
}

func TestSSLWithoutCertificate(t *testing.T) {
	r := newRig(t, nil) // no Config.TLS
	r.muxUp()
	r.cmd("AT+CIPSSLCCONF=0,1,0,0", ok)
	r.cmd("AT+CIPSTART=0,\"SSL\",\"192.168.1.10\",8883", "\r\nERROR\r\n", "0,CLOSED\r\n")
	var reason string
	for _, e := range r.m.Events() {
		if e.Kind == EventCommand && strings.HasPrefix(e.Text, "AT+CIPSTART") {
			reason = e.Reason
		}
	}
	assert.Contains(t, reason, "NO CERT FOUND")
}

// TestQ1ModuleMQTT is transcript Q1: the module's own MQTT client with
// mutual TLS, subscribe, PUB (escaped) and PUBRAW, SUBRECV, queries,
// broker drop and automatic reconnect, clean.
func TestQ1ModuleMQTT(t *testing.T) {
	l := newLab(t)
	r := newRig(t, nil, l.opt)
	r.muxUp()
	r.cmd("AT+MQTTCONN?", "+MQTTCONN:0,0,0,\"\",\"\",\"\",0\r\n", ok)
	r.cmd("AT+MQTTUSERCFG=0,5,\"thing-01\",\"\",\"\",0,0,\"\"", ok)
	r.cmd("AT+MQTTCONNCFG=0,60,0,\"dev/thing-01/lwt\",\"gone\",1,0", ok)
	r.cmd("AT+MQTTSNI=0,\""+awsName+"\"", ok)
	connected := "+MQTTCONNECTED:0,5,\"" + awsName + "\",\"8883\",\"\",1\r\n"
	r.cmd("AT+MQTTCONN=0,\""+awsName+"\",8883,1", connected, ok)
	r.cmd("AT+MQTTCONN=0,\""+awsName+"\",8883,1", "\r\nERROR\r\n") // already connected
	r.cmd("AT+MQTTSUB=0,\"tele/thing-01\",1", ok)
	r.cmd("AT+MQTTSUB=0,\"tele/thing-01\",1", "ALREADY SUBSCRIBE\r\n", ok)
	r.cmd("AT+MQTTSUB?", "+MQTTSUB:0,6,\"tele/thing-01\",1\r\n", ok)
	r.cmd("AT+MQTTCONN?", "+MQTTCONN:0,6,5,\""+awsName+"\",\"8883\",\"\",1\r\n", ok)

	// PUB data is unescaped: {"t":21,"h":40} (15 bytes) on a 13-byte topic.
	r.send(`AT+MQTTPUB=0,"tele/thing-01","{\"t\":21\,\"h\":40}",1,0` + "\r\n")
	r.expectAnyOrder(ok, "+MQTTSUBRECV:0,\"tele/thing-01\",15,{\"t\":21,\"h\":40}\r\n")
	raw := "\x00\x01binary,\"data\"\r\nOK"
	r.cmd(fmt.Sprintf("AT+MQTTPUBRAW=0,\"tele/thing-01\",%d,1,0", len(raw)), "\r\nOK\r\n\r\n>")
	r.send(raw)
	r.expectAnyOrder("\r\n+MQTTPUB:OK\r\n", fmt.Sprintf("+MQTTSUBRECV:0,\"tele/thing-01\",%d,%s\r\n", len(raw), raw))

	tlsInfo := l.tlsConnect(t)
	assert.Equal(t, "thing-01", tlsInfo.PeerCN)

	// Broker drop with reconnect=1: +MQTTDISCONNECTED, then +MQTTCONNECTED.
	require.NoError(t, l.b.Kick("thing-01"))
	r.expect("+MQTTDISCONNECTED:0\r\n")
	select {
	case c := <-r.chunks:
		assert.Equal(t, connected, c)
	case <-time.After(15 * time.Second):
		t.Fatal("no reconnect")
	}
	// Subscriptions survive the reconnect.
	require.Eventually(t, func() bool {
		r.send(`AT+MQTTPUB=0,"tele/thing-01","x",0,0` + "\r\n")
		var got []string
		for i := 0; i < 2; i++ {
			select {
			case c := <-r.chunks:
				got = append(got, c)
			case <-time.After(time.Second):
			}
		}
		return assert.ObjectsAreEqual([]string{ok, "+MQTTSUBRECV:0,\"tele/thing-01\",1,x\r\n"}, sortStrings(got))
	}, waitLimit, 10*time.Millisecond)

	r.cmd("AT+MQTTUNSUB=0,\"nothing\"", "NO UNSUBSCRIBE\r\n", ok)
	r.cmd("AT+MQTTUNSUB=0,\"tele/thing-01\"", ok)
	r.cmd("AT+MQTTCLEAN=0", ok)
	r.cmd("AT+MQTTCONN?", "+MQTTCONN:0,0,0,\"\",\"\",\"\",0\r\n", ok)
	r.cmd("AT+MQTTPUB=0,\"t\",\"x\",0,0", "\r\nERROR\r\n")

	// Counters: topic + payload out per publish; <len> in per SUBRECV.
	byLink := map[int]Counters{}
	for _, e := range r.m.Events() {
		if e.Proto == "MQTT" && e.Totals != nil {
			byLink[e.Link] = *e.Totals
		}
	}
	require.Len(t, byLink, 2, "one pseudo link per broker connection")
	var first, second Counters
	ids := []int{}
	for id := range byLink {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	first, second = byLink[ids[0]], byLink[ids[1]]
	assert.Equal(t, Counters{BytesOut: 13 + 15 + 13 + uint64(len(raw)), PacketsOut: 2, BytesIn: 15 + uint64(len(raw)), PacketsIn: 2}, first)
	// After the reconnect, publishes sent before the resubscription took
	// effect did not come back.
	assert.GreaterOrEqual(t, second.PacketsIn, uint64(1))
	assert.Equal(t, second.BytesIn, second.PacketsIn*1)
	assert.Equal(t, second.BytesOut, second.PacketsOut*14)
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

func TestMQTTSubRecvPieces(t *testing.T) {
	l := newLab(t)
	r := newRig(t, nil, l.opt)
	r.muxUp()
	r.cmd("AT+MQTTUSERCFG=0,1,\"dev-1\",\"\",\"\",0,0,\"\"", ok)
	r.cmd("AT+MQTTCONN=0,\"192.0.2.1\",1883,0", "+MQTTCONNECTED:0,1,\"192.0.2.1\",\"1883\",\"\",0\r\n", ok)
	r.cmd("AT+MQTTSUB=0,\"t\",0", ok)
	payload := strings.Repeat("p", 2000)
	r.cmd("AT+MQTTPUBRAW=0,\"t\",2000,0,0", "\r\nOK\r\n\r\n>")
	r.send(payload)
	var got []string
	for i := 0; i < 3; i++ {
		got = append(got, <-r.chunks)
	}
	var pieces []string
	for _, c := range got {
		if strings.HasPrefix(c, "+MQTTSUBRECV") {
			assert.LessOrEqual(t, len(c), mqttRecvPiece+2)
			pieces = append(pieces, c)
		}
	}
	require.Len(t, pieces, 2)
	// 1024 bytes with the header (+MQTTSUBRECV:0,"t",1000,), then CR LF.
	assert.Equal(t, "+MQTTSUBRECV:0,\"t\",1000,"+payload[:1000]+"\r\n", pieces[0])
	assert.Equal(t, "+MQTTSUBRECV:0,\"t\",1000,"+payload[1000:]+"\r\n", pieces[1])
}

func TestMQTTRefusals(t *testing.T) {
	r := newRig(t, nil)
	r.muxUp()
	r.cmd("AT+MQTTCONN=0,\"192.0.2.1\",1883,0", "\r\nERROR\r\n") // not configured
	r.cmd("AT+MQTTCONNCFG=0,60,0,\"\",\"\",0,0", "\r\nERROR\r\n")
	r.cmd("AT+MQTTUSERCFG=1,1,\"c\",\"\",\"\",0,0,\"\"", "\r\nERROR\r\n") // link id must be 0
	r.cmd("AT+MQTTUSERCFG=0,7,\"c\",\"\",\"\",0,0,\"\"", ok)
	r.cmd("AT+MQTTCONN=0,\"192.0.2.1\",1883,0", "\r\nERROR\r\n") // WebSocket scheme
	r.cmd("AT+MQTTCLEAN=0", ok)
	r.cmd("AT+MQTTCLEAN=0", "\r\nERROR\r\n")
	reasons := []string{}
	for _, e := range r.m.Events() {
		if e.Kind == EventCommand && e.Result == "ERROR" {
			reasons = append(reasons, e.Reason)
		}
	}
	assert.Equal(t, []string{"wrong state: AT+MQTTUSERCFG first", "wrong state: AT+MQTTUSERCFG first",
		"bad argument: the MQTT link id must be 0", "unsupported: MQTT over WebSocket (scheme 7)",
		"wrong state: MQTT is not initialised"}, reasons)
}
