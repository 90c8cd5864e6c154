package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func certsCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := dispatch(append([]string{"certs"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab")
	code, out, stderr := certsCLI("init", "--dir", dir, "--host", "192.168.7.2, lab.local")
	require.Equal(t, exitOK, code, stderr)
	assert.Equal(t, 4, strings.Count(out, "\n"))

	b, err := os.ReadFile(filepath.Join(dir, "server.pem"))
	require.NoError(t, err)
	blk, _ := pem.Decode(b)
	srv, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	assert.Equal(t, "192.168.7.2", srv.Subject.CommonName)
	assert.Equal(t, []string{"192.168.7.2", "lab.local"}, srv.DNSNames)

	code, out, stderr = certsCLI("device", "--dir", dir, "--thing", "dev-1")
	require.Equal(t, exitOK, code, stderr)
	assert.Equal(t, filepath.Join(dir, "dev-1.pem")+"\n"+filepath.Join(dir, "dev-1-key.pem")+"\n", out)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev-2"}}, key)
	require.NoError(t, err)
	csr := filepath.Join(t.TempDir(), "dev-2.csr")
	require.NoError(t, os.WriteFile(csr, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644))
	code, out, stderr = certsCLI("device", "--dir", dir, "--thing", "dev-2", "--csr", csr)
	require.Equal(t, exitOK, code, stderr)
	assert.Equal(t, filepath.Join(dir, "dev-2.pem")+"\n", out, "no key file when signing a CSR")

	cases := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no subcommand", nil, exitUsage, "want 'init' or 'device'"},
		{"unknown subcommand", []string{"revoke"}, exitUsage, "unknown certs command"},
		{"init without dir", []string{"init"}, exitUsage, "--dir is required"},
		{"init twice", []string{"init", "--dir", dir}, exitLab, "already exists"},
		{"device without thing", []string{"device", "--dir", dir}, exitUsage, "--thing is required"},
		{"bad thing name", []string{"device", "--dir", dir, "--thing", "a/b"}, exitUsage, "thing name"},
		{"csr for another thing", []string{"device", "--dir", dir, "--thing", "dev-3", "--csr", csr}, exitUsage, "not the thing name"},
		{"missing csr file", []string{"device", "--dir", dir, "--thing", "dev-3", "--csr", csr + ".nope"}, exitUsage, "read CSR"},
		{"no CA yet", []string{"device", "--dir", t.TempDir(), "--thing", "dev-3"}, exitLab, "certs init"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := certsCLI(tc.args...)
			assert.Equal(t, tc.wantCode, code)
			assert.Contains(t, stderr, tc.wantErr)
		})
	}
}
