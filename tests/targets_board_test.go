package tests

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/device/hwmap"
	"github.com/ddhil/ddhil/harness/hiltest"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/board"
)

// locateBoard returns the selected, attached board and the map's path
// (-ddhil.hwmap / DDHIL_HWMAP; a relative path is tried from the working
// directory, then from the repository root, since go test runs in tests/).
// It skips without a map or when the board is not attached and fails on an
// invalid map or id.
func locateBoard(t *testing.T) (hwmap.Board, string) {
	t.Helper()
	sel := hiltest.Selected()
	path := sel.Settings.Get("hwmap")
	if path == "" {
		t.Skip("target board: no hardware map (-ddhil.hwmap=FILE or DDHIL_HWMAP; docs/boards.md)")
	}
	if !filepath.IsAbs(path) {
		if _, err := os.Stat(path); err != nil {
			path = filepath.Join(repoRoot(), path)
		}
	}
	b, err := board.Locate(path, sel.Settings.Get("board"))
	if errors.Is(err, board.ErrBoardNotAttached) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, path
}

// TestBoardConformance is the whole conformance suite on the selected board
// through runner.Run, as `ddhil run --target board` runs it; the reports go
// to $DDHIL_OUT/board. The profile is the map entry's or the platform's
// (board.PlatformDefaults). The reference agent is built for module
// boards; a network board needs its image in DDHIL_FIRMWARE, its Wi-Fi in
// DDHIL_WIFI_SSID / DDHIL_WIFI_PASSWORD (unless already stored on it), and,
// reporting every 300 s, a test deadline of an hour (go test -timeout 70m).
func TestBoardConformance(t *testing.T) {
	if targetName() != "board" {
		t.Skipf("target is %s (select a board with -ddhil.target=board -ddhil.hwmap=FILE)", targetName())
	}
	b, path := locateBoard(t)
	o := runner.Options{Target: "board", Settings: target.Settings{"hwmap": {path}, "board": {b.ID}}, OutDir: keptRunDir(t, "board"),
		Progress: logWriter{t}, Command: []string{"go", "test", "./tests", "-run", "TestBoardConformance"}}
	budget := 15 * time.Minute
	if b.Transport.Kind != hwmap.TransportModule {
		o.Firmware = os.Getenv("DDHIL_FIRMWARE")
		if o.Firmware == "" {
			t.Skipf("board %s (%s): set DDHIL_FIRMWARE to its firmware image (the STM32U5 reference's ELF)", b.ID, b.Platform)
		}
		o.Periods, budget = 1, 60*time.Minute
		o.Vars = map[string]string{"ssid": os.Getenv("DDHIL_WIFI_SSID"), "password": os.Getenv("DDHIL_WIFI_PASSWORD")}
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < budget {
		t.Skipf("board %s needs about %s; the test deadline is in %s (go test -timeout)", b.ID, budget, time.Until(dl).Round(time.Second))
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	rep, err := runner.Run(ctx, o)
	require.NoError(t, err, "reports written")
	assert.Equal(t, "board", rep.Target.Kind)
	assert.Equal(t, b.ID, rep.Target.Name)
	assert.Empty(t, rep.Run.LabError)
	assert.Equal(t, 0, rep.ExitCode(), "verdict %s (%s): %v", rep.Verdict(), rep.VerdictReason(), failedChecks(rep))
}
