// This is what a firmware team's own repository looks like when it tests
// its Device Defender agent with ddhil: a profile describing the agent's
// console, and ordinary Go tests through hiltest. The same file runs on
// QEMU (default), Renode or a board by flags alone:
//
//	go test ./...
//	go test ./... -args -ddhil.target=renode -ddhil.renode=/opt/renode/renode
//	go test ./... -args -ddhil.target=board -ddhil.hwmap=bench.yaml
package ownfirmware

import (
	"os"
	"strings"
	"testing"

	"github.com/ddhil/ddhil/harness/hiltest"
)

// options describe our agent: its profile, and its firmware from
// MY_AGENT_ELF (our CI builds it; left empty, hiltest uses the target's
// build of ddhil's reference agent, which this example stands in for).
func options() hiltest.Options {
	return hiltest.Options{
		Profile:  "profiles/my-agent.yaml",
		Firmware: os.Getenv("MY_AGENT_ELF"),
		Vars:     map[string]string{"period_ms": "1000"},
	}
}

// TestAgentConforms: three reports, all accepted, ids increasing, and the
// checks that a short run can judge all pass.
func TestAgentConforms(t *testing.T) {
	dut := hiltest.Start(t, options())
	reports := dut.WaitReports(3)
	for i, r := range reports {
		if !r.Accepted {
			t.Errorf("report %d (id %d) was rejected", i, r.ID)
		}
		if i > 0 && r.ID <= reports[i-1].ID {
			t.Errorf("report_id went from %d to %d", reports[i-1].ID, r.ID)
		}
	}
	hiltest.RequireConformance(t, dut)
}

// TestAgentLogsWhatItPublished is a custom assertion on the console: the
// agent logs every report it sends, with the id the service received.
func TestAgentLogsWhatItPublished(t *testing.T) {
	dut := hiltest.Start(t, options())
	r := dut.WaitReports(1)[0]
	line := dut.Expect(`report: accepted id=\d+`)
	if !strings.HasPrefix(line.Text, "[") {
		t.Errorf("log lines start with a tick count: %q", line.Text)
	}
	if r.Thing != dut.Thing() {
		t.Errorf("report for thing %q, want %q", r.Thing, dut.Thing())
	}
}

// TestFaultIsCaught: a fault of the reference agent (an inflated byte
// count) makes the accuracy check fail — the suite can tell a broken
// agent from a good one.
func TestFaultIsCaught(t *testing.T) {
	o := options()
	o.Faults = []string{"ns-inflate"}
	dut := hiltest.Start(t, o)
	dut.WaitReports(3)
	res := dut.Evaluate("DD-A02")
	if len(res) != 1 || res[0].Status != "fail" {
		t.Fatalf("DD-A02 with ns-inflate: %+v, want fail", res)
	}
}

// TestNoDetectAlarms: the agent raises no alarm of a Detect security
// profile (AWS JSON, as `aws iot describe-security-profile` prints it).
func TestNoDetectAlarms(t *testing.T) {
	o := options()
	o.SecurityProfiles = []string{"../../fixtures/security-profiles/generous.json"}
	dut := hiltest.Start(t, o)
	dut.WaitReports(3)
	hiltest.RequireConformance(t, dut, "DD-D01")
	if res := dut.Evaluate("DD-D01"); res[0].Status != "pass" {
		t.Fatalf("DD-D01 was not judged: %+v", res[0])
	}
}
