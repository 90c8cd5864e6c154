package detect

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/ddhil/ddhil/broker"
)

// Phase is one scenario phase start (conformance.Action of kind "phase").
type Phase struct {
	At   time.Duration `json:"at"`
	Kind string        `json:"kind"`
	Name string        `json:"detail"`
}

// NormalEnd returns where the first "normal" phase ends: the next phase's
// start, or end when it runs to the end. ok is false when no normal phase
// was recorded (then the whole recording counts as normal operation).
func NormalEnd(phases []Phase, end time.Duration) (time.Duration, bool) {
	ps := append([]Phase(nil), phases...)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].At < ps[j].At })
	for i, p := range ps {
		if p.Kind != "" && p.Kind != "phase" || p.Name != "normal" {
			continue
		}
		for _, q := range ps[i+1:] {
			if q.Kind == "" || q.Kind == "phase" {
				return q.At, true
			}
		}
		return end, true
	}
	return end, false
}

// Until returns the recording cut at end: the scenario's later phases
// (drops, rejections, resets) are the harness's doing, not the firmware's.
func (r *Recording) Until(end time.Duration) *Recording {
	out := &Recording{End: end, Scale: r.Scale}
	for _, ev := range r.Events {
		if ev.Mono <= end {
			out.Events = append(out.Events, ev)
		}
	}
	return out
}

// Run is a recorded run read back from disk.
type Run struct {
	Dir       string
	Recording *Recording
	// Window says which part of the run was evaluated.
	Window string
	// ScaleSource says where the time scale came from.
	ScaleSource string
}

// LoadRun reads events.jsonl and, from the same directory when present,
// report.json (for the time scale: its period and production period) and
// actions.jsonl (for the normal phase). scale, when non-zero, overrides
// the time scale; wholeRun evaluates past the normal phase.
func LoadRun(eventsPath string, scale Scale, wholeRun bool) (*Run, error) {
	f, err := os.Open(eventsPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	events, err := broker.ReadJSONL(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", eventsPath, err)
	}
	dir := filepath.Dir(eventsPath)
	run := &Run{Dir: dir, Recording: &Recording{Events: events}}
	switch s, err := scaleFromReport(filepath.Join(dir, "report.json")); {
	case scale.Factor() != 1:
		run.Recording.Scale, run.ScaleSource = scale, "command line"
	case err == nil && s.Factor() != 1:
		run.Recording.Scale, run.ScaleSource = s, "report.json (profile expectations)"
	default:
		run.Recording.Scale = InferScale(events, 300*time.Second)
		run.ScaleSource = "inferred from the median report interval, production period 300 s"
		if run.Recording.Scale.Factor() == 1 {
			run.ScaleSource = "production time (no report interval to infer a scale from)"
		}
	}
	end := run.Recording.end()
	run.Window = "whole run"
	if !wholeRun {
		phases, err := readPhases(filepath.Join(dir, "actions.jsonl"))
		if err == nil {
			if e, ok := NormalEnd(phases, end); ok {
				run.Recording = run.Recording.Until(e)
				run.Window = fmt.Sprintf("normal phase (until %s)", e.Round(time.Millisecond))
			}
		}
	}
	return run, nil
}

func scaleFromReport(path string) (Scale, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Scale{}, err
	}
	var r struct {
		Profile struct {
			Expect struct {
				Period time.Duration     `json:"period_ns"`
				Extra  map[string]string `json:"extra"`
			} `json:"expect"`
		} `json:"profile"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return Scale{}, err
	}
	prod, err := time.ParseDuration(r.Profile.Expect.Extra["production_period"])
	if err != nil || r.Profile.Expect.Period <= 0 {
		return Scale{}, errors.New("report.json has no period and production period")
	}
	return Scale{TestPeriod: r.Profile.Expect.Period, ProductionPeriod: prod}, nil
}

func readPhases(path string) ([]Phase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Phase
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var p Phase
		if json.Unmarshal(sc.Bytes(), &p) == nil && p.Kind == "phase" {
			out = append(out, p)
		}
	}
	return out, sc.Err()
}

// InferScale estimates a recording's test period as the median interval
// between consecutive accepted reports of one thing (a fleet recording
// carries no profile).
func InferScale(events []broker.Event, production time.Duration) Scale {
	last := map[string]time.Duration{}
	var iv []time.Duration
	for _, ev := range events {
		if ev.Kind != broker.EventReport || ev.Result == nil || !ev.Result.Accepted() {
			continue
		}
		if t, ok := last[ev.Thing]; ok {
			iv = append(iv, ev.Mono-t)
		}
		last[ev.Thing] = ev.Mono
	}
	if len(iv) == 0 {
		return Scale{}
	}
	sort.Slice(iv, func(i, j int) bool { return iv[i] < iv[j] })
	return Scale{TestPeriod: iv[len(iv)/2], ProductionPeriod: production}
}
