package runner

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/report"
)

// TestAnswersTellShutdownFromDrop: a response the run withheld on purpose is
// "dropped"; one still queued when the broker closed, or never sent because
// the run ended, is "unsent" — the normal end of a run is not a drop.
func TestAnswersTellShutdownFromDrop(t *testing.T) {
	ok := &defender.Response{Status: defender.StatusAccepted}
	no := &defender.Response{Status: defender.StatusRejected}
	events := []broker.Event{
		{Seq: 1, Kind: broker.EventReport, ConnID: "c1"},
		{Seq: 2, Kind: broker.EventResponse, ConnID: "c1", Response: ok},
		{Seq: 3, Kind: broker.EventReport, ConnID: "c1"},
		{Seq: 4, Kind: broker.EventResponse, ConnID: "c1", Response: ok, Fault: broker.FaultDrop},
		{Seq: 5, Kind: broker.EventReport, ConnID: "c1"},
		{Seq: 6, Kind: broker.EventResponse, ConnID: "c1", Response: no},
		{Seq: 7, Kind: broker.EventReport, ConnID: "c2"},
		{Seq: 8, Kind: broker.EventResponse, ConnID: "c2", Response: ok, Fault: broker.FaultUndelivered},
		{Seq: 9, Kind: broker.EventReport, ConnID: "c2"},
	}
	assert.Equal(t, map[uint64]string{
		1: report.MarkAccepted, 3: report.AnswerDropped, 5: report.MarkRejected, 7: report.AnswerUnsent, 9: report.AnswerUnsent,
	}, answers(events))
}

// TestCheckOfCarriesTheEvidence: expected, observed and measured reach the
// report unchanged, with the shared vocabulary (no conversion).
func TestCheckOfCarriesTheEvidence(t *testing.T) {
	ch, _ := conformance.Lookup("DD-T02")
	rc := checkOf(conformance.Result{Check: ch, Status: conformance.StatusFail, Measured: "5 intervals: median 1.3s",
		Findings: []conformance.Finding{{Message: "off", Expected: "median 1s ± 10%", Observed: "median 1.3s (+30%)"}}})
	assert.Equal(t, report.StatusFail, rc.Status)
	assert.Equal(t, report.Category("timing"), rc.Category)
	assert.Equal(t, "5 intervals: median 1.3s", rc.Measured)
	assert.Equal(t, "median 1s ± 10%", rc.Findings[0].Expected)
	assert.Equal(t, "median 1.3s (+30%)", rc.Findings[0].Observed)
}
