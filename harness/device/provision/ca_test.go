package provision

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/certs"
)

// deviceCSR makes what a device's `pki generate csr` prints: a CSR for a
// fresh P-256 key with CN = cn.
func deviceCSR(t *testing.T, cn string) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	require.NoError(t, err)
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestOpenCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca, err := OpenCA(dir, []string{"127.0.0.1", "lab.local"})
	require.NoError(t, err)
	assert.Equal(t, dir, ca.Dir())
	blk, _ := pem.Decode(ca.CACert())
	require.NotNil(t, blk)
	assert.Equal(t, "CERTIFICATE", blk.Type)

	cases := []struct {
		name  string
		hosts []string
		err   string
	}{
		{"same hosts reuse it", []string{"127.0.0.1", "lab.local"}, ""},
		{"a subset reuses it", []string{"lab.local"}, ""},
		{"another host", []string{"10.0.0.2"}, `certifies the broker as [127.0.0.1 lab.local], not "10.0.0.2"`},
		{"no hosts", nil, "no host names"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			again, err := OpenCA(dir, tc.hosts)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, ca.CACert(), again.CACert(), "the existing CA is kept")
		})
	}

	require.NoError(t, os.WriteFile(filepath.Join(dir, certs.ServerFile), []byte("junk"), 0o644))
	_, err = OpenCA(dir, []string{"127.0.0.1"})
	require.ErrorContains(t, err, "holds no PEM certificate")
}

func TestSignCSR(t *testing.T) {
	ca, err := OpenCA(t.TempDir(), []string{"127.0.0.1"})
	require.NoError(t, err)
	_, good := deviceCSR(t, "dut-1")
	_, anon := deviceCSR(t, "")
	_, other := deviceCSR(t, "someone-else")
	cases := []struct {
		name, thing string
		csr         []byte
		err         string
	}{
		{"CN is the thing", "dut-1", good, ""},
		{"empty CN", "dut-1", anon, ""},
		{"CN of another thing", "dut-1", other, `CSR common name "someone-else" is not the thing name "dut-1"`},
		{"not a CSR", "dut-1", []byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"), "parse CSR"},
		{"bad thing name", "a b", good, "thing name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			certPEM, err := ca.SignCSR(tc.thing, tc.csr)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				assert.True(t, errors.Is(err, certs.ErrInvalid))
				return
			}
			require.NoError(t, err)
			blk, _ := pem.Decode(certPEM)
			require.NotNil(t, blk)
			cert, err := x509.ParseCertificate(blk.Bytes)
			require.NoError(t, err)
			assert.Equal(t, tc.thing, cert.Subject.CommonName)
		})
	}
}

// The broker side (ServerTLS) and a device holding a certificate signed
// from its CSR and the CA as its only root complete a real mutual-TLS
// handshake over loopback, with the IP as the server name.
func TestMutualTLSHandshake(t *testing.T) {
	ca, err := OpenCA(t.TempDir(), []string{"127.0.0.1"})
	require.NoError(t, err)
	srvCfg, err := ca.ServerTLS()
	require.NoError(t, err)
	key, csr := deviceCSR(t, "dut-1")
	certPEM, err := ca.SignCSR("dut-1", csr)
	require.NoError(t, err)
	blk, _ := pem.Decode(certPEM)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ca.CACert()))

	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	require.NoError(t, err)
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peer <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- "handshake: " + err.Error()
			return
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := tls.Dialer{NetDialer: &net.Dialer{}, Config: &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{blk.Bytes}, PrivateKey: key}},
		RootCAs:      pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
	}}
	c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	select {
	case got := <-peer:
		assert.Equal(t, "dut-1", got)
	case <-ctx.Done():
		t.Fatal("no handshake on the server side")
	}
}
