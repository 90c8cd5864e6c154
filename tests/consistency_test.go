package tests

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/judge/conformance"
)

// The reference agent's profiles list exactly the faults its firmware
// knows (so --fault is checked before boot), and every fault proof names
// one of them.
func TestProfilesListTheFirmwaresFaults(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot(), "firmware", "src", "store.c"))
	require.NoError(t, err)
	block := regexp.MustCompile(`(?s)fault_names\[F_COUNT\] = \{(.*?)\};`).FindSubmatch(src)
	require.NotNil(t, block, "fault_names in store.c")
	var firmware []string
	for _, m := range regexp.MustCompile(`"([^"]+)"`).FindAllSubmatch(block[1], -1) {
		firmware = append(firmware, string(m[1]))
	}
	require.NotEmpty(t, firmware)
	profiles, err := filepath.Glob(filepath.Join(repoRoot(), "fixtures", "profiles", "ddagent*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, profiles)
	for _, path := range profiles {
		p, err := profile.Load(path)
		require.NoError(t, err)
		assert.Equal(t, firmware, p.Faults, "%s lists the firmware's faults in its order", filepath.Base(path))
	}
	for _, proof := range conformance.Proofs {
		assert.Contains(t, firmware, proof.Fault, "the proof's fault exists")
	}
}
