package serialport

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/debug/gdbrsp/rsptest"
)

const referenceELF = "../../../firmware/build/qemu-netduinoplus2/ddagent.elf"

// startPtyQEMU starts QEMU paused with USART2 on a pty, the way a reference
// harness would: open the pty first, then "cont", so no output is lost (QEMU
// 7.2 drops guest output while nobody holds the pty open).
func startPtyQEMU(t *testing.T, ctx context.Context, kernel string) (*rsptest.QEMU, Port) {
	t.Helper()
	q, err := rsptest.StartQEMU(ctx, rsptest.QEMUConfig{Kernel: kernel, Paused: true, ConsolePTY: true, Monitor: true})
	if errors.Is(err, rsptest.ErrNoQEMU) {
		t.Skip(err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })
	require.True(t, strings.HasPrefix(q.ConsolePTY, "/dev/pts/"), q.ConsolePTY)
	p := openT(t, q.ConsolePTY)
	_, err = q.HMP(ctx, "cont")
	require.NoError(t, err)
	return q, p
}

func TestQEMUPtyConsole(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img, err := rsptest.BuildBanner(ctx, t.TempDir(), "serialport: pty banner")
	if errors.Is(err, rsptest.ErrNoToolchain) {
		t.Skip(err)
	}
	require.NoError(t, err)
	q, p := startPtyQEMU(t, ctx, img.ELF)

	require.NoError(t, p.SetReadDeadline(time.Now().Add(10*time.Second)))
	r := bufio.NewReader(p)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "serialport: pty banner\r\n", line, "the first byte the guest wrote is there")

	_, err = p.Write([]byte("echo\n"))
	require.NoError(t, err)
	line, err = r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "echo\n", line)

	// QEMU going away hangs up the pty: a lab error naming the port.
	q.Close()
	_, err = r.ReadByte()
	require.ErrorIs(t, err, harness.ErrLab)
	assert.ErrorIs(t, err, ErrPortLost)
	assert.Contains(t, err.Error(), q.ConsolePTY)
}

func TestQEMUPtyReferenceFirmware(t *testing.T) {
	if _, err := os.Stat(referenceELF); err != nil {
		t.Skipf("reference firmware not built (%v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, p := startPtyQEMU(t, ctx, referenceELF)
	require.NoError(t, p.SetReadDeadline(time.Now().Add(20*time.Second)))
	r := bufio.NewReader(p)
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err, "no boot line; last: %q", line)
		if strings.Contains(line, "boot: ddagent") {
			return
		}
	}
}
