package serialport

import (
	"context"
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
)

// TestStreamSurvivesReEnumeration: socat goes away (the port vanishes, as a
// USB CDC port does while the board resets) and comes back on the same
// path; the reader keeps its Stream and receives what is sent afterwards.
func TestStreamSurvivesReEnumeration(t *testing.T) {
	pair := startPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	failed := make(chan int, 64)
	retry := Retry{Attempts: 50, Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		OnAttempt: func(n int, err error) { failed <- n }}
	s, err := OpenStream(ctx, pair.A, 115200, retry)
	require.NoError(t, err)
	defer s.Close()

	b := openT(t, pair.B)
	_, err = b.Write([]byte("before\n"))
	require.NoError(t, err)
	assert.Equal(t, "before\n", readN(t, s, 7, 5*time.Second))

	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 6)
		_ = s.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err := io.ReadFull(s, buf)
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- string(buf)
	}()

	pair.Stop()
	b.Close()
	// Wait until the stream has seen the loss and failed to re-open at least
	// once (the path is gone), then bring the "device" back.
	select {
	case <-failed:
	case <-ctx.Done():
		t.Fatal("the stream never tried to re-open")
	}
	require.NoError(t, pair.Restart(ctx))
	b2 := openT(t, pair.B)
	// Until the stream has re-opened, bytes written to B are lost (as with a
	// real port), so write until they arrive.
	for {
		_, err := b2.Write([]byte("after\n"))
		require.NoError(t, err)
		select {
		case msg := <-got:
			assert.Equal(t, "after\n", msg)
			assert.Equal(t, 1, s.Reopens())
			return
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("no data after re-enumeration")
		}
	}
}

func TestStreamGivesUpAsLabError(t *testing.T) {
	pair := startPair(t)
	var attempts atomic.Int32
	s, err := OpenStream(context.Background(), pair.A, 115200,
		Retry{Attempts: 3, Backoff: 5 * time.Millisecond, OnAttempt: func(int, error) { attempts.Add(1) }})
	require.NoError(t, err)
	defer s.Close()
	pair.Stop()
	require.NoError(t, s.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = s.Read(make([]byte, 1))
	require.ErrorIs(t, err, harness.ErrLab)
	assert.ErrorIs(t, err, ErrPortLost)
	assert.Contains(t, err.Error(), "gave up after 3 attempts")
	assert.Contains(t, err.Error(), pair.A)
	assert.Equal(t, int32(3), attempts.Load())
	_, err = s.Write([]byte("x"))
	assert.ErrorIs(t, err, ErrPortLost, "the failure sticks")
}

func TestStreamWithoutRetryReportsLossAtOnce(t *testing.T) {
	pair := startPair(t)
	s, err := OpenStream(context.Background(), pair.A, 115200, Retry{Attempts: 1})
	require.NoError(t, err)
	defer s.Close()
	pair.Stop()
	_, err = s.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrPortLost)
	assert.Equal(t, 0, s.Reopens())
}

func TestStreamExplicitReopenAndClose(t *testing.T) {
	pair := startPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := OpenStream(ctx, pair.A, 115200, DefaultRetry)
	require.NoError(t, err)
	b := openT(t, pair.B)

	require.NoError(t, s.Reopen(ctx))
	assert.Equal(t, 1, s.Reopens())
	_, err = b.Write([]byte("hi"))
	require.NoError(t, err)
	assert.Equal(t, "hi", readN(t, s, 2, 5*time.Second))

	errc := make(chan error, 1)
	go func() {
		_ = s.SetReadDeadline(time.Time{})
		_, err := s.Read(make([]byte, 1))
		errc <- err
	}()
	require.NoError(t, s.Close())
	select {
	case err := <-errc:
		assert.True(t, errors.Is(err, os.ErrClosed), "%v", err)
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not unblock the stream's reader")
	}
}

func TestOpenRetryDoesNotRetryBadArguments(t *testing.T) {
	var attempts int
	_, err := OpenRetry(context.Background(), "/dev/ttyACM0", -1, Retry{Attempts: 5, OnAttempt: func(int, error) { attempts++ }})
	require.Error(t, err)
	assert.NotErrorIs(t, err, harness.ErrLab)
	assert.Zero(t, attempts)
}

func TestOpenRetryHonoursContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := OpenRetry(ctx, t.TempDir()+"/ttyACM7", 115200, Retry{Attempts: 1000, Backoff: 20 * time.Millisecond})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.Less(t, time.Since(start), 2*time.Second)
}
