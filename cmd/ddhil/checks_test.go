package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestChecksDocIsGenerated keeps docs/checks.md equal to the catalogue;
// regenerate with `make checks-doc`.
func TestChecksDocIsGenerated(t *testing.T) {
	var out, errb bytes.Buffer
	require.Equal(t, exitOK, dispatch([]string{"checks", "--markdown"}, &out, &errb), errb.String())
	want, err := os.ReadFile(filepath.Join("..", "..", "docs", "checks.md"))
	require.NoError(t, err)
	require.Equal(t, string(want), out.String(), "docs/checks.md is stale: run make checks-doc")
}
