package conformance_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/certs"
	"github.com/ddhil/ddhil/harness/judge/conformance"
)

// TestTLSCheckFailsOnWeakClientCert proves DD-X01, which no reference
// firmware fault can reach (the reference agent talks through the emulated
// module, without TLS): a real mutual-TLS client with an RSA-1024
// certificate connects to the real broker and the check fails; the same
// client with an ECDSA P-256 certificate passes.
func TestTLSCheckFailsOnWeakClientCert(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, certs.InitCA(dir, []string{"127.0.0.1"}))
	srvTLS, err := certs.ServerTLSConfig(dir)
	require.NoError(t, err)
	b, err := broker.New(broker.Config{TLS: srvTLS, Throttle: broker.NoThrottle})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() { _ = b.Close() })

	for _, tc := range []struct {
		name string
		key  func() (any, any)
		want conformance.Status
	}{
		{"rsa-1024", func() (any, any) { k, _ := rsa.GenerateKey(rand.Reader, 1024); return k, &k.PublicKey }, conformance.StatusFail},
		{"ecdsa-p256", func() (any, any) { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k, &k.PublicKey }, conformance.StatusPass},
	} {
		t.Run(tc.name, func(t *testing.T) {
			thing := "tls-" + tc.name
			priv, pub := tc.key()
			cert := signClient(t, dir, thing, priv, pub)
			pool, err := certs.LoadPool(filepath.Join(dir, "ca.pem"))
			require.NoError(t, err)
			start := len(b.Events())
			opts := paho.NewClientOptions().AddBroker("ssl://" + b.Addr("tls")).SetClientID(thing).
				SetTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
			c := paho.NewClient(opts)
			tok := c.Connect()
			require.True(t, tok.WaitTimeout(10*time.Second))
			require.NoError(t, tok.Error())
			c.Disconnect(100)
			wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer wcancel()
			_, err = b.WaitFor(wctx, func(ev broker.Event) bool { return ev.Kind == broker.EventConnect && ev.ClientID == thing })
			require.NoError(t, err)
			capture := &conformance.Capture{Thing: thing, Events: b.Events()[start:], Expect: conformance.Expectations{Transport: "network"}}
			check, _ := conformance.Lookup("DD-X01")
			res := conformance.Evaluate(capture, []conformance.Check{check})
			require.Equal(t, tc.want, res[0].Status, "%+v", res[0].Findings)
			assert.Contains(t, res[0].Measured, "mutual-TLS connection", "DD-X01 says what it saw")
			for _, f := range res[0].Findings {
				assert.NotEmpty(t, f.Expected, f.Message)
				assert.NotEmpty(t, f.Observed, f.Message)
			}
		})
	}
}

// signClient issues a client certificate for pub from the test CA.
func signClient(t *testing.T, dir, cn string, priv, pub any) tls.Certificate {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	require.NoError(t, err)
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	require.NoError(t, err)
	cb, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(cb.Bytes)
	require.NoError(t, err)
	kb, _ := pem.Decode(keyPEM)
	caKey, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		k, err2 := x509.ParsePKCS8PrivateKey(kb.Bytes)
		require.NoError(t, err2)
		caKey = k.(*ecdsa.PrivateKey)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}
