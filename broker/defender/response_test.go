package defender_test

import (
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

var (
	acceptedResp = defender.Response{ThingName: "TestThing", ReportID: u64(1625700661),
		Status: defender.StatusAccepted, Timestamp: 1635801636023}
	rejectedResp = defender.Response{ThingName: "myThing", Status: defender.StatusRejected, Timestamp: 1635802047699,
		StatusDetails: &defender.StatusDetails{ErrorCode: defender.CodeInvalidPayload, ErrorMessage: defender.MsgMalformed}}
)

// The JSON bytes are what the C demos parse: a top-level integer reportId
// they strtoul and compare (protocol doc 3.3).
func TestEncodeResponseJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp defender.Response
		want string
	}{
		{"accepted", acceptedResp,
			`{"thingName":"TestThing","reportId":1625700661,"status":"ACCEPTED","timestamp":1635801636023}`},
		{"rejected without reportId, as AWS documents it", rejectedResp,
			`{"thingName":"myThing","status":"REJECTED","timestamp":1635802047699,"statusDetails":{"ErrorCode":"InvalidPayload","ErrorMessage":"Malformed metrics report"}}`},
		{"reportId above 2^53 stays an exact integer",
			defender.Response{ThingName: "t", ReportID: u64(18446744073709551615), Status: defender.StatusAccepted, Timestamp: 1},
			`{"thingName":"t","reportId":18446744073709551615,"status":"ACCEPTED","timestamp":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := defender.EncodeResponse(defender.JSON, tc.resp)
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(b))
		})
	}
}

// On cbor/... topics the same map is CBOR with text keys and integer
// reportId/timestamp, as the v4 system test decodes it.
func TestEncodeResponseCBOR(t *testing.T) {
	b, err := defender.EncodeResponse(defender.CBOR, withID(rejectedResp, 7))
	require.NoError(t, err)
	assert.Equal(t, byte(0xa5), b[0], "definite map of 5 pairs")
	var m map[string]any
	require.NoError(t, cbor.Unmarshal(b, &m))
	assert.Equal(t, map[string]any{
		"thingName": "myThing",
		"reportId":  uint64(7),
		"status":    "REJECTED",
		"timestamp": uint64(1635802047699),
		"statusDetails": map[any]any{
			"ErrorCode":    "InvalidPayload",
			"ErrorMessage": "Malformed metrics report",
		},
	}, m)
}

func withID(r defender.Response, id uint64) defender.Response { r.ReportID = &id; return r }

func TestEncodeResponseErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format defender.Format
		resp   defender.Response
		want   string
	}{
		{"empty thing", defender.JSON, defender.Response{Status: defender.StatusAccepted}, "thingName is empty"},
		{"lower-case status", defender.JSON, defender.Response{ThingName: "t", Status: "accepted"}, `status "accepted"`},
		{"invalid UTF-8 thing", defender.CBOR, defender.Response{ThingName: "t\xff", Status: defender.StatusAccepted}, "not valid UTF-8"},
		{"unknown format", "xml", acceptedResp, "unknown format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := defender.EncodeResponse(tc.format, tc.resp)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestResponseRoundTrip(t *testing.T) {
	for _, f := range []defender.Format{defender.JSON, defender.CBOR} {
		for name, r := range map[string]defender.Response{
			"accepted":            acceptedResp,
			"rejected":            rejectedResp,
			"rejected with id":    withID(rejectedResp, 0),
			"throttled":           {ThingName: "a:b_c-d", Status: defender.StatusRejected, Timestamp: -1, StatusDetails: &defender.StatusDetails{ErrorCode: defender.CodeThrottled, ErrorMessage: defender.MsgThrottled}},
			"empty status detail": {ThingName: "x", Status: defender.StatusRejected, StatusDetails: &defender.StatusDetails{}},
		} {
			t.Run(string(f)+"/"+name, func(t *testing.T) {
				b, err := defender.EncodeResponse(f, r)
				require.NoError(t, err)
				got, err := defender.DecodeResponse(f, b)
				require.NoError(t, err)
				assert.Equal(t, r, got)
			})
		}
	}
}

func TestDecodeResponse(t *testing.T) {
	t.Run("unknown fields are ignored, like the doc's garbled example", func(t *testing.T) {
		got, err := defender.DecodeResponse(defender.JSON,
			[]byte(`{"thingName":"myThing","12334567":1635800375,"status":"ACCEPTED","timestamp":1635801636023}`))
		require.NoError(t, err)
		assert.Equal(t, defender.Response{ThingName: "myThing", Status: defender.StatusAccepted, Timestamp: 1635801636023}, got)
	})
	for _, tc := range []struct {
		name, payload, want string
	}{
		{"not JSON", `{"thingName":`, "unexpected end of input"},
		{"array", `[]`, "want an object, got array"},
		{"missing thingName", `{"status":"ACCEPTED","timestamp":1}`, "missing thingName"},
		{"missing status", `{"thingName":"t","timestamp":1}`, "missing status"},
		{"missing timestamp", `{"thingName":"t","status":"ACCEPTED"}`, "missing timestamp"},
		{"bad status", `{"thingName":"t","status":"OK","timestamp":1}`, `status "OK"`},
		{"reportId as string", `{"thingName":"t","status":"ACCEPTED","timestamp":1,"reportId":"5"}`, "reportId must be a non-negative integer"},
		{"reportId negative", `{"thingName":"t","status":"ACCEPTED","timestamp":1,"reportId":-5}`, "reportId must be a non-negative integer"},
		{"timestamp float", `{"thingName":"t","status":"ACCEPTED","timestamp":1.5}`, "timestamp must be a 64-bit integer"},
		{"timestamp beyond int64", `{"thingName":"t","status":"ACCEPTED","timestamp":9223372036854775808}`, "timestamp must be a 64-bit integer"},
		{"statusDetails not an object", `{"thingName":"t","status":"REJECTED","timestamp":1,"statusDetails":"x"}`, "statusDetails must be an object"},
		{"ErrorCode not a string", `{"thingName":"t","status":"REJECTED","timestamp":1,"statusDetails":{"ErrorCode":1}}`, "ErrorCode must be a string"},
		{"duplicate key", `{"thingName":"t","thingName":"u","status":"ACCEPTED","timestamp":1}`, "duplicate key"},
		{"trailing data", `{"thingName":"t","status":"ACCEPTED","timestamp":1}x`, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := defender.DecodeResponse(defender.JSON, []byte(tc.payload))
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
