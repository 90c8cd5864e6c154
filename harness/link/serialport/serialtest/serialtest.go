// Package serialtest starts real socat pty pairs that stand in for a
// board's serial lines in tests: what one end writes, the other reads, with
// the same termios, EIO-on-hangup and re-appearing-path behaviour as a USB
// CDC port that goes away and comes back.
package serialtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNoSocat means socat is not installed; tests skip on it.
var ErrNoSocat = errors.New("serialtest: socat not installed (apt-get install socat)")

// Pair is a running socat joining two ptys reachable at the link paths A
// and B (symlinks to /dev/pts/N that socat creates and removes).
type Pair struct {
	A, B string

	mu   sync.Mutex
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
}

// Start runs socat with links dir/<prefix>a and dir/<prefix>b and waits
// until it is transferring data.
func Start(ctx context.Context, dir, prefix string) (*Pair, error) {
	p := &Pair{A: filepath.Join(dir, prefix+"a"), B: filepath.Join(dir, prefix+"b")}
	if err := p.start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pair) start(ctx context.Context) error {
	bin, err := exec.LookPath("socat")
	if err != nil {
		return ErrNoSocat
	}
	log := &syncBuffer{}
	cmd := exec.Command(bin, "-d", "-d",
		"pty,raw,echo=0,link="+p.A, "pty,raw,echo=0,link="+p.B)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("serialtest: start socat: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.cmd, p.log, p.done = cmd, log, done
	p.mu.Unlock()
	for {
		changed := log.changed() // taken before the check: no write is missed
		if strings.Contains(log.String(), "starting data transfer loop") {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("serialtest: socat exited early:\n%s", log.String())
		case <-ctx.Done():
			p.Stop()
			return fmt.Errorf("serialtest: socat not ready: %w\n%s", ctx.Err(), log.String())
		case <-changed:
		}
	}
}

// Stop ends socat (SIGTERM, so it removes its links) and reaps it; the ptys
// hang up, which is what a vanishing USB port looks like to a reader.
func (p *Pair) Stop() { p.signal(syscall.SIGTERM) }

// Kill ends socat with SIGKILL: the links stay behind, dangling.
func (p *Pair) Kill() { p.signal(syscall.SIGKILL) }

func (p *Pair) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Restart starts a new socat with the same link paths (new /dev/pts numbers).
func (p *Pair) Restart(ctx context.Context) error {
	p.Stop()
	return p.start(ctx)
}

// Log returns socat's diagnostics.
func (p *Pair) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// syncBuffer is a bytes.Buffer safe for one writer and many readers, with a
// channel that ticks on every write.
type syncBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	tick chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tick != nil {
		close(s.tick)
		s.tick = nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// changed returns a channel closed by the next write.
func (s *syncBuffer) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tick == nil {
		s.tick = make(chan struct{})
	}
	return s.tick
}
