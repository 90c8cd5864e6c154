// Package certs makes the small PKI a mutual-TLS lab needs: a CA, a server
// certificate for the broker, and device certificates whose CN is the thing
// name (issued with a fresh key, or from a device's CSR). Keys are ECDSA
// P-256, which mbedTLS and every AWS IoT device SDK handle, and are written
// with mode 0600.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// File names inside a certs directory.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	ServerFile    = "server.pem"
	ServerKeyFile = "server-key.pem"
)

// ErrInvalid marks bad input (thing name, CSR) as opposed to I/O failures.
var ErrInvalid = errors.New("certs: invalid input")

// DefaultHosts are the server certificate's names when none are given.
var DefaultHosts = []string{"localhost", "127.0.0.1"}

// Validity periods. Certificates start a day in the past so devices whose
// clock is a little behind (or only set by SNTP later) accept them.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	leafValidity   = 2 * 365 * 24 * time.Hour
	backdate       = 24 * time.Hour
	thingNameLimit = 128
)

var thingName = regexp.MustCompile(`^[a-zA-Z0-9:_-]+$`)

// DeviceFiles returns the certificate and key paths of thing in dir.
func DeviceFiles(dir, thing string) (cert, key string) {
	return filepath.Join(dir, thing+".pem"), filepath.Join(dir, thing+"-key.pem")
}

// InitCA creates a CA and a server certificate for hosts in dir (created
// if missing). The first host is the CN; every host goes into the DNS SANs
// (mbedTLS matches DNS names only) and IP hosts also into the IP SANs. It
// refuses to overwrite an existing CA.
func InitCA(dir string, hosts []string) error {
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	for _, h := range hosts {
		if h == "" {
			return fmt.Errorf("%w: empty host name", ErrInvalid)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("certs: create %s: %w", dir, err)
	}
	for _, f := range []string{CAFile, CAKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return fmt.Errorf("certs: %s already exists; remove it or use another directory", filepath.Join(dir, f))
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("certs: %w", err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: generate CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "ddhil lab CA", Organization: []string{"ddhil"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("certs: create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return fmt.Errorf("certs: parse CA certificate: %w", err)
	}

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: generate server key: %w", err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"ddhil"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		srvTmpl.DNSNames = append(srvTmpl.DNSNames, h)
		if ip := net.ParseIP(h); ip != nil {
			srvTmpl.IPAddresses = append(srvTmpl.IPAddresses, ip)
		}
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("certs: create server certificate: %w", err)
	}

	// Keys first: a directory with a CA certificate but no key is useless.
	if err := writeKey(filepath.Join(dir, CAKeyFile), caKey); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, ServerKeyFile), srvKey); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, ServerFile), "CERTIFICATE", srvDER, 0o644); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, CAFile), "CERTIFICATE", caDER, 0o644)
}

// IssueDevice issues a client certificate with CN = thing, signed by the CA
// in dir, and writes <thing>.pem (and <thing>-key.pem when it made the key).
// With csrPEM nil it generates an ECDSA P-256 key; otherwise it signs the
// CSR after checking its signature, and requires its CN to be empty or
// equal to thing (the issued CN is always thing).
func IssueDevice(dir, thing string, csrPEM []byte) (certPath, keyPath string, err error) {
	if len(thing) == 0 || len(thing) > thingNameLimit || !thingName.MatchString(thing) {
		return "", "", fmt.Errorf("%w: thing name %q must be 1..128 characters of [a-zA-Z0-9:_-]", ErrInvalid, thing)
	}
	ca, caKey, err := loadCA(dir)
	if err != nil {
		return "", "", err
	}
	var pub any
	var key *ecdsa.PrivateKey
	if csrPEM == nil {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", "", fmt.Errorf("certs: generate device key: %w", err)
		}
		pub = &key.PublicKey
	} else {
		csr, err := parseCSR(csrPEM)
		if err != nil {
			return "", "", err
		}
		if cn := csr.Subject.CommonName; cn != "" && cn != thing {
			return "", "", fmt.Errorf("%w: CSR common name %q is not the thing name %q", ErrInvalid, cn, thing)
		}
		pub = csr.PublicKey
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: thing},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return "", "", fmt.Errorf("certs: create device certificate: %w", err)
	}
	certPath, keyPath = DeviceFiles(dir, thing)
	if key != nil {
		if err := writeKey(keyPath, key); err != nil {
			return "", "", err
		}
	} else {
		keyPath = ""
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// ServerTLSConfig loads the broker's certificate and the CA that verifies
// device certificates from dir, ready for broker.Config.TLS.
func ServerTLSConfig(dir string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerFile), filepath.Join(dir, ServerKeyFile))
	if err != nil {
		return nil, fmt.Errorf("certs: load server key pair: %w", err)
	}
	pool, err := LoadPool(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ClientTLSConfig loads thing's certificate and key and trusts the CA in
// dir, for a test client or a device simulator. serverName is the name
// checked against the server certificate (one of InitCA's hosts).
func ClientTLSConfig(dir, thing, serverName string) (*tls.Config, error) {
	certPath, keyPath := DeviceFiles(dir, thing)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("certs: load device key pair: %w", err)
	}
	pool, err := LoadPool(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// LoadPool reads a PEM file of CA certificates into a pool.
func LoadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", path)
	}
	return pool, nil
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return nil, nil, fmt.Errorf("certs: read CA (run 'ddhil certs init' first?): %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("certs: read CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("certs: %s is not a PEM certificate", filepath.Join(dir, CAFile))
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: parse CA: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, nil, fmt.Errorf("certs: %s is not PEM", filepath.Join(dir, CAKeyFile))
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: parse CA key: %w", err)
	}
	if !key.PublicKey.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("certs: CA key does not match %s", CAFile)
	}
	return ca, key, nil
}

func parseCSR(b []byte) (*x509.CertificateRequest, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" && blk.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: CSR is not a PEM CERTIFICATE REQUEST", ErrInvalid)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: parse CSR: %v", ErrInvalid, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: CSR signature: %v", ErrInvalid, err)
	}
	return csr, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("certs: crypto/rand failed: " + err.Error()) // crypto/rand does not fail on Linux
	}
	return n.Add(n, big.NewInt(1))
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: encode key: %w", err)
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

// writePEM writes through a temporary file and a rename, so a crash never
// leaves a half-written key or certificate behind.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".certs-*")
	if err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: typ, Bytes: der}); err != nil {
		tmp.Close()
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}
