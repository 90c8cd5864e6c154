// Package tests holds the end-to-end suites: real firmware on a real target
// (QEMU by default), the embedded broker, the emulated Wi-Fi module and the
// device profile, driven through harness/session.
//
// Select the target with -ddhil.target=<name> or DDHIL_TARGET (the flag
// wins). Each target kind registers a factory in targetFactories, so the
// Renode and board drivers can add themselves in files of their own.
package tests

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/ddhil/ddhil/internal/syncbuf"

	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/qemu"
)

var targetFlag = flag.String("ddhil.target", "", "target kind for the end-to-end suites (qemu, ...); default $DDHIL_TARGET or qemu")

// targetFactory builds an unstarted target for one test. It calls t.Skip
// with a reason (and an install hint) when its tools or hardware are absent.
type targetFactory func(t *testing.T) target.Target

// targetFactories maps -ddhil.target names to factories.
var targetFactories = map[string]targetFactory{
	"qemu": newQEMUTarget,
}

// targetName is the selected target kind.
func targetName() string {
	if *targetFlag != "" {
		return *targetFlag
	}
	if v := os.Getenv("DDHIL_TARGET"); v != "" {
		return v
	}
	return "qemu"
}

// newTarget builds the selected target, failing the test on an unknown name.
func newTarget(t *testing.T) target.Target {
	t.Helper()
	name := targetName()
	f, ok := targetFactories[name]
	if !ok {
		names := make([]string, 0, len(targetFactories))
		for n := range targetFactories {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Fatalf("unknown target %q (-ddhil.target / DDHIL_TARGET); known: %s", name, strings.Join(names, ", "))
	}
	return f(t)
}

// repoRoot is the module root (tests/..).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

var (
	buildOnce sync.Once
	buildErr  error
)

// firmwareELF returns the reference agent's ELF for a firmware profile,
// building it once with `make -C firmware` when it is missing. It skips
// when the cross compiler is absent; DDHIL_FIRMWARE overrides the path.
func firmwareELF(t *testing.T, fwProfile string) string {
	t.Helper()
	if p := os.Getenv("DDHIL_FIRMWARE"); p != "" {
		return p
	}
	elf := filepath.Join(repoRoot(), "firmware", "build", fwProfile, "ddagent.elf")
	if _, err := os.Stat(elf); err == nil {
		return elf
	}
	if _, err := exec.LookPath("arm-none-eabi-gcc"); err != nil {
		t.Skipf("firmware %s is not built and arm-none-eabi-gcc is missing (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)", elf)
	}
	buildOnce.Do(func() {
		cmd := exec.Command("make", "-C", filepath.Join(repoRoot(), "firmware"), "PROFILE="+fwProfile)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("make -C firmware PROFILE=%s: %w\n%s", fwProfile, err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the firmware: %v", buildErr)
	}
	return elf
}

// newQEMUTarget runs the qemu-netduinoplus2 build on qemu-system-arm with
// the contract's wiring (serial0 = USART1 transport, serial1 = USART2
// console). QEMU's own output goes to the test log on failure.
func newQEMUTarget(t *testing.T) target.Target {
	t.Helper()
	if err := qemu.Probe(""); err != nil {
		t.Skip(err.Error())
	}
	elf := firmwareELF(t, "qemu-netduinoplus2")
	log := &syncbuf.Buffer{}
	q, err := qemu.New(qemu.Config{Firmware: elf, Stderr: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && log.Len() > 0 {
			t.Logf("qemu output:\n%s", log.String())
		}
	})
	return q
}
