package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/judge/detect"
)

// An invalid security profile, given on the command line or in the device
// profile's security_profiles, stops the run before the target is built:
// no target.log, no report, an error wrapping detect.ErrInvalidProfile.
func TestInvalidSecurityProfileStopsBeforeBoot(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`[{"name":"B","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than","value":{"count":1}}}]`), 0o644))
	base, err := os.ReadFile("../../fixtures/profiles/ddagent.yaml")
	require.NoError(t, err)
	withList := filepath.Join(dir, "ddagent.yaml")
	require.NoError(t, os.WriteFile(withList, append(base, []byte("\nsecurity_profiles: [bad.json]\n")...), 0o644))

	for name, o := range map[string]Options{
		"flag":           {Profile: "../../fixtures/profiles/ddagent.yaml", SecurityProfiles: []string{bad}},
		"device profile": {Profile: withList},
	} {
		t.Run(name, func(t *testing.T) {
			o.Target, o.Firmware, o.OutDir = "qemu", filepath.Join(dir, "never-built.elf"), filepath.Join(dir, name)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			rep, err := Run(ctx, o)
			require.Nil(t, rep)
			require.True(t, errors.Is(err, detect.ErrInvalidProfile), "%v", err)
			require.Contains(t, err.Error(), "Behavior B is malformed. metric aws:all-bytes-out requires criteria's duration field to be set")
			_, statErr := os.Stat(filepath.Join(o.OutDir, "target.log"))
			require.True(t, os.IsNotExist(statErr), "the target was started")
		})
	}
}
