package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/ddhil/ddhil/internal/version"
)

func init() {
	register("version", command{summary: "print the ddhil version (module version, VCS revision)", run: runVersion})
}

func runVersion(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("version", stderr)
	asJSON := fs.Bool("json", false, "print the build information as JSON")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: ddhil version [--json]\n\nPrints the module version and VCS revision ddhil was built from (also in every report as run.tool_version).\n\nexit status: 0 printed, 2 usage error\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return exitUsage, err
	}
	in := version.Read()
	if *asJSON {
		b, _ := json.Marshal(in)
		fmt.Fprintln(stdout, string(b))
		return exitOK, nil
	}
	fmt.Fprintf(stdout, "ddhil %s (%s)\n", in, in.Go)
	return exitOK, nil
}
