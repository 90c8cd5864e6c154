package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/fleet"
	"github.com/ddhil/ddhil/harness/fleet/mosquitto"
)

func init() {
	register("fleet", command{
		summary: "run N simulated Defender agents against the broker (baseline recording, benchmark)",
		run: func(args []string, stdout, stderr io.Writer) (int, error) {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runFleet(ctx, args, stdout, stderr)
		},
	})
}

const fleetHelp = `usage: ddhil fleet --devices N --profile FILE [--duration D] [--record FILE]
                   [--period-scale S] [--compare-mosquitto] [--json FILE]

Runs N simulated AWS IoT Device Defender agents in this process against
ddhil's broker: they connect as a storm, then report for --duration with the
periods, formats, key styles and jittered metrics the fleet profile draws
(docs/fleet.md; example fixtures/fleet/normal.yaml), and time every
publish -> accepted round trip.

--record writes the broker's event log (events.jsonl, as 'ddhil run' writes
it): the baseline for statisticalThreshold behaviours. Its clock runs
period_scale times faster than production.

--compare-mosquitto then runs the same fleet against Debian's mosquitto plus
a validating responder (a Go client that answers every report) and prints
both side by side.

exit status:
  0  every agent connected and every report was accepted
  1  some agent failed to connect, or a report was rejected or unanswered
  2  usage error (bad flags or profile)
  3  the lab failed (mosquitto missing, cannot write the record, ...)

flags:
`

func runFleet(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("fleet", stderr)
	devices := fs.Int("devices", 0, "number of simulated agents (required)")
	profilePath := fs.String("profile", "", "fleet profile `file` (YAML, required)")
	duration := fs.Duration("duration", 60*time.Second, "reporting time after every agent connected")
	record := fs.String("record", "", "write the broker's event log to `file` (JSON Lines)")
	scale := fs.Float64("period-scale", 0, "override the profile's period_scale (>= 1)")
	compare := fs.Bool("compare-mosquitto", false, "also run the fleet against mosquitto + a validating responder")
	jsonOut := fs.String("json", "", "write the figures to `file` as JSON")
	seed := fs.Uint64("seed", 1, "seed of the drawn fleet")
	concurrency := fs.Int("storm-concurrency", 0, "connections set up at once (default 512)")
	mode := fs.String("broker-mode", "auto", "where ddhil's broker runs: in-process, child (a process of its own), or auto (child with --compare-mosquitto or when RLIMIT_NOFILE cannot hold both ends of every connection)")
	addr := fs.String("addr", "", "run against an MQTT broker already listening at `host:port` (no broker is started; --record is then unavailable)")
	serve := fs.Bool("serve-broker", false, "internal: be the broker child process of another 'ddhil fleet'")
	serveResponder := fs.String("serve-responder", "", "internal: be the responder child process of another 'ddhil fleet', on the mosquitto at `host:port`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), fleetHelp)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return exitUsage, err
	}
	if *serve {
		return serveFleetBroker(ctx, *profilePath, *scale, *record, stdout)
	}
	if *serveResponder != "" {
		if err := mosquitto.ServeResponder(ctx, *serveResponder, fleetBrokerStdin, stdout); err != nil {
			return exitLab, harness.LabError(err)
		}
		return exitOK, nil
	}
	switch {
	case fs.NArg() > 0:
		return exitUsage, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	case *mode != "auto" && *mode != "in-process" && *mode != "child":
		return exitUsage, fmt.Errorf("%w: --broker-mode must be auto, in-process or child", errUsage)
	case *devices < 1:
		return exitUsage, fmt.Errorf("%w: --devices must be at least 1", errUsage)
	case *profilePath == "":
		return exitUsage, fmt.Errorf("%w: --profile is required (example: fixtures/fleet/normal.yaml)", errUsage)
	case *duration <= 0:
		return exitUsage, fmt.Errorf("%w: --duration must be positive", errUsage)
	case *scale != 0 && *scale < 1:
		return exitUsage, fmt.Errorf("%w: --period-scale must be >= 1", errUsage)
	}
	p, err := fleet.LoadProfile(*profilePath)
	if err != nil {
		return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
	}
	if *scale != 0 {
		p.PeriodScale = *scale
	}
	if *compare {
		if _, err := mosquitto.Find(); err != nil {
			return exitLab, harness.LabError(err)
		}
	}
	if *mode == "auto" {
		// A comparison puts ddhil's broker in a process of its own, like
		// mosquitto, so neither shares a Go runtime (and its GC) with the
		// agents; otherwise only when descriptors are short.
		*mode = "in-process"
		if *compare || fleet.RaiseFileLimit(uint64(2**devices+1024)) != nil {
			*mode = "child"
		}
	}
	opts := fleet.Options{Devices: *devices, Profile: p, Duration: *duration, Seed: *seed, StormConcurrency: *concurrency}
	fmt.Fprintf(stdout, "fleet %q: %d agents, period_scale %g (mean period %s -> %s), %s of reporting, broker %s\n",
		p.Name, *devices, p.PeriodScale, p.MeanPeriod().Round(time.Second),
		(time.Duration(float64(p.MeanPeriod()) / p.PeriodScale)).Round(time.Millisecond), *duration, *mode)

	var reports []*fleet.Report
	var rep *fleet.Report
	exe, xerr := os.Executable()
	if *mode == "child" && xerr != nil {
		return exitLab, harness.LabError(fmt.Errorf("find own executable for the broker process: %w", xerr))
	}
	if *addr != "" {
		if *record != "" || *compare {
			return exitUsage, fmt.Errorf("%w: --addr runs against someone else's broker: no --record, no --compare-mosquitto", errUsage)
		}
		opts.Addr = *addr
		fleet.ResetPeakRSS()
		res, rerr := fleet.Run(ctx, opts)
		rep, err = &fleet.Report{Backend: *addr, Result: res, Process: fleet.ReadMemory()}, rerr
	} else if *mode == "child" {
		cmd := exec.Command(exe, "fleet", "--serve-broker", "--profile", *profilePath,
			"--period-scale", strconv.FormatFloat(p.PeriodScale, 'g', -1, 64), "--record", *record)
		cmd.Stderr = stderr
		rep, err = fleet.RunDDHILProcess(ctx, opts, cmd)
	} else {
		var rec *os.File
		var w io.Writer
		if *record != "" {
			if rec, err = os.Create(*record); err != nil {
				return exitLab, harness.LabError(fmt.Errorf("create record file: %w", err))
			}
			w = rec
		}
		rep, err = fleet.RunDDHIL(ctx, opts, w)
		if rec != nil {
			if cerr := rec.Close(); cerr != nil && err == nil {
				err = harness.LabError(fmt.Errorf("write record: %w", cerr))
			}
		}
	}
	if rep != nil && rep.Result != nil {
		reports = append(reports, rep)
		fmt.Fprintf(stdout, "ddhil: %s\n", rep.Mix())
	}
	if err != nil {
		printFleet(stdout, reports)
		return fleetExit(err), err
	}
	if *compare && ctx.Err() == nil {
		// In child mode the responder gets a process of its own too.
		var responder func(string) *exec.Cmd
		if *mode == "child" {
			responder = func(addr string) *exec.Cmd {
				cmd := exec.Command(exe, "fleet", "--serve-responder", addr)
				cmd.Stderr = stderr
				return cmd
			}
		}
		mrep, merr := fleet.RunMosquitto(ctx, opts, responder)
		if mrep != nil && mrep.Result != nil {
			reports = append(reports, mrep)
		}
		if merr != nil {
			printFleet(stdout, reports)
			return fleetExit(merr), merr
		}
	}
	printFleet(stdout, reports)
	if *record != "" {
		fmt.Fprintf(stdout, "recorded %d broker events in %s\n", rep.BrokerEvents, *record)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"profile": p.Name, "period_scale": p.PeriodScale, "runs": reports}, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return exitLab, harness.LabError(fmt.Errorf("write --json file: %w", err))
		}
	}
	for _, r := range reports {
		if r.ConnectFailures > 0 || r.Rejected > 0 || r.Lost > 0 || r.Disconnected > 0 {
			return exitFail, fmt.Errorf("%s: %d of %d connected, %d rejected, %d unanswered, %d connections lost; first error: %s",
				r.Backend, r.Connected, r.Devices, r.Rejected, r.Lost, r.Disconnected, r.FirstError)
		}
	}
	return exitOK, nil
}

// fleetBrokerStdin is where the broker child reads its orders (tests
// replace it).
var fleetBrokerStdin io.Reader = os.Stdin

// serveFleetBroker is the child side of --broker-mode child.
func serveFleetBroker(ctx context.Context, profilePath string, scale float64, record string, stdout io.Writer) (int, error) {
	p, err := fleet.LoadProfile(profilePath)
	if err != nil {
		return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
	}
	if scale != 0 {
		p.PeriodScale = scale
	}
	var w io.Writer
	if record != "" {
		f, err := os.Create(record)
		if err != nil {
			return exitLab, harness.LabError(fmt.Errorf("create record file: %w", err))
		}
		defer f.Close()
		w = f
	}
	if err := fleet.ServeBroker(ctx, p, w, fleetBrokerStdin, stdout); err != nil {
		return exitLab, harness.LabError(err)
	}
	return exitOK, nil
}

func fleetExit(err error) int {
	switch {
	case errors.Is(err, mosquitto.ErrNotInstalled), errors.Is(err, harness.ErrLab):
		return exitLab
	case errors.Is(err, context.Canceled):
		return exitFail
	default:
		return exitLab // the fleet itself could not run (no connection, no descriptors, ...)
	}
}

// printFleet prints one column per backend.
func printFleet(w io.Writer, reports []*fleet.Report) {
	if len(reports) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(name string, f func(r *fleet.Report) string) {
		fmt.Fprintf(tw, "%s\t", name)
		for _, r := range reports {
			fmt.Fprintf(tw, "%s\t", f(r))
		}
		fmt.Fprintln(tw)
	}
	row("", func(r *fleet.Report) string { return r.Backend })
	row("agents connected", func(r *fleet.Report) string { return fmt.Sprintf("%d/%d", r.Connected, r.Devices) })
	row("connection storm", func(r *fleet.Report) string { return r.Storm.Round(time.Millisecond).String() })
	row("reports sent", func(r *fleet.Report) string { return fmt.Sprint(r.Sent) })
	row("accepted", func(r *fleet.Report) string { return fmt.Sprint(r.Accepted) })
	row("rejected / unanswered", func(r *fleet.Report) string { return fmt.Sprintf("%d / %d", r.Rejected, r.Lost) })
	row("throughput (accepted/s)", func(r *fleet.Report) string { return fmt.Sprintf("%.0f", r.Throughput) })
	row("round trip p50", func(r *fleet.Report) string { return ms(r.RTT.P50) })
	row("round trip p99", func(r *fleet.Report) string { return ms(r.RTT.P99) })
	row("round trip max", func(r *fleet.Report) string { return ms(r.RTT.Max) })
	row("fleet process peak RSS", func(r *fleet.Report) string { return mib(r.Process.PeakRSS) })
	row("broker process peak RSS", func(r *fleet.Report) string {
		if r.BrokerPeakRSS == 0 {
			return "(in fleet process)"
		}
		return mib(r.BrokerPeakRSS)
	})
	if reports[len(reports)-1].ResponderPeakRSS > 0 {
		row("responder process peak RSS", func(r *fleet.Report) string {
			if r.ResponderPeakRSS == 0 {
				return "-"
			}
			return mib(r.ResponderPeakRSS)
		})
	}
	row("total peak RSS", func(r *fleet.Report) string {
		return mib(r.Process.PeakRSS + r.BrokerPeakRSS + r.ResponderPeakRSS)
	})
	row("Go heap at end", func(r *fleet.Report) string { return mib(r.Process.GoHeap) })
	_ = tw.Flush()
	for _, r := range reports {
		if r.FirstError != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", r.Backend, r.FirstError)
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mib(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
