package tests

import (
	"context"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/hiltest"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/session"
)

// startSession boots the selected target with the reference agent through
// hiltest, as a user's suite would, and provisions it with a 1 s report
// period (hiltest turns the broker's 300 s throttle off).
func startSession(t *testing.T, vars profile.Vars, faults ...string) *session.Session {
	t.Helper()
	all := profile.Vars{"thing": "dut-1", "period_ms": "1000"}
	for k, v := range vars {
		all[k] = v
	}
	return hiltest.Start(t, hiltest.Options{Profile: agentProfile(), Vars: all, Faults: faults}).Session()
}

// reportIDs returns the report ids of events (all must have parsed).
func reportIDs(t *testing.T, evs []broker.Event) []uint64 {
	t.Helper()
	var ids []uint64
	for _, ev := range evs {
		require.NotNil(t, ev.Result, "report event without a verdict")
		require.True(t, ev.Result.HeaderParsed, "report header did not parse: %s", ev.Payload)
		ids = append(ids, ev.Result.ReportID)
	}
	return ids
}

func assertIncreasing(t *testing.T, ids []uint64) {
	t.Helper()
	for i := 1; i < len(ids); i++ {
		assert.Greater(t, ids[i], ids[i-1], "report_id must increase: %v", ids)
	}
}

// TestReportsInEveryFormat boots the agent once and reprovisions it (conf
// set, commit, reset) for each format and key style; each combination must
// deliver three accepted reports with increasing report_id.
func TestReportsInEveryFormat(t *testing.T) {
	combos := []struct {
		format defender.Format
		keys   string
	}{
		{defender.JSON, "long"},
		{defender.JSON, "short"},
		{defender.CBOR, "long"},
		{defender.CBOR, "short"},
	}
	s := startSession(t, profile.Vars{"format": string(combos[0].format), "keys": combos[0].keys})
	accepted := s.Console().Subscribe(regexp.MustCompile(`report: accepted id=(\d+)`))
	defer accepted.Cancel()

	for i, c := range combos {
		t.Run(string(c.format)+"-"+c.keys, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if i > 0 {
				require.NoError(t, s.Provision(ctx, profile.Vars{"format": string(c.format), "keys": c.keys}))
				s.Mark()
			}
			evs, err := s.WaitReports(ctx, 3)
			require.NoError(t, err)
			for _, ev := range evs {
				assert.Equal(t, "dut-1", ev.Thing)
				assert.Equal(t, c.format, ev.Format)
				wantTopic, err := defender.Topic("dut-1", publishKind(c.format))
				require.NoError(t, err)
				assert.Equal(t, wantTopic, ev.Topic)
				require.NotNil(t, ev.Result)
				assert.True(t, ev.Result.Accepted(), "report rejected: %+v", ev.Result.Problem)
				require.NotNil(t, ev.Result.Report)
				assert.Equal(t, c.keys, ev.Result.Report.KeyStyle)
			}
			ids := reportIDs(t, evs)
			assertIncreasing(t, ids)

			// The firmware heard the broker's acceptance of these reports.
			want := map[uint64]bool{}
			for _, id := range ids {
				want[id] = true
			}
			for len(want) > 0 {
				select {
				case l, ok := <-accepted.C:
					require.True(t, ok, "console closed")
					id, err := strconv.ParseUint(regexp.MustCompile(`id=(\d+)`).FindStringSubmatch(l.Text)[1], 10, 64)
					require.NoError(t, err)
					delete(want, id)
				case <-ctx.Done():
					t.Fatalf("firmware did not log acceptance of %v", want)
				}
			}
			// ... and had logged each of them as published before.
			assert.Eventually(t, func() bool {
				logged := map[uint64]bool{}
				for _, p := range s.Published() {
					logged[p.ID] = p.Format == string(c.format) && p.Keys == c.keys
				}
				for _, id := range ids {
					if !logged[id] {
						return false
					}
				}
				return true
			}, 5*time.Second, 10*time.Millisecond, "ids %v not all logged as published with format=%s keys=%s", ids, c.format, c.keys)
		})
	}

	// The broker saw every report as its own verdict says; ids increased
	// on each connection (DD-I01).
	capture, err := s.Capture()
	require.NoError(t, err)
	res := conformance.Evaluate(capture, mustChecks(t, "DD-I01"))
	require.Len(t, res, 1)
	assert.Equal(t, conformance.StatusPass, res[0].Status, "%+v", res[0])
}

// tickScale bounds ids that count milliseconds since boot (~11 days);
// healthy ids are Unix epoch milliseconds (~1.7e12).
const tickScale = 1_000_000_000

// TestFaultsFromFirstBoot: a fault named in session.Config.Faults is on
// from the boot after provisioning, so the very first report shows it.
func TestFaultsFromFirstBoot(t *testing.T) {
	s := startSession(t, profile.Vars{"format": "json", "keys": "long"}, "rid-ticks")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	evs, err := s.WaitReports(ctx, 2)
	require.NoError(t, err)
	ids := reportIDs(t, evs)
	assertIncreasing(t, ids)
	for _, id := range ids {
		assert.Less(t, id, uint64(tickScale), "rid-ticks from the first report: %v", ids)
	}
	capture, err := s.Capture()
	require.NoError(t, err)
	faults := capture.ActionsOf(conformance.ActionFault)
	require.Len(t, faults, 1)
	assert.Equal(t, "rid-ticks on", faults[0].Detail)
	resets := capture.ActionsOf(conformance.ActionReset)
	require.Len(t, resets, 1)
	assert.Greater(t, resets[0].At, faults[0].At, "the fault was set before the provisioning reset")
}

func publishKind(f defender.Format) defender.TopicKind {
	if f == defender.CBOR {
		return defender.CBORPublish
	}
	return defender.JSONPublish
}

func mustChecks(t *testing.T, ids ...string) []conformance.Check {
	t.Helper()
	cs, err := conformance.Select(ids)
	require.NoError(t, err)
	return cs
}

// TestRidTicksRestartAfterReset turns on the firmware's rid-ticks fault
// (report_id = milliseconds since boot) and resets the target: the ids
// recorded after the reset are lower than before it, which DD-I02 flags.
func TestRidTicksRestartAfterReset(t *testing.T) {
	s := startSession(t, profile.Vars{"format": "json", "keys": "long"})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	healthy, err := s.WaitReports(ctx, 2)
	require.NoError(t, err)
	healthyIDs := reportIDs(t, healthy)
	assertIncreasing(t, healthyIDs)
	assert.Greater(t, healthyIDs[0], uint64(tickScale), "healthy ids are epoch milliseconds")

	require.NoError(t, s.SetFault(ctx, "rid-ticks", true))
	s.Mark()
	before, err := s.WaitReports(ctx, 3)
	require.NoError(t, err)
	beforeIDs := reportIDs(t, before)[1:] // the first may have been built before the switch
	assertIncreasing(t, beforeIDs)
	for _, id := range beforeIDs {
		assert.Less(t, id, uint64(tickScale), "rid-ticks ids count ms since boot: %v", beforeIDs)
	}

	require.NoError(t, s.Reset(ctx))
	s.Mark()
	after, err := s.WaitReports(ctx, 2)
	require.NoError(t, err)
	afterIDs := reportIDs(t, after)
	assertIncreasing(t, afterIDs)
	assert.Less(t, afterIDs[0], beforeIDs[len(beforeIDs)-1],
		"with rid-ticks the ids restart after a reset: before %v, after %v", beforeIDs, afterIDs)
	assert.Less(t, afterIDs[0], uint64(tickScale))

	capture, err := s.Capture()
	require.NoError(t, err)
	require.NotEmpty(t, capture.ActionsOf(conformance.ActionReset))
	res := conformance.Evaluate(capture, mustChecks(t, "DD-I02"))
	require.Len(t, res, 1)
	assert.Equal(t, conformance.StatusFail, res[0].Status, "DD-I02 must flag the restart: %+v", res[0])
}
