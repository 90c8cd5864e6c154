package runner

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/hwmap"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/device/provision/u5test"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/session"
	"github.com/ddhil/ddhil/harness/target"
)

func repoPath(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", ".."}, parts...)...)
}

// stubProbes makes the listed serials "attached" for the test.
func stubProbes(t *testing.T, serials []string, err error) {
	t.Helper()
	old := attachedProbes
	attachedProbes = func() ([]string, error) { return serials, err }
	t.Cleanup(func() { attachedProbes = old })
}

// bench writes a hardware map whose serial ports are files in a temporary
// directory (presence is all LocateBoard checks) and returns its path and
// the directory. boards are YAML list items using {{dir}} for that path.
func bench(t *testing.T, boards ...string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"console-1", "module-1", "console-2", "module-2"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o644))
	}
	text := "boards:\n" + strings.ReplaceAll(strings.Join(boards, ""), "{{dir}}", dir)
	path := filepath.Join(dir, "bench.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path, dir
}

const (
	nucleo = `  - id: nucleo-1
    platform: nucleo-f446re
    probe_serial: "PROBE1"
    openocd: [board/st_nucleo_f4.cfg]
    console: {port: {{dir}}/console-1}
    transport: {module: {{dir}}/module-1}
`
	u585 = `  - id: u585-1
    platform: b-u585i-iot02a
    probe_serial: "PROBE2"
    openocd: [target/stm32u5x.cfg]
    console: {port: {{dir}}/console-2}
    transport: network
    broker_listen: 127.0.0.1:8883
`
	absent = `  - id: gone-1
    platform: nucleo-f446re
    probe_serial: "PROBE3"
    openocd: [board/st_nucleo_f4.cfg]
    console: {port: {{dir}}/no-such-port}
    transport: {module: {{dir}}/no-such-module}
`
)

func TestLocateBoard(t *testing.T) {
	cases := []struct {
		name     string
		boards   []string
		id       string
		probes   []string
		probeErr error
		want     string   // board id picked
		errs     []string // error substrings
		detached bool     // ErrBoardNotAttached
	}{
		{name: "only board", boards: []string{nucleo}, probes: []string{"PROBE1"}, want: "nucleo-1"},
		{name: "by id", boards: []string{nucleo, u585}, id: "u585-1", probes: []string{"PROBE1", "PROBE2"}, want: "u585-1"},
		{name: "only attached one", boards: []string{nucleo, absent}, probes: []string{"PROBE1", "PROBE3"}, want: "nucleo-1"},
		{name: "two attached", boards: []string{nucleo, u585}, probes: []string{"PROBE1", "PROBE2"},
			errs: []string{"2 boards of", "(nucleo-1, u585-1)", "choose one with --board"}},
		{name: "unknown id", boards: []string{nucleo}, id: "x", probes: []string{"PROBE1"},
			errs: []string{`no board "x" in`, "boards: nucleo-1"}},
		{name: "probe absent", boards: []string{nucleo}, probes: []string{"OTHER"}, detached: true,
			errs: []string{`board "nucleo-1" (nucleo-f446re)`, "is not attached", "probe PROBE1 is not among the attached USB devices (1 USB serial numbers seen)", "ddhil boards --hwmap"}},
		{name: "ports missing", boards: []string{absent}, probes: []string{"PROBE3"}, detached: true,
			errs: []string{"console port", "no-such-port is missing", "module port", "no-such-module is missing"}},
		{name: "none attached", boards: []string{nucleo, u585}, detached: true,
			errs: []string{"none of the 2 boards", "nucleo-1 (nucleo-f446re): probe PROBE1", "u585-1 (b-u585i-iot02a): probe PROBE2"}},
		{name: "listing failed", boards: []string{nucleo}, probeErr: errors.New("no /sys"), detached: true,
			errs: []string{"listing them failed: no /sys"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stubProbes(t, tc.probes, tc.probeErr)
			path, _ := bench(t, tc.boards...)
			b, err := LocateBoard(path, tc.id)
			if tc.errs == nil {
				require.NoError(t, err)
				assert.Equal(t, tc.want, b.ID)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, harness.ErrLab)
			assert.Equal(t, tc.detached, errors.Is(err, ErrBoardNotAttached))
			for _, w := range tc.errs {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLocateBoardMapErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("boards:\n  - id: x\n"), 0o644))
	cases := []struct{ name, path, want string }{
		{"no map", "", "target board needs a hardware map (--hwmap FILE"},
		{"missing file", filepath.Join(t.TempDir(), "none.yaml"), "no such file"},
		{"invalid map", bad, "invalid hardware map"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LocateBoard(tc.path, "")
			require.Error(t, err)
			assert.ErrorIs(t, err, harness.ErrLab)
			assert.NotErrorIs(t, err, ErrBoardNotAttached)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestPrepareBoard(t *testing.T) {
	stubProbes(t, []string{"PROBE1", "PROBE2", "PROBE4"}, nil)
	withProfile := strings.Replace(nucleo, "    transport:", "    profile: mine.yaml\n    transport:", 1)
	odd := `  - id: odd-1
    platform: my-board
    probe_serial: "PROBE4"
    openocd: [x.cfg]
    console: {port: {{dir}}/console-2}
    transport: {module: {{dir}}/module-2}
`
	cases := []struct {
		name                   string
		board                  string
		given                  Options
		wantProfile, wantFirmw string // {{dir}} = the map's directory
		err                    string
	}{
		{name: "platform defaults", board: nucleo, wantProfile: "fixtures/profiles/ddagent-nucleo-f446re.yaml", wantFirmw: "firmware/build/nucleo-f446re/ddagent.elf"},
		{name: "map profile", board: withProfile, wantProfile: "{{dir}}/mine.yaml", wantFirmw: "firmware/build/nucleo-f446re/ddagent.elf"},
		{name: "flags win", board: withProfile, given: Options{Profile: "p.yaml", Firmware: "f.elf"}, wantProfile: "p.yaml", wantFirmw: "f.elf"},
		{name: "U5 needs --firmware", board: u585, err: `board "u585-1" (b-u585i-iot02a): no firmware: pass --firmware`},
		{name: "U5 with firmware", board: u585, given: Options{Firmware: "ntz.elf"}, wantProfile: "fixtures/profiles/stm32u5-iot-reference.yaml", wantFirmw: "ntz.elf"},
		{name: "unknown platform", board: odd, err: "no device profile: pass --profile or set profile: in"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, dir := bench(t, tc.board)
			o := tc.given
			o.Target, o.HWMap = "board", path
			err := Preparers["board"](&o)
			if tc.err != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, harness.ErrLab)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, strings.ReplaceAll(tc.wantProfile, "{{dir}}", dir), o.Profile)
			assert.Equal(t, tc.wantFirmw, o.Firmware)
			assert.NotEmpty(t, o.Board)
		})
	}
	// The platform defaults point at files of this repository.
	for platform, d := range PlatformDefaults {
		_, err := profile.Load(repoPath(d.Profile))
		assert.NoError(t, err, platform)
	}
}

func TestUSBSerials(t *testing.T) {
	dir := t.TempDir()
	old := sysUSB
	sysUSB = dir
	t.Cleanup(func() { sysUSB = old })
	for name, serial := range map[string]string{"1-1": "066DFF485753725187155723\n", "1-2": "\x7f\x06\x50\n", "usb1": "0000:00:14.0\n", "1-3": ""} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, name), 0o755))
		if serial != "" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name, "serial"), []byte(serial), 0o644))
		}
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "1-4"), 0o755)) // no serial file
	got, err := usbSerials()
	require.NoError(t, err)
	assert.Contains(t, got, "066DFF485753725187155723")
	assert.Contains(t, got, "0000:00:14.0")
	assert.Contains(t, got, "7F0650", "a binary serial also as OpenOCD's hex")
}

// A run on a map whose boards are absent ends as a lab error (exit 3) with
// the reason in the report, before anything is started.
func TestRunBoardNotAttached(t *testing.T) {
	stubProbes(t, nil, nil)
	out := t.TempDir()
	rep, err := Run(context.Background(), Options{Target: "board", HWMap: repoPath("fixtures", "hwmap", "example.yaml"), OutDir: out})
	require.NoError(t, err)
	assert.Equal(t, 3, rep.ExitCode())
	assert.Contains(t, rep.Run.LabError, "none of the 3 boards of")
	assert.Contains(t, rep.Run.LabError, "u585-1 (b-u585i-iot02a): probe 003A00233133510D37363734 is not among the attached USB devices")
	assert.FileExists(t, filepath.Join(out, "report.json"))
}

// With the probe reported present but not really there, the real OpenOCD
// fails to flash: a lab error naming the board, through the whole run.
func TestRunBoardFlashFailsWithRealOpenOCD(t *testing.T) {
	if _, err := exec.LookPath("openocd"); err != nil {
		t.Skip("openocd not installed (apt-get install openocd)")
	}
	stubProbes(t, []string{"PROBE1"}, nil)
	path, dir := bench(t, nucleo)
	elf := filepath.Join(dir, "fw.elf")
	require.NoError(t, os.WriteFile(elf, []byte("\x7fELF not really"), 0o644))
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{Target: "board", HWMap: path, Firmware: elf,
		Profile: repoPath("fixtures", "profiles", "ddagent-nucleo-f446re.yaml"), OutDir: out})
	require.NoError(t, err)
	assert.Equal(t, 3, rep.ExitCode())
	assert.Contains(t, rep.Run.LabError, "board nucleo-1")
	assert.Equal(t, "board", rep.Target.Kind)
	assert.Equal(t, "nucleo-1", rep.Target.Name)
	log, err := os.ReadFile(filepath.Join(out, "target.log"))
	require.NoError(t, err)
	assert.Contains(t, rep.Run.LabError, `on probe "PROBE1"`)
	assert.Contains(t, rep.Run.LabError, "probe not found")
	assert.Contains(t, string(log), "Error: open failed", "OpenOCD's own output is kept")
}

func TestConfigureBoardSession(t *testing.T) {
	agent, err := profile.Load(repoPath("fixtures", "profiles", "ddagent-nucleo-f446re.yaml"))
	require.NoError(t, err)
	u5, err := profile.Load(repoPath("fixtures", "profiles", "stm32u5-iot-reference.yaml"))
	require.NoError(t, err)
	moduleBoard := hwmap.Board{ID: "nucleo-1", Transport: hwmap.Transport{Kind: hwmap.TransportModule}}
	netBoard := hwmap.Board{ID: "u585-1", Transport: hwmap.Transport{Kind: hwmap.TransportNetwork}, BrokerListen: "127.0.0.1:18883"}

	cases := []struct {
		name      string
		board     hwmap.Board
		prof      *profile.Profile
		vars      profile.Vars
		preCAHost string // an existing CA in the pki dir made for this host
		err       string
		hosts     []string // broker certificate names wanted
		endpoint  string
	}{
		{name: "module board: nothing to do", board: moduleBoard, prof: agent},
		{name: "network profile on a module board", board: moduleBoard, prof: u5, err: "profile stm32u5-iot-reference expects transport network, but board \"nucleo-1\" is mapped with transport module"},
		{name: "module profile on a network board", board: netBoard, prof: agent, err: "expects transport module"},
		{name: "network board", board: netBoard, prof: u5, vars: profile.Vars{"thing": "t", "port": "1"}, hosts: []string{"127.0.0.1"}, endpoint: "127.0.0.1"},
		{name: "endpoint by name", board: netBoard, prof: u5, vars: profile.Vars{"thing": "t", "endpoint": "lab.amazonaws.local"}, hosts: []string{"127.0.0.1", "lab.amazonaws.local"}, endpoint: "lab.amazonaws.local"},
		{name: "CA made for another host", board: netBoard, prof: u5, vars: profile.Vars{"thing": "t"}, preCAHost: "10.0.0.9", err: "certifies the broker as [10.0.0.9], not \"127.0.0.1\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pki := filepath.Join(t.TempDir(), "pki")
			if tc.preCAHost != "" {
				cfg := session.Config{Profile: u5}
				require.NoError(t, ConfigureBoardSession(&cfg, hwmap.Board{ID: "x", Transport: hwmap.Transport{Kind: hwmap.TransportNetwork}, BrokerListen: tc.preCAHost + ":8883"}, pki))
			}
			cfg := session.Config{Profile: tc.prof, Vars: tc.vars, BrokerConfig: broker.Config{Throttle: broker.NoThrottle}}
			bt := &boardTarget{board: tc.board, pkiDir: pki}
			err := bt.ConfigureSession(&cfg)
			if tc.err != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, harness.ErrLab)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, broker.NoThrottle, cfg.BrokerConfig.Throttle, "other broker settings kept")
			if tc.hosts == nil {
				assert.Nil(t, cfg.BrokerConfig.TLS)
				assert.Empty(t, cfg.BrokerConfig.MQTTSAddr)
				assert.Same(t, tc.prof, cfg.Profile)
				return
			}
			require.NotNil(t, cfg.BrokerConfig.TLS)
			assert.Equal(t, "127.0.0.1:18883", cfg.BrokerConfig.MQTTSAddr)
			assert.Equal(t, "127.0.0.1", cfg.Endpoint)
			assert.Equal(t, "18883", cfg.Vars["port"], "the device dials the port the broker listens on")
			if tc.vars["port"] != "" {
				assert.Equal(t, "1", tc.vars["port"], "caller's vars untouched")
			}
			leaf := cfg.BrokerConfig.TLS.Certificates[0].Leaf
			require.NotNil(t, leaf)
			assert.ElementsMatch(t, tc.hosts, leaf.DNSNames)
			assert.True(t, cfg.Profile.NeedsSigner())
			assert.NotSame(t, tc.prof, cfg.Profile, "the signer goes on a copy")
			if tc.endpoint != "127.0.0.1" {
				assert.Equal(t, tc.endpoint, cfg.Vars["endpoint"])
			}
		})
	}
}

// u5Board stands in for a B-U585I-IOT02A on the bench, which is not here:
// the scripted console and network client of harness/device/provision/u5test
// (built from shared/docs/stm32-reference.md) over net.Pipe. Reset is the
// probe's hardware reset.
type u5Board struct {
	cfg  u5test.Config
	host net.Conn
	dev  *u5test.Device
}

func (b *u5Board) Start(context.Context) error {
	host, dev := net.Pipe()
	b.host, b.dev = host, u5test.Start(dev, b.cfg)
	return nil
}
func (b *u5Board) Console() io.ReadWriter   { return b.host }
func (b *u5Board) Transport() io.ReadWriter { return nil }
func (b *u5Board) Reset(context.Context) error {
	b.dev.Reboot()
	return nil
}
func (b *u5Board) Info() target.Info { return target.Info{Kind: "board", Name: "u585-sim"} }
func (b *u5Board) Close() error {
	b.host.Close()
	return b.dev.Close()
}

// freeLoopbackAddr returns a port the kernel just handed out on 127.0.0.1.
// A network board is provisioned with the broker's port before the broker
// listens, as on a bench, so the port has to be known in advance.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// A network board end to end: the session provisions the stand-in over its
// console (conf, key, CSR signed by the run's CA, certificate and CA
// imported line by line, reset), then the device dials the broker's
// mutual-TLS listener on broker_listen with that certificate and its
// CBOR short-key reports are judged.
func TestNetworkBoardSession(t *testing.T) {
	b := hwmap.Board{ID: "u585-sim", Platform: "b-u585i-iot02a", Transport: hwmap.Transport{Kind: hwmap.TransportNetwork},
		BrokerListen: freeLoopbackAddr(t)}
	prof, err := profile.Load(repoPath("fixtures", "profiles", "stm32u5-iot-reference.yaml"))
	require.NoError(t, err)
	dev := &u5Board{cfg: u5test.Config{Network: true, ReportPeriod: 300 * time.Millisecond, ResponseTimeout: 2 * time.Second}}
	target := &boardTarget{Target: dev, board: b, pkiDir: filepath.Join(t.TempDir(), "pki")}
	cfg := session.Config{Target: target, BrokerConfig: broker.Config{Throttle: broker.NoThrottle}, Profile: prof,
		Vars: profile.Vars{"thing": "u5-dut", "ssid": "bench", "password": "pw"}, OutDir: t.TempDir(), Logf: t.Logf}
	require.NoError(t, target.ConfigureSession(&cfg))

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := session.Start(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("console tail:\n%s", s.Console().Tail(30))
		}
		assert.NoError(t, s.Close())
	})
	host, port, _ := net.SplitHostPort(b.BrokerListen)
	assert.Equal(t, map[string]string{"thing_name": "u5-dut", "mqtt_endpoint": host, "mqtt_port": port,
		"wifi_ssid": "bench", "wifi_credential": "pw", "time_hwm": "0"}, dev.dev.Committed())
	assert.Equal(t, b.BrokerListen, s.Broker().Addr("tls"))

	evs, err := s.WaitReports(ctx, 3)
	require.NoError(t, err)
	for _, ev := range evs {
		assert.Equal(t, "tls", ev.Listener)
		assert.Equal(t, "cbor", string(ev.Format))
		require.NotNil(t, ev.Result)
		assert.True(t, ev.Result.Accepted(), "%+v", ev.Result.Problem)
		assert.Equal(t, "short", ev.Result.Report.KeyStyle)
	}
	_, err = s.Console().Expect(ctx, prof.Marker("report_accepted"))
	require.NoError(t, err, "the device heard the acceptance")

	capture, err := s.Capture()
	require.NoError(t, err)
	var conn *broker.Event
	for i := range capture.Events {
		if capture.Events[i].Kind == broker.EventConnect && capture.Events[i].TLS != nil {
			conn = &capture.Events[i]
			break
		}
	}
	require.NotNil(t, conn, "a mutual-TLS connection")
	assert.Equal(t, "u5-dut", conn.TLS.PeerCN, "client certificate issued from the device's CSR")
	assert.Equal(t, "x-amzn-mqtt-ca", conn.TLS.ALPN)

	checks, err := conformance.Select([]string{"DD-X01", "DD-S01", "DD-S02", "DD-S03", "DD-S04", "DD-S05", "DD-P01", "DD-P03", "DD-I01", "DD-A03", "DD-A04"})
	require.NoError(t, err)
	for _, r := range conformance.Evaluate(capture, checks) {
		assert.Equal(t, conformance.StatusPass, r.Status, "%s: %+v", r.Check.ID, r)
	}
}
