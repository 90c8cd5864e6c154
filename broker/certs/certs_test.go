package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	blk, _ := pem.Decode(b)
	require.NotNil(t, blk, "no PEM in %s", path)
	c, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	return c
}

func TestInitCA(t *testing.T) {
	cases := []struct {
		name    string
		hosts   []string
		wantCN  string
		wantDNS []string
		wantIPs []string
	}{
		{"defaults", nil, "localhost", []string{"localhost", "127.0.0.1"}, []string{"127.0.0.1"}},
		{"ip first", []string{"192.168.1.10", "lab.local"}, "192.168.1.10", []string{"192.168.1.10", "lab.local"}, []string{"192.168.1.10"}},
		{"dns only", []string{"broker.lab"}, "broker.lab", []string{"broker.lab"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, InitCA(dir, tc.hosts))

			ca := readCert(t, filepath.Join(dir, CAFile))
			assert.True(t, ca.IsCA)
			srv := readCert(t, filepath.Join(dir, ServerFile))
			assert.Equal(t, tc.wantCN, srv.Subject.CommonName)
			assert.Equal(t, tc.wantDNS, srv.DNSNames)
			var ips []string
			for _, ip := range srv.IPAddresses {
				ips = append(ips, ip.String())
			}
			assert.Equal(t, tc.wantIPs, ips)
			assert.Contains(t, srv.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
			pub, ok := srv.PublicKey.(*ecdsa.PublicKey)
			require.True(t, ok)
			assert.Equal(t, "P-256", pub.Curve.Params().Name)

			pool := x509.NewCertPool()
			pool.AddCert(ca)
			_, err := srv.Verify(x509.VerifyOptions{Roots: pool, DNSName: tc.wantCN, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			require.NoError(t, err)

			for _, f := range []string{CAKeyFile, ServerKeyFile} {
				st, err := os.Stat(filepath.Join(dir, f))
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
			}
		})
	}
}

func TestInitCARefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, InitCA(dir, nil))
	before, err := os.ReadFile(filepath.Join(dir, CAFile))
	require.NoError(t, err)
	err = InitCA(dir, nil)
	require.ErrorContains(t, err, "already exists")
	after, err := os.ReadFile(filepath.Join(dir, CAFile))
	require.NoError(t, err)
	assert.Equal(t, before, after, "the existing CA must be untouched")
}

func csrFor(t *testing.T, cn string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), key
}

func TestIssueDevice(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, InitCA(dir, nil))
	ca := readCert(t, filepath.Join(dir, CAFile))
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	goodCSR, goodKey := csrFor(t, "thing-1")
	emptyCN, _ := csrFor(t, "")
	otherCN, _ := csrFor(t, "thing-2")
	blk, _ := pem.Decode(goodCSR)
	blk.Bytes[40] ^= 0xff // inside the signed content
	tampered := pem.EncodeToMemory(blk)

	cases := []struct {
		name    string
		thing   string
		csr     []byte
		wantErr string
		wantKey bool
		pub     any
	}{
		{"fresh key", "thing-1", nil, "", true, nil},
		{"csr with matching cn", "thing-1", goodCSR, "", false, &goodKey.PublicKey},
		{"csr with empty cn", "thing-1", emptyCN, "", false, nil},
		{"csr for another thing", "thing-1", otherCN, "not the thing name", false, nil},
		{"tampered csr", "thing-1", tampered, "CSR", false, nil},
		{"not pem", "thing-1", []byte("hello"), "not a PEM", false, nil},
		{"bad thing name", "thing/1", nil, "thing name", false, nil},
		{"empty thing name", "", nil, "thing name", false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			certPath, keyPath, err := IssueDevice(dir, tc.thing, tc.csr)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorIs(t, err, ErrInvalid)
				return
			}
			require.NoError(t, err)
			c := readCert(t, certPath)
			assert.Equal(t, tc.thing, c.Subject.CommonName)
			_, err = c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			require.NoError(t, err)
			if tc.pub != nil {
				assert.True(t, c.PublicKey.(*ecdsa.PublicKey).Equal(tc.pub))
			}
			if tc.wantKey {
				st, err := os.Stat(keyPath)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
				_, err = tls.LoadX509KeyPair(certPath, keyPath)
				require.NoError(t, err)
			} else {
				assert.Empty(t, keyPath)
			}
		})
	}
}

func TestIssueDeviceWithoutCA(t *testing.T) {
	_, _, err := IssueDevice(t.TempDir(), "thing-1", nil)
	require.ErrorContains(t, err, "certs init")
	require.NotErrorIs(t, err, ErrInvalid)
}

// TestTLSConfigsHandshake proves the loaded configs work together over a
// real socket, and that a certificate from another CA is refused.
func TestTLSConfigsHandshake(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, InitCA(dir, nil))
	_, _, err := IssueDevice(dir, "dev-1", nil)
	require.NoError(t, err)
	other := t.TempDir()
	require.NoError(t, InitCA(other, nil))
	_, _, err = IssueDevice(other, "dev-1", nil)
	require.NoError(t, err)

	srvConf, err := ServerTLSConfig(dir)
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvConf)
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if tc, ok := c.(*tls.Conn); ok && tc.Handshake() == nil {
					_, _ = tc.Write([]byte("ok"))
				}
			}()
		}
	}()

	cases := []struct {
		name    string
		dir     string
		wantErr bool
	}{
		{"own CA", dir, false},
		{"foreign CA", other, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cliConf, err := ClientTLSConfig(tc.dir, "dev-1", "127.0.0.1")
			require.NoError(t, err)
			cliConf.RootCAs, err = LoadPool(filepath.Join(dir, CAFile)) // always trust the real server
			require.NoError(t, err)
			raw, err := net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
			require.NoError(t, err)
			defer raw.Close()
			require.NoError(t, raw.SetDeadline(time.Now().Add(10*time.Second)))
			c := tls.Client(raw, cliConf)
			buf := make([]byte, 2)
			err = c.Handshake()
			if err == nil {
				_, err = c.Read(buf) // TLS 1.3 reports a refused client cert on the first read
			}
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "ok", string(buf))
		})
	}
}
