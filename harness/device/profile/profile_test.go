package profile

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/link/console"
)

func fixture(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "fixtures", "profiles", "ddagent.yaml")
}

func loadFixture(t *testing.T) *Profile {
	t.Helper()
	p, err := Load(fixture(t))
	require.NoError(t, err)
	return p
}

// fakeAgent plays the reference agent's CLI as docs/firmware-console.md and
// firmware/src/cli.c describe it (echo, CR LF replies, "> " prompt, log
// lines, conf set/commit, listen, reset with a boot banner, fault).
type fakeAgent struct {
	conn   net.Conn
	mu     sync.Mutex
	staged map[string]string
	saved  map[string]string
	faults map[string]bool
	tcp    []string
	udp    []string
	boots  int
	lines  []string
}

var agentKeys = map[string]bool{"thing_name": false, "mqtt_endpoint": false, "mqtt_port": true,
	"wifi_ssid": false, "wifi_credential": false, "report_period_ms": true, "report_format": false, "report_keys": false, "at_mode": false}

func (f *fakeAgent) w(s string) { _, _ = f.conn.Write([]byte(s)) }

func (f *fakeAgent) boot() {
	f.boots++
	f.w(fmt.Sprintf("[%08d] boot: ddagent 0.1.0 profile=fake boot=%d\r\n", f.boots*10, f.boots))
	f.w(fmt.Sprintf("[%08d] store: state restored from noinit RAM\r\n", f.boots*10+1))
	f.w("> ")
}

func (f *fakeAgent) run() {
	f.mu.Lock()
	f.boot()
	f.mu.Unlock()
	r := bufio.NewReader(f.conn)
	var line []byte
	var last byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return
		}
		prev := last
		last = b
		f.mu.Lock()
		switch {
		case b == '\n' && prev == '\r':
		case b == '\r' || b == '\n':
			f.w("\r\n")
			if len(line) > 0 {
				f.exec(string(line))
				line = nil
			}
			f.w("> ")
		default:
			f.w(string(b))
			line = append(line, b)
		}
		f.mu.Unlock()
	}
}

func (f *fakeAgent) exec(line string) {
	f.lines = append(f.lines, line)
	a := strings.Fields(line)
	switch {
	case len(a) == 4 && a[0] == "conf" && a[1] == "set":
		num, ok := agentKeys[a[2]]
		if !ok {
			f.w("Error: key: " + a[2] + " was not recognized.\r\n")
			return
		}
		if a[2] == "report_format" && a[3] != "json" && a[3] != "cbor" {
			f.w("Error: value: " + a[3] + " is not valid for key: " + a[2] + "\r\n")
			return
		}
		f.staged[a[2]] = a[3]
		if num {
			f.w(a[2] + "=" + a[3] + "\r\n")
		} else {
			f.w(a[2] + "=\"" + a[3] + "\"\r\n")
		}
	case len(a) == 2 && line == "listen clear":
		f.tcp, f.udp = nil, nil
		f.listen()
	case len(a) == 3 && a[0] == "listen" && (a[1] == "tcp" || a[1] == "udp"):
		if a[1] == "tcp" {
			f.tcp = append(f.tcp, a[2])
		} else {
			f.udp = append(f.udp, a[2])
		}
		f.listen()
	case line == "conf commit":
		for k, v := range f.staged {
			f.saved[k] = v
		}
		f.w("Configuration saved to NVM.\r\n")
	case line == "reset":
		f.w("Resetting device.\r\n")
		f.boot()
	case len(a) == 3 && a[0] == "fault":
		if a[1] != "rid-ticks" {
			f.w("Error: unknown fault " + a[1] + "\r\n")
			return
		}
		f.faults[a[1]] = a[2] == "on"
		f.w(fmt.Sprintf("[%08d] fault: %s %s\r\n", 99, a[1], a[2]))
		f.w("fault: " + a[1] + " " + a[2] + "\r\n")
	default:
		f.w("Command not recognized. Enter 'help' to view a list of available commands.\r\n")
	}
}

func (f *fakeAgent) listen() {
	f.w("listen: tcp=[" + strings.Join(f.tcp, ",") + "] udp=[" + strings.Join(f.udp, ",") + "]\r\n")
}

func startAgent(t *testing.T, p *Profile) (*console.Console, *fakeAgent) {
	t.Helper()
	host, dev := net.Pipe()
	t.Cleanup(func() { host.Close(); dev.Close() })
	f := &fakeAgent{conn: dev, staged: map[string]string{}, saved: map[string]string{}, faults: map[string]bool{}}
	go f.run()
	return console.New(host, host, p.ConsoleConfig()), f
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestFixtureLoads(t *testing.T) {
	p := loadFixture(t)
	assert.Equal(t, "ddagent", p.Name)
	assert.Len(t, p.ProvisionSteps, 12)
	require.NotNil(t, p.ResetStep)
	require.NotNil(t, p.FaultStep)
	re := p.Marker("report_published")
	require.NotNil(t, re)
	m := re.FindStringSubmatch("[00012345] report: published id=1764253512345 format=cbor keys=short bytes=212")
	require.NotNil(t, m)
	assert.Equal(t, "1764253512345", m[re.SubexpIndex("id")])
	assert.True(t, p.Marker("boot").MatchString("[00000000] boot: ddagent 0.1.0 profile=qemu-netduinoplus2 boot=3"))
	assert.True(t, p.Marker("report_rejected").MatchString("[00000100] report: rejected id=5 code=InvalidPayload"))
}

func TestProvision(t *testing.T) {
	p := loadFixture(t)
	c, f := startAgent(t, p)
	ctx := ctx5(t)
	_, err := p.WaitBoot(ctx, c)
	require.NoError(t, err)
	vars := Vars{"thing": "dut-1", "endpoint": "192.0.2.1", "format": "cbor", "keys": "short"}
	require.NoError(t, p.Provision(ctx, c, vars))
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, map[string]string{
		"thing_name": "dut-1", "mqtt_endpoint": "192.0.2.1", "mqtt_port": "1883", "wifi_ssid": "ddhil",
		"wifi_credential": "ddhil-pass", "report_period_ms": "1000", "report_format": "cbor", "report_keys": "short",
	}, f.saved)
	assert.Equal(t, []string{"8883", "5001"}, f.tcp)
	assert.Equal(t, []string{"5353"}, f.udp)
	assert.Equal(t, 2, f.boots, "provisioning ends with a reset")
	assert.Equal(t, "reset", f.lines[len(f.lines)-1])
}

func TestProvisionErrors(t *testing.T) {
	cases := []struct {
		name    string
		vars    Vars
		want    []string
		noStart bool
	}{
		{"firmware refuses a value", Vars{"thing": "dut-1", "endpoint": "e", "format": "xml"},
			[]string{`provision step "report format"`, `sent "conf set report_format xml"`, "Error: value: xml is not valid", "console tail"}, false},
		{"missing variable", Vars{"endpoint": "e"}, []string{`provision step "thing name"`, "no value for thing"}, false},
		{"value with a space", Vars{"thing": "a b", "endpoint": "e"}, []string{`thing="a b"`, "value_pattern"}, true},
		{"control character", Vars{"thing": "a\rb", "endpoint": "e"}, []string{"control character"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := loadFixture(t)
			c, f := startAgent(t, p)
			ctx := ctx5(t)
			_, err := p.WaitBoot(ctx, c)
			require.NoError(t, err)
			err = p.Provision(ctx, c, tc.vars)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			if tc.noStart {
				f.mu.Lock()
				assert.Empty(t, f.lines, "nothing sent for bad values")
				f.mu.Unlock()
			}
		})
	}
}

func TestStepTimeoutNamesStep(t *testing.T) {
	p, err := Parse([]byte(`
name: slow
console: {prompt: "> "}
boot: {marker: 'boot:'}
provision:
  - name: never answered
    send: conf set thing_name {{thing}}
    expect: '^will never match$'
    timeout: 100ms
`))
	require.NoError(t, err)
	c, _ := startAgent(t, p)
	ctx := ctx5(t)
	_, err = p.WaitBoot(ctx, c)
	require.NoError(t, err)
	err = p.Provision(ctx, c, Vars{"thing": "x"})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var se *StepError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "never answered", se.Step)
	assert.Contains(t, se.Tail, `thing_name="x"`)
}

func TestSetFault(t *testing.T) {
	p := loadFixture(t)
	c, f := startAgent(t, p)
	ctx := ctx5(t)
	_, err := p.WaitBoot(ctx, c)
	require.NoError(t, err)
	require.NoError(t, p.SetFault(ctx, c, "rid-ticks", true))
	f.mu.Lock()
	assert.True(t, f.faults["rid-ticks"])
	f.mu.Unlock()
	err = p.SetFault(ctx, c, "no-such", true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Error: unknown fault no-such")
	require.Error(t, p.SetFault(ctx, c, "two words", true))
}

func TestExpectations(t *testing.T) {
	p := loadFixture(t)
	e, err := p.Expectations(Vars{"endpoint": "192.0.2.1", "period_ms": "2000"})
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, e.TestPeriod)
	assert.Equal(t, 300*time.Second, e.ProductionPeriod)
	assert.Equal(t, 5*time.Second, e.FirstReportBound)
	assert.Equal(t, "module", e.Transport)
	assert.Equal(t, "192.0.2.1:1883", e.Endpoint)
	assert.InDelta(t, 0.10, e.Tolerance, 1e-9)
	v, err := p.Value(p.Expect.KeyStyle, Vars{"keys": "short"})
	require.NoError(t, err)
	assert.Equal(t, "short", v)
	_, err = p.Expectations(Vars{})
	require.ErrorContains(t, err, "expectations.endpoint: no value for endpoint")
}

func TestUnreportedMetrics(t *testing.T) {
	p := &Profile{Name: "x", Expect: Expect{UnreportedMetrics: []string{"tcp_connections"}}}
	e, err := p.Expectations(nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"tcp_connections"}, e.Unreported)
	p.Expect.UnreportedMetrics = []string{"tcp_conections"}
	_, err = p.Expectations(nil)
	require.ErrorContains(t, err, `unknown metric "tcp_conections"`)
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "name: x\nboot: {marker: b}\nbogus: 1\n", `profile:3: unknown key "bogus" (known here: `},
		{"misspelt key", "name: x\nboot: {marker: b}\nprovison: []\n", `profile:3: unknown key "provison" (did you mean "provision"?)`},
		{"misspelt nested key", "name: x\nboot: {marker: b, timout: 1s}\n", `profile:2: unknown key "timout" (did you mean "timeout"?)`},
		{"no name", "boot: {marker: b}\n", "name is empty"},
		{"no boot marker", "name: x\n", "boot.marker is empty"},
		{"bad regexp", "name: x\nboot: {marker: '('}\n", "boot.marker"},
		{"published without id", "name: x\nboot: {marker: b}\nmarkers: {report_published: 'published'}\n", "no (?P<id>...) group"},
		{"step without expect", "name: x\nboot: {marker: b}\nprovision: [{send: a}]\n", "send and expect are required"},
		{"bad step regexp", "name: x\nboot: {marker: b}\ncommit: [{send: a, expect: '{{x}}('}]\n", "commit step 1"},
		{"bad transport", "name: x\nboot: {marker: b}\nexpectations: {transport: pigeon}\n", "pigeon"},
		{"bad duration", "name: x\nboot: {marker: b, timeout: soon}\n", "soon"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := Load("/nonexistent/profile.yaml")
	require.Error(t, err)
	assert.Equal(t, "device profile /nonexistent/profile.yaml: no such file", err.Error())
}

func TestOptionalStepSkipped(t *testing.T) {
	p, err := Parse([]byte(`
name: opt
console: {prompt: "> ", sync_empty_line: true, error_pattern: '^Error: '}
boot: {marker: 'boot:'}
provision:
  - {name: thing, send: 'conf set thing_name {{thing}}', expect: '^thing_name='}
  - {name: ssid, send: 'conf set wifi_ssid {{ssid}}', expect: '^wifi_ssid=', optional: true}
`))
	require.NoError(t, err)
	c, f := startAgent(t, p)
	ctx := ctx5(t)
	_, err = p.WaitBoot(ctx, c)
	require.NoError(t, err)
	require.NoError(t, p.Provision(ctx, c, Vars{"thing": "t"}))
	f.mu.Lock()
	assert.Equal(t, []string{"conf set thing_name t"}, f.lines)
	f.mu.Unlock()
}
