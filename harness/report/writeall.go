package report

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File names WriteAll uses inside the run directory.
const (
	FileJSON     = "report.json"
	FileJUnit    = "junit.xml"
	FileMarkdown = "report.md"
	FileHTML     = "report.html"
)

// writers maps each file WriteAll produces to its writer.
var writers = map[string]func(io.Writer, *Report) error{
	FileJSON:     WriteJSON,
	FileJUnit:    WriteJUnit,
	FileMarkdown: WriteMarkdown,
	FileHTML:     WriteHTML,
}

// WriteAll writes report.json, junit.xml, report.md and report.html into dir
// (created if missing). Every file is rendered in memory first and then
// renamed into place, so a failure never leaves a half-written report, and
// nothing is written at all when the report is invalid.
func WriteAll(dir string, r *Report) error {
	if _, err := prepare(r); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	for _, name := range []string{FileJSON, FileJUnit, FileMarkdown, FileHTML} {
		var buf bytes.Buffer
		if err := writers[name](&buf, r); err != nil {
			return err
		}
		if err := WriteFileAtomic(filepath.Join(dir, name), buf.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// WriteFileAtomic writes data to a temporary file next to path and renames
// it over path, so readers see the old file or the new one, never a part.
func WriteFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("report: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
