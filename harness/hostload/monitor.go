package hostload

import (
	"sync"
	"time"
)

// Sample is what the monitor saw in one sampling period, ending at At
// (offset from the monitor's epoch).
type Sample struct {
	At time.Duration `json:"at"`
	// Emulator is the longest run-queue delay any one emulator thread
	// accumulated in the period: how long the emulator wanted to run and
	// could not. Zero without a pid.
	Emulator time.Duration `json:"emulator_ns"`
	// Harness is the latest one of the harness's own timer ticks fired in
	// the period: how long an answer of the module or the broker could
	// have been held up.
	Harness time.Duration `json:"harness_ns"`
}

// Monitor samples the emulator's run-queue delay and the harness's timer
// lateness until Stop.
type Monitor struct {
	epoch    time.Time
	pid      int
	interval time.Duration
	tick     time.Duration

	mu      sync.Mutex
	samples []Sample
	late    time.Duration // max lateness since the last sample
	prev    map[int]time.Duration

	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
}

// DefaultInterval is the sampling period; DefaultTick the period of the
// timer whose lateness is measured.
const (
	DefaultInterval = 100 * time.Millisecond
	DefaultTick     = 5 * time.Millisecond
)

// Start begins sampling. pid 0 measures only the harness's timers. Offsets
// of the samples count from epoch.
func Start(epoch time.Time, pid int) *Monitor {
	m := &Monitor{epoch: epoch, pid: pid, interval: DefaultInterval, tick: DefaultTick, stop: make(chan struct{})}
	if pid > 0 {
		m.prev, _ = RunDelay(pid)
	}
	m.done.Add(2)
	go m.ticker()
	go m.sampler()
	return m
}

// ticker measures how late a periodic timer fires: under CPU contention
// the Go runtime's goroutines, the module's and the broker's included, get
// the CPU late by about as much.
func (m *Monitor) ticker() {
	defer m.done.Done()
	t := time.NewTimer(m.tick)
	defer t.Stop()
	due := time.Now().Add(m.tick)
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			if l := now.Sub(due); l > 0 {
				m.mu.Lock()
				if l > m.late {
					m.late = l
				}
				m.mu.Unlock()
			}
			due = time.Now().Add(m.tick)
			t.Reset(m.tick)
		}
	}
}

func (m *Monitor) sampler() {
	defer m.done.Done()
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			m.sample()
			return
		case <-t.C:
			m.sample()
		}
	}
}

func (m *Monitor) sample() {
	var worst time.Duration
	if m.pid > 0 {
		if cur, err := RunDelay(m.pid); err == nil {
			for tid, d := range cur {
				if delta := d - m.prev[tid]; delta > worst {
					worst = delta
				}
			}
			m.prev = cur
		}
	}
	m.mu.Lock()
	m.samples = append(m.samples, Sample{At: time.Since(m.epoch), Emulator: worst, Harness: m.late})
	m.late = 0
	m.mu.Unlock()
}

// Stop ends sampling (taking a last sample); safe to call more than once.
func (m *Monitor) Stop() {
	m.stopOnce.Do(func() { close(m.stop) })
	m.done.Wait()
}

// Samples returns the samples so far, in order.
func (m *Monitor) Samples() []Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Sample(nil), m.samples...)
}

// Summarise fills the stall fields of a record from samples.
func Summarise(r *Record, samples []Sample) {
	for _, s := range samples {
		r.EmulatorWait += s.Emulator
		if s.Emulator > r.EmulatorStall {
			r.EmulatorStall = s.Emulator
		}
		if s.Harness > r.HarnessLateMax {
			r.HarnessLateMax = s.Harness
		}
	}
}
