package espat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// Exact v2 bytes (esp-at.md §1.3, §1.4, T1).
const (
	resultOK       = "\r\nOK\r\n"
	resultError    = "\r\nERROR\r\n"
	resultFail     = "\r\nFAIL\r\n" // 1.7 CWJAP failure
	resultSendOK   = "\r\nSEND OK\r\n"
	resultSendFail = "\r\nSEND FAIL\r\n"
	sendPrompt     = "\r\nOK\r\n\r\n>"
	sendPrompt17   = "\r\nOK\r\n> "
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
	// GMR17 is the 1.7 profile's AT+GMR (esp-at-dialects.md §5.4).
	GMR17 = "AT version:1.7.4.0(May 11 2020 19:13:04)\r\n" +
		"SDK version:3.0.4(9532ceb)\r\n" +
		"compile time:May 27 2020 10:12:17\r\n" +
		"Bin version(Wroom 02):1.7.4\r\n"

	maxSend     = 8192 // §3.9, v2
	maxSend17   = 2048
	maxIPD      = 2920 // §2
	maxHost     = 64   // §3.8
	maxPassword = 64   // §3.6
)

// setResult notes the running command's final result code.
func (m *Module) setResult(code string) {
	if m.cur != nil && m.unsolMsg == 0 {
		m.cur.result = code
	}
}

func (m *Module) ok() {
	m.emit([]byte(resultOK))
	m.setResult("OK")
}

// fail answers ERROR for err: 1.7 prints its error text first, SYSLOG=1
// adds an ERR CODE line, and the reason goes to the command's record.
func (m *Module) fail(err error) {
	var te *textErr
	if errors.As(err, &te) && m.cfg.Dialect == Dialect17 {
		m.emit([]byte(te.text + "\r\n"))
	}
	if m.net.syslog == 1 {
		m.emit([]byte(fmt.Sprintf("ERR CODE:0x%08x\r\n", errCode(err))))
	}
	m.emit([]byte(resultError))
	m.setResult("ERROR")
	if m.cur != nil && m.unsolMsg == 0 {
		m.cur.reason = reasonOf(err)
	}
}

// reasonOf renders an error for link.jsonl without the package prefix.
func reasonOf(err error) string {
	if err == nil {
		return ""
	}
	return strings.TrimPrefix(err.Error(), "espat: ")
}

// errCode approximates the v2 ERR CODE of AT+SYSLOG=1 (Basic_AT_Commands
// "AT+SYSLOG": 0x01 category, then the error sub-code).
func errCode(err error) uint32 {
	switch {
	case errors.Is(err, ErrUnsupported):
		return 0x01010000 // no such command
	case errors.Is(err, ErrBadArgument):
		return 0x01030000 // parameter error
	default:
		return 0x01090000 // execution failed
	}
}

// textErr carries the line the 1.7 firmware prints before ERROR
// (`ALREADY CONNECTED`, `link is not valid`, `UNLINK`, `DNS Fail`, `no ip`).
type textErr struct {
	err  error
	text string
}

func (e *textErr) Error() string { return e.err.Error() }
func (e *textErr) Unwrap() error { return e.err }

func withText(text string, err error) error { return &textErr{err: err, text: text} }

// info writes an information line (or lines) and then OK, as two chunks.
func (m *Module) info(s string) {
	m.emit([]byte(s))
	m.ok()
}

// curDef are the commands that have _CUR/_DEF variants in 1.7 (§5.1).
var curDef = map[string]bool{"CWMODE": true, "CWJAP": true, "CWSAP": true, "CWDHCP": true, "CWDHCPS": true,
	"CIPSTAMAC": true, "CIPAPMAC": true, "CIPSTA": true, "CIPAP": true, "CIPDNS": true, "CWCOUNTRY": true, "SYSMSG": true}

// canonical maps a command name to the form the handlers know and the name
// its replies carry: in 1.7, AT+CWMODE_CUR is AT+CWMODE answering
// +CWMODE_CUR; in v2 the suffixed names do not exist.
func (m *Module) canonical(name string) (canon, reply string, err error) {
	reply = strings.TrimPrefix(name, "AT")
	for _, suf := range []string{"_CUR", "_DEF"} {
		base := strings.TrimSuffix(name, suf)
		if base != name && curDef[strings.TrimPrefix(base, "AT+")] {
			if m.cfg.Dialect != Dialect17 {
				return "", "", fmt.Errorf("%w: %s exists only in the 1.7 dialect", ErrUnsupported, name)
			}
			return base, reply, nil
		}
	}
	return name, reply, nil
}

// dispatchLocked runs one command line. Anything unknown or malformed is
// ERROR (§5), with the reason recorded.
func (m *Module) dispatchLocked(line string) {
	name, rest, kind := splitCommand(line)
	if kind == 0 {
		m.fail(fmt.Errorf("%w: not a command line", ErrUnsupported))
		return
	}
	name, reply, err := m.canonical(name)
	if err != nil {
		m.fail(err)
		return
	}
	if slices.Contains(m.cfg.Disabled, name) {
		m.fail(fmt.Errorf("%w: %s is not in this module's firmware build (profile module.disabled)", ErrUnsupported, name))
		return
	}
	switch kind {
	case 'x':
		err = m.execLocked(name)
	case '?':
		err = m.queryLocked(name, reply)
	case '=':
		var ps []param
		if ps, err = parseParams(rest); err == nil {
			err = m.setLocked(name, ps)
		}
	}
	if err != nil {
		m.fail(err)
	}
}

// execLocked handles the bare forms: AT, ATE0, AT+RST, ...
func (m *Module) execLocked(name string) error {
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
		if m.cfg.Dialect == Dialect17 {
			m.info(GMR17)
		} else {
			m.info(GMR)
		}
	case "AT+CIPCLOSE":
		if m.mux {
			return argErr("AT+CIPCLOSE needs a link id with CIPMUX=1")
		}
		l := m.links[0]
		if l == nil {
			return withText("UNLINK", stateErr("no link open"))
		}
		m.closeLinkLocked(l, "AT+CIPCLOSE", true)
		m.ok()
	case "AT+CIPSTATUS":
		m.cipStatusLocked()
	case "AT+CWQAP":
		m.ok()
		m.joinedSSID = ""
		m.wifiDownLocked("AT+CWQAP")
	case "AT+CIFSR":
		m.cifsrLocked()
	case "AT+CWLAP":
		return m.cwlapLocked(nil)
	default:
		return ErrUnsupported
	}
	return nil
}

// queryLocked handles "AT+X?"; reply is the name replies carry (+X).
func (m *Module) queryLocked(name, reply string) error {
	switch name {
	case "AT+CWMODE":
		m.info(fmt.Sprintf("%s:%d\r\n", reply, m.cwmode))
	case "AT+CIPMUX":
		m.info(fmt.Sprintf("+CIPMUX:%d\r\n", b2i(m.mux)))
	case "AT+CIPDINFO":
		// §3.16: no empty line before OK.
		m.emit([]byte(fmt.Sprintf("+CIPDINFO:%t\r\nOK\r\n", m.cipdinfo)))
		m.setResult("OK")
	case "AT+CIPRECVMODE":
		m.info(fmt.Sprintf("+CIPRECVMODE:%d\r\n", b2i(m.passive)))
	case "AT+SYSSTORE":
		if m.cfg.Dialect == Dialect17 {
			return fmt.Errorf("%w: AT+SYSSTORE does not exist in 1.7", ErrUnsupported)
		}
		m.info(fmt.Sprintf("+SYSSTORE:%d\r\n", m.sysstore))
	case "AT+UART_CUR", "AT+UART_DEF":
		m.info(fmt.Sprintf("%s:%d,8,1,0,0\r\n", reply, m.uartRate))
	case "AT+CIPSTATE":
		if m.cfg.Dialect == Dialect17 {
			return fmt.Errorf("%w: AT+CIPSTATE? is v2 only", ErrUnsupported)
		}
		m.cipStateLocked()
	case "AT+CIPSNTPTIME":
		m.sntpTimeLocked()
	case "AT+CWJAP":
		return m.cwjapQueryLocked(reply)
	case "AT+CIPSTA":
		m.cipstaQueryLocked(reply)
	case "AT+CIPSTAMAC":
		m.info(fmt.Sprintf("%s:\"%s\"\r\n", reply, m.cfg.MAC))
	case "AT+CWDHCP":
		bits := 2 | b2i(m.net.dhcp) // bit0 station, bit1 softAP (v2)
		if m.cfg.Dialect == Dialect17 {
			bits = 1 | b2i(m.net.dhcp)<<1 // 1.7 swaps them (§3)
		}
		m.info(fmt.Sprintf("%s:%d\r\n", reply, bits))
	case "AT+CWAUTOCONN":
		m.info(fmt.Sprintf("+CWAUTOCONN:%d\r\n", m.net.autoconn))
	case "AT+CWLAPOPT":
		m.info(fmt.Sprintf("+CWLAPOPT:%d,%d\r\n", m.net.lapSort, m.net.lapMask))
	case "AT+CWHOSTNAME":
		if !m.station() {
			return stateErr("station mode is off")
		}
		m.info(fmt.Sprintf("+CWHOSTNAME:%s\r\n", m.net.hostname))
	case "AT+CIPDNS":
		m.cipdnsQueryLocked(reply)
	case "AT+SYSLOG":
		m.info(fmt.Sprintf("+SYSLOG:%d\r\n", m.net.syslog))
	case "AT+CIPRECVLEN":
		m.cipRecvLenLocked()
	case "AT+CIPSSLCCONF":
		m.sslQueryLocked()
	case "AT+MQTTCONN":
		m.mqttConnQueryLocked()
	case "AT+MQTTSUB":
		m.mqttSubQueryLocked()
	default:
		return ErrUnsupported
	}
	return nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
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
			return 0, argErr("want 1 parameter, got %d", len(ps))
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
		v, err := one(0, 1)
		if err != nil {
			return err
		}
		if (v == 1) != m.mux && len(m.openLinks()) > 0 {
			return stateErr("CIPMUX cannot change while a link is open")
		}
		m.mux = v == 1
		m.ok()
	case "AT+CIPDINFO":
		v, err := one(0, 1)
		if err != nil {
			return err
		}
		m.cipdinfo = v == 1
		m.ok()
	case "AT+SYSSTORE":
		if m.cfg.Dialect == Dialect17 {
			return fmt.Errorf("%w: AT+SYSSTORE does not exist in 1.7", ErrUnsupported)
		}
		v, err := one(0, 1)
		if err != nil {
			return err
		}
		m.sysstore = v
		m.ok()
	case "AT+CIPRECVMODE":
		v, err := one(0, 1)
		if err != nil {
			return err
		}
		m.passive = v == 1
		m.ok()
	case "AT+UART_CUR", "AT+UART_DEF":
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
	case "AT+CIPCLOSE":
		return m.cipCloseIDLocked(ps)
	case "AT+CIPRECVDATA":
		return m.cipRecvDataLocked(ps)
	case "AT+CIPCLOSEMODE":
		if m.cfg.Dialect != Dialect17 {
			return fmt.Errorf("%w: AT+CIPCLOSEMODE is 1.7 only", ErrUnsupported)
		}
		if len(ps) != 2 {
			return errSyntax
		}
		if _, err := ps[0].integer(0, maxLinks-1); err != nil {
			return err
		}
		if _, err := ps[1].integer(0, 1); err != nil {
			return err
		}
		m.ok()
	case "AT+CWDHCP", "AT+CWAUTOCONN", "AT+CWLAPOPT", "AT+CWHOSTNAME", "AT+CIPSTA", "AT+CIPDNS",
		"AT+CIPDOMAIN", "AT+SYSLOG", "AT+CWLAP", "AT+CWCOUNTRY", "AT+CIPSTAMAC":
		return m.netSetLocked(name, ps)
	case "AT+CIPSSLCCONF", "AT+CIPSSLCSNI", "AT+CIPSSLCALPN":
		return m.sslSetLocked(name, ps)
	default:
		if strings.HasPrefix(name, "AT+MQTT") {
			return m.mqttSetLocked(name, ps)
		}
		return ErrUnsupported
	}
	return nil
}

// cwjapLocked: AT+CWJAP="ssid","pwd"[,...] (§3.6, T2, T8).
func (m *Module) cwjapLocked(ps []param) error {
	if len(ps) < 2 {
		return argErr("AT+CWJAP needs an SSID and a password")
	}
	ssid, err := ps[0].str()
	if err != nil {
		return err
	}
	pwd, err := ps[1].str()
	if err != nil || len(pwd) > maxPassword || ssid == "" {
		return argErr("bad SSID or password")
	}
	if !m.station() {
		return stateErr("station mode is off (AT+CWMODE=%d)", m.cwmode)
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
			code := 0
			switch {
			case m.cfg.SSID != "" && ssid != m.cfg.SSID:
				code = 3
			case m.cfg.SSID != "" && pwd != m.cfg.Password:
				code = 2
			}
			if code == 0 {
				m.joinedSSID = ssid
				m.wifiUpLocked("CWJAP")
				m.ok()
				return
			}
			m.emit([]byte(fmt.Sprintf("+CWJAP:%d\r\n", code)))
			why := map[int]string{2: "wrong password", 3: "access point not found"}[code]
			if m.cfg.Dialect == Dialect17 {
				m.emit([]byte(resultFail))
				m.setResult("FAIL")
				m.cur.reason = "join failed: " + why
				return
			}
			m.fail(stateErr("join failed: %s", why))
		}
	})
	return nil
}

func (m *Module) station() bool { return m.cwmode == 1 || m.cwmode == 3 }

func (m *Module) timerFor(what string, d time.Duration) <-chan time.Time { return m.timer(what, d) }

func (m *Module) wifiUpLocked(reason string) {
	m.wifiUp = true
	m.linkClosed = false
	m.emit([]byte(wifiConnected))
	m.emit([]byte(wifiGotIP))
	m.recordLocked(Event{Kind: EventWiFiUp, Reason: reason})
}

// wifiDownLocked drops the station, and with it every open link (WIFI
// DISCONNECT then CLOSED, as v5+ cores do; §4).
func (m *Module) wifiDownLocked(reason string) {
	if !m.wifiUp {
		return
	}
	m.wifiUp = false
	m.emit([]byte(wifiDisconnect))
	m.recordLocked(Event{Kind: EventWiFiDown, Reason: reason})
	m.closeAllLocked("wifi down", true)
	m.mqttDropLocked("wifi down", true)
}

// cipStartLocked: AT+CIPSTART=[<id>,]"TCP"|"UDP"|"SSL","host",port[,...]
// (esp-at.md §3.8, T3, T8; esp-at-dialects.md §1.2, §6.3).
func (m *Module) cipStartLocked(ps []param) error {
	slot := 0
	if m.mux {
		if len(ps) < 1 {
			return errSyntax
		}
		id, err := ps[0].integer(0, maxLinks-1)
		if err != nil {
			return withText("ID ERROR", argErr("link id must be 0-%d", maxLinks-1))
		}
		slot, ps = id, ps[1:]
	}
	if len(ps) < 3 || len(ps) > 6 {
		return argErr("AT+CIPSTART: %d parameters", len(ps))
	}
	typ, err := ps[0].str()
	if err != nil || (typ != "TCP" && typ != "UDP" && typ != "SSL") {
		return argErr("link type must be \"TCP\", \"UDP\" or \"SSL\"")
	}
	host, err := ps[1].str()
	if err != nil || host == "" || len(host) > maxHost {
		return argErr("bad host")
	}
	port, err := ps[2].integer(0, 65535)
	if err != nil || (port == 0 && typ != "UDP") {
		return argErr("bad port")
	}
	if typ == "UDP" {
		// ,<local port>,<mode 0-2>[,"<local ip>"]
		if len(ps) >= 4 && !ps[3].empty() {
			if _, err := ps[3].integer(0, 65535); err != nil {
				return err
			}
		}
		if len(ps) >= 5 && !ps[4].empty() {
			if _, err := ps[4].integer(0, 2); err != nil {
				return err
			}
		}
		if len(ps) == 6 && !ps[5].empty() {
			if _, err := ps[5].str(); err != nil {
				return err
			}
		}
	} else {
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
	}
	if m.links[slot] != nil {
		return withText("ALREADY CONNECTED", stateErr("link %d is already open", slot))
	}
	if !m.wifiUp {
		return withText("no ip", stateErr("no IP: Wi-Fi is not joined"))
	}
	var tlsConf *sslConf
	if typ == "SSL" {
		c := m.sslFor(slot)
		tlsConf = &c
	}
	target, _ := m.resolve(host)
	var dns *dnsResponder
	if typ == "UDP" && port == 53 && m.isDNSServer(target) {
		dns = &dnsResponder{m: m}
	}
	mux := m.mux
	closed := closedURC
	connect := connectURC
	if mux {
		closed = fmt.Sprintf("%d,%s", slot, closedURC)
		connect = fmt.Sprintf("%d,%s", slot, connectURC)
	}
	m.asyncLocked(func(ctx context.Context) func(bool) {
		var conn net.Conn
		var err error
		if dns == nil {
			dctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout)
			defer cancel()
			if typ == "UDP" {
				conn, err = m.cfg.DialUDP(dctx, target, port)
			} else {
				conn, err = m.cfg.Dial(dctx, target, port)
			}
			if err == nil && tlsConf != nil {
				conn, err = m.handshake(dctx, conn, *tlsConf, host)
			}
		}
		return func(live bool) {
			if !live {
				if conn != nil {
					conn.Close()
				}
				return
			}
			if err != nil {
				reason := "refused"
				if errors.Is(err, ErrNoSuchHost) {
					m.fail(withText("DNS Fail", stateErr("dial %s: DNS failure: %v", host, err)))
					reason = "dns"
				} else {
					m.fail(stateErr("dial %s:%d: %v", host, port, err))
					m.emit([]byte(closed))
				}
				m.recordLocked(Event{Kind: EventDialFail, Host: host, Port: port, Proto: typ, Reason: reason + ": " + err.Error()})
				return
			}
			if m.links[slot] != nil || !m.wifiUp || m.mux != mux { // Wi-Fi dropped while dialling
				if conn != nil {
					conn.Close()
				}
				m.fail(stateErr("Wi-Fi dropped while dialling"))
				m.emit([]byte(closed))
				return
			}
			m.openLinkLocked(slot, typ, conn, host, port, dns)
			m.emit([]byte(connect))
			m.ok()
		}
	})
	return nil
}

// cipSendLocked: AT+CIPSEND=[<id>,]<n>[,"ip",port] (§3.9, T4, T9, T10;
// dialects §1.3). The payload is taken by input.
func (m *Module) cipSendLocked(ps []param) error {
	slot := 0
	if m.mux {
		if len(ps) < 2 {
			return argErr("AT+CIPSEND needs a link id and a length with CIPMUX=1")
		}
		id, err := ps[0].integer(0, maxLinks-1)
		if err != nil {
			return withText("ID ERROR", err)
		}
		slot, ps = id, ps[1:]
	}
	if len(ps) != 1 && len(ps) != 3 {
		return argErr("AT+CIPSEND: %d parameters", len(ps))
	}
	limit := maxSend
	if m.cfg.Dialect == Dialect17 {
		limit = maxSend17
	}
	n, err := ps[0].integer(1, limit)
	if err != nil {
		return withText("too long", argErr("length must be 1-%d", limit))
	}
	l := m.links[slot]
	if l == nil {
		return withText("link is not valid", stateErr("link %d is not open", slot))
	}
	if len(ps) == 3 {
		if l.typ != "UDP" {
			return argErr("a destination is for UDP links only")
		}
		if _, err := ps[1].str(); err != nil {
			return err
		}
		if _, err := ps[2].integer(1, 65535); err != nil {
			return err
		}
	}
	m.payloadWant = n
	m.payload = make([]byte, 0, n)
	m.payloadDone = func(data []byte) { m.sendPayloadLocked(l, data) }
	if data := m.injectPrompt; data != nil {
		m.injectPrompt = nil
		m.emit([]byte(resultOK))
		m.unsolicited(func() { m.ipdLocked(l, data) })
		m.emit([]byte("\r\n>"))
		return nil
	}
	if m.cfg.Dialect == Dialect17 {
		m.emit([]byte(sendPrompt17))
	} else {
		m.emit([]byte(sendPrompt))
	}
	return nil
}

func (m *Module) sendPayloadLocked(l *link, data []byte) {
	m.emit([]byte(fmt.Sprintf("\r\nRecv %d bytes\r\n", len(data))))
	if l.closed {
		m.emit([]byte(resultSendFail))
		m.setResult("SEND FAIL")
		m.cur.reason = stateErr("link %d closed before the payload was sent", l.slot).Error()
		m.recordLocked(Event{Kind: EventSend, Bytes: len(data), Reason: "link closed"}.forLink(l))
		return
	}
	if l.dns != nil { // the module's own resolver answers at once
		m.emit([]byte(resultSendOK))
		m.setResult("SEND OK")
		m.countOutLocked(l, len(data), m.cfg.Now())
		if reply := l.dns.answer(data); reply != nil {
			m.unsolicited(func() { m.deliverLocked(l, reply) })
		}
		return
	}
	l.sending = true
	m.asyncLocked(func(context.Context) func(bool) {
		// The send is stamped when the payload is handed over, so it is
		// never later than the peer's receipt of it.
		at := m.cfg.Now()
		_ = l.conn.SetWriteDeadline(time.Now().Add(m.cfg.SendTimeout))
		_, err := l.conn.Write(data)
		return func(live bool) {
			defer m.releaseLocked(l, live) // peer data read meanwhile follows the result
			if !live {
				return
			}
			// The payload reached the peer when the write succeeded, even
			// if the link closed right after: a real module reports SEND OK
			// once the data is in its TCP stack.
			if err != nil {
				m.emit([]byte(resultSendFail))
				m.setResult("SEND FAIL")
				m.cur.reason = "send: " + err.Error()
				m.recordAtLocked(Event{Kind: EventSend, Bytes: len(data), Reason: err.Error()}.forLink(l), at)
				return
			}
			m.countOutLocked(l, len(data), at)
			m.emit([]byte(resultSendOK))
			m.setResult("SEND OK")
		}
	})
}

// deliverLocked hands peer data to the host: +IPD in active mode, buffer
// and notice in passive mode.
func (m *Module) deliverLocked(l *link, data []byte) {
	if m.passiveFor(l) {
		m.bufferLocked(l, data)
		return
	}
	m.ipdLocked(l, data)
}

// cipCloseIDLocked: AT+CIPCLOSE=<id> (5: all links) in multi-link mode.
func (m *Module) cipCloseIDLocked(ps []param) error {
	if !m.mux || len(ps) != 1 {
		return argErr("AT+CIPCLOSE=<id> needs CIPMUX=1 and one id")
	}
	id, err := ps[0].integer(0, maxLinks)
	if err != nil {
		return withText("ID ERROR", err)
	}
	if id == maxLinks {
		m.closeAllLocked("AT+CIPCLOSE=5", true)
		m.ok()
		return nil
	}
	l := m.links[id]
	if l == nil {
		return withText("UNLINK", stateErr("link %d is not open", id))
	}
	m.closeLinkLocked(l, "AT+CIPCLOSE", true)
	m.ok()
	return nil
}

// cipRecvDataLocked: AT+CIPRECVDATA=[<id>,]<len> (dialects §2.3).
func (m *Module) cipRecvDataLocked(ps []param) error {
	slot := 0
	if m.mux {
		if len(ps) != 2 {
			return argErr("AT+CIPRECVDATA needs a link id and a length with CIPMUX=1")
		}
		id, err := ps[0].integer(0, maxLinks-1)
		if err != nil {
			return err
		}
		slot, ps = id, ps[1:]
	}
	if len(ps) != 1 {
		return errSyntax
	}
	want, err := ps[0].integer(1, 0x7fffffff)
	if err != nil {
		return err
	}
	if !m.passive {
		return stateErr("not in passive receive mode")
	}
	l := m.links[slot]
	if l == nil || len(l.rx) == 0 {
		return stateErr("no data buffered on link %d", slot)
	}
	n := min(want, len(l.rx))
	data := l.rx[:n]
	var head string
	switch {
	case m.cfg.Dialect == Dialect17:
		head = fmt.Sprintf("+CIPRECVDATA,%d:", n)
	case m.cipdinfo:
		head = fmt.Sprintf("+CIPRECVDATA:%d,\"%s\",%d,", n, l.remoteIP, l.port)
	default:
		head = fmt.Sprintf("+CIPRECVDATA:%d,", n)
	}
	m.emit(append([]byte(head), data...))
	l.rx = append([]byte(nil), l.rx[n:]...)
	m.countInLocked(l, n)
	m.ok()
	select {
	case l.room <- struct{}{}:
	default:
	}
	switch {
	case len(l.rx) > 0:
		m.unsolicited(func() { m.emit([]byte(m.passiveNotice(l))) })
	case l.peerClosed:
		l.notified = false
		m.unsolicited(func() { m.closeLinkLocked(l, "peer closed", true) })
	default:
		l.notified = false
	}
	return nil
}

// cipRecvLenLocked: AT+CIPRECVLEN? — -1 for links not open in v2, 0 in
// 1.7 (dialects §2.4).
func (m *Module) cipRecvLenLocked() {
	closed := "-1"
	if m.cfg.Dialect == Dialect17 {
		closed = "0"
	}
	if !m.mux {
		n := closed
		if l := m.links[0]; l != nil {
			n = fmt.Sprint(len(l.rx))
		}
		m.info("+CIPRECVLEN:" + n + "\r\n")
		return
	}
	f := make([]string, maxLinks)
	for i, l := range m.links {
		f[i] = closed
		if l != nil {
			f[i] = fmt.Sprint(len(l.rx))
		}
	}
	m.info("+CIPRECVLEN:" + strings.Join(f, ",") + "\r\n")
}

func (m *Module) cipStateLocked() {
	var s string
	for _, l := range m.openLinks() {
		s += fmt.Sprintf("+CIPSTATE:%d,\"%s\",\"%s\",%d,%d,0\r\n", l.slot, l.typ, l.remoteIP, l.port, l.localPort)
	}
	if s == "" {
		m.ok()
		return
	}
	m.info(s)
}

// cipStatusLocked: AT+CIPSTATUS (§3.12 with the §5 stat values).
func (m *Module) cipStatusLocked() {
	stat := 5
	links := m.openLinks()
	switch {
	case len(links) > 0:
		stat = 3
	case m.wifiUp && m.linkClosed:
		stat = 4
	case m.wifiUp:
		stat = 2
	case !m.joinTried:
		stat = 1
	}
	s := fmt.Sprintf("STATUS:%d\r\n", stat)
	for _, l := range links {
		s += fmt.Sprintf("+CIPSTATUS:%d,\"%s\",\"%s\",%d,%d,0\r\n", l.slot, l.typ, l.remoteIP, l.port, l.localPort)
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
			return argErr("bad SNTP server")
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
// space-padded day (1.7: zero-padded), no line end, then OK without an
// empty line between.
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
	s := Asctime(t)
	if m.cfg.Dialect == Dialect17 {
		s = fmt.Sprintf("%.3s %.3s %02d %02d:%02d:%02d %d",
			t.Weekday().String(), t.Month().String(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Year())
	}
	m.emit([]byte("+CIPSNTPTIME:" + s))
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
	if conn != nil {
		var ip net.IP
		switch a := conn.RemoteAddr().(type) {
		case *net.TCPAddr:
			ip = a.IP
		case *net.UDPAddr:
			ip = a.IP
		}
		if ip != nil && !ip.IsUnspecified() {
			if v4 := ip.To4(); v4 != nil {
				return v4.String()
			}
			return ip.String()
		}
	}
	if t, _ := m.resolve(host); net.ParseIP(t) != nil {
		return net.ParseIP(t).String()
	}
	return m.cfg.NameIP
}

// localPort is the link's local port, or a synthesized stable one for a
// connection without a TCP/UDP address (in-memory links).
func (m *Module) localPort(conn net.Conn) int {
	if conn != nil {
		switch a := conn.LocalAddr().(type) {
		case *net.TCPAddr:
			if a.Port != 0 {
				return a.Port
			}
		case *net.UDPAddr:
			if a.Port != 0 {
				return a.Port
			}
		}
	}
	p := m.nextPort
	m.nextPort++
	if m.nextPort > 65535 {
		m.nextPort = 49152
	}
	return p
}
