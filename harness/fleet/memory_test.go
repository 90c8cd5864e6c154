package fleet

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
)

// TestHeapPerConnectedAgent bounds what a connected agent costs on both
// ends (agent, and the broker's mochi client) in live heap: a fleet of
// 10,000 must fit in memory. mochi's default queue of 8,192 pending writes
// alone cost 64 KiB per client before the broker lowered it.
func TestHeapPerConnectedAgent(t *testing.T) {
	const n = 500
	p := fastProfile(t)
	b, err := broker.New(BrokerConfig(p, nil))
	require.NoError(t, err)
	ctx := testCtx(t, time.Minute)
	require.NoError(t, b.Start(ctx))
	defer b.Close()

	before := liveHeap()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Options{Addr: b.Addr("tcp"), Devices: n, Profile: p, Duration: 5 * time.Second})
		done <- err
	}()
	seen := 0
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err = b.WaitFor(wctx, func(ev broker.Event) bool {
		if ev.Kind == broker.EventSubscribe {
			seen++
		}
		return seen == 2*n
	})
	require.NoError(t, err)
	per := (liveHeap() - before) / n
	require.NoError(t, <-done)
	t.Logf("live heap per connected agent (both ends): %d bytes", per)
	require.Less(t, per, uint64(32<<10))
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
