package defender_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

// Fuzz targets start from the corpus and check invariants that hold for any
// input. Run one with, e.g.:
//
//	go test ./broker/defender -run '^$' -fuzz FuzzValidateJSON -fuzztime 20s

func seedCorpus(f *testing.F, ext string) {
	entries, err := os.ReadDir(corpusDir)
	require.NoError(f, err)
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ext {
			continue
		}
		b, err := os.ReadFile(filepath.Join(corpusDir, e.Name()))
		require.NoError(f, err)
		if len(b) > 16<<10 { // the oversize fixture would only slow the mutator down
			continue
		}
		f.Add(b, false)
		f.Add(b, true)
	}
}

func FuzzValidateJSON(f *testing.F) {
	seedCorpus(f, ".json")
	f.Fuzz(func(t *testing.T, payload []byte, lenient bool) {
		res := checkValidateInvariants(t, defender.JSON, payload, lenient)
		// Differential check against encoding/json's syntax checker (which
		// does not check UTF-8, so only one direction per side holds).
		if res.Accepted() {
			assert.True(t, json.Valid(payload), "accepted but encoding/json finds it invalid")
		}
		if !json.Valid(payload) {
			require.NotNil(t, res.Problem)
			assert.Contains(t, []string{defender.CategoryDecode, defender.CategorySize}, res.Problem.Category)
		}
	})
}

func FuzzValidateCBOR(f *testing.F) {
	seedCorpus(f, ".cbor")
	f.Fuzz(func(t *testing.T, payload []byte, lenient bool) {
		res := checkValidateInvariants(t, defender.CBOR, payload, lenient)
		if res.Accepted() {
			assert.NoError(t, cbor.Wellformed(payload), "accepted but fxamacker/cbor finds it malformed")
		}
	})
}

var lintRules = []string{defender.LintMixedKeys, defender.LintUnknownKey, defender.LintCamelCaseKey,
	defender.LintTotalBelowList, defender.LintDroppedCustomValue, defender.LintNearSizeCap, defender.LintNullOptional}

var categories = []string{defender.CategoryDecode, defender.CategoryHeader, defender.CategoryStructure,
	defender.CategoryRange, defender.CategoryCustomMetric, defender.CategorySize}

func checkValidateInvariants(t *testing.T, f defender.Format, payload []byte, lenient bool) defender.Result {
	res := defender.Validate(f, payload, defender.Options{Lenient: lenient})
	again := defender.Validate(f, payload, defender.Options{Lenient: lenient})
	require.Equal(t, res, again, "Validate is deterministic")

	if p := res.Problem; p != nil {
		assert.Equal(t, defender.CodeInvalidPayload, p.Code)
		assert.Equal(t, defender.MsgMalformed, p.Message)
		assert.Contains(t, categories, p.Category)
		assert.True(t, p.Path == "" || strings.HasPrefix(p.Path, "/"), "path %q is a JSON pointer", p.Path)
		assert.NotEmpty(t, p.Reason)
	} else {
		require.NotNil(t, res.Report, "accepted implies a report")
		assert.True(t, res.HeaderParsed)
		assert.Equal(t, "1.0", res.Report.Header.Version)
		assert.True(t, res.Report.Metrics != nil || res.Report.CustomMetrics != nil)
		assert.Contains(t, []string{"long", "short", "mixed"}, res.Report.KeyStyle)
		assert.LessOrEqual(t, len(payload), defender.MaxPayload)
		checkIntegersInRange(t, reflect.ValueOf(res.Report))
		checkReportRoundTrip(t, res.Report)
	}
	if res.HeaderParsed && res.Report != nil {
		assert.Equal(t, res.ReportID, res.Report.Header.ReportID)
	}
	if !res.HeaderParsed {
		assert.Zero(t, res.ReportID)
	}
	for _, l := range res.Lint {
		assert.Contains(t, lintRules, l.Rule)
		assert.NotEmpty(t, l.Message)
	}
	if !lenient && res.Accepted() {
		assert.True(t, defender.Validate(f, payload, defender.Options{Lenient: true}).Accepted(), "lenient accepts what strict accepts")
	}
	checkResponseRoundTrip(t, f, res)
	return res
}

// checkIntegersInRange: every integer of an accepted report fits AWS's
// signed 64-bit fields.
func checkIntegersInRange(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			checkIntegersInRange(t, v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			checkIntegersInRange(t, v.Field(i))
		}
	case reflect.Slice:
		for i := range v.Len() {
			checkIntegersInRange(t, v.Index(i))
		}
	case reflect.Uint64:
		assert.LessOrEqual(t, v.Uint(), uint64(defender.MaxInteger))
	}
}

// checkReportRoundTrip re-encodes an accepted report in both formats and
// spellings; each must validate back to the same Report.
func checkReportRoundTrip(t *testing.T, r *defender.Report) {
	for _, f := range []defender.Format{defender.JSON, defender.CBOR} {
		for _, short := range []bool{false, true} {
			b, err := defender.EncodeReport(f, r, short)
			require.NoError(t, err)
			back := defender.Validate(f, b, defender.Options{})
			require.Nil(t, back.Problem, "re-encoded %s short=%v: %s", f, short, b)
			want := *r
			want.KeyStyle = map[bool]string{false: "long", true: "short"}[short]
			require.Equal(t, &want, back.Report)
		}
	}
}

// checkResponseRoundTrip answers the verdict as the broker would and reads
// the answer back as a device would.
func checkResponseRoundTrip(t *testing.T, f defender.Format, res defender.Result) {
	resp := defender.Response{ThingName: "FuzzThing", Status: defender.StatusAccepted, Timestamp: 1700000000000}
	if res.HeaderParsed {
		id := res.ReportID
		resp.ReportID = &id
	}
	if p := res.Problem; p != nil {
		resp.Status = defender.StatusRejected
		resp.StatusDetails = &defender.StatusDetails{ErrorCode: p.Code, ErrorMessage: p.Message}
	}
	b, err := defender.EncodeResponse(f, resp)
	require.NoError(t, err)
	got, err := defender.DecodeResponse(f, b)
	require.NoError(t, err)
	require.Equal(t, resp, got)
}

func FuzzMatchTopic(f *testing.F) {
	for _, tc := range sdkTopics {
		f.Add(tc.topic)
	}
	for _, s := range []string{"", "$aws/things", "$aws/things/", "$aws/things/+/defender/metrics/cbor/accepted",
		"$aws/things/TestThing/defender/metrics/json/accepted/gibberish", "TestThing", "a:b_c-d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, thing, ok := defender.MatchTopic(s)
		if !ok {
			assert.Equal(t, defender.InvalidTopic, kind)
			assert.Empty(t, thing)
		} else {
			assert.True(t, kind.IsPublish() || kind.IsResponse())
			assert.NotEmpty(t, thing)
			assert.NotContains(t, thing, "/")
			if len(thing) <= defender.MaxThingName {
				built, err := defender.Topic(thing, kind)
				require.NoError(t, err)
				assert.Equal(t, s, built, "a matched topic rebuilds byte for byte")
			}
			if kind.IsResponse() {
				assert.Equal(t, s, defender.ResponseTopic(thing, kind.Format(), kind.Accepted()))
			}
		}
		// The input as a thing name: every topic built from it matches back.
		if s != "" && len(s) <= defender.MaxThingName && !strings.Contains(s, "/") {
			for k := defender.JSONPublish; k <= defender.CBORRejected; k++ {
				topic, err := defender.Topic(s, k)
				require.NoError(t, err)
				gotKind, gotThing, ok := defender.MatchTopic(topic)
				require.True(t, ok, topic)
				assert.Equal(t, k, gotKind)
				assert.Equal(t, s, gotThing)
			}
		}
	})
}
