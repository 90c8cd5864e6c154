package espat

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// netState is the station configuration the init commands of real drivers
// set and query (esp-at-dialects.md §3), reset at boot.
type netState struct {
	dhcp               bool
	staticIP, gw, mask string // AT+CIPSTA="ip","gw","mask"
	hostname           string
	autoconn           int
	lapSort, lapMask   int
	dnsUser            bool
	dns                []string
	syslog             int
}

func (m *Module) defaultNet() netState {
	return netState{dhcp: true, hostname: "espressif", autoconn: 1, lapMask: 0x7FF}
}

// awsEndpoint matches the AWS IoT data endpoint form.
var awsEndpoint = regexp.MustCompile(`^[a-z0-9]+-ats\.iot\.[a-z0-9-]+\.amazonaws\.com$`)

// resolve maps a host to what the dialers get: an IP literal as is, a name
// in Config.Hosts or of the AWS endpoint form to its address (ok true),
// any other name unchanged (ok false: the dialer resolves it or not).
func (m *Module) resolve(host string) (target string, ok bool) {
	if ip := net.ParseIP(host); ip != nil {
		return host, true
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	for k, v := range m.cfg.Hosts {
		if strings.EqualFold(strings.TrimSuffix(k, "."), name) {
			return v, true
		}
	}
	if awsEndpoint.MatchString(name) {
		return m.cfg.NameIP, true
	}
	return host, false
}

// dnsServers are the servers AT+CIPDNS? shows and the module's resolver
// answers on: the user's (CIPDNS=1) or the DHCP one.
func (m *Module) dnsServers() []string {
	if m.net.dnsUser && len(m.net.dns) > 0 {
		return m.net.dns
	}
	return []string{m.cfg.DNSServer}
}

func (m *Module) isDNSServer(ip string) bool {
	for _, s := range m.dnsServers() {
		if s == ip {
			return true
		}
	}
	return false
}

// staIP is the station address: the static one, else the DHCP lease
// while Wi-Fi is up, else 0.0.0.0.
func (m *Module) staIP() (ip, gw, mask string) {
	if !m.net.dhcp && m.net.staticIP != "" {
		return m.net.staticIP, m.net.gw, m.net.mask
	}
	if m.wifiUp {
		return m.cfg.StationIP, m.cfg.Gateway, m.cfg.Netmask
	}
	return "0.0.0.0", "0.0.0.0", "0.0.0.0"
}

// cipstaQueryLocked: +CIPSTA:ip:"…", gateway, netmask in this order (§3).
func (m *Module) cipstaQueryLocked(reply string) {
	ip, gw, mask := m.staIP()
	m.info(fmt.Sprintf("%s:ip:\"%s\"\r\n%s:gateway:\"%s\"\r\n%s:netmask:\"%s\"\r\n", reply, ip, reply, gw, reply, mask))
}

// cifsrLocked: +CIFSR:STAIP/STAMAC (station), APIP/APMAC (softAP).
func (m *Module) cifsrLocked() {
	var s string
	if m.cwmode&2 != 0 {
		s += "+CIFSR:APIP,\"192.168.4.1\"\r\n+CIFSR:APMAC,\"26:0a:c4:00:00:01\"\r\n"
	}
	if m.cwmode&1 != 0 {
		ip, _, _ := m.staIP()
		s += fmt.Sprintf("+CIFSR:STAIP,\"%s\"\r\n+CIFSR:STAMAC,\"%s\"\r\n", ip, m.cfg.MAC)
	}
	m.info(s)
}

func (m *Module) joinedAP() AccessPoint {
	for _, ap := range m.cfg.AccessPoints {
		if ap.SSID == m.joinedSSID {
			return ap
		}
	}
	return AccessPoint{SSID: m.joinedSSID, BSSID: "aa:bb:cc:dd:ee:ff", RSSI: -45, Channel: 6, Ecn: 3}
}

// cwjapQueryLocked: 9 fields in v2, 4 in 1.7; "No AP" when not joined.
func (m *Module) cwjapQueryLocked(reply string) error {
	if !m.station() {
		return stateErr("station mode is off")
	}
	if !m.wifiUp {
		m.info("No AP\r\n")
		return nil
	}
	ap := m.joinedAP()
	if m.cfg.Dialect == Dialect17 {
		m.info(fmt.Sprintf("%s:\"%s\",\"%s\",%d,%d\r\n", reply, ap.SSID, ap.BSSID, ap.Channel, ap.RSSI))
		return nil
	}
	m.info(fmt.Sprintf("%s:\"%s\",\"%s\",%d,%d,0,1,3,0,1\r\n", reply, ap.SSID, ap.BSSID, ap.Channel, ap.RSSI))
	return nil
}

// cwlapLocked: one +CWLAP:(…) per access point with the fields of the
// CWLAPOPT mask, then OK (§3). ssid filters when given.
func (m *Module) cwlapLocked(ps []param) error {
	if !m.station() {
		return stateErr("station mode is off")
	}
	filter := ""
	if len(ps) > 0 && !ps[0].empty() {
		s, err := ps[0].str()
		if err != nil {
			return err
		}
		filter = s
	}
	aps := append([]AccessPoint(nil), m.cfg.AccessPoints...)
	if m.net.lapSort == 1 {
		sort.SliceStable(aps, func(i, j int) bool { return aps[i].RSSI > aps[j].RSSI })
	}
	var s string
	for _, ap := range aps {
		if filter != "" && ap.SSID != filter {
			continue
		}
		all := []string{fmt.Sprint(ap.Ecn), `"` + ap.SSID + `"`, fmt.Sprint(ap.RSSI), `"` + ap.BSSID + `"`,
			fmt.Sprint(ap.Channel), "-1", "-1", "4", "4", "7", "0"}
		var f []string
		for bit, v := range all {
			if m.net.lapMask&(1<<bit) != 0 {
				f = append(f, v)
			}
		}
		s += "+CWLAP:(" + strings.Join(f, ",") + ")\r\n"
	}
	if s == "" {
		m.ok()
		return nil
	}
	m.info(s)
	return nil
}

// cipdnsQueryLocked: v2 +CIPDNS:<en>[,"ip"…]; 1.7 one +CIPDNS_CUR:<ip>
// line per server.
func (m *Module) cipdnsQueryLocked(reply string) {
	if m.cfg.Dialect == Dialect17 {
		var s string
		for _, d := range m.dnsServers() {
			s += fmt.Sprintf("%s:%s\r\n", reply, d)
		}
		m.info(s)
		return
	}
	s := fmt.Sprintf("%s:%d", reply, b2i(m.net.dnsUser))
	for _, d := range m.dnsServers() {
		s += fmt.Sprintf(",\"%s\"", d)
	}
	m.info(s + "\r\n")
}

func ipv4(p param) (string, error) {
	s, err := p.str()
	if err != nil {
		return "", err
	}
	ip := net.ParseIP(s)
	if ip == nil || ip.To4() == nil {
		return "", argErr("%q is not an IPv4 address", s)
	}
	return ip.To4().String(), nil
}

// netSetLocked: the station and DNS set commands (§3).
func (m *Module) netSetLocked(name string, ps []param) error {
	switch name {
	case "AT+CWDHCP":
		if len(ps) != 2 {
			return argErr("AT+CWDHCP needs two parameters")
		}
		a, err := ps[0].integer(0, 7)
		if err != nil {
			return err
		}
		b, err := ps[1].integer(0, 7)
		if err != nil {
			return err
		}
		en, station := a, b&1 != 0 // v2: <operate>,<mode bits>
		if m.cfg.Dialect == Dialect17 {
			en, station = b, a == 1 || a == 2 // 1.7: <mode 0 AP,1 STA,2 both>,<en>
		}
		if en > 1 {
			return argErr("enable must be 0 or 1")
		}
		if station {
			m.net.dhcp = en == 1
			if m.net.dhcp {
				m.net.staticIP = ""
			}
		}
		m.ok()
	case "AT+CWAUTOCONN":
		if len(ps) != 1 {
			return errSyntax
		}
		v, err := ps[0].integer(0, 1)
		if err != nil {
			return err
		}
		m.net.autoconn = v
		m.ok()
	case "AT+CWLAPOPT":
		if len(ps) < 2 || len(ps) > 4 {
			return argErr("AT+CWLAPOPT needs 2-4 parameters")
		}
		sortOn, err := ps[0].integer(0, 1)
		if err != nil {
			return err
		}
		mask, err := ps[1].integer(0, 0x7FF)
		if err != nil {
			return err
		}
		for _, p := range ps[2:] {
			if !p.empty() {
				if _, err := p.integer(-128, 0xFFFF); err != nil {
					return err
				}
			}
		}
		m.net.lapSort, m.net.lapMask = sortOn, mask
		m.ok()
	case "AT+CWLAP":
		return m.cwlapLocked(ps)
	case "AT+CWHOSTNAME":
		if len(ps) != 1 {
			return errSyntax
		}
		h, err := ps[0].str()
		if err != nil || h == "" || len(h) > 32 {
			return argErr("host name must be 1-32 bytes")
		}
		if !m.station() {
			return stateErr("station mode is off")
		}
		m.net.hostname = h
		m.ok()
	case "AT+CIPSTA":
		if len(ps) != 1 && len(ps) != 3 {
			return argErr("AT+CIPSTA needs an IP, or IP, gateway and netmask")
		}
		var v [3]string
		for i := range ps {
			s, err := ipv4(ps[i])
			if err != nil {
				return err
			}
			v[i] = s
		}
		if len(ps) == 1 {
			v[1], v[2] = m.cfg.Gateway, m.cfg.Netmask
		}
		if !m.station() {
			return stateErr("station mode is off")
		}
		m.net.staticIP, m.net.gw, m.net.mask = v[0], v[1], v[2]
		m.net.dhcp = false
		m.ok()
	case "AT+CIPDNS":
		if len(ps) < 1 || len(ps) > 4 {
			return errSyntax
		}
		en, err := ps[0].integer(0, 1)
		if err != nil {
			return err
		}
		var servers []string
		seen := map[string]bool{}
		for _, p := range ps[1:] {
			s, err := ipv4(p)
			if err != nil {
				return err
			}
			if seen[s] {
				return argErr("DNS server %s given twice", s)
			}
			seen[s] = true
			servers = append(servers, s)
		}
		if en == 1 && len(servers) == 0 {
			servers = []string{"208.67.222.222"}
		}
		m.net.dnsUser, m.net.dns = en == 1, servers
		m.ok()
	case "AT+CIPDOMAIN":
		if len(ps) < 1 || len(ps) > 4 {
			return errSyntax
		}
		host, err := ps[0].str()
		if err != nil || host == "" || len(host) > maxHost {
			return argErr("bad domain name")
		}
		if !m.wifiUp {
			return withText("DNS Fail", stateErr("no IP: Wi-Fi is not joined"))
		}
		ip, ok := m.resolve(host)
		if !ok || net.ParseIP(ip) == nil {
			return withText("DNS Fail", stateErr("%s does not resolve (not in the module's hosts)", host))
		}
		if m.cfg.Dialect == Dialect17 {
			m.info(fmt.Sprintf("+CIPDOMAIN:%s\r\n", ip))
		} else {
			m.info(fmt.Sprintf("+CIPDOMAIN:\"%s\"\r\n", ip))
		}
	case "AT+SYSLOG":
		if len(ps) != 1 {
			return errSyntax
		}
		v, err := ps[0].integer(0, 1)
		if err != nil {
			return err
		}
		m.net.syslog = v
		m.ok()
	case "AT+CWCOUNTRY":
		if len(ps) < 1 {
			return errSyntax
		}
		m.ok()
	case "AT+CIPSTAMAC":
		return fmt.Errorf("%w: the MAC is fixed by configuration", ErrUnsupported)
	}
	return nil
}

// dnsResponder is the module's own DNS server: a UDP link to port 53 of
// the module's DNS server address is answered here from Config.Hosts (and
// the AWS endpoint form), so a driver that resolves names over UDP
// (Zephyr's) reaches the harness without any network.
type dnsResponder struct {
	m *Module
}

// answer builds the reply to one DNS query datagram (nil: not a query).
func (d *dnsResponder) answer(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) == 0 {
		return nil
	}
	resp := dnsmessage.Message{Header: dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true,
		RecursionDesired: h.RecursionDesired, RecursionAvailable: true}, Questions: qs}
	found := false
	for _, qq := range qs {
		ip, ok := d.m.resolve(strings.TrimSuffix(qq.Name.String(), "."))
		v4 := net.ParseIP(ip).To4()
		if !ok || v4 == nil {
			continue
		}
		found = true
		if qq.Type != dnsmessage.TypeA || qq.Class != dnsmessage.ClassINET {
			continue
		}
		var a [4]byte
		copy(a[:], v4)
		resp.Answers = append(resp.Answers, dnsmessage.Resource{
			Header: dnsmessage.ResourceHeader{Name: qq.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
			Body:   &dnsmessage.AResource{A: a}})
	}
	if !found {
		resp.RCode = dnsmessage.RCodeNameError
	}
	b, err := resp.Pack()
	if err != nil {
		return nil
	}
	return b
}
