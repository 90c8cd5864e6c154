package openocd

import (
	"context"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBoardConfigsParse runs the real openocd on every board configuration
// the project names. Without a probe the best it can show is that each file
// is found, parses, declares the expected target, and fails at init with
// "open failed" (no ST-LINK) - exactly what a bench without the board does.
func TestBoardConfigsParse(t *testing.T) {
	needOpenOCD(t)
	fixtures := filepath.Dir(dummyCfg)
	tests := []struct {
		name, cfg, target string
	}{
		{"nucleo-f446re stock", "board/st_nucleo_f4.cfg", "stm32f4x.cpu"},
		{"stm32f4-discovery stock", "board/stm32f4discovery.cfg", "stm32f4x.cpu"},
		{"b-u585i-iot02a fixture", filepath.Join(fixtures, "b-u585i-iot02a.cfg"), "stm32u5x.cpu"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "openocd", "-f", tc.cfg, "-c", "adapter serial DDHIL-NO-SUCH-PROBE",
				"-c", "tcl_port disabled", "-c", "telnet_port disabled", "-c", "gdb_port disabled",
				"-c", `echo "ddhil-targets:[target names]"`, "-c", "init", "-c", "shutdown")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee, "openocd must fail without a probe:\n%s", out)
			assert.Equal(t, 1, ee.ExitCode())
			assert.Contains(t, string(out), "ddhil-targets:"+tc.target)
			assert.Contains(t, string(out), "Error: open failed")
			assert.NotContains(t, string(out), "Can't find")
			assert.Equal(t, " (probe not found: is it plugged in, and is the serial right?)", hint(string(out)))
		})
	}
}
