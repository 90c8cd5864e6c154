package report

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/hostload"
)

// A mark on a run judged on the target's clock shows both clocks in its
// tooltip, and the JSON keeps both plus the host record.
func TestTargetClockInTooltipAndJSON(t *testing.T) {
	tgt := 11900 * time.Millisecond
	m := Mark{At: 12300 * time.Millisecond, Kind: MarkReport, TargetAt: &tgt}
	assert.Contains(t, markTitle(m), "(target "+Offset(tgt)+")")
	assert.NotContains(t, markTitle(Mark{At: time.Second, Kind: MarkReport}), "target")

	b, err := json.Marshal(Run{TargetClock: "renode-virtual", HostLoad: &hostload.Record{CPUs: 2, LoadStart: [3]float64{7.5, 1, 1}}})
	require.NoError(t, err)
	assert.True(t, bytes.Contains(b, []byte(`"target_clock":"renode-virtual"`)), string(b))
	assert.True(t, bytes.Contains(b, []byte(`"host_load":{"cpus":2,"load_start":[7.5,1,1]`)), string(b))
	b, err = json.Marshal(m)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"target_at_ns":11900000000`)
}
