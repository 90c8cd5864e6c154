package report

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "demo")
	r := sampleReport()
	require.NoError(t, WriteAll(dir, r))

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{FileJUnit, FileHTML, FileJSON, FileMarkdown}, names, "exactly the four files, no temporaries")

	for _, f := range Formats() {
		var want bytes.Buffer
		require.NoError(t, f.Write(&want, r))
		got, err := os.ReadFile(filepath.Join(dir, f.File))
		require.NoError(t, err)
		assert.Equal(t, want.String(), string(got), f.File)
	}

	f, err := os.Open(filepath.Join(dir, FileJSON))
	require.NoError(t, err)
	defer f.Close()
	back, err := ReadJSON(f)
	require.NoError(t, err)
	assert.Equal(t, r.finalized(), back)
}

func TestWriteAllInvalidWritesNothing(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileJSON), []byte("previous"), 0o644))
	r := sampleReport()
	r.Checks[0].Status = "maybe"
	err := WriteAll(dir, r)
	require.ErrorContains(t, err, `status "maybe"`)
	b, err := os.ReadFile(filepath.Join(dir, FileJSON))
	require.NoError(t, err)
	assert.Equal(t, "previous", string(b), "an existing report is not touched")
}

func TestWriteAllUnwritableDir(t *testing.T) {
	parent := t.TempDir()
	file := filepath.Join(parent, "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	err := WriteAll(filepath.Join(file, "sub"), sampleReport())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "report: ")
}
