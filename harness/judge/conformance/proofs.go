package conformance

// Proof ties a reference-firmware fault to the checks it must turn red.
// The fault suite (tests/faults_test.go) runs the reference agent with the
// fault switched on and asserts that every check in Fails fails, that no
// check outside Fails and MayFail fails, and the clean run passes everything.
type Proof struct {
	Fault string
	// Fails must fail (or warn, for warn-severity checks).
	Fails []string
	// MayFail are consequences of the same defect, each with the reason.
	MayFail map[string]string
}

// Proofs lists one proof per firmware fault.
var Proofs = []Proof{
	{Fault: "wrong-thing", Fails: []string{"DD-S01", "DD-X02", "DD-P03"},
		MayFail: map[string]string{"DD-P01": "it subscribes for its own thing but reports for another"}},
	{Fault: "truncate", Fails: []string{"DD-S02"}},
	{Fault: "no-header", Fails: []string{"DD-S03"}},
	{Fault: "bad-version", Fails: []string{"DD-S03"}},
	{Fault: "camelcase", Fails: []string{"DD-S04", "DD-S07"}},
	{Fault: "port-zero", Fails: []string{"DD-S05"}},
	{Fault: "cmet-bare", Fails: []string{"DD-S06"}},
	{Fault: "oversize", Fails: []string{"DD-S08"},
		MayFail: map[string]string{
			"DD-T02": "the broker disconnects it at every report, so no regular cycle exists",
			"DD-T01": "each reconnect is followed by an oversize report the broker refuses, so no report arrives",
			"DD-R01": "the reconnect scenario's first report is refused again",
			"DD-A02": "the module carried the refused oversize bytes, which the next report cannot account for",
		}},
	{Fault: "no-subscribe", Fails: []string{"DD-P01"}},
	{Fault: "retain", Fails: []string{"DD-P02"},
		MayFail: map[string]string{
			"DD-T01": "the broker refuses the retained publish, so no report arrives after a connection",
			"DD-T02": "no report is ever accepted by the broker",
			"DD-R01": "after the reconnect the first report is refused again",
			"DD-A02": "refused publishes were carried by the module but never reached the broker",
		}},
	{Fault: "late-first", Fails: []string{"DD-T01"},
		MayFail: map[string]string{"DD-R01": "the first report after the reconnect comes late too"}},
	{Fault: "period-skew", Fails: []string{"DD-T02"}},
	{Fault: "burst", Fails: []string{"DD-T03"}},
	{Fault: "rid-repeat", Fails: []string{"DD-I01"},
		MayFail: map[string]string{"DD-I02": "the repeated id may straddle a reconnect"}},
	{Fault: "rid-ticks", Fails: []string{"DD-I02"}},
	{Fault: "ns-cumulative", Fails: []string{"DD-A01"},
		MayFail: map[string]string{"DD-A02": "running totals disagree with the traffic of the interval too"}},
	{Fault: "ns-inflate", Fails: []string{"DD-A02"}},
	{Fault: "tc-stale", Fails: []string{"DD-A03"}},
	{Fault: "ports-missing", Fails: []string{"DD-A04"}},
	{Fault: "no-reconnect", Fails: []string{"DD-R01"},
		MayFail: map[string]string{"DD-T01": "nothing follows the last connection"}},
	{Fault: "retry-storm", Fails: []string{"DD-R02"},
		MayFail: map[string]string{"DD-I01": "retries may reuse the rejected id"}},
	// The dd-* faults run with fixtures/security-profiles/<fault>.json
	// (dd-bad-topic under the strict broker policy, which refuses it).
	{Fault: "dd-extra-out", Fails: []string{"DD-D01"}},
	{Fault: "dd-listen", Fails: []string{"DD-D01"},
		MayFail: map[string]string{"DD-A04": "port 2323 is not in the expected listening set either"}},
	{Fault: "dd-bad-topic", Fails: []string{"DD-D01"},
		MayFail: map[string]string{
			"DD-X02": "the refused publish is on another thing's topic",
			"DD-T03": "the strict policy closes the connection; the first report after the reconnect comes within the same cycle",
		}},
}

// ProofFor returns the proof of a fault.
func ProofFor(fault string) (Proof, bool) {
	for _, p := range Proofs {
		if p.Fault == fault {
			return p, true
		}
	}
	return Proof{}, false
}
