package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ddhil/ddhil/broker/certs"
	"github.com/ddhil/ddhil/harness"
)

func init() {
	register("certs", command{summary: "make a lab CA, the broker's certificate and device certificates", run: runCerts})
}

const certsHelp = `usage: ddhil certs init   --dir D [--host NAME,...]
       ddhil certs device --dir D --thing NAME [--csr FILE]

init writes ca.pem, ca-key.pem, server.pem and server-key.pem (ECDSA P-256)
into D; the server certificate names every --host (default localhost,127.0.0.1)
as a DNS name, IP hosts also as IP addresses, and the first as its CN. Use
the address devices dial (e.g. the host's LAN IP) for real boards.

device issues a client certificate with CN = the thing name into
D/<thing>.pem, with a new key in D/<thing>-key.pem, or for the public key of
a device's CSR (--csr; its CN must be empty or the thing name).

exit status: 0 written, 2 usage error or bad thing name / CSR, 3 I/O failure
`

func runCerts(args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, certsHelp)
		if len(args) == 0 {
			return exitUsage, fmt.Errorf("%w: want 'init' or 'device'", errUsage)
		}
		return exitOK, nil
	}
	switch args[0] {
	case "init":
		return certsInit(args[1:], stdout, stderr)
	case "device":
		return certsDevice(args[1:], stdout, stderr)
	default:
		return exitUsage, fmt.Errorf("%w: unknown certs command %q (want init or device)", errUsage, args[0])
	}
}

func certsFlags(name string, stderr io.Writer) *flagSetWithDir {
	fs := newFlagSet("certs "+name, stderr)
	f := &flagSetWithDir{fs: fs}
	fs.StringVar(&f.dir, "dir", "", "certificate `directory` (required)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), certsHelp+"\nflags:\n"); fs.PrintDefaults() }
	return f
}

func certsInit(args []string, stdout, stderr io.Writer) (int, error) {
	f := certsFlags("init", stderr)
	hosts := f.fs.String("host", strings.Join(certs.DefaultHosts, ","), "comma-separated server `names` (DNS names or IPs)")
	if code, err := f.parse(args); err != nil {
		return code, err
	}
	var list []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			list = append(list, h)
		}
	}
	if len(list) == 0 {
		return exitUsage, fmt.Errorf("%w: --host names no host", errUsage)
	}
	if err := certs.InitCA(f.dir, list); err != nil {
		return certsErr(err)
	}
	for _, name := range []string{certs.CAFile, certs.CAKeyFile, certs.ServerFile, certs.ServerKeyFile} {
		fmt.Fprintln(stdout, filepath.Join(f.dir, name))
	}
	return exitOK, nil
}

func certsDevice(args []string, stdout, stderr io.Writer) (int, error) {
	f := certsFlags("device", stderr)
	thing := f.fs.String("thing", "", "thing name, the certificate's CN (required)")
	csrPath := f.fs.String("csr", "", "sign this PEM CSR `file` instead of making a key")
	if code, err := f.parse(args); err != nil {
		return code, err
	}
	if *thing == "" {
		return exitUsage, fmt.Errorf("%w: --thing is required", errUsage)
	}
	var csr []byte
	if *csrPath != "" {
		b, err := os.ReadFile(*csrPath)
		if err != nil {
			return exitUsage, fmt.Errorf("%w: read CSR: %v", errUsage, err)
		}
		csr = b
	}
	certPath, keyPath, err := certs.IssueDevice(f.dir, *thing, csr)
	if err != nil {
		return certsErr(err)
	}
	fmt.Fprintln(stdout, certPath)
	if keyPath != "" {
		fmt.Fprintln(stdout, keyPath)
	}
	return exitOK, nil
}

type flagSetWithDir struct {
	fs  *flag.FlagSet
	dir string
}

func (f *flagSetWithDir) parse(args []string) (int, error) {
	if err := parseFlags(f.fs, args); err != nil {
		return exitUsage, err
	}
	if f.fs.NArg() > 0 {
		return exitUsage, fmt.Errorf("%w: unexpected argument %q", errUsage, f.fs.Arg(0))
	}
	if f.dir == "" {
		return exitUsage, fmt.Errorf("%w: --dir is required", errUsage)
	}
	return exitOK, nil
}

// certsErr maps bad input to a usage error and everything else to a lab error.
func certsErr(err error) (int, error) {
	if errors.Is(err, certs.ErrInvalid) {
		return exitUsage, fmt.Errorf("%w: %v", errUsage, err)
	}
	return exitLab, harness.LabError(err)
}
