package renode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ddhil/ddhil/internal/syncbuf"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/renode/container"
	"github.com/ddhil/ddhil/harness/target/renode/internal/dockertest"
	"github.com/ddhil/ddhil/harness/target/renode/internal/fakerenode"
)

// The test binary doubles as the FAKE renode (package fakerenode) when a
// launcher script sets DDHIL_FAKE_RENODE: Renode itself cannot be
// installed here.
func TestMain(m *testing.M) {
	if os.Getenv("DDHIL_FAKE_RENODE") == "1" {
		os.Exit(fakerenode.Main(os.Args[1:], os.Stdout))
	}
	os.Exit(m.Run())
}

// launcher writes an executable script (the "launcher script" form of
// Config.Binary) with body; $FAKE runs the fake renode.
func launcher(t *testing.T, body string) string {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "renode")
	script := fmt.Sprintf("#!/bin/sh\nFAKE=%q\n%s\n", self, body)
	require.NoError(t, os.WriteFile(path, []byte(script), 0o755))
	return path
}

func fakeLauncher(t *testing.T) string {
	return launcher(t, `DDHIL_FAKE_RENODE=1 exec "$FAKE" "$@"`)
}

// elf is a file with an ELF header; the fake checks only the magic (it
// runs no firmware).
func elf(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ddagent.elf")
	require.NoError(t, os.WriteFile(path, append([]byte("\x7fELF\x01\x01\x01"), make([]byte, 57)...), 0o644))
	return path
}

func readLine(t *testing.T, r *bufio.Reader, conn net.Conn) string {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	return line
}

// exercise runs the Target contract: both UARTs connected with nothing
// lost, echo, Info, Reset with the streams kept, Close twice.
func exercise(t *testing.T, tgt *Target, wantMode string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, tgt.Start(ctx))
	t.Cleanup(func() { _ = tgt.Close() })

	console := tgt.console
	cr := bufio.NewReader(console)
	assert.Equal(t, "echo ready\r\n", readLine(t, cr, console), "boot output buffered until the driver connected")
	_, err := tgt.Console().Write([]byte("conf get\n"))
	require.NoError(t, err)
	assert.Equal(t, "conf get\n", readLine(t, cr, console))

	require.NotNil(t, tgt.Transport())
	tr := bufio.NewReader(tgt.transport)
	assert.Equal(t, "echo ready\r\n", readLine(t, tr, tgt.transport))

	info := tgt.Info()
	assert.Equal(t, "renode", info.Kind)
	assert.Equal(t, "1.16.1 (fake-ddhil)", info.Version)
	assert.Equal(t, wantMode, info.Extra["mode"])

	require.NoError(t, tgt.Reset(ctx))
	assert.Equal(t, "echo ready\r\n", readLine(t, cr, console), "reset reruns the firmware on the same stream")

	work := tgt.workDir
	require.NoError(t, tgt.Close())
	require.NoError(t, tgt.Close(), "Close is idempotent")
	_, err = os.Stat(work)
	assert.True(t, errors.Is(err, os.ErrNotExist), "work dir removed")
	_, err = console.Read(make([]byte, 1))
	assert.ErrorIs(t, err, net.ErrClosed, "Close closed the UART streams")
}

func assertReaped(t *testing.T, tgt *Target) {
	t.Helper()
	require.NotNil(t, tgt.proc)
	pid := tgt.proc.cmd.Process.Pid
	err := syscall.Kill(pid, 0)
	assert.ErrorIs(t, err, syscall.ESRCH, "renode process %d reaped", pid)
	err = syscall.Kill(-pid, 0)
	assert.ErrorIs(t, err, syscall.ESRCH, "process group %d empty", pid)
}

func TestLocalXMLRPC(t *testing.T) {
	logs := &syncbuf.Buffer{}
	tgt, err := New(Config{Binary: fakeLauncher(t), Firmware: elf(t), Log: logs})
	require.NoError(t, err)
	exercise(t, tgt, "local")
	assertReaped(t, tgt)
	assert.Equal(t, "xmlrpc", tgt.Info().Extra["control"])
	assert.Contains(t, logs.String(), "[INFO] Robot Framework remote server is listening on port")
	assert.Contains(t, logs.String(), "[INFO] Robot Framework remote servers listener thread stopped", "Close used StopRemoteServer")
}

func TestLocalTelnet(t *testing.T) {
	logs := &syncbuf.Buffer{}
	tgt, err := New(Config{Binary: fakeLauncher(t), Firmware: elf(t), Log: logs, Telnet: true})
	require.NoError(t, err)
	exercise(t, tgt, "local")
	assertReaped(t, tgt)
	assert.Equal(t, "telnet", tgt.Info().Extra["control"])
}

// A user's own script: the driver includes it and wires the terminals.
func TestUserScript(t *testing.T) {
	dir := t.TempDir()
	fw := elf(t)
	platform := filepath.Join(dir, "board.repl")
	require.NoError(t, os.WriteFile(platform, []byte("using \"platforms/boards/stm32f4_discovery-kit.repl\"\n"), 0o644))
	script := filepath.Join(dir, "mine.resc")
	require.NoError(t, os.WriteFile(script, []byte(fmt.Sprintf(
		":name: user script\nmach create \"board\"\nmachine LoadPlatformDescription @%s\nmacro reset\n\"\"\"\n    sysbus LoadELF @%s\n    cpu VectorTableOffset 0x08000000\n\"\"\"\nrunMacro $reset\n",
		platform, fw)), 0o644))
	tgt, err := New(Config{Binary: fakeLauncher(t), Firmware: fw, Resc: script})
	require.NoError(t, err)
	exercise(t, tgt, "local")
	assert.Equal(t, script, tgt.Info().Extra["resc"])
}

func TestStartFailures(t *testing.T) {
	cases := []struct {
		name    string
		cfg     func(t *testing.T) Config
		want    []string
		timeout time.Duration
	}{
		{"firmware is not an ELF", func(t *testing.T) Config {
			bad := filepath.Join(t.TempDir(), "fw.bin")
			require.NoError(t, os.WriteFile(bad, []byte("not an elf"), 0o644))
			return Config{Binary: fakeLauncher(t), Firmware: bad}
		}, []string{"Error while loading ELF: Could not load ELF from path:", `"include @`}, 0},
		{"stock platform needs the network", func(t *testing.T) Config {
			return Config{Binary: fakeLauncher(t), Firmware: elf(t), Platform: "", Extra: nil, Machine: "dut",
				Resc: writeFile(t, "stock.resc", "mach create \"dut\"\nmachine LoadPlatformDescription @platforms/boards/stm32f4_discovery-kit.repl\n")}
		}, []string{"Failed to download https://dl.antmicro.com/projects/renode/svd/STM32F40x.svd.gz"}, 0},
		{"renode exits at once", func(t *testing.T) Config {
			return Config{Binary: launcher(t, `echo "Fatal error:"; echo "Unable to create '0.0.0.0:1' socket:[AddressInvalid]"; exit 1`), Firmware: elf(t)}
		}, []string{"exited before it was ready (exit status 1)", "Fatal error:"}, 0},
		{"never ready", func(t *testing.T) Config {
			return Config{Binary: launcher(t, `exec sleep 600`), Firmware: elf(t), StartTimeout: 300 * time.Millisecond}
		}, []string{"no ", "within 300ms"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tgt, err := New(tc.cfg(t))
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = tgt.Start(ctx)
			require.Error(t, err)
			assert.ErrorIs(t, err, harness.ErrLab)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assertReaped(t, tgt)
			require.NoError(t, tgt.Close())
		})
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

// A port taken between the driver's reservation and Renode's bind makes
// Renode fail ("Could not start the HTTP server", exit 0); Start retries
// with new ports.
func TestPortClashIsRetried(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "failed-once")
	bin := launcher(t, fmt.Sprintf(`if [ ! -e %q ]; then touch %q; echo "15:00:00.0000 [ERROR] Could not start the HTTP server on port 1"; exit 0; fi
DDHIL_FAKE_RENODE=1 exec "$FAKE" "$@"`, marker, marker))
	logs := &syncbuf.Buffer{}
	tgt, err := New(Config{Binary: bin, Firmware: elf(t), Log: logs})
	require.NoError(t, err)
	exercise(t, tgt, "local")
	assert.Contains(t, logs.String(), "Could not start the HTTP server")
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		lab  bool
		want string
	}{
		{"no firmware", Config{}, false, "no firmware"},
		{"missing firmware", Config{Firmware: "/nonexistent/fw.elf"}, true, "make firmware"},
		{"missing binary", Config{Firmware: os.Args[0], Binary: "/nonexistent/renode"}, true, "/nonexistent/renode"},
		{"missing script", Config{Firmware: os.Args[0], Resc: "/nonexistent.resc"}, true, "nonexistent.resc"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, tc.lab, errors.Is(err, harness.ErrLab))
		})
	}
}

func TestParseVersion(t *testing.T) {
	assert.Equal(t, "1.16.1 (-202611271442)", parseVersion("Renode, version 1.16.1 (-202611271442)"))
	assert.Equal(t, "1.15.0", parseVersion("Renode, version 1.15.0"))
	assert.Equal(t, "garbage", parseVersion(" garbage "))
}

// With neither renode in PATH nor a Docker engine, Probe and Start explain
// how to get one.
func TestNoRenodeNoDocker(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := dockerAvailable
	dockerAvailable = func(context.Context) error {
		return harness.LabError(fmt.Errorf("%w: simulated", container.ErrNoDocker))
	}
	t.Cleanup(func() { dockerAvailable = saved })

	_, err := Probe(context.Background(), Config{})
	require.Error(t, err)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.ErrorIs(t, err, container.ErrNoDocker)
	assert.Contains(t, err.Error(), "install Renode (https://renode.io")
	assert.Contains(t, err.Error(), "-ddhil.renode=PATH")

	tgt, err := New(Config{Firmware: elf(t)})
	require.NoError(t, err)
	assert.Equal(t, "container", tgt.mode, "no renode in PATH: the image is the fallback")
	err = tgt.Start(context.Background())
	require.Error(t, err)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.Contains(t, err.Error(), "-ddhil.renode-image=IMAGE")
	require.NoError(t, tgt.Close())
}

func TestProbeLocal(t *testing.T) {
	how, err := Probe(context.Background(), Config{Binary: fakeLauncher(t)})
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(how, "local renode "), how)
}

func requireDocker(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := container.Available(ctx); err != nil {
		t.Skipf("no Docker engine answers: %v", err)
	}
}

// fakeRenodeImage builds ddhil-test/fake-renode:<pid> FROM scratch with the
// fake renode (static build of internal/fakerenode/cmd/renode) at
// /usr/bin/renode, and removes it after the test.
func fakeRenodeImage(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "renode")
	build := exec.Command(goBin, "build", "-o", bin, "./internal/fakerenode/cmd/renode")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tag := fmt.Sprintf("ddhil-test/fake-renode:%d", os.Getpid())
	require.NoError(t, dockertest.BuildImage(ctx, tag, map[string]string{"/usr/bin/renode": bin}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		assert.NoError(t, dockertest.RemoveImage(ctx, tag))
	})
	return tag
}

// Container mode end to end against the real Docker engine, with the fake
// renode in the image: the same code path antmicro/renode takes (command,
// copied firmware and script at their host paths, published ports, log
// wait, StopRemoteServer, removal).
func TestContainerMode(t *testing.T) {
	requireDocker(t)
	image := fakeRenodeImage(t)
	logs := &syncbuf.Buffer{}
	tgt, err := New(Config{Image: image, Firmware: elf(t), Log: logs})
	require.NoError(t, err)
	exercise(t, tgt, "container")
	assert.Equal(t, image, tgt.Info().Extra["image"])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exists, err := dockertest.ContainerExists(ctx, tgt.ctr.ID())
	require.NoError(t, err)
	assert.False(t, exists, "container removed by Close")
	assert.Contains(t, logs.String(), "Robot Framework remote server is listening on port 9999")
}

func TestContainerImageMissing(t *testing.T) {
	requireDocker(t)
	tgt, err := New(Config{Image: "ddhil-test/no-such-renode:0", Firmware: elf(t)})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = tgt.Start(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.ErrorIs(t, err, container.ErrImageMissing)
	assert.Contains(t, err.Error(), "docker pull ddhil-test/no-such-renode:0")
	require.NoError(t, tgt.Close())
}

// qemuLauncher runs the fake in QEMU mode (fakerenode.QEMUEnv): the loaded
// ELF runs in a real qemu-system-arm behind the fake's socket terminals.
func qemuLauncher(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("qemu-system-arm")
	if err != nil {
		t.Skip("qemu-system-arm not installed (apt-get install qemu-system-arm)")
	}
	return launcher(t, fmt.Sprintf(`DDHIL_FAKE_RENODE=1 %s=%q exec "$FAKE" "$@"`, fakerenode.QEMUEnv, bin))
}

// buildEchoFirmware compiles container/testdata/fw/echo_irq.c (the probe
// firmware of the Renode recordings: "echo ready", then an RXNE-interrupt
// echo on USART2; it also runs on QEMU's netduinoplus2).
func buildEchoFirmware(t *testing.T) string {
	t.Helper()
	gcc, err := exec.LookPath("arm-none-eabi-gcc")
	if err != nil {
		t.Skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
	}
	out := filepath.Join(t.TempDir(), "echo_irq.elf")
	fw := filepath.Join("container", "testdata", "fw")
	cmd := exec.Command(gcc, "-mcpu=cortex-m4", "-mthumb", "-Os", "-ffreestanding", "-fno-builtin", "-std=c11",
		"-nostdlib", "-T", filepath.Join(fw, "stm32f4.ld"), "-Wl,--gc-sections", "-o", out,
		filepath.Join(fw, "startup.c"), filepath.Join(fw, "echo_irq.c"), "-lgcc")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	return out
}

var qemuPidRE = regexp.MustCompile(`cpu: QEMU \(pid (\d+)\) runs `)

// The driver's local mode with a real CPU behind the fake: the firmware's
// boot line arrives on the console terminal, bytes go in and come back
// through the firmware, `machine Reset` reboots it on the same stream, and
// Close ends the fake and its QEMU.
func TestLocalQEMUMode(t *testing.T) {
	logs := &syncbuf.Buffer{}
	tgt, err := New(Config{Binary: qemuLauncher(t), Firmware: buildEchoFirmware(t), Log: logs})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, tgt.Start(ctx))
	t.Cleanup(func() { _ = tgt.Close() })

	console := tgt.console
	cr := bufio.NewReader(console)
	assert.Equal(t, "echo ready\r\n", readLine(t, cr, console), "boot line from the firmware in QEMU")
	_, err = tgt.Console().Write([]byte("through the cpu\n"))
	require.NoError(t, err)
	assert.Equal(t, "through the cpu\n", readLine(t, cr, console))
	assert.Equal(t, "1.16.1 (fake-ddhil+qemu)", tgt.Info().Version)

	clk, ok := target.ClockOf(tgt)
	require.True(t, ok, "Renode's virtual time is a target clock")
	assert.Equal(t, "renode-virtual", clk.ClockInfo().Name)
	v1, err := clk.TargetTime(ctx)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		v2, err := clk.TargetTime(ctx)
		return err == nil && v2 > v1
	}, 10*time.Second, 10*time.Millisecond, "virtual time advances while the emulation runs")
	assert.NotZero(t, tgt.Pid(), "a local Renode has a process to measure")

	require.NoError(t, tgt.Reset(ctx))
	assert.Equal(t, "echo ready\r\n", readLine(t, cr, console), "system_reset reboots the firmware on the same stream")

	m := qemuPidRE.FindStringSubmatch(logs.String())
	require.NotNil(t, m, "the fake logged its QEMU: %s", logs.String())
	var qemuPid int
	_, err = fmt.Sscan(m[1], &qemuPid)
	require.NoError(t, err)
	require.NoError(t, tgt.Close())
	assertReaped(t, tgt)
	assert.ErrorIs(t, syscall.Kill(qemuPid, 0), syscall.ESRCH, "QEMU %d reaped by the fake", qemuPid)
}

// Info names the target before Start (reports of runs that fail to start
// still say what was tried); the version comes from Renode at Start.
func TestInfoBeforeStart(t *testing.T) {
	bin := fakeLauncher(t)
	tgt, err := New(Config{Binary: bin, Firmware: elf(t)})
	require.NoError(t, err)
	info := tgt.Info()
	assert.Equal(t, "renode", info.Kind)
	assert.Equal(t, "dut", info.Name)
	assert.Empty(t, info.Version)
	assert.Equal(t, map[string]string{"mode": "local", "control": "xmlrpc", "binary": bin,
		"platform": "stm32f4_discovery (offline repl)"}, info.Extra)
	info.Extra["mode"] = "changed"
	assert.Equal(t, "local", tgt.Info().Extra["mode"], "Info returns a copy")
}

func TestParseCurrentTime(t *testing.T) {
	d, err := parseCurrentTime("Current virtual time: 00:00:02.213400000\nCurrent real time: 00:00:02.213455100\n\n")
	require.NoError(t, err)
	assert.Equal(t, 2213400*time.Microsecond, d)
	d, err = parseCurrentTime("Current virtual time: 01:02:03.5\n")
	require.NoError(t, err)
	assert.Equal(t, time.Hour+2*time.Minute+3500*time.Millisecond, d)
	_, err = parseCurrentTime("No such command or device: currentTime")
	assert.Error(t, err)
}

func TestStepSliceNeedsCompress(t *testing.T) {
	_, err := New(Config{Binary: fakeLauncher(t), Firmware: elf(t), StepSlice: time.Second})
	assert.ErrorContains(t, err, "needs Compress")
	tgt, err := New(Config{Binary: fakeLauncher(t), Firmware: elf(t), StepSlice: time.Second, Compress: true})
	require.NoError(t, err)
	assert.True(t, tgt.Steps())
	assert.Contains(t, tgt.Info().Extra["time"], "stepped in 1s slices")
}

// Under compression the module's power-up delay is kept short; otherwise
// the session's default stays.
func TestCompressShortensModuleReadyDelay(t *testing.T) {
	var s target.SessionSetup
	require.NoError(t, (&Target{cfg: Config{Compress: true}}).ConfigureSession(&s))
	assert.Equal(t, 10*time.Millisecond, s.ModuleReadyDelay)
	s = target.SessionSetup{}
	require.NoError(t, (&Target{}).ConfigureSession(&s))
	assert.Zero(t, s.ModuleReadyDelay)
}
