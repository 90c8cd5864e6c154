package defender_test

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

// The binary and oversized fixtures are generated here, so their bytes are
// explained by code; TestGeneratedFixtures fails when the files drift.
// Regenerate with: go test ./broker/defender -run TestGeneratedFixtures -update
var update = flag.Bool("update", false, "rewrite the generated files in fixtures/reports")

const corpusDir = "../../fixtures/reports"

// CBOR builders that control what fxamacker/cbor would otherwise choose:
// key order, definite vs indefinite length, duplicate and non-text keys.
type (
	kv    struct{ k, v any }
	omap  []kv     // definite-length map, pairs in this order
	imap  []kv     // indefinite-length map
	iarr  []any    // indefinite-length array
	itext []string // indefinite-length (chunked) text string
	raw   []byte   // bytes written verbatim
)

func cborHead(major byte, n int) []byte {
	switch {
	case n < 24:
		return []byte{major<<5 | byte(n)}
	case n < 256:
		return []byte{major<<5 | 24, byte(n)}
	default:
		return []byte{major<<5 | 25, byte(n >> 8), byte(n)}
	}
}

func cborItems(start []byte, end []byte, items ...any) ([]byte, error) {
	out := append([]byte{}, start...)
	for _, it := range items {
		b, err := cbor.Marshal(it)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return append(out, end...), nil
}

func pairs(m []kv) []any {
	var items []any
	for _, p := range m {
		items = append(items, p.k, p.v)
	}
	return items
}

func (m omap) MarshalCBOR() ([]byte, error) { return cborItems(cborHead(5, len(m)), nil, pairs(m)...) }
func (m imap) MarshalCBOR() ([]byte, error) {
	return cborItems([]byte{0xbf}, []byte{0xff}, pairs(m)...)
}
func (a iarr) MarshalCBOR() ([]byte, error) { return cborItems([]byte{0x9f}, []byte{0xff}, a...) }
func (r raw) MarshalCBOR() ([]byte, error)  { return r, nil }
func (t itext) MarshalCBOR() ([]byte, error) {
	items := make([]any, len(t))
	for i, s := range t {
		items[i] = s
	}
	return cborItems([]byte{0x7f}, []byte{0xff}, items...)
}

func mustCBOR(v any) []byte {
	b, err := cbor.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// shortHeader and longHeader build a header map with an unsigned report_id.
func shortHeader(rid any) omap { return omap{{"rid", rid}, {"v", "1.0"}} }
func longHeader(rid any) omap  { return omap{{"report_id", rid}, {"version", "1.0"}} }

// referenceLong is the protocol doc's 2.4 shape in long keys, with every
// custom-metric kind.
func referenceLong(rid any) omap {
	return omap{
		{"header", longHeader(rid)},
		{"metrics", omap{
			{"listening_tcp_ports", omap{{"ports", []any{omap{{"port", 22}}, omap{{"interface", "eth0"}, {"port", 8883}}}}, {"total", 2}}},
			{"listening_udp_ports", omap{{"ports", []any{}}, {"total", 0}}},
			{"network_stats", omap{{"bytes_in", uint64(29358693495)}, {"bytes_out", 147230817}, {"packets_in", 1872689}, {"packets_out", 940337}}},
			{"tcp_connections", omap{{"established_connections", omap{
				{"connections", []any{omap{{"local_port", 39216}, {"remote_addr", "34.212.105.174:8883"}}}},
				{"total", 1},
			}}}},
		}},
		{"custom_metrics", omap{
			{"cpu_usage", []any{omap{{"number", 37.25}}}},
			{"task_numbers", []any{omap{{"number_list", []any{1, 2, -3, 4.5}}}}},
			{"interfaces", []any{omap{{"string_list", []any{"eth0", "lo"}}}}},
			{"addresses", []any{omap{{"ip_list", []any{"172.31.5.9", "fe80::1"}}}}},
		}},
	}
}

// stm32Report mirrors the STM32U5 reference (defender_task.c): short keys,
// indefinite outer and "met" maps, definite elsewhere, "t" before "pts",
// "pts" omitted when the count is 0, tick-count report_id.
func stm32Report() imap {
	return imap{
		{"hed", shortHeader(uint32(3915021))},
		{"met", imap{
			{"ns", omap{{"pi", 1204}, {"po", 1187}, {"bi", 163221}, {"bo", 98112}}},
			{"tp", omap{{"t", 1}, {"pts", []any{omap{{"if", "st1"}, {"pt", 1883}}}}}},
			{"up", omap{{"t", 0}}},
			{"tc", omap{{"ec", omap{{"t", 1}, {"cs", []any{omap{{"rad", "192.168.0.10:8883"}, {"li", "st1"}, {"lp", 49153}}}}}}}},
		}},
	}
}

// generatedFixtures returns every generated file by name.
func generatedFixtures() map[string][]byte {
	nested := func(depth int, leaf []byte, open byte) []byte {
		return append(bytes.Repeat([]byte{open}, depth), leaf...)
	}
	reference := mustCBOR(referenceLong(uint64(1700000000123)))
	files := map[string][]byte{
		"stm32-short-indefinite.cbor": mustCBOR(stm32Report()),
		"reference-long.cbor":         reference,
		"reference-short.cbor": mustCBOR(omap{
			{"hed", shortHeader(1625700661)},
			{"met", omap{
				{"tp", omap{{"pts", []any{omap{{"pt", 22}}}}, {"t", 1}}},
				{"up", omap{{"pts", []any{}}, {"t", 0}}},
				{"ns", omap{{"bi", 1932335905}, {"bo", 147230817}, {"pi", 1872689}, {"po", 940337}}},
				{"tc", omap{{"ec", omap{{"cs", []any{omap{{"lp", 39216}, {"rad", "34.212.105.174:8883"}}}}, {"t", 1}}}}},
			}},
			{"cmet", omap{{"uptime", []any{omap{{"number", 1234}}}}}},
		}),
		"empty-metrics.cbor":         mustCBOR(omap{{"header", longHeader(4000)}, {"metrics", omap{}}}),
		"indefinite-everywhere.cbor": mustCBOR(imap{{"hed", imap{{"rid", 5}, {"v", itext{"1.", "0"}}}}, {"met", imap{{"tp", imap{{"pts", iarr{imap{{"pt", 443}}}}, {"t", 1}}}}}}),
		"custom-half-float.cbor":     mustCBOR(omap{{"hed", shortHeader(6)}, {"cmet", omap{{"ratio", []any{omap{{"number", raw{0xf9, 0x3e, 0x00}}}}}}}}),
		"python-agent-mixed.cbor":    mustCBOR(omap{{"hed", shortHeader(1700000000)}, {"met", omap{{"tp", omap{{"pts", []any{omap{{"port", 22}, {"interface", "eth0"}}}}, {"t", 1}}}}}}),
		"report-id-max-uint64.cbor":  mustCBOR(omap{{"hed", shortHeader(uint64(18446744073709551615))}, {"met", omap{}}}),
		"report-id-above-2-53.cbor":  mustCBOR(omap{{"hed", shortHeader(uint64(9007199254740993))}, {"met", omap{}}}),
		"report-id-max-int64.cbor":   mustCBOR(omap{{"hed", shortHeader(uint64(math.MaxInt64))}, {"met", omap{}}}),
		"report-id-2-63.cbor":        mustCBOR(omap{{"hed", shortHeader(uint64(math.MaxInt64) + 1)}, {"met", omap{}}}),
		"total-max-uint64.cbor":      mustCBOR(omap{{"hed", shortHeader(20)}, {"met", omap{{"tp", omap{{"pts", []any{}}, {"t", uint64(math.MaxUint64)}}}}}}),
		"tag-bignum-counter.cbor": mustCBOR(omap{{"hed", shortHeader(21)}, {"met", omap{{"ns", omap{
			{"bi", raw{0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0}}, {"bo", 0}, {"pi", 0}, {"po", 0}}}}}}),
		"report-id-null.cbor": mustCBOR(omap{{"hed", omap{{"rid", nil}, {"v", "1.0"}}}, {"met", omap{}}}),
		// The Python agent (v1 and v2) in CBOR mode with short tags: psutil
		// reports an IPv4 peer of a dual-stack socket as ::ffff:a.b.c.d, no
		// interface owns that local address, and cbor.dumps(None) is null.
		"python-agent-null-li.cbor": mustCBOR(omap{{"hed", shortHeader(1700000000)}, {"met", omap{
			{"ns", omap{{"bi", 5120}, {"bo", 4096}, {"pi", 40}, {"po", 38}}},
			{"tc", omap{{"ec", omap{{"cs", []any{omap{{"rad", "[::ffff:203.0.113.7]:51514"}, {"li", nil}, {"lp", 22}}}}, {"t", 1}}}}},
			{"tp", omap{{"pts", []any{omap{{"port", 22}, {"interface", "::"}}}}, {"t", 1}}},
		}}}),
		"undefined-optional.cbor": mustCBOR(omap{{"hed", shortHeader(22)}, {"met", omap{
			{"ns", omap{{"bi", raw{0xf7}}, {"bo", 1}}},
			{"tc", omap{{"ec", omap{{"cs", []any{omap{{"rad", "10.0.0.1:8883"}, {"li", raw{0xf7}}, {"lp", raw{0xf6}}}}}, {"t", raw{0xf7}}}}}},
		}}}),
		"custom-bare-number.cbor": mustCBOR(omap{{"hed", shortHeader(7)}, {"cmet", omap{{"my_metric", omap{{"number", 0}}}}}}),
		"duplicate-key.cbor":      mustCBOR(omap{{"hed", imap{{"rid", 8}, {"v", "1.0"}, {"rid", 9}}}, {"met", omap{}}}),
		"non-text-key.cbor":       mustCBOR(omap{{"hed", omap{{"rid", 10}, {"v", "1.0"}, {1, "x"}}}, {"met", omap{}}}),
		"trailing-data.cbor":      append(mustCBOR(omap{{"hed", shortHeader(11)}, {"met", omap{}}}), 0x00),
		"report-id-negative.cbor": mustCBOR(omap{{"hed", shortHeader(int64(-12))}, {"met", omap{}}}),
		"local-port-text.cbor": mustCBOR(omap{{"hed", shortHeader(13)}, {"met", omap{{"tc", omap{{"ec", omap{
			{"cs", []any{omap{{"rad", "10.0.0.1:8883"}, {"lp", "50000"}}}}, {"t", 1}}}}}}}}),
		"float-counter.cbor": mustCBOR(omap{{"hed", shortHeader(14)}, {"met", omap{{"ns", omap{{"bi", 1.5}, {"bo", 0}, {"pi", 0}, {"po", 0}}}}}}),
		"invalid-utf8.cbor": mustCBOR(omap{{"hed", shortHeader(15)}, {"met", omap{{"tp", omap{
			{"pts", []any{omap{{"pt", 22}, {"if", raw{0x62, 0xff, 0xfe}}}}}, {"t", 1}}}}}}),
		"deep-nesting.cbor":         mustCBOR(omap{{"hed", shortHeader(16)}, {"cmet", omap{{"m", raw(nested(40, []byte{0x01}, 0x81))}}}}),
		"tag-bignum-report-id.cbor": mustCBOR(omap{{"hed", omap{{"rid", raw{0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0}}, {"v", "1.0"}}}, {"met", omap{}}}),
		"truncated.cbor":            reference[:len(reference)/2],
		"remote-addr-bytes.cbor": mustCBOR(omap{{"hed", shortHeader(17)}, {"met", omap{{"tc", omap{{"ec", omap{
			{"cs", []any{omap{{"rad", []byte("10.0.0.1:8883")}}}}, {"t", 1}}}}}}}}),
		"camelcase-long.cbor": mustCBOR(omap{{"header", longHeader(18)}, {"metrics", omap{{"networkStats", omap{{"bytesIn", 1}}}}}}),
		"root-array.cbor":     mustCBOR([]any{omap{{"hed", shortHeader(19)}}}),

		"invalid-utf8.json": []byte("{\"header\":{\"report_id\":45,\"version\":\"1.0\"},\"metrics\":{\"listening_tcp_ports\":{\"ports\":[{\"port\":22,\"interface\":\"eth\xff0\"}],\"total\":1}}}\n"),
		"deep-nesting.json": []byte(`{"header":{"report_id":46,"version":"1.0"},"custom_metrics":{"m":` +
			strings.Repeat("[", 40) + "1" + strings.Repeat("]", 40) + "}}\n"),
		"oversize.json":     oversizeReport(),
		"trailing-nul.json": []byte(`{"hed":{"rid":47,"v":"1.0"},"met":{}}` + "\x00"),
	}
	return files
}

// oversizeReport is a well-formed report just over MaxPayload: AWS IoT Core
// refuses it before Device Defender sees it.
func oversizeReport() []byte {
	var b bytes.Buffer
	b.WriteString(`{"header":{"report_id":44,"version":"1.0"},"custom_metrics":{"names":[{"string_list":[`)
	for i := 0; b.Len() <= defender.MaxPayload; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"iface-%06d"`, i)
	}
	b.WriteString("]}]}}\n")
	return b.Bytes()
}

func TestGeneratedFixtures(t *testing.T) {
	files := generatedFixtures()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(corpusDir, name)
			if *update {
				require.NoError(t, os.WriteFile(path, files[name], 0o644))
				return
			}
			got, err := os.ReadFile(path)
			require.NoError(t, err, "run: go test ./broker/defender -run TestGeneratedFixtures -update")
			require.True(t, bytes.Equal(files[name], got),
				"%s differs from its generator; run: go test ./broker/defender -run TestGeneratedFixtures -update", name)
		})
	}
}
