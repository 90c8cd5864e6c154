package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ddhil/ddhil/broker/defender"
)

func init() {
	register("validate", command{summary: "judge report files (JSON/CBOR) as Device Defender would", run: runValidate})
}

// runValidate prints one verdict line per file, lint findings indented
// below it, and exits 0 only when every file is accepted.
func runValidate(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("validate", stderr)
	format := fs.String("format", "", "payload format, json or cbor (default: from each file's extension .json/.cbor)")
	lenient := fs.Bool("lenient", false, "accept unknown keys with an unknown-key lint finding instead of rejecting")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ddhil validate [--format json|cbor] [--lenient] FILE...")
		fs.PrintDefaults()
		fmt.Fprintln(stderr, "exit status: 0 every file accepted, 1 any rejected, 2 usage error (a missing, unreadable or directory FILE)")
	}
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if len(files) == 0 {
		return exitUsage, fmt.Errorf("%w: no files to validate", errUsage)
	}
	// A file that cannot be read is the caller's mistake, not a report
	// AWS would reject: refuse the run before judging anything.
	formats := make([]defender.Format, len(files))
	for i, f := range files {
		if err := checkReadable(f); err != nil {
			return exitUsage, err
		}
		if formats[i], err = fileFormat(*format, f); err != nil {
			return exitUsage, err
		}
	}
	code := exitOK
	for i, file := range files {
		payload, size, err := readPayload(file)
		if err != nil {
			return exitUsage, err
		}
		var res defender.Result
		if size > defender.MaxPayload || size < 0 {
			// Only the first MaxPayload+1 bytes were read: name the real size.
			res.Problem = defender.OversizeProblem(size)
		} else {
			res = defender.Validate(formats[i], payload, defender.Options{Lenient: *lenient})
		}
		writeVerdict(stdout, file, res)
		if !res.Accepted() {
			code = exitFail
		}
	}
	return code, nil
}

// parseInterleaved lets flags follow file names (ddhil validate a.json
// --lenient); everything after "--" is a file.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var files []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(files, rest...), nil
		}
		if len(rest) == 0 {
			return files, nil
		}
		files = append(files, rest[0])
		args = rest[1:]
	}
}

// fileFormat is the --format flag, or else the file's extension.
func fileFormat(flagValue, file string) (defender.Format, error) {
	if flagValue != "" {
		switch f := defender.Format(strings.ToLower(flagValue)); f {
		case defender.JSON, defender.CBOR:
			return f, nil
		}
		return "", fmt.Errorf("%w: --format %q: want json or cbor", errUsage, flagValue)
	}
	switch strings.ToLower(filepath.Ext(file)) {
	case ".json":
		return defender.JSON, nil
	case ".cbor":
		return defender.CBOR, nil
	}
	return "", fmt.Errorf("%w: %s: cannot tell the format from the extension; use --format json|cbor", errUsage, file)
}

func writeVerdict(w io.Writer, file string, res defender.Result) {
	if p := res.Problem; p != nil {
		fmt.Fprintf(w, "%s: rejected %s at %s: %s\n", file, p.Code, pointerOrRoot(p.Path), p.Reason)
	} else {
		fmt.Fprintf(w, "%s: accepted (report_id=%d)", file, res.ReportID)
		if len(res.Lint) > 0 {
			refs := make([]string, len(res.Lint))
			for i, l := range res.Lint {
				refs[i] = l.Rule + "@" + pointerOrRoot(l.Path)
			}
			fmt.Fprintf(w, " [lint: %s]", strings.Join(refs, " "))
		}
		fmt.Fprintln(w)
	}
	for _, l := range res.Lint {
		fmt.Fprintf(w, "  lint %s at %s: %s\n", l.Rule, pointerOrRoot(l.Path), l.Message)
	}
}

// pointerOrRoot shows the root pointer "" as "/", as the check reports do.
func pointerOrRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// checkReadable refuses a path that is missing, unreadable or a directory,
// in one line naming it.
func checkReadable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %s: %s", errUsage, path, openReason(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%w: %s: %s", errUsage, path, openReason(err))
	}
	if st.IsDir() {
		return fmt.Errorf("%w: %s is a directory; name the report files in it (e.g. %s)", errUsage, path,
			filepath.Join(path, "*.json"))
	}
	return nil
}

// openReason is err without the "open PATH:" prefix the message already
// carries.
func openReason(err error) string {
	var pe *fs.PathError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.As(err, &pe):
		return pe.Err.Error()
	}
	return err.Error()
}

// readPayload reads at most MaxPayload+1 bytes: anything larger is over
// AWS's cap anyway, and /dev/zero must not eat the machine's memory. size
// is the file's real size; -1 when it is over the cap and unknown (a pipe
// or a device).
func readPayload(path string) (payload []byte, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: %s", errUsage, path, openReason(err))
	}
	defer f.Close()
	payload, err = io.ReadAll(io.LimitReader(f, defender.MaxPayload+1))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s: %s", errUsage, path, openReason(err))
	}
	size = int64(len(payload))
	if size > defender.MaxPayload {
		size = -1
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > defender.MaxPayload {
			size = st.Size()
		}
	}
	return payload, size, nil
}
