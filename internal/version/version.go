// Package version says which ddhil this is, from the build information Go
// embeds: the module version (set when built from a tagged module, e.g. go
// install ...@v1.2.0) and the VCS revision (set when built in a git
// checkout), so a report can be traced to the code that judged it.
package version

import (
	"runtime/debug"
	"strings"
)

// revision is set by the Makefile (-ldflags -X) from `git describe` for
// builds where Go stamps no VCS information (GOFLAGS=-buildvcs=false).
var revision string

// Info is what the binary knows about its own build.
type Info struct {
	Module   string `json:"module"`             // module version, "(devel)" in a checkout
	Revision string `json:"revision,omitempty"` // VCS revision
	Time     string `json:"time,omitempty"`     // commit time
	Modified bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Go       string `json:"go"`
}

// Read returns the build information of the running binary.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Module: "unknown", Revision: revision}
	}
	in := fromBuildInfo(bi)
	if in.Revision == "" {
		in.Revision = revision
	}
	return in
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Module: bi.Main.Version, Go: bi.GoVersion}
	if in.Module == "" {
		in.Module = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is one line: "v1.2.0", or "(devel) rev 1a2b3c4d5e6f+dirty 2026-12-04T16:00:00Z".
func (in Info) String() string {
	parts := []string{in.Module}
	if in.Revision != "" {
		rev := in.Revision
		if len(rev) == 40 { // a full commit hash
			rev = rev[:12]
		}
		if in.Modified {
			rev += "+dirty"
		}
		parts = append(parts, "rev "+rev)
	}
	if in.Time != "" {
		parts = append(parts, in.Time)
	}
	return strings.Join(parts, " ")
}
