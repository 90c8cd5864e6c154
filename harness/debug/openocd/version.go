package openocd

import (
	"context"
	"fmt"
	"github.com/ddhil/ddhil/internal/proc"
	"os/exec"
	"strings"

	"github.com/ddhil/ddhil/harness"
)

// Version returns OpenOCD's version line, e.g. "Open On-Chip Debugger 0.12.0".
func Version(ctx context.Context, bin string) (string, error) {
	cmd := exec.CommandContext(ctx, binary(bin), "--version")
	cmd.SysProcAttr = proc.Attr()
	out, err := cmd.CombinedOutput() // it prints the version on stderr
	if err != nil {
		return "", harness.LabError(fmt.Errorf("openocd: --version: %w", err))
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line), nil
}
