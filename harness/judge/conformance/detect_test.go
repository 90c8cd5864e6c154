package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness/judge/detect"
)

const profilesDir = "../../../fixtures/security-profiles/"

func loadProfiles(t *testing.T, names ...string) *detect.Definitions {
	t.Helper()
	var paths []string
	for _, n := range names {
		paths = append(paths, profilesDir+n+".json")
	}
	d, err := detect.Load(paths...)
	require.NoError(t, err)
	return d
}

// recordedClean is a real `ddhil run` of the clean reference agent in QEMU
// (1 s test period, 300 s production period), kept as test data.
func recordedClean(t *testing.T) *Capture {
	t.Helper()
	run, err := detect.LoadRun("../detect/testdata/clean-run/events.jsonl", detect.Scale{}, true)
	require.NoError(t, err)
	c := &Capture{Thing: "ddhil-dut-1", Events: run.Recording.Events, Expect: Expectations{TestPeriod: time.Second, ProductionPeriod: 300 * time.Second}}
	b, err := os.ReadFile("../detect/testdata/clean-run/actions.jsonl")
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var a Action
		require.NoError(t, jsonUnmarshal(line, &a))
		c.Actions = append(c.Actions, a)
	}
	return c
}

func dd01(c *Capture) Result {
	ch, _ := Lookup("DD-D01")
	return Evaluate(c, []Check{ch})[0]
}

// On the real clean run: no profile skips DD-D01, the generous profile
// passes, the strict one (only port 8883 may listen; the agent also
// listens on 5001) fails with an in-alarm finding.
func TestDD01OnRecordedCleanRun(t *testing.T) {
	c := recordedClean(t)
	r := dd01(c)
	require.Equal(t, StatusSkip, r.Status)
	require.Contains(t, r.SkipReason, "no security profile")

	c.SecurityProfiles = loadProfiles(t, "generous")
	r = dd01(c)
	require.Equal(t, StatusPass, r.Status, "%+v", r.Findings)

	c.SecurityProfiles = loadProfiles(t, "strict")
	r = dd01(c)
	require.Equal(t, StatusFail, r.Status)
	require.Len(t, r.Findings, 1)
	require.Contains(t, r.Findings[0].Message, "behaviour OnlyMqttsListens of security profile ddhil-strict (aws:listening-tcp-ports) went into alarm with [5001 8883] after 2 violating datapoint(s)")
	res, window := c.EvaluateDetect()
	require.Contains(t, window, "normal phase")
	require.Contains(t, res.TimeScale, "300 s of AWS time = 1s of run time")

	// `ddhil detect` reads the same run back from disk and gives the same answer.
	off, err := detect.LoadRun("../detect/testdata/clean-run/events.jsonl", detect.Scale{}, false)
	require.NoError(t, err)
	require.Equal(t, off.Window, window)
	require.Equal(t, res.Violations, c.SecurityProfiles.Evaluate(off.Recording, nil).Violations)
}

// faultModel is a Go model of the reference agent with one of the dd-*
// faults the firmware grows for DD-D01: a real MQTT client reporting every
// period to a real broker with the strict policy.
//   - dd-extra-out: network_stats.bytes_out carries 8 KB of extra traffic;
//   - dd-listen: an unexpected listening TCP port 2323;
//   - dd-bad-topic: a publish the strict policy refuses (the broker
//     disconnects, the model reconnects and carries on).
func faultModel(t *testing.T, fault string, period time.Duration) *Capture {
	t.Helper()
	b, err := broker.New(broker.Config{Policy: broker.PolicyStrict, Throttle: broker.NoThrottle})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); _ = b.Close() })
	require.NoError(t, b.Start(ctx))
	const thing = "dev-model"
	connect := func() paho.Client {
		opts := paho.NewClientOptions().AddBroker("tcp://" + b.Addr("tcp")).SetClientID(thing).
			SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second).SetCleanSession(true)
		c := paho.NewClient(opts)
		tok := c.Connect()
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
		tok = c.Subscribe("$aws/things/"+thing+"/defender/metrics/json/+", 1, nil)
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
		return c
	}
	wait := func(what string, match func(broker.Event) bool, after uint64) {
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer wcancel()
		_, err := b.Recorder().WaitForAfter(wctx, after, match)
		require.NoError(t, err, what)
	}
	c := connect()
	tick := time.NewTicker(period) // the device's own report period, not a synchronisation
	defer tick.Stop()
	for k := range 6 {
		<-tick.C
		ports := `{"port":8883},{"port":5001}`
		out := 590
		switch {
		case fault == "dd-listen" && k >= 2:
			ports += `,{"port":2323}`
		case fault == "dd-extra-out" && k >= 2:
			out += 8000
		case fault == "dd-bad-topic" && k == 2:
			mark := b.Recorder().Last()
			c.Publish("$aws/things/other-thing/shadow/update", 1, false, "{}")
			wait("policy refusal", func(ev broker.Event) bool { return ev.Kind == broker.EventDisconnect }, mark)
			c.Disconnect(0)
			c = connect()
		}
		payload := fmt.Sprintf(`{"header":{"report_id":%d,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":[%s]},"listening_udp_ports":{"ports":[{"port":5353}],"total":1},"network_stats":{"bytes_in":175,"bytes_out":%d,"packets_in":2,"packets_out":2},"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"192.0.2.1:1883","local_port":50152}],"total":1}}}}`,
			1000+k, ports, out)
		mark := b.Recorder().Last()
		tok := c.Publish("$aws/things/"+thing+"/defender/metrics/json", 1, false, payload)
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
		wait("response", func(ev broker.Event) bool { return ev.Kind == broker.EventResponse }, mark)
	}
	c.Disconnect(0)
	wait("disconnect", func(ev broker.Event) bool { return ev.Kind == broker.EventDisconnect }, b.Recorder().Last()-1)
	return &Capture{Thing: thing, Events: b.Events(), Expect: Expectations{TestPeriod: period, ProductionPeriod: 300 * time.Second}}
}

// Each dd-* fault trips the behaviour its profile targets and no other:
// the profiles of the other faults stay quiet, and the clean model trips
// nothing (docs/detect.md, issue 12 "Done when").
func TestFaultModelsTripOnlyTheirBehaviour(t *testing.T) {
	const period = 200 * time.Millisecond
	all := loadProfiles(t, "generous", "dd-extra-out", "dd-listen", "dd-bad-topic")
	want := map[string][]string{
		"clean":        nil,
		"dd-extra-out": {"dd-extra-out/BytesOutCap", "ddhil-generous/BytesOutCap"},
		"dd-listen":    {"dd-listen/NoTelnetListener", "ddhil-generous/FewTcpListeners", "ddhil-generous/KnownTcpPorts"},
		"dd-bad-topic": {"dd-bad-topic/NoAuthorizationFailures", "ddhil-generous/NoAuthFailures"},
	}
	for _, fault := range []string{"clean", "dd-extra-out", "dd-listen", "dd-bad-topic"} {
		t.Run(fault, func(t *testing.T) {
			c := faultModel(t, fault, period)
			c.SecurityProfiles = all
			res, _ := c.EvaluateDetect()
			var alarmed []string
			for _, v := range res.Violations {
				if v.State == detect.InAlarm && !slices.Contains(alarmed, v.Profile+"/"+v.Behavior) {
					alarmed = append(alarmed, v.Profile+"/"+v.Behavior)
				}
			}
			sort.Strings(alarmed)
			require.Equal(t, want[fault], alarmed)
			r := dd01(c)
			if fault == "clean" {
				require.Equal(t, StatusPass, r.Status, "%+v", r.Findings)
			} else {
				require.Equal(t, StatusFail, r.Status)
			}
		})
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
