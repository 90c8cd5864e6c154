package gdbrsp_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/debug/gdbrsp"
	"github.com/ddhil/ddhil/harness/debug/gdbrsp/rsptest"
)

// referenceELF is the project's reference firmware for QEMU, used when built.
const referenceELF = "../../../firmware/build/qemu-netduinoplus2/ddagent.elf"

// bootQEMU builds the banner image and starts a paused QEMU with an empty
// flash, its gdbstub and USART2 connected to the test.
func bootQEMU(t *testing.T, ctx context.Context, banner string) (rsptest.Image, *rsptest.QEMU) {
	t.Helper()
	img, err := rsptest.BuildBanner(ctx, t.TempDir(), banner)
	if errors.Is(err, rsptest.ErrNoToolchain) {
		t.Skip(err)
	}
	require.NoError(t, err)
	q, err := rsptest.StartQEMU(ctx, rsptest.QEMUConfig{Paused: true, GDB: true})
	if errors.Is(err, rsptest.ErrNoQEMU) {
		t.Skip(err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	return img, q
}

func readLine(t *testing.T, r *bufio.Reader, q *rsptest.QEMU, within time.Duration) string {
	t.Helper()
	require.NoError(t, q.Console.SetReadDeadline(time.Now().Add(within)))
	line, err := r.ReadString('\n')
	require.NoError(t, err, "console so far: %q", line)
	return line
}

// TestQEMULoadRunInterrupt is the whole flow against QEMU 7.2's real stub:
// handshake, M-load into empty flash, system_reset through qRcmd, continue,
// banner on USART2, echo, interrupt, memory read-back, detach.
func TestQEMULoadRunInterrupt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	img, q := bootQEMU(t, ctx, "ddhil-test: gdb load")
	c := gdbrsp.NewClient(q.GDB, gdbrsp.Options{Stub: gdbrsp.StubQEMU})
	defer c.Close()

	require.NoError(t, c.Handshake(ctx))
	assert.Equal(t, 0x1000, c.PacketSize(), "QEMU 7.2 advertises PacketSize=1000")
	assert.False(t, c.NoAck(), "QEMU 7.2 does not offer QStartNoAckMode")
	sr, err := c.StopReason(ctx)
	require.NoError(t, err)
	assert.True(t, sr.Stopped(), sr.Raw)

	empty, err := c.ReadMemory(ctx, 0x08000000, 8)
	require.NoError(t, err)
	assert.Equal(t, make([]byte, 8), empty, "no -kernel: flash starts empty")

	start := time.Now()
	res, err := c.LoadELF(ctx, img.ELF)
	require.NoError(t, err)
	t.Logf("LoadELF: %d segments, %d bytes in %s", len(res.Segments), res.Bytes, time.Since(start))
	assert.Equal(t, uint64(0x08000000), res.VectorTable)
	bin, err := os.ReadFile(img.Bin)
	require.NoError(t, err)
	flash, err := c.ReadMemory(ctx, 0x08000000, len(bin))
	require.NoError(t, err)
	assert.Equal(t, bin, flash, "flash holds the image, .data at its load address")

	require.NoError(t, c.Continue(ctx))
	console := bufio.NewReader(q.Console)
	assert.Equal(t, "ddhil-test: gdb load\r\n", readLine(t, console, q, 10*time.Second))
	_, err = q.Console.Write([]byte("ping\n"))
	require.NoError(t, err)
	assert.Equal(t, "ping\n", readLine(t, console, q, 5*time.Second))

	sr, err = c.Interrupt(ctx)
	require.NoError(t, err)
	assert.True(t, sr.Stopped())
	assert.Equal(t, 2, sr.Signal, "SIGINT after 0x03: %s", sr.Raw)

	word, err := c.ReadMemory(ctx, 0x20000000, 4)
	require.NoError(t, err)
	assert.Equal(t, uint32(rsptest.Marker), binary.LittleEndian.Uint32(word), ".data was copied from flash to RAM by the image")

	status, err := c.Monitor(ctx, "info status")
	require.NoError(t, err)
	assert.Contains(t, status, "paused")

	out, err := c.Monitor(ctx, "no_such_hmp_command")
	require.NoError(t, err, "QEMU reports an unknown HMP command as output, not as an error")
	assert.Contains(t, out, "unknown command")

	// X is not implemented by QEMU 7.2's stub: an empty reply.
	err = c.WriteMemoryBinary(ctx, 0x20001000, []byte{1, 2, 3})
	assert.ErrorIs(t, err, gdbrsp.ErrUnsupported)

	require.NoError(t, c.Detach(ctx))
	// Detached, the guest runs on: the echo still works.
	_, err = q.Console.Write([]byte("after detach\n"))
	require.NoError(t, err)
	assert.Equal(t, "after detach\n", readLine(t, console, q, 5*time.Second))
}

// TestQEMUStartAtRegisters loads with the Renode strategy (set SP/PC/xPSR
// from the vector table through P, after reading target.xml) against QEMU's
// real stub, since Renode cannot run here.
func TestQEMUStartAtRegisters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	img, q := bootQEMU(t, ctx, "ddhil-test: registers")
	c := gdbrsp.NewClient(q.GDB, gdbrsp.Options{Stub: gdbrsp.StubRenode})
	defer c.Close()
	require.NoError(t, c.Handshake(ctx))

	regs, err := c.RegisterNumbers(ctx)
	require.NoError(t, err)
	assert.Equal(t, 13, regs["sp"])
	assert.Equal(t, 15, regs["pc"])
	t.Logf("QEMU xpsr regnum = %d", regs["xpsr"])

	_, err = c.LoadELF(ctx, img.ELF)
	require.NoError(t, err)
	vec, err := c.ReadMemory(ctx, 0x08000000, 8)
	require.NoError(t, err)
	pc, err := c.ReadRegister(ctx, regs["pc"])
	require.NoError(t, err)
	assert.Equal(t, binary.LittleEndian.Uint32(vec[4:])&^1, pc)
	sp, err := c.ReadRegister(ctx, regs["sp"])
	require.NoError(t, err)
	assert.Equal(t, binary.LittleEndian.Uint32(vec[:4]), sp)

	require.NoError(t, c.Continue(ctx))
	assert.Equal(t, "ddhil-test: registers\r\n", readLine(t, bufio.NewReader(q.Console), q, 10*time.Second))
	_, err = c.Interrupt(ctx)
	require.NoError(t, err)
}

// TestQEMUReferenceFirmware loads the reference agent when it has been built.
func TestQEMUReferenceFirmware(t *testing.T) {
	if _, err := os.Stat(referenceELF); err != nil {
		t.Skipf("reference firmware not built (%v); make firmware", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, q := bootQEMU(t, ctx, "unused")
	c := gdbrsp.NewClient(q.GDB, gdbrsp.Options{Stub: gdbrsp.StubQEMU})
	defer c.Close()
	require.NoError(t, c.Handshake(ctx))
	_, err := c.LoadELF(ctx, referenceELF)
	require.NoError(t, err)
	require.NoError(t, c.Continue(ctx))
	console := bufio.NewReader(q.Console)
	deadline := time.Now().Add(20 * time.Second)
	for {
		require.True(t, time.Now().Before(deadline), "no boot line within 20s")
		line := readLine(t, console, q, time.Until(deadline))
		if strings.Contains(line, "boot: ddagent") {
			break
		}
	}
	_, err = c.Interrupt(ctx)
	require.NoError(t, err)
}

func TestLoadELFBadFiles(t *testing.T) {
	dir := t.TempDir()
	junk := dir + "/junk.elf"
	require.NoError(t, os.WriteFile(junk, []byte(strings.Repeat("not an elf ", 20)), 0o644))
	tests := []struct{ name, path, want string }{
		{"missing", dir + "/none.elf", "no such file"},
		{"not an elf", junk, "bad magic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gdbrsp.ReadSegments(tc.path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}
