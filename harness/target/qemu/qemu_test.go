package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/link/console"
	"github.com/ddhil/ddhil/harness/target"
)

// testELF is testdata/testfw.c built by TestMain; skipReason says why not.
var testELF, skipReason string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "ddhil-qemu-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		switch {
		case Probe("") != nil:
			skipReason = "qemu-system-arm not installed (apt-get install qemu-system-arm)"
		default:
			if _, err := exec.LookPath("arm-none-eabi-gcc"); err != nil {
				skipReason = "arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)"
				break
			}
			elf := filepath.Join(dir, "testfw.elf")
			out, err := exec.Command("arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-Os",
				"-nostdlib", "-nostartfiles", "-ffreestanding", "-Wall", "-Wextra", "-Werror",
				"-T", "testdata/testfw.ld", "-o", elf, "testdata/testfw.c").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "qemu tests: building testfw: %v\n%s", err, out)
				return 1
			}
			testELF = elf
		}
		return m.Run()
	}()
	os.Exit(code)
}

func needQEMU(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// boot starts testfw and returns the target and a console on it.
func boot(t *testing.T, cfg Config) (*QEMU, *console.Console) {
	t.Helper()
	needQEMU(t)
	if cfg.Firmware == "" {
		cfg.Firmware = testELF
	}
	q, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, q.Close())
		if t.Failed() {
			t.Logf("qemu output:\n%s", q.stderr.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, q.Start(ctx))
	c := console.New(q.Console(), q.Console(), console.Config{})
	return q, c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func assertReaped(t *testing.T, pid int) {
	t.Helper()
	require.NotZero(t, pid)
	err := syscall.Kill(pid, 0)
	assert.ErrorIs(t, err, syscall.ESRCH, "qemu pid %d still exists", pid)
}

func TestBootEchoReset(t *testing.T) {
	q, c := boot(t, Config{})
	ctx := ctxT(t)

	_, err := c.Expect(ctx, console.Literal("testfw: boot=1"))
	require.NoError(t, err, "boot banner (no output lost before connect)")
	require.NoError(t, c.ExpectPrompt(ctx))
	out, err := c.Command(ctx, "hello", console.Literal("unknown: hello"))
	require.NoError(t, err)
	assert.Equal(t, []string{"unknown: hello"}, out)

	// The transport UART is serial0 = USART1.
	tr := q.Transport()
	tc := console.New(tr, tr, console.Config{NoPrompt: true})
	_, err = tc.Expect(ctx, console.Literal("testfw: transport"))
	require.NoError(t, err)
	require.NoError(t, tc.Send("ping"))
	_, err = tc.Expect(ctx, console.Literal("ping"))
	require.NoError(t, err)

	st, err := q.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, "running", st)

	// QMP system_reset reboots the guest; the sockets stay connected and
	// RAM outside the ELF's loaded sections survives (boot=2).
	require.NoError(t, q.Reset(ctx))
	_, err = c.Expect(ctx, console.Literal("testfw: boot=2"))
	require.NoError(t, err)
	// A reset the guest asks for (SYSRESETREQ) does not end QEMU.
	require.NoError(t, c.ExpectPrompt(ctx))
	require.NoError(t, c.Send("reset"))
	_, err = c.Expect(ctx, console.Literal("testfw: boot=3"))
	require.NoError(t, err)
	assert.NoError(t, q.Err())
	// QMP delivers its RESET events asynchronously to the console output.
	resets := func() int {
		n := 0
		for _, e := range q.Events() {
			if e.Event == "RESET" {
				n++
			}
		}
		return n
	}
	assert.Eventually(t, func() bool { return resets() == 2 }, 5*time.Second, 5*time.Millisecond,
		"QMP RESET events: %d", resets())

	info := q.Info()
	assert.Equal(t, "qemu", info.Kind)
	assert.Equal(t, "netduinoplus2", info.Name)
	assert.True(t, strings.HasPrefix(info.Version, "7."), "version %q", info.Version)

	pid := q.Pid()
	require.NoError(t, q.Close())
	require.NoError(t, q.Close(), "second Close")
	assertReaped(t, pid)
	assert.NoError(t, q.Wait(), "Close is a clean end")
	_, err = c.Expect(ctx, console.Literal("anything"))
	assert.ErrorIs(t, err, console.ErrClosed)
}

func TestLockupIsFirmwareCrash(t *testing.T) {
	q, c := boot(t, Config{})
	ctx := ctxT(t)
	require.NoError(t, c.ExpectPrompt(ctx))
	require.NoError(t, c.Send("crash"))
	_, err := c.Expect(ctx, console.Literal("testfw: hardfault"))
	require.NoError(t, err)
	select {
	case <-q.Done():
	case <-ctx.Done():
		t.Fatal("qemu did not exit after the lockup")
	}
	err = q.Wait()
	require.ErrorIs(t, err, harness.ErrFirmwareCrash)
	assert.NotErrorIs(t, err, harness.ErrLab)
	assert.Contains(t, err.Error(), "Lockup")
	assertReaped(t, q.Pid())
	// Control after the crash reports the crash.
	require.ErrorIs(t, q.Reset(ctx), harness.ErrFirmwareCrash)
	_, err = c.Expect(ctx, console.Literal("never"))
	assert.ErrorIs(t, err, console.ErrClosed)
}

func TestUnexpectedExitIsLabError(t *testing.T) {
	q, c := boot(t, Config{})
	ctx := ctxT(t)
	require.NoError(t, c.ExpectPrompt(ctx))
	// Someone else quits QEMU: not our Close, not a crash.
	_, err := q.qmp.Execute(ctx, "quit", nil)
	require.NoError(t, err)
	<-q.Done()
	err = q.Wait()
	require.ErrorIs(t, err, harness.ErrLab)
	assert.NotErrorIs(t, err, harness.ErrFirmwareCrash)
	assertReaped(t, q.Pid())
}

func TestStartErrors(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		needs   bool
		wantErr string
	}{
		{"missing binary", Config{Binary: "/nonexistent/qemu-system-arm", Firmware: "x.elf"}, false, "apt-get install qemu-system-arm"},
		{"missing firmware", Config{Firmware: "/nonexistent/fw.elf"}, true, "make -C firmware"},
		{"bad extra argument", Config{ExtraArgs: []string{"-no-such-option"}}, true, "no-such-option"},
		{"unknown machine", Config{Machine: "no-such-board"}, true, "unsupported machine type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needs {
				needQEMU(t)
				if tc.cfg.Firmware == "" {
					tc.cfg.Firmware = testELF
				}
			}
			q, err := New(tc.cfg)
			require.NoError(t, err)
			t.Cleanup(func() { _ = q.Close() })
			err = q.Start(ctxT(t))
			require.ErrorIs(t, err, harness.ErrLab)
			assert.Contains(t, err.Error(), tc.wantErr)
			if pid := q.Pid(); pid != 0 {
				assertReaped(t, pid)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"too many serials", Config{Serials: 8}},
		{"console outside serials", Config{Serials: 1, ConsoleSerial: 1}},
		{"transport outside serials", Config{Serials: 2, ConsoleSerial: 1, TransportSerial: 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			require.Error(t, err)
		})
	}
}

func TestStartTimeoutKillsQEMU(t *testing.T) {
	needQEMU(t)
	// A context that has ended before the serials are connected must leave
	// no process behind.
	q, err := New(Config{Firmware: testELF})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = q.Start(ctx)
	require.Error(t, err)
	require.ErrorIs(t, err, harness.ErrLab)
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)
	require.NoError(t, q.Close())
	if pid := q.Pid(); pid != 0 {
		assertReaped(t, pid)
	}
}

func TestClassifyExit(t *testing.T) {
	cases := []struct {
		name    string
		stderr  string
		closing bool
		run     string // shell snippet giving the exit
		crash   bool
		lab     bool
	}{
		{"lockup text", "qemu: fatal: Lockup\n", false, "exit 1", true, false},
		{"status 134", "", false, "exit 134", true, false},
		{"sigabrt", "", false, "kill -ABRT $$", true, false},
		{"our close", "", true, "kill -KILL $$", false, false},
		{"unexpected status 1", "boom", false, "exit 1", false, true},
		{"unexpected status 0", "", false, "exit 0", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := exec.Command("sh", "-c", tc.run).Run()
			got := classifyExit(err, tc.stderr, tc.closing)
			assert.Equal(t, tc.crash, errors.Is(got, harness.ErrFirmwareCrash), "%v", got)
			assert.Equal(t, tc.lab, errors.Is(got, harness.ErrLab), "%v", got)
			if !tc.crash && !tc.lab {
				assert.NoError(t, got)
			}
		})
	}
}

func TestParseXP(t *testing.T) {
	v, err := parseXP("000000002000017c: 0x000012ab\r\n")
	require.NoError(t, err)
	assert.Equal(t, uint32(0x12ab), v)
	_, err = parseXP("Cannot access memory")
	assert.Error(t, err)
}

// The reference firmware's ms counter, read through QMP while it runs,
// advances with it: the clock the session judges timing on.
func TestTickCounterClock(t *testing.T) {
	needQEMU(t)
	elf, err := filepath.Abs(filepath.Join("..", "..", "..", "firmware", "build", "qemu-netduinoplus2", "ddagent.elf"))
	require.NoError(t, err)
	if _, err := os.Stat(elf); err != nil {
		t.Skip("reference firmware not built (make -C firmware)")
	}
	q, err := New(Config{Firmware: elf})
	require.NoError(t, err)
	defer q.Close()
	require.NoError(t, q.Start(ctxT(t)))
	require.True(t, q.HasClock(), "the reference agent has ticks_lo")
	clk, ok := target.ClockOf(q)
	require.True(t, ok)
	assert.True(t, clk.ClockInfo().FirmwareDerived)
	first, err := clk.TargetTime(ctxT(t))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		now, err := clk.TargetTime(ctxT(t))
		return err == nil && now >= first+200*time.Millisecond
	}, 10*time.Second, 20*time.Millisecond, "the counter advances while the firmware runs")

	_, err = New(Config{Firmware: elf, TickHz: -1})
	assert.Error(t, err)
	bad, err := New(Config{Firmware: elf, TickSymbol: "no_such_counter"})
	require.NoError(t, err)
	assert.ErrorContains(t, bad.Start(ctxT(t)), "no_such_counter")
	none, err := New(Config{Firmware: elf, TickSymbol: "-"})
	require.NoError(t, err)
	_, ok = target.ClockOf(none)
	assert.False(t, ok, `"-" turns the clock off`)
}
