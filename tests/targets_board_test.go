package tests

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/device/hwmap"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/board"
	"github.com/ddhil/ddhil/internal/syncbuf"
)

// -ddhil.target=board runs the suites on a real board of a hardware map
// (docs/boards.md): go test ./tests/ -args -ddhil.target=board
// -ddhil.hwmap=bench.yaml [-ddhil.board=nucleo-1].
var (
	hwmapFlag = flag.String("ddhil.hwmap", "", "hardware map for -ddhil.target=board; default $DDHIL_HWMAP")
	boardFlag = flag.String("ddhil.board", "", "board id in the hardware map; default $DDHIL_BOARD, else the map's only (attached) board")
)

func init() { targetFactories["board"] = newBoardTarget }

// locateBoard returns the selected, attached board and the map's path
// (a relative path is tried from the working directory, then from the
// repository root, since go test runs in tests/). It skips without a map or
// when the board is not attached and fails on an invalid map or id.
func locateBoard(t *testing.T) (hwmap.Board, string) {
	t.Helper()
	path := flagOrEnv(hwmapFlag, "DDHIL_HWMAP")
	if path == "" {
		t.Skip("target board: no hardware map (-ddhil.hwmap=FILE or DDHIL_HWMAP; docs/boards.md)")
	}
	if !filepath.IsAbs(path) {
		if _, err := os.Stat(path); err != nil {
			path = filepath.Join(repoRoot(), path)
		}
	}
	b, err := runner.LocateBoard(path, flagOrEnv(boardFlag, "DDHIL_BOARD"))
	if errors.Is(err, runner.ErrBoardNotAttached) {
		t.Skip(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	return b, path
}

// newBoardTarget flashes the reference agent onto the selected board. It
// skips, with the reason, when no hardware map is given, when the board is
// not attached, and for boards with their own network: these suites drive
// the reference agent through the Wi-Fi module ddhil plays, so they need a
// module board (NUCLEO-F446RE, STM32F4-Discovery with a USB-serial adapter).
// An invalid map or an unknown board id fails the test.
func newBoardTarget(t *testing.T) target.Target {
	t.Helper()
	b, path := locateBoard(t)
	if b.Transport.Kind != hwmap.TransportModule {
		t.Skipf("board %s (%s) has transport %s: these suites drive the reference agent through the emulated Wi-Fi module; run its own firmware with: ddhil run --target board --hwmap %s --board %s",
			b.ID, b.Platform, b.Transport.Kind, path, b.ID)
	}
	// The nucleo-f446re build also runs on the STM32F4-Discovery's F407
	// (fixtures/profiles/ddagent-stm32f4disc.yaml).
	elf := firmwareELF(t, "nucleo-f446re")
	log := &syncbuf.Buffer{}
	tg, err := board.New(board.Config{Board: b, ELF: elf, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && log.Len() > 0 {
			t.Logf("openocd output:\n%s", log.String())
		}
	})
	return tg
}

// TestBoardConformance is the whole conformance suite on the selected board
// through runner.Run, as `ddhil run --target board` runs it; the reports go
// to $DDHIL_OUT/board. The profile is the map entry's or the platform's
// (runner.PlatformDefaults). The reference agent is built for module
// boards; a network board needs its image in DDHIL_FIRMWARE, its Wi-Fi in
// DDHIL_WIFI_SSID / DDHIL_WIFI_PASSWORD (unless already stored on it), and,
// reporting every 300 s, a test deadline of an hour (go test -timeout 70m).
func TestBoardConformance(t *testing.T) {
	if targetName() != "board" {
		t.Skipf("target is %s (select a board with -ddhil.target=board -ddhil.hwmap=FILE)", targetName())
	}
	b, path := locateBoard(t)
	o := runner.Options{Target: "board", HWMap: path, Board: b.ID, Profile: b.Profile, OutDir: keptRunDir(t, "board"),
		Progress: logWriter{t}, Command: []string{"go", "test", "./tests", "-run", "TestBoardConformance"}}
	if o.Profile == "" {
		def, ok := runner.PlatformDefaults[b.Platform]
		if !ok {
			t.Fatalf("board %s: platform %s has no default profile: set profile: in %s", b.ID, b.Platform, path)
		}
		o.Profile = filepath.Join(repoRoot(), def.Profile)
	}
	budget := 15 * time.Minute
	switch {
	case b.Transport.Kind == hwmap.TransportModule:
		o.Firmware = firmwareELF(t, "nucleo-f446re")
	default:
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
