package fleet

import (
	"bufio"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// histogram is a lock-free log-linear latency histogram in microseconds:
// 32 sub-buckets per power of two, so a percentile is within ~3 %.
// Thousands of agent goroutines add to it at once.
type histogram struct {
	buckets [64 * subBuckets]atomic.Uint64
	count   atomic.Uint64
	max     atomic.Int64
}

const subBits = 5
const subBuckets = 1 << subBits

func bucketOf(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	exp := bits.Len64(us) - 1 // >= subBits
	mant := (us >> (exp - subBits)) & (subBuckets - 1)
	return (exp-subBits+1)*subBuckets + int(mant)
}

// bucketHigh is the largest value that falls in bucket i.
func bucketHigh(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	exp := i/subBuckets + subBits - 1
	mant := uint64(i % subBuckets)
	lo := (uint64(subBuckets) + mant) << (exp - subBits)
	return lo + (1 << (exp - subBits)) - 1
}

func (h *histogram) add(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	h.buckets[bucketOf(uint64(us))].Add(1)
	h.count.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// quantile returns the q-quantile (0..1) by nearest rank, as the upper
// edge of its bucket (capped at the maximum seen).
func (h *histogram) quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			v := min(bucketHigh(i), uint64(h.max.Load()))
			return time.Duration(v) * time.Microsecond
		}
	}
	return time.Duration(h.max.Load()) * time.Microsecond
}

// Latency summarises publish→response round trips.
type Latency struct {
	Count uint64        `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

func (h *histogram) summary() Latency {
	return Latency{Count: h.count.Load(), P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99),
		P999: h.quantile(0.999), Max: time.Duration(h.max.Load()) * time.Microsecond}
}

// Memory is what the process (agents and, against ddhil, the broker) used.
type Memory struct {
	// PeakRSS is VmHWM from /proc/self/status since the last ResetPeakRSS.
	PeakRSS uint64 `json:"peak_rss_bytes"`
	// GoTotal is the Go runtime's mapped memory (/memory/classes/total:bytes)
	// and GoHeap its live heap objects, sampled at the end.
	GoTotal    uint64 `json:"go_total_bytes"`
	GoHeap     uint64 `json:"go_heap_bytes"`
	Goroutines int    `json:"goroutines"`
}

// ReadMemory samples the process's memory figures.
func ReadMemory() Memory {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	m := Memory{Goroutines: runtime.NumGoroutine()}
	if s[0].Value.Kind() == metrics.KindUint64 {
		m.GoTotal = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		m.GoHeap = s[1].Value.Uint64()
	}
	m.PeakRSS, _ = ProcStatus(os.Getpid(), "VmHWM")
	return m
}

// ResetPeakRSS returns freed memory to the OS and resets VmHWM (Linux:
// clear_refs 5), so the next figure covers one phase only. It reports
// whether the reset worked; without it the peak spans the whole process.
func ResetPeakRSS() bool {
	runtime.GC()
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// ProcStatus reads a "kB" field (VmHWM, VmRSS) of /proc/<pid>/status in bytes.
func ProcStatus(pid int, field string) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, field, err)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}
