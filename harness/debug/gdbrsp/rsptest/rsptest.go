// Package rsptest is test support shared by the gdbrsp, serialport and board
// tests: it builds a tiny STM32F4 banner image with Debian's
// arm-none-eabi-gcc and starts a real qemu-system-arm (netduinoplus2) with
// its gdbstub, console UART and HMP monitor connected to the caller. QEMU
// connects out to listeners bound on 127.0.0.1:0, so no port is ever guessed.
package rsptest

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"github.com/ddhil/ddhil/internal/syncbuf"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed testdata/banner.c testdata/banner.ld
var src embed.FS

// ErrNoToolchain and ErrNoQEMU say which Debian package is missing; tests
// skip on them.
var (
	ErrNoToolchain = errors.New("rsptest: arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
	ErrNoQEMU      = errors.New("rsptest: qemu-system-arm not installed (apt-get install qemu-system-arm)")
)

// Image is a built banner image.
type Image struct {
	ELF    string // linked image; .data has LMA in flash, VMA 0x20000000
	Bin    string // raw flash contents from 0x08000000
	Banner string // the line it prints first (without CR LF)
}

// Marker is the word the image copies from flash to 0x20000000 at boot.
const Marker = 0x600DF00D

// BuildBanner compiles banner.c into dir; the image prints banner first.
func BuildBanner(ctx context.Context, dir, banner string) (Image, error) {
	if strings.ContainsAny(banner, "\"\\\r\n") {
		return Image{}, fmt.Errorf("rsptest: banner %q must not contain quotes, backslashes or line ends", banner)
	}
	gcc, err := exec.LookPath("arm-none-eabi-gcc")
	if err != nil {
		return Image{}, ErrNoToolchain
	}
	for _, name := range []string{"banner.c", "banner.ld"} {
		b, _ := src.ReadFile("testdata/" + name)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return Image{}, err
		}
	}
	img := Image{ELF: filepath.Join(dir, "banner.elf"), Bin: filepath.Join(dir, "banner.bin"), Banner: banner}
	cmds := [][]string{
		{gcc, "-mcpu=cortex-m4", "-mthumb", "-Os", "-nostdlib", "-ffreestanding",
			"-DBANNER=\"" + banner + "\"", "-Wl,-T," + filepath.Join(dir, "banner.ld"),
			"-Wl,--build-id=none", "-o", img.ELF, filepath.Join(dir, "banner.c")},
		{strings.TrimSuffix(gcc, "gcc") + "objcopy", "-O", "binary", img.ELF, img.Bin},
	}
	for _, c := range cmds {
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if out, err := cmd.CombinedOutput(); err != nil {
			return Image{}, fmt.Errorf("rsptest: %s: %w\n%s", filepath.Base(c[0]), err, out)
		}
	}
	return img, nil
}

// QEMUConfig chooses what StartQEMU connects. serial0 (USART1) is always
// null; serial1 (USART2, the console) is a TCP client socket or a pty.
type QEMUConfig struct {
	Kernel     string // -kernel image; none = empty flash (load it over GDB)
	Paused     bool   // -S: the guest waits for "cont" (HMP) or "c" (GDB)
	GDB        bool   // connect the gdbstub (QEMU dials our listener)
	ConsolePTY bool   // serial1 as -serial pty instead of a TCP socket
	Monitor    bool   // connect an HMP monitor
}

// QEMU is a running qemu-system-arm.
type QEMU struct {
	GDB        net.Conn // the gdbstub's connection, when QEMUConfig.GDB
	Console    net.Conn // USART2 as a TCP stream, unless ConsolePTY
	ConsolePTY string   // /dev/pts/N of USART2, when ConsolePTY

	mon    net.Conn
	monBuf *bufio.Reader
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	done   chan struct{}
	err    error
	once   sync.Once
}

var ptyLine = regexp.MustCompile(`char device redirected to (\S+) \(label serial1\)`)

// StartQEMU starts qemu-system-arm -M netduinoplus2 in its own process group
// and waits until everything asked for is connected. Close reaps it.
func StartQEMU(ctx context.Context, cfg QEMUConfig) (*QEMU, error) {
	bin, err := exec.LookPath("qemu-system-arm")
	if err != nil {
		return nil, ErrNoQEMU
	}
	args := []string{"-M", "netduinoplus2", "-display", "none", "-monitor", "none", "-serial", "null"}
	if cfg.Paused {
		args = append(args, "-S")
	}
	if cfg.Kernel != "" {
		args = append(args, "-kernel", cfg.Kernel)
	}
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	listen := func() (net.Listener, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			listeners = append(listeners, l)
		}
		return l, err
	}
	var gdbL, conL, monL net.Listener
	if cfg.GDB {
		if gdbL, err = listen(); err != nil {
			return nil, err
		}
		args = append(args, "-chardev", "socket,id=gdb0,"+hostPort(gdbL), "-gdb", "chardev:gdb0")
	}
	if cfg.ConsolePTY {
		args = append(args, "-serial", "pty")
	} else {
		if conL, err = listen(); err != nil {
			return nil, err
		}
		args = append(args, "-serial", "tcp:"+conL.Addr().String())
	}
	if cfg.Monitor {
		if monL, err = listen(); err != nil {
			return nil, err
		}
		args = append(args, "-chardev", "socket,id=mon0,"+hostPort(monL), "-mon", "chardev=mon0,mode=readline")
	}

	q := &QEMU{stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	q.cmd = exec.Command(bin, args...)
	q.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	q.cmd.Stderr = q.stderr
	q.cmd.Stdout = q.stderr
	if err := q.cmd.Start(); err != nil {
		return nil, fmt.Errorf("rsptest: start qemu: %w", err)
	}
	go func() { q.err = q.cmd.Wait(); close(q.done) }()

	fail := func(err error) (*QEMU, error) {
		q.Close()
		return nil, fmt.Errorf("%w\nqemu stderr:\n%s", err, q.stderr.String())
	}
	accept := func(l net.Listener, what string) (net.Conn, error) {
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() { c, err := l.Accept(); ch <- res{c, err} }()
		select {
		case r := <-ch:
			return r.c, r.err
		case <-q.done:
			return nil, fmt.Errorf("rsptest: qemu exited before connecting its %s: %v", what, q.err)
		case <-ctx.Done():
			return nil, fmt.Errorf("rsptest: qemu did not connect its %s: %w", what, ctx.Err())
		}
	}
	if gdbL != nil {
		if q.GDB, err = accept(gdbL, "gdbstub"); err != nil {
			return fail(err)
		}
	}
	if conL != nil {
		if q.Console, err = accept(conL, "console"); err != nil {
			return fail(err)
		}
	}
	if monL != nil {
		if q.mon, err = accept(monL, "monitor"); err != nil {
			return fail(err)
		}
		q.monBuf = bufio.NewReader(q.mon)
		if _, err := q.readPrompt(ctx); err != nil {
			return fail(err)
		}
	}
	if cfg.ConsolePTY {
		// QEMU prints the pty name while it sets the chardevs up, before it
		// connects sockets, so it is there by now; poll briefly anyway.
		for {
			if m := ptyLine.FindStringSubmatch(q.stderr.String()); m != nil {
				q.ConsolePTY = m[1]
				break
			}
			select {
			case <-q.done:
				return fail(errors.New("rsptest: qemu exited before naming its pty"))
			case <-ctx.Done():
				return fail(fmt.Errorf("rsptest: no pty line from qemu: %w", ctx.Err()))
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return q, nil
}

func hostPort(l net.Listener) string {
	a := l.Addr().(*net.TCPAddr)
	return fmt.Sprintf("host=127.0.0.1,port=%d,nodelay=on", a.Port)
}

// HMP runs one human-monitor command and returns its output.
func (q *QEMU) HMP(ctx context.Context, command string) (string, error) {
	if q.mon == nil {
		return "", errors.New("rsptest: qemu started without a monitor")
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = q.mon.SetDeadline(dl)
	}
	if _, err := q.mon.Write([]byte(command + "\n")); err != nil {
		return "", fmt.Errorf("rsptest: hmp %q: %w", command, err)
	}
	out, err := q.readPrompt(ctx)
	if err != nil {
		return "", fmt.Errorf("rsptest: hmp %q: %w", command, err)
	}
	// The monitor echoes the command line first (with terminal escapes).
	if i := strings.Index(out, "\n"); i >= 0 {
		out = out[i+1:]
	}
	return strings.TrimSpace(out), nil
}

// readPrompt reads until the "(qemu) " prompt.
func (q *QEMU) readPrompt(ctx context.Context) (string, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = q.mon.SetReadDeadline(dl)
	}
	var buf bytes.Buffer
	for !bytes.HasSuffix(buf.Bytes(), []byte("(qemu) ")) {
		b, err := q.monBuf.ReadByte()
		if err != nil {
			return buf.String(), err
		}
		buf.WriteByte(b)
	}
	return strings.TrimSuffix(buf.String(), "(qemu) "), nil
}

// Exited is closed when QEMU has exited and been reaped.
func (q *QEMU) Exited() <-chan struct{} { return q.done }

// Stderr returns what QEMU printed.
func (q *QEMU) Stderr() string { return q.stderr.String() }

// Close kills QEMU's process group, reaps it and closes the connections.
func (q *QEMU) Close() error {
	q.once.Do(func() {
		_ = syscall.Kill(-q.cmd.Process.Pid, syscall.SIGKILL)
		<-q.done
		for _, c := range []net.Conn{q.GDB, q.Console, q.mon} {
			if c != nil {
				c.Close()
			}
		}
	})
	return nil
}
