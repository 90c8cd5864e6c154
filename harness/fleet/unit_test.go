package fleet

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

func TestProfileErrorsNameTheField(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"period below 300s": {"periods: [{period: 60s, weight: 1}]\nmetrics: {bytes_in: {min: 1, max: 2}}", "periods[0]: period 1m0s is below AWS's minimum"},
		"unknown key":       {"metrics: {bytes_inn: {min: 1, max: 2}}", "field bytes_inn not found"},
		"min above max":     {"metrics: {bytes_in: {min: 5, max: 2}}", "metrics.bytes_in: min 5 is above max 2"},
		"negative counter":  {"metrics: {packets_out: {min: -1, max: 2}}", "counters cannot be negative"},
		"no remote":         {"metrics: {established_connections: {min: 1, max: 2}}", "metrics.remote_addrs"},
		"bad remote":        {"metrics: {established_connections: {min: 1, max: 2}, remote_addrs: [host:80]}", `remote_addrs[0] "host:80": not an IP address`},
		"bad custom type":   {"custom_metrics: [{name: x, type: counter}]", "custom_metrics[0] (x): type \"counter\""},
		"aws prefix":        {"custom_metrics: [{name: 'aws:x', type: number}]", `must not start with "aws:"`},
		"no metrics":        {"name: empty", "no metrics"},
		"jitter":            {"jitter: 1.5\nmetrics: {bytes_in: {min: 1, max: 2}}", "jitter 1.5: must be in [0, 1)"},
		"bad duration":      {"periods: [{period: soon, weight: 1}]", `"soon" is not a duration`},
		"string-list chars": {"custom_metrics: [{name: x, type: string-list, values: ['a b']}]", "characters AWS does not retain"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseProfile([]byte(tc.yaml))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestExampleProfileDefaults(t *testing.T) {
	p, err := ParseProfile([]byte("metrics: {bytes_in: {min: 1, max: 2}}"))
	require.NoError(t, err)
	require.EqualValues(t, 1, p.PeriodScale)
	require.Equal(t, MinPeriod, time.Duration(p.Periods[0].Period))
	require.EqualValues(t, 1, p.Formats.JSON)
	require.EqualValues(t, 1, p.Keys.Long)
}

// TestDevicesFollowTheProfile draws a fleet and checks the shares, ranges
// and that every report validates.
func TestDevicesFollowTheProfile(t *testing.T) {
	p, err := LoadProfile("../../fixtures/fleet/normal.yaml")
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	var cbor, short, ssh int
	periods := map[time.Duration]int{}
	const n = 2000
	for i := range n {
		d := newDevice(p, thingName("t-", i, n), rng)
		if d.format == defender.CBOR {
			cbor++
		}
		if d.short {
			short++
		}
		periods[d.period]++
		for _, pt := range d.tcpPorts {
			if pt.Port == 22 {
				ssh++
			}
		}
		b, _, err := d.payload(p, rng, time.Now())
		require.NoError(t, err)
		res := defender.Validate(d.format, b, defender.Options{})
		require.True(t, res.Accepted(), "%+v", res.Problem)
		require.Empty(t, res.Lint, "reports are lint-free")
		ec := res.Report.Metrics.TCPConnections.Established
		require.True(t, len(ec.Connections) >= 1 && len(ec.Connections) <= 4, "established connections %d outside [1, 4]", len(ec.Connections))
		require.EqualValues(t, len(ec.Connections), *ec.Total)
		bi := *res.Report.Metrics.NetworkStats.BytesIn
		require.True(t, bi >= 2000*0.9-1 && bi <= 60000*1.1+1, "bytes_in %d outside range ± jitter", bi)
	}
	require.InDelta(t, 0.4, float64(cbor)/n, 0.05)
	require.InDelta(t, 0.5, float64(short)/n, 0.05)
	require.InDelta(t, 0.25, float64(ssh)/n, 0.05)
	require.InDelta(t, 0.6, float64(periods[300*time.Second])/n, 0.05)
	require.InDelta(t, 0.1, float64(periods[900*time.Second])/n, 0.03)
}

func TestReportIDsIncrease(t *testing.T) {
	p, err := LoadProfile("../../fixtures/fleet/normal.yaml")
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	d := newDevice(p, "x", rng)
	now := time.Now()
	_, a, _ := d.payload(p, rng, now)
	_, b, _ := d.payload(p, rng, now) // same millisecond
	require.Greater(t, b, a)
}

func TestThingNames(t *testing.T) {
	require.Equal(t, "fleet-0042", thingName("fleet-", 42, 10000))
	require.Equal(t, "fleet-9", thingName("fleet-", 9, 10))
}

func TestPacketSplitting(t *testing.T) {
	var stream []byte
	stream = appendPublishQoS1(stream, "a/b", 7, []byte(strings.Repeat("x", 300))) // 2-byte length
	stream = append(stream, pkPuback<<4, 2, 0, 9)
	for cut := range len(stream) {
		_, n, _, err := nextPacket(stream[:cut])
		require.NoError(t, err)
		if cut < 310 {
			require.Zero(t, n, "incomplete at %d", cut)
		}
	}
	pk, n, _, err := nextPacket(stream)
	require.NoError(t, err)
	require.Equal(t, byte(pkPublish), pk.typ)
	require.Equal(t, "a/b", pk.topic)
	require.EqualValues(t, 7, pk.id)
	require.Len(t, pk.payload, 300)
	pk, m, _, err := nextPacket(stream[n:])
	require.NoError(t, err)
	require.Equal(t, 4, m)
	require.Equal(t, byte(pkPuback), pk.typ)
	require.EqualValues(t, 9, pk.id)
	_, _, _, err = nextPacket([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})
	require.ErrorIs(t, err, errShortPacket)
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	s := h.summary()
	require.EqualValues(t, 1000, s.Count)
	require.InEpsilon(t, float64(500*time.Millisecond), float64(s.P50), 0.035)
	require.InEpsilon(t, float64(990*time.Millisecond), float64(s.P99), 0.035)
	require.Equal(t, time.Second, s.Max)
	for us := uint64(0); us < 1<<20; us = us*3/2 + 1 {
		require.GreaterOrEqual(t, bucketHigh(bucketOf(us)), us)
		require.Equal(t, bucketOf(us), bucketOf(bucketHigh(bucketOf(us))))
	}
}

func TestProcStatus(t *testing.T) {
	m := ReadMemory()
	require.Positive(t, m.PeakRSS)
	require.Positive(t, m.GoHeap)
	_, err := ProcStatus(1<<30, "VmHWM")
	require.Error(t, err)
}
