package board

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"github.com/ddhil/ddhil/internal/syncbuf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/hwmap"
	"github.com/ddhil/ddhil/harness/link/serialport"
	"github.com/ddhil/ddhil/harness/link/serialport/serialtest"
)

var (
	dummyCfg  = "../../../fixtures/openocd/dummy-testee.cfg"
	shadowCfg = "../../debug/openocd/testdata/program-shadow.cfg"
	fastRetry = serialport.Retry{Attempts: 40, Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
)

// bench stands in for a board's two serial lines with socat pty pairs: the
// target opens the A ends, the test plays the firmware on the B ends.
type bench struct {
	console, module *serialtest.Pair
}

func newBench(t *testing.T) bench {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := t.TempDir()
	c, err := serialtest.Start(ctx, dir, "console-")
	if errors.Is(err, serialtest.ErrNoSocat) {
		t.Skip(err)
	}
	require.NoError(t, err)
	t.Cleanup(c.Stop)
	m, err := serialtest.Start(ctx, dir, "module-")
	require.NoError(t, err)
	t.Cleanup(m.Stop)
	return bench{console: c, module: m}
}

func (b bench) board(openocdCfgs ...string) hwmap.Board {
	return hwmap.Board{
		ID: "bench-1", Platform: "nucleo-f446re", ProbeSerial: "DUMMY0001", OpenOCD: openocdCfgs,
		Console:      hwmap.Serial{Port: b.console.A, Baud: 115200},
		Transport:    hwmap.Transport{Kind: hwmap.TransportModule, Serial: hwmap.Serial{Port: b.module.A, Baud: 115200}},
		FlashTimeout: hwmap.Duration(20 * time.Second), BootTimeout: hwmap.Duration(10 * time.Second),
	}
}

// firmwareSide opens the B end of a pair: what the board's UART would see.
func firmwareSide(t *testing.T, path string) serialport.Port {
	t.Helper()
	p, err := serialport.Open(path, 115200)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// readLine reads one line from r within d (r must have SetReadDeadline).
func readLine(t *testing.T, r interface {
	io.Reader
	SetReadDeadline(time.Time) error
}, d time.Duration) string {
	t.Helper()
	require.NoError(t, r.SetReadDeadline(time.Now().Add(d)))
	var line []byte
	buf := make([]byte, 1)
	for {
		_, err := r.Read(buf)
		require.NoError(t, err, "so far: %q", line)
		line = append(line, buf[0])
		if buf[0] == '\n' {
			return string(line)
		}
	}
}

// bootingProber stands in for a physical board (none exists here): on
// reset it "boots" by writing a boot line into the console pty from the
// firmware's side, as the reference agent does after NVIC reset, and it can
// make the console vanish and come back as a re-enumerating USB CDC port.
type bootingProber struct {
	t        *testing.T
	firmware func() io.Writer // the console's firmware end, opened lazily
	pair     *serialtest.Pair
	reenum   bool

	mu    sync.Mutex
	calls []string
	boots int
}

func (p *bootingProber) Flash(ctx context.Context, elf string) error {
	p.record("flash " + filepath.Base(elf))
	return nil
}

func (p *bootingProber) Reset(ctx context.Context) error {
	p.mu.Lock()
	p.boots++
	n := p.boots
	p.mu.Unlock()
	p.record("reset")
	if p.reenum {
		if err := p.pair.Restart(ctx); err != nil {
			return err
		}
	}
	_, err := p.firmware().Write([]byte("[00000000] boot: ddagent test profile=bench boot=" + string(rune('0'+n)) + "\r\n"))
	return err
}

func (p *bootingProber) Close() error { p.record("close"); return nil }

func (p *bootingProber) record(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, s)
}

func (p *bootingProber) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func TestStartOpensPortsBeforeReset(t *testing.T) {
	b := newBench(t)
	fw := firmwareSide(t, b.console.B)
	prober := &bootingProber{t: t, firmware: func() io.Writer { return fw }}
	tg, err := New(Config{Board: b.board("unused.cfg"), ELF: "/fw/ddagent.elf", Prober: prober, Retry: fastRetry})
	require.NoError(t, err)
	defer tg.Close()
	assert.Nil(t, tg.Console(), "nothing open before Start")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, tg.Start(ctx))
	assert.Equal(t, []string{"flash ddagent.elf", "reset"}, prober.log())
	// The boot line was written during Start's reset: it is there only
	// because the console was already open.
	console := tg.Console().(*serialport.Stream)
	assert.Equal(t, "[00000000] boot: ddagent test profile=bench boot=1\r\n", readLine(t, console, 5*time.Second))

	// Console and transport carry bytes both ways.
	_, err = tg.Console().Write([]byte("status\r\n"))
	require.NoError(t, err)
	assert.Equal(t, "status\r\n", readLine(t, fw, 5*time.Second))
	module := firmwareSide(t, b.module.B)
	_, err = module.Write([]byte("AT\r\n"))
	require.NoError(t, err)
	assert.Equal(t, "AT\r\n", readLine(t, tg.Transport().(*serialport.Stream), 5*time.Second))

	require.NoError(t, tg.Reset(ctx))
	assert.Equal(t, "[00000000] boot: ddagent test profile=bench boot=2\r\n", readLine(t, console, 5*time.Second))

	require.NoError(t, tg.Close())
	require.NoError(t, tg.Close(), "Close twice is fine")
	assert.Equal(t, []string{"flash ddagent.elf", "reset", "reset", "close"}, prober.log())
	_, err = tg.Console().Write([]byte("x"))
	assert.ErrorIs(t, err, os.ErrClosed)
}

// TestResetSurvivesReEnumeration: the console port disappears during reset
// and comes back on the same path (a USB CDC port re-enumerating); the
// Console handle keeps working and sees the new boot line.
func TestResetSurvivesReEnumeration(t *testing.T) {
	b := newBench(t)
	var fwMu sync.Mutex
	var fw serialport.Port
	firmware := func() io.Writer {
		fwMu.Lock()
		defer fwMu.Unlock()
		if fw != nil {
			fw.Close()
		}
		p, err := serialport.Open(b.console.B, 115200)
		require.NoError(t, err)
		fw = p
		return p
	}
	t.Cleanup(func() {
		fwMu.Lock()
		defer fwMu.Unlock()
		if fw != nil {
			fw.Close()
		}
	})
	prober := &bootingProber{t: t, firmware: firmware, pair: b.console}
	tg, err := New(Config{Board: b.board("unused.cfg"), SkipFlash: true, Prober: prober, Retry: fastRetry})
	require.NoError(t, err)
	defer tg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, tg.Start(ctx))
	console := tg.Console().(*serialport.Stream)
	assert.Contains(t, readLine(t, console, 5*time.Second), "boot=1")

	// From now on each reset makes the port vanish and come back. The boot
	// line written right after re-enumeration may be lost (as on hardware),
	// so reset until one arrives; each try is bounded.
	prober.reenum = true
	deadline := time.Now().Add(15 * time.Second)
	for {
		require.True(t, time.Now().Before(deadline), "never saw a boot line after re-enumeration")
		require.NoError(t, tg.Reset(ctx))
		require.NoError(t, console.SetReadDeadline(time.Now().Add(time.Second)))
		line, err := bufio.NewReader(console).ReadString('\n')
		if err == nil {
			assert.Contains(t, line, "boot: ddagent")
			break
		}
		require.ErrorIs(t, err, os.ErrDeadlineExceeded, "only a timeout may interrupt, not a lab error")
	}
	assert.GreaterOrEqual(t, console.Reopens(), 1)
	t.Logf("prober calls: %v; console re-opened %d times", prober.log(), console.Reopens())
}

func needOpenOCD(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openocd"); err != nil {
		t.Skip("openocd not installed: ", err)
	}
}

// TestStartWithRealOpenOCD runs the OpenOCD prober against the real openocd
// with the dummy adapter: the flash runs a real OpenOCD whose "program" is
// shadowed by a Tcl procedure (no chip to write; see program-shadow.cfg) and
// the resets run real OpenOCD one-shot and Tcl RPC sessions.
func TestStartWithRealOpenOCD(t *testing.T) {
	needOpenOCD(t)
	for _, via := range []string{ResetOneShot, ResetRPC} {
		t.Run(via, func(t *testing.T) {
			b := newBench(t)
			elf := filepath.Join(t.TempDir(), "ddagent.elf")
			require.NoError(t, os.WriteFile(elf, []byte("image"), 0o644))
			var log syncbuf.Buffer
			tg, err := New(Config{Board: b.board(dummyCfg, shadowCfg), ELF: elf, ResetVia: via, Retry: fastRetry, Log: &log})
			require.NoError(t, err)
			defer tg.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, tg.Start(ctx), log.String())
			assert.Contains(t, log.String(), "shadow-program: "+elf+" | verify exit", "flashed without reset: Start resets after opening ports")
			require.NoError(t, tg.Reset(ctx))

			fw := firmwareSide(t, b.console.B)
			_, err = fw.Write([]byte("> \r\n"))
			require.NoError(t, err)
			assert.Equal(t, "> \r\n", readLine(t, tg.Console().(*serialport.Stream), 5*time.Second))

			info := tg.Info()
			assert.Equal(t, "board", info.Kind)
			assert.Equal(t, "bench-1", info.Name)
			assert.Contains(t, info.Version, "Open On-Chip Debugger")
			assert.Equal(t, elf, info.Firmware)
			assert.Equal(t, "DUMMY0001", info.Extra["probe_serial"])
			assert.Equal(t, via, info.Extra["reset"])
			assert.Equal(t, b.module.A, info.Extra["transport_port"])
		})
	}
}

// TestStartFlashFailureIsLabError: the real OpenOCD cannot program the dummy
// target; Start reports a lab error quoting OpenOCD and opens no port.
func TestStartFlashFailureIsLabError(t *testing.T) {
	needOpenOCD(t)
	b := newBench(t)
	elf := filepath.Join(t.TempDir(), "ddagent.elf")
	require.NoError(t, os.WriteFile(elf, bytes.Repeat([]byte("x"), 64), 0o644))
	tg, err := New(Config{Board: b.board(dummyCfg), ELF: elf, Retry: fastRetry})
	require.NoError(t, err)
	defer tg.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = tg.Start(ctx)
	require.ErrorIs(t, err, harness.ErrLab)
	assert.Contains(t, err.Error(), "bench-1")
	assert.Contains(t, err.Error(), "Programming Failed")
	assert.Nil(t, tg.Console())
}

func TestStartMissingPortIsLabError(t *testing.T) {
	b := newBench(t)
	cfg := b.board("unused.cfg")
	cfg.Console.Port = filepath.Join(t.TempDir(), "ttyACM9")
	prober := &bootingProber{t: t}
	tg, err := New(Config{Board: cfg, SkipFlash: true, Prober: prober, Retry: serialport.Retry{Attempts: 3, Backoff: time.Millisecond}})
	require.NoError(t, err)
	defer tg.Close()
	err = tg.Start(context.Background())
	require.ErrorIs(t, err, harness.ErrLab)
	assert.Contains(t, err.Error(), "ttyACM9")
	assert.Contains(t, err.Error(), "gave up after 3 attempts")
	assert.NotContains(t, prober.log(), "reset", "no reset when the console cannot be opened")
}

func TestNetworkBoardHasNoTransport(t *testing.T) {
	b := newBench(t)
	cfg := b.board("unused.cfg")
	cfg.Transport = hwmap.Transport{Kind: hwmap.TransportNetwork}
	cfg.BrokerListen = "10.0.0.2:8883"
	fw := firmwareSide(t, b.console.B)
	tg, err := New(Config{Board: cfg, SkipFlash: true, Prober: &bootingProber{t: t, firmware: func() io.Writer { return fw }}, Retry: fastRetry})
	require.NoError(t, err)
	defer tg.Close()
	require.NoError(t, tg.Start(context.Background()))
	assert.Nil(t, tg.Transport())
	assert.Equal(t, "10.0.0.2:8883", tg.Info().Extra["broker_listen"])
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := hwmap.Board{ID: "b", Console: hwmap.Serial{Port: "/dev/ttyACM0"}, Transport: hwmap.Transport{Kind: hwmap.TransportNetwork}}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no board", Config{ELF: "x"}, "no board"},
		{"no console", Config{Board: hwmap.Board{ID: "b"}, ELF: "x"}, "no console port"},
		{"no elf", Config{Board: good}, "no firmware ELF"},
		{"module without port", Config{Board: hwmap.Board{ID: "b", Console: good.Console, Transport: hwmap.Transport{Kind: hwmap.TransportModule}}, ELF: "x"}, "no port"},
		{"bad reset method", Config{Board: good, ELF: "x", ResetVia: "power-cycle"}, "unknown reset method"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
