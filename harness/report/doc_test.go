package report

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSchemaDocExample keeps the example in docs/report-schema.md a valid,
// self-consistent report.
func TestSchemaDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/report-schema.md")
	require.NoError(t, err)
	_, after, ok := strings.Cut(string(doc), "```json\n")
	require.True(t, ok, "no json block in the schema doc")
	example, _, ok := strings.Cut(after, "```")
	require.True(t, ok)

	r, err := ReadJSON(strings.NewReader(example))
	require.NoError(t, err)
	assert.Equal(t, Pass, r.Verdict())
	assert.Equal(t, r.VerdictReason(), r.OutcomeReason, "stored reason is what the writer would say")
	require.Len(t, r.Reports, 1)
	rc := r.Reports[0]
	assert.Equal(t, rc.Size, len(rc.Payload))
	var payload struct {
		Header struct {
			ReportID uint64 `json:"report_id"`
		} `json:"header"`
	}
	require.NoError(t, json.Unmarshal(rc.Payload, &payload), "payload is the JSON report")
	assert.Equal(t, *rc.ReportID, payload.Header.ReportID)
	assert.Equal(t, rc.Decoded.Header.ReportID, payload.Header.ReportID)

	// Every documented top-level field is in the example.
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(example), &top))
	var buf bytes.Buffer
	require.NoError(t, WriteJSON(&buf, r))
	var written map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(buf.Bytes(), &written))
	for k := range written {
		assert.Contains(t, top, k, "example lacks top-level field %s", k)
	}
}

// TestSchemaDocListsEveryFile keeps the file table of docs/report-schema.md
// in step with report.Formats and the run's artefacts: a format or file
// added in code and not in the doc fails here.
func TestSchemaDocListsEveryFile(t *testing.T) {
	doc, err := os.ReadFile("../../docs/report-schema.md")
	require.NoError(t, err)
	table, _, _ := strings.Cut(string(doc), "## Versioning")
	for _, f := range Formats() {
		assert.Contains(t, table, "`"+f.File+"`", "format %s", f.Name)
	}
	for _, a := range RunArtefacts() {
		assert.Contains(t, table, "`"+a.Name+"`")
	}
	assert.Contains(t, table, "`"+FileScreenshot+"`")
}
