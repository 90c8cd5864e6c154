package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"
)

// withDetect adds a Detect evaluation (one alarm cleared, one still open
// at the end) and an Audit finding to the sample report.
func withDetect() *Report {
	r := sampleReport()
	r.Detect = &Detect{
		SecurityProfiles: []DetectProfile{{Name: "ddhil-strict", Path: "fixtures/security-profiles/strict.json", Behaviors: 2}},
		Window:           "normal phase (until 1m0s)",
		WindowEnd:        ms(100000),
		TimeScale:        "durations scaled by test period 10s / production period 5m0s",
		Violations: []Violation{
			{Behavior: "OnlyMqttsListens", Metric: "aws:listening-tcp-ports", State: "in-alarm", At: ms(13000), Value: json.RawMessage(`{"ports":[5001,8883]}`),
				Datapoints: 2, Profile: "ddhil-strict", Thing: sampleThing, ViolationID: "0f3c9a7e5b2d4c18a6e1f0b9d8c7a6e5"},
			{Behavior: "OnlyMqttsListens", Metric: "aws:listening-tcp-ports", State: "alarm-cleared", At: ms(43000), Value: json.RawMessage(`{"ports":[8883]}`),
				Datapoints: 1, Profile: "ddhil-strict", Thing: sampleThing, ViolationID: "0f3c9a7e5b2d4c18a6e1f0b9d8c7a6e5"},
			{Behavior: "BytesOutCap", Metric: "aws:all-bytes-out", State: "in-alarm", At: ms(53000), Value: json.RawMessage(`{"count":9000}`),
				Datapoints: 1, Profile: "ddhil-strict", Thing: sampleThing, ViolationID: "1f3c9a7e5b2d4c18a6e1f0b9d8c7a6e5", Suppressed: true},
		},
		Skipped: []DetectSkipped{{Profile: "ddhil-strict", Behavior: "MLBytes", Reason: "ML Detect cannot be reproduced offline"}},
	}
	r.Audit = &Audit{Findings: []AuditFinding{{CheckName: "IOT_POLICY_OVERLY_PERMISSIVE_CHECK", Severity: "CRITICAL", Resource: "IOT_POLICY dev/1",
		Reason: "Policy allows broad access to IoT data plane actions: [iot:Connect].", ReasonCode: "ALLOWS_BROAD_ACCESS_TO_IOT_DATA_PLANE_ACTIONS",
		Finding: json.RawMessage(`{"checkName":"IOT_POLICY_OVERLY_PERMISSIVE_CHECK"}`)}}}
	return r
}

func TestDetectJSONRoundTrip(t *testing.T) {
	src := withDetect()
	var buf bytes.Buffer
	require.NoError(t, WriteJSON(&buf, src))
	s := buf.String()
	assert.Contains(t, s, `"detect": {`)
	assert.Contains(t, s, `"state": "in-alarm"`)
	assert.Contains(t, s, `"at": 13000000000`)
	assert.Contains(t, s, `"datapoints": 2`)
	got, err := ReadJSON(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.NotNil(t, got.Detect)
	assert.Equal(t, src.Detect.Violations[0].Behavior, got.Detect.Violations[0].Behavior)
	var again bytes.Buffer
	require.NoError(t, WriteJSON(&again, got))
	assert.Equal(t, s, again.String(), "re-rendering a read report changes it")

	// Without security profiles there is no detect key at all.
	buf.Reset()
	require.NoError(t, WriteJSON(&buf, sampleReport()))
	assert.NotContains(t, buf.String(), `"detect"`)
	assert.NotContains(t, buf.String(), `"audit"`)
}

func TestDetectMarkdownAndJUnit(t *testing.T) {
	var md, ju bytes.Buffer
	require.NoError(t, WriteMarkdown(&md, withDetect()))
	require.NoError(t, WriteJUnit(&ju, withDetect()))
	m := md.String()
	assert.Contains(t, m, "### Detect")
	assert.Contains(t, m, "| in-alarm | ddhil-strict / OnlyMqttsListens | aws:listening-tcp-ports | "+sampleThing+" | 00:13.000 |")
	assert.Contains(t, m, "`{\"ports\":[5001,8883]}`")
	assert.Contains(t, m, "### Audit")
	assert.Contains(t, m, "IOT\\_POLICY\\_OVERLY\\_PERMISSIVE\\_CHECK")
	j := ju.String()
	assert.Contains(t, j, `classname="ddhil.detect"`)
	assert.Contains(t, j, "in-alarm ddhil-strict/OnlyMqttsListens (aws:listening-tcp-ports) thing "+sampleThing+" at 00:13.000 value {\"ports\":[5001,8883]} after 2 datapoint(s)")
	assert.Contains(t, j, "(alerts suppressed)")
	assert.Contains(t, j, "CRITICAL IOT_POLICY_OVERLY_PERMISSIVE_CHECK")
	var plain bytes.Buffer
	require.NoError(t, WriteJUnit(&plain, sampleReport()))
	assert.NotContains(t, plain.String(), "ddhil.detect")
}

// The timeline draws each alarm span on an "alarms" lane: the cleared one
// to its alarm-cleared event, the open one to the end of the run.
func TestDetectTimelineSpans(t *testing.T) {
	r := withDetect()
	doc := parseHTML(t, r)
	svg := findAll(doc, element("svg"))[0]
	var lanes []string
	for _, n := range findAll(svg, func(n *html.Node) bool { return element("text")(n) && hasClass(n, "lanename") }) {
		lanes = append(lanes, text(n))
	}
	assert.Equal(t, []string{"phases", "harness", "connection", "expected", "reports", "responses", "alarms", "time (wall)"}, lanes)
	spans := findAll(svg, func(n *html.Node) bool { return element("rect")(n) && hasClass(n, "alarm") })
	require.Len(t, spans, 2)
	var titles []string
	for _, s := range spans {
		titles = append(titles, text(s))
	}
	assert.Contains(t, titles[0], "in-alarm at 00:13.000, alarm-cleared at 00:43.000")
	assert.Contains(t, titles[1], "still in alarm at the end of the evaluated window")
	x := func(n *html.Node) float64 {
		var f float64
		_ = json.Unmarshal([]byte(attr(n, "width")), &f)
		return f
	}
	// 30 s of a 120.25 s run on a 1068-unit plot: about 266 units wide.
	assert.InDelta(t, 30.0/120.25*(svgWidth-svgLeft-svgRight), x(spans[0]), 1)
	assert.InDelta(t, 47.0/120.25*(svgWidth-svgLeft-svgRight), x(spans[1]), 1, "an open alarm ends with the evaluated window (100 s)")
	page := text(doc)
	assert.True(t, strings.Contains(page, "Skipped ddhil-strict / MLBytes: ML Detect cannot be reproduced offline"), "skipped behaviours listed")

	// No detect, no lane.
	doc = parseHTML(t, sampleReport())
	svg = findAll(doc, element("svg"))[0]
	assert.Empty(t, findAll(svg, func(n *html.Node) bool { return element("rect")(n) && hasClass(n, "alarm") }))

}
