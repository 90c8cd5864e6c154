package tinygoagent

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The first look after a write shows no reply that came after it, even
// when the reply is already there; the next look does. Bytes that came
// before the write stay visible.
func TestUARTFirstLookAfterWrite(t *testing.T) {
	host, module := net.Pipe()
	defer module.Close()
	u := newUART(context.Background(), host)
	defer u.close()

	_, err := module.Write([]byte("ready\r\n")) // before the driver writes
	require.NoError(t, err)
	waitArrived(t, u)

	go func() {
		buf := make([]byte, 4)
		if _, err := io.ReadFull(module, buf); err == nil {
			_, _ = module.Write([]byte("\r\nOK\r\n"))
		}
	}()
	_, err = u.Write([]byte("AT\r\n"))
	require.NoError(t, err)
	waitArrived(t, u)
	assert.Equal(t, 7, u.Buffered(), "first look: only what came before the write")
	assert.Equal(t, 13, u.Buffered(), "next look: the reply too")
	p := make([]byte, 13)
	n, err := u.Read(p)
	require.NoError(t, err)
	assert.Equal(t, "ready\r\n\r\nOK\r\n", string(p[:n]))
	assert.Zero(t, u.Buffered())
}

func waitArrived(t *testing.T, u *uart) {
	t.Helper()
	select {
	case <-u.Arrived():
	case <-time.After(5 * time.Second):
		t.Fatal("nothing arrived")
	}
}
