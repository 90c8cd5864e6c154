package session

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The stepping gate opens only after the transport has been silent for the
// quiet time, counted from the last byte in either direction.
func TestActivityQuiet(t *testing.T) {
	var buf bytes.Buffer
	a := newActivity(&buf)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := a.Write([]byte("AT\r\n"))
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, a.quiet(ctx, 50*time.Millisecond))
	assert.GreaterOrEqual(t, time.Since(start), 45*time.Millisecond, "a write resets the quiet time")

	p := make([]byte, 2)
	_, err = a.Read(p)
	require.NoError(t, err)
	start = time.Now()
	require.NoError(t, a.quiet(ctx, 50*time.Millisecond))
	assert.GreaterOrEqual(t, time.Since(start), 45*time.Millisecond, "so does a read")

	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	a.touch()
	assert.ErrorIs(t, a.quiet(cctx, time.Hour), context.Canceled)
}
