package renode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/ddhil/ddhil/internal/proc"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ddhil/ddhil/harness/target/renode/container"
)

// Renode's readiness lines (stdout, never the telnet stream).
var (
	robotReadyRE   = regexp.MustCompile(`\[INFO\] Robot Framework remote server is listening on port (\d+)`)
	monitorReadyRE = regexp.MustCompile(`\[INFO\] Monitor available in telnet mode on port (\d+)`)
	// a port taken between our probe and Renode's bind: retry with new ports
	portClashRE = regexp.MustCompile(`AddressAlreadyInUse|Could not start the HTTP server on port`)
)

// logSink copies Renode's log to the user's writer line by line, keeps the
// last lines for error messages and lets Start wait for a line.
type logSink struct {
	mu      sync.Mutex
	w       io.Writer
	partial []byte
	lines   []string
	waiters []waiter
}

type waiter struct {
	re *regexp.Regexp
	ch chan []string
}

const keptLines = 40

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w != nil {
		_, _ = l.w.Write(p)
	}
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(l.partial[:i]), "\r")
		l.partial = l.partial[i+1:]
		l.lines = append(l.lines, line)
		if len(l.lines) > keptLines {
			l.lines = l.lines[len(l.lines)-keptLines:]
		}
		kept := l.waiters[:0]
		for _, w := range l.waiters {
			if m := w.re.FindStringSubmatch(line); m != nil {
				w.ch <- m
				continue
			}
			kept = append(kept, w)
		}
		l.waiters = kept
	}
	return len(p), nil
}

// wait returns a channel that gets the submatches of the first line
// matching re (lines already seen count).
func (l *logSink) wait(re *regexp.Regexp) <-chan []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan []string, 1)
	for _, line := range l.lines {
		if m := re.FindStringSubmatch(line); m != nil {
			ch <- m
			return ch
		}
	}
	l.waiters = append(l.waiters, waiter{re, ch})
	return ch
}

// tail is the last log lines, for error messages.
func (l *logSink) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	if len(lines) > 12 {
		lines = lines[len(lines)-12:]
	}
	if len(lines) == 0 {
		return ""
	}
	return "\nlast Renode log lines:\n  " + strings.Join(lines, "\n  ")
}

func (l *logSink) contains(re *regexp.Regexp) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if re.MatchString(line) {
			return true
		}
	}
	return false
}

// process is a local renode in its own process group.
type process struct {
	cmd                                                *exec.Cmd
	done                                               chan struct{}
	waitErr                                            error
	robotPort, monitorPort, consolePort, transportPort int
}

// freePorts reserves n distinct ports on all interfaces (Renode binds
// 0.0.0.0) and releases them for Renode to take. `-P 0` would avoid the
// race, but Renode never announces the port it got, so the driver chooses;
// a clash is detected and retried by startLocal.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			return nil, fmt.Errorf("renode: reserve port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (t *Target) startLocal(ctx context.Context) error {
	timeout := t.cfg.StartTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(4)
		if err != nil {
			return err
		}
		p := &process{robotPort: ports[0], monitorPort: ports[1], consolePort: ports[2], transportPort: ports[3]}
		if err := t.writeScript(p.consolePort, p.transportPort); err != nil {
			return err
		}
		t.log = &logSink{w: t.cfg.Log}
		t.proc = p
		lastErr = t.launch(ctx, p, timeout)
		if lastErr == nil {
			return t.connectControl(ctx, fmt.Sprintf("127.0.0.1:%d", p.robotPort), fmt.Sprintf("127.0.0.1:%d", p.monitorPort))
		}
		_ = p.stop(false, 2*time.Second)
		if !t.log.contains(portClashRE) {
			return lastErr
		}
	}
	return lastErr
}

// launch starts the binary and waits for the ready line of the control
// channel in use, the process's exit, or the timeout.
func (t *Target) launch(ctx context.Context, p *process, timeout time.Duration) error {
	tmp := filepath.Join(t.workDir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("renode: %w", err)
	}
	args := []string{"--disable-xwt", "--plain", "--port", strconv.Itoa(p.monitorPort),
		"--robot-server-port", strconv.Itoa(p.robotPort)}
	cmd := exec.Command(t.binary, args...)
	cmd.Stdout = t.log
	cmd.Stderr = t.log
	// Renode leaves $TMPDIR/renode-<pid> behind when killed: keep it in the work dir.
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	cmd.SysProcAttr = proc.Attr()
	cmd.WaitDelay = 2 * time.Second
	re, want := robotReadyRE, p.robotPort
	if t.cfg.Telnet {
		re, want = monitorReadyRE, p.monitorPort
	}
	ready := t.log.wait(re)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("renode: start %s: %w", t.binary, err)
	}
	p.cmd = cmd
	p.done = make(chan struct{})
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m := <-ready:
		if got, _ := strconv.Atoi(m[1]); got != want {
			return fmt.Errorf("renode: ready on port %d, asked for %d%s", got, want, t.log.tail())
		}
		return nil
	case <-p.done:
		return fmt.Errorf("renode: %s exited before it was ready (%v)%s", t.binary, exitStatus(p.waitErr), t.log.tail())
	case <-timer.C:
		return fmt.Errorf("renode: no %q within %v%s", re.String(), timeout, t.log.tail())
	case <-ctx.Done():
		return fmt.Errorf("renode: waiting for Renode: %w%s", ctx.Err(), t.log.tail())
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit code 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.String()
	}
	return err.Error()
}

// stop ends the process and always reaps it. Renode that was asked to quit
// (StopRemoteServer, quit) exits by itself within about 0.3 s, so it gets
// grace first; otherwise, or if it lingers, its process group gets SIGTERM
// and then SIGKILL.
func (p *process) stop(quitting bool, grace time.Duration) error {
	if p.cmd == nil {
		return nil
	}
	signals := []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}
	if quitting {
		signals = append([]syscall.Signal{0}, signals...)
	}
	for _, sig := range signals {
		if sig != 0 {
			_ = syscall.Kill(-p.cmd.Process.Pid, sig)
		}
		timer := time.NewTimer(grace)
		select {
		case <-p.done:
			timer.Stop()
			// a launcher script's children may still hold the group
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			return nil
		case <-timer.C:
		}
	}
	<-p.done // SIGKILL cannot be ignored; WaitDelay bounds the pipe copy
	return nil
}

// startContainer runs Renode in the image with the firmware and scripts
// copied in at their host paths, so every path in them stays valid.
func (t *Target) startContainer(ctx context.Context) error {
	if err := dockerAvailable(ctx); err != nil {
		return fmt.Errorf("renode: no renode binary in PATH and %w%s", err, installHint)
	}
	if err := t.writeScript(containerConsolePort, containerTransportPort); err != nil {
		return err
	}
	files := []string{t.cfg.Firmware, t.scriptPath()}
	if t.cfg.Resc == "" && t.cfg.Platform == "" {
		files = append(files, filepath.Join(t.workDir, "stm32f4_discovery-offline.repl"))
	}
	if t.cfg.Platform != "" {
		files = append(files, t.cfg.Platform)
	}
	files = append(files, t.cfg.Files...)
	var cf []container.File
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return fmt.Errorf("renode: %w", err)
		}
		cf = append(cf, container.File{HostPath: abs, ContainerPath: abs})
	}
	timeout := t.cfg.StartTimeout
	if timeout == 0 {
		timeout = 180 * time.Second
	}
	ready := regexp.MustCompile(fmt.Sprintf(`\[INFO\] Robot Framework remote server is listening on port %d\b`, containerRobotPort))
	if t.cfg.Telnet {
		ready = regexp.MustCompile(fmt.Sprintf(`\[INFO\] Monitor available in telnet mode on port %d\b`, containerMonitorPort))
	}
	ctr, err := container.Start(ctx, container.Spec{
		Image: t.image,
		Cmd: []string{"renode", "--disable-xwt", "--plain", "--port", strconv.Itoa(containerMonitorPort),
			"--robot-server-port", strconv.Itoa(containerRobotPort)},
		Files:          cf,
		Ports:          []int{containerRobotPort, containerMonitorPort, containerConsolePort, containerTransportPort},
		Ready:          ready,
		StartupTimeout: timeout,
		Log:            t.log,
		PullHint:       "; `docker pull " + t.image + "` where a registry is reachable, or pass another image (ddhil run --renode-image; go test -ddhil.renode-image) or a local binary (--renode; -ddhil.renode)",
	})
	if err != nil {
		return fmt.Errorf("renode: %w%s", err, t.log.tail())
	}
	t.ctr = ctr
	robotAddr, err := ctr.Addr(ctx, containerRobotPort)
	if err != nil {
		return err
	}
	monitorAddr, err := ctr.Addr(ctx, containerMonitorPort)
	if err != nil {
		return err
	}
	return t.connectControl(ctx, robotAddr, monitorAddr)
}
