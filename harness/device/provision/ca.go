// Package provision is the lab side of provisioning a device for mutual
// TLS: one CA that certifies the broker's TLS listener for the address the
// device dials and signs the client certificate requests devices generate
// on-board. Device profiles drive the console dialogue (harness/device/profile,
// `pki` steps); this package only holds the keys.
package provision

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/ddhil/ddhil/broker/certs"
)

// CA is a lab certificate authority kept in a directory (broker/certs
// layout: ca.pem, ca-key.pem, server.pem, server-key.pem, <thing>.pem).
type CA struct {
	dir   string
	caPEM []byte
}

// OpenCA uses the CA in dir when there is one whose server certificate names
// every host, and creates one (dir included) when there is none. hosts are
// the names the device dials: an IP endpoint goes into the certificate both
// as an IP and as a DNS name, since mbedTLS 3.1 matches DNS names only. An
// existing CA made for other hosts is an error, never overwritten.
func OpenCA(dir string, hosts []string) (*CA, error) {
	if len(hosts) == 0 {
		return nil, errors.New("provision: no host names for the broker certificate")
	}
	_, err := os.Stat(filepath.Join(dir, certs.CAFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := certs.InitCA(dir, hosts); err != nil {
			return nil, fmt.Errorf("provision: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("provision: %w", err)
	default:
		names, err := serverNames(dir)
		if err != nil {
			return nil, err
		}
		for _, h := range hosts {
			if !slices.Contains(names, h) {
				return nil, fmt.Errorf("provision: the CA in %s certifies the broker as %v, not %q: remove the directory or use another one", dir, names, h)
			}
		}
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, certs.CAFile))
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	return &CA{dir: dir, caPEM: caPEM}, nil
}

// serverNames lists the DNS names of the broker certificate in dir.
func serverNames(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, certs.ServerFile))
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("provision: %s holds no PEM certificate", filepath.Join(dir, certs.ServerFile))
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("provision: parse %s: %w", certs.ServerFile, err)
	}
	return cert.DNSNames, nil
}

// Dir is where the CA's files are.
func (c *CA) Dir() string { return c.dir }

// CACert is the CA certificate (PEM): what a device imports as the root it
// verifies the broker with.
func (c *CA) CACert() []byte { return append([]byte(nil), c.caPEM...) }

// SignCSR issues a client certificate with CN = thing for the public key of
// a device's certificate request (PEM) and returns it as PEM. The request's
// signature is checked and its CN must be empty or thing.
func (c *CA) SignCSR(thing string, csrPEM []byte) ([]byte, error) {
	certPath, _, err := certs.IssueDevice(c.dir, thing, csrPEM)
	if err != nil {
		return nil, fmt.Errorf("provision: sign CSR: %w", err)
	}
	b, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	return b, nil
}

// ServerTLS is the broker's mutual-TLS configuration (for broker.Config.TLS):
// its certificate, and this CA to verify device certificates with.
func (c *CA) ServerTLS() (*tls.Config, error) {
	t, err := certs.ServerTLSConfig(c.dir)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	return t, nil
}
