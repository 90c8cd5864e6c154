package defender

import (
	"bytes"
	"runtime"
	"strconv"
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

// TestLintFindingsAreBounded: a lenient payload full of look-alike keys
// gets at most MaxLintFindings findings plus one "truncated" marker.
func TestLintFindingsAreBounded(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(`{"header":{"report_id":1,"version":"1.0"},"metrics":{}`)
	for i := 0; i < 1000; i++ {
		b.WriteString(`,"unknown_` + strconv.Itoa(i) + `":1`)
	}
	b.WriteString(`}`)
	res := Validate(JSON, b.Bytes(), Options{Lenient: true})
	if !res.Accepted() {
		t.Fatalf("lenient mode rejected: %+v", res.Problem)
	}
	if len(res.Lint) != MaxLintFindings+1 || res.Lint[MaxLintFindings].Rule != LintTruncated {
		t.Fatalf("got %d findings, last %+v", len(res.Lint), res.Lint[len(res.Lint)-1])
	}
}
