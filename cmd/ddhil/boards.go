package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/hwmap"
	"github.com/ddhil/ddhil/harness/link/serialport"
)

func init() {
	register("boards", command{summary: "list attached ST-LINK boards; write or check a hardware map", run: runBoards})
}

// discoverBoards finds ST-LINK virtual COM ports; a seam for tests, since a
// machine without USB boards can only show the empty case.
var discoverBoards = serialport.Discover

const boardsHelp = `usage: ddhil boards [--hwmap FILE]

Without --hwmap: lists the ST-LINK virtual COM ports attached now (USB VID
0483) and prints a hardware-map skeleton for them on stdout (all of it is
YAML: 'ddhil boards > bench.yaml', then edit platform and transport).

With --hwmap: validates FILE and shows, for each mapped board, whether its
probe and serial ports are attached.

exit status: 0 ok (with --hwmap: every mapped board ready), 1 invalid
hardware map, 2 usage error, 3 a mapped board is missing or discovery failed
`

func runBoards(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("boards", stderr)
	mapFile := fs.String("hwmap", "", "hardware map `file` to check against the attached boards")
	fs.Usage = func() { fmt.Fprint(fs.Output(), boardsHelp+"\nflags:\n"); fs.PrintDefaults() }
	if err := parseFlags(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() > 0 {
		return exitUsage, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	ports, err := discoverBoards()
	if err != nil {
		return exitLab, harness.LabError(fmt.Errorf("boards: %w", err))
	}

	if *mapFile == "" {
		fmt.Fprintf(stdout, "# ST-LINK virtual COM ports attached: %d\n", len(ports))
		probes := make([]hwmap.Probe, 0, len(ports))
		for _, p := range ports {
			fmt.Fprintf(stdout, "#   %s  serial %s  %q (%s:%s)\n", p.Stable(), p.SerialNumber, p.Product, p.VID, p.PID)
			probes = append(probes, hwmap.Probe{Serial: p.SerialNumber, Port: p.Stable(), Product: p.Product, PID: p.PID})
		}
		_, err := stdout.Write(hwmap.Skeleton(probes))
		return exitOK, err
	}

	m, err := hwmap.Load(*mapFile)
	if err != nil {
		return exitFail, err
	}
	serials := make([]string, 0, len(ports))
	for _, p := range ports {
		serials = append(serials, p.SerialNumber)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BOARD\tPLATFORM\tPROBE\tCONSOLE\tTRANSPORT\tREADY")
	ready := 0
	for _, b := range m.Boards {
		p := b.Check(serials)
		probe := "absent"
		if p.Probe {
			probe = "attached"
		}
		yes := "no"
		if p.Ready() {
			yes = "yes"
			ready++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\n", b.ID, b.Platform, b.ProbeSerial, probe, p.Console, p.Transport, yes)
	}
	if err := tw.Flush(); err != nil {
		return exitFail, err
	}
	fmt.Fprintf(stdout, "%d of %d mapped boards ready; %d ST-LINK ports attached\n", ready, len(m.Boards), len(ports))
	mapped := map[string]bool{}
	for _, b := range m.Boards {
		mapped[b.ProbeSerial] = true
	}
	for _, p := range ports {
		if !mapped[p.SerialNumber] {
			fmt.Fprintf(stdout, "attached but not in the map: %s serial %s %q\n", p.Stable(), p.SerialNumber, p.Product)
		}
	}
	if ready < len(m.Boards) {
		return exitLab, nil
	}
	return exitOK, nil
}
