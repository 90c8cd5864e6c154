package profile

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/device/provision"
	"github.com/ddhil/ddhil/harness/device/provision/u5test"
	"github.com/ddhil/ddhil/harness/link/console"
)

func profilePath(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "fixtures", "profiles", name)
}

func loadNamed(t *testing.T, name string) *Profile {
	t.Helper()
	p, err := Load(profilePath(name))
	require.NoError(t, err)
	return p
}

func TestBoardProfilesLoad(t *testing.T) {
	cases := []struct {
		file, name, transport, format, keys string
		period, production, first           time.Duration
		tcp, udp                            []int
		pki                                 bool
	}{
		{"ddagent-nucleo-f446re.yaml", "ddagent-nucleo-f446re", "module", "json", "long", 2 * time.Second, 300 * time.Second, 10 * time.Second, []int{8883, 5001}, []int{5353}, false},
		{"ddagent-stm32f4disc.yaml", "ddagent-stm32f4disc", "module", "json", "long", 2 * time.Second, 300 * time.Second, 10 * time.Second, []int{8883, 5001}, []int{5353}, false},
		{"stm32u5-iot-reference.yaml", "stm32u5-iot-reference", "network", "cbor", "short", 300 * time.Second, 300 * time.Second, 340 * time.Second, []int{5001}, []int{68}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := loadNamed(t, tc.file)
			assert.Equal(t, tc.name, p.Name)
			assert.Equal(t, tc.pki, p.NeedsSigner())
			e, err := p.Expectations(Vars{"endpoint": "192.0.2.1"})
			require.NoError(t, err)
			assert.Equal(t, tc.transport, e.Transport)
			assert.Equal(t, tc.period, e.TestPeriod)
			assert.Equal(t, tc.production, e.ProductionPeriod)
			assert.Equal(t, tc.first, e.FirstReportBound)
			assert.Equal(t, tc.tcp, e.ListeningTCP)
			assert.Equal(t, tc.udp, e.ListeningUDP)
			f, err := p.Value(p.Expect.Format, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.format, f)
			k, err := p.Value(p.Expect.KeyStyle, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.keys, k)
		})
	}
}

// The board profiles of the reference agent keep ddagent.yaml's console
// contract: they provision the same fake agent the same way.
func TestBoardAgentProfilesProvision(t *testing.T) {
	for _, file := range []string{"ddagent-nucleo-f446re.yaml", "ddagent-stm32f4disc.yaml"} {
		t.Run(file, func(t *testing.T) {
			p := loadNamed(t, file)
			c, f := startAgent(t, p)
			ctx := ctx5(t)
			_, err := p.WaitBoot(ctx, c)
			require.NoError(t, err)
			require.NoError(t, p.Provision(ctx, c, Vars{"thing": "board-1", "endpoint": "192.0.2.1"}))
			f.mu.Lock()
			defer f.mu.Unlock()
			assert.Equal(t, "2000", f.saved["report_period_ms"])
			assert.Equal(t, "board-1", f.saved["thing_name"])
			assert.Equal(t, []string{"8883", "5001"}, f.tcp)
			assert.Equal(t, 2, f.boots)
		})
	}
}

// u5Bench is the U5 profile's console against the scripted stand-in
// (harness/device/provision/u5test, built from shared/docs/stm32-reference.md:
// no U5 board here) and a real lab CA.
type u5Bench struct {
	p   *Profile
	c   *console.Console
	dev *u5test.Device
	ca  *provision.CA
}

func newU5Bench(t *testing.T, p *Profile, cfg u5test.Config) u5Bench {
	t.Helper()
	ca, err := provision.OpenCA(t.TempDir(), []string{"192.0.2.1"})
	require.NoError(t, err)
	host, dev := net.Pipe()
	d := u5test.Start(dev, cfg)
	t.Cleanup(func() { host.Close(); d.Close() })
	c := console.New(host, host, p.ConsoleConfig())
	return u5Bench{p: p.WithSigner(ca), c: c, dev: d, ca: ca}
}

var u5Vars = Vars{"thing": "u5-dut", "endpoint": "192.0.2.1", "port": "8884", "ssid": "bench", "password": "s3cret"}

func TestU5ProvisionWithPKI(t *testing.T) {
	b := newU5Bench(t, loadNamed(t, "stm32u5-iot-reference.yaml"), u5test.Config{})
	ctx := ctx5(t)
	boot, err := b.p.WaitBoot(ctx, b.c)
	require.NoError(t, err)
	assert.Contains(t, boot.Text, "File System mounted.")
	require.NoError(t, b.p.Provision(ctx, b.c, u5Vars))

	assert.Equal(t, map[string]string{"thing_name": "u5-dut", "mqtt_endpoint": "192.0.2.1", "mqtt_port": "8884",
		"wifi_ssid": "bench", "wifi_credential": "s3cret", "time_hwm": "0"}, b.dev.Committed())
	assert.Equal(t, 2, b.dev.Boots(), "provisioning ends with the console reset")
	assert.Equal(t, []string{"conf set thing_name u5-dut", "conf set mqtt_endpoint 192.0.2.1", "conf set mqtt_port 8884",
		"conf set wifi_ssid bench", "conf set wifi_credential s3cret", "conf commit", "pki generate key",
		"pki generate csr", "pki import cert tls_cert", "pki import cert root_ca_cert", "reset"}, b.dev.Commands())

	// The device holds a certificate for its own key, issued by the lab CA
	// to the thing, and the lab CA as its root.
	cert := b.dev.Cert("tls_cert")
	require.NotNil(t, cert, "tls_cert imported")
	assert.True(t, b.dev.PublicKey().Equal(cert.PublicKey), "certificate is for the device's key")
	assert.Equal(t, "u5-dut", cert.Subject.CommonName)
	root := b.dev.Cert("root_ca_cert")
	require.NotNil(t, root)
	blk, _ := pem.Decode(b.ca.CACert())
	require.NotNil(t, blk)
	assert.Equal(t, blk.Bytes, root.Raw)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.NoError(t, err)
}

func TestU5ProvisionFailures(t *testing.T) {
	u5 := loadNamed(t, "stm32u5-iot-reference.yaml")
	raw, err := os.ReadFile(profilePath("stm32u5-iot-reference.yaml"))
	require.NoError(t, err)
	longLines, err := Parse([]byte(strings.Replace(string(raw), "max_line: 64", "max_line: 76", 1)))
	require.NoError(t, err)
	emptyLineSync, err := Parse([]byte(strings.Replace(string(raw), "sync_ctrl_c: true", "sync_empty_line: true", 1)))
	require.NoError(t, err)

	cases := []struct {
		name     string
		p        *Profile
		cfg      u5test.Config
		noSigner bool
		group    string
		step     string
		want     []string
	}{
		{"import prints nothing", u5, u5test.Config{SilentImport: []string{"tls_cert"}}, false, "pki", "import client certificate",
			[]string{`no line matching "^Success: Certificate loaded to label: 'tls_cert'\\.$"`, "prints nothing when the PEM does not parse"}},
		{"CA import prints nothing", u5, u5test.Config{SilentImport: []string{"root_ca_cert"}}, false, "pki", "import broker CA",
			[]string{"Success: Certificate loaded to label: 'root_ca_cert'"}},
		{"no CSR", u5, u5test.Config{NoCSR: true}, false, "pki", "generate csr",
			[]string{"no CERTIFICATE REQUEST PEM", "Failed to generate Certificate Request."}},
		{"no signer", u5, u5test.Config{}, true, "pki", "generate csr", []string{"no lab CA"}},
		{"PEM lines too long for the CLI", longLines, u5test.Config{}, false, "pki", "import client certificate",
			[]string{"PEM line 2 of", "Error: Current line exceeds maximum line length for a PEM file."}},
		{"empty line does not sync this CLI", emptyLineSync, u5test.Config{}, false, "sync", "prompt",
			[]string{"waiting for prompt"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newU5Bench(t, tc.p, tc.cfg)
			if tc.noSigner {
				b.p = tc.p
			}
			ctx := ctx5(t)
			_, err := b.p.WaitBoot(ctx, b.c)
			require.NoError(t, err)
			// Failures show at once, except a sync that never comes.
			pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			err = b.p.Provision(pctx, b.c, u5Vars)
			require.Error(t, err)
			var se *StepError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.group, se.Group)
			assert.Equal(t, tc.step, se.Step)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, b.dev.Commands(), "reset", "no reset after a failed step")
		})
	}
}

func TestStepMarkers(t *testing.T) {
	base := `
name: markers
console: {prompt: "> ", sync_ctrl_c: true, log_pattern: '^<[A-Z]{3}> +\d+ \[.{10}\] ', error_pattern: '^Error: '}
boot: {marker: 'File System mounted\.'}
reset:
  name: reset
  send: reset
  expect: 'File System mounted\.'
`
	cases := []struct {
		name    string
		markers string
		missing string
	}{
		{"in order, two in one line", `['Resetting device\.', 'Reset Source: 0x', 'SFTRSTF', 'HW Init Complete\.']`, ""},
		{"wrong order", `['HW Init Complete\.', 'Reset Source: 0x']`, `Reset Source: 0x`},
		{"never shown", `['Resetting device\.', 'Watchdog']`, `Watchdog`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(base + "  markers: " + tc.markers + "\n"))
			require.NoError(t, err)
			b := newU5Bench(t, p, u5test.Config{})
			ctx := ctx5(t)
			_, err = p.WaitBoot(ctx, b.c)
			require.NoError(t, err)
			err = p.ConsoleReset(ctx, b.c, nil)
			if tc.missing == "" {
				require.NoError(t, err)
				assert.Equal(t, 2, b.dev.Boots())
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), `marker "`+tc.missing+`" did not show`)
			assert.Contains(t, err.Error(), `reset step "reset"`)
		})
	}
}

func TestPKIParseErrors(t *testing.T) {
	head := "name: x\nboot: {marker: b}\npki:\n"
	cases := []struct{ name, steps, want string }{
		{"unknown capture", "  - {name: c, send: s, capture: key}\n", `capture "key"`},
		{"unknown import", "  - {name: i, send: s, import: other, expect: ok}\n", `import "other"`},
		{"device cert before csr", "  - {name: i, send: s, import: device_cert, expect: ok}\n", "needs an earlier capture"},
		{"import without expect", "  - {name: i, send: s, import: ca_cert}\n", "needs expect"},
		{"capture with expect", "  - {name: c, send: s, capture: csr, expect: x}\n", "expect is not used"},
		{"both kinds", "  - {name: c, send: s, capture: csr, import: ca_cert, expect: x}\n", "exclude each other"},
		{"no send", "  - {name: c, capture: csr}\n", "send is required"},
		{"command without expect", "  - {name: c, send: s}\n", "send and expect are required"},
		{"tiny max_line", "  - {name: i, send: s, import: ca_cert, expect: ok, max_line: 20}\n", "shorter than a PEM header"},
		{"bad expect", "  - {name: i, send: s, import: ca_cert, expect: '('}\n", "pki step 1 (i): expect"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(head + tc.steps))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := Parse([]byte("name: x\nboot: {marker: b}\nconsole: {sync_ctrl_c: true, sync_empty_line: true}\n"))
	require.ErrorContains(t, err, "exclude each other")
	_, err = Parse([]byte("name: x\nboot: {marker: b}\nreset: {send: r, expect: e, markers: ['(']}\n"))
	require.ErrorContains(t, err, "reset step 1 (): marker 1")
}

func TestWrapPEM(t *testing.T) {
	ca, err := provision.OpenCA(t.TempDir(), []string{"localhost"})
	require.NoError(t, err)
	cases := []struct {
		name    string
		doc     []byte
		maxLine int
		want    string
	}{
		{"64", ca.CACert(), 64, ""},
		{"40", ca.CACert(), 40, ""},
		{"header longer than lines", ca.CACert(), 20, "longer than the CLI's 20-character lines"},
		{"not PEM", []byte("hello"), 64, "no PEM block"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := wrapPEM(tc.doc, tc.maxLine)
			if tc.want != "" {
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			for _, l := range lines {
				assert.LessOrEqual(t, len(l), tc.maxLine, l)
			}
			got, _ := pem.Decode([]byte(strings.Join(lines, "\n") + "\n"))
			want, _ := pem.Decode(tc.doc)
			require.NotNil(t, got)
			assert.Equal(t, want.Bytes, got.Bytes)
			assert.Equal(t, "CERTIFICATE", got.Type)
		})
	}
}
