package openocd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/ddhil/ddhil/internal/proc"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// killGrace is how long an OpenOCD process gets after SIGTERM before its
// whole process group is killed.
const killGrace = 2 * time.Second

// process is one OpenOCD run in its own process group. Its output is kept
// (the tail, see logTail) so that failures can quote it.
type process struct {
	cmd  *exec.Cmd
	log  *logTail
	done chan struct{} // closed once the process has been reaped
	err  error         // Wait's result, valid after done
}

// startProcess starts bin with args in a new process group. Every line of its
// output goes to the kept log, to tee (when non-nil) and to onLine.
func startProcess(bin string, args []string, tee io.Writer, onLine func(string)) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = proc.Attr()
	log := &logTail{limit: 64 << 10, tee: tee, onLine: onLine}
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("openocd: start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, log: log, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.flush()
		close(p.done)
	}()
	return p, nil
}

// wait blocks until the process exits or ctx ends; on ctx's end the process
// group is stopped and reaped before wait returns ctx's error.
func (p *process) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		p.stop()
		return ctx.Err()
	}
}

// exited reports whether the process has been reaped.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after killGrace, and
// returns once the process has been reaped. Safe to call more than once.
func (p *process) stop() {
	if p.exited() {
		return
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(killGrace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived the leader (OpenOCD starts none, but be sure).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// exitSummary describes how the process ended, for error messages.
func (p *process) exitSummary() string {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ProcessState.String()
	}
	if p.err != nil {
		return p.err.Error()
	}
	return "exit status 0"
}

// logTail keeps the last limit bytes written to it and splits them into
// lines for onLine. It is safe for concurrent writes (stdout and stderr).
type logTail struct {
	mu      sync.Mutex
	limit   int
	buf     []byte
	partial []byte
	tee     io.Writer
	onLine  func(string)
}

func (l *logTail) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tee != nil {
		_, _ = l.tee.Write(p)
	}
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - l.limit; over > 0 {
		l.buf = append(l.buf[:0], l.buf[over:]...)
	}
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(bytes.TrimRight(l.partial[:i], "\r"))
		l.partial = l.partial[i+1:]
		if l.onLine != nil {
			l.onLine(line)
		}
	}
	return len(p), nil
}

// flush hands a last unterminated line to onLine.
func (l *logTail) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 && l.onLine != nil {
		l.onLine(string(l.partial))
	}
	l.partial = nil
}

// String returns the kept output.
func (l *logTail) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}

// lastLines returns at most n trailing non-empty lines of the kept output,
// which is where OpenOCD states why it failed.
func (l *logTail) lastLines(n int) string {
	lines := bytes.Split(bytes.TrimSpace([]byte(l.String())), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
