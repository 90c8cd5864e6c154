package fleet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configure a fleet run against one MQTT endpoint.
type Options struct {
	// Addr is the broker's "host:port".
	Addr string
	// Devices is the number of simulated agents.
	Devices int
	// Profile is the fleet's normal behaviour (validated).
	Profile *Profile
	// Duration is how long the fleet reports once every agent is connected
	// (wall clock, after period_scale).
	Duration time.Duration
	// ThingPrefix names the things (prefix + index); "" means "fleet-".
	ThingPrefix string
	// Seed makes the drawn fleet reproducible; 0 means 1.
	Seed uint64
	// StormConcurrency bounds connections being set up at once (dial,
	// CONNECT, SUBSCRIBE), so the storm does not overflow the listener's
	// accept backlog (SYN retries would add seconds); 0 means 512.
	StormConcurrency int
	// ConnectTimeout bounds the whole connection storm; 0 means 60 s.
	ConnectTimeout time.Duration
	// ResponseTimeout is how long an agent waits for the answer to a report
	// before counting it lost (the STM32 reference waits 30 s); 0 means 30 s.
	ResponseTimeout time.Duration
	// SourceIPs spreads agents over 127.0.0.2.. when Addr is on loopback so
	// that tens of thousands of connections do not exhaust one address's
	// ephemeral ports; 0 picks one address per 8,000 agents.
	SourceIPs int
}

// Result is what a fleet run measured.
type Result struct {
	Devices   int `json:"devices"`
	Connected int `json:"connected"`
	// ConnectFailures counts agents that never got their SUBACK.
	ConnectFailures int    `json:"connect_failures"`
	FirstError      string `json:"first_error,omitempty"`
	// Storm is the time from the first dial to the last SUBACK.
	Storm time.Duration `json:"storm_ns"`
	// Steady is how long the reporting phase lasted.
	Steady time.Duration `json:"steady_ns"`

	Sent     uint64 `json:"sent"`
	Accepted uint64 `json:"accepted"`
	Rejected uint64 `json:"rejected"`
	// Lost counts reports without an answer within ResponseTimeout or before
	// the run ended (outstanding answers at the end are waited for).
	Lost uint64 `json:"lost"`
	// Disconnected counts agents whose connection dropped during the run.
	Disconnected uint64 `json:"disconnected"`
	// Throughput is accepted reports per second, from the start of the
	// steady phase to its end or to the last answer, whichever is later.
	Throughput float64 `json:"throughput_per_s"`
	// RTT is publish → accepted response, measured by the agent.
	RTT Latency `json:"rtt"`

	// The drawn fleet's mix of formats and key styles (devices).
	JSON  int `json:"json_devices"`
	CBOR  int `json:"cbor_devices"`
	Long  int `json:"long_key_devices"`
	Short int `json:"short_key_devices"`
}

// Mix describes the drawn fleet: formats and key styles.
func (r Result) Mix() string {
	return fmt.Sprintf("%d JSON / %d CBOR, %d long / %d short keys", r.JSON, r.CBOR, r.Long, r.Short)
}

func (o *Options) defaults() error {
	if o.Profile == nil {
		return errors.New("fleet: no profile")
	}
	if o.Devices < 1 {
		return fmt.Errorf("fleet: %d devices: need at least 1", o.Devices)
	}
	if o.Addr == "" {
		return errors.New("fleet: no broker address")
	}
	if o.ThingPrefix == "" {
		o.ThingPrefix = "fleet-"
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.StormConcurrency <= 0 {
		o.StormConcurrency = 512
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 60 * time.Second
	}
	if o.ResponseTimeout <= 0 {
		o.ResponseTimeout = 30 * time.Second
	}
	if o.SourceIPs <= 0 {
		o.SourceIPs = (o.Devices + 7999) / 8000
	}
	return nil
}

// run is the shared state of one fleet run.
type run struct {
	o       Options
	p       *Profile
	start   chan struct{} // closed when the steady phase begins
	startAt time.Time     // set before start is closed
	endAt   time.Time     // the steady phase's planned end
	stop    atomic.Bool   // set when agents must disconnect
	stopCh  chan struct{} // closed with stop, for agents waiting for start

	rtt                                     histogram
	lastAccept                              atomic.Int64 // ns after startAt of the latest accepted answer
	sent, accepted, rejected, lost, dropped atomic.Uint64
	errOnce                                 sync.Once
	firstErr                                string
}

func (r *run) fail(err error) {
	r.errOnce.Do(func() { r.firstErr = err.Error() })
}

// Run connects Devices agents to opts.Addr as a storm, lets them report
// for Duration, waits for the answers still due, disconnects them and
// returns the figures. It fails when the context ends first or when not a
// single agent could connect; partial failures are counted in the Result.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := RaiseFileLimit(uint64(opts.Devices + 1024)); err != nil {
		return nil, err
	}
	r := &run{o: opts, p: opts.Profile, start: make(chan struct{}), stopCh: make(chan struct{})}
	res := &Result{Devices: opts.Devices}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15))
	agents := make([]*agent, opts.Devices)
	for i := range agents {
		d := newDevice(r.p, thingName(opts.ThingPrefix, i, opts.Devices), rng)
		agents[i] = &agent{r: r, d: d, rng: rand.New(rand.NewPCG(opts.Seed, uint64(i)+1))}
		if d.format == "cbor" {
			res.CBOR++
		} else {
			res.JSON++
		}
		if d.short {
			res.Short++
		} else {
			res.Long++
		}
	}

	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("fleet: broker address %q: %w", opts.Addr, err)
	}
	loopback := net.ParseIP(host) != nil && net.ParseIP(host).IsLoopback() && net.ParseIP(host).To4() != nil

	// Storm: every agent connects and subscribes, StormConcurrency at a time.
	sctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	sem := make(chan struct{}, opts.StormConcurrency)
	var connected atomic.Int64
	var wg, setup sync.WaitGroup
	stormStart := time.Now()
	var lastUp atomic.Int64
	for i, a := range agents {
		var local net.Addr
		if loopback {
			local = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%opts.SourceIPs))}
		}
		wg.Add(1)
		setup.Add(1)
		go func() {
			defer wg.Done()
			ok := false
			select {
			case sem <- struct{}{}:
				err := a.connect(sctx, local)
				<-sem
				if err != nil {
					r.fail(err)
				} else {
					ok = true
					connected.Add(1)
					lastUp.Store(int64(time.Since(stormStart)))
				}
			case <-sctx.Done():
				r.fail(fmt.Errorf("fleet: %s: connection storm timed out before it could dial", a.d.thing))
			}
			setup.Done()
			if ok {
				a.loop()
			}
		}()
	}
	setup.Wait()
	res.Connected = int(connected.Load())
	res.ConnectFailures = opts.Devices - res.Connected
	res.Storm = time.Duration(lastUp.Load())
	if err := ctx.Err(); err != nil {
		r.stopAll(agents)
		wg.Wait()
		return res, fmt.Errorf("fleet: interrupted during the connection storm: %w", err)
	}
	if res.Connected == 0 {
		r.stopAll(agents)
		wg.Wait()
		res.FirstError = r.firstErr
		return res, fmt.Errorf("fleet: no agent could connect to %s: %s", opts.Addr, r.firstErr)
	}

	// Steady phase.
	r.startAt = time.Now()
	r.endAt = r.startAt.Add(opts.Duration)
	close(r.start)
	t := time.NewTimer(opts.Duration)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	res.Steady = time.Since(r.startAt)
	r.stopAll(agents)
	wg.Wait()

	res.Sent, res.Accepted, res.Rejected = r.sent.Load(), r.accepted.Load(), r.rejected.Load()
	res.Lost, res.Disconnected = r.lost.Load(), r.dropped.Load()
	res.RTT = r.rtt.summary()
	// Answers still due when reporting stopped are awaited; count the time
	// they took, or a backlogged broker would look faster than it is.
	if span := max(res.Steady, time.Duration(r.lastAccept.Load())); span > 0 {
		res.Throughput = float64(res.Accepted) / span.Seconds()
	}
	res.FirstError = r.firstErr
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("fleet: interrupted: %w", err)
	}
	return res, nil
}

// stopAll tells every agent to finish: reporting stops, answers still due
// are awaited (bounded by ResponseTimeout), then each disconnects.
func (r *run) stopAll(agents []*agent) {
	r.stop.Store(true)
	close(r.stopCh)
	now := time.Now()
	for _, a := range agents {
		a.wake(now)
	}
}

// RaiseFileLimit lifts RLIMIT_NOFILE to at least n (soft, and hard when
// the process may), because every agent and every broker-side connection
// holds a descriptor.
func RaiseFileLimit(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("fleet: read RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur >= n {
		return nil
	}
	if lim.Max < n {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err == nil {
			return nil
		}
	}
	if lim.Max >= n {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: lim.Max}); err == nil {
			return nil
		}
	}
	return fmt.Errorf("fleet: need %d file descriptors, RLIMIT_NOFILE allows %d (hard %d) and cannot be raised without CAP_SYS_RESOURCE (pid %d)", n, lim.Cur, lim.Max, os.Getpid())
}

// raiseSoftFileLimit lifts the soft RLIMIT_NOFILE to the hard one.
func raiseSoftFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
