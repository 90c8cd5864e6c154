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

// Format is one way of writing a report down. Formats is the one list of
// them: WriteAll writes each, `ddhil report` offers a flag per entry, the
// Markdown summary links them and docs/report-schema.md is tested against it.
type Format struct {
	Name  string // the flag of `ddhil report`: json, junit, md, html
	File  string // its file name in a run directory
	What  string // who reads it, for help texts
	Write func(io.Writer, *Report) error
}

// Formats lists every report format, in the order WriteAll writes them.
func Formats() []Format {
	return []Format{
		{Name: "json", File: FileJSON, What: "the normalised report.json (schema " + SchemaVersion + ")", Write: WriteJSON},
		{Name: "junit", File: FileJUnit, What: "JUnit XML for CI test reporters", Write: WriteJUnit},
		{Name: "md", File: FileMarkdown, What: "the Markdown summary (a CI job summary)", Write: WriteMarkdown},
		{Name: "html", File: FileHTML, What: "the self-contained HTML report", Write: WriteHTML},
	}
}

// Files other than the reports that a run leaves in its directory. The
// session and the runner write them; they are named here so that the
// report's artefact list, the links and the docs agree.
const (
	FileConsoleLog = "console.log"
	FileEvents     = "events.jsonl"
	FileLink       = "link.jsonl"
	FileActions    = "actions.jsonl"
	FileTargetLog  = "target.log"
	FileScreenshot = "report.png"
)

// RunArtefacts describes the files a run leaves next to its reports, for
// the report's artefact list (report.png only when it was rendered).
func RunArtefacts() []Artefact {
	return []Artefact{
		{Name: FileConsoleLog, Kind: ArtefactConsoleLog, Description: "raw console bytes"},
		{Name: FileEvents, Kind: ArtefactEvents, Description: "broker event log (JSON Lines)"},
		{Name: FileLink, Kind: ArtefactEvents, Description: "emulated Wi-Fi module log (JSON Lines)"},
		{Name: FileActions, Kind: ArtefactEvents, Description: "what the harness did to the device and the broker (JSON Lines)"},
		{Name: FileTargetLog, Kind: "other", Description: "emulator or flasher output"},
	}
}

// WriteAll writes every format of Formats into dir (created if missing).
// Every file is rendered in memory first and then renamed into place, so a
// failure never leaves a half-written report, and nothing is written at all
// when the report is invalid.
func WriteAll(dir string, r *Report) error {
	if _, err := prepare(r); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	for _, f := range Formats() {
		var buf bytes.Buffer
		if err := f.Write(&buf, r); err != nil {
			return err
		}
		if err := WriteFileAtomic(filepath.Join(dir, f.File), buf.Bytes()); err != nil {
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
