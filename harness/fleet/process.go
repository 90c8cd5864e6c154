package fleet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/ddhil/ddhil/broker"
)

// Every TCP connection of an in-process run costs two descriptors, one per
// end; when RLIMIT_NOFILE cannot be raised past 2N (a container without
// CAP_SYS_RESOURCE), ddhil's broker runs in a child process with its own
// limit, like mosquitto does. The child is driven over stdin/stdout:
//
//	child  -> "addr 127.0.0.1:PORT"
//	parent -> "stop N"       (N agents connected and have hung up)
//	child  -> "done {json}"  (after logging N disconnects and closing)

// brokerStats is what the child reports when it is done.
type brokerStats struct {
	PeakRSS uint64 `json:"peak_rss_bytes"`
	Events  uint64 `json:"events"`
	Error   string `json:"error,omitempty"`
}

// ServeBroker is the child side: it runs ddhil's broker for profile p
// (recording to record when non-nil) and follows the protocol on in/out.
func ServeBroker(ctx context.Context, p *Profile, record io.Writer, in io.Reader, out io.Writer) error {
	b, err := broker.New(BrokerConfig(p, record))
	if err != nil {
		return err
	}
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	raiseSoftFileLimit() // one descriptor per agent; a shortfall shows as connect failures
	if err := b.Start(bctx); err != nil {
		_ = b.Close()
		return err
	}
	fmt.Fprintf(out, "addr %s\n", b.Addr("tcp"))
	sc := bufio.NewScanner(in)
	n := 0
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "stop %d", &n); err == nil {
			break
		}
	}
	var st brokerStats
	if n > 0 {
		if err := waitDisconnects(ctx, b, n); err != nil {
			st.Error = err.Error()
		}
	}
	if err := b.Close(); err != nil && st.Error == "" {
		st.Error = err.Error()
	}
	st.Events = b.Recorder().Last()
	st.PeakRSS, _ = ProcStatus(os.Getpid(), "VmHWM")
	js, _ := json.Marshal(st)
	fmt.Fprintf(out, "done %s\n", js)
	if st.Error != "" {
		return errors.New(st.Error)
	}
	return nil
}

// RunDDHILProcess runs the fleet against ddhil's broker started by cmd (a
// command whose main calls ServeBroker, e.g. "ddhil fleet --serve-broker").
// Report.BrokerPeakRSS is then the child's VmHWM.
func RunDDHILProcess(ctx context.Context, opts Options, cmd *exec.Cmd) (*Report, error) {
	reset := ResetPeakRSS()
	c, err := startChild(ctx, cmd, "broker")
	if err != nil {
		return nil, err
	}
	defer c.kill()
	addr, err := c.next("addr", 30*time.Second)
	if err != nil {
		return nil, err
	}
	opts.Addr = addr
	res, err := Run(ctx, opts)
	rep := &Report{Backend: "ddhil", Result: res, PeakRSSReset: reset}
	rep.Process = ReadMemory()
	connected := 0
	if res != nil {
		connected = res.Connected
	}
	done, derr := c.finish(fmt.Sprintf("stop %d", connected), 60*time.Second)
	if derr != nil {
		if err == nil {
			err = derr
		}
		return rep, err
	}
	var st brokerStats
	if jerr := json.Unmarshal([]byte(done), &st); jerr != nil && err == nil {
		err = fmt.Errorf("fleet: broker process: %w", jerr)
	}
	rep.BrokerPeakRSS, rep.BrokerEvents = st.PeakRSS, st.Events
	if st.Error != "" && err == nil {
		err = fmt.Errorf("fleet: broker process: %s", st.Error)
	}
	return rep, err
}

// child is a helper process driven line by line over its stdin/stdout.
type child struct {
	ctx    context.Context
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	exited chan error
}

func startChild(ctx context.Context, cmd *exec.Cmd, name string) (*child, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the fleet
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fleet: start %s process: %w", name, err)
	}
	c := &child{ctx: ctx, name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 4), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.exited <- cmd.Wait()
	}()
	return c, nil
}

// next waits for the line starting with prefix and returns the rest.
func (c *child) next(prefix string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				return "", fmt.Errorf("fleet: %s process ended before %q: %v", c.name, prefix, <-c.exited)
			}
			if rest, found := strings.CutPrefix(l, prefix); found {
				return strings.TrimPrefix(rest, " "), nil
			}
		case <-t.C:
			return "", fmt.Errorf("fleet: %s process: no %q line within %s", c.name, prefix, timeout)
		case <-c.ctx.Done():
			return "", c.ctx.Err()
		}
	}
}

// finish sends the last order, returns the "done" line and waits for the
// child to exit.
func (c *child) finish(order string, timeout time.Duration) (string, error) {
	fmt.Fprintln(c.stdin, order)
	_ = c.stdin.Close()
	done, err := c.next("done", timeout)
	if err != nil {
		return "", err
	}
	go func() {
		for range c.lines { // keep the reader going until the child exits
		}
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case werr := <-c.exited:
		c.exited <- werr // for kill
		if werr != nil {
			return done, fmt.Errorf("fleet: %s process: %w", c.name, werr)
		}
	case <-t.C:
		return done, fmt.Errorf("fleet: %s process did not exit after %q", c.name, "done")
	}
	return done, nil
}

// kill ends the child if it is still running (idempotent).
func (c *child) kill() {
	_ = c.stdin.Close()
	select {
	case err := <-c.exited:
		c.exited <- err
	default:
		_ = c.cmd.Process.Kill()
	}
}
