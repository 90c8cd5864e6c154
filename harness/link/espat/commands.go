package espat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Exact v2 bytes (esp-at.md §1.3, §1.4, T1).
const (
	resultOK       = "\r\nOK\r\n"
	resultError    = "\r\nERROR\r\n"
	resultSendOK   = "\r\nSEND OK\r\n"
	resultSendFail = "\r\nSEND FAIL\r\n"
	sendPrompt     = "\r\nOK\r\n\r\n>"
	busyP          = "\r\nbusy p...\r\n"
	readyURC       = "\r\nready\r\n"
	wifiConnected  = "WIFI CONNECTED\r\n"
	wifiGotIP      = "WIFI GOT IP\r\n"
	wifiDisconnect = "WIFI DISCONNECT\r\n"
	connectURC     = "CONNECT\r\n"
	closedURC      = "CLOSED\r\n"

	// GMR is the AT+GMR reply of transcript T1, before the OK.
	GMR = "AT version:2.4.0.0(emu0001 - ESP32 - May 20 2022 03:12:58)\r\n" +
		"SDK version:v4.2.2\r\n" +
		"compile time(emu0001):May 20 2022 03:30:44\r\n" +
		"Bin version:2.4.0(WROOM-32)\r\n"

	maxSend     = 8192 // §3.9, v2
	maxIPD      = 2920 // §2
	maxHost     = 64   // §3.8
	maxPassword = 64   // §3.6
)

func (m *Module) ok()    { m.emit([]byte(resultOK)) }
func (m *Module) error() { m.emit([]byte(resultError)) }

// info writes an information line (or lines) and then OK, as two chunks.
func (m *Module) info(s string) {
	m.emit([]byte(s))
	m.ok()
}

// dispatchLocked runs one command line. Anything unknown or malformed is
// ERROR (§5).
func (m *Module) dispatchLocked(line string) {
	name, rest, kind := splitCommand(line)
	switch kind {
	case 'x': // execute: AT, ATE0, AT+RST, ...
		switch name {
		case "AT":
			m.ok()
		case "ATE0", "ATE1":
			m.echo = name == "ATE1"
			m.ok()
		case "AT+RST":
			m.ok()
			m.bootLocked("AT+RST")
		case "AT+GMR":
			m.info(GMR)
		case "AT+CIPCLOSE":
			m.cipCloseLocked()
		case "AT+CIPSTATUS":
			m.cipStatusLocked()
		default:
			m.error()
		}
	case '?':
		switch name {
		case "AT+CWMODE":
			m.info(fmt.Sprintf("+CWMODE:%d\r\n", m.cwmode))
		case "AT+CIPMUX":
			m.info("+CIPMUX:0\r\n")
		case "AT+CIPDINFO":
			// §3.16: no empty line before OK.
			m.emit([]byte(fmt.Sprintf("+CIPDINFO:%t\r\nOK\r\n", m.cipdinfo)))
		case "AT+CIPRECVMODE":
			m.info("+CIPRECVMODE:0\r\n")
		case "AT+SYSSTORE":
			m.info(fmt.Sprintf("+SYSSTORE:%d\r\n", m.sysstore))
		case "AT+UART_CUR":
			m.info(fmt.Sprintf("+UART_CUR:%d,8,1,0,0\r\n", m.uartRate))
		case "AT+CIPSTATE":
			m.cipStateLocked()
		case "AT+CIPSNTPTIME":
			m.sntpTimeLocked()
		default:
			m.error()
		}
	case '=':
		ps, err := parseParams(rest)
		if err != nil {
			m.error()
			return
		}
		if err := m.setLocked(name, ps); err != nil {
			m.error()
		}
	default:
		m.error()
	}
}

// splitCommand splits "AT+X=..." / "AT+X?" / "AT+X" into name, parameter
// text and kind ('=', '?', 'x'); kind 0 means not a command line at all.
func splitCommand(line string) (name, rest string, kind byte) {
	if !strings.HasPrefix(line, "AT") {
		return "", "", 0
	}
	if i := strings.IndexByte(line, '='); i >= 0 {
		return line[:i], line[i+1:], '='
	}
	if strings.HasSuffix(line, "?") {
		return line[:len(line)-1], "", '?'
	}
	for _, c := range line {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '_') {
			return "", "", 0
		}
	}
	return line, "", 'x'
}

// setLocked handles the "AT+X=..." forms; an error means ERROR.
func (m *Module) setLocked(name string, ps []param) error {
	one := func(lo, hi int) (int, error) {
		if len(ps) != 1 {
			return 0, errSyntax
		}
		return ps[0].integer(lo, hi)
	}
	switch name {
	case "AT+CWMODE":
		if len(ps) < 1 || len(ps) > 2 {
			return errSyntax
		}
		mode, err := ps[0].integer(0, 3)
		if err != nil {
			return err
		}
		if len(ps) == 2 {
			if _, err := ps[1].integer(0, 1); err != nil {
				return err
			}
		}
		m.cwmode = mode
		if mode != 1 && mode != 3 {
			m.wifiDownLocked("station off")
		}
		m.ok()
	case "AT+CIPMUX":
		if _, err := one(0, 0); err != nil { // mux 1 is outside the subset (§5)
			return err
		}
		m.ok()
	case "AT+CIPDINFO":
		v, err := one(0, 1)
		if err != nil {
			return err
		}
		m.cipdinfo = v == 1
		m.ok()
	case "AT+SYSSTORE":
		v, err := one(0, 1)
		if err != nil {
			return err
		}
		m.sysstore = v
		m.ok()
	case "AT+CIPRECVMODE":
		if _, err := one(0, 0); err != nil { // passive mode is outside the subset (§5)
			return err
		}
		m.ok()
	case "AT+UART_CUR":
		if len(ps) != 5 {
			return errSyntax
		}
		rate, err := ps[0].integer(80, 5000000)
		if err != nil {
			return err
		}
		for i, r := range [][2]int{{5, 8}, {1, 3}, {0, 2}, {0, 3}} {
			if _, err := ps[i+1].integer(r[0], r[1]); err != nil {
				return err
			}
		}
		m.uartRate = rate // a no-op on virtual UARTs
		m.ok()
	case "AT+CIPSNTPCFG":
		return m.sntpCfgLocked(ps)
	case "AT+CWJAP":
		return m.cwjapLocked(ps)
	case "AT+CIPSTART":
		return m.cipStartLocked(ps)
	case "AT+CIPSEND":
		return m.cipSendLocked(ps)
	default:
		return errSyntax
	}
	return nil
}

// cwjapLocked: AT+CWJAP="ssid","pwd"[,...] (§3.6, T2, T8).
func (m *Module) cwjapLocked(ps []param) error {
	if len(ps) < 2 {
		return errSyntax
	}
	ssid, err := ps[0].str()
	if err != nil {
		return err
	}
	pwd, err := ps[1].str()
	if err != nil || len(pwd) > maxPassword || ssid == "" {
		return errSyntax
	}
	if m.cwmode != 1 && m.cwmode != 3 {
		return errSyntax
	}
	m.joinTried = true
	m.wifiDownLocked("CWJAP")
	m.asyncLocked(func(ctx context.Context) func(bool) {
		select {
		case <-m.timerFor("join", m.cfg.JoinDelay):
		case <-ctx.Done():
			return nil
		}
		return func(live bool) {
			if !live {
				return
			}
			switch {
			case m.cfg.SSID != "" && ssid != m.cfg.SSID:
				m.emit([]byte("+CWJAP:3\r\n"))
				m.error()
			case m.cfg.SSID != "" && pwd != m.cfg.Password:
				m.emit([]byte("+CWJAP:2\r\n"))
				m.error()
			default:
				m.joinedSSID = ssid
				m.wifiUpLocked("CWJAP")
				m.ok()
			}
		}
	})
	return nil
}

func (m *Module) timerFor(what string, d time.Duration) <-chan time.Time { return m.timer(what, d) }

func (m *Module) wifiUpLocked(reason string) {
	m.wifiUp = true
	m.linkClosed = false
	m.emit([]byte(wifiConnected))
	m.emit([]byte(wifiGotIP))
	m.recordLocked(Event{Kind: EventWiFiUp, Reason: reason})
}

// wifiDownLocked drops the station, and with it an open link (WIFI
// DISCONNECT then CLOSED, as v5+ cores do; §4).
func (m *Module) wifiDownLocked(reason string) {
	if !m.wifiUp {
		return
	}
	m.wifiUp = false
	m.emit([]byte(wifiDisconnect))
	m.recordLocked(Event{Kind: EventWiFiDown, Reason: reason})
	m.closeLinkLocked("wifi down", true)
}

// cipStartLocked: AT+CIPSTART="TCP","host",port[,keepalive][,...] (§3.8, T3, T8).
func (m *Module) cipStartLocked(ps []param) error {
	if len(ps) < 3 || len(ps) > 6 {
		return errSyntax
	}
	typ, err := ps[0].str()
	if err != nil || typ != "TCP" { // UDP and SSL are outside the subset
		return errSyntax
	}
	host, err := ps[1].str()
	if err != nil || host == "" || len(host) > maxHost {
		return errSyntax
	}
	port, err := ps[2].integer(1, 65535)
	if err != nil {
		return err
	}
	if len(ps) >= 4 && !ps[3].empty() {
		if _, err := ps[3].integer(0, 7200); err != nil {
			return err
		}
	}
	if len(ps) >= 5 && !ps[4].empty() {
		if _, err := ps[4].str(); err != nil {
			return err
		}
	}
	if len(ps) == 6 && !ps[5].empty() {
		if _, err := ps[5].integer(0, 60000); err != nil {
			return err
		}
	}
	if m.link != nil || !m.wifiUp {
		return errors.New("espat: link open or no IP")
	}
	m.asyncLocked(func(ctx context.Context) func(bool) {
		dctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout)
		defer cancel()
		conn, err := m.cfg.Dial(dctx, host, port)
		return func(live bool) {
			if !live {
				if conn != nil {
					conn.Close()
				}
				return
			}
			if err != nil {
				m.error()
				reason := "dns"
				if !errors.Is(err, ErrNoSuchHost) {
					m.emit([]byte(closedURC))
					reason = "refused"
				}
				m.recordLocked(Event{Kind: EventDialFail, Host: host, Reason: reason + ": " + err.Error()})
				return
			}
			if m.link != nil || !m.wifiUp { // Wi-Fi dropped while dialling
				conn.Close()
				m.error()
				m.emit([]byte(closedURC))
				return
			}
			m.openLinkLocked(conn, host, port)
			m.emit([]byte(connectURC))
			m.ok()
		}
	})
	return nil
}

// cipSendLocked: AT+CIPSEND=<n> (§3.9, T4, T9, T10). The payload is taken
// by input; payloadDoneLocked finishes.
func (m *Module) cipSendLocked(ps []param) error {
	if len(ps) != 1 {
		return errSyntax
	}
	n, err := ps[0].integer(1, maxSend)
	if err != nil {
		return err
	}
	if m.link == nil {
		return errors.New("espat: no link")
	}
	m.payloadWant = n
	m.payload = make([]byte, 0, n)
	m.sendLink = m.link
	if data := m.injectPrompt; data != nil {
		m.injectPrompt = nil
		m.emit([]byte(resultOK))
		m.ipdLocked(m.link, data)
		m.emit([]byte("\r\n>"))
		return nil
	}
	m.emit([]byte(sendPrompt))
	return nil
}

func (m *Module) payloadDoneLocked() {
	data := m.payload
	l := m.sendLink
	m.payload, m.payloadWant, m.sendLink = nil, 0, nil
	m.emit([]byte(fmt.Sprintf("\r\nRecv %d bytes\r\n", len(data))))
	if l == nil || l.closed {
		m.emit([]byte(resultSendFail))
		m.recordLocked(Event{Kind: EventSend, Bytes: len(data), Reason: "link closed"}.forLink(l))
		return
	}
	m.asyncLocked(func(context.Context) func(bool) {
		// The send is stamped when the payload is handed over, so it is
		// never later than the peer's receipt of it.
		at := m.cfg.Now()
		_ = l.conn.SetWriteDeadline(time.Now().Add(m.cfg.SendTimeout))
		_, err := l.conn.Write(data)
		return func(live bool) {
			if !live {
				return
			}
			// The payload reached the peer when the write succeeded, even
			// if the link closed right after: a real module reports SEND OK
			// once the data is in its TCP stack.
			if err != nil {
				m.emit([]byte(resultSendFail))
				reason := "link closed"
				if err != nil {
					reason = err.Error()
				}
				m.recordAtLocked(Event{Kind: EventSend, Bytes: len(data), Reason: reason}.forLink(l), at)
				return
			}
			l.count.BytesOut += uint64(len(data))
			l.count.PacketsOut++
			m.totals.BytesOut += uint64(len(data))
			m.totals.PacketsOut++
			m.emit([]byte(resultSendOK))
			m.recordAtLocked(Event{Kind: EventSend, Bytes: len(data), OK: true}.forLink(l), at)
		}
	})
}

// cipCloseLocked: AT+CIPCLOSE (§3.10).
func (m *Module) cipCloseLocked() {
	if m.link == nil {
		m.error()
		return
	}
	m.closeLinkLocked("AT+CIPCLOSE", true)
	m.ok()
}

func (m *Module) cipStateLocked() {
	if l := m.link; l != nil {
		m.info(fmt.Sprintf("+CIPSTATE:0,\"TCP\",\"%s\",%d,%d,0\r\n", l.remoteIP, l.port, l.localPort))
		return
	}
	m.ok()
}

// cipStatusLocked: AT+CIPSTATUS (§3.12 with the §5 stat values).
func (m *Module) cipStatusLocked() {
	stat := 5
	switch {
	case m.link != nil:
		stat = 3
	case m.wifiUp && m.linkClosed:
		stat = 4
	case m.wifiUp:
		stat = 2
	case !m.joinTried:
		stat = 1
	}
	s := fmt.Sprintf("STATUS:%d\r\n", stat)
	if l := m.link; l != nil {
		s += fmt.Sprintf("+CIPSTATUS:0,\"TCP\",\"%s\",%d,%d,0\r\n", l.remoteIP, l.port, l.localPort)
	}
	m.info(s)
}

// sntpCfgLocked: AT+CIPSNTPCFG=<enable>[,<timezone>][,"server"...] (§3.13).
func (m *Module) sntpCfgLocked(ps []param) error {
	if len(ps) < 1 || len(ps) > 5 {
		return errSyntax
	}
	en, err := ps[0].integer(0, 1)
	if err != nil {
		return err
	}
	tz := 0
	if len(ps) >= 2 && !ps[1].empty() {
		if tz, err = parseTimezone(ps[1]); err != nil {
			return err
		}
	}
	for _, p := range ps[min(2, len(ps)):] {
		if s, err := p.str(); err != nil || s == "" {
			return errSyntax
		}
	}
	m.sntpOn = en == 1
	m.tzMinutes = tz
	m.sntpAt = m.cfg.Now()
	m.synced = false
	m.ok()
	return nil
}

// sntpTimeLocked: AT+CIPSNTPTIME? (§3.14, T7): newlib asctime with a
// space-padded day, no line end, then OK without an empty line between.
func (m *Module) sntpTimeLocked() {
	now := m.cfg.Now()
	if !m.synced && m.sntpOn && m.wifiUp && now.Sub(m.sntpAt) >= m.cfg.SyncDelay {
		m.synced = true
	}
	t := time.Unix(0, 0).UTC().Add(now.Sub(m.bootAt))
	if m.synced {
		t = now.UTC()
	}
	t = t.Add(time.Duration(m.tzMinutes) * time.Minute)
	m.emit([]byte("+CIPSNTPTIME:" + Asctime(t)))
	m.ok()
}

// Asctime formats t like newlib's asctime without the newline:
// "%.3s %.3s%3d %.2d:%.2d:%.2d %d" (v2 space-pads the day).
func Asctime(t time.Time) string {
	return fmt.Sprintf("%.3s %.3s%3d %02d:%02d:%02d %d",
		t.Weekday().String(), t.Month().String(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Year())
}

// remoteIP picks the address CIPSTATE shows for a link.
func (m *Module) remoteIP(conn net.Conn, host string) string {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok && a.IP != nil && !a.IP.IsUnspecified() {
		if v4 := a.IP.To4(); v4 != nil {
			return v4.String()
		}
		return a.IP.String()
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.String()
	}
	return m.cfg.NameIP
}

// localPort is the link's local TCP port, or a synthesized stable one for a
// connection without a TCP address (in-memory links).
func (m *Module) localPort(conn net.Conn) int {
	if a, ok := conn.LocalAddr().(*net.TCPAddr); ok && a.Port != 0 {
		return a.Port
	}
	p := m.nextPort
	m.nextPort++
	if m.nextPort > 65535 {
		m.nextPort = 49152
	}
	return p
}
