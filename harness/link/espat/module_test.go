package espat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The expectations below are the byte-exact transcripts T1-T10 of
// /work/shared/docs/esp-at.md §5 (each M: line is one chunk there and one
// Write here; net.Pipe delivers one Write per Read, so chunks are compared
// exactly).

const waitLimit = 5 * time.Second

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// rig is a module served over net.Pipe with a scriptable network behind it.
type rig struct {
	t      *testing.T
	m      *Module
	host   net.Conn
	chunks chan string
	clock  *fakeClock
	peers  chan net.Conn // the far ends of accepted links
	gates  map[string]chan time.Time
	served chan error
	cancel context.CancelFunc
}

type rigOpt func(*Config)

func newRig(t *testing.T, gated []string, opts ...rigOpt) *rig {
	t.Helper()
	r := &rig{t: t, chunks: make(chan string, 256), peers: make(chan net.Conn, 8),
		gates: map[string]chan time.Time{}, served: make(chan error, 1),
		clock: &fakeClock{now: time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)}}
	cfg := Config{
		SSID: "lab", Password: "secret123", Now: r.clock.Now,
		Dial: func(ctx context.Context, host string, port int) (net.Conn, error) {
			switch {
			case host == "no.such.host":
				return nil, fmt.Errorf("lookup %s: %w", host, ErrNoSuchHost)
			case port == 1:
				return nil, errors.New("connect: connection refused")
			}
			near, far := net.Pipe()
			r.peers <- far
			return near, nil
		},
	}
	cfg.DialUDP = cfg.Dial // UDP links get in-memory peers too
	for _, o := range opts {
		o(&cfg)
	}
	r.m = New(cfg)
	for _, g := range gated {
		r.gates[g] = make(chan time.Time, 1)
	}
	r.m.timer = func(what string, d time.Duration) <-chan time.Time {
		if g, ok := r.gates[what]; ok {
			return g
		}
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
	host, mod := net.Pipe()
	r.host = host
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.served <- r.m.Serve(ctx, mod) }()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := host.Read(buf)
			if n > 0 {
				r.chunks <- string(buf[:n])
			}
			if err != nil {
				close(r.chunks)
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		host.Close()
		mod.Close()
		select {
		case <-r.served:
		case <-time.After(waitLimit):
			t.Error("Serve did not return")
		}
	})
	return r
}

func (r *rig) open(name string) { r.gates[name] <- time.Time{} }

// cmd sends one command line and expects the chunks of its answer.
func (r *rig) cmd(line string, want ...string) {
	r.t.Helper()
	r.send(line + "\r\n")
	r.expect(want...)
}

func (r *rig) send(s string) {
	r.t.Helper()
	_, err := r.host.Write([]byte(s))
	require.NoError(r.t, err)
}

// expect reads the next chunks and compares them byte for byte.
func (r *rig) expect(want ...string) {
	r.t.Helper()
	for i, w := range want {
		select {
		case got, ok := <-r.chunks:
			require.True(r.t, ok, "stream closed, wanted chunk %d %q", i, w)
			require.Equal(r.t, w, got, "chunk %d", i)
		case <-time.After(waitLimit):
			r.t.Fatalf("timeout waiting for chunk %d %q", i, w)
		}
	}
}

// expectNothing checks no chunk is pending after a round trip: it sends AT
// and sees exactly the OK.
func (r *rig) expectQuiet() {
	r.t.Helper()
	r.send("AT\r\n")
	r.expect("\r\nOK\r\n")
}

// waitEvent polls the event log until an event of kind k is there.
func (r *rig) waitEvent(k EventKind) {
	r.t.Helper()
	require.Eventually(r.t, func() bool {
		for _, e := range r.m.Events() {
			if e.Kind == k {
				return true
			}
		}
		return false
	}, waitLimit, time.Millisecond, "no %s event", k)
}

func (r *rig) peer() net.Conn {
	r.t.Helper()
	select {
	case p := <-r.peers:
		r.t.Cleanup(func() { p.Close() })
		return p
	case <-time.After(waitLimit):
		r.t.Fatal("no link dialled")
		return nil
	}
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	buf := make([]byte, n)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitLimit)))
	_, err := io.ReadFull(c, buf)
	require.NoError(t, err)
	return string(buf)
}

// t1 runs transcript T1 (boot, init) and returns with echo off.
func (r *rig) t1() {
	r.t.Helper()
	r.expect("\r\nready\r\n")
	r.send("AT\r\n")
	r.expect("AT\r\n", "\r\nOK\r\n")
	r.send("ATE0\r\n")
	r.expect("ATE0\r\n", "\r\nOK\r\n")
	r.send("AT+GMR\r\n")
	r.expect("AT version:2.4.0.0(emu0001 - ESP32 - May 20 2022 03:12:58)\r\nSDK version:v4.2.2\r\ncompile time(emu0001):May 20 2022 03:30:44\r\nBin version:2.4.0(WROOM-32)\r\n",
		"\r\nOK\r\n")
	r.send("AT+CWMODE=1\r\n")
	r.expect("\r\nOK\r\n")
	r.send("AT+CIPMUX=0\r\n")
	r.expect("\r\nOK\r\n")
}

// t2 joins Wi-Fi (T2).
func (r *rig) t2() {
	r.t.Helper()
	r.send("AT+CWJAP=\"lab\",\"secret123\"\r\n")
	r.expect("WIFI CONNECTED\r\n", "WIFI GOT IP\r\n", "\r\nOK\r\n")
}

// t3 connects (T3) and returns the peer end.
func (r *rig) t3() net.Conn {
	r.t.Helper()
	r.send("AT+CIPSTART=\"TCP\",\"192.168.1.10\",8883,60\r\n")
	p := r.peer()
	r.expect("CONNECT\r\n", "\r\nOK\r\n")
	return p
}

func TestT1ToT5(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.t2()
	p := r.t3()

	// T4 send 20 bytes.
	r.send("AT+CIPSEND=20\r\n")
	r.expect("\r\nOK\r\n\r\n>")
	r.send("0123456789ABCDEFGHIJ")
	assert.Equal(t, "0123456789ABCDEFGHIJ", readN(t, p, 20))
	r.expect("\r\nRecv 20 bytes\r\n", "\r\nSEND OK\r\n")

	// T5 receive 5.
	_, err := p.Write([]byte("hello"))
	require.NoError(t, err)
	r.expect("\r\n+IPD,5:hello\r\n")
	r.expectQuiet()

	info, ok := r.m.Link()
	require.True(t, ok)
	assert.Equal(t, Counters{BytesOut: 20, PacketsOut: 1, BytesIn: 5, PacketsIn: 1}, info.Counters)
	assert.Equal(t, firstLocalPort, info.LocalPort)
	snap := r.m.Snapshot()
	assert.Equal(t, info.Counters, snap.Current)
	assert.Equal(t, info.Counters, snap.Totals)
}

func TestT6RemoteCloseReconnect(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.t2()
	p := r.t3()
	require.NoError(t, p.Close())
	r.expect("CLOSED\r\n")
	r.send("AT+CIPSTATE?\r\n")
	r.expect("\r\nOK\r\n")
	r.send("AT+CIPSTART=\"TCP\",\"192.168.1.10\",8883\r\n")
	r.peer()
	r.expect("CONNECT\r\n", "\r\nOK\r\n")
	r.send("AT+CIPSTATE?\r\n")
	r.expect("+CIPSTATE:0,\"TCP\",\"192.168.1.10\",8883,50153,0\r\n", "\r\nOK\r\n")

	ev := r.m.Events()
	var closes []string
	for _, e := range ev {
		if e.Kind == EventLinkClose {
			closes = append(closes, e.Reason)
		}
	}
	assert.Equal(t, []string{"peer closed"}, closes)
}

func TestT7SNTP(t *testing.T) {
	r := newRig(t, nil, func(c *Config) { c.SyncDelay = 30 * time.Second })
	boot := r.clock.Now()
	r.t1()
	r.t2()
	r.send("AT+CIPSNTPCFG=1,0,\"pool.ntp.org\"\r\n")
	r.expect("\r\nOK\r\n")
	r.clock.Set(boot.Add(7 * time.Second))
	r.send("AT+CIPSNTPTIME?\r\n")
	r.expect("+CIPSNTPTIME:Thu Jan  1 00:00:07 1970", "\r\nOK\r\n")
	r.clock.Set(time.Date(2026, 12, 4, 9, 5, 3, 0, time.UTC))
	r.send("AT+CIPSNTPTIME?\r\n")
	r.expect("+CIPSNTPTIME:Fri Dec  4 09:05:03 2026", "\r\nOK\r\n")
}

func TestSNTPTimezones(t *testing.T) {
	cases := []struct {
		name, tz, want string
	}{
		{"hours", "8", "Fri Dec  4 17:05:03 2026"},
		{"negative hours", "-5", "Fri Dec  4 04:05:03 2026"},
		{"hhmm", "530", "Fri Dec  4 14:35:03 2026"},
		{"signed hhmm", "-0930", "Thu Dec  3 23:35:03 2026"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.t1()
			r.t2()
			r.send("AT+CIPSNTPCFG=1," + tc.tz + ",\"pool.ntp.org\",\"time.google.com\"\r\n")
			r.expect("\r\nOK\r\n")
			r.clock.Set(time.Date(2026, 12, 4, 9, 5, 3, 0, time.UTC))
			r.send("AT+CIPSNTPTIME?\r\n")
			r.expect("+CIPSNTPTIME:"+tc.want, "\r\nOK\r\n")
		})
	}
}

func TestSNTPUnsyncedWithoutWiFi(t *testing.T) {
	r := newRig(t, nil)
	boot := r.clock.Now()
	r.t1()
	r.send("AT+CIPSNTPCFG=1,0,\"pool.ntp.org\"\r\n")
	r.expect("\r\nOK\r\n")
	r.clock.Set(boot.Add(61 * time.Second))
	r.send("AT+CIPSNTPTIME?\r\n")
	r.expect("+CIPSNTPTIME:Thu Jan  1 00:01:01 1970", "\r\nOK\r\n")
}

func TestT8Errors(t *testing.T) {
	r := newRig(t, []string{"join"})
	r.t1()
	r.send("AT+CWJAP=\"lab\",\"secret123\"\r\n")
	r.open("join")
	r.expect("WIFI CONNECTED\r\n", "WIFI GOT IP\r\n", "\r\nOK\r\n")

	r.send("AT+CIPSEND=20\r\n")
	r.expect("\r\nERROR\r\n")
	r.send("AT+CIPSTART=\"TCP\",\"no.such.host\",1883\r\n")
	r.expect("\r\nERROR\r\n")
	r.send("AT+CIPSTART=\"TCP\",\"192.168.1.10\",1\r\n")
	r.expect("\r\nERROR\r\n", "CLOSED\r\n")

	r.send("AT+CWJAP=\"lab\",\"wrong\"\r\n")
	r.expect("WIFI DISCONNECT\r\n")
	r.send("AT\r\n")
	r.expect("\r\nbusy p...\r\n")
	r.open("join")
	r.expect("+CWJAP:2\r\n", "\r\nERROR\r\n")

	r.send("AT+CWJAP=\"elsewhere\",\"secret123\"\r\n")
	r.open("join")
	r.expect("+CWJAP:3\r\n", "\r\nERROR\r\n")
	// Wi-Fi is down now: no link possible.
	r.send("AT+CIPSTART=\"TCP\",\"192.168.1.10\",8883\r\n")
	r.expect("\r\nERROR\r\n")
}

func TestT9LinkLostMidSend(t *testing.T) {
	cases := []struct {
		name string
		drop func(r *rig, p net.Conn)
	}{
		{"hook DropLink", func(r *rig, _ net.Conn) { require.True(r.t, r.m.DropLink()) }},
		{"peer closes", func(_ *rig, p net.Conn) { p.Close() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.t1()
			r.t2()
			p := r.t3()
			r.send("AT+CIPSEND=20\r\n")
			r.expect("\r\nOK\r\n\r\n>")
			tc.drop(r, p)
			r.expect("CLOSED\r\n")
			r.send("0123456789") // the payload still arrives in pieces
			r.send("ABCDEFGHIJ")
			r.expect("\r\nRecv 20 bytes\r\n", "\r\nSEND FAIL\r\n")
			r.expectQuiet()
			snap := r.m.Snapshot()
			assert.Equal(t, Counters{}, snap.Totals, "a failed send is not counted")
			assert.Zero(t, snap.Link)
			r.send("AT+CIPSEND=1\r\n")
			r.expect("\r\nERROR\r\n")
		})
	}
}

func TestT10DataDuringSend(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.t2()
	p := r.t3()
	r.send("AT+CIPSEND=4\r\n")
	r.expect("\r\nOK\r\n\r\n>")
	_, err := p.Write([]byte("hi"))
	require.NoError(t, err)
	r.expect("\r\n+IPD,2:hi\r\n")
	r.send("ping")
	assert.Equal(t, "ping", readN(t, p, 4))
	r.expect("\r\nRecv 4 bytes\r\n", "\r\nSEND OK\r\n")
}

// A peer that answers before it has read the whole payload (as the
// in-memory broker effectively does: the hand-over ends only once it read
// the payload) gets its answer written after the SEND OK, as a module's
// SEND OK (payload in the TCP/IP stack) precedes any answer to it. Hosts that take the rest of the UART
// chunk after +IPD,<len>: as data (TinyGo's espat) depend on it.
func TestAnswerDuringHandOverFollowsSendOK(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.t2()
	p := r.t3()
	r.send("AT+CIPSEND=4\r\n")
	r.expect("\r\nOK\r\n\r\n>")
	r.send("ping")
	assert.Equal(t, "pin", readN(t, p, 3))
	_, err := p.Write([]byte("pong")) // read by the module while its write of "ping" is still under way
	require.NoError(t, err)
	assert.Equal(t, "g", readN(t, p, 1))
	require.NoError(t, p.Close())
	r.expect("\r\nRecv 4 bytes\r\n", "\r\nSEND OK\r\n", "\r\n+IPD,4:pong\r\n", "CLOSED\r\n")
	r.expectQuiet()
	snap := r.m.Snapshot()
	assert.Equal(t, Counters{BytesOut: 4, PacketsOut: 1, BytesIn: 4, PacketsIn: 1}, snap.Totals)
}

func TestIPDChunking(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.t2()
	p := r.t3()
	data := strings.Repeat("0123456789", 600) // 6000 bytes, containing CR-free data
	data = data[:5990] + "\r\nOK\r\n+IPD"     // protocol-looking bytes are data too
	go func() { _, _ = p.Write([]byte(data)) }()
	r.expect("\r\n+IPD,2920:"+data[:2920]+"\r\n", "\r\n+IPD,2920:"+data[2920:5840]+"\r\n",
		"\r\n+IPD,160:"+data[5840:]+"\r\n")
	r.expectQuiet()
	info, _ := r.m.Link()
	assert.Equal(t, Counters{BytesIn: 6000, PacketsIn: 3}, info.Counters)
}

func TestCIPDINFO(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.send("AT+CIPDINFO?\r\n")
	r.expect("+CIPDINFO:false\r\nOK\r\n")
	r.send("AT+CIPDINFO=1\r\n")
	r.expect("\r\nOK\r\n")
	r.t2()
	p := r.t3()
	_, err := p.Write([]byte("hello"))
	require.NoError(t, err)
	r.expect("\r\n+IPD,5,\"192.168.1.10\",8883:hello\r\n")
}

func TestSimpleCommands(t *testing.T) {
	cases := []struct {
		name string
		send string
		want []string
	}{
		{"cwmode query", "AT+CWMODE?\r\n", []string{"+CWMODE:1\r\n", "\r\nOK\r\n"}},
		{"cipmux query", "AT+CIPMUX?\r\n", []string{"+CIPMUX:0\r\n", "\r\nOK\r\n"}},
		{"recvmode query", "AT+CIPRECVMODE?\r\n", []string{"+CIPRECVMODE:0\r\n", "\r\nOK\r\n"}},
		{"sysstore query", "AT+SYSSTORE?\r\n", []string{"+SYSSTORE:1\r\n", "\r\nOK\r\n"}},
		{"uart query", "AT+UART_CUR?\r\n", []string{"+UART_CUR:115200,8,1,0,0\r\n", "\r\nOK\r\n"}},
		{"sysstore 0", "AT+SYSSTORE=0\r\n", []string{"\r\nOK\r\n"}},
		{"recvmode 0", "AT+CIPRECVMODE=0\r\n", []string{"\r\nOK\r\n"}},
		{"uart cur", "AT+UART_CUR=921600,8,1,0,0\r\n", []string{"\r\nOK\r\n"}},
		{"cwmode with autoconnect", "AT+CWMODE=3,0\r\n", []string{"\r\nOK\r\n"}},
		{"sntp disable", "AT+CIPSNTPCFG=0\r\n", []string{"\r\nOK\r\n"}},
		{"mux 1", "AT+CIPMUX=1\r\n", []string{"\r\nOK\r\n"}},
		{"passive recv", "AT+CIPRECVMODE=1\r\n", []string{"\r\nOK\r\n"}},
		{"unknown", "AT+FOO\r\n", []string{"\r\nERROR\r\n"}},
		{"lower case", "at\r\n", []string{"\r\nERROR\r\n"}},
		{"empty line", "\r\n", []string{"\r\nERROR\r\n"}},
		{"lone LF does not end a line", "AT\nAT\r\n", []string{"\r\nERROR\r\n"}},
		{"trailing space", "AT \r\n", []string{"\r\nERROR\r\n"}},
		{"cwmode out of range", "AT+CWMODE=4\r\n", []string{"\r\nERROR\r\n"}},
		{"send too long", "AT+CIPSEND=8193\r\n", []string{"\r\nERROR\r\n"}},
		{"send zero", "AT+CIPSEND=0\r\n", []string{"\r\nERROR\r\n"}},
		{"close without link", "AT+CIPCLOSE\r\n", []string{"\r\nERROR\r\n"}},
		{"cwjap unquoted", "AT+CWJAP=lab,secret123\r\n", []string{"\r\nERROR\r\n"}},
		{"cipstart udp", "AT+CIPSTART=\"UDP\",\"1.2.3.4\",53\r\n", []string{"\r\nERROR\r\n"}},
		{"cipstart no wifi", "AT+CIPSTART=\"TCP\",\"1.2.3.4\",8883\r\n", []string{"\r\nERROR\r\n"}},
		{"cipstart port range", "AT+CIPSTART=\"TCP\",\"1.2.3.4\",65536\r\n", []string{"\r\nERROR\r\n"}},
		{"sntp bad timezone", "AT+CIPSNTPCFG=1,15,\"pool.ntp.org\"\r\n", []string{"\r\nERROR\r\n"}},
		{"unterminated quote", "AT+CWJAP=\"lab,\"x\r\n", []string{"\r\nERROR\r\n"}},
		{"cipstate no link", "AT+CIPSTATE?\r\n", []string{"\r\nOK\r\n"}},
		{"cipstatus after boot", "AT+CIPSTATUS\r\n", []string{"STATUS:1\r\n", "\r\nOK\r\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.t1()
			r.send(tc.send)
			r.expect(tc.want...)
			r.expectQuiet()
		})
	}
}

func TestLongLineDiscarded(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.send("AT+" + strings.Repeat("X", 300) + "\r\n")
	r.expectQuiet() // no reply to the long line, the next one works
	var got []Event
	for _, e := range r.m.Events() {
		if e.Kind == EventDiscard {
			got = append(got, e)
		}
	}
	require.Len(t, got, 1)
	assert.Equal(t, 305, got[0].Bytes)
	// The longest accepted line is 256 bytes with its CR LF.
	r.send("AT+CWJAP=\"" + strings.Repeat("s", 254-len("AT+CWJAP=\"\",\"p\"")) + "\",\"p\"\r\n")
	r.expect("+CWJAP:3\r\n", "\r\nERROR\r\n")
}

func TestEscapedCredentials(t *testing.T) {
	r := newRig(t, nil, func(c *Config) { c.SSID, c.Password = `my,lab`, `p"w\d` })
	r.t1()
	r.send(`AT+CWJAP="my\,lab","p\"w\\d",,1` + "\r\n")
	r.expect("WIFI CONNECTED\r\n", "WIFI GOT IP\r\n", "\r\nOK\r\n")
}

func TestCIPSTATUSStates(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	status := func(want ...string) {
		t.Helper()
		r.send("AT+CIPSTATUS\r\n")
		r.expect(want...)
	}
	status("STATUS:1\r\n", "\r\nOK\r\n")
	r.t2()
	status("STATUS:2\r\n", "\r\nOK\r\n")
	r.t3()
	status("STATUS:3\r\n+CIPSTATUS:0,\"TCP\",\"192.168.1.10\",8883,50152,0\r\n", "\r\nOK\r\n")
	r.send("AT+CIPCLOSE\r\n")
	r.expect("CLOSED\r\n", "\r\nOK\r\n")
	status("STATUS:4\r\n", "\r\nOK\r\n")
	r.send("AT+CWMODE=0\r\n")
	r.expect("WIFI DISCONNECT\r\n", "\r\nOK\r\n")
	status("STATUS:5\r\n", "\r\nOK\r\n")
}

func TestBusyWithEchoOn(t *testing.T) {
	r := newRig(t, []string{"join"})
	r.expect("\r\nready\r\n")
	r.send("AT+CWJAP=\"lab\",\"secret123\"\r\n")
	r.expect("AT+CWJAP=\"lab\",\"secret123\"\r\n")
	r.send("AT+GMR\r\n")
	r.expect("AT+GMR\r\n", "\r\nbusy p...\r\n")
	r.open("join")
	r.expect("WIFI CONNECTED\r\n", "WIFI GOT IP\r\n", "\r\nOK\r\n")
}

func TestEchoAsBytesArrive(t *testing.T) {
	r := newRig(t, nil)
	r.expect("\r\nready\r\n")
	r.send("A")
	r.expect("A")
	r.send("T\r")
	r.expect("T\r")
	r.send("\n")
	r.expect("\n", "\r\nOK\r\n")
}

func TestResetAndReboot(t *testing.T) {
	r := newRig(t, []string{"ready"})
	r.open("ready")
	r.expect("\r\nready\r\n")
	r.send("ATE0\r\n")
	r.expect("ATE0\r\n", "\r\nOK\r\n")
	r.t2()
	p := r.t3()

	r.send("AT+RST\r\n")
	r.expect("\r\nOK\r\n")
	// The link vanishes without CLOSED; the peer sees it end.
	readErr := make(chan error, 1)
	go func() { _, err := p.Read(make([]byte, 1)); readErr <- err }()
	select {
	case err := <-readErr:
		require.ErrorIs(t, err, io.EOF)
	case <-time.After(waitLimit):
		t.Fatal("link not closed by AT+RST")
	}
	r.send("AT\r\n") // lost while booting
	r.waitEvent(EventDiscard)
	r.open("ready")
	r.expect("\r\nready\r\n")
	r.send("AT\r\n")
	r.expect("AT\r\n", "\r\nOK\r\n") // echo is back on
	r.send("AT+CIPSTATE?\r\n")
	r.expect("AT+CIPSTATE?\r\n", "\r\nOK\r\n")

	// A spontaneous reboot looks the same.
	r.send("ATE0\r\n")
	r.expect("ATE0\r\n", "\r\nOK\r\n")
	r.m.Reboot()
	r.open("ready")
	r.expect("\r\nready\r\n")
	r.send("AT\r\n")
	r.expect("AT\r\n", "\r\nOK\r\n")

	var kinds []EventKind
	for _, e := range r.m.Events() {
		if e.Kind == EventBoot || e.Kind == EventDiscard || e.Kind == EventLinkClose {
			kinds = append(kinds, e.Kind)
		}
	}
	assert.Equal(t, []EventKind{EventBoot, EventLinkClose, EventDiscard, EventBoot, EventBoot}, kinds)
}

func TestWiFiDropHook(t *testing.T) {
	r := newRig(t, []string{"reconnect"})
	r.t1()
	r.t2()
	r.t3()
	require.True(t, r.m.WiFiDrop())
	r.expect("WIFI DISCONNECT\r\n", "CLOSED\r\n")
	r.send("AT+CIPSTART=\"TCP\",\"192.168.1.10\",8883\r\n")
	r.expect("\r\nERROR\r\n")
	r.open("reconnect")
	r.expect("WIFI CONNECTED\r\n", "WIFI GOT IP\r\n")
	r.t3()
	assert.False(t, newRigIdleWiFi(t).m.WiFiDrop(), "no Wi-Fi, nothing to drop")
}

func newRigIdleWiFi(t *testing.T) *rig {
	r := newRig(t, nil)
	r.expect("\r\nready\r\n")
	return r
}

func TestInjectBeforePrompt(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.t2()
	p := r.t3()
	r.m.InjectBeforePrompt([]byte{0xd0, 0x00})
	r.send("AT+CIPSEND=2\r\n")
	r.expect("\r\nOK\r\n", "\r\n+IPD,2:\xd0\x00\r\n", "\r\n>")
	r.send("\xc0\x00")
	assert.Equal(t, "\xc0\x00", readN(t, p, 2))
	r.expect("\r\nRecv 2 bytes\r\n", "\r\nSEND OK\r\n")
	// One-shot: the next prompt is normal.
	r.send("AT+CIPSEND=1\r\n")
	r.expect("\r\nOK\r\n\r\n>")
}

func TestBytesBeyondPayloadAreALine(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.t2()
	p := r.t3()
	r.send("AT+CIPSEND=3\r\n")
	r.expect("\r\nOK\r\n\r\n>")
	go func() { _, _ = io.ReadFull(p, make([]byte, 3)) }()
	r.send("abcAT\r\n")
	// The extra "AT" line arrives while the payload is being sent.
	r.expect("\r\nRecv 3 bytes\r\n", "\r\nbusy p...\r\n", "\r\nSEND OK\r\n")
}

func TestEventsDescribeTraffic(t *testing.T) {
	var mu sync.Mutex
	var seen []Event
	r := newRig(t, nil, func(c *Config) {
		c.OnEvent = func(e Event) { mu.Lock(); seen = append(seen, e); mu.Unlock() }
	})
	r.t1()
	r.t2()
	p := r.t3()
	r.send("AT+CIPSEND=3\r\n")
	r.expect("\r\nOK\r\n\r\n>")
	r.send("abc")
	readN(t, p, 3)
	r.expect("\r\nRecv 3 bytes\r\n", "\r\nSEND OK\r\n")
	_, err := p.Write([]byte("xy"))
	require.NoError(t, err)
	r.expect("\r\n+IPD,2:xy\r\n")
	r.send("AT+CIPCLOSE\r\n")
	r.expect("CLOSED\r\n", "\r\nOK\r\n")

	var got []string
	for _, e := range r.m.Events() {
		switch e.Kind {
		case EventLinkOpen, EventLinkClose, EventSend, EventRecv:
			got = append(got, fmt.Sprintf("%s link=%d remote=%s port=%d bytes=%d ok=%t reason=%s totals=%+v",
				e.Kind, e.Link, e.Remote, e.LocalPort, e.Bytes, e.OK, e.Reason, *e.Totals))
		}
	}
	assert.Equal(t, []string{
		"link_open link=1 remote=192.168.1.10:8883 port=50152 bytes=0 ok=false reason= totals={BytesOut:0 PacketsOut:0 BytesIn:0 PacketsIn:0}",
		"send link=1 remote=192.168.1.10:8883 port=50152 bytes=3 ok=true reason= totals={BytesOut:3 PacketsOut:1 BytesIn:0 PacketsIn:0}",
		"recv link=1 remote=192.168.1.10:8883 port=50152 bytes=2 ok=false reason= totals={BytesOut:3 PacketsOut:1 BytesIn:2 PacketsIn:1}",
		"link_close link=1 remote=192.168.1.10:8883 port=50152 bytes=0 ok=false reason=AT+CIPCLOSE totals={BytesOut:3 PacketsOut:1 BytesIn:2 PacketsIn:1}",
	}, got)
	mu.Lock()
	assert.Len(t, seen, len(r.m.Events()))
	mu.Unlock()
	ev := r.m.Events()
	for i := 1; i < len(ev); i++ {
		assert.Greater(t, ev[i].Seq, ev[i-1].Seq)
	}
}

// TestRealTCP dials a real loopback listener with the default dialer: the
// link's local port is the socket's.
func TestRealTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	r := newRig(t, nil, func(c *Config) { c.Dial = nil }) // the default dialer
	r.t1()
	r.t2()
	port := ln.Addr().(*net.TCPAddr).Port
	r.send(fmt.Sprintf("AT+CIPSTART=\"TCP\",\"127.0.0.1\",%d\r\n", port))
	r.expect("CONNECT\r\n", "\r\nOK\r\n")
	var srv net.Conn
	select {
	case srv = <-accepted:
		t.Cleanup(func() { srv.Close() })
	case <-time.After(waitLimit):
		t.Fatal("no connection")
	}
	clientPort := srv.RemoteAddr().(*net.TCPAddr).Port
	r.send("AT+CIPSTATE?\r\n")
	r.expect(fmt.Sprintf("+CIPSTATE:0,\"TCP\",\"127.0.0.1\",%d,%d,0\r\n", port, clientPort), "\r\nOK\r\n")
	r.send("AT+CIPSEND=5\r\nhello")
	r.expect("\r\nOK\r\n\r\n>", "\r\nRecv 5 bytes\r\n", "\r\nSEND OK\r\n")
	assert.Equal(t, "hello", readN(t, srv, 5))
	require.NoError(t, srv.Close())
	r.expect("CLOSED\r\n")

	// A closed port is refused: ERROR then CLOSED.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedPort := ln2.Addr().(*net.TCPAddr).Port
	ln2.Close()
	r.send(fmt.Sprintf("AT+CIPSTART=\"TCP\",\"127.0.0.1\",%d\r\n", closedPort))
	r.expect("\r\nERROR\r\n", "CLOSED\r\n")
}

func TestServeEnds(t *testing.T) {
	t.Run("context cancelled", func(t *testing.T) {
		m := New(Config{})
		host, mod := net.Pipe()
		defer host.Close()
		go func() { _, _ = io.Copy(io.Discard, host) }()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Serve(ctx, mod) }()
		cancel()
		select {
		case err := <-done:
			require.ErrorIs(t, err, context.Canceled)
		case <-time.After(waitLimit):
			t.Fatal("Serve did not return")
		}
	})
	t.Run("stream closed", func(t *testing.T) {
		m := New(Config{})
		host, mod := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- m.Serve(context.Background(), mod) }()
		host.Close()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(waitLimit):
			t.Fatal("Serve did not return")
		}
	})
	t.Run("second serve refused", func(t *testing.T) {
		r := newRig(t, nil)
		r.expect("\r\nready\r\n")
		_, mod := net.Pipe()
		require.ErrorIs(t, r.m.Serve(context.Background(), mod), ErrServing)
	})
}

func TestParseParams(t *testing.T) {
	cases := []struct {
		in   string
		want []param
		err  bool
	}{
		{`"a","b"`, []param{{"a", true}, {"b", true}}, false},
		{`"s","p",,1`, []param{{"s", true}, {"p", true}, {"", false}, {"1", false}}, false},
		{`"a\,b","c\"d","e\\f"`, []param{{"a,b", true}, {`c"d`, true}, {`e\f`, true}}, false},
		{`1,`, []param{{"1", false}, {"", false}}, false},
		{`"open`, nil, true},
		{`"a"x`, nil, true},
		{`a b`, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseParams(tc.in)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestAsctime(t *testing.T) {
	assert.Equal(t, "Thu Jan  1 00:00:07 1970", Asctime(time.Unix(7, 0).UTC()))
	assert.Equal(t, "Sat Nov 28 23:59:59 2026", Asctime(time.Date(2026, 11, 28, 23, 59, 59, 0, time.UTC)))
}

// heldConn delivers every Write to the peer at once but returns from it
// only when released: the peer (the broker) has the payload before the
// module can record its send.
type heldConn struct {
	net.Conn
	release chan struct{}
}

func (c *heldConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	<-c.release
	return n, err
}

// A capture taken as soon as the peer has a payload must not miss its
// send: Settle waits until the module has recorded it (the DD-A02
// "carried 0" false failure of a run's last report).
func TestSettleWaitsForSendsUnderWay(t *testing.T) {
	release := make(chan struct{})
	r := newRig(t, nil, func(c *Config) {
		dial := c.Dial
		c.Dial = func(ctx context.Context, host string, port int) (net.Conn, error) {
			conn, err := dial(ctx, host, port)
			if err != nil {
				return nil, err
			}
			return &heldConn{Conn: conn, release: release}, nil
		}
	})
	r.t1()
	r.t2()
	p := r.t3()
	r.send("AT+CIPSEND=4\r\n")
	r.expect("\r\nOK\r\n\r\n>")
	r.send("ping")
	assert.Equal(t, "ping", readN(t, p, 4), "the peer has the payload")

	sends := func() int {
		n := 0
		for _, e := range r.m.Events() {
			if e.Kind == EventSend {
				n++
			}
		}
		return n
	}
	assert.Equal(t, 0, sends(), "the send is not recorded while the write is under way")
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, r.m.Settle(short), context.DeadlineExceeded, "Settle does not return while a send is under way")

	close(release)
	ctx, cancel2 := context.WithTimeout(context.Background(), waitLimit)
	defer cancel2()
	require.NoError(t, r.m.Settle(ctx))
	assert.Equal(t, 1, sends(), "after Settle the send is in the log")
	r.expect("\r\nRecv 4 bytes\r\n", "\r\nSEND OK\r\n")
}
