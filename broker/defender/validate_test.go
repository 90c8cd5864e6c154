package defender_test

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

func u64(v uint64) *uint64 { return &v }

// The protocol doc's 2.4 report maps onto the model field by field, and the
// long, short and CBOR spellings of it give the same Report.
func TestValidateMapsReferenceReport(t *testing.T) {
	want := &defender.Report{
		Header: defender.Header{ReportID: 1625700661, Version: "1.0"},
		Metrics: &defender.Metrics{
			ListeningTCPPorts: &defender.Ports{Ports: []defender.Port{{Port: 22}}, Total: u64(1)},
			ListeningUDPPorts: &defender.Ports{Ports: []defender.Port{}, Total: u64(0)},
			NetworkStats: &defender.NetworkStats{BytesIn: u64(1932335905), BytesOut: u64(147230817),
				PacketsIn: u64(1872689), PacketsOut: u64(940337)},
			TCPConnections: &defender.TCPConnections{Established: &defender.EstablishedConnections{
				Connections: []defender.Connection{{RemoteAddr: "34.212.105.174:8883", LocalPort: u64(39216)}},
				Total:       u64(1),
			}},
		},
		CustomMetrics: map[string]defender.CustomMetric{"uptime": {Kind: "number", Number: 1234}},
	}
	for _, tc := range []struct {
		file, style string
		format      defender.Format
	}{
		{"ref-embedded-c-short.json", "short", defender.JSON},
		{"ref-embedded-c-long.json", "long", defender.JSON},
		{"reference-short.cbor", "short", defender.CBOR},
	} {
		t.Run(tc.file, func(t *testing.T) {
			res := defender.Validate(tc.format, readFixture(t, tc.file), defender.Options{})
			require.Nil(t, res.Problem)
			w := *want
			w.KeyStyle = tc.style
			assert.Equal(t, &w, res.Report)
		})
	}
}

func TestValidateCustomMetricKinds(t *testing.T) {
	res := defender.Validate(defender.CBOR, readFixture(t, "reference-long.cbor"), defender.Options{})
	require.Nil(t, res.Problem)
	assert.Equal(t, map[string]defender.CustomMetric{
		"cpu_usage":    {Kind: "number", Number: 37.25},
		"task_numbers": {Kind: "number_list", NumberList: []float64{1, 2, -3, 4.5}},
		"interfaces":   {Kind: "string_list", StringList: []string{"eth0", "lo"}},
		"addresses":    {Kind: "ip_list", IPList: []string{"172.31.5.9", "fe80::1"}},
	}, res.Report.CustomMetrics)
	assert.Equal(t, u64(29358693495), res.Report.Metrics.NetworkStats.BytesIn)

	half := defender.Validate(defender.CBOR, readFixture(t, "custom-half-float.cbor"), defender.Options{})
	require.Nil(t, half.Problem)
	assert.Equal(t, 1.5, half.Report.CustomMetrics["ratio"].Number)
}

func report(body string) string {
	return `{"header":{"report_id":7,"version":"1.0"},` + body + `}`
}

// Cases the corpus does not spell out, each with its exact path and reason.
func TestValidateRejections(t *testing.T) {
	for _, tc := range []struct {
		name, payload, path, reason string
	}{
		{"bracketed IPv4", `"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"[10.0.0.1]:80"}]}}}`,
			"/metrics/tcp_connections/established_connections/connections/0/remote_addr", "brackets hold an IPv6 address only"},
		{"remote port 0", `"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"10.0.0.1:0"}]}}}`,
			"/metrics/tcp_connections/established_connections/connections/0/remote_addr", "port 0 is out of range"},
		{"remote port sign", `"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"10.0.0.1:+80"}]}}}`,
			"/metrics/tcp_connections/established_connections/connections/0/remote_addr", "not a decimal number"},
		{"connections not a list", `"metrics":{"tcp_connections":{"established_connections":{"connections":{}}}}`,
			"/metrics/tcp_connections/established_connections/connections", "must be an array, got object"},
		{"port item not an object", `"metrics":{"listening_udp_ports":{"ports":[53]}}`,
			"/metrics/listening_udp_ports/ports/0", "must be an object, got integer"},
		{"total negative", `"metrics":{"listening_udp_ports":{"ports":[],"total":-1}}`,
			"/metrics/listening_udp_ports/total", "non-negative"},
		{"interface not a string", `"metrics":{"listening_udp_ports":{"ports":[{"port":53,"interface":1}]}}`,
			"/metrics/listening_udp_ports/ports/0/interface", "must be a string, got 1"},
		{"custom_metrics not an object", `"custom_metrics":[]`, "/custom_metrics", "must be an object, got array"},
		{"custom empty array", `"custom_metrics":{"m":[]}`, "/custom_metrics/m", "got 0 elements"},
		{"custom element not an object", `"custom_metrics":{"m":[5]}`, "/custom_metrics/m/0", "must be an object"},
		{"custom empty object", `"custom_metrics":{"m":[{}]}`, "/custom_metrics/m/0", "exactly one key"},
		{"custom number as string", `"custom_metrics":{"m":[{"number":"5"}]}`, "/custom_metrics/m/0/number", `must be a number, got string "5"`},
		{"custom number out of float range", `"custom_metrics":{"m":[{"number":1e400}]}`, "/custom_metrics/m/0/number", "not a finite"},
		{"custom ip_list not strings", `"custom_metrics":{"m":[{"ip_list":[1]}]}`, "/custom_metrics/m/0/ip_list/0", "must be a string"},
		{"custom number_list holds a string", `"custom_metrics":{"m":[{"number_list":[1,"2"]}]}`, "/custom_metrics/m/0/number_list/1", "must be a number"},
		{"key with slash escapes in the pointer", `"metrics":{"a/b~c":1}`, "/metrics/a~1b~0c", `unknown key "a/b~c"`},
		{"remote_port from the Python tag table", `"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"10.0.0.1:80","remote_port":80}]}}}`,
			"/metrics/tcp_connections/established_connections/connections/0/remote_port", "unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := defender.Validate(defender.JSON, []byte(report(tc.payload)), defender.Options{})
			require.NotNil(t, res.Problem)
			assert.Equal(t, tc.path, res.Problem.Path)
			assert.Contains(t, res.Problem.Reason, tc.reason)
			assert.True(t, res.HeaderParsed)
			assert.Equal(t, uint64(7), res.ReportID)
		})
	}
}

func TestValidateJSONSyntax(t *testing.T) {
	deep := func(n int) string {
		return `{"header":{"report_id":1,"version":"1.0"},"custom_metrics":{"m":` +
			strings.Repeat("[", n) + strings.Repeat("]", n) + `}}`
	}
	for _, tc := range []struct {
		name, payload string
		ok            bool
		reason        string
	}{
		{"whitespace everywhere", " \t\r\n{ \"header\" : { \"report_id\" : 1 , \"version\" : \"1.0\" } , \"metrics\" : { } } \n", true, ""},
		{"escapes in strings", report(`"metrics":{"listening_tcp_ports":{"ports":[{"port":1,"interface":"e\"t\\h\/0\b\f\n\r\t\u00e9"}]}}`), true, ""},
		{"surrogate pair", report(`"metrics":{"listening_tcp_ports":{"ports":[{"port":1,"interface":"\ud83d\ude00"}]}}`), true, ""},
		{"escaped key", `{"he\u0061der":{"report_id":1,"version":"1.0"},"metrics":{}}`, true, ""},
		{"nesting over 32", deep(31), false, "nesting deeper than 32"},
		{"byte order mark", "\xef\xbb\xbf" + report(`"metrics":{}`), false, "unexpected byte 0xef"},
		{"single quotes", `{'header':1}`, false, "expected a string key"},
		{"trailing comma", report(`"metrics":{},`), false, "expected a string key"},
		{"missing colon", `{"header" 1}`, false, "expected ':'"},
		{"unterminated string", `{"header`, false, "unterminated string"},
		{"raw control character", report(`"metrics":{"tcp_connections":{"x":"a` + "\x01" + `"}}`), false, "control character 0x01"},
		{"bad escape", report(`"metrics":{"a\q":1}`), false, `invalid escape \q`},
		{"truncated unicode escape", `{"\u12`, false, "truncated"},
		{"literal typo", report(`"metrics":nul`), false, "want null"},
		{"plus sign", report(`"metrics":{"network_stats":{"bytes_in":+1}}`), false, "unexpected '+'"},
		{"fraction without digits", report(`"metrics":{"network_stats":{"bytes_in":1.}}`), false, "after '.'"},
		{"exponent without digits", report(`"metrics":{"network_stats":{"bytes_in":1e}}`), false, "exponent"},
		{"NaN", report(`"metrics":{"network_stats":{"bytes_in":NaN}}`), false, "unexpected 'N'"},
		{"unclosed array", report(`"custom_metrics":{"m":[{"number":1}`), false, "expected ',' or ']'"},
		{"two values", `{} {}`, false, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := defender.Validate(defender.JSON, []byte(tc.payload), defender.Options{})
			if tc.ok {
				require.Nil(t, res.Problem)
				return
			}
			require.NotNil(t, res.Problem)
			assert.Contains(t, res.Problem.Reason, tc.reason)
		})
	}
}

func TestValidateNegativeZero(t *testing.T) {
	res := defender.Validate(defender.JSON, []byte(`{"header":{"report_id":-0,"version":"1.0"},"metrics":{}}`), defender.Options{})
	require.Nil(t, res.Problem, "-0 is the integer zero")
	assert.Equal(t, uint64(0), res.ReportID)
}

// Nesting is bounded at 32 levels in both formats, and the failure names
// the path where the bound was hit. The nested value sits under an unknown
// key so lenient mode shows that 32 levels decode.
func TestValidateDepthBoundary(t *testing.T) {
	jsonDoc := func(levels int) []byte { // root object + levels-1 arrays
		n := levels - 1
		return []byte(`{"header":{"report_id":1,"version":"1.0"},"metrics":{},"x":` +
			strings.Repeat("[", n) + strings.Repeat("]", n) + `}`)
	}
	cborDoc := func(levels int) []byte {
		n := levels - 1
		return mustCBOR(omap{{"hed", shortHeader(1)}, {"met", omap{}}, {"x", raw(append(bytes.Repeat([]byte{0x81}, n-1), 0x80))}})
	}
	for _, tc := range []struct {
		format defender.Format
		build  func(int) []byte
	}{{defender.JSON, jsonDoc}, {defender.CBOR, cborDoc}} {
		t.Run(string(tc.format), func(t *testing.T) {
			ok := defender.Validate(tc.format, tc.build(32), defender.Options{Lenient: true})
			assert.Nil(t, ok.Problem, "32 levels decode")
			bad := defender.Validate(tc.format, tc.build(33), defender.Options{Lenient: true})
			require.NotNil(t, bad.Problem)
			assert.Contains(t, bad.Problem.Reason, "nesting deeper than 32")
			assert.Equal(t, "/x"+strings.Repeat("/0", 31), bad.Problem.Path)
			assert.Equal(t, defender.CategoryDecode, bad.Problem.Category)
		})
	}
}

// A CBOR array over the element bound fails with its path; in JSON the
// bound cannot be reached below the size cap ("1," is two bytes).
func TestValidateElementLimit(t *testing.T) {
	list := append([]byte{0x9a, 0, 1, 0, 1}, bytes.Repeat([]byte{0x01}, 65537)...) // array(65537) of 1
	b := mustCBOR(omap{{"hed", shortHeader(1)}, {"cmet", omap{{"m", []any{omap{{"number_list", raw(list)}}}}}}})
	require.Less(t, len(b), defender.MaxPayload)
	res := defender.Validate(defender.CBOR, b, defender.Options{})
	require.NotNil(t, res.Problem)
	assert.Contains(t, res.Problem.Reason, "more than 65536 elements")
	assert.Equal(t, "/cmet/m/0/number_list", res.Problem.Path)
}

func TestValidateUnknownFormat(t *testing.T) {
	res := defender.Validate("xml", []byte(`{}`), defender.Options{})
	require.NotNil(t, res.Problem)
	assert.Contains(t, res.Problem.Reason, `unknown format "xml"`)
}

func TestLintCamelCaseNamesIntendedKey(t *testing.T) {
	for _, tc := range []struct {
		body, key, want string
	}{
		{`"metrics":{"listeningTcpPorts":{}}`, "listeningTcpPorts", "listening_tcp_ports"},
		{`"metrics":{"listeningUdpPorts":{}}`, "listeningUdpPorts", "listening_udp_ports"},
		{`"metrics":{"networkStats":{}}`, "networkStats", "network_stats"},
		{`"metrics":{"tcpConnections":{}}`, "tcpConnections", "tcp_connections"},
		{`"metrics":{"tcp_connections":{"establishedConnections":{}}}`, "establishedConnections", "established_connections"},
		{`"metrics":{"network_stats":{"bytesIn":1}}`, "bytesIn", "bytes_in"},
		{`"metrics":{"network_stats":{"packets-out":1}}`, "packets-out", "packets_out"},
		{`"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remoteAddr":"1.2.3.4:5"}]}}}`, "remoteAddr", "remote_addr"},
		{`"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"1.2.3.4:5","localPort":1}]}}}`, "localPort", "local_port"},
		{`"customMetrics":{}`, "customMetrics", "custom_metrics"},
		{`"metrics":{},"Header":{}`, "Header", "header"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			res := defender.Validate(defender.JSON, []byte(report(tc.body)), defender.Options{})
			require.NotNil(t, res.Problem)
			assert.Contains(t, res.Problem.Reason, fmt.Sprintf("did you mean %q", tc.want))
			require.NotEmpty(t, res.Lint)
			assert.Equal(t, defender.LintCamelCaseKey, res.Lint[0].Rule)
			assert.True(t, strings.HasSuffix(res.Lint[0].Path, "/"+tc.key), res.Lint[0].Path)
			assert.Contains(t, res.Lint[0].Message, tc.want)
		})
	}
	t.Run("reportId in the header", func(t *testing.T) {
		res := defender.Validate(defender.JSON, []byte(`{"header":{"reportId":1,"version":"1.0"},"metrics":{}}`), defender.Options{})
		require.NotNil(t, res.Problem)
		assert.Contains(t, res.Problem.Reason, `did you mean "report_id"`)
	})
	t.Run("an unrelated key is no look-alike", func(t *testing.T) {
		res := defender.Validate(defender.JSON, []byte(report(`"metrics":{"cpu":{}}`)), defender.Options{Lenient: true})
		require.Nil(t, res.Problem)
		assert.Equal(t, []string{defender.LintUnknownKey}, ruleSet(res.Lint))
	})
}

func TestLintMessages(t *testing.T) {
	res := defender.Validate(defender.JSON, readFixture(t, "python-agent-short.json"), defender.Options{})
	require.Nil(t, res.Problem)
	require.Len(t, res.Lint, 1)
	assert.Equal(t, defender.Finding{Rule: defender.LintMixedKeys, Path: "/met/tp/pts/0/port",
		Message: `long key "port" in a report that starts with short keys (4 long, 26 short keys in all)`}, res.Lint[0])
	assert.Equal(t, "mixed", res.Report.KeyStyle)

	res = defender.Validate(defender.JSON, readFixture(t, "dropped-custom-value.json"), defender.Options{})
	require.Nil(t, res.Problem)
	var msgs []string
	for _, f := range res.Lint {
		msgs = append(msgs, f.Path+" "+f.Message)
	}
	assert.Equal(t, []string{
		"/custom_metrics/big/0/number number 1234567890123456 has 16 significant digits; AWS keeps at most 15 and drops the value",
		`/custom_metrics/names/0/string_list/1 string "has space" has ' '; AWS keeps only letters, digits and : _ - / . and drops the value`,
		`/custom_metrics/addrs/0/ip_list/1 "10.0.0.256" is not a valid IPv4 or IPv6 address; AWS drops the value`,
	}, msgs)
}

func TestLintDroppedNumbers(t *testing.T) {
	for _, tc := range []struct {
		number  string
		dropped bool
	}{
		{"123456789012345", false},
		{"1234567890123456", true},
		{"-123456789012345.6", true},
		{"0.000123456789012345", false},
		{"1.2345678901234567e10", true},
		{"10000000000000000000", false}, // one significant digit
		{"3.14", false},
	} {
		t.Run(tc.number, func(t *testing.T) {
			res := defender.Validate(defender.JSON, []byte(report(`"custom_metrics":{"m":[{"number_list":[`+tc.number+`]}]}`)), defender.Options{})
			require.Nil(t, res.Problem)
			assert.Equal(t, tc.dropped, len(res.Lint) == 1, "%v", res.Lint)
		})
	}
}

func TestLintNearSizeCap(t *testing.T) {
	pad := func(size int) []byte {
		head := `{"header":{"report_id":1,"version":"1.0"},"custom_metrics":{"m":[{"string_list":["`
		tail := `"]}]}}`
		return []byte(head + strings.Repeat("a", size-len(head)-len(tail)) + tail)
	}
	for _, tc := range []struct {
		size     int
		accepted bool
		lint     []string
	}{
		{defender.MaxPayload * 9 / 10, true, []string{}},
		{defender.MaxPayload*9/10 + 1, true, []string{defender.LintNearSizeCap}},
		{defender.MaxPayload, true, []string{defender.LintNearSizeCap}},
		{defender.MaxPayload + 1, false, []string{}},
	} {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			b := pad(tc.size)
			require.Len(t, b, tc.size)
			res := defender.Validate(defender.JSON, b, defender.Options{})
			assert.Equal(t, tc.accepted, res.Accepted())
			assert.Equal(t, tc.lint, ruleSet(res.Lint))
			assert.True(t, res.HeaderParsed)
		})
	}
}

// The size verdict names the real size, also for callers that read only
// the first MaxPayload+1 bytes.
func TestOversizeProblem(t *testing.T) {
	for size, want := range map[int64]string{
		defender.MaxPayload + 1: "payload is 131073 bytes (128.0 KB), over the 131072-byte (128 KB) MQTT payload limit of AWS IoT Core",
		10 << 20:                "payload is 10485760 bytes (10.0 MB), over the 131072-byte (128 KB) MQTT payload limit of AWS IoT Core",
		-1:                      "payload is over the 131072-byte (128 KB) MQTT payload limit of AWS IoT Core",
	} {
		p := defender.OversizeProblem(size)
		assert.Equal(t, want, p.Reason)
		assert.Equal(t, defender.CategorySize, p.Category)
		assert.Equal(t, defender.CodeInvalidPayload, p.Code)
		assert.Equal(t, defender.MsgMalformed, p.Message)
	}
	res := defender.Validate(defender.JSON, make([]byte, defender.MaxPayload+1), defender.Options{})
	assert.Equal(t, defender.OversizeProblem(defender.MaxPayload+1), res.Problem, "Validate gives the same verdict")
}

// Lenient mode only ever turns unknown-key rejections into findings.
func TestLenientIsSupersetOfStrict(t *testing.T) {
	for _, c := range loadCorpus(t) {
		payload := readFixture(t, c.File)
		strict := defender.Validate(defender.Format(c.Format), payload, defender.Options{})
		lenient := defender.Validate(defender.Format(c.Format), payload, defender.Options{Lenient: true})
		if strict.Accepted() {
			assert.True(t, lenient.Accepted(), c.File)
			assert.Equal(t, strict, lenient, c.File)
		}
	}
}

// EncodeReport output validates back to the same Report, in both formats and
// both spellings.
func TestEncodeReportRoundTrip(t *testing.T) {
	for _, c := range loadCorpus(t) {
		if !c.Accepted || c.Lenient {
			continue
		}
		res := defender.Validate(defender.Format(c.Format), readFixture(t, c.File), defender.Options{})
		require.Nil(t, res.Problem, c.File)
		for _, f := range []defender.Format{defender.JSON, defender.CBOR} {
			for _, short := range []bool{false, true} {
				b, err := defender.EncodeReport(f, res.Report, short)
				require.NoError(t, err)
				again := defender.Validate(f, b, defender.Options{})
				require.Nil(t, again.Problem, "%s as %s short=%v: %s", c.File, f, short, b)
				want := *res.Report
				want.KeyStyle = map[bool]string{false: "long", true: "short"}[short]
				assert.Equal(t, &want, again.Report, "%s as %s short=%v", c.File, f, short)
			}
		}
	}
}

func TestEncodeReportErrors(t *testing.T) {
	_, err := defender.EncodeReport(defender.JSON, nil, false)
	assert.Error(t, err)
	_, err = defender.EncodeReport(defender.JSON, &defender.Report{CustomMetrics: map[string]defender.CustomMetric{"m": {Kind: "nope"}}}, false)
	assert.ErrorContains(t, err, `unknown kind "nope"`)
	_, err = defender.EncodeReport("xml", &defender.Report{}, false)
	assert.ErrorContains(t, err, "unknown format")
}

func TestValidateRemoteAddr(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		reason string // "" when accepted
	}{
		{"34.212.105.174:8883", ""},
		{"[2001:db8::1]:443", ""},
		{"2001:db8::1:443", ""}, // bare IPv6: split on the last ':'
		{"::1:1", ""},
		{"[::ffff:10.0.0.1]:80", ""},
		{"fe80::1%eth0:80", ""}, // zones parse leniently
		{"10.0.0.1:65535", ""},
		{"10.0.0.1:080", ""},
		{"10.0.0.1", "is not ip:port"},
		{"10.0.0.1:", "1 to 5 digits"},
		{"10.0.0.1:65536", "out of range"},
		{"10.0.0.1:123456", "1 to 5 digits"},
		{":8883", `"" is not an IP address`},
		{"[2001:db8::1:443", "unbalanced"},
		{"[10.0.0.1]:80", "IPv6 address only"},
		{"10.0.0.256:80", "is not an IP address"},
		{"localhost:80", "is not an IP address"},
		{" 10.0.0.1:80", "is not an IP address"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			body := fmt.Sprintf(`"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":%q}]}}}`, tc.addr)
			res := defender.Validate(defender.JSON, []byte(report(body)), defender.Options{})
			if tc.reason == "" {
				assert.Nil(t, res.Problem)
				return
			}
			require.NotNil(t, res.Problem)
			assert.Contains(t, res.Problem.Reason, tc.reason)
			assert.Equal(t, defender.CategoryRange, res.Problem.Category)
		})
	}
}

// CBOR items a report cannot hold, each refused where it stands.
func TestValidateCBORItems(t *testing.T) {
	for _, tc := range []struct {
		name   string
		value  any // the value of met/ns/bi, or a custom number when custom is set
		custom bool
		ok     bool
		reason string
	}{
		{"uint", 5, false, true, ""},
		{"largest signed 64-bit", uint64(math.MaxInt64), false, true, ""},
		{"uint64 above signed 64-bit", uint64(math.MaxInt64) + 1, false, false, "integer 9223372036854775808 is above 9223372036854775807"},
		{"negative bignum tag", raw{0xc3, 0x41, 0x01}, false, false, "CBOR tag 3 is not allowed (a negative bignum"},
		{"null custom number", nil, true, false, "must be a number, got null"},
		{"undefined custom number", raw{0xf7}, true, false, "must be a number, got undefined"},
		{"simple value", raw{0xf0}, false, false, "got simple value 16"},
		{"true", true, false, false, "got true"},
		{"indefinite byte string", raw{0x5f, 0x41, 0x01, 0xff}, false, false, "got byte string"},
		{"float32 custom number", raw{0xfa, 0x3f, 0xc0, 0x00, 0x00}, true, true, ""},
		{"NaN custom number", raw{0xf9, 0x7e, 0x00}, true, false, "not a finite"},
		{"infinite custom number", raw{0xf9, 0x7c, 0x00}, true, false, "not a finite"},
		{"negative custom number", -7, true, true, ""},
		{"tag on a value", raw{0xc1, 0x01}, false, false, "CBOR tag 1 is not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := omap{{"hed", shortHeader(1)}, {"met", omap{{"ns", omap{{"bi", tc.value}}}}}}
			if tc.custom {
				doc = omap{{"hed", shortHeader(1)}, {"cmet", omap{{"m", []any{omap{{"number", tc.value}}}}}}}
			}
			res := defender.Validate(defender.CBOR, mustCBOR(doc), defender.Options{})
			if tc.ok {
				assert.Nil(t, res.Problem)
				return
			}
			require.NotNil(t, res.Problem)
			assert.Contains(t, res.Problem.Reason, tc.reason)
			assert.True(t, res.HeaderParsed, "the header is read whatever fails later")
		})
	}
}

func TestValidateKeyStyle(t *testing.T) {
	for file, style := range map[string]string{
		"ref-embedded-c-long.json":    "long",
		"ref-embedded-c-short.json":   "short",
		"python-agent-short.json":     "mixed",
		"stm32-short-indefinite.cbor": "short",
		"reference-long.cbor":         "long",
	} {
		f := defender.JSON
		if strings.HasSuffix(file, ".cbor") {
			f = defender.CBOR
		}
		res := defender.Validate(f, readFixture(t, file), defender.Options{})
		require.Nil(t, res.Problem, file)
		assert.Equal(t, style, res.Report.KeyStyle, file)
	}
}
