package defender

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzCBORWalker feeds the walk bytes that fxamacker/cbor never checked:
// the walk must stay in bounds on its own (it runs past the library's
// verdict when a limit was hit).
func FuzzCBORWalker(f *testing.F) {
	matches, err := filepath.Glob("../../fixtures/reports/*.cbor")
	require.NoError(f, err)
	for _, m := range matches {
		b, err := os.ReadFile(m)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		w := cborWalker{b: b}
		var root node
		if err := w.item(&root); err == nil {
			require.LessOrEqual(t, w.i, len(b))
		}
	})
}

func TestSignificantDigits(t *testing.T) {
	for text, want := range map[string]int{
		"0": 0, "-0": 0, "1": 1, "10": 1, "1234567890123456": 16, "0.00120": 2,
		"1234e5": 4, "-1.5E-3": 2, "100.001": 6, "18446744073709551615": 20,
	} {
		require.Equal(t, want, significantDigits(text), text)
	}
}
