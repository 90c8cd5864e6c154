package replay

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testdata = "../../testdata"

var transcripts = []string{
	"monitor-telnet",
	"monitor-telnet-colour",
	"monitor-telnet-crlf",
	"monitor-telnet-svd-fail",
}

// The quoted-string form and the hexdump form of each recording must decode
// to the same bytes: that proves the .txt parser (escapes, literal quotes).
func TestTextAndHexFormsAgree(t *testing.T) {
	for _, name := range transcripts {
		t.Run(name, func(t *testing.T) {
			txt, err := ParseTranscriptFile(filepath.Join(testdata, name+".txt"))
			require.NoError(t, err)
			hx, err := ParseTranscriptFile(filepath.Join(testdata, name+".hex.txt"))
			require.NoError(t, err)
			require.Len(t, txt.Records, len(hx.Records))
			for i := range txt.Records {
				a, b := txt.Records[i], hx.Records[i]
				assert.Equal(t, b.Data, a.Data, "record at line %d", a.Line)
				assert.Equal(t, b.Dir, a.Dir)
				assert.Equal(t, b.At, a.At)
				assert.Equal(t, b.Chunks, a.Chunks)
			}
		})
	}
}

// Declared byte counts match the data, except where the recording says
// bytes were omitted or a placeholder replaced a path.
func TestDeclaredCounts(t *testing.T) {
	for _, name := range append(transcripts, "monitor-telnet-reset-macro") {
		t.Run(name, func(t *testing.T) {
			tr, err := ParseTranscriptFile(filepath.Join(testdata, name+".txt"))
			require.NoError(t, err)
			require.Equal(t, EOF, tr.Records[len(tr.Records)-1].Dir, "every session ends with Renode closing")
			for _, r := range tr.Records {
				if r.Dir == EOF {
					continue
				}
				if hasPlaceholder(r.Data) {
					continue // substituting a path changed the length
				}
				assert.Equal(t, r.Declared, len(r.Data)+r.Omitted, "record at line %d", r.Line)
			}
		})
	}
}

func hasPlaceholder(b []byte) bool {
	for _, p := range []string{"<OFFLINE_REPL>", "<FW_DIR>", "<TMP>", "<HOME>", "<RENODE_ROOT>"} {
		if bytes.Contains(b, []byte(p)) {
			return true
		}
	}
	return false
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		text string
	}{
		{"empty", ""},
		{"bad header", "[+ x] <- nobody\n"},
		{"data before record", "    \"abc\"\n"},
		{"unquoted data", "[+ 0.1s] -> client 1 bytes\n    abc\n"},
		{"bad escape", "[+ 0.1s] -> client 1 bytes\n    \"\\q\"\n"},
		{"short hex escape", "[+ 0.1s] -> client 1 bytes\n    \"\\x4\"\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTranscript(tc.name, []byte(tc.text), false)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "replay:")
		})
	}
}

// The monitor double sends the recorded bytes and rejects a client that
// deviates from the recording.
func TestMonitorServerRejectsDeviation(t *testing.T) {
	tr, err := ParseTranscriptFile(filepath.Join(testdata, "monitor-telnet-crlf.txt"))
	require.NoError(t, err)
	srv, err := StartMonitor(tr, nil, WithReadTimeout(2*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	conn, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer conn.Close()
	first := tr.Records[0].Data
	got := make([]byte, len(first))
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(conn, got)
	require.NoError(t, err)
	assert.Equal(t, first, got)
	_, err = conn.Write([]byte("mach create \"xyz\"\n"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Wait(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `client sent "mach create \"xyz\"\n"`)
}
