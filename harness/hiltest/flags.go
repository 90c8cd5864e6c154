package hiltest

import (
	"flag"
	"os"

	"github.com/ddhil/ddhil/harness/target"
	_ "github.com/ddhil/ddhil/harness/target/drivers" // every -ddhil.target
)

// Selection is the target the flags and DDHIL_* variables choose.
type Selection struct {
	Target   string
	Settings target.Settings
}

var (
	targetFlag = flag.String("ddhil.target", "", "ddhil target: one of "+joinNames()+" (default $DDHIL_TARGET, else qemu)")
	flagValues = target.Settings{} // what the -ddhil.<option> flags set
)

func init() {
	for _, o := range target.AllOptions() {
		flag.Var(target.Value{Opt: o, Settings: flagValues}, "ddhil."+o.Flag, o.Usage+" (or $"+o.Env()+")")
	}
}

// Selected reads the flags (which win) and the DDHIL_* variables.
func Selected() Selection {
	sel := Selection{Target: *targetFlag, Settings: target.Settings{}}
	if sel.Target == "" {
		sel.Target = os.Getenv("DDHIL_TARGET")
	}
	if sel.Target == "" {
		sel.Target = "qemu"
	}
	d, ok := target.Lookup(sel.Target)
	if !ok {
		return sel // Start reports the unknown name
	}
	for _, o := range d.Options {
		if v := flagValues[o.Flag]; len(v) > 0 {
			sel.Settings[o.Flag] = v
		} else if e := os.Getenv(o.Env()); e != "" {
			sel.Settings[o.Flag] = []string{e}
		}
	}
	return sel
}

// TargetName is the selected target's name.
func TargetName() string { return Selected().Target }

func joinNames() string {
	s := ""
	for i, n := range target.Names() {
		if i > 0 {
			s += "|"
		}
		s += n
	}
	return s
}

// Required reports whether DDHIL_REQUIRE_TARGET asks for a missing target
// to fail the test instead of skipping it.
func Required() bool {
	v := os.Getenv("DDHIL_REQUIRE_TARGET")
	return v != "" && v != "0" && v != "false"
}
