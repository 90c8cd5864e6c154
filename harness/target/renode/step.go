package renode

import (
	"context"
	"fmt"
	"strconv"
)

// Steps reports whether the run steps virtual time (Config.StepSlice).
func (t *Target) Steps() bool { return t.cfg.StepSlice > 0 }

// Step pauses the emulation and advances it with `emulation RunFor`
// slices (run as fast as AdvanceImmediately allows), each after ready
// says the harness is idle. It ends with ctx; Reset waits for the slice in
// progress and keeps the emulation paused.
func (t *Target) Step(ctx context.Context, ready func(context.Context) error) error {
	if !t.Steps() {
		return fmt.Errorf("renode: not configured to step (Config.StepSlice)")
	}
	t.stepMu.Lock()
	_, err := t.execute(ctx, "pause")
	if err == nil {
		t.stepping = true
	}
	t.stepMu.Unlock()
	if err != nil {
		return err
	}
	cmd := `emulation RunFor "` + strconv.FormatFloat(t.cfg.StepSlice.Seconds(), 'f', -1, 64) + `"`
	for {
		if err := ready(ctx); err != nil {
			return err
		}
		t.stepMu.Lock()
		_, err := t.execute(ctx, cmd)
		t.stepMu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
	}
}
