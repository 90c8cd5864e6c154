package fleet

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ddhil/ddhil/harness/fleet/mosquitto"
)

// BenchmarkFleet runs the same fleet (fixtures/fleet/normal.yaml) against
// ddhil's broker and against mosquitto + the validating responder, and
// reports the figures of docs/fleet.md as benchmark metrics. Each
// sub-benchmark is one whole fleet run, whatever b.N is.
//
//	go test -run '^$' -bench Fleet -benchtime 1x ./harness/fleet
//	DDHIL_FLEET_DEVICES=10000 DDHIL_FLEET_DURATION=60s go test -run '^$' -bench Fleet -benchtime 1x -timeout 10m ./harness/fleet
//
// Both brokers and the responder run in processes of their own (this test
// binary), so none shares a Go runtime with the agents.
func BenchmarkFleet(b *testing.B) {
	devices, duration := 1000, 10*time.Second
	if s := os.Getenv("DDHIL_FLEET_DEVICES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("DDHIL_FLEET_DEVICES: %v", err)
		}
		devices = n
	}
	if s := os.Getenv("DDHIL_FLEET_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("DDHIL_FLEET_DURATION: %v", err)
		}
		duration = d
	}
	p, err := LoadProfile("../../fixtures/fleet/normal.yaml")
	if err != nil {
		b.Fatal(err)
	}
	opts := Options{Devices: devices, Profile: p, Duration: duration}
	b.Run("ddhil/devices="+strconv.Itoa(devices), func(b *testing.B) {
		for range b.N {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "DDHIL_FLEET_TEST_BROKER=1",
				"DDHIL_FLEET_TEST_RECORD="+filepath.Join(b.TempDir(), "events.jsonl"),
				"DDHIL_FLEET_TEST_SCALE="+strconv.FormatFloat(p.PeriodScale, 'g', -1, 64))
			cmd.Stderr = os.Stderr
			rep, err := RunDDHILProcess(b.Context(), opts, cmd)
			reportBench(b, rep, err)
		}
	})
	b.Run("mosquitto/devices="+strconv.Itoa(devices), func(b *testing.B) {
		if _, err := mosquitto.Find(); err != nil {
			b.Skip(err)
		}
		for range b.N {
			rep, err := RunMosquitto(b.Context(), opts, responderChild)
			reportBench(b, rep, err)
		}
	})
}

func reportBench(b *testing.B, rep *Report, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
	if rep.ConnectFailures > 0 || rep.Lost > 0 || rep.Rejected > 0 {
		b.Fatalf("%d connect failures, %d lost, %d rejected: %s", rep.ConnectFailures, rep.Lost, rep.Rejected, rep.FirstError)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rep.Throughput, "accepted/s")
	b.ReportMetric(float64(rep.RTT.P50)/1e6, "p50-ms")
	b.ReportMetric(float64(rep.RTT.P99)/1e6, "p99-ms")
	b.ReportMetric(rep.Storm.Seconds(), "storm-s")
	b.ReportMetric(float64(rep.Process.PeakRSS)/(1<<20), "fleet-MiB")
	b.ReportMetric(float64(rep.BrokerPeakRSS+rep.ResponderPeakRSS)/(1<<20), "broker-MiB")
}
