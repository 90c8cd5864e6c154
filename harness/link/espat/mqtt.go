package espat

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// The module's own MQTT client (ESP-AT MQTT AT commands, esp-at-dialects.md
// §7): firmware that never sees TCP configures it with AT+MQTTUSERCFG /
// MQTTCONNCFG, connects with AT+MQTTCONN and publishes with AT+MQTTPUB /
// MQTTPUBRAW; broker messages come back as +MQTTSUBRECV. A real Go MQTT
// client (paho) connects through the module's dialer, so the broker sees a
// genuine MQTT 3.1.1 session (over TLS for schemes 2-5).

const (
	maxMQTTTopics = 10   // §7.4
	maxMQTTTopic  = 128  // §7.3
	mqttRecvPiece = 1024 // +MQTTSUBRECV pieces, header included (§7.4)
)

// mqttConfig is what the configuration commands set (state 0-2).
type mqttConfig struct {
	state                int // 0 uninitialised, 1 USERCFG, 2 CONNCFG
	scheme               int
	clientID, user, pass string
	path                 string
	keepalive            int
	noClean              bool
	lwtTopic, lwtMsg     string
	lwtQos               int
	lwtRetain            bool
	sni                  string
	alpn                 []string
	subs                 []mqttSub
}

type mqttSub struct {
	topic string
	qos   int
}

// mqttSession is one AT+MQTTCONN: the paho client and the pseudo link its
// traffic is counted on (Proto "MQTT").
type mqttSession struct {
	client    paho.Client
	host      string
	port      int
	reconnect bool
	link      *link // nil while disconnected
	announced bool  // the first connect was answered by AT+MQTTCONN
}

// mqttState is the AT+MQTTCONN? state (§7.2).
func (m *Module) mqttState() int {
	s := m.mqtt
	switch {
	case s != nil && s.link != nil && len(m.mqttCfg.subs) > 0:
		return 6
	case s != nil && s.link != nil:
		return 4
	case s != nil:
		return 3
	}
	return m.mqttCfg.state
}

func (m *Module) mqttSetLocked(name string, ps []param) error {
	if len(ps) < 1 {
		return errSyntax
	}
	if id, err := ps[0].integer(0, 0); err != nil || id != 0 {
		return argErr("the MQTT link id must be 0")
	}
	ps = ps[1:]
	c := &m.mqttCfg
	str := func(i, max int) (string, error) {
		if i >= len(ps) {
			return "", errSyntax
		}
		s, err := ps[i].str()
		if err != nil || len(s) > max {
			return "", argErr("parameter %d: bad string", i+2)
		}
		return s, nil
	}
	num := func(i, lo, hi int) (int, error) {
		if i >= len(ps) {
			return 0, errSyntax
		}
		return ps[i].integer(lo, hi)
	}
	// pubArgs reads what AT+MQTTPUB and AT+MQTTPUBRAW share, in the
	// order the module checks them: the topic, their own second parameter
	// (middle), QoS and retain, then that the client is connected.
	pubArgs := func(middle func() error) (topic string, qos int, retain bool, err error) {
		if topic, err = str(0, maxMQTTTopic); err != nil || topic == "" {
			return "", 0, false, argErr("bad topic")
		}
		if err = middle(); err != nil {
			return "", 0, false, err
		}
		if qos, err = num(2, 0, 2); err != nil {
			return "", 0, false, err
		}
		r, err := num(3, 0, 1)
		if err != nil {
			return "", 0, false, err
		}
		if m.mqtt == nil || m.mqtt.link == nil {
			return "", 0, false, stateErr("MQTT is not connected")
		}
		return topic, qos, r == 1, nil
	}
	var err error
	switch name {
	case "AT+MQTTUSERCFG":
		// 0,<scheme>,"<client_id>","<username>","<password>",<cert_key_ID>,<CA_ID>,"<path>"
		if len(ps) != 7 {
			return argErr("AT+MQTTUSERCFG needs 8 parameters")
		}
		if m.mqtt != nil {
			return stateErr("MQTT is connected; AT+MQTTCLEAN=0 first")
		}
		var n mqttConfig
		if n.scheme, err = num(0, 1, 10); err != nil {
			return err
		}
		if n.clientID, err = str(1, 256); err != nil {
			return err
		}
		if n.user, err = str(2, 64); err != nil {
			return err
		}
		if n.pass, err = str(3, 64); err != nil {
			return err
		}
		if _, err = num(4, 0, 0); err != nil {
			return err
		}
		if _, err = num(5, 0, 0); err != nil {
			return err
		}
		if n.path, err = str(6, 32); err != nil {
			return err
		}
		n.state, n.keepalive = 1, 120
		n.subs = c.subs
		*c = n
		m.ok()
	case "AT+MQTTCLIENTID", "AT+MQTTUSERNAME", "AT+MQTTPASSWORD":
		if c.state < 1 {
			return stateErr("AT+MQTTUSERCFG first")
		}
		v, err := str(0, 256)
		if err != nil || len(ps) != 1 {
			return argErr("%s needs one string", name)
		}
		m.setMQTTString(name, v)
		m.ok()
	case "AT+MQTTLONGCLIENTID", "AT+MQTTLONGUSERNAME", "AT+MQTTLONGPASSWORD":
		if c.state < 1 {
			return stateErr("AT+MQTTUSERCFG first")
		}
		n, err := num(0, 1, 1024)
		if err != nil || len(ps) != 1 {
			return argErr("%s needs a length 1-1024", name)
		}
		m.payloadWant, m.payload = n, make([]byte, 0, n)
		m.payloadDone = func(b []byte) {
			m.setMQTTString(name, string(b))
			m.ok()
		}
		m.emit([]byte(sendPrompt))
	case "AT+MQTTCONNCFG":
		// 0,<keepalive>,<disable_clean_session>,"<lwt_topic>","<lwt_msg>",<lwt_qos>,<lwt_retain>
		if len(ps) != 6 {
			return argErr("AT+MQTTCONNCFG needs 7 parameters")
		}
		if c.state < 1 {
			return stateErr("AT+MQTTUSERCFG first")
		}
		ka, err := num(0, 0, 7200)
		if err != nil {
			return err
		}
		dc, err := num(1, 0, 1)
		if err != nil {
			return err
		}
		lt, err := str(2, maxMQTTTopic)
		if err != nil {
			return err
		}
		lm, err := str(3, 128)
		if err != nil {
			return err
		}
		lq, err := num(4, 0, 2)
		if err != nil {
			return err
		}
		lr, err := num(5, 0, 1)
		if err != nil {
			return err
		}
		if ka == 0 {
			ka = 120
		}
		c.keepalive, c.noClean, c.lwtTopic, c.lwtMsg, c.lwtQos, c.lwtRetain = ka, dc == 1, lt, lm, lq, lr == 1
		c.state = max(c.state, 2)
		m.ok()
	case "AT+MQTTSNI":
		if c.sni, err = str(0, 128); err != nil {
			return err
		}
		m.ok()
	case "AT+MQTTALPN":
		n, err := num(0, 0, 5)
		if err != nil || len(ps) != n+1 {
			return argErr("ALPN count does not match")
		}
		c.alpn = nil
		for i := 1; i <= n; i++ {
			s, err := str(i, 128)
			if err != nil {
				return err
			}
			c.alpn = append(c.alpn, s)
		}
		m.ok()
	case "AT+MQTTCONN":
		return m.mqttConnLocked(ps)
	case "AT+MQTTPUB":
		// 0,"<topic>","<data>",<qos>,<retain>[,<timeout>]
		if len(ps) < 4 || len(ps) > 5 {
			return argErr("AT+MQTTPUB needs 5 or 6 parameters")
		}
		var data string
		topic, qos, retain, err := pubArgs(func() (err error) { data, err = ps[1].str(); return err })
		if err != nil {
			return err
		}
		m.mqttPublishLocked(topic, []byte(data), qos, retain, false)
	case "AT+MQTTPUBRAW":
		// 0,"<topic>",<length>,<qos>,<retain>[,<timeout>]
		if len(ps) < 4 || len(ps) > 5 {
			return argErr("AT+MQTTPUBRAW needs 5 or 6 parameters")
		}
		var n int
		topic, qos, retain, err := pubArgs(func() (err error) { n, err = num(1, 1, 1<<20); return err })
		if err != nil {
			return err
		}
		m.payloadWant, m.payload = n, make([]byte, 0, n)
		m.payloadDone = func(b []byte) { m.mqttPublishLocked(topic, b, qos, retain, true) }
		m.emit([]byte(sendPrompt))
	case "AT+MQTTSUB":
		if len(ps) < 2 || len(ps) > 3 {
			return argErr("AT+MQTTSUB needs 3 or 4 parameters")
		}
		topic, err := str(0, maxMQTTTopic)
		if err != nil || topic == "" {
			return argErr("bad topic")
		}
		qos, err := num(1, 0, 2)
		if err != nil {
			return err
		}
		if m.mqtt == nil || m.mqtt.link == nil {
			return stateErr("MQTT is not connected")
		}
		for _, s := range c.subs {
			if s.topic == topic {
				m.emit([]byte("ALREADY SUBSCRIBE\r\n"))
				m.ok()
				return nil
			}
		}
		if len(c.subs) >= maxMQTTTopics {
			m.emit([]byte("ALREADY FULL SUBSCRIBE\r\n"))
			return stateErr("%d topics already subscribed", maxMQTTTopics)
		}
		client := m.mqtt.client
		m.asyncLocked(func(context.Context) func(bool) {
			tok := client.Subscribe(topic, byte(qos), nil)
			err := waitToken(tok, m.cfg.MQTTTimeout)
			return func(live bool) {
				if !live {
					return
				}
				if err != nil {
					m.fail(stateErr("subscribe: %v", err))
					return
				}
				c.subs = append(c.subs, mqttSub{topic, qos})
				m.ok()
			}
		})
	case "AT+MQTTUNSUB":
		if len(ps) < 1 || len(ps) > 2 {
			return errSyntax
		}
		topic, err := str(0, maxMQTTTopic)
		if err != nil {
			return err
		}
		idx := -1
		for i, s := range c.subs {
			if s.topic == topic {
				idx = i
			}
		}
		if idx < 0 || m.mqtt == nil {
			m.emit([]byte("NO UNSUBSCRIBE\r\n"))
			m.ok()
			return nil
		}
		client := m.mqtt.client
		m.asyncLocked(func(context.Context) func(bool) {
			err := waitToken(client.Unsubscribe(topic), m.cfg.MQTTTimeout)
			return func(live bool) {
				if !live {
					return
				}
				if err != nil {
					m.fail(stateErr("unsubscribe: %v", err))
					return
				}
				for i, s := range c.subs {
					if s.topic == topic {
						c.subs = append(c.subs[:i], c.subs[i+1:]...)
						break
					}
				}
				m.ok()
			}
		})
	case "AT+MQTTCLEAN":
		if len(ps) != 0 {
			return errSyntax
		}
		if c.state == 0 && m.mqtt == nil {
			return stateErr("MQTT is not initialised")
		}
		m.mqttDropLocked("AT+MQTTCLEAN", false)
		m.mqttCfg = mqttConfig{}
		m.ok()
	default:
		return ErrUnsupported
	}
	return nil
}

func (m *Module) setMQTTString(name, v string) {
	switch name {
	case "AT+MQTTCLIENTID", "AT+MQTTLONGCLIENTID":
		m.mqttCfg.clientID = v
	case "AT+MQTTUSERNAME", "AT+MQTTLONGUSERNAME":
		m.mqttCfg.user = v
	default:
		m.mqttCfg.pass = v
	}
}

func waitToken(t paho.Token, d time.Duration) error {
	if !t.WaitTimeout(d) {
		return fmt.Errorf("no answer within %s", d)
	}
	return t.Error()
}

// mqttConnURC is +MQTTCONNECTED (and the AT+MQTTCONN? tail): the port is a
// quoted string (§7.2).
func (m *Module) mqttConnTail(s *mqttSession) string {
	return fmt.Sprintf("%d,\"%s\",\"%d\",\"%s\",%d", m.mqttCfg.scheme, s.host, s.port, m.mqttCfg.path, b2i(s.reconnect))
}

// mqttConnLocked: AT+MQTTCONN=0,"<host>",<port>,<reconnect>[,<timeout>].
func (m *Module) mqttConnLocked(ps []param) error {
	if len(ps) < 3 || len(ps) > 4 {
		return argErr("AT+MQTTCONN needs 4 or 5 parameters")
	}
	host, err := ps[0].str()
	if err != nil || host == "" || len(host) > 128 {
		return argErr("bad host")
	}
	port, err := ps[1].integer(1, 65535)
	if err != nil {
		return err
	}
	rc, err := ps[2].integer(0, 1)
	if err != nil {
		return err
	}
	timeout := m.cfg.MQTTTimeout
	if len(ps) == 4 && !ps[3].empty() {
		ms, err := ps[3].integer(3000, 60000)
		if err != nil {
			return err
		}
		timeout = time.Duration(ms) * time.Millisecond
	}
	c := m.mqttCfg
	switch {
	case c.state < 1:
		return stateErr("AT+MQTTUSERCFG first")
	case m.mqtt != nil:
		return stateErr("MQTT is already connected")
	case !m.wifiUp:
		return stateErr("no IP: Wi-Fi is not joined")
	case c.scheme > 5:
		return fmt.Errorf("%w: MQTT over WebSocket (scheme %d)", ErrUnsupported, c.scheme)
	}
	auth := map[int]int{2: 0, 3: 2, 4: 1, 5: 3}[c.scheme]
	var tlsErr error
	if c.scheme >= 2 {
		_, tlsErr = m.tlsClient(auth, c.sni, c.alpn, host)
	}
	if tlsErr != nil {
		return tlsErr
	}
	s := &mqttSession{host: host, port: port, reconnect: rc == 1}
	// Paho dials through the module: resolve, Dial, TLS per scheme.
	open := func(_ *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		m.mu.Lock()
		up := m.wifiUp && m.mqtt == s
		target, _ := m.resolve(host)
		m.mu.Unlock()
		if !up {
			return nil, fmt.Errorf("no IP")
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		conn, err := m.cfg.Dial(ctx, target, port)
		if err != nil || c.scheme < 2 {
			return conn, err
		}
		return m.handshake(ctx, conn, sslConf{auth: auth, sni: c.sni, alpn: c.alpn}, host)
	}
	opts := paho.NewClientOptions().AddBroker("tcp://" + net.JoinHostPort(host, strconv.Itoa(port))).
		SetClientID(c.clientID).SetUsername(c.user).SetPassword(c.pass).
		SetKeepAlive(time.Duration(c.keepalive) * time.Second).SetCleanSession(!c.noClean).
		SetCustomOpenConnectionFn(open).SetConnectTimeout(timeout).SetAutoReconnect(rc == 1).
		SetMaxReconnectInterval(5 * time.Second).SetConnectRetry(false).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho.Client, msg paho.Message) { m.mqttRecv(s, msg) }).
		SetConnectionLostHandler(func(paho.Client, error) { m.mqttLost(s) }).
		SetOnConnectHandler(func(paho.Client) { m.mqttReconnected(s) })
	if c.lwtTopic != "" {
		opts.SetWill(c.lwtTopic, c.lwtMsg, byte(c.lwtQos), c.lwtRetain)
	}
	s.client = paho.NewClient(opts)
	m.mqtt = s
	m.asyncLocked(func(context.Context) func(bool) {
		err := waitToken(s.client.Connect(), timeout+time.Second)
		return func(live bool) {
			if !live || m.mqtt != s {
				go s.client.Disconnect(0)
				return
			}
			if err != nil {
				m.mqtt = nil
				go s.client.Disconnect(0)
				m.recordLocked(Event{Kind: EventDialFail, Host: host, Port: port, Proto: "MQTT", Reason: err.Error()})
				m.fail(stateErr("MQTT connect to %s:%d: %v", host, port, err))
				return
			}
			s.announced = true
			m.mqttUpLocked(s)
			m.emit([]byte("+MQTTCONNECTED:0," + m.mqttConnTail(s) + "\r\n"))
			m.ok()
		}
	})
	return nil
}

// mqttUpLocked opens the session's pseudo link (events, counters).
func (m *Module) mqttUpLocked(s *mqttSession) {
	if s.link != nil {
		return
	}
	m.linkSeq++
	target, _ := m.resolve(s.host)
	ip := target
	if net.ParseIP(ip) == nil {
		ip = m.cfg.NameIP
	}
	s.link = &link{id: m.linkSeq, typ: "MQTT", host: s.host, port: s.port, remoteIP: ip,
		localPort: m.localPort(nil), opened: m.cfg.Now(), room: make(chan struct{}, 1)}
	m.recordLocked(Event{Kind: EventLinkOpen}.forLink(s.link))
}

func (m *Module) mqttDownLocked(s *mqttSession, reason string) {
	if s.link == nil {
		return
	}
	l := s.link
	s.link = nil
	l.closed = true
	m.recordLocked(Event{Kind: EventLinkClose, Reason: reason}.forLink(l))
}

// mqttDropLocked ends the session (Wi-Fi loss, reboot, MQTTCLEAN); urc
// says whether the host is told with +MQTTDISCONNECTED.
func (m *Module) mqttDropLocked(reason string, urc bool) {
	s := m.mqtt
	if s == nil {
		return
	}
	m.mqtt = nil
	if s.link != nil && urc {
		m.emit([]byte("+MQTTDISCONNECTED:0\r\n"))
	}
	m.mqttDownLocked(s, reason)
	if s.client != nil {
		go s.client.Disconnect(0)
	}
}

// mqttLost: the broker connection broke (paho's callback).
func (m *Module) mqttLost(s *mqttSession) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mqtt != s || s.link == nil {
		return
	}
	m.unsolicited(func() {
		m.emit([]byte("+MQTTDISCONNECTED:0\r\n"))
		m.mqttDownLocked(s, "broker connection lost")
		if !s.reconnect {
			m.mqtt = nil
		}
	})
}

// mqttReconnected: paho reconnected by itself (reconnect=1): announce it and
// subscribe the topics again.
func (m *Module) mqttReconnected(s *mqttSession) {
	m.mu.Lock()
	if m.mqtt != s || s.link != nil || !s.announced {
		m.mu.Unlock()
		return
	}
	subs := append([]mqttSub(nil), m.mqttCfg.subs...)
	m.unsolicited(func() {
		m.mqttUpLocked(s)
		m.emit([]byte("+MQTTCONNECTED:0," + m.mqttConnTail(s) + "\r\n"))
	})
	m.mu.Unlock()
	for _, sub := range subs {
		s.client.Subscribe(sub.topic, byte(sub.qos), nil)
	}
}

// mqttPublishLocked publishes for AT+MQTTPUB (OK/ERROR) or AT+MQTTPUBRAW
// (+MQTTPUB:OK/FAIL), counting topic + payload bytes once it succeeded.
func (m *Module) mqttPublishLocked(topic string, data []byte, qos int, retain, raw bool) {
	s := m.mqtt
	if s == nil || s.link == nil {
		m.emit([]byte("\r\n+MQTTPUB:FAIL\r\n"))
		m.setResult("+MQTTPUB:FAIL")
		m.cur.reason = stateErr("MQTT disconnected").Error()
		return
	}
	l := s.link
	m.asyncLocked(func(context.Context) func(bool) {
		at := m.cfg.Now()
		err := waitToken(s.client.Publish(topic, byte(qos), retain, data), m.cfg.MQTTTimeout)
		return func(live bool) {
			if !live {
				return
			}
			if err == nil {
				m.countOutLocked(l, len(topic)+len(data), at)
			} else {
				m.recordAtLocked(Event{Kind: EventSend, Bytes: len(topic) + len(data), Reason: err.Error()}.forLink(l), at)
			}
			switch {
			case raw && err == nil:
				m.emit([]byte("\r\n+MQTTPUB:OK\r\n"))
				m.setResult("+MQTTPUB:OK")
			case raw:
				m.emit([]byte("\r\n+MQTTPUB:FAIL\r\n"))
				m.setResult("+MQTTPUB:FAIL")
				m.cur.reason = "publish: " + err.Error()
			case err == nil:
				m.ok()
			default:
				m.fail(stateErr("publish: %v", err))
			}
		}
	})
}

// mqttRecv turns a broker message into +MQTTSUBRECV pieces of at most 1024
// bytes, header included, each with its own <len> and a trailing CR LF.
func (m *Module) mqttRecv(s *mqttSession, msg paho.Message) {
	m.mu.Lock()
	if m.mqtt != s || s.link == nil {
		m.mu.Unlock()
		return
	}
	l := s.link
	data := msg.Payload()
	var last <-chan error
	m.unsolicited(func() {
		for first := true; first || len(data) > 0; first = false {
			// The largest n whose header + n bytes fit in a piece.
			n := len(data)
			for {
				fit := mqttRecvPiece - len(fmt.Sprintf("+MQTTSUBRECV:0,\"%s\",%d,", msg.Topic(), n))
				if n <= fit || fit < 1 {
					break
				}
				n = fit
			}
			n = max(n, min(1, len(data)))
			head := fmt.Sprintf("+MQTTSUBRECV:0,\"%s\",%d,", msg.Topic(), n)
			b := append(append([]byte(head), data[:n]...), '\r', '\n')
			data = data[n:]
			m.countInLocked(l, n)
			last = m.emit(b)
		}
	})
	stop := m.stop
	m.mu.Unlock()
	select {
	case <-last:
	case <-stop:
	}
}

func (m *Module) mqttConnQueryLocked() {
	st := m.mqttState()
	if s := m.mqtt; s != nil {
		m.info(fmt.Sprintf("+MQTTCONN:0,%d,%s\r\n", st, m.mqttConnTail(s)))
		return
	}
	m.info(fmt.Sprintf("+MQTTCONN:0,%d,%d,\"\",\"\",\"\",0\r\n", st, m.mqttCfg.scheme))
}

func (m *Module) mqttSubQueryLocked() {
	st := m.mqttState()
	if len(m.mqttCfg.subs) == 0 {
		m.info(fmt.Sprintf("+MQTTSUB:0,%d,\"\",0\r\n", st))
		return
	}
	var out string
	for _, s := range m.mqttCfg.subs {
		out += fmt.Sprintf("+MQTTSUB:0,%d,\"%s\",%d\r\n", st, s.topic, s.qos)
	}
	m.info(out)
}
