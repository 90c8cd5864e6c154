package espat

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
)

// sslConf is what AT+CIPSSLCCONF/CSNI/CALPN set for a link
// (esp-at-dialects.md §6.1).
type sslConf struct {
	set  bool
	auth int // 0 none, 1 client cert, 2 verify server, 3 mutual
	pki  int
	ca   int
	sni  string
	alpn []string
}

// sslFor is the configuration of link slot (or of "all links", id 5).
func (m *Module) sslFor(slot int) sslConf {
	if c := m.ssl[slot]; c.set {
		return c
	}
	return m.ssl[maxLinks]
}

// tlsClient builds the client side of a handshake: auth_mode picks
// whether the device certificate is sent and the server verified, with
// the certificate, key and CAs of Config.TLS (the module's PKI).
func (m *Module) tlsClient(auth int, sni string, alpn []string, host string) (*tls.Config, error) {
	base := &tls.Config{}
	if m.cfg.TLS != nil {
		base = m.cfg.TLS.Clone()
	}
	if base.MinVersion < tls.VersionTLS12 {
		base.MinVersion = tls.VersionTLS12
	}
	sendCert := auth == 1 || auth == 3
	verify := auth == 2 || auth == 3
	if sendCert && len(base.Certificates) == 0 && base.GetClientCertificate == nil {
		return nil, stateErr("NO CERT FOUND: no device certificate configured (Config.TLS)")
	}
	if verify && base.RootCAs == nil {
		return nil, stateErr("NO CA FOUND: no CA configured (Config.TLS.RootCAs)")
	}
	if !sendCert {
		base.Certificates, base.GetClientCertificate = nil, nil
	}
	base.InsecureSkipVerify = !verify
	if base.ServerName == "" {
		base.ServerName = sni
	}
	if base.ServerName == "" {
		base.ServerName = host
	}
	if len(alpn) > 0 {
		base.NextProtos = alpn
	}
	return base, nil
}

// handshake runs the TLS client handshake of an SSL link on conn.
func (m *Module) handshake(ctx context.Context, conn net.Conn, c sslConf, host string) (net.Conn, error) {
	m.mu.Lock()
	conf, err := m.tlsClient(c.auth, c.sni, c.alpn, host)
	m.mu.Unlock()
	if err != nil {
		conn.Close()
		return nil, err
	}
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return &tlsLink{Conn: tc, raw: conn}, nil
}

// tlsLink reports the underlying connection's addresses.
type tlsLink struct {
	*tls.Conn
	raw net.Conn
}

func (t *tlsLink) LocalAddr() net.Addr  { return t.raw.LocalAddr() }
func (t *tlsLink) RemoteAddr() net.Addr { return t.raw.RemoteAddr() }

// sslSetLocked: AT+CIPSSLCCONF=[<id>,]<auth>[,<pki>][,<ca>],
// AT+CIPSSLCSNI=[<id>,]"<sni>", AT+CIPSSLCALPN=[<id>,]<n>[,"<alpn>"…].
// Single-link mode has no id; id 5 means every link.
func (m *Module) sslSetLocked(name string, ps []param) error {
	slot := 0
	if m.mux && len(ps) > 0 && !ps[0].quoted {
		if name != "AT+CIPSSLCCONF" || len(ps) >= 2 {
			id, err := ps[0].integer(0, maxLinks)
			if err != nil {
				return err
			}
			slot, ps = id, ps[1:]
		}
	}
	c := m.ssl[slot]
	switch name {
	case "AT+CIPSSLCCONF":
		if len(ps) < 1 || len(ps) > 3 {
			return errSyntax
		}
		auth, err := ps[0].integer(0, 3)
		if err != nil {
			return err
		}
		c.auth = auth
		if len(ps) >= 2 && !ps[1].empty() {
			if c.pki, err = ps[1].integer(0, 255); err != nil {
				return err
			}
		}
		if len(ps) == 3 && !ps[2].empty() {
			if c.ca, err = ps[2].integer(0, 255); err != nil {
				return err
			}
		}
	case "AT+CIPSSLCSNI":
		if len(ps) != 1 {
			return errSyntax
		}
		s, err := ps[0].str()
		if err != nil || s == "" {
			return argErr("bad SNI")
		}
		c.sni = s
	case "AT+CIPSSLCALPN":
		if len(ps) < 1 {
			return errSyntax
		}
		n, err := ps[0].integer(0, 5)
		if err != nil || len(ps) != n+1 {
			return argErr("ALPN count does not match")
		}
		c.alpn = nil
		for _, p := range ps[1:] {
			s, err := p.str()
			if err != nil {
				return err
			}
			c.alpn = append(c.alpn, s)
		}
	}
	c.set = true
	m.ssl[slot] = c
	m.ok()
	return nil
}

// sslQueryLocked: +CIPSSLCCONF:[<id>,]<auth>,<pki>,<ca>.
func (m *Module) sslQueryLocked() {
	if !m.mux {
		c := m.ssl[0]
		m.info(fmt.Sprintf("+CIPSSLCCONF:%d,%d,%d\r\n", c.auth, c.pki, c.ca))
		return
	}
	var s string
	for id := 0; id < maxLinks; id++ {
		c := m.sslFor(id)
		s += fmt.Sprintf("+CIPSSLCCONF:%d,%d,%d,%d\r\n", id, c.auth, c.pki, c.ca)
	}
	m.info(s)
}

// TLSFromFiles loads the module's PKI from PEM files: the device
// certificate and key (may be empty for server-verification only) and the
// CA that signs the broker's certificate (may be empty for no
// verification), ready for Config.TLS.
func TLSFromFiles(certFile, keyFile, caFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("espat: device certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("espat: CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("espat: CA %s: no PEM certificate", caFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}
