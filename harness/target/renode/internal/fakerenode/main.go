package fakerenode

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// QEMUEnv names the environment variable that turns QEMU mode on: its value
// is the qemu-system-arm binary (see the package comment).
const QEMUEnv = "DDHIL_FAKE_RENODE_QEMU"

// Main runs the fake with renode's command line and returns the exit code.
// Supported: --disable-xwt/--disable-gui, -p/--plain, -P/--port N,
// --robot-server-port N, --hide-log; anything else is refused. QEMUEnv in
// the environment selects QEMU mode.
func Main(args []string, stdout io.Writer) int {
	log := &logger{w: stdout}
	monitorPort, robotPort := -1, -1
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch a {
		case "--disable-xwt", "--disable-gui", "-p", "--plain", "--hide-log":
		case "-P", "--port", "--robot-server-port":
			if i+1 >= len(args) {
				fmt.Fprintf(stdout, "Option %s needs a value\n", a)
				return 1
			}
			n, err := strconv.Atoi(args[i+1])
			if err != nil {
				fmt.Fprintf(stdout, "Bad port %q\n", args[i+1])
				return 1
			}
			if a == "--robot-server-port" {
				robotPort = n
			} else {
				monitorPort = n
			}
			i++
		default:
			fmt.Fprintf(stdout, "fake renode: unsupported argument %q\n", a)
			return 1
		}
	}
	e := newEmulation(log, os.Getenv(QEMUEnv))
	defer e.close()
	log.info("Loaded monitor commands from: <FAKE_RENODE>/scripts/monitor.py")

	stop := make(chan struct{})
	var stopOnce sync.Once
	quit := func() { stopOnce.Do(func() { close(stop) }) }
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		quit()
	}()

	if monitorPort >= 0 {
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(monitorPort))
		if err != nil {
			fmt.Fprintf(stdout, "Fatal error:\nUnable to create '0.0.0.0:%d' socket:[AddressAlreadyInUse] Address already in use\n", monitorPort)
			return 1
		}
		defer ln.Close()
		// Renode logs the port it was given, even 0 (README.md).
		log.info(fmt.Sprintf("Monitor available in telnet mode on port %d", monitorPort))
		go serveTelnet(ln, e, quit)
	}
	if robotPort >= 0 {
		ln, err := net.Listen("tcp", ":"+strconv.Itoa(robotPort))
		if err != nil {
			log.errorf(fmt.Sprintf("Could not start the HTTP server on port %d", robotPort))
			return 0 // Renode exits 0 here
		}
		defer ln.Close()
		log.info(fmt.Sprintf("Robot Framework remote server is listening on port %d", ln.Addr().(*net.TCPAddr).Port))
		rs := &robotServer{e: e, ln: ln, stop: make(chan struct{})}
		go rs.serve()
		go func() {
			<-rs.stop
			quit()
		}()
	}
	<-stop
	return 0
}

// serveTelnet is the monitor on --port: one client at a time, the recorded
// IAC preamble and banner, echo of each line, the recorded reply shapes.
func serveTelnet(ln net.Listener, e *emulation, quit func()) {
	first := true
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		done := telnetSession(conn, e, first)
		first = false
		conn.Close()
		if done {
			quit()
			return
		}
	}
}

func telnetSession(conn net.Conn, e *emulation, banner bool) (quit bool) {
	w := bufio.NewWriter(conn)
	flush := func() { _ = w.Flush() }
	w.Write([]byte{0xff, 0xfd, 0x00, 0xff, 0xfb, 0x01, 0xff, 0xfb, 0x03, 0xff, 0xfc, 0x22})
	if banner {
		fmt.Fprintf(w, "%s\n\r\n\r(%s) ", e.version(), e.prompt())
	}
	flush()
	r := bufio.NewReader(conn)
	var line []byte
	var block strings.Builder
	for {
		b, err := r.ReadByte()
		if err != nil {
			return false
		}
		switch {
		case b == 0xff: // IAC: swallow the command and its option
			c, _ := r.ReadByte()
			if c >= 0xfb && c <= 0xfe {
				_, _ = r.ReadByte()
			}
			continue
		case b != '\r' && b != '\n':
			line = append(line, b)
			w.WriteByte(b)
			flush()
			continue
		}
		w.WriteString("\n\r")
		cmd := string(line)
		line = line[:0]
		if block.Len() > 0 || strings.Count(cmd, `"""`)%2 == 1 {
			if block.Len() > 0 {
				block.WriteByte('\n')
			}
			block.WriteString(cmd)
			if strings.Count(block.String(), `"""`)%2 == 1 {
				w.WriteString("> ")
				flush()
				continue
			}
			cmd = block.String()
			block.Reset()
		}
		if strings.TrimSpace(cmd) == "quit" {
			w.WriteString("Renode is quitting\r\n\r")
			flush()
			return true
		}
		writeReply(w, cmd, e.execute(cmd), e.prompt())
		flush()
	}
}

func writeReply(w *bufio.Writer, cmd string, r result, prompt string) {
	switch r.kind {
	case silent:
	case message:
		w.WriteString(strings.ReplaceAll(r.text, "\n", "\r\n\r") + "\r\n\r")
	case value:
		w.WriteString(r.text + "\r\r\n")
	case errParse, errStream:
		w.WriteString(r.text + "\r\n")
	case errExec:
		w.WriteString(r.help)
		fmt.Fprintf(w, "There was an error executing command '%s'\r\n%s\r\n", cmd, r.text)
	}
	fmt.Fprintf(w, "(%s) ", prompt)
}
