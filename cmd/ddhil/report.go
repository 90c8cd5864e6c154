package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ddhil/ddhil/harness/report"
)

func init() {
	register("report", command{
		summary: "re-render a run's report.json as HTML, Markdown, JUnit XML or JSON",
		run:     runReport,
	})
}

// reportHelp is the usage text; the flag list is generated from
// report.Formats, so a new format needs no edit here.
const reportHelp = `usage: ddhil report --in <run/report.json | run-dir> %s

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
	var outs []output
	var usage, names []string
	for _, f := range report.Formats() {
		outs = append(outs, output{f.Name, fs.String(f.Name, "", "write "+f.What+" to `file` (run directory name: "+f.File+")"), f.Write})
		usage = append(usage, "[--"+f.Name+" F]")
		names = append(names, "--"+f.Name)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), reportHelp, strings.Join(usage, " "))
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
		return exitUsage, fmt.Errorf("%w: give at least one of %s", errUsage, strings.Join(names, ", "))
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
