// Command ddhil is the CLI of the Device Defender hardware-in-the-loop
// harness. Each subcommand lives in its own file and registers itself in
// commands; this file only dispatches and maps errors to exit codes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/ddhil/ddhil/harness"
)

// Exit codes shared by every subcommand.
const (
	exitOK    = 0
	exitFail  = 1 // the firmware (or a validated file) does not conform
	exitUsage = 2
	exitLab   = 3 // the lab failed: emulator missing, flash failed, port vanished
)

// command is one subcommand. run returns the exit code; an error is printed
// and mapped with exitCode.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) (int, error)
}

var commands = map[string]command{}

func register(name string, c command) { commands[name] = c }

// errUsage marks bad invocations (exit 2).
var errUsage = errors.New("usage error")

func main() { os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr)) }

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ddhil: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	code, err := c.run(args[1:], stdout, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "ddhil %s: %v\n", args[0], err)
		return exitCode(err)
	}
	return code
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	switch {
	case errors.Is(err, errUsage), errors.Is(err, harness.ErrUsage):
		return exitUsage
	case errors.Is(err, harness.ErrLab):
		return exitLab
	default:
		return exitFail
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "ddhil: AWS IoT Device Defender conformance harness")
	fmt.Fprintln(w, "\nusage: ddhil <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nexit status (every command): 0 ok, 1 the firmware or file does not conform,\n2 usage mistake, 3 lab error; 'ddhil <command> -h' gives a command's flags and\nits exit codes in detail")
}

// newFlagSet returns a FlagSet whose parse errors are usage errors.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ddhil "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and wraps failures as usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}
