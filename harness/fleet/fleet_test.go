package fleet

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
	"github.com/ddhil/ddhil/harness/fleet/mosquitto"
)

// fastProfile reports every second (300 s at period_scale 300), with every
// metric kind, half CBOR and half short keys.
func fastProfile(t testing.TB) *Profile {
	t.Helper()
	p, err := LoadProfile("../../fixtures/fleet/normal.yaml")
	require.NoError(t, err)
	p.PeriodScale = 300
	p.Periods = []PeriodShare{{Period: Duration(300 * time.Second), Weight: 1}}
	p.Formats.JSON, p.Formats.CBOR = 1, 1
	p.Keys.Long, p.Keys.Short = 1, 1
	return p
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestSmallFleetAgainstBroker runs 50 agents against the real broker for
// 3 s: every report is accepted, and the record holds each accepted report
// with its payload plus every connect and disconnect, readable by the
// broker's own reader.
func TestSmallFleetAgainstBroker(t *testing.T) {
	var rec bytes.Buffer
	rep, err := RunDDHIL(testCtx(t, time.Minute), Options{Devices: 50, Profile: fastProfile(t), Duration: 3 * time.Second}, &rec)
	require.NoError(t, err)
	res := rep.Result
	require.Equal(t, 50, res.Connected, res.FirstError)
	require.Zero(t, res.Rejected, res.FirstError)
	require.Zero(t, res.Lost, res.FirstError)
	require.Zero(t, res.Disconnected, res.FirstError)
	require.GreaterOrEqual(t, res.Sent, uint64(60), "each agent reports about once a second for 3 s (margin for a loaded machine)")
	require.Equal(t, res.Sent, res.Accepted)
	require.Equal(t, res.Accepted, res.RTT.Count)
	require.Positive(t, res.RTT.P99)
	require.Positive(t, res.Throughput)
	require.LessOrEqual(t, res.Throughput, float64(res.Accepted)/res.Steady.Seconds())
	require.NotZero(t, res.JSON*res.CBOR*res.Long*res.Short, "fleet mix: %s", res.Mix())

	events, err := broker.ReadJSONL(&rec)
	require.NoError(t, err)
	count := map[broker.EventKind]int{}
	styles := map[string]int{}
	formats := map[defender.Format]int{}
	for _, ev := range events {
		count[ev.Kind]++
		if ev.Kind != broker.EventReport {
			continue
		}
		require.NotNil(t, ev.Result)
		require.True(t, ev.Result.Accepted(), "report of %s rejected: %+v", ev.Thing, ev.Result.Problem)
		// The payload is kept and re-validates to the same verdict.
		again := defender.Validate(ev.Format, ev.Payload, defender.Options{})
		require.True(t, again.Accepted())
		styles[again.Report.KeyStyle]++
		formats[ev.Format]++
		require.Len(t, again.Report.CustomMetrics, 5)
		require.NotNil(t, again.Report.Metrics.NetworkStats)
	}
	require.Equal(t, int(res.Accepted), count[broker.EventReport])
	require.Equal(t, 50, count[broker.EventConnect])
	require.Equal(t, 50, count[broker.EventDisconnect])
	require.Equal(t, 100, count[broker.EventSubscribe], "accepted and rejected per agent")
	require.Positive(t, styles["long"])
	require.Positive(t, styles["short"])
	require.Positive(t, formats[defender.JSON])
	require.Positive(t, formats[defender.CBOR])
	require.NotContains(t, styles, "mixed")
	for _, ev := range events {
		if ev.Kind == broker.EventDisconnect {
			require.Equal(t, broker.ReasonClientDisconnect, ev.Reason, "agents hang up cleanly")
		}
	}
}

// TestUnscaledFleetIsThrottled proves the fleet counts rejections: with
// periods shorter than the broker's throttle window (the profile's scale is
// not applied to the broker), second reports are Throttled.
func TestUnscaledFleetIsThrottled(t *testing.T) {
	p := fastProfile(t)
	cfg := BrokerConfig(p, nil)
	cfg.Throttle = broker.DefaultThrottle
	b, err := broker.New(cfg)
	require.NoError(t, err)
	require.NoError(t, b.Start(testCtx(t, time.Minute)))
	defer b.Close()
	res, err := Run(testCtx(t, time.Minute), Options{Addr: b.Addr("tcp"), Devices: 5, Profile: p, Duration: 4 * time.Second})
	require.NoError(t, err)
	require.Positive(t, res.Rejected)
	require.Contains(t, res.FirstError, "Throttled")
	require.Equal(t, res.Sent, res.Accepted+res.Rejected)
}

// TestNoBroker fails clearly when nothing listens.
func TestNoBroker(t *testing.T) {
	_, err := Run(testCtx(t, 20*time.Second), Options{Addr: "127.0.0.1:1", Devices: 3, Profile: fastProfile(t), Duration: time.Second})
	require.ErrorContains(t, err, "no agent could connect")
}

// TestSmallFleetAgainstMosquitto runs the comparison backend end to end.
func TestSmallFleetAgainstMosquitto(t *testing.T) {
	if _, err := mosquitto.Find(); err != nil {
		t.Skip(err)
	}
	rep, err := RunMosquitto(testCtx(t, time.Minute), Options{Devices: 20, Profile: fastProfile(t), Duration: 2 * time.Second}, nil)
	require.NoError(t, err)
	require.Equal(t, 20, rep.Connected, rep.FirstError)
	require.GreaterOrEqual(t, rep.Sent, uint64(20))
	require.Equal(t, rep.Sent, rep.Accepted, rep.FirstError)
	require.Positive(t, rep.BrokerPeakRSS)
	require.Zero(t, rep.ResponderPeakRSS, "in process")
	require.Equal(t, "mosquitto+responder", rep.Backend)
}

func TestMosquittoMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := mosquitto.Find(); err == nil {
		t.Skip("/usr/sbin/mosquitto exists; the PATH trick cannot hide it")
	} else {
		require.True(t, errors.Is(err, mosquitto.ErrNotInstalled))
		require.ErrorContains(t, err, "apt-get install")
	}
}
