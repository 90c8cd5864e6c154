package renode

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/ddhil/ddhil/harness/target"
)

// Renode's virtual time is the target clock: the firmware's tick count
// tracked it to within 35 ppm in every mode measured (quiet, stress-ng,
// AdvanceImmediately, quanta up to 0.1 s), while host time bunched report
// intervals from 0.45 s to 12.4 s (docs/timing.md).

// Compression settings (measured: 34× at a 300 s period, 15× under
// `stress-ng --cpu 4` on 2 cores, no rejections or disconnects).
const (
	CompressQuantum = "0.01" // seconds of virtual time per synchronisation
	defaultQuantum  = 100 * time.Microsecond
)

// compressCommands let virtual time jump over idle stretches (WFI) instead
// of waiting for host time.
var compressCommands = []string{
	`emulation SetGlobalQuantum "` + CompressQuantum + `"`,
	"emulation SetGlobalAdvanceImmediately true",
}

var currentTimeRE = regexp.MustCompile(`(?m)^Current virtual time: (\d+):(\d{2}):(\d{2})\.(\d{1,9})`)

// TargetTime is Renode's virtual time (`currentTime`, about 1 ms over
// XML-RPC; served in order with every other monitor command).
func (t *Target) TargetTime(ctx context.Context) (time.Duration, error) {
	out, err := t.execute(ctx, "currentTime")
	if err != nil {
		return 0, err
	}
	return parseCurrentTime(out)
}

// parseCurrentTime reads "Current virtual time: 00:00:02.213400000".
func parseCurrentTime(out string) (time.Duration, error) {
	m := currentTimeRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("renode: unexpected currentTime output %q", out)
	}
	h, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	s, _ := strconv.Atoi(m[3])
	frac := m[4] + "000000000"[:9-len(m[4])]
	ns, _ := strconv.Atoi(frac)
	return time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second + time.Duration(ns), nil
}

// ClockInfo describes Renode's virtual time.
func (t *Target) ClockInfo() target.ClockInfo {
	// Every currentTime is served by the monitor in turn with the
	// emulation's own work: at 50 reads a second the time to the first
	// accepted report grew from 8.8 to 14.3 s at load 10-14.
	info := target.ClockInfo{Name: "renode-virtual", Resolution: defaultQuantum, Compressed: t.cfg.Compress, SampleEvery: 100 * time.Millisecond}
	if t.cfg.Compress {
		info.Resolution = 10 * time.Millisecond
		info.StepSlice = t.cfg.StepSlice
	}
	return info
}

// Pid is the local Renode process (its launcher; the hostload package
// follows it to mono), or 0 in container mode.
func (t *Target) Pid() int {
	if t.proc == nil || t.proc.cmd == nil || t.proc.cmd.Process == nil {
		return 0
	}
	return t.proc.cmd.Process.Pid
}
