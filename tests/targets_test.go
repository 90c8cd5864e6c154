// Package tests holds the end-to-end suites: real firmware on a real target
// (QEMU by default), the embedded broker, the emulated Wi-Fi module and the
// device profile. They reach the target through harness/hiltest, exactly as
// a user's own suite does: select it with -ddhil.target=<name> (and the
// driver's -ddhil.<option> flags) or DDHIL_TARGET / DDHIL_<OPTION>.
package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/ddhil/ddhil/harness/hiltest"
)

// targetName is the selected target kind.
func targetName() string { return hiltest.TargetName() }

// repoRoot is the module root (tests/..).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// builds remembers one `make` per firmware profile, so parallel tests that
// need different builds each get theirs (one shared sync.Once built only
// the first profile asked for).
var builds sync.Map // profile -> func() error

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
	build, _ := builds.LoadOrStore(fwProfile, sync.OnceValue(func() error {
		cmd := exec.Command("make", "-C", filepath.Join(repoRoot(), "firmware"), "PROFILE="+fwProfile)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("make -C firmware PROFILE=%s: %w\n%s", fwProfile, err, out)
		}
		return nil
	}))
	if err := build.(func() error)(); err != nil {
		t.Fatalf("building the firmware: %v", err)
	}
	return elf
}

// agentProfile is the reference agent's device profile.
func agentProfile() string { return filepath.Join(repoRoot(), "fixtures", "profiles", "ddagent.yaml") }
