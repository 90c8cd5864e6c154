package proc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A directory whose owner died (a killed harness) is removed by the next
// TempDir; a live owner's, and directories without an owner record, stay.
func TestRemoveStale(t *testing.T) {
	base := t.TempDir()
	mk := func(name, owner string) string {
		d := filepath.Join(base, name)
		require.NoError(t, os.Mkdir(d, 0o700))
		if owner != "" {
			require.NoError(t, os.WriteFile(filepath.Join(d, ownerFile), []byte(owner), 0o600))
		}
		return d
	}
	// A pid that surely ended: a child we waited for.
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	dead := mk("ddhil-qemu-dead", strconv.Itoa(cmd.Process.Pid))
	live := mk("ddhil-qemu-live", strconv.Itoa(os.Getpid()))
	foreign := mk("ddhil-qemu-foreign", "")
	other := mk("other-dead", strconv.Itoa(cmd.Process.Pid))

	removed := RemoveStale(base, "ddhil-qemu-")
	assert.Equal(t, []string{dead}, removed)
	assert.NoDirExists(t, dead)
	assert.DirExists(t, live)
	assert.DirExists(t, foreign)
	assert.DirExists(t, other, "another prefix is not touched")
}

func TestTempDirRecordsItsOwner(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	dir, err := TempDir("ddhil-test-")
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(os.Getpid()), string(b))
}
