package rsptest

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
)

// TestBannerBootsFromKernel checks the helper itself: the image built here,
// given to QEMU with -kernel, prints its banner on USART2 and echoes input.
func TestBannerBootsFromKernel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	img, err := BuildBanner(ctx, t.TempDir(), "rsptest: up")
	if errors.Is(err, ErrNoToolchain) {
		t.Skip(err)
	}
	require.NoError(t, err)
	info, err := os.Stat(img.Bin)
	require.NoError(t, err)
	assert.Less(t, info.Size(), int64(512), "the image stays tiny")

	q, err := StartQEMU(ctx, QEMUConfig{Kernel: img.ELF, Monitor: true, Paused: true})
	if errors.Is(err, ErrNoQEMU) {
		t.Skip(err)
	}
	require.NoError(t, err)
	t.Cleanup(func() { q.Close() })

	status, err := q.HMP(ctx, "info status")
	require.NoError(t, err)
	assert.Contains(t, status, "paused")
	_, err = q.HMP(ctx, "cont")
	require.NoError(t, err)

	require.NoError(t, q.Console.SetReadDeadline(time.Now().Add(10*time.Second)))
	r := bufio.NewReader(q.Console)
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "rsptest: up\r\n", line)

	_, err = q.Console.Write([]byte("echo me\n"))
	require.NoError(t, err)
	echo, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "echo me\n", echo)

	status, err = q.HMP(ctx, "info status")
	require.NoError(t, err)
	assert.True(t, strings.Contains(status, "running"), status)
}

func TestBuildBannerRejectsQuotes(t *testing.T) {
	_, err := BuildBanner(context.Background(), t.TempDir(), `say "hi"`)
	require.Error(t, err)
}
