package serialport

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/link/serialport/serialtest"
)

func startPair(t *testing.T) *serialtest.Pair {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := serialtest.Start(ctx, t.TempDir(), "tty")
	if errors.Is(err, serialtest.ErrNoSocat) {
		t.Skip(err)
	}
	require.NoError(t, err)
	t.Cleanup(p.Stop)
	return p
}

func openT(t *testing.T, spec string) Port {
	t.Helper()
	p, err := Open(spec, 115200)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// readN reads exactly n bytes within d.
func readN(t *testing.T, p Port, n int, d time.Duration) string {
	t.Helper()
	require.NoError(t, p.SetReadDeadline(time.Now().Add(d)))
	buf := make([]byte, n)
	_, err := io.ReadFull(p, buf)
	require.NoError(t, err)
	return string(buf)
}

func TestPtyRoundTrip(t *testing.T) {
	pair := startPair(t)
	a, b := openT(t, pair.A), openT(t, pair.B)
	assert.Equal(t, pair.A, a.Name())

	msg := "AT+CIPSEND=5\r\n\x00\xff binary too"
	_, err := a.Write([]byte(msg))
	require.NoError(t, err)
	assert.Equal(t, msg, readN(t, b, len(msg), 5*time.Second))

	_, err = b.Write([]byte("> "))
	require.NoError(t, err)
	assert.Equal(t, "> ", readN(t, a, 2, 5*time.Second))
}

func TestReadDeadline(t *testing.T) {
	pair := startPair(t)
	a := openT(t, pair.A)

	tests := []struct {
		name string
		in   time.Duration
	}{
		{"short", 150 * time.Millisecond},
		{"past", -time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, a.SetReadDeadline(time.Now().Add(tc.in)))
			start := time.Now()
			n, err := a.Read(make([]byte, 8))
			assert.Zero(t, n)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			var ne net.Error
			require.ErrorAs(t, err, &ne)
			assert.True(t, ne.Timeout())
			assert.NotErrorIs(t, err, harness.ErrLab, "a timeout is not a lab failure")
			assert.GreaterOrEqual(t, time.Since(start), tc.in)
			assert.Less(t, time.Since(start), max(tc.in, 0)+time.Second)
		})
	}
}

// TestDeadlineSetDuringRead: like a net.Conn, a deadline set while a Read is
// blocked (with no deadline) ends that Read.
func TestDeadlineSetDuringRead(t *testing.T) {
	pair := startPair(t)
	a := openT(t, pair.A)
	require.NoError(t, a.SetReadDeadline(time.Time{}))
	errc := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		errc <- err
	}()
	require.NoError(t, a.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	case <-time.After(3 * time.Second):
		t.Fatal("read did not notice the new deadline")
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	pair := startPair(t)
	a, err := Open(pair.A, 115200)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		errc <- err
	}()
	require.NoError(t, a.Close())
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, os.ErrClosed)
		assert.NotErrorIs(t, err, harness.ErrLab, "closing our own port is not a lab failure")
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	require.NoError(t, a.Close(), "second Close is a no-op")
	_, err = a.Write([]byte("x"))
	assert.ErrorIs(t, err, os.ErrClosed)
}

// TestOtherSideDiesIsLabError: socat exiting hangs up the pty as a USB port
// being unplugged or an emulator exiting would.
func TestOtherSideDiesIsLabError(t *testing.T) {
	tests := []struct {
		name string
		stop func(*serialtest.Pair)
	}{
		{"sigterm", (*serialtest.Pair).Stop},
		{"sigkill", (*serialtest.Pair).Kill},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pair := startPair(t)
			a := openT(t, pair.A)
			errc := make(chan error, 1)
			go func() {
				_, err := a.Read(make([]byte, 16))
				errc <- err
			}()
			tc.stop(pair)
			select {
			case err := <-errc:
				require.ErrorIs(t, err, harness.ErrLab)
				assert.ErrorIs(t, err, ErrPortLost)
				assert.Contains(t, err.Error(), pair.A, "the error names the port")
				t.Logf("read after hang-up: %v", err)
			case <-time.After(5 * time.Second):
				t.Fatal("read did not notice the hang-up")
			}
			_, err := a.Write([]byte("anyone?"))
			assert.ErrorIs(t, err, ErrPortLost)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(regular, nil, 0o644))
	tests := []struct {
		name, spec string
		baud       int
		lab        bool
		want       string
	}{
		{"missing device", filepath.Join(dir, "ttyACM9"), 115200, true, "ttyACM9"},
		{"not a tty", regular, 115200, true, "file"},
		{"empty", "", 115200, false, "empty port name"},
		{"bad baud", "/dev/ttyACM0", 0, false, "bad baud rate"},
		{"tcp without port", "tcp://localhost", 0, false, "bad spec"},
		{"unknown scheme", "rfc2217://host:2000", 0, false, "only device paths"},
		{"tcp refused", "tcp://127.0.0.1:1", 0, true, "tcp://127.0.0.1:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Open(tc.spec, tc.baud)
			require.Error(t, err)
			assert.Nil(t, p)
			assert.Equal(t, tc.lab, errors.Is(err, harness.ErrLab), err.Error())
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestTCPPort uses a real loopback listener standing in for ser2net in raw
// mode (bytes in, bytes out, no telnet).
func TestTCPPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	server := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			server <- c
		}
	}()
	spec := "tcp://" + l.Addr().String()
	p := openT(t, spec)
	srv := <-server
	defer srv.Close()

	_, err = p.Write([]byte("hello\r\n"))
	require.NoError(t, err)
	line, err := bufio.NewReader(srv).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "hello\r\n", line)
	_, err = srv.Write([]byte("OK\r\n"))
	require.NoError(t, err)
	assert.Equal(t, "OK\r\n", readN(t, p, 4, 5*time.Second))

	require.NoError(t, p.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, err = p.Read(make([]byte, 1))
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	assert.NotErrorIs(t, err, harness.ErrLab)

	srv.Close() // ser2net dropped us
	require.NoError(t, p.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = p.Read(make([]byte, 1))
	require.ErrorIs(t, err, ErrPortLost)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.Contains(t, err.Error(), spec)
}
