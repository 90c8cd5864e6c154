package openocd

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/ddhil/ddhil/harness"
)

// ServerConfig starts a long-running OpenOCD for one board.
type ServerConfig struct {
	Binary        string
	ConfigFiles   []string
	ProbeSerial   string
	AllowNoSerial bool
	// Commands run (as -c) after the configuration files and before init.
	Commands []string
	// StartTimeout bounds start-up until the Tcl server listens; 30 s when zero.
	StartTimeout time.Duration
	Log          io.Writer // optional copy of OpenOCD's output
}

// Args returns the command line: the probe arguments, the Tcl server on a
// port chosen by the kernel ("tcl_port 0"; OpenOCD 0.12 logs the real one),
// telnet and gdb servers disabled, then init.
func (c ServerConfig) Args() ([]string, error) {
	args, err := probeArgs(c.ConfigFiles, c.ProbeSerial, c.AllowNoSerial)
	if err != nil {
		return nil, err
	}
	for _, cmd := range c.Commands {
		args = append(args, "-c", cmd)
	}
	return append(args,
		"-c", "bindto 127.0.0.1", "-c", "tcl_port 0",
		"-c", "telnet_port disabled", "-c", "gdb_port disabled", "-c", "init"), nil
}

// Server is a running OpenOCD with a connected Tcl RPC client.
type Server struct {
	*RPC
	Addr string // host:port of the Tcl RPC server
	proc *process
}

// tclListening is OpenOCD's log line once its Tcl server accepts connections.
var tclListening = regexp.MustCompile(`Listening on port (\d+) for tcl connections`)

// StartServer starts OpenOCD, waits for its Tcl server, connects and turns
// notifications on. The process runs in its own group; Close reaps it.
func StartServer(ctx context.Context, c ServerConfig) (*Server, error) {
	args, err := c.Args()
	if err != nil {
		return nil, harness.LabError(err)
	}
	timeout := c.StartTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	ports := make(chan int, 1)
	p, err := startProcess(binary(c.Binary), args, c.Log, func(line string) {
		if m := tclListening.FindStringSubmatch(line); m != nil {
			if port, err := strconv.Atoi(m[1]); err == nil {
				select {
				case ports <- port:
				default:
				}
			}
		}
	})
	if err != nil {
		return nil, harness.LabError(err)
	}
	var port int
	select {
	case port = <-ports:
	case <-p.done:
		return nil, harness.LabError(fmt.Errorf("openocd: exited before its tcl server listened: %s%s\n%s",
			p.exitSummary(), hint(p.log.String()), p.log.lastLines(10)))
	case <-ctx.Done():
		p.stop()
		return nil, harness.LabError(fmt.Errorf("openocd: tcl server not listening after %s: %w\n%s",
			timeout, ctx.Err(), p.log.lastLines(10)))
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	rpc, err := DialRPC(ctx, addr)
	if err != nil {
		p.stop()
		return nil, err
	}
	s := &Server{RPC: rpc, Addr: addr, proc: p}
	if err := rpc.EnableNotifications(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Exited is closed once the OpenOCD process has gone.
func (s *Server) Exited() <-chan struct{} { return s.proc.done }

// ExitErr is how OpenOCD ended (nil for a clean exit); valid after Exited.
func (s *Server) ExitErr() error { return s.proc.err }

// Log returns the tail of OpenOCD's output.
func (s *Server) Log() string { return s.proc.log.String() }

// Close asks OpenOCD to shut down (briefly), then stops its process group
// and reaps it. Safe to call more than once.
func (s *Server) Close() error {
	if !s.proc.exited() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := s.Shutdown(ctx)
		cancel()
		if err == nil {
			select {
			case <-s.proc.done:
			case <-time.After(killGrace):
			}
		}
	}
	_ = s.RPC.Close()
	s.proc.stop()
	return nil
}
