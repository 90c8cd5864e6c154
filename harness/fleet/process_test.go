package fleet

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness/fleet/mosquitto"
)

// TestMain doubles as the broker child process of RunDDHILProcess.
func TestMain(m *testing.M) {
	if addr := os.Getenv("DDHIL_FLEET_TEST_RESPONDER"); addr != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := mosquitto.ServeResponder(ctx, addr, os.Stdin, os.Stdout)
		cancel()
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("DDHIL_FLEET_TEST_BROKER") == "1" {
		p, err := LoadProfile("../../fixtures/fleet/normal.yaml")
		if err != nil {
			panic(err)
		}
		if s := os.Getenv("DDHIL_FLEET_TEST_SCALE"); s != "" {
			p.PeriodScale, err = strconv.ParseFloat(s, 64)
			if err != nil {
				panic(err)
			}
		}
		f, err := os.Create(os.Getenv("DDHIL_FLEET_TEST_RECORD"))
		if err != nil {
			panic(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = ServeBroker(ctx, p, f, os.Stdin, os.Stdout)
		cancel()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestFleetAgainstBrokerProcess runs the broker in a child process (the
// mode for fleets larger than half of RLIMIT_NOFILE): every report is
// accepted, the child's memory is reported, and its record holds every
// accepted report and every client-initiated disconnect.
func TestFleetAgainstBrokerProcess(t *testing.T) {
	recPath := filepath.Join(t.TempDir(), "events.jsonl")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DDHIL_FLEET_TEST_BROKER=1", "DDHIL_FLEET_TEST_RECORD="+recPath, "DDHIL_FLEET_TEST_SCALE=300")
	cmd.Stderr = os.Stderr
	rep, err := RunDDHILProcess(testCtx(t, time.Minute), Options{Devices: 30, Profile: fastProfile(t), Duration: 2 * time.Second}, cmd)
	require.NoError(t, err)
	require.Equal(t, 30, rep.Connected, rep.FirstError)
	require.Positive(t, rep.Accepted)
	require.Equal(t, rep.Sent, rep.Accepted, rep.FirstError)
	require.Positive(t, rep.BrokerPeakRSS)
	require.Positive(t, rep.BrokerEvents)

	f, err := os.Open(recPath)
	require.NoError(t, err)
	defer f.Close()
	events, err := broker.ReadJSONL(f)
	require.NoError(t, err)
	require.EqualValues(t, rep.BrokerEvents, len(events))
	reports, disconnects := 0, 0
	for _, ev := range events {
		switch ev.Kind {
		case broker.EventReport:
			require.True(t, ev.Result.Accepted())
			reports++
		case broker.EventDisconnect:
			require.Equal(t, broker.ReasonClientDisconnect, ev.Reason)
			disconnects++
		}
	}
	require.EqualValues(t, rep.Accepted, reports)
	require.Equal(t, 30, disconnects)
}

// responderChild runs this test binary as the responder process.
func responderChild(addr string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DDHIL_FLEET_TEST_RESPONDER="+addr)
	cmd.Stderr = os.Stderr
	return cmd
}

// TestFleetAgainstMosquittoResponderProcess runs the comparison with the
// responder in a process of its own, as the benchmark does.
func TestFleetAgainstMosquittoResponderProcess(t *testing.T) {
	if _, err := mosquitto.Find(); err != nil {
		t.Skip(err)
	}
	rep, err := RunMosquitto(testCtx(t, time.Minute), Options{Devices: 20, Profile: fastProfile(t), Duration: 2 * time.Second}, responderChild)
	require.NoError(t, err)
	require.Equal(t, 20, rep.Connected, rep.FirstError)
	require.Positive(t, rep.Accepted)
	require.Equal(t, rep.Sent, rep.Accepted, rep.FirstError)
	require.Positive(t, rep.ResponderPeakRSS)
	require.Positive(t, rep.BrokerPeakRSS)
}
