package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ddhil/ddhil/harness/report"
)

func init() {
	register("report", command{
		summary: "re-render a run's report.json as HTML, Markdown, JUnit XML or JSON",
		run:     runReport,
	})
}

const reportHelp = `usage: ddhil report --in <run/report.json | run-dir> [--html F] [--md F] [--junit F] [--json F]

Reads the report.json a run wrote (schema ddhil.report/v1) and writes it again
in the formats asked for; at least one output is required, and "-" writes that
one output to stdout (e.g. --md - >> "$GITHUB_STEP_SUMMARY"). Outputs are
written whole or not at all. Artefact links in HTML and Markdown are relative
to the run directory, so write them there to keep the links working.

The verdict is not re-judged into the exit status: use the run's own exit code
(or jq .verdict) for that.

exit status:
  0  every output written
  1  the input is unreadable, not JSON, of another schema version, or
     inconsistent (e.g. a verdict that disagrees with its checks); or an
     output could not be written
  2  usage error

flags:
`

func runReport(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("report", stderr)
	in := fs.String("in", "", "the run's report.json, or the run directory holding it (required)")
	type output struct {
		flag  string
		path  *string
		write func(io.Writer, *report.Report) error
	}
	outs := []output{
		{"html", fs.String("html", "", "write the self-contained HTML report to `file`"), report.WriteHTML},
		{"md", fs.String("md", "", "write the Markdown summary to `file`"), report.WriteMarkdown},
		{"junit", fs.String("junit", "", "write JUnit XML to `file`"), report.WriteJUnit},
		{"json", fs.String("json", "", "write report.json (normalised) to `file`"), report.WriteJSON},
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), reportHelp)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *in == "" {
		return exitUsage, fmt.Errorf("%w: --in is required", errUsage)
	}
	var chosen []output
	toStdout := 0
	for _, o := range outs {
		if *o.path == "" {
			continue
		}
		chosen = append(chosen, o)
		if *o.path == "-" {
			toStdout++
		}
	}
	if len(chosen) == 0 {
		return exitUsage, fmt.Errorf("%w: give at least one of --html, --md, --junit, --json", errUsage)
	}
	if toStdout > 1 {
		return exitUsage, fmt.Errorf("%w: only one output can go to stdout (-)", errUsage)
	}

	rep, err := readReport(*in)
	if err != nil {
		return exitFail, err
	}
	// Render everything first: a report that renders at all renders whole.
	rendered := make([][]byte, len(chosen))
	for i, o := range chosen {
		var buf bytes.Buffer
		if err := o.write(&buf, rep); err != nil {
			return exitFail, fmt.Errorf("--%s: %w", o.flag, err)
		}
		rendered[i] = buf.Bytes()
	}
	for i, o := range chosen {
		if *o.path == "-" {
			if _, err := stdout.Write(rendered[i]); err != nil {
				return exitFail, fmt.Errorf("--%s: write stdout: %w", o.flag, err)
			}
			continue
		}
		if err := report.WriteFileAtomic(*o.path, rendered[i]); err != nil {
			return exitFail, fmt.Errorf("--%s: %w", o.flag, err)
		}
	}
	return exitOK, nil
}

// readReport reads path, or path/report.json when path is a directory.
func readReport(path string) (*report.Report, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, report.FileJSON)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("--in: %s does not exist", path)
		}
		return nil, fmt.Errorf("--in: %w", err)
	}
	defer f.Close()
	rep, err := report.ReadJSON(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rep, nil
}
