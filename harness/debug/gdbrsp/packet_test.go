package gdbrsp

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFrame(t *testing.T) {
	tests := []struct{ name, payload, want string }{
		{"empty", "", "$#00"},
		{"ok", "OK", "$OK#9a"},
		{"query", "qSupported", "$qSupported#37"},
		{"memory", "m8000000,4", "$m8000000,4#25"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, string(frame([]byte(tc.payload)))) })
	}
}

func TestEscapeBinary(t *testing.T) {
	tests := []struct {
		name    string
		in, esc []byte
	}{
		{"plain", []byte("abc"), []byte("abc")},
		{"specials", []byte{'#', '$', '}', '*'}, []byte{'}', 0x03, '}', 0x04, '}', 0x5d, '}', 0x0a}},
		{"binary", []byte{0x00, 0xff, 0x7d, 0x23}, []byte{0x00, 0xff, '}', 0x5d, '}', 0x03}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.esc, escapeBinary(tc.in))
			back, err := unescapeBinary(tc.esc)
			require.NoError(t, err)
			assert.Equal(t, tc.in, back)
		})
	}
	_, err := unescapeBinary([]byte("ab}"))
	assert.Error(t, err, "dangling escape")
}

func TestDecodeRLE(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"none", "0123", "0123", false},
		{"gdb manual example", "0* ", "0000", false},
		{"long run", "f*}", repeat('f', 97), false},
		{"mid packet", "12*\"34", "1" + repeat('2', 6) + "34", false},
		{"star first", "*!", "", true},
		{"star last", "0*", "", true},
		{"count too small", "0*\x1f", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeRLE([]byte(tc.in))
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
		})
	}
}

func repeat(b byte, n int) string {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return string(out)
}

func TestParseStopReply(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    StopReply
		wantErr bool
	}{
		{"signal", "S05", StopReply{Kind: 'S', Signal: 5, Raw: "S05"}, false},
		{"qemu interrupt", "T02thread:01;", StopReply{Kind: 'T', Signal: 2, Fields: map[string]string{"thread": "01"}, Raw: "T02thread:01;"}, false},
		{"registers", "T050f:00000008;0d:f03f0020;swbreak:;", StopReply{Kind: 'T', Signal: 5,
			Fields: map[string]string{"0f": "00000008", "0d": "f03f0020", "swbreak": ""}, Raw: "T050f:00000008;0d:f03f0020;swbreak:;"}, false},
		{"exited", "W2a", StopReply{Kind: 'W', Signal: 42, Raw: "W2a"}, false},
		{"error", "E01", StopReply{}, true},
		{"short", "S", StopReply{}, true},
		{"bad hex", "Szz", StopReply{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStopReply(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
