package syncbuf

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConcurrentWritesKeepEveryByte(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				_, _ = b.Write([]byte("ab"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	require.Equal(t, 1600, b.Len())
	require.Len(t, b.Bytes(), 1600)
	b.Reset()
	require.Zero(t, b.Len())
}
