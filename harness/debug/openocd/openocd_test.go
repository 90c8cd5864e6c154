package openocd

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
)

// dummyCfg is the shared no-hardware OpenOCD configuration.
var dummyCfg = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "fixtures", "openocd", "dummy-testee.cfg")
}()

// needOpenOCD skips tests that run the real openocd when it is absent.
func needOpenOCD(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("openocd"); err != nil {
		t.Skip("openocd not installed (apt-get install openocd): ", err)
	}
}

func TestVersion(t *testing.T) {
	needOpenOCD(t)
	v, err := Version(context.Background(), "")
	require.NoError(t, err)
	assert.Contains(t, v, "Open On-Chip Debugger")
	_, err = Version(context.Background(), "/nonexistent/openocd")
	assert.ErrorIs(t, err, harness.ErrLab)
}
