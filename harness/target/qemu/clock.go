package qemu

import (
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ddhil/ddhil/harness/target"
)

// Why the firmware's tick counter, and not one of QEMU's clocks (measured
// on QEMU 7.2, see docs/timing.md): without -icount QEMU's virtual clock is
// the host's, so a starved vCPU shows as stretched intervals (+15-21% under
// `stress-ng --cpu 4` on 2 cores) while the firmware's own SysTick count says
// 1.000 s; -icount sleep=on runs 5% off the firmware under the same load and
// 9% slow on a quiet host; sleep=off loses every second SysTick of a
// WFI-idle firmware. The counter the firmware schedules its reports by is
// the clock its period must be judged on; the judge bounds its rate against
// host time (conformance.MinRate/MaxRate) so a wrong SysTick cannot hide.

// DefaultTickSymbol is the reference agent's millisecond counter.
const DefaultTickSymbol = "ticks_lo"

// resolveTick finds the address of a 32-bit tick counter in the ELF.
func resolveTick(path, symbol string) (uint32, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, fmt.Errorf("qemu: tick counter: %w", err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return 0, fmt.Errorf("qemu: tick counter: %s has no symbol table: %w", path, err)
	}
	for _, s := range syms {
		if s.Name == symbol && elf.ST_TYPE(s.Info) == elf.STT_OBJECT {
			if s.Size != 4 {
				return 0, fmt.Errorf("qemu: tick counter %s is %d bytes, not a 32-bit counter", symbol, s.Size)
			}
			return uint32(s.Value), nil
		}
	}
	return 0, fmt.Errorf("qemu: tick counter: no data symbol %q in %s", symbol, path)
}

// TargetTime reads the firmware's tick counter through QMP (the HMP `xp`
// physical-memory read; about 0.3 ms, the guest keeps running) and returns
// it as time since the firmware's boot. The counter restarts on a reset.
func (q *QEMU) TargetTime(ctx context.Context) (time.Duration, error) {
	if !q.tickOK {
		return 0, fmt.Errorf("qemu: no tick counter configured")
	}
	qc, err := q.control()
	if err != nil {
		return 0, err
	}
	raw, err := qc.Execute(ctx, "human-monitor-command", map[string]string{"command-line": fmt.Sprintf("xp /1wx 0x%08x", q.tickAddr)})
	if err != nil {
		return 0, q.controlError("read tick counter", err)
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return 0, fmt.Errorf("qemu: xp reply %s: %w", raw, err)
	}
	ticks, err := parseXP(out)
	if err != nil {
		return 0, err
	}
	return time.Duration(ticks) * time.Second / time.Duration(q.cfg.TickHz), nil
}

// ClockInfo describes the tick counter.
func (q *QEMU) ClockInfo() target.ClockInfo {
	return target.ClockInfo{Name: "guest-ticks:" + q.cfg.TickSymbol, Resolution: time.Second / time.Duration(q.cfg.TickHz),
		FirmwareDerived: true, ResetsWithTarget: true}
}

// HasClock reports whether the firmware's tick counter was found; the
// session then judges timing on it.
func (q *QEMU) HasClock() bool { return q.tickOK }

// parseXP reads `xp /1wx` output: "000000002000017c: 0x000012ab".
func parseXP(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	i := strings.LastIndex(s, "0x")
	if i < 0 || !strings.Contains(s, ":") {
		return 0, fmt.Errorf("qemu: unexpected xp output %q", s)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(s[i+2:]), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("qemu: unexpected xp output %q: %w", s, err)
	}
	return uint32(v), nil
}
