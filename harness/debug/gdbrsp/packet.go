package gdbrsp

import (
	"bytes"
	"errors"
	"fmt"
)

// checksum is the modulo-256 sum of a packet's payload bytes as sent.
func checksum(payload []byte) byte {
	var s byte
	for _, b := range payload {
		s += b
	}
	return s
}

// frame wraps a payload (already escaped when binary) as $payload#xx.
func frame(payload []byte) []byte {
	out := make([]byte, 0, len(payload)+4)
	out = append(out, '$')
	out = append(out, payload...)
	return fmt.Appendf(out, "#%02x", checksum(payload))
}

// escapeBinary escapes the bytes that may not appear raw in a packet
// ('#', '$', '}', '*') as '}' followed by the byte XOR 0x20, as binary
// payloads (X, vFlashWrite) require.
func escapeBinary(data []byte) []byte {
	out := make([]byte, 0, len(data)+len(data)/16)
	for _, b := range data {
		switch b {
		case '#', '$', '}', '*':
			out = append(out, '}', b^0x20)
		default:
			out = append(out, b)
		}
	}
	return out
}

// unescapeBinary reverses escapeBinary for binary replies (qXfer).
func unescapeBinary(data []byte) ([]byte, error) {
	out := make([]byte, 0, len(data))
	for i := 0; i < len(data); i++ {
		if data[i] != '}' {
			out = append(out, data[i])
			continue
		}
		i++
		if i == len(data) {
			return nil, errors.New("gdbrsp: escape '}' at end of packet")
		}
		out = append(out, data[i]^0x20)
	}
	return out, nil
}

// decodeRLE expands run-length encoding in a reply: "X*n" means X repeated
// (n - 29) more times, with n a printable character.
func decodeRLE(data []byte) ([]byte, error) {
	if bytes.IndexByte(data, '*') < 0 {
		return data, nil
	}
	out := make([]byte, 0, len(data)*2)
	for i := 0; i < len(data); i++ {
		if data[i] != '*' {
			out = append(out, data[i])
			continue
		}
		if len(out) == 0 || i+1 == len(data) {
			return nil, fmt.Errorf("gdbrsp: bad run-length encoding at byte %d", i)
		}
		i++
		n := int(data[i]) - 29
		if n < 3 || data[i] > 126 {
			return nil, fmt.Errorf("gdbrsp: bad run-length count %q", data[i])
		}
		last := out[len(out)-1]
		for range n {
			out = append(out, last)
		}
	}
	return out, nil
}
