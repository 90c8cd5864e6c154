package audit

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
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/certs"
)

const waitLimit = 10 * time.Second

// lab is a real broker with its mutual-TLS listener and the lab CA, so
// every certificate below goes through a real handshake.
type lab struct {
	dir   string
	b     *broker.Broker
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
	pool  *x509.CertPool
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{dir: t.TempDir()}
	require.NoError(t, certs.InitCA(l.dir, nil))
	srv, err := certs.ServerTLSConfig(l.dir)
	require.NoError(t, err)
	caPEM, err := os.ReadFile(filepath.Join(l.dir, certs.CAFile))
	require.NoError(t, err)
	blk, _ := pem.Decode(caPEM)
	l.ca, err = x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	keyPEM, err := os.ReadFile(filepath.Join(l.dir, certs.CAKeyFile))
	require.NoError(t, err)
	kb, _ := pem.Decode(keyPEM)
	l.caKey, err = x509.ParseECPrivateKey(kb.Bytes)
	require.NoError(t, err)
	l.pool = x509.NewCertPool()
	l.pool.AddCert(l.ca)
	l.b, err = broker.New(broker.Config{TLS: srv, Throttle: broker.NoThrottle})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); _ = l.b.Close() })
	require.NoError(t, l.b.Start(ctx))
	return l
}

// issue signs a client certificate for key's public half.
func (l *lab) issue(t *testing.T, cn string, key any, notBefore, notAfter time.Time, serial int64) tls.Certificate {
	t.Helper()
	var pub any
	switch k := key.(type) {
	case *rsa.PrivateKey:
		pub = &k.PublicKey
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, l.ca, pub, l.caKey)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// connect opens a real MQTT-over-TLS connection and waits for the broker
// to log it; the returned client is still connected.
func (l *lab) connect(t *testing.T, clientID string, cert tls.Certificate) paho.Client {
	t.Helper()
	after := l.b.Recorder().Last()
	opts := paho.NewClientOptions().AddBroker("ssl://" + l.b.Addr("tls")).SetClientID(clientID).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(waitLimit).SetCleanSession(true).
		SetTLSConfig(&tls.Config{RootCAs: l.pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	c := paho.NewClient(opts)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(waitLimit), "connect timed out")
	require.NoError(t, tok.Error())
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err := l.b.Recorder().WaitForAfter(ctx, after, func(ev broker.Event) bool {
		return ev.Kind == broker.EventConnect && ev.ClientID == clientID && ev.Error == ""
	})
	require.NoError(t, err)
	return c
}

// close disconnects and waits for the broker's disconnect event.
func (l *lab) close(t *testing.T, c paho.Client, clientID string) {
	t.Helper()
	after := l.b.Recorder().Last()
	c.Disconnect(50)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err := l.b.Recorder().WaitForAfter(ctx, after, func(ev broker.Event) bool {
		return ev.Kind == broker.EventDisconnect && ev.ClientID == clientID
	})
	require.NoError(t, err)
}

func checks(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.CheckName+"/"+f.ReasonForNonComplianceCode)
	}
	slices.Sort(out)
	return out
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// The broker records the client certificate it saw, and a clean one
// raises no finding.
func TestCleanCertificateNoFindings(t *testing.T) {
	l := newLab(t)
	now := time.Now()
	cert := l.issue(t, "dev-1", ecKey(t), now.Add(-time.Hour), now.Add(365*24*time.Hour), 1)
	c := l.connect(t, "dev-1", cert)
	l.close(t, c, "dev-1")
	evs := l.b.Events()
	var ti *broker.TLSInfo
	for _, ev := range evs {
		if ev.Kind == broker.EventConnect && ev.TLS != nil {
			ti = ev.TLS
		}
	}
	require.NotNil(t, ti)
	require.Len(t, ti.PeerCertSHA256, 64, "certificate ID recorded")
	require.Equal(t, cert.Certificate[0], ti.PeerCert, "certificate DER recorded")
	require.Equal(t, "ECDSA P-256", ti.PeerKeyType)
	fs, err := Run(evs, Config{})
	require.NoError(t, err)
	require.Empty(t, checks(fs))
}

// Note §5.2: expiring (MEDIUM) within 30 days, age (LOW) past 365 days,
// both counted at audit time.
func TestExpiringAndAge(t *testing.T) {
	l := newLab(t)
	now := time.Now()
	cert := l.issue(t, "old-1", ecKey(t), now.Add(-400*24*time.Hour), now.Add(10*24*time.Hour), 2)
	l.close(t, l.connect(t, "old-1", cert), "old-1")
	fs, err := Run(l.b.Events(), Config{})
	require.NoError(t, err)
	require.Equal(t, []string{Age + "/CERTIFICATE_PAST_AGE_THRESHOLD", Expiring + "/CERTIFICATE_APPROACHING_EXPIRATION"}, checks(fs))
	for _, f := range fs {
		require.Equal(t, map[string]string{Expiring: "MEDIUM", Age: "LOW"}[f.CheckName], f.Severity)
		require.Equal(t, "DEVICE_CERTIFICATE", f.NonCompliantResource.ResourceType)
		require.Len(t, f.NonCompliantResource.ResourceIdentifier["deviceCertificateId"], 64)
		require.Len(t, f.FindingID, 32)
	}
	// Configured thresholds: 5 days of warning and 500 days of age pass.
	fs, err = Run(l.b.Events(), Config{ExpirationDays: 30, AgeDays: 500})
	require.NoError(t, err)
	require.Equal(t, []string{Expiring + "/CERTIFICATE_APPROACHING_EXPIRATION"}, checks(fs))
	_, err = Run(l.b.Events(), Config{AgeDays: 10})
	require.ErrorContains(t, err, "CERT_AGE_THRESHOLD_IN_DAYS 10 should be 30..3652")
	// Audited later, the certificate is past its expiration.
	fs, err = Run(l.b.Events(), Config{Now: now.Add(11 * 24 * time.Hour), AgeDays: 3652})
	require.NoError(t, err)
	require.Equal(t, []string{Expiring + "/CERTIFICATE_PAST_EXPIRATION"}, checks(fs))
	require.Equal(t, "Certificate is past its expiration.", fs[0].ReasonForNonCompliance)
}

// rocaKey builds an RSA key whose primes have the Infineon structure
// k·M + 65537^a mod M, so it carries the ROCA fingerprint and still works
// for a real TLS handshake.
func rocaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	m := big.NewInt(1)
	for _, p := range rocaPrimes {
		m.Mul(m, big.NewInt(p))
	}
	e := big.NewInt(65537)
	// p in [1.5·2^511, 2^512), so N = p·q has exactly 1024 bits (Go
	// refuses RSA keys under 1024 bits).
	lo := new(big.Int).Div(new(big.Int).Lsh(big.NewInt(3), 510), m)
	span := new(big.Int).Sub(new(big.Int).Div(new(big.Int).Lsh(big.NewInt(1), 512), m), lo)
	prime := func() *big.Int {
		for {
			a, _ := rand.Int(rand.Reader, big.NewInt(1<<20))
			k, _ := rand.Int(rand.Reader, span)
			k.Add(k, lo)
			p := new(big.Int).Mul(k, m)
			p.Add(p, new(big.Int).Exp(e, a, m))
			if p.BitLen() == 512 && p.ProbablyPrime(20) && new(big.Int).GCD(nil, nil, e, new(big.Int).Sub(p, big.NewInt(1))).Cmp(big.NewInt(1)) == 0 {
				return p
			}
		}
	}
	p, q := prime(), prime()
	phi := new(big.Int).Mul(new(big.Int).Sub(p, big.NewInt(1)), new(big.Int).Sub(q, big.NewInt(1)))
	k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537},
		D: new(big.Int).ModInverse(e, phi), Primes: []*big.Int{p, q}}
	require.NoError(t, k.Validate())
	k.Precompute()
	return k
}

// Note §5.2: key quality tests the two CVEs only — ROCA by the modulus
// fingerprint, the Debian PRNG by a blacklist of fingerprints.
func TestKeyQuality(t *testing.T) {
	l := newLab(t)
	now := time.Now()
	roca := rocaKey(t)
	require.True(t, IsROCA(&roca.PublicKey))
	normal, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	require.False(t, IsROCA(&normal.PublicKey), "a random key has no ROCA fingerprint")
	debian, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)

	blacklist := filepath.Join(t.TempDir(), "blacklist.RSA-2048")
	require.NoError(t, os.WriteFile(blacklist, []byte("# openssl-blacklist\n"+DebianFingerprint(&debian.PublicKey)+"\n"), 0o644))
	weak, err := LoadWeakKeys(blacklist)
	require.NoError(t, err)

	for i, k := range []*rsa.PrivateKey{roca, normal, debian} {
		id := []string{"roca", "normal", "debian"}[i]
		l.close(t, l.connect(t, id, l.issue(t, id, k, now.Add(-time.Hour), now.Add(365*24*time.Hour), int64(10+i))), id)
	}
	fs, err := Run(l.b.Events(), Config{WeakKeys: weak, Checks: []string{KeyQuality}})
	require.NoError(t, err)
	require.Equal(t, []string{KeyQuality + "/CERTIFICATE_KEY_VULNERABILITY_CVE-2008-0166", KeyQuality + "/CERTIFICATE_KEY_VULNERABILITY_CVE-2017-15361"}, checks(fs))
	for _, f := range fs {
		require.Equal(t, "CRITICAL", f.Severity)
	}
}

// Note §5.2: a certificate used by two overlapping connections is shared
// (CRITICAL), listing the client IDs most recent first; a client ID that
// takes over a live connection conflicts (HIGH).
func TestSharedAndConflicting(t *testing.T) {
	l := newLab(t)
	now := time.Now()
	cert := l.issue(t, "dev-1", ecKey(t), now.Add(-time.Hour), now.Add(365*24*time.Hour), 3)
	a := l.connect(t, "dev-a", cert)
	b := l.connect(t, "dev-b", cert) // same certificate, both connected
	l.close(t, b, "dev-b")
	l.close(t, a, "dev-a")

	other := l.issue(t, "dev-2", ecKey(t), now.Add(-time.Hour), now.Add(365*24*time.Hour), 4)
	first := l.connect(t, "twin", other)
	after := l.b.Recorder().Last()
	second := l.connect(t, "twin", other) // takes the client ID over
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	_, err := l.b.Recorder().WaitForAfter(ctx, after, func(ev broker.Event) bool {
		return ev.Kind == broker.EventDisconnect && ev.Reason == broker.ReasonDuplicateClient
	})
	require.NoError(t, err)
	first.Disconnect(0)
	l.close(t, second, "twin")

	fs, err := Run(l.b.Events(), Config{Checks: []string{Shared, ConflictingClients}})
	require.NoError(t, err)
	// The takeover also makes "other" a shared certificate for a moment:
	// AWS cannot tell the two apart either (note §5.2).
	require.Equal(t, []string{ConflictingClients + "/DUPLICATE_CLIENT_ID_ACROSS_CONNECTIONS",
		Shared + "/CERTIFICATE_SHARED_BY_MULTIPLE_DEVICES", Shared + "/CERTIFICATE_SHARED_BY_MULTIPLE_DEVICES"}, checks(fs))
	var shared, conflict *Finding
	for i := range fs {
		switch {
		case fs[i].CheckName == Shared && fs[i].RelatedResources[0].ResourceIdentifier["clientId"] == "dev-b":
			shared = &fs[i]
		case fs[i].CheckName == ConflictingClients:
			conflict = &fs[i]
		}
	}
	require.NotNil(t, shared, "%+v", fs)
	require.Equal(t, "dev-a", shared.RelatedResources[1].ResourceIdentifier["clientId"])
	require.NotEmpty(t, shared.RelatedResources[0].AdditionalInfo["CONNECTION_TIME"])
	require.NotEmpty(t, shared.RelatedResources[0].AdditionalInfo["DISCONNECTION_TIME"])
	require.Equal(t, "CRITICAL", shared.Severity)
	require.NotNil(t, conflict)
	require.Equal(t, "twin", conflict.NonCompliantResource.ResourceIdentifier["clientId"])
	require.Equal(t, "HIGH", conflict.Severity)
	require.Len(t, conflict.RelatedResources, 1)
	require.NotEmpty(t, conflict.RelatedResources[0].AdditionalInfo["DISCONNECTION_TIME"])

	// Sequential reconnects with one certificate are not sharing (strict mode).
	l2 := newLab(t)
	seq := l2.issue(t, "dev-3", ecKey(t), now.Add(-time.Hour), now.Add(365*24*time.Hour), 5)
	l2.close(t, l2.connect(t, "dev-3", seq), "dev-3")
	l2.close(t, l2.connect(t, "dev-3", seq), "dev-3")
	fs, err = Run(l2.b.Events(), Config{Checks: []string{Shared, ConflictingClients}})
	require.NoError(t, err)
	require.Empty(t, fs)
}

// Note §5.2: a certificate on its issuer's CRL that still connects; a
// plain list of serials or certificate IDs works too.
func TestRevokedStillActive(t *testing.T) {
	l := newLab(t)
	now := time.Now()
	revoked := l.issue(t, "dev-r", ecKey(t), now.Add(-time.Hour), now.Add(365*24*time.Hour), 77)
	fine := l.issue(t, "dev-f", ecKey(t), now.Add(-time.Hour), now.Add(365*24*time.Hour), 78)
	l.close(t, l.connect(t, "dev-r", revoked), "dev-r")
	l.close(t, l.connect(t, "dev-f", fine), "dev-f")

	crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(77), RevocationTime: now}}}, l.ca, l.caKey)
	require.NoError(t, err)
	dir := t.TempDir()
	crl := filepath.Join(dir, "ca.crl")
	require.NoError(t, os.WriteFile(crl, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crlDER}), 0o644))
	list := filepath.Join(dir, "revoked.txt")
	require.NoError(t, os.WriteFile(list, []byte("# serials\n4d\n"), 0o644)) // 77 in hex

	for _, src := range []string{crl, list} {
		r, err := LoadRevoked(src)
		require.NoError(t, err)
		fs, err := Run(l.b.Events(), Config{Revoked: r, Checks: []string{"REVOKED_DEVICE_CERT_CHECK"}}) // the alias
		require.NoError(t, err)
		require.Equal(t, []string{RevokedStillActive + "/CERTIFICATE_REVOKED_BY_ISSUER"}, checks(fs), src)
		require.Equal(t, "MEDIUM", fs[0].Severity)
	}
	bad := filepath.Join(dir, "bad.txt")
	require.NoError(t, os.WriteFile(bad, []byte("not a serial\n"), 0o644))
	_, err = LoadRevoked(bad)
	require.ErrorContains(t, err, "bad.txt:1")
}

// Note §5.3: the documented verdicts of the overly-permissive check.
func TestPolicyPermissive(t *testing.T) {
	const arn = "arn:aws:iot:eu-west-1:123456789012:"
	cases := []struct {
		name, statements string
		broad            []string
	}{
		{"connect any client", `{"Effect":"Allow","Action":"iot:Connect","Resource":"` + arn + `client/*"}`, []string{"iot:Connect"}},
		{"connect ClientId without IsAttached", `{"Effect":"Allow","Action":"iot:Connect","Resource":"` + arn + `client/${iot:ClientId}"}`, []string{"iot:Connect"}},
		{"connect ClientId with IsAttached", `{"Effect":"Allow","Action":"iot:Connect","Resource":"` + arn + `client/${iot:ClientId}","Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}}`, nil},
		{"connect thing name", `{"Effect":"Allow","Action":"iot:Connect","Resource":"` + arn + `client/${iot:Connection.Thing.ThingName}","Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}}`, nil},
		{"publish any shadow", `{"Effect":"Allow","Action":"iot:Publish","Resource":"` + arn + `topic/$aws/things/*/shadow/update"}`, []string{"iot:Publish"}},
		{"publish own shadow", `{"Effect":"Allow","Action":"iot:Publish","Resource":"` + arn + `topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*"}`, nil},
		{"subscribe $aws/things/#", `{"Effect":"Allow","Action":"iot:Subscribe","Resource":"` + arn + `topicfilter/$aws/things/#"}`, []string{"iot:Subscribe"}},
		{"subscribe +/shadow", `{"Effect":"Allow","Action":"iot:Subscribe","Resource":"` + arn + `topicfilter/$aws/things/+/shadow/update"}`, []string{"iot:Subscribe"}},
		{"receive any thing is compliant", `{"Effect":"Allow","Action":"iot:Receive","Resource":"` + arn + `topic/$aws/things/*"}`, nil},
		{"shadow API on thing/*", `{"Effect":"Allow","Action":["iot:GetThingShadow","iot:UpdateThingShadow"],"Resource":"` + arn + `thing/*"}`, []string{"iot:GetThingShadow", "iot:UpdateThingShadow"}},
		{"iot:* on *", `{"Effect":"Allow","Action":"iot:*","Resource":"*"}`, []string{"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:DeleteThingShadow", "iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DescribeJobExecution", "iot:GetPendingJobExecutions", "iot:StartNextPendingJobExecution", "iot:UpdateJobExecution"}},
		{"application topic space", `{"Effect":"Allow","Action":"iot:Publish","Resource":"` + arn + `topic/#"}`, []string{"iot:Publish"}},
		{"application prefix", `{"Effect":"Allow","Action":"iot:Publish","Resource":"` + arn + `topic/sensors/*"}`, nil},
		{"deny is ignored", `{"Effect":"Deny","Action":"iot:*","Resource":"*"}`, nil},
		{"resource of another type", `{"Effect":"Allow","Action":"iot:Publish","Resource":"` + arn + `client/*"}`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "dev-policy.json")
			require.NoError(t, os.WriteFile(p, []byte(`{"Version":"2012-10-17","Statement":[`+c.statements+`]}`), 0o644))
			pol, err := LoadPolicy(p)
			require.NoError(t, err)
			f, ok := pol.Judge()
			if c.broad == nil {
				require.False(t, ok, "%+v", f)
				return
			}
			require.True(t, ok)
			require.Equal(t, "Policy allows broad access to IoT data plane actions: ["+strings.Join(c.broad, ", ")+"].", f.ReasonForNonCompliance)
			require.Equal(t, "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS", f.ReasonForNonComplianceCode)
			require.Equal(t, map[string]string{"policyName": "dev-policy", "policyVersionId": "1"}, f.NonCompliantResource.ResourceIdentifier["policyVersionIdentifier"])
		})
	}
	// get-policy output: the document is a JSON string, the name and version come with it.
	p := filepath.Join(t.TempDir(), "out.json")
	require.NoError(t, os.WriteFile(p, []byte(`{"policyName":"ddhil-dev","policyArn":"arn:aws:iot:eu-west-1:123456789012:policy/ddhil-dev","defaultVersionId":"3",
	  "policyDocument":"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"iot:Connect\",\"Resource\":\"*\"}]}"}`), 0o644))
	pol, err := LoadPolicy(p)
	require.NoError(t, err)
	fs, err := Run(nil, Config{Policies: []*Policy{pol}, Now: time.Unix(1767225600, 0)})
	require.NoError(t, err)
	require.Len(t, fs, 1)
	require.Equal(t, "CRITICAL", fs[0].Severity)
	require.Equal(t, map[string]string{"policyName": "ddhil-dev", "policyVersionId": "3"}, fs[0].NonCompliantResource.ResourceIdentifier["policyVersionIdentifier"])
	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"Statement":[{"Effect":"Permit","Action":"iot:*","Resource":"*"}]}`), 0o644))
	_, err = LoadPolicy(bad)
	require.ErrorContains(t, err, `Statement[0].Effect "Permit" should be Allow or Deny`)
}
