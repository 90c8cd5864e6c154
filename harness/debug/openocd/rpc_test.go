package openocd

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
)

// pipePeer plays OpenOCD's side of the Tcl RPC framing over net.Pipe: it
// answers each request frame with the frames handler returns (notifications
// first, as OpenOCD interleaves them, then the reply).
func pipePeer(t *testing.T, handler func(req string) []string) *RPC {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		br := bufio.NewReader(server)
		for {
			req, err := br.ReadString(frameEnd)
			if err != nil {
				return
			}
			for _, f := range handler(strings.TrimSuffix(req, "\x1a")) {
				if _, err := server.Write([]byte(f + "\x1a")); err != nil {
					return
				}
			}
		}
	}()
	r := NewRPC(client)
	t.Cleanup(func() { r.Close(); server.Close() })
	return r
}

func TestRPCCallFraming(t *testing.T) {
	var got []string
	r := pipePeer(t, func(req string) []string {
		got = append(got, req)
		switch {
		case strings.Contains(req, `reset\ halt`):
			return []string{"type target_reset mode halt\r\n", "type target_event event halted\r\n", "0 "}
		case strings.Contains(req, "targets"):
			return []string{"0 line one\nline {two} 0x1a-free $x"}
		case strings.Contains(req, "mdw"):
			return []string{`1 invalid command name "mdw"`}
		}
		return []string{"garbage"}
	})
	ctx := context.Background()

	require.NoError(t, r.Reset(ctx, ResetHalt))
	assert.Equal(t, `set ddhil_c [catch reset\ halt ddhil_r]; format {%d %s} $ddhil_c $ddhil_r`, got[0])
	assert.Equal(t, Notification{Type: "target_reset", Key: "mode", Value: "halt", Raw: "type target_reset mode halt"}, <-r.Notifications())
	assert.Equal(t, Notification{Type: "target_event", Key: "event", Value: "halted", Raw: "type target_event event halted"}, <-r.Notifications())

	res, err := r.Call(ctx, "targets")
	require.NoError(t, err)
	assert.Equal(t, "line one\nline {two} 0x1a-free $x", res)

	_, err = r.Call(ctx, "mdw 0")
	var te *TclError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 1, te.Code)
	assert.Equal(t, `invalid command name "mdw"`, te.Message)
	assert.NotErrorIs(t, err, harness.ErrLab, "Call leaves judging a failed command to the caller")

	_, err = r.Call(ctx, "something")
	require.ErrorIs(t, err, harness.ErrLab)
	assert.Contains(t, err.Error(), "malformed reply")

	_, err = r.Call(ctx, "bad\x1abyte")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "0x1a")
}

func TestRPCConnectionLoss(t *testing.T) {
	client, server := net.Pipe()
	r := NewRPC(client)
	defer r.Close()
	go func() {
		br := bufio.NewReader(server)
		_, _ = br.ReadString(frameEnd)
		server.Close() // OpenOCD died mid-command
	}()
	_, err := r.Call(context.Background(), "resume")
	require.Error(t, err)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.Contains(t, err.Error(), "connection lost")
	_, err = r.Call(context.Background(), "version")
	assert.ErrorIs(t, err, harness.ErrLab, "later calls fail fast")
}

func TestRPCContextTimeout(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	go func() { // reads requests, never answers
		br := bufio.NewReader(server)
		for {
			if _, err := br.ReadString(frameEnd); err != nil {
				return
			}
		}
	}()
	r := NewRPC(client)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := r.Call(ctx, "halt")
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, harness.ErrLab)
}

func TestRPCNotificationOverflowDoesNotBlockReplies(t *testing.T) {
	r := pipePeer(t, func(req string) []string {
		frames := make([]string, 0, 301)
		for range 300 {
			frames = append(frames, "type target_event event resume-start\r\n")
		}
		return append(frames, "0 ok")
	})
	res, err := r.Call(context.Background(), "resume")
	require.NoError(t, err)
	assert.Equal(t, "ok", res)
	assert.Equal(t, int64(300-cap(r.notes)), r.Dropped())
}

func TestParseNotification(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  Notification
		ok    bool
	}{
		{"event", "type target_event event gdb-attach\r\n", Notification{Type: "target_event", Key: "event", Value: "gdb-attach", Raw: "type target_event event gdb-attach"}, true},
		{"state", "type target_state state running\r\n", Notification{Type: "target_state", Key: "state", Value: "running", Raw: "type target_state state running"}, true},
		{"value with spaces", "type target_trace data 01 02 03\r\n", Notification{Type: "target_trace", Key: "data", Value: "01 02 03", Raw: "type target_trace data 01 02 03"}, true},
		{"reply", "0 halted", Notification{}, false},
		{"reply starting like one", "type target_event event x", Notification{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseNotification(tc.frame)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestReadMemoryArguments(t *testing.T) {
	r := pipePeer(t, func(req string) []string { return []string{"0 0x1 0x2"} })
	tests := []struct {
		name         string
		width, count int
		wantErr      string
	}{
		{"bad width", 12, 1, "width 12"},
		{"zero count", 32, 0, "count 0"},
		{"short reply", 32, 3, "got 2 values, want 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.ReadMemory(context.Background(), 0x20000000, tc.width, tc.count)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}
