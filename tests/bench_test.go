package tests

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/hiltest"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/session"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/qemu"
	"github.com/ddhil/ddhil/harness/target/renode"
)

// Benchmarks of what a user waits for, on each emulator (skipped when it is
// absent). They are figures, not timed tests: run them alone, e.g.
//
//	go test ./tests -run '^$' -bench . -benchtime 3x -ddhil.renode=/path/to/renode
//
// Metrics: s/op is wall time; virtual-s/op the target's own time covered.

// benchOptions selects the emulator kind for a benchmark, skipping when
// it or the firmware is missing.
func benchOptions(b *testing.B, kind string) runner.Options {
	b.Helper()
	fw := map[string]string{"qemu": "qemu-netduinoplus2", "renode": "renode-stm32f4disc"}[kind]
	elf := filepath.Join(repoRoot(), "firmware", "build", fw, "ddagent.elf")
	if _, err := os.Stat(elf); err != nil {
		b.Skipf("firmware %s not built (make -C firmware)", elf)
	}
	o := runner.Options{Target: kind, Firmware: elf, Profile: filepath.Join(repoRoot(), "fixtures", "profiles", "ddagent.yaml")}
	switch kind {
	case "qemu":
		if err := qemu.Probe(""); err != nil {
			b.Skip(err.Error())
		}
	case "renode":
		sel := hiltest.Selected().Settings
		o.Settings = target.Settings{}
		for _, k := range []string{"renode", "renode-image"} {
			if v := sel.Get(k); v != "" {
				o.Settings.Set(k, v)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := renode.Probe(ctx, renode.Config{Binary: o.Settings.Get("renode"), Image: o.Settings.Get("renode-image"), Firmware: elf}); err != nil {
			b.Skip(err.Error())
		}
	}
	return o
}

func benchTarget(b *testing.B, o runner.Options) target.Target {
	b.Helper()
	o.OutDir = b.TempDir()
	p, err := runner.Prepare(o)
	if err != nil {
		b.Fatal(err)
	}
	tgt, err := p.Driver.New(&p.Setup)
	if err != nil {
		b.Fatal(err)
	}
	return tgt
}

// BenchmarkBootToFirstAccepted: from starting the emulator to the broker
// accepting the first report (boot, provisioning, reset, Wi-Fi, MQTT).
func BenchmarkBootToFirstAccepted(b *testing.B) {
	for _, kind := range []string{"qemu", "renode"} {
		b.Run(kind, func(b *testing.B) {
			o := benchOptions(b, kind)
			prof, err := profile.Load(o.Profile)
			if err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			for i := 0; i < b.N; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				start := time.Now()
				s, err := session.Start(ctx, session.Config{Target: benchTarget(b, o), Profile: prof,
					Vars: profile.Vars{"thing": "ddhil-bench"}})
				if err != nil {
					cancel()
					b.Fatal(err)
				}
				_, err = s.Broker().Recorder().WaitForAfter(ctx, 0, func(ev broker.Event) bool {
					return ev.Kind == broker.EventResponse && ev.Response != nil && ev.Response.Status == defender.StatusAccepted
				})
				elapsed := time.Since(start)
				_ = s.Close()
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				total += elapsed
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/op")
		})
	}
}

// runBench runs the whole conformance run b.N times and reports wall and
// virtual time.
func runBench(b *testing.B, o runner.Options) {
	b.Helper()
	var wall, virt time.Duration
	for i := 0; i < b.N; i++ {
		o.OutDir = b.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		start := time.Now()
		rep, err := runner.Run(ctx, o)
		wall += time.Since(start)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if rep.Verdict() != report.Pass {
			b.Errorf("run %d: verdict %s (%s)", i, rep.Verdict(), rep.VerdictReason())
		}
		if n := len(rep.Timeline); n > 0 && rep.Timeline[n-1].TargetAt != nil && rep.Timeline[0].TargetAt != nil {
			virt += *rep.Timeline[n-1].TargetAt - *rep.Timeline[0].TargetAt
		}
	}
	b.ReportMetric(wall.Seconds()/float64(b.N), "s/op")
	b.ReportMetric(virt.Seconds()/float64(b.N), "virtual-s/op")
}

// BenchmarkDefaultRun: `ddhil run` with its defaults (1 s period, the
// full scenario).
func BenchmarkDefaultRun(b *testing.B) {
	for _, kind := range []string{"qemu", "renode"} {
		b.Run(kind, func(b *testing.B) { runBench(b, benchOptions(b, kind)) })
	}
}

// BenchmarkCompressed300s: the 300 s production period over three periods
// plus the full scenario, on compressed virtual time (Renode only: QEMU
// 7.2 has no sound compression, docs/timing.md).
func BenchmarkCompressed300s(b *testing.B) {
	for _, kind := range []string{"qemu", "renode"} {
		b.Run(kind, func(b *testing.B) {
			if kind == "qemu" {
				b.Skip("QEMU 7.2 has no sound time compression: -icount sleep=off loses every second SysTick of a WFI-idle firmware (docs/timing.md)")
			}
			o := benchOptions(b, kind)
			o.Settings = o.Settings.With(target.Settings{"compress": {"true"}})
			o.Vars = profile.Vars{"period_ms": "300000"}
			o.Periods = 3
			o.Expect = conformance.Expectations{FirstReportBound: productionPeriod + 5*time.Second}
			runBench(b, o)
		})
	}
}
