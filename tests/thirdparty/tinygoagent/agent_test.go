package tinygoagent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/link/espat"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/scenario"
	"github.com/ddhil/ddhil/harness/session"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/targettest"
	"github.com/ddhil/ddhil/tests/thirdparty/tinygoagent"
)

func TestTinyGoAgentIsJudged(t *testing.T) {
	prof, err := profile.Parse(tinygoagent.Profile)
	require.NoError(t, err)
	agent := tinygoagent.New()
	tgt := targettest.New(agent.Firmware, targettest.Options{Transport: true,
		Info: target.Info{Kind: "fake", Name: "tinygoagent (in-process)"}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out := t.TempDir()
	started := time.Now()
	s, err := session.Start(ctx, session.Config{Target: tgt, Profile: prof, Vars: profile.Vars{"thing": "tinygo-dut-1"},
		BrokerConfig: broker.Config{Throttle: broker.NoThrottle}, OutDir: out, Logf: t.Logf})
	require.NoError(t, err)
	defer s.Close()
	exp, err := prof.Expectations(s.Vars())
	require.NoError(t, err)
	require.NoError(t, scenario.Run(ctx, s, scenario.Config{Thing: "tinygo-dut-1", Expect: exp, Logf: t.Logf}, scenario.Full(3)))
	capture, err := s.Capture()
	require.NoError(t, err)
	capture.Expect = exp
	rep := runner.Judge(capture, conformance.Catalogue(), started)
	require.NoError(t, report.WriteAll(out, rep))
	for _, c := range rep.Checks {
		t.Logf("%s %s %s %v", c.ID, c.Status, c.SkipReason, c.Findings)
	}
	var cmds []string
	for _, e := range s.Module().Events() {
		if e.Kind == espat.EventCommand {
			cmds = append(cmds, fmt.Sprintf("%q -> %q (%s %s)", e.Text, e.Answer, e.Result, e.Reason))
		}
	}
	t.Logf("commands:\n%s", strings.Join(cmds, "\n"))
	t.Logf("console:\n%s", s.Console().Tail(200))
}
