// Package hostload measures how much the host got in the way of a run: how
// long the emulator's threads waited for a CPU (run-queue delay from
// /proc/<pid>/task/*/schedstat), how late the harness's own timers fired,
// and the host's load and steal time. A timing verdict is only as good as
// the host that produced it: the judge uses these figures to call a timing
// check inconclusive (a lab problem) instead of failing the firmware, and
// the report records them.
package hostload

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Snapshot is the host's state at one moment.
type Snapshot struct {
	At   time.Time  `json:"at"`
	Load [3]float64 `json:"load"` // 1, 5 and 15 min load averages
	// Steal and Total are the all-CPU jiffies of /proc/stat (steal: time a
	// hypervisor ran someone else while this VM wanted the CPU).
	Steal uint64 `json:"steal_jiffies"`
	Total uint64 `json:"total_jiffies"`
	// Running is procs_running of /proc/stat: tasks runnable right now.
	Running int `json:"procs_running"`
}

// Read takes a snapshot. On a system without /proc it returns what it could
// read and an error.
func Read() (Snapshot, error) {
	s := Snapshot{At: time.Now()}
	la, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return s, fmt.Errorf("hostload: %w", err)
	}
	f := strings.Fields(string(la))
	for i := 0; i < 3 && i < len(f); i++ {
		s.Load[i], _ = strconv.ParseFloat(f[i], 64)
	}
	st, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, fmt.Errorf("hostload: %w", err)
	}
	parseStat(string(st), &s)
	return s, nil
}

// parseStat reads the aggregate cpu line and procs_running.
func parseStat(text string, s *Snapshot) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) > 1 && f[0] == "cpu":
			s.Total, s.Steal = 0, 0
			// user nice system idle iowait irq softirq steal guest guest_nice;
			// guest time is already counted in user/nice.
			for i, v := range f[1:] {
				if i >= 8 {
					break
				}
				n, _ := strconv.ParseUint(v, 10, 64)
				s.Total += n
				if i == 7 {
					s.Steal = n
				}
			}
		case len(f) == 2 && f[0] == "procs_running":
			s.Running, _ = strconv.Atoi(f[1])
		}
	}
}

// Record is what a report says about the host.
type Record struct {
	CPUs      int        `json:"cpus"`
	LoadStart [3]float64 `json:"load_start"`
	LoadEnd   [3]float64 `json:"load_end"`
	// StealPercent is steal time over the run as a share of all CPU time.
	StealPercent float64 `json:"steal_percent"`
	// EmulatorStall is the emulator's longest run-queue delay within one
	// sampling period, and EmulatorWait its total over the run (max thread
	// per period); HarnessLateMax is the latest the harness's timer fired.
	// Zero when not measured (a board, a container).
	EmulatorStall  time.Duration `json:"emulator_stall_max_ns,omitempty"`
	EmulatorWait   time.Duration `json:"emulator_wait_ns,omitempty"`
	HarnessLateMax time.Duration `json:"harness_late_max_ns,omitempty"`
}

// Between describes the host over a run from two snapshots.
func Between(a, b Snapshot) Record {
	r := Record{CPUs: runtime.NumCPU(), LoadStart: a.Load, LoadEnd: b.Load}
	if dt := b.Total - a.Total; b.Total > a.Total && dt > 0 {
		r.StealPercent = 100 * float64(b.Steal-a.Steal) / float64(dt)
	}
	return r
}

// String is the one-line summary for logs.
func (r Record) String() string {
	return fmt.Sprintf("%d CPUs, load %.2f→%.2f, steal %.1f%%, emulator stall max %s (total %s), harness timers up to %s late",
		r.CPUs, r.LoadStart[0], r.LoadEnd[0], r.StealPercent, r.EmulatorStall.Round(time.Millisecond),
		r.EmulatorWait.Round(time.Millisecond), r.HarnessLateMax.Round(time.Millisecond))
}

// RunDelay returns the run-queue delay (time spent runnable but waiting for
// a CPU) of every thread of pid and of its descendants, by thread id.
func RunDelay(pid int) (map[int]time.Duration, error) {
	out := map[int]time.Duration{}
	seen := map[int]bool{}
	var walk func(p int) error
	walk = func(p int) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		dir := filepath.Join("/proc", strconv.Itoa(p), "task")
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if b, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat")); err == nil {
				// "<on-cpu ns> <run-queue wait ns> <timeslices>"
				if f := strings.Fields(string(b)); len(f) >= 2 {
					if ns, err := strconv.ParseInt(f[1], 10, 64); err == nil {
						out[tid] = time.Duration(ns)
					}
				}
			}
			if b, err := os.ReadFile(filepath.Join(dir, t.Name(), "children")); err == nil {
				for _, c := range strings.Fields(string(b)) {
					if cp, err := strconv.Atoi(c); err == nil {
						_ = walk(cp) // a child that just exited is not an error
					}
				}
			}
		}
		return nil
	}
	if err := walk(pid); err != nil {
		return nil, fmt.Errorf("hostload: pid %d: %w", pid, err)
	}
	return out, nil
}
