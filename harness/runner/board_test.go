package runner

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness/device/hwmap"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/device/provision/u5test"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/session"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/board"
	"github.com/ddhil/ddhil/harness/target/board/boardtest"
)

func repoPath(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", ".."}, parts...)...)
}

// A run on a map whose boards are boardtest.Absent ends as a lab error (exit 3) with
// the reason in the report, before anything is started.
func TestRunBoardNotAttached(t *testing.T) {
	boardtest.StubProbes(t, &board.ListProbes, nil, nil)
	out := t.TempDir()
	rep, err := Run(context.Background(), Options{Target: "board", Settings: target.Settings{"hwmap": {repoPath("fixtures", "hwmap", "example.yaml")}}, OutDir: out})
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
	boardtest.StubProbes(t, &board.ListProbes, []string{"PROBE1"}, nil)
	path, _ := boardtest.Bench(t, boardtest.Nucleo)
	elf := repoPath("firmware", "build", "nucleo-f446re", "ddagent.elf")
	if _, err := os.Stat(elf); err != nil {
		t.Skip("the nucleo-f446re firmware is not built (make firmware)")
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{Target: "board", Settings: target.Settings{"hwmap": {path}}, Firmware: elf,
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
	target := board.WithSession(dev, b, filepath.Join(t.TempDir(), "pki"))
	cfg := session.Config{Target: target, BrokerConfig: broker.Config{Throttle: broker.NoThrottle}, Profile: prof,
		Vars: profile.Vars{"thing": "u5-dut", "ssid": "bench", "password": "pw"}, OutDir: t.TempDir(), Logf: t.Logf}

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
