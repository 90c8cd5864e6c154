package defender

import (
	"bytes"
	"runtime"
	"testing"
)

// TestNestedCountClaimsDoNotAllocate: a CBOR payload of nested arrays that
// each claim 65535 items must not make the walker reserve memory for every
// claim (a memory-amplification attack on the broker found in review).
func TestNestedCountClaimsDoNotAllocate(t *testing.T) {
	payload := append(bytes.Repeat([]byte{0x99, 0xff, 0xff}, 33), make([]byte, 120*1024)...)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := Validate(CBOR, payload, Options{})
	runtime.ReadMemStats(&after)
	if res.Accepted() {
		t.Fatal("accepted garbage")
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 8<<20 {
		t.Fatalf("validating a %d-byte payload allocated %d bytes", len(payload), d)
	}
}
