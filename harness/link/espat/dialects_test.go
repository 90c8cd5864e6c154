package espat

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/dns/dnsmessage"
)

// Transcripts of esp-at-dialects.md (M1 multi-link, P1 passive, I1 Zephyr
// init, N1 NonOS 1.7, §3 init commands); each expected string is one chunk.

const ok = "\r\nOK\r\n"

func (r *rig) writePeer(p net.Conn, s string) {
	r.t.Helper()
	_, err := p.Write([]byte(s))
	require.NoError(r.t, err)
}

// buffered is how many bytes link slot holds for passive reads.
func (r *rig) buffered(slot int) int {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	if l := r.m.links[slot]; l != nil {
		return len(l.rx)
	}
	return -1
}

// muxUp boots, turns echo off, switches to multi-link mode and joins.
func (r *rig) muxUp() {
	r.t.Helper()
	r.expect("\r\nready\r\n")
	r.cmd("ATE0", "ATE0\r\n", ok)
	r.cmd("AT+CIPMUX=1", ok)
	r.t2()
}

// TestM1MultiLink is transcript M1: two links at once, UDP with a
// per-datagram destination, +IPD with a link id, CIPSTATE, closes.
func TestM1MultiLink(t *testing.T) {
	r := newRig(t, nil)
	r.muxUp()
	r.cmd("AT+CIPMUX?", "+CIPMUX:1\r\n", ok)
	r.send("AT+CIPSTART=0,\"TCP\",\"192.168.1.10\",8883,7200\r\n")
	p0 := r.peer()
	r.expect("0,CONNECT\r\n", ok)
	r.send("AT+CIPSTART=1,\"UDP\",\"192.168.1.1\",53\r\n")
	p1 := r.peer()
	r.expect("1,CONNECT\r\n", ok)
	r.cmd("AT+CIPMUX=0", "\r\nERROR\r\n") // links are open

	query := strings.Repeat("q", 29)
	r.cmd("AT+CIPSEND=1,29,\"192.168.1.1\",53", "\r\nOK\r\n\r\n>")
	r.send(query)
	assert.Equal(t, query, readN(t, p1, 29))
	r.expect("\r\nRecv 29 bytes\r\n", "\r\nSEND OK\r\n")
	answer := strings.Repeat("a", 45)
	r.writePeer(p1, answer)
	r.expect("\r\n+IPD,1,45:" + answer + "\r\n")

	r.cmd("AT+CIPSTATE?", "+CIPSTATE:0,\"TCP\",\"192.168.1.10\",8883,50152,0\r\n+CIPSTATE:1,\"UDP\",\"192.168.1.1\",53,50153,0\r\n", ok)
	r.cmd("AT+CIPSTATUS", "STATUS:3\r\n+CIPSTATUS:0,\"TCP\",\"192.168.1.10\",8883,50152,0\r\n+CIPSTATUS:1,\"UDP\",\"192.168.1.1\",53,50153,0\r\n", ok)
	r.cmd("AT+CIPCLOSE=1", "1,CLOSED\r\n", ok)
	require.NoError(t, p0.Close())
	r.expect("0,CLOSED\r\n")
	r.cmd("AT+CIPSTART=0,\"TCP\",\"192.168.1.10\",1", "\r\nERROR\r\n", "0,CLOSED\r\n")
	r.cmd("AT+CIPSEND=2,4", "\r\nERROR\r\n")

	links := map[int]Counters{}
	for _, e := range r.m.Events() {
		if e.Totals != nil && e.LinkID != nil {
			links[*e.LinkID] = *e.Totals
		}
	}
	assert.Equal(t, Counters{BytesOut: 29, PacketsOut: 1, BytesIn: 45, PacketsIn: 1}, links[1], "per-link counters")
	assert.Equal(t, Counters{}, links[0])
}

func TestMultiLinkErrors(t *testing.T) {
	r := newRig(t, nil)
	r.muxUp()
	r.send("AT+CIPSTART=4,\"TCP\",\"192.168.1.10\",80\r\n")
	r.peer()
	r.expect("4,CONNECT\r\n", ok)
	r.cmd("AT+CIPSTART=4,\"TCP\",\"192.168.1.10\",80", "\r\nERROR\r\n") // id in use
	r.cmd("AT+CIPSTART=5,\"TCP\",\"192.168.1.10\",80", "\r\nERROR\r\n") // id out of range
	r.cmd("AT+CIPSTART=\"TCP\",\"192.168.1.10\",80", "\r\nERROR\r\n")   // no id with mux
	r.cmd("AT+CIPCLOSE", "\r\nERROR\r\n")                               // needs an id
	r.cmd("AT+CIPCLOSE=3", "\r\nERROR\r\n")                             // not open
	r.cmd("AT+CIPSEND=4,10,\"1.2.3.4\",53", "\r\nERROR\r\n")            // destination on TCP
	r.send("AT+CIPSTART=2,\"TCP\",\"192.168.1.10\",81\r\n")
	r.peer()
	r.expect("2,CONNECT\r\n", ok)
	r.cmd("AT+CIPCLOSE=5", "2,CLOSED\r\n", "4,CLOSED\r\n", ok)
	r.cmd("AT+CIPCLOSE=5", ok)

	reasons := map[string]string{}
	for _, e := range r.m.Events() {
		if e.Kind == EventCommand && e.Result == "ERROR" {
			reasons[e.Text] = e.Reason
		}
	}
	assert.Equal(t, "wrong state: link 4 is already open", reasons[`AT+CIPSTART=4,"TCP","192.168.1.10",80`])
	assert.Contains(t, reasons[`AT+CIPSTART=5,"TCP","192.168.1.10",80`], "bad argument")
	assert.Equal(t, "wrong state: link 3 is not open", reasons["AT+CIPCLOSE=3"])
}

// TestP1Passive is transcript P1: notices carry the total, CIPRECVLEN,
// a partial read re-announces the rest, CLOSED waits for the last read.
func TestP1Passive(t *testing.T) {
	r := newRig(t, nil)
	r.muxUp()
	r.cmd("AT+CIPRECVMODE=1", ok)
	r.cmd("AT+CIPRECVMODE?", "+CIPRECVMODE:1\r\n", ok)
	r.send("AT+CIPSTART=0,\"TCP\",\"192.168.1.10\",80,7200\r\n")
	p := r.peer()
	r.expect("0,CONNECT\r\n", ok)
	data := strings.Repeat("0123456789", 300)
	r.writePeer(p, data[:2000])
	r.expect("\r\n+IPD,0,2000\r\n")
	r.writePeer(p, data[2000:]) // no second notice before a read
	require.Eventually(t, func() bool { return r.buffered(0) == 3000 }, waitLimit, time.Millisecond)
	r.cmd("AT+CIPRECVLEN?", "+CIPRECVLEN:3000,-1,-1,-1,-1\r\n", ok)
	r.cmd("AT+CIPRECVDATA=0,2048", "+CIPRECVDATA:2048,"+data[:2048], ok, "\r\n+IPD,0,952\r\n")
	require.NoError(t, p.Close())
	r.expectQuiet() // CLOSED is withheld: 952 bytes unread
	r.cmd("AT+CIPRECVDATA=0,2048", "+CIPRECVDATA:952,"+data[2048:], ok, "0,CLOSED\r\n")
	r.cmd("AT+CIPRECVDATA=0,2048", "\r\nERROR\r\n")
	r.cmd("AT+CIPRECVLEN?", "+CIPRECVLEN:-1,-1,-1,-1,-1\r\n", ok)

	var last Counters
	for _, e := range r.m.Events() {
		if e.Kind == EventRecv {
			last = *e.Totals
		}
	}
	assert.Equal(t, Counters{BytesIn: 3000, PacketsIn: 2}, last, "passive: bytes and replies of CIPRECVDATA")
}

func TestPassiveSingleAndDINFO(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.cmd("AT+CIPRECVMODE=1", ok)
	r.cmd("AT+CIPDINFO=1", ok)
	r.t2()
	p := r.t3()
	r.writePeer(p, "hello")
	r.expect("\r\n+IPD,5\r\n")
	r.cmd("AT+CIPRECVLEN?", "+CIPRECVLEN:5\r\n", ok)
	r.cmd("AT+CIPRECVDATA=3", "+CIPRECVDATA:3,\"192.168.1.10\",8883,hel", ok, "\r\n+IPD,2\r\n")
	r.cmd("AT+CIPCLOSE", "CLOSED\r\n", ok) // discards the unread rest
}

func TestMultiLinkActiveDINFO(t *testing.T) {
	r := newRig(t, nil)
	r.muxUp()
	r.cmd("AT+CIPDINFO=1", ok)
	r.send("AT+CIPSTART=3,\"TCP\",\"192.168.1.10\",8883\r\n")
	p := r.peer()
	r.expect("3,CONNECT\r\n", ok)
	r.writePeer(p, "hello")
	r.expect("\r\n+IPD,3,5,\"192.168.1.10\",8883:hello\r\n")
}

// TestInitCommands covers the §3 init-time commands byte for byte.
func TestInitCommands(t *testing.T) {
	cases := []struct {
		name string
		line string
		want []string
	}{
		{"cwdhcp", "AT+CWDHCP=1,1", []string{ok}},
		{"cwdhcp query", "AT+CWDHCP?", []string{"+CWDHCP:3\r\n", ok}},
		{"cwdhcp bad", "AT+CWDHCP=2,1", []string{"\r\nERROR\r\n"}},
		{"cwlapopt", "AT+CWLAPOPT=0,23", []string{ok}},
		{"cwautoconn", "AT+CWAUTOCONN=0", []string{ok}},
		{"cwautoconn query", "AT+CWAUTOCONN?", []string{"+CWAUTOCONN:1\r\n", ok}},
		{"cipstamac", "AT+CIPSTAMAC?", []string{"+CIPSTAMAC:\"24:0a:c4:00:00:01\"\r\n", ok}},
		{"cipsta before join", "AT+CIPSTA?", []string{"+CIPSTA:ip:\"0.0.0.0\"\r\n+CIPSTA:gateway:\"0.0.0.0\"\r\n+CIPSTA:netmask:\"0.0.0.0\"\r\n", ok}},
		{"cifsr before join", "AT+CIFSR", []string{"+CIFSR:STAIP,\"0.0.0.0\"\r\n+CIFSR:STAMAC,\"24:0a:c4:00:00:01\"\r\n", ok}},
		{"cwjap query no ap", "AT+CWJAP?", []string{"No AP\r\n", ok}},
		{"cwhostname", "AT+CWHOSTNAME=\"zephyr\"", []string{ok}},
		{"cwhostname query", "AT+CWHOSTNAME?", []string{"+CWHOSTNAME:espressif\r\n", ok}},
		{"cwhostname too long", "AT+CWHOSTNAME=\"" + strings.Repeat("h", 33) + "\"", []string{"\r\nERROR\r\n"}},
		{"syslog", "AT+SYSLOG=1", []string{ok}},
		{"syslog query", "AT+SYSLOG?", []string{"+SYSLOG:0\r\n", ok}},
		{"uart cur flow 3", "AT+UART_CUR=115200,8,1,0,3", []string{ok}},
		{"uart def", "AT+UART_DEF=115200,8,1,0,0", []string{ok}},
		{"cipdns query dhcp", "AT+CIPDNS?", []string{"+CIPDNS:0,\"192.0.2.254\"\r\n", ok}},
		{"cipdns set", "AT+CIPDNS=1,\"8.8.8.8\",\"1.1.1.1\"", []string{ok}},
		{"cipdns repeated", "AT+CIPDNS=1,\"8.8.8.8\",\"8.8.8.8\"", []string{"\r\nERROR\r\n"}},
		{"cipdomain without wifi", "AT+CIPDOMAIN=\"abc-ats.iot.eu-west-1.amazonaws.com\"", []string{"\r\nERROR\r\n"}},
		{"cwlap default mask", "AT+CWLAP", []string{"+CWLAP:(3,\"lab\",-45,\"aa:bb:cc:dd:ee:ff\",6,-1,-1,4,4,7,0)\r\n", ok}},
		{"cwlap zephyr passive scan", "AT+CWLAP=,,,1,,", []string{"+CWLAP:(3,\"lab\",-45,\"aa:bb:cc:dd:ee:ff\",6,-1,-1,4,4,7,0)\r\n", ok}},
		{"cwqap idle", "AT+CWQAP", []string{ok}},
		{"cur names are 1.7 only", "AT+CWMODE_CUR=1", []string{"\r\nERROR\r\n"}},
		{"cipclosemode is 1.7 only", "AT+CIPCLOSEMODE=0,1", []string{"\r\nERROR\r\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.t1()
			r.cmd(tc.line, tc.want...)
			r.expectQuiet()
		})
	}
}

func TestStationAfterJoin(t *testing.T) {
	r := newRig(t, nil, func(c *Config) {
		c.AccessPoints = []AccessPoint{{SSID: "other", BSSID: "11:22:33:44:55:66", RSSI: -70, Channel: 1, Ecn: 0},
			{SSID: "lab", BSSID: "aa:bb:cc:dd:ee:ff", RSSI: -45, Channel: 6, Ecn: 3}}
	})
	r.t1()
	r.cmd("AT+CWLAPOPT=0,23", ok)
	r.cmd("AT+CWLAP", "+CWLAP:(0,\"other\",-70,1)\r\n+CWLAP:(3,\"lab\",-45,6)\r\n", ok)
	r.cmd("AT+CWLAPOPT=1,31", ok) // sorted by RSSI, with MAC
	r.cmd("AT+CWLAP", "+CWLAP:(3,\"lab\",-45,\"aa:bb:cc:dd:ee:ff\",6)\r\n+CWLAP:(0,\"other\",-70,\"11:22:33:44:55:66\",1)\r\n", ok)
	r.t2()
	r.cmd("AT+CWJAP?", "+CWJAP:\"lab\",\"aa:bb:cc:dd:ee:ff\",6,-45,0,1,3,0,1\r\n", ok)
	r.cmd("AT+CIPSTA?", "+CIPSTA:ip:\"192.0.2.100\"\r\n+CIPSTA:gateway:\"192.0.2.254\"\r\n+CIPSTA:netmask:\"255.255.255.0\"\r\n", ok)
	r.cmd("AT+CIFSR", "+CIFSR:STAIP,\"192.0.2.100\"\r\n+CIFSR:STAMAC,\"24:0a:c4:00:00:01\"\r\n", ok)
	r.cmd("AT+CIPDOMAIN=\"abc123-ats.iot.eu-west-1.amazonaws.com\"", "+CIPDOMAIN:\"192.0.2.1\"\r\n", ok)
	r.cmd("AT+CIPDOMAIN=\"example.org\"", "\r\nERROR\r\n")
	// Static IP (Zephyr CONFIG_WIFI_ESP_AT_IP_STATIC): DHCP off, then CIPSTA.
	r.cmd("AT+CWDHCP=0,1", ok)
	r.cmd("AT+CIPSTA=\"10.0.0.7\",\"10.0.0.1\",\"255.0.0.0\"", ok)
	r.cmd("AT+CWDHCP?", "+CWDHCP:2\r\n", ok)
	r.cmd("AT+CIPSTA?", "+CIPSTA:ip:\"10.0.0.7\"\r\n+CIPSTA:gateway:\"10.0.0.1\"\r\n+CIPSTA:netmask:\"255.0.0.0\"\r\n", ok)
	r.t3()
	r.cmd("AT+CWQAP", ok, "WIFI DISCONNECT\r\n", "CLOSED\r\n")
	r.cmd("AT+CWJAP?", "No AP\r\n", ok)
}

func TestSyslogErrCode(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.cmd("AT+SYSLOG=1", ok)
	r.cmd("AT+FOO", "ERR CODE:0x01010000\r\n", "\r\nERROR\r\n")
	r.cmd("AT+CWMODE=9", "ERR CODE:0x01030000\r\n", "\r\nERROR\r\n")
}

// dnsQuery builds a DNS A query for name.
func dnsQuery(t *testing.T, name string) []byte {
	t.Helper()
	msg := dnsmessage.Message{Header: dnsmessage.Header{ID: 0x1234, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}}}
	b, err := msg.Pack()
	require.NoError(t, err)
	return b
}

// TestModuleDNSOverUDP: Zephyr resolves names with its own resolver over
// a UDP link to the module's DNS server; the module answers it.
func TestModuleDNSOverUDP(t *testing.T) {
	r := newRig(t, nil, func(c *Config) { c.Hosts = map[string]string{"broker.lab": "192.0.2.7"} })
	r.muxUp()
	r.cmd("AT+CIPDNS?", "+CIPDNS:0,\"192.0.2.254\"\r\n", ok)
	r.cmd("AT+CIPSTART=1,\"UDP\",\"192.0.2.254\",53", "1,CONNECT\r\n", ok)
	for _, tc := range []struct {
		name string
		ip   string
	}{{"abc123-ats.iot.eu-west-1.amazonaws.com", "192.0.2.1"}, {"broker.lab", "192.0.2.7"}, {"nowhere.example", ""}} {
		q := dnsQuery(t, tc.name)
		r.cmd(fmt.Sprintf("AT+CIPSEND=1,%d,\"192.0.2.254\",53", len(q)), "\r\nOK\r\n\r\n>")
		r.send(string(q))
		r.expect(fmt.Sprintf("\r\nRecv %d bytes\r\n", len(q)), "\r\nSEND OK\r\n")
		chunk := <-r.chunks
		head := "\r\n+IPD,1,"
		require.True(t, strings.HasPrefix(chunk, head), "%q", chunk)
		i := strings.IndexByte(chunk, ':')
		var msg dnsmessage.Message
		require.NoError(t, msg.Unpack([]byte(chunk[i+1:len(chunk)-2])))
		assert.Equal(t, uint16(0x1234), msg.Header.ID)
		if tc.ip == "" {
			assert.Equal(t, dnsmessage.RCodeNameError, msg.Header.RCode)
			continue
		}
		require.Len(t, msg.Answers, 1)
		a := msg.Answers[0].Body.(*dnsmessage.AResource).A
		assert.Equal(t, tc.ip, net.IP(a[:]).String())
	}
	r.cmd("AT+CIPCLOSE=1", "1,CLOSED\r\n", ok)
}

// TestAWSNameDialsTheBroker: a host name of the AWS endpoint form reaches
// the dialer as NameIP; CIPSTATE shows that address.
func TestAWSNameDialsTheBroker(t *testing.T) {
	dialled := make(chan string, 4)
	r := newRig(t, nil, func(c *Config) {
		inner := c.Dial
		c.Dial = func(ctx context.Context, host string, port int) (net.Conn, error) {
			dialled <- fmt.Sprintf("%s:%d", host, port)
			return inner(ctx, host, port)
		}
	})
	r.muxUp()
	r.send("AT+CIPSTART=0,\"TCP\",\"a1b2c3-ats.iot.us-east-1.amazonaws.com\",8883,7200\r\n")
	r.peer()
	r.expect("0,CONNECT\r\n", ok)
	r.cmd("AT+CIPSTATE?", "+CIPSTATE:0,\"TCP\",\"192.0.2.1\",8883,50152,0\r\n", ok)
	assert.Equal(t, "192.0.2.1:8883", <-dialled)
}

func TestMoreCommands(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.cmd("AT+CIPDNS=1,\"8.8.8.8\",\"1.1.1.1\"", ok)
	r.cmd("AT+CIPDNS?", "+CIPDNS:1,\"8.8.8.8\",\"1.1.1.1\"\r\n", ok)
	r.cmd("AT+CIPDNS=0", ok)
	r.cmd("AT+CIPDNS?", "+CIPDNS:0,\"192.0.2.254\"\r\n", ok)
	r.cmd("AT+CIPSTAMAC=\"11:22:33:44:55:66\"", "\r\nERROR\r\n")
	r.cmd("AT+CIPRECVDATA=10", "\r\nERROR\r\n") // not passive
	r.cmd("AT+CIPSSLCCONF=3", ok)
	r.cmd("AT+CIPSSLCCONF?", "+CIPSSLCCONF:3,0,0\r\n", ok)
	r.cmd("AT+CIPSSLCALPN=2,\"a\"", "\r\nERROR\r\n") // count does not match
	r.cmd("AT+CIPSSLCSNI=\"\"", "\r\nERROR\r\n")
	r.cmd("AT+CWLAPOPT?", "+CWLAPOPT:0,2047\r\n", ok)
	// MQTT configuration without a broker.
	r.cmd("AT+MQTTCLIENTID=0,\"x\"", "\r\nERROR\r\n") // USERCFG first
	r.cmd("AT+MQTTUSERCFG=0,1,\"c\",\"u\",\"p\",0,0,\"\"", ok)
	r.cmd("AT+MQTTCLIENTID=0,\"dev-2\"", ok)
	r.cmd("AT+MQTTLONGPASSWORD=0,5", "\r\nOK\r\n\r\n>")
	r.send("p,\"w\"")
	r.expect(ok)
	r.cmd("AT+MQTTALPN=0,1,\"mqtt\"", ok)
	r.cmd("AT+MQTTALPN=0,2,\"mqtt\"", "\r\nERROR\r\n")
	r.cmd("AT+MQTTCONN?", "+MQTTCONN:0,1,1,\"\",\"\",\"\",0\r\n", ok)
	r.cmd("AT+MQTTSUB?", "+MQTTSUB:0,1,\"\",0\r\n", ok)
	r.cmd("AT+MQTTCONN=0,\"192.0.2.1\",1883,0", "\r\nERROR\r\n") // no Wi-Fi
	r.cmd("AT+MQTTPUBRAW=0,\"t\",4,0,0", "\r\nERROR\r\n")        // not connected
	r.m.mu.Lock()
	assert.Equal(t, "dev-2", r.m.mqttCfg.clientID)
	assert.Equal(t, "p,\"w\"", r.m.mqttCfg.pass)
	assert.Equal(t, []string{"mqtt"}, r.m.mqttCfg.alpn)
	r.m.mu.Unlock()
}

// In 1.7 a peer close is reported at once even with data unread (§2.6).
func TestPassiveClose17(t *testing.T) {
	r := newRig(t, nil, func(c *Config) { c.Dialect = Dialect17 })
	r.muxUp()
	r.cmd("AT+CIPRECVMODE=1", ok)
	r.send("AT+CIPSTART=0,\"TCP\",\"192.168.1.10\",80\r\n")
	p := r.peer()
	r.expect("0,CONNECT\r\n", ok)
	r.writePeer(p, "data")
	r.expect("\r\n+IPD,0,4\r\n")
	require.NoError(t, p.Close())
	r.expect("0,CLOSED\r\n")
}

func TestSyslogWithText17(t *testing.T) {
	r := newRig(t, nil, func(c *Config) { c.Dialect = Dialect17 })
	r.muxUp()
	r.cmd("AT+SYSLOG=1", ok)
	r.cmd("AT+CIPCLOSE=2", "UNLINK\r\n", "ERR CODE:0x01090000\r\n", "\r\nERROR\r\n")
}
