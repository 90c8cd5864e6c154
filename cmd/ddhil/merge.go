package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/report/matrix"
)

func init() {
	register("merge", command{
		summary: "merge many runs' report.json into one conformance matrix (HTML, Markdown, JUnit)",
		run:     runMerge,
	})
}

// Files --out writes.
const (
	fileMatrixHTML  = "matrix.html"
	fileMatrixMD    = "matrix.md"
	fileMatrixJUnit = "matrix-junit.xml"
)

const mergeHelp = `usage: ddhil merge [--html F] [--md F] [--junit F] [--out DIR] <report.json | dir>...

Merges the report.json of many runs (boards × firmware builds × targets, one
CI or board-farm job each) into one conformance matrix: checks as rows, runs
as columns, failing rows first. A directory is searched recursively for files
named report.json. Each run's column is named after its directory relative to
the directory all inputs share (in CI: the artefact name); equal names get
" #2", " #3". A check that a run's report lacks shows "—" (not run).

Outputs: --html (self-contained page; each cell links to that run's
report.html, relative to the page, when it exists), --md (a GitHub job
summary: --md - >> "$GITHUB_STEP_SUMMARY"), --junit (one testsuite per run,
one testcase per check), or --out DIR for all three as matrix.html,
matrix.md and matrix-junit.xml. "-" writes that one output to stdout.

exit status:
  0  every run passed
  1  a run failed (and none had a lab error), or an output could not be written
  2  usage error: no inputs, a missing file, a directory without report.json,
     a file that is not a ddhil report.json (schema ddhil.report/v1)
  3  a run had a lab error or did not finish (verdict error); 3 wins over 1

flags:
`

func runMerge(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("merge", stderr)
	type output struct {
		flag, file string
		path       *string
		write      func(io.Writer, *matrix.Matrix, string) error
	}
	outs := []output{
		{"html", fileMatrixHTML, fs.String("html", "", "write the HTML matrix to `file`"), matrix.WriteHTML},
		{"md", fileMatrixMD, fs.String("md", "", "write the Markdown job summary to `file`"),
			func(w io.Writer, m *matrix.Matrix, _ string) error { return matrix.WriteMarkdown(w, m) }},
		{"junit", fileMatrixJUnit, fs.String("junit", "", "write JUnit XML to `file`"),
			func(w io.Writer, m *matrix.Matrix, _ string) error { return matrix.WriteJUnit(w, m) }},
	}
	outDir := fs.String("out", "", "write "+fileMatrixHTML+", "+fileMatrixMD+" and "+fileMatrixJUnit+" into `dir` (created if missing)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), mergeHelp)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return exitUsage, err
	}
	var chosen []output
	toStdout := 0
	for _, o := range outs {
		if *o.path == "" {
			continue
		}
		if *outDir != "" {
			return exitUsage, fmt.Errorf("%w: --out writes every format; do not combine it with --%s", errUsage, o.flag)
		}
		chosen = append(chosen, o)
		if *o.path == "-" {
			toStdout++
		}
	}
	if *outDir != "" {
		for _, o := range outs {
			p := filepath.Join(*outDir, o.file)
			o.path = &p
			chosen = append(chosen, o)
		}
	}
	if len(chosen) == 0 {
		return exitUsage, fmt.Errorf("%w: give --out DIR or at least one of --html, --md, --junit", errUsage)
	}
	if toStdout > 1 {
		return exitUsage, fmt.Errorf("%w: only one output can go to stdout (-)", errUsage)
	}
	if fs.NArg() == 0 {
		return exitUsage, fmt.Errorf("%w: no inputs: give report.json files or directories holding them", errUsage)
	}

	inputs, err := readRuns(fs.Args(), stderr)
	if err != nil {
		return exitUsage, err
	}
	m, err := matrix.Build(inputs)
	if err != nil {
		return exitUsage, err
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			return exitFail, fmt.Errorf("--out: %w", err)
		}
	}
	// Render everything first: a matrix that renders at all renders whole.
	rendered := make([][]byte, len(chosen))
	for i, o := range chosen {
		dir := "" // stdout: links relative to the current directory
		if *o.path != "-" {
			dir = filepath.Dir(*o.path)
		}
		var buf bytes.Buffer
		if err := o.write(&buf, m, dir); err != nil {
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
	pass, fail, errored := m.Tally()
	runs := "runs"
	if len(m.Runs) == 1 {
		runs = "run"
	}
	fmt.Fprintf(stderr, "ddhil merge: %d %s, %d checks: %d pass, %d fail, %d error: %s\n",
		len(m.Runs), runs, len(m.Rows), pass, fail, errored, m.Outcome())
	return m.ExitCode(), nil
}

// readRuns reads every input: files as given, directories searched for
// report.json (saying on stderr how many each held). It reads all of them
// and reports every bad one at once; the same file reached twice is read
// once.
func readRuns(args []string, stderr io.Writer) ([]matrix.Input, error) {
	var paths []string
	var errs []error
	seen := map[string]bool{}
	add := func(p string) {
		key := p
		if a, err := filepath.Abs(p); err == nil {
			key = a
		}
		if !seen[key] {
			seen[key] = true
			paths = append(paths, p)
		}
	}
	for _, arg := range args {
		st, err := os.Stat(arg)
		switch {
		case errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("%s does not exist", arg))
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		case !st.IsDir():
			add(arg)
			continue
		}
		n := 0
		err = filepath.WalkDir(arg, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && d.Name() == report.FileJSON {
				n++
				add(p)
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", arg, err))
			continue
		}
		if n == 0 {
			errs = append(errs, fmt.Errorf("%s: no %s found in this directory or below", arg, report.FileJSON))
			continue
		}
		fmt.Fprintf(stderr, "ddhil merge: %s: found %d %s\n", arg, n, report.FileJSON)
	}
	var inputs []matrix.Input
	for _, p := range paths {
		rep, err := readRun(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		in := matrix.Input{Path: p, Report: rep}
		// Only a report.json's own report.html: next to foo.json it may be
		// another run's.
		html := filepath.Join(filepath.Dir(p), report.FileHTML)
		if st, err := os.Stat(html); err == nil && st.Mode().IsRegular() && filepath.Base(p) == report.FileJSON {
			in.HTML = html
		}
		inputs = append(inputs, in)
	}
	switch len(errs) {
	case 0:
		return inputs, nil
	case 1:
		return nil, fmt.Errorf("%w: %w", errUsage, errs[0])
	}
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = "  " + e.Error()
	}
	return nil, fmt.Errorf("%w: %d bad inputs:\n%s", errUsage, len(errs), strings.Join(lines, "\n"))
}

func readRun(path string) (*report.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return report.ReadJSON(f)
}
