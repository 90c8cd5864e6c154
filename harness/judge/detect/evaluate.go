package detect

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"time"
)

// Violation event types (note §1.7).
const (
	InAlarm          = "in-alarm"
	AlarmCleared     = "alarm-cleared"
	AlarmInvalidated = "alarm-invalidated"
)

// Violation is one violation event, shaped like ListViolationEvents' entry
// with ddhil's evidence added.
type Violation struct {
	ID       string `json:"violation_id"` // same from in-alarm to its end (note §4.2)
	Profile  string `json:"security_profile"`
	Behavior string `json:"behavior"`
	Metric   string `json:"metric"`
	Thing    string `json:"thing"`
	State    string `json:"state"` // in-alarm | alarm-cleared | alarm-invalidated
	// At is the offset on the recording's clock (the broker's monotonic
	// clock; a run report rebases it on the run start); Time is the wall
	// clock.
	At   time.Duration `json:"at"`
	Time time.Time     `json:"time"`
	// Value is the datapoint that caused the event (none for
	// alarm-invalidated, as AWS sends none).
	Value *MetricValue `json:"value,omitempty"`
	// Datapoints is the run of consecutive violating (in-alarm) or normal
	// (alarm-cleared) datapoints that caused the event.
	Datapoints int `json:"datapoints"`
	// Threshold is the percentile value a statistical behaviour compared
	// against.
	Threshold *float64 `json:"threshold,omitempty"`
	// Suppressed: the behaviour has suppressAlerts; AWS still records the
	// violation but sends no notification (note §4.2).
	Suppressed bool `json:"suppressed,omitempty"`
}

// Skipped is a behaviour that was not evaluated, with the reason.
type Skipped struct {
	Profile  string `json:"security_profile"`
	Behavior string `json:"behavior"`
	Reason   string `json:"reason"`
}

// ProfileSummary names an evaluated profile.
type ProfileSummary struct {
	Name      string `json:"name"`
	Path      string `json:"path,omitempty"`
	Behaviors int    `json:"behaviors"`
}

// Result is the evaluation of every profile over one recording.
type Result struct {
	Profiles   []ProfileSummary `json:"security_profiles"`
	Violations []Violation      `json:"violations"`
	Skipped    []Skipped        `json:"skipped,omitempty"`
	Scale      Scale            `json:"scale"`
	// TimeScale says in words how AWS durations were mapped onto the run.
	TimeScale string `json:"time_scale"`
	// Datapoints counts the datapoints evaluated, per behaviour
	// ("profile/behavior"), so "no violation" can be told from "no data".
	Datapoints map[string]int `json:"datapoints"`
}

// Alarmed reports whether any behaviour went into alarm.
func (r *Result) Alarmed() bool {
	for _, v := range r.Violations {
		if v.State == InAlarm {
			return true
		}
	}
	return false
}

// Span is one alarm from in-alarm to its end (End is the recording's end
// when Open).
type Span struct {
	Violation  Violation // the in-alarm event
	End        time.Duration
	EndedState string // alarm-cleared | alarm-invalidated | "" when open
}

// Spans pairs each in-alarm event with the event that ended it.
func (r *Result) Spans(end time.Duration) []Span {
	var out []Span
	open := map[string]int{}
	for _, v := range r.Violations {
		switch v.State {
		case InAlarm:
			open[v.ID] = len(out)
			out = append(out, Span{Violation: v, End: end})
		default:
			if i, ok := open[v.ID]; ok {
				out[i].End, out[i].EndedState = v.At, v.State
				delete(open, v.ID)
			}
		}
	}
	return out
}

// Baseline is the fleet recordings statistical thresholds take their
// percentiles from (note §4.3).
type Baseline []*Recording

// Evaluate runs every profile over a recording. Without a baseline a
// statistical behaviour compares each device with the previous window of
// the run's own population (note §4.3); with one, with the percentile of
// every per-device value in the baseline.
func (d *Definitions) Evaluate(rec *Recording, base Baseline) *Result {
	res := &Result{Violations: []Violation{}, Scale: rec.Scale, TimeScale: rec.Scale.String(), Datapoints: map[string]int{}}
	end := rec.end()
	for _, p := range d.Profiles {
		res.Profiles = append(res.Profiles, ProfileSummary{Name: p.Name, Path: p.Path, Behaviors: len(p.Behaviors)})
		for _, b := range p.Behaviors {
			skip := func(format string, args ...any) {
				res.Skipped = append(res.Skipped, Skipped{Profile: p.Name, Behavior: b.Name, Reason: fmt.Sprintf(format, args...)})
			}
			m, ok := d.lookup(b.Metric)
			if !ok || b.Criteria == nil {
				skip("not valid (see validation)")
				continue
			}
			if b.Criteria.MLDetectionConfig != nil {
				skip("ML Detect (mlDetectionConfig) cannot be reproduced offline: AWS's models are trained on 14 days of fleet data and are not public")
				continue
			}
			series := d.series(b, m, rec)
			threshold := func(datapoint) (float64, bool) { return 0, true }
			if st := b.Criteria.StatisticalThreshold; st != nil {
				var reason string
				threshold, reason = d.statistical(b, m, st.Statistic, series, base)
				if reason != "" {
					skip("%s", reason)
					continue
				}
			}
			n := 0
			for _, thing := range sortedKeys(series) {
				n += len(series[thing])
				res.Violations = append(res.Violations, run(p.Name, b, series[thing], threshold, rec, end)...)
			}
			res.Datapoints[p.Name+"/"+b.Name] = n
		}
	}
	sort.SliceStable(res.Violations, func(i, j int) bool { return res.Violations[i].At < res.Violations[j].At })
	return res
}

// run is the per-(thing, profile, behaviour) state machine of note §4.2.
func run(profile string, b Behavior, dps []datapoint, threshold func(datapoint) (float64, bool), rec *Recording, end time.Duration) []Violation {
	c := b.Criteria
	toAlarm, toClear := 1, 1
	if c.ConsecutiveDatapointsToAlarm != nil {
		toAlarm = int(*c.ConsecutiveDatapointsToAlarm)
	}
	if c.ConsecutiveDatapointsToClear != nil {
		toClear = int(*c.ConsecutiveDatapointsToClear)
	}
	invalidate := rec.Scale.Of(invalidateAfter)
	var out []Violation
	alarm, bad, good := false, 0, 0
	var id string
	var last time.Duration
	emit := func(state string, at time.Duration, dp *datapoint, streak int, thr *float64) {
		v := Violation{ID: id, Profile: profile, Behavior: b.Name, Metric: b.Metric, State: state, At: at,
			Time: rec.wallAt(at), Datapoints: streak, Threshold: thr, Suppressed: b.SuppressAlerts}
		if dp != nil {
			val := dp.value
			v.Thing, v.Value = dp.thing, &val
		} else if len(dps) > 0 {
			v.Thing = dps[0].thing
		}
		out = append(out, v)
	}
	for i := range dps {
		dp := &dps[i]
		if alarm && i > 0 && dp.at-last > invalidate {
			emit(AlarmInvalidated, last+invalidate, nil, 0, nil)
			alarm, bad, good = false, 0, 0
		}
		last = dp.at
		thr, ok := threshold(*dp)
		if !ok {
			continue // no population to compare with: no datapoint
		}
		var thrp *float64
		if c.StatisticalThreshold != nil {
			thrp = &thr
		}
		if violates(c, *dp, thr) {
			bad, good = bad+1, 0
			if !alarm && bad >= toAlarm {
				alarm = true
				sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%d", profile, b.Name, dp.thing, dp.at))
				id = hex.EncodeToString(sum[:16])
				emit(InAlarm, dp.at, dp, bad, thrp)
			}
		} else {
			good, bad = good+1, 0
			if alarm && good >= toClear {
				alarm = false
				emit(AlarmCleared, dp.at, dp, good, thrp)
			}
		}
	}
	if alarm && end-last > invalidate {
		emit(AlarmInvalidated, last+invalidate, nil, 0, nil)
	}
	return out
}

// violates applies the criteria: they describe what is normal, so a
// datapoint violates when the comparison is false (note §4.1).
func violates(c *Criteria, dp datapoint, threshold float64) bool {
	v := dp.value
	switch c.ComparisonOperator {
	case "less-than", "less-than-equals", "greater-than", "greater-than-equals":
		n := threshold
		if c.StatisticalThreshold == nil {
			n = numOf(*c.Value)
		}
		x := dp.num
		normal := map[string]bool{"less-than": x < n, "less-than-equals": x <= n, "greater-than": x > n, "greater-than-equals": x >= n}
		return !normal[c.ComparisonOperator]
	case "in-port-set", "not-in-port-set":
		return setViolates(c.ComparisonOperator == "in-port-set", len(v.Ports), func(i int) bool { return slices.Contains(c.Value.Ports, v.Ports[i]) })
	case "in-set", "not-in-set":
		if v.Numbers != nil {
			return setViolates(c.ComparisonOperator == "in-set", len(v.Numbers), func(i int) bool { return slices.Contains(c.Value.Numbers, v.Numbers[i]) })
		}
		return setViolates(c.ComparisonOperator == "in-set", len(v.Strings), func(i int) bool { return slices.Contains(c.Value.Strings, v.Strings[i]) })
	case "in-cidr-set", "not-in-cidr-set":
		var prefixes []netip.Prefix
		for _, s := range c.Value.CIDRs {
			if p, err := parseCIDR(s); err == nil {
				prefixes = append(prefixes, p)
			}
		}
		ips := ipsIn(v.CIDRs)
		return setViolates(c.ComparisonOperator == "in-cidr-set", len(ips), func(i int) bool {
			for _, p := range prefixes {
				// Families never mix: an IPv4 address is in no IPv6 CIDR.
				if ips[i].IsValid() && p.Addr().Is4() == ips[i].Is4() && p.Contains(ips[i]) {
					return true
				}
			}
			return false
		})
	}
	return false
}

// setViolates: "in" is normal when every element is in the set, "not in"
// when none is; an empty list always conforms (note §4.1).
func setViolates(in bool, n int, member func(i int) bool) bool {
	for i := 0; i < n; i++ {
		if member(i) != in {
			return true
		}
	}
	return false
}

// statistical returns the threshold function of a statistical behaviour,
// or a reason it cannot be evaluated.
func (d *Definitions) statistical(b Behavior, m metricInfo, stat string, series map[string][]datapoint, base Baseline) (func(datapoint) (float64, bool), string) {
	p := statistics[stat]
	negative := func(s map[string][]datapoint) bool {
		for _, dps := range s {
			for _, dp := range dps {
				if dp.num < 0 {
					return true
				}
			}
		}
		return false
	}
	if negative(series) {
		return nil, "statisticalThreshold: a negative value was seen, and AWS stops serving percentiles for such a metric (custom metrics page)"
	}
	if len(base) > 0 {
		var pop []float64
		for _, rec := range base {
			s := d.series(b, m, rec)
			if negative(s) {
				return nil, "statisticalThreshold: the baseline holds a negative value (percentiles unavailable, as in AWS)"
			}
			for _, dps := range s {
				for _, dp := range dps {
					pop = append(pop, dp.num)
				}
			}
		}
		if len(pop) == 0 {
			return nil, fmt.Sprintf("statisticalThreshold: the baseline has no datapoint of %s", b.Metric)
		}
		t := percentile(pop, p)
		return func(datapoint) (float64, bool) { return t, true }, ""
	}
	// The run's own population: each thing's latest value per window; a
	// datapoint is compared with the previous window's percentile.
	perWindow := map[int]map[string]float64{}
	for thing, dps := range series {
		for _, dp := range dps {
			if perWindow[dp.window] == nil {
				perWindow[dp.window] = map[string]float64{}
			}
			perWindow[dp.window][thing] = dp.num
		}
	}
	memo := map[int]float64{} // a fleet of thousands evaluates each window once
	return func(dp datapoint) (float64, bool) {
		prev := perWindow[dp.window-1]
		if len(prev) == 0 {
			return 0, false
		}
		if t, ok := memo[dp.window-1]; ok {
			return t, true
		}
		pop := make([]float64, 0, len(prev))
		for _, v := range prev {
			pop = append(pop, v)
		}
		memo[dp.window-1] = percentile(pop, p)
		return memo[dp.window-1], true
	}, ""
}

// percentile is nearest rank, ceil(p/100·n), with p0 the minimum (note
// §4.3 step 3).
func percentile(values []float64, p float64) float64 {
	s := append([]float64(nil), values...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank-1, 0)]
}
