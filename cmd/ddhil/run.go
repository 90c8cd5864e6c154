package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/runner"
)

func init() {
	register("run", command{summary: "run the conformance suite on a target and write the reports", run: runRun})
}

func runRun(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("run", stderr)
	o := runner.Options{}
	fs.StringVar(&o.Target, "target", "qemu", "target: qemu | renode | board")
	fs.StringVar(&o.Firmware, "firmware", "", "firmware ELF (default: the reference agent's build for the target: firmware/build/<profile>/ddagent.elf; target board: by the board's platform, docs/boards.md)")
	fs.StringVar(&o.Profile, "profile", "fixtures/profiles/ddagent.yaml", "device profile (YAML) (target board: default from the hardware map or the board's platform)")
	fs.StringVar(&o.OutDir, "out", "run/latest", "output folder for the reports")
	fs.IntVar(&o.Periods, "periods", 5, "report intervals observed in the normal phase")
	only := fs.String("only", "", "comma-separated check IDs to evaluate (default: all)")
	faults := fs.String("fault", "", "comma-separated reference-firmware faults to switch on after provisioning")
	thing := fs.String("thing", "ddhil-dut-1", "thing name to provision")
	format := fs.String("format", "", "report format to provision: json | cbor (default: the profile's)")
	keys := fs.String("keys", "", "key style to provision: long | short (default: the profile's)")
	periodMS := fs.Int("period-ms", 0, "report period to provision, in ms (default: the profile's)")
	vars := profile.Vars{}
	fs.Func("var", "set a profile variable `name=value` (repeatable), e.g. --var ssid=lab --var password=... for a board on Wi-Fi", func(s string) error {
		k, v, ok := strings.Cut(s, "=")
		switch {
		case !ok || k == "":
			return fmt.Errorf("want name=value, got %q", s)
		case k == "thing" || k == "format" || k == "keys" || k == "period_ms":
			return fmt.Errorf("%s has its own flag", k)
		}
		vars[k] = v
		return nil
	})
	fs.StringVar(&o.QEMUBinary, "qemu", "", "qemu-system-arm binary (default: from PATH)")
	fs.StringVar(&o.RenodeBinary, "renode", "", "local Renode binary or launcher (target renode)")
	fs.StringVar(&o.TickSymbol, "tick-symbol", "", "firmware's 32-bit ms counter QEMU reads as the target clock (default ticks_lo when present; - for none: timing judged on host time)")
	fs.DurationVar(&o.StepSlice, "step-slice", 0, "with --compress: advance virtual time in slices of this length, each once the module is idle (e.g. 1s; docs/timing.md)")
	fs.BoolVar(&o.Compress, "compress", false, "let virtual time run ahead while the firmware idles (target renode): judge a long period in seconds (docs/timing.md)")
	fs.StringVar(&o.RenodeImage, "renode-image", "", "Renode container image (target renode; default antmicro/renode)")
	fs.StringVar(&o.HWMap, "hwmap", "", "hardware map YAML (target board)")
	fs.StringVar(&o.Board, "board", "", "board id in the hardware map (target board)")
	noShot := fs.Bool("no-screenshot", false, "do not render report.png with headless Chromium")
	// Expectation overrides (default: the profile's expectations block).
	fs.DurationVar(&o.Expect.ProductionPeriod, "production-period", 0, "override the period the firmware uses in the field (DD-T03)")
	fs.Float64Var(&o.Expect.Tolerance, "tolerance", 0, "override the allowed relative deviation of the median interval (DD-T02), e.g. 0.1")
	fs.DurationVar(&o.Expect.FirstReportBound, "first-report-bound", 0, "override the bound on the first report after each connection (DD-T01)")
	fs.DurationVar(&o.Expect.ReconnectBound, "reconnect-bound", 0, "override the bound on reconnecting after a broker drop (DD-R01)")
	listenTCP := fs.String("listen-tcp", "", "override the expected listening TCP ports, comma-separated, or 'none' (DD-A04)")
	listenUDP := fs.String("listen-udp", "", "override the expected listening UDP ports, comma-separated, or 'none' (DD-A04)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ddhil run [flags]\n\nExit status: 0 all checks pass, 1 a check failed, 3 lab error (emulator missing, flash failed, port vanished).\nCtrl-C writes a partial report marked incomplete.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if o.Target == "board" {
		// Left out, they come from the hardware map or the board's platform
		// (runner.PlatformDefaults): a U5 must not get the agent's image.
		profileGiven := false
		fs.Visit(func(f *flag.Flag) { profileGiven = profileGiven || f.Name == "profile" })
		if !profileGiven {
			o.Profile = ""
		}
	} else if o.Firmware == "" {
		o.Firmware = defaultFirmware[o.Target]
	}
	var err error
	if o.Expect.ListeningTCP, err = portList(*listenTCP); err != nil {
		return exitUsage, err
	}
	if o.Expect.ListeningUDP, err = portList(*listenUDP); err != nil {
		return exitUsage, err
	}
	o.Only = splitList(*only)
	if _, err := conformance.Select(o.Only); err != nil {
		return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
	}
	o.Faults = splitList(*faults)
	o.Vars = vars
	o.Vars["thing"] = *thing
	if *format != "" {
		o.Vars["format"] = *format
	}
	if *keys != "" {
		o.Vars["keys"] = *keys
	}
	if *periodMS > 0 {
		o.Vars["period_ms"] = fmt.Sprint(*periodMS)
	}
	o.Screenshot = !*noShot
	o.Command = append([]string{"ddhil", "run"}, args...)
	o.Progress = stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := runner.Run(ctx, o)
	if err != nil {
		return exitLab, harness.LabError(err)
	}
	judged := false
	for _, c := range rep.Checks {
		judged = judged || c.Status != "error"
	}
	if judged {
		printSummary(stdout, rep)
	}
	abs, _ := filepath.Abs(filepath.Join(o.OutDir, "report.html"))
	fmt.Fprintf(stdout, "\nverdict: %s (%s)\nreport:  %s\n", strings.ToUpper(string(rep.Verdict())), rep.VerdictReason(), abs)
	return rep.ExitCode(), nil
}

// printSummary prints one line per check and its first findings.
func printSummary(stdout io.Writer, rep *report.Report) {
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "%-7s %-5s %-4s %s\n", "CHECK", "SEV", "RES", "TITLE")
	for _, c := range rep.Checks {
		fmt.Fprintf(stdout, "%-7s %-5s %-4s %s\n", c.ID, c.Severity, strings.ToUpper(string(c.Status)), c.Title)
		for i, f := range c.Findings {
			if i == 3 {
				fmt.Fprintf(stdout, "                  … %d more in the report\n", len(c.Findings)-3)
				break
			}
			fmt.Fprintf(stdout, "                  - %s\n", f.Message)
		}
	}
}

// defaultFirmware is the reference agent's build for each target: the
// builds differ in their clock set-up (QEMU's fixed 168 MHz SysTick,
// Renode's 72 MHz, a real board's PLL).
var defaultFirmware = map[string]string{
	"qemu":   "firmware/build/qemu-netduinoplus2/ddagent.elf",
	"renode": "firmware/build/renode-stm32f4disc/ddagent.elf",
	// board: by platform, runner.PlatformDefaults
}

// portList parses "8883,5001" ("none" = an empty set, "" = not given).
func portList(s string) ([]int, error) {
	switch s {
	case "":
		return nil, nil
	case "none":
		return []int{}, nil
	}
	var out []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: port %q is not 1..65535", errUsage, p)
		}
		out = append(out, n)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
