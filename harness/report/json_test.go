package report

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJSONRoundTrip(t *testing.T) {
	for _, o := range []Outcome{Pass, Fail, Error} {
		t.Run(string(o), func(t *testing.T) {
			src := sampleWithVerdict(o)
			var buf bytes.Buffer
			require.NoError(t, WriteJSON(&buf, src))

			got, err := ReadJSON(bytes.NewReader(buf.Bytes()))
			require.NoError(t, err)
			assert.Equal(t, src.finalized(), got, "read-back differs from what was written")
			assert.Equal(t, o, got.Outcome)

			var again bytes.Buffer
			require.NoError(t, WriteJSON(&again, got))
			assert.Equal(t, buf.String(), again.String(), "re-rendering a read report changes it")
		})
	}
}

func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, WriteJSON(&buf, sampleReport()))
	s := buf.String()
	assert.True(t, strings.HasPrefix(s, "{\n  \"schema\": \"ddhil.report/v1\",\n  \"run\": {"), "schema comes first: %.60s", s)
	assert.Contains(t, s, `"verdict": "error"`)
	assert.Contains(t, s, `"duration_ns": 120250000000`)
	assert.Contains(t, s, `"payload": "eyJoZWFkZXIi`, "payload is base64")
	assert.Contains(t, s, `"findings": []`, "empty findings are [] not null")
	assert.True(t, strings.HasSuffix(s, "}\n"))
}

func TestReadJSONRejects(t *testing.T) {
	var good bytes.Buffer
	require.NoError(t, WriteJSON(&good, sampleReport()))
	cases := []struct {
		name  string
		input string
		want  string
	}{
		{"empty input", "", "not a JSON object"},
		{"not json", "hello", "not a JSON object"},
		{"array", "[1,2]", "not a JSON object"},
		{"no schema", `{"run":{}}`, `no "schema" field`},
		{"future schema", `{"schema":"ddhil.report/v2"}`, `unsupported schema "ddhil.report/v2": this ddhil reads "ddhil.report/v1" only`},
		{"other tool", `{"schema":"something-else"}`, `unsupported schema "something-else"`},
		{"wrong type", `{"schema":"ddhil.report/v1","checks":"none"}`, "line 1 column"},
		{"syntax error with position", "{\"schema\":\"ddhil.report/v1\",\n\"checks\": [,]}", "line 2"},
		{"trailing data", good.String() + `{"x":1}`, "trailing data"},
		{"inconsistent verdict", strings.Replace(good.String(), `"verdict": "error"`, `"verdict": "pass"`, 1), `verdict is "pass" but the checks give "error"`},
		{"invalid check", strings.Replace(good.String(), `"severity": "warn"`, `"severity": "loud"`, 1), `severity "loud"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ReadJSON(strings.NewReader(tc.input))
			require.Error(t, err)
			assert.Nil(t, r)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "report: "), err.Error())
		})
	}
}

func TestReadJSONIgnoresUnknownFields(t *testing.T) {
	// Later v1 writers may add fields; this reader keeps working.
	var good bytes.Buffer
	require.NoError(t, WriteJSON(&good, sampleReport()))
	in := strings.Replace(good.String(), `"schema": "ddhil.report/v1",`, `"schema": "ddhil.report/v1", "added_later": {"x": 1},`, 1)
	r, err := ReadJSON(strings.NewReader(in))
	require.NoError(t, err)
	assert.Equal(t, sampleReport().finalized(), r)
}

func TestReadJSONMinimal(t *testing.T) {
	// The smallest valid report: derived fields absent, nothing judged.
	r, err := ReadJSON(strings.NewReader(`{"schema":"ddhil.report/v1"}`))
	require.NoError(t, err)
	assert.Equal(t, Error, r.Verdict())
	var buf bytes.Buffer
	require.NoError(t, WriteJSON(&buf, r))
	assert.Contains(t, buf.String(), `"verdict": "error"`)
}

func TestWritersRejectInvalid(t *testing.T) {
	bad := sampleReport()
	bad.Checks[5].SkipReason = ""
	for _, f := range Formats() {
		w := f.Write
		t.Run(f.Name, func(t *testing.T) {
			var buf bytes.Buffer
			err := w(&buf, bad)
			require.ErrorContains(t, err, "skipped without skip_reason")
			assert.Zero(t, buf.Len(), "nothing written for an invalid report")
			require.ErrorContains(t, w(&buf, nil), "nil report")
		})
	}
}

func TestEvidenceKeepsSixtyFourBits(t *testing.T) {
	r := sampleWithVerdict(Fail)
	r.Checks[4].Findings[0].Evidence = map[string]any{"report_id": uint64(18446744073709551615), "ratio": 0.5, "nested": map[string]any{"n": int64(-9007199254740993)}}
	var buf bytes.Buffer
	require.NoError(t, WriteJSON(&buf, r))
	assert.Contains(t, buf.String(), `"report_id": 18446744073709551615`)
	back, err := ReadJSON(&buf)
	require.NoError(t, err)
	ev := back.Checks[4].Findings[0].Evidence
	assert.Equal(t, "18446744073709551615", fmt.Sprint(ev["report_id"]))
	assert.Equal(t, "-9007199254740993", fmt.Sprint(ev["nested"].(map[string]any)["n"]))
	assert.Equal(t, r.finalized(), back)
}
