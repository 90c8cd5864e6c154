package main

import (
	"context"
	"errors"
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
	"github.com/ddhil/ddhil/harness/judge/audit"
	"github.com/ddhil/ddhil/harness/judge/detect"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/target"
)

func init() {
	register("run", command{summary: "run the conformance suite on a target and write the reports", run: runRun})
}

func runRun(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("run", stderr)
	o := runner.Options{}
	fs.StringVar(&o.Target, "target", "qemu", "target: "+strings.Join(target.Names(), " | "))
	fs.StringVar(&o.Firmware, "firmware", "", "firmware ELF (default: the reference agent's build for the target, e.g. firmware/build/qemu-netduinoplus2/ddagent.elf; target board: by the board's platform, docs/boards.md)")
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
	settings := target.Settings{}
	for _, opt := range target.AllOptions() {
		fs.Var(target.Value{Opt: opt, Settings: settings}, opt.Flag, opt.Usage)
	}
	noShot := fs.Bool("no-screenshot", false, "do not render report.png with headless Chromium")
	appendTo := func(dst *[]string) func(string) error {
		return func(s string) error { *dst = append(*dst, s); return nil }
	}
	fs.Func("security-profile", "Device Defender security profile `file` (AWS JSON; also custom metric / dimension definitions) evaluated by DD-D01 (repeatable)", appendTo(&o.SecurityProfiles))
	fs.Func("baseline", "fleet recording (events.jsonl) for statisticalThreshold behaviours (repeatable)", appendTo(&o.Baselines))
	fs.StringVar(&o.BrokerPolicy, "broker-policy", "open", "broker policy: open | strict (a device may use only its own thing's topics)")
	fs.BoolVar(&o.Audit, "audit", false, "run the device-facing Audit checks on what the broker saw")
	fs.Func("iot-policy", "IoT policy `file` for IOT_POLICY_OVERLY_PERMISSIVE_CHECK (implies --audit; repeatable)", appendTo(&o.IoTPolicies))
	fs.Func("revoked", "CRL or revoked-serials `file` for REVOKED_DEVICE_CERTIFICATE_STILL_ACTIVE_CHECK (implies --audit; repeatable)", appendTo(&o.Revoked))
	// Expectation overrides (default: the profile's expectations block).
	fs.DurationVar(&o.Expect.ProductionPeriod, "production-period", 0, "override the period the firmware uses in the field (DD-T03)")
	fs.Float64Var(&o.Expect.Tolerance, "tolerance", 0, "override the allowed relative deviation of the median interval (DD-T02), e.g. 0.1")
	fs.DurationVar(&o.Expect.FirstReportBound, "first-report-bound", 0, "override the bound on the first report after each connection (DD-T01)")
	fs.DurationVar(&o.Expect.ReconnectBound, "reconnect-bound", 0, "override the bound on reconnecting after a broker drop (DD-R01)")
	listenTCP := fs.String("listen-tcp", "", "override the expected listening TCP ports, comma-separated, or 'none' (DD-A04)")
	listenUDP := fs.String("listen-udp", "", "override the expected listening UDP ports, comma-separated, or 'none' (DD-A04)")
	fs.Usage = func() { runUsage(stderr, fs) }
	if err := parseFlags(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if o.Target == "board" {
		// Left out, they come from the hardware map or the board's platform
		// (board.PlatformDefaults): a U5 must not get the agent's image.
		profileGiven := false
		fs.Visit(func(f *flag.Flag) { profileGiven = profileGiven || f.Name == "profile" })
		if !profileGiven {
			o.Profile = ""
		}
	}
	o.Settings = settings
	var err error
	if o.Expect.ListeningTCP, err = portList(*listenTCP); err != nil {
		return exitUsage, err
	}
	if o.Expect.ListeningUDP, err = portList(*listenUDP); err != nil {
		return exitUsage, err
	}
	if o.BrokerPolicy != "open" && o.BrokerPolicy != "strict" {
		return exitUsage, fmt.Errorf("%w: --broker-policy %q: want open or strict", errUsage, o.BrokerPolicy)
	}
	if len(o.SecurityProfiles) > 0 { // a bad profile is a usage error before anything boots
		if _, err := detect.Load(o.SecurityProfiles...); err != nil {
			return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	for _, p := range o.IoTPolicies {
		if _, err := audit.LoadPolicy(p); err != nil {
			return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	if _, err := audit.LoadRevoked(o.Revoked...); err != nil {
		return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
	}
	o.Only = splitList(*only)
	o.Faults = splitList(*faults)
	o.Vars = vars
	o.Vars["thing"] = *thing
	if *format != "" {
		o.Vars["format"] = *format
	}
	if *keys != "" {
		o.Vars["keys"] = *keys
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "period-ms" {
			o.Vars["period_ms"] = fmt.Sprint(*periodMS)
		}
	})
	o.Screenshot = !*noShot
	o.Command = append([]string{"ddhil", "run"}, args...)
	o.Progress = stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := runner.Run(ctx, o)
	if errors.Is(err, harness.ErrUsage) {
		return exitUsage, err
	}
	if errors.Is(err, detect.ErrInvalidProfile) { // e.g. the device profile's security_profiles
		return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		return exitLab, harness.LabError(err)
	}
	judged := false
	for _, c := range rep.Checks {
		judged = judged || c.Status != report.StatusError
	}
	if judged {
		printSummary(stdout, rep)
	}
	abs, _ := filepath.Abs(filepath.Join(o.OutDir, report.FileHTML))
	fmt.Fprintf(stdout, "\nverdict: %s (%s)\nreport:  %s\n", strings.ToUpper(string(rep.Verdict())), rep.VerdictReason(), abs)
	return rep.ExitCode(), nil
}

// printSummary prints one line per check, failing ones first, with the
// first findings of each (expected and observed) or why it was skipped.
// RESULT is the check's outcome on this run; IF FAILED says what a failure
// of that check does to the verdict, so a passing warn-only check reads
// "PASS  warns only", never "warn PASS".
func printSummary(stdout io.Writer, rep *report.Report) {
	const row = "%-6s %-7s %-11s %s\n"
	const indent = "                           "
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, row, "RESULT", "CHECK", "IF FAILED", "TITLE")
	for _, c := range report.ByConcern(rep.Checks) {
		fmt.Fprintf(stdout, row, strings.ToUpper(string(c.Status)), c.ID, c.Severity.Effect(), c.Title)
		switch {
		case c.Status == report.StatusSkip:
			fmt.Fprintf(stdout, "%sskipped: %s\n", indent, c.SkipReason)
		case c.Status == report.StatusError:
			fmt.Fprintf(stdout, "%serror: %s\n", indent, firstLine(c.Error))
		}
		for i, f := range c.Findings {
			if i == 3 {
				fmt.Fprintf(stdout, "%s… %d more in the report\n", indent, len(c.Findings)-3)
				break
			}
			fmt.Fprintf(stdout, "%s- %s\n", indent, f.Text())
		}
	}
}

// runUsage prints run's help: exit codes, targets, faults, flags.
func runUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, `usage: ddhil run [flags]

Boots the firmware on a target, provisions it, plays the scenario and writes
the conformance reports into --out.

Exit status:
  0  every check passed
  1  a check failed (the firmware)
  2  usage mistake (found before anything boots)
  3  lab error (emulator missing, flash failed, port vanished)
Ctrl-C writes a partial report marked incomplete (exit 3).

targets:
`)
	for _, d := range target.Drivers() {
		fmt.Fprintf(w, "  %-8s %s\n", d.Name, d.Summary)
	}
	if p, err := profile.Load(fs.Lookup("profile").DefValue); err == nil && len(p.Faults) > 0 {
		fmt.Fprintf(w, "\nfaults of the reference agent (--fault, profile %s):\n", p.Name)
		printWrapped(w, "  ", p.Faults, 76)
	}
	fmt.Fprintln(w, "\nflags:")
	fs.PrintDefaults()
}

// printWrapped prints words comma-separated, wrapped at width.
func printWrapped(w io.Writer, indent string, words []string, width int) {
	line := indent
	for i, word := range words {
		if i < len(words)-1 {
			word += ","
		}
		if len(line)+len(word)+1 > width && line != indent {
			fmt.Fprintln(w, line)
			line = indent
		}
		if line != indent {
			line += " "
		}
		line += word
	}
	fmt.Fprintln(w, line)
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
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
