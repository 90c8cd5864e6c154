package broker

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFIFOOrder: items come out in push order across drains and refills,
// and a drained queue reuses its array instead of growing a new one.
func TestFIFOOrder(t *testing.T) {
	q := newFIFO[int]()
	next := 0
	var array *int
	for round := range 3 {
		for i := range 5 - round {
			q.push(100*round + i)
		}
		if round == 0 {
			array = &q.items[0]
		} else {
			require.Same(t, array, &q.items[0], "a drained queue refills its old array")
		}
		for i := range 5 - round {
			v, ok := q.tryPop()
			require.True(t, ok)
			require.Equal(t, 100*round+i, v)
			next++
		}
		_, ok := q.tryPop()
		require.False(t, ok)
	}
	for round := range 3 {
		for i := range 5 + round {
			q.push(100*round + i)
		}
		for i := range 5 + round {
			v, ok := q.tryPop()
			require.True(t, ok)
			require.Equal(t, 100*round+i, v)
			next++
		}
		_, ok := q.tryPop()
		require.False(t, ok)
		require.Zero(t, len(q.items), "a drained queue starts again at the front")
	}
	done := make(chan struct{})
	close(done)
	_, ok := q.pop(done)
	require.False(t, ok, "pop gives up when done")
	require.Equal(t, 12+18, next)
}
