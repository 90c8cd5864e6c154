// Package conformance is the check catalogue: each check has a stable ID, a
// title, a severity and a citation, and is a pure function over a captured
// session. The CLI (`ddhil run`) and `go test` suites call the same functions,
// so a verdict means the same thing wherever it was produced.
package conformance

import (
	"fmt"
	"sort"
	"time"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/broker/defender"
	"github.com/ddhil/ddhil/harness/judge/detect"
)

// Capture is everything a run observed. All times are offsets on one clock:
// the broker's monotonic clock (broker.Event.Mono); whoever builds a Capture
// converts other sources (module link, console, actions) onto it. Timing
// checks judge a copy mapped onto TargetClock when the target has one.
type Capture struct {
	Thing  string          // the thing the device was provisioned as
	Format defender.Format // the format it was provisioned to report in
	Expect Expectations
	// Events is the broker's event log, in order.
	Events []broker.Event
	// Link is what the emulated Wi-Fi module carried for the device
	// (empty on a target with its own network).
	Link []LinkEvent
	// Actions are what the harness did to the device or the broker.
	Actions []Action
	// End is when the capture stopped; windows still open at End are judged
	// only as far as End.
	End time.Duration
	// Stopped says where the device's network bring-up stopped when no
	// report reached the broker (from the module's log; "" otherwise).
	Stopped string
	// Commands are the AT commands the firmware sent the emulated module,
	// with its answers (evidence; no check judges them).
	Commands []ATCommand
	// SecurityProfiles are the Detect profiles DD-D01 evaluates (nil: the
	// check is skipped); Baseline is the fleet recording statistical
	// thresholds take their percentiles from.
	SecurityProfiles *detect.Definitions
	Baseline         detect.Baseline
	// TargetClock is the target's own clock sampled during the run (nil on a
	// board, which runs in real time). Timing checks judge on it.
	TargetClock *TargetClock
	// Stalls are what the host took from the run, per sampling period.
	Stalls []Stall
	// ReportStamps are the firmware's own stamps of its "report published"
	// log lines by report id (its ms counter). On a target clock they place
	// each report at its source: a host that delivers the bytes late cannot
	// move it (see inTargetTime).
	ReportStamps map[uint64]time.Duration

	judgedOn string          // set on a target-time view: the clock's name
	host     *Capture        // set on a target-time view: the host-time capture
	stamped  map[uint64]bool // on a target-time view: report seqs placed by their stamp
}

// Expectations come from the device profile, overridable per run.
type Expectations struct {
	// TestPeriod is the report period the device was provisioned with for
	// this run; ProductionPeriod is what it uses in the field.
	TestPeriod       time.Duration `json:"test_period" yaml:"test_period"`
	ProductionPeriod time.Duration `json:"production_period" yaml:"production_period"`
	// Tolerance is the allowed relative deviation of the median interval.
	Tolerance float64 `json:"tolerance" yaml:"tolerance"`
	// JitterP95 bounds the 95th percentile of |interval - median|, relative
	// to the period.
	JitterP95 float64 `json:"jitter_p95" yaml:"jitter_p95"`
	// FirstReportBound: first report after each MQTT connection.
	FirstReportBound time.Duration `json:"first_report_bound" yaml:"first_report_bound"`
	// ReconnectBound: from a broker-side drop to the next CONNECT.
	ReconnectBound time.Duration `json:"reconnect_bound" yaml:"reconnect_bound"`
	// ThrottleWindow is AWS's per-thing window (300 s).
	ThrottleWindow time.Duration `json:"throttle_window" yaml:"throttle_window"`
	// ListeningTCP and ListeningUDP are the ports the device must report.
	ListeningTCP []int `json:"listening_tcp" yaml:"listening_tcp"`
	ListeningUDP []int `json:"listening_udp" yaml:"listening_udp"`
	// Transport is "module" (emulated Wi-Fi module: exact counters) or
	// "network" (own TCP/TLS stack: bounded overhead).
	Transport string `json:"transport" yaml:"transport"`
	// HeaderOverhead is the per-packet allowance on the network path
	// (TCP/IP headers; TLS records are already counted by the broker).
	HeaderOverhead int `json:"header_overhead" yaml:"header_overhead"`
	// Endpoint is the host:port the device was told to connect to.
	Endpoint string `json:"endpoint" yaml:"endpoint"`
	// Unreported are the metric sections the device profile declares the
	// firmware does not report (UnreportedMetrics); their accuracy checks
	// skip instead of failing.
	Unreported []string `json:"unreported,omitempty" yaml:"unreported_metrics"`
}

// UnreportedMetrics are the metric sections a profile may declare the
// firmware does not report, and the accuracy checks each one skips.
var UnreportedMetrics = map[string]string{
	"network_stats":       "DD-A01, DD-A02",
	"tcp_connections":     "DD-A03",
	"listening_tcp_ports": "DD-A04 (TCP side)",
	"listening_udp_ports": "DD-A04 (UDP side)",
}

// WithDefaults fills zero fields with the documented defaults.
func (e Expectations) WithDefaults() Expectations {
	if e.TestPeriod == 0 {
		e.TestPeriod = time.Second
	}
	if e.ProductionPeriod == 0 {
		e.ProductionPeriod = 300 * time.Second
	}
	if e.Tolerance == 0 {
		e.Tolerance = 0.10
	}
	if e.JitterP95 == 0 {
		e.JitterP95 = 0.25
	}
	if e.FirstReportBound == 0 {
		e.FirstReportBound = 2*e.TestPeriod + 2*time.Second
	}
	if e.ReconnectBound == 0 {
		e.ReconnectBound = 40 * time.Second
	}
	if e.ThrottleWindow == 0 {
		e.ThrottleWindow = 300 * time.Second
	}
	if e.Transport == "" {
		e.Transport = "module"
	}
	if e.HeaderOverhead == 0 {
		e.HeaderOverhead = 80
	}
	return e
}

// LinkEvent is one thing the emulated module did on the device's behalf.
type LinkEvent struct {
	At        time.Duration `json:"at"`
	Kind      string        `json:"kind"` // open | close | send | recv
	Link      int           `json:"link"` // increments per CIPSTART
	Bytes     int           `json:"bytes,omitempty"`
	LocalPort int           `json:"local_port,omitempty"`
	Remote    string        `json:"remote,omitempty"` // host:port as the device asked for it
	// Proto is the link's kind as the module reports it (TCP, UDP, SSL, or
	// MQTT for the module's own MQTT client, whose sends count topic +
	// payload bytes rather than MQTT packets).
	Proto string `json:"proto,omitempty"`
	// Addr is the remote as an address (ip:port) when Remote names a host
	// the module resolved (e.g. the AWS endpoint name); devices report
	// remote_addr as an address.
	Addr string `json:"addr,omitempty"`
}

// Link event kinds: send is one CIPSEND that got SEND OK (device to network),
// recv is one +IPD message (network to device).
const (
	LinkOpen  = "open"
	LinkClose = "close"
	LinkSend  = "send"
	LinkRecv  = "recv"
)

// Action is something the harness did that checks must know about.
type Action struct {
	At     time.Duration `json:"at"`
	Kind   string        `json:"kind"`
	Detail string        `json:"detail,omitempty"`
}

// ATCommand is one AT command and the module's answer, on the broker's
// clock.
type ATCommand struct {
	At              time.Duration
	Command, Result string
	Answer, Reason  string
}

// Action kinds.
const (
	ActionPhase        = "phase"         // Detail: phase name (normal, disconnect, reject, reset, ...)
	ActionReset        = "reset"         // target reset
	ActionKick         = "kick"          // broker dropped the device's connection
	ActionReject       = "reject"        // broker answered the next report with Detail code
	ActionDropResponse = "drop-response" // broker answered nothing to the next report
	ActionFault        = "fault"         // Detail: "name on|off"
	ActionStepFailed   = "step-failed"   // Detail: "<phase>: what the device did not do"
	ActionKickMissed   = "kick-missed"   // the device was not connected when the broker was to drop it
)

// ReportView is one Defender report with what the broker did about it.
type ReportView struct {
	Event    broker.Event
	Response *broker.Event // nil when no response was sent
	Kind     defender.TopicKind
	Thing    string // thing named in the topic
}

// At is when the broker received the report.
func (r ReportView) At() time.Duration { return r.Event.Mono }

// Result is the validation verdict the broker recorded.
func (r ReportView) Result() defender.Result {
	if r.Event.Result == nil {
		return defender.Result{}
	}
	return *r.Event.Result
}

// ID returns the report id when the header parsed.
func (r ReportView) ID() (uint64, bool) {
	res := r.Result()
	return res.ReportID, res.HeaderParsed
}

// Reports lists every Defender report publish in arrival order, paired with
// the response the broker sent for it.
func (c *Capture) Reports() []ReportView {
	var out []ReportView
	open := map[string]int{} // connID -> index of last report awaiting response
	for i := range c.Events {
		ev := c.Events[i]
		switch ev.Kind {
		case broker.EventReport:
			kind, thing, _ := defender.MatchTopic(ev.Topic)
			out = append(out, ReportView{Event: ev, Kind: kind, Thing: thing})
			open[ev.ConnID] = len(out) - 1
		case broker.EventResponse:
			// A response the broker dropped on purpose never reached the
			// device; the report stays unanswered.
			if ev.Fault == broker.FaultDrop || ev.Fault == broker.FaultUndelivered {
				continue
			}
			if idx, ok := open[ev.ConnID]; ok && out[idx].Response == nil {
				e := ev
				out[idx].Response = &e
				delete(open, ev.ConnID)
			}
		}
	}
	return out
}

// Connects lists accepted MQTT connections in order.
func (c *Capture) Connects() []broker.Event {
	var out []broker.Event
	for _, ev := range c.Events {
		if ev.Kind == broker.EventConnect && ev.Error == "" {
			out = append(out, ev)
		}
	}
	return out
}

// ActionsOf lists the actions of one kind.
func (c *Capture) ActionsOf(kind string) []Action {
	var out []Action
	for _, a := range c.Actions {
		if a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

// phaseAt names the scenario phase in force at t ("" before the first).
func (c *Capture) phaseAt(t time.Duration) string {
	name := ""
	for _, a := range c.Actions {
		if a.Kind == ActionPhase && a.At <= t {
			name = a.Detail
		}
	}
	return name
}

// boots returns the times the firmware (re)started: the capture start and
// every reset action.
func (c *Capture) boots() []time.Duration {
	out := []time.Duration{0}
	for _, a := range c.ActionsOf(ActionReset) {
		out = append(out, a.At)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ClockSample pairs a capture time (host, on the capture's clock) with the
// target's clock read at that moment.
type ClockSample struct {
	Host   time.Duration `json:"host_ns"`
	Target time.Duration `json:"target_ns"`
}

// TargetClock is the target's own clock (an emulator's virtual time, the
// firmware's tick counter) sampled during the run. Timing checks judge on it
// when it is present: a busy host then delays what the harness sees but not
// the verdict.
type TargetClock struct {
	Name string `json:"name"`
	// FirmwareDerived: the firmware's own counter, trusted only while its
	// rate against host time stays within [MinRate, MaxRate].
	FirmwareDerived bool `json:"firmware_derived,omitempty"`
	Compressed      bool `json:"compressed,omitempty"`
	// StepSlice: virtual time advanced in slices only while the harness
	// was idle, so a late harness cost the firmware at most one slice.
	StepSlice time.Duration `json:"step_slice_ns,omitempty"`
	// Samples are in host order; target times never decrease.
	Samples []ClockSample `json:"samples"`
}

// Bounds on a firmware-derived clock's rate against host time: outside
// them the clock is not believed (a SysTick set for the wrong core clock).
// A starved vCPU runs at 0.8-0.9 of host time; 0.5 leaves room for worse.
const (
	MinRate = 0.5
	MaxRate = 2.0
)

// At maps a capture time onto the target's clock by linear interpolation
// between the samples around it; outside them it extrapolates at rate 1
// from the nearest sample (the run's first and last moments).
func (tc *TargetClock) At(host time.Duration) time.Duration {
	s := tc.Samples
	if len(s) == 0 {
		return host
	}
	i := sort.Search(len(s), func(i int) bool { return s[i].Host >= host })
	switch {
	case i == 0:
		return s[0].Target - (s[0].Host - host)
	case i == len(s):
		return s[i-1].Target + (host - s[i-1].Host)
	}
	a, b := s[i-1], s[i]
	if b.Host == a.Host {
		return b.Target
	}
	return a.Target + time.Duration(float64(b.Target-a.Target)*float64(host-a.Host)/float64(b.Host-a.Host))
}

// Rate is target time over host time across the samples (0 with fewer than
// two).
func (tc *TargetClock) Rate() float64 {
	s := tc.Samples
	if len(s) < 2 || s[len(s)-1].Host == s[0].Host {
		return 0
	}
	return float64(s[len(s)-1].Target-s[0].Target) / float64(s[len(s)-1].Host-s[0].Host)
}

// Trusted says whether checks may judge on the clock by its rate alone,
// and why not (see Capture.ClockTrusted, which also weighs the stalls).
func (tc *TargetClock) Trusted() (bool, string) {
	if tc == nil || len(tc.Samples) < 2 {
		return false, "no target clock samples"
	}
	if r := tc.Rate(); tc.FirmwareDerived && (r < MinRate || r > MaxRate) {
		return false, fmt.Sprintf("the firmware's clock ran at %.2f× host time (outside %.1f–%.1f×): not trusted", r, MinRate, MaxRate)
	}
	return true, ""
}

// ClockTrusted says whether the timing checks may judge on the target's
// clock. A firmware clock that runs slower than MinRate is still believed
// when the host starved the emulator enough to explain it (a vCPU that
// cannot run loses SysTick interrupts: measured 0.5× with stress-ng and
// other jobs on 2 cores): its host-time deficit is at most twice the
// emulator's measured run-queue delay. A fast one never is.
func (c *Capture) ClockTrusted() (bool, string) {
	tc := c.TargetClock
	ok, why := tc.Trusted()
	if ok || tc == nil || len(tc.Samples) < 2 || tc.Rate() > MaxRate {
		return ok, why
	}
	first, last := tc.Samples[0], tc.Samples[len(tc.Samples)-1]
	deficit := (last.Host - first.Host) - (last.Target - first.Target)
	var wait time.Duration
	for _, s := range c.Stalls {
		if s.At > first.Host && s.At <= last.Host {
			wait += s.Emulator
		}
	}
	if deficit <= 2*wait {
		return true, ""
	}
	return false, fmt.Sprintf("%s, and the emulator's %s of run-queue delay does not explain its %s deficit", why, round(wait), round(deficit))
}

// Uncertainty is how far an interpolated target time at host time t can
// be off: the target-time step between the two samples around it (0 on a
// sample).
func (tc *TargetClock) Uncertainty(t time.Duration) time.Duration {
	s := tc.Samples
	i := sort.Search(len(s), func(i int) bool { return s[i].Host >= t })
	if i == 0 || i == len(s) || s[i].Host == t {
		return 0
	}
	return s[i].Target - s[i-1].Target
}

// Stall is what the host took from the run in one sampling period ending at
// At (see harness/hostload): Emulator is the emulator's run-queue delay,
// Harness how late the harness's own timers fired.
type Stall struct {
	At       time.Duration `json:"at"`
	Emulator time.Duration `json:"emulator_ns"`
	Harness  time.Duration `json:"harness_ns"`
}

// TimeBase names the clock the timing checks judged on.
func (c *Capture) TimeBase() string {
	if c.judgedOn != "" {
		return c.judgedOn
	}
	if ok, _ := c.ClockTrusted(); ok {
		return c.TargetClock.Name
	}
	return "host"
}

// inTargetTime returns a copy of the capture with every time mapped onto
// the target's clock, or the capture itself (judged on host time) when it
// has no trusted target clock.
func (c *Capture) inTargetTime() *Capture {
	if ok, _ := c.ClockTrusted(); !ok {
		return c
	}
	tc := c.TargetClock
	v := *c
	v.judgedOn = tc.Name
	v.host = c
	v.Events = append([]broker.Event(nil), c.Events...)
	for i := range v.Events {
		v.Events[i].Mono = tc.At(v.Events[i].Mono)
	}
	v.Link = append([]LinkEvent(nil), c.Link...)
	for i := range v.Link {
		v.Link[i].At = tc.At(v.Link[i].At)
	}
	v.Actions = append([]Action(nil), c.Actions...)
	for i := range v.Actions {
		v.Actions[i].At = tc.At(v.Actions[i].At)
	}
	v.Stalls = append([]Stall(nil), c.Stalls...)
	for i := range v.Stalls {
		v.Stalls[i].At = tc.At(v.Stalls[i].At)
	}
	v.End = tc.At(c.End)
	v.placeByStamps()
	return &v
}

// placeByStamps moves each report of a target-time view to its firmware
// stamp. Stamps restart with the firmware, and a connection never outlives
// a boot, so each connection's stamps get one offset onto the target clock
// (the median of interpolated minus stamped time): differences between its
// reports are then the firmware's exactly. A connection whose stamps run
// outside MinRate..MaxRate of the interpolated clock keeps interpolation:
// the firmware's counter is not believed over the emulator's clock.
func (v *Capture) placeByStamps() {
	if len(v.ReportStamps) == 0 {
		return
	}
	byConn := map[string][]int{}
	for i, ev := range v.Events {
		if ev.Kind != broker.EventReport || ev.Result == nil || !ev.Result.HeaderParsed {
			continue
		}
		if _, ok := v.ReportStamps[ev.Result.ReportID]; ok {
			byConn[ev.ConnID] = append(byConn[ev.ConnID], i)
		}
	}
	v.stamped = map[uint64]bool{}
	for _, idx := range byConn {
		offs := make([]time.Duration, len(idx))
		for k, i := range idx {
			offs[k] = v.Events[i].Mono - v.ReportStamps[v.Events[i].Result.ReportID]
		}
		if n := len(idx); n >= 2 {
			first, last := v.Events[idx[0]], v.Events[idx[n-1]]
			span := last.Mono - first.Mono
			stampSpan := v.ReportStamps[last.Result.ReportID] - v.ReportStamps[first.Result.ReportID]
			if span > 0 {
				if r := float64(stampSpan) / float64(span); r < MinRate || r > MaxRate {
					continue
				}
			}
		}
		sorted := append([]time.Duration(nil), offs...)
		sort.Slice(sorted, func(a, b int) bool { return sorted[a] < sorted[b] })
		off := sorted[len(sorted)/2]
		for _, i := range idx {
			v.Events[i].Mono = v.keepOrder(v.host.Events[i].Mono, v.ReportStamps[v.Events[i].Result.ReportID]+off)
			v.stamped[v.Events[i].Seq] = true
		}
	}
}

// hostAt maps a time of a target-time view back to the capture's host
// clock (the identity on a host-time capture).
func (c *Capture) hostAt(t time.Duration) time.Duration {
	if c.host == nil {
		return t
	}
	s := c.TargetClock.Samples
	i := sort.Search(len(s), func(i int) bool { return s[i].Target >= t })
	switch {
	case i == 0:
		return s[0].Host - (s[0].Target - t)
	case i == len(s):
		return s[i-1].Host + (t - s[i-1].Target)
	}
	a, b := s[i-1], s[i]
	if b.Target == a.Target {
		return a.Host
	}
	return a.Host + time.Duration(float64(b.Host-a.Host)*float64(t-a.Target)/float64(b.Target-a.Target))
}

// stallIn sums what the host took in the window (a, b] of the capture's
// (possibly target-time) clock: on host time the emulator's run-queue delay
// stretches the window itself; on the target's clock only the harness's
// lateness (its answers coming late) and the clock's sampling step can move
// an event.
func (c *Capture) stallIn(a, b time.Duration) (time.Duration, string) {
	var emu, late time.Duration
	for _, s := range c.Stalls {
		if s.At <= a || s.At > b+DefaultStallSample {
			continue
		}
		emu += s.Emulator
		if s.Harness > late {
			late = s.Harness
		}
	}
	if c.host != nil {
		var unc time.Duration
		for _, t := range []time.Duration{a, b} {
			if !c.stampedAt(t) {
				unc += c.TargetClock.Uncertainty(c.hostAt(t))
			}
		}
		if r := c.TargetClock.Rate(); c.TargetClock.Compressed && r > 1 {
			// Compressed: the target runs on while the harness is late, so a
			// late answer costs the firmware that much more virtual time;
			// stepped, at most one slice.
			late = time.Duration(float64(late) * r)
			if sl := c.TargetClock.StepSlice; sl > 0 && late > sl {
				late = sl
			}
		}
		return 2*late + unc, fmt.Sprintf("harness timers up to %s late (on the target clock), target clock interpolated to within %s", round(late), round(unc))
	}
	return emu + 2*late, fmt.Sprintf("emulator waited %s for a CPU, harness timers up to %s late", round(emu), round(late))
}

// keepOrder clamps t, the target time of something the host saw at host,
// between the harness actions around it: the harness acted on what it had
// seen (a phase ends after its last report), and moving a report to its
// stamp must not put it on the other side of such an action.
func (v *Capture) keepOrder(host, t time.Duration) time.Duration {
	lo, hi := time.Duration(-1<<63), time.Duration(1<<63-1)
	for i, a := range v.host.Actions {
		switch at := v.Actions[i].At; {
		case a.At <= host && at > lo:
			lo = at
		case a.At > host && at < hi:
			hi = at
		}
	}
	if t < lo {
		return lo
	}
	if t >= hi {
		return hi - 1
	}
	return t
}

// stampedAt reports whether a report placed by its firmware stamp sits at
// t (its time is exact: no interpolation error).
func (c *Capture) stampedAt(t time.Duration) bool {
	for _, ev := range c.Events {
		if ev.Mono == t && c.stamped[ev.Seq] {
			return true
		}
	}
	return false
}

// DefaultStallSample is the stall sampling period (hostload's): a window
// also takes the sample that covers its end.
const DefaultStallSample = 100 * time.Millisecond
