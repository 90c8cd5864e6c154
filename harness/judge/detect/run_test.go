package detect

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A recorded run reads back with its time scale (report.json) and its
// normal phase (actions.jsonl); without them the scale is inferred from
// the report interval and the whole run counts.
func TestLoadRun(t *testing.T) {
	run, err := LoadRun("testdata/clean-run/events.jsonl", Scale{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if s := run.Recording.Scale; s.TestPeriod != time.Second || s.ProductionPeriod != 300*time.Second || run.ScaleSource != "report.json (profile expectations)" {
		t.Errorf("scale %+v from %q", s, run.ScaleSource)
	}
	if run.Window != "normal phase (until 5.692s)" || run.Recording.End.Round(time.Millisecond) != 5692*time.Millisecond {
		t.Errorf("window %q end %s", run.Window, run.Recording.End)
	}
	whole, err := LoadRun("testdata/clean-run/events.jsonl", Scale{TestPeriod: 2 * time.Second, ProductionPeriod: 600 * time.Second}, true)
	if err != nil {
		t.Fatal(err)
	}
	if whole.Window != "whole run" || len(whole.Recording.Events) <= len(run.Recording.Events) || whole.ScaleSource != "command line" {
		t.Errorf("whole run: %q, %d events (normal phase %d), scale from %q", whole.Window, len(whole.Recording.Events), len(run.Recording.Events), whole.ScaleSource)
	}
	// Only the events: the period is inferred (the agent reports every ~1 s).
	dir := t.TempDir()
	b, _ := os.ReadFile("testdata/clean-run/events.jsonl")
	if err := os.WriteFile(filepath.Join(dir, "events.jsonl"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	bare, err := LoadRun(filepath.Join(dir, "events.jsonl"), Scale{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if p := bare.Recording.Scale.TestPeriod; p < 900*time.Millisecond || p > 1100*time.Millisecond || bare.Window != "whole run" {
		t.Errorf("inferred period %s, window %q", p, bare.Window)
	}
	if _, err := LoadRun(filepath.Join(dir, "missing.jsonl"), Scale{}, false); err == nil {
		t.Error("missing file accepted")
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.jsonl"), []byte("{\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRun(filepath.Join(dir, "bad.jsonl"), Scale{}, false); err == nil {
		t.Error("malformed file accepted")
	}
}

func TestNormalEnd(t *testing.T) {
	ps := []Phase{{At: 5, Kind: "phase", Name: "disconnect"}, {At: 1, Kind: "phase", Name: "normal"}, {At: 3, Kind: "fault", Name: "x on"}}
	if end, ok := NormalEnd(ps, 9); !ok || end != 5 {
		t.Errorf("end %v ok %v, want 5 true", end, ok)
	}
	if end, ok := NormalEnd(ps[1:], 9); !ok || end != 9 {
		t.Errorf("normal to the end: %v %v", end, ok)
	}
	if _, ok := NormalEnd(ps[:1], 9); ok {
		t.Error("no normal phase reported as found")
	}
}
