package hostload

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseStat(t *testing.T) {
	var s Snapshot
	parseStat("cpu  100 5 50 800 10 0 5 30 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nprocs_running 6\n", &s)
	assert.Equal(t, uint64(100+5+50+800+10+0+5+30), s.Total, "guest time is not counted twice")
	assert.Equal(t, uint64(30), s.Steal)
	assert.Equal(t, 6, s.Running)
}

func TestBetweenComputesSteal(t *testing.T) {
	r := Between(Snapshot{Total: 1000, Steal: 10, Load: [3]float64{1, 2, 3}}, Snapshot{Total: 2000, Steal: 60, Load: [3]float64{4, 5, 6}})
	assert.InDelta(t, 5.0, r.StealPercent, 1e-9)
	assert.Equal(t, [3]float64{1, 2, 3}, r.LoadStart)
	assert.Equal(t, [3]float64{4, 5, 6}, r.LoadEnd)
	assert.Equal(t, runtime.NumCPU(), r.CPUs)
}

func TestReadOnLinux(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc")
	}
	s, err := Read()
	require.NoError(t, err)
	assert.NotZero(t, s.Total)
}

// A child that competes with busy siblings for one CPU accumulates
// run-queue delay, and RunDelay finds it through the parent's children.
func TestRunDelaySeesContention(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc")
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		t.Skip("taskset missing")
	}
	// Three busy shells pinned to CPU 0: each waits about 2/3 of the time.
	cmd := exec.Command("taskset", "-c", "0", "sh", "-c", "(while :; do :; done) & (while :; do :; done) & while :; do :; done")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }()
	m := Start(time.Now(), cmd.Process.Pid)
	total := func() time.Duration {
		var sum time.Duration
		for _, s := range m.Samples() {
			sum += s.Emulator
		}
		return sum
	}
	require.Eventually(t, func() bool { return total() >= 100*time.Millisecond }, 10*time.Second, 50*time.Millisecond,
		"busy threads sharing one CPU must show run-queue delay")
	m.Stop()
	rec := Record{}
	Summarise(&rec, m.Samples())
	assert.Equal(t, total(), rec.EmulatorWait)
	m.Stop() // idempotent
}

func TestRunDelayMissingPid(t *testing.T) {
	_, err := RunDelay(1 << 30)
	assert.Error(t, err)
}
