// Package fakerenode is a stand-in for the renode executable, for tests of
// the driver's process and container handling: Renode cannot be installed in
// this project's CI. It is a FAKE. It starts the way Renode 1.16.1 does (the
// same options, the same log lines on stdout, the same port-in-use
// behaviour), answers XML-RPC and the telnet monitor in the byte formats of
// the recordings in harness/target/renode/testdata, and understands the monitor
// commands the driver sends. It does not emulate a CPU: every UART wired to
// a socket terminal behaves like the recorded echo_irq.elf ("echo ready"
// after start and reset, then an echo of every byte while running).
//
// QEMU mode (DDHIL_FAKE_RENODE_QEMU=qemu-system-arm, see Main) puts a real
// CPU behind the fake for end-to-end tests of the driver's data path: at
// `start` it boots the loaded ELF in qemu-system-arm (netduinoplus2, an
// STM32F405, through harness/target/qemu) and wires each connected sysbus.usartN
// to QEMU's USART N. The monitor, XML-RPC and socket terminals are still the
// fake's; the CPU, its clock (SysTick at 168 MHz, not Renode's 72 MHz) and
// its peripherals are QEMU's, not Renode's. `machine Reset` is QEMU's
// system_reset; `pause` holds the client's bytes but does not stop QEMU's
// CPU. The version says "fake-ddhil+qemu" so reports say what ran.
package fakerenode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ddhil/ddhil/harness/target/qemu"
)

// Version is what `version` prints; "fake" in the build id keeps reports
// honest about what ran. QEMUVersion is the same in QEMU mode.
const (
	Version     = "Renode, version 1.16.1 (fake-ddhil)"
	QEMUVersion = "Renode, version 1.16.1 (fake-ddhil+qemu)"
)

// result kinds, after the reply shapes in the recordings' README.
type kind int

const (
	silent    kind = iota // "cmd\n\r(dut) "
	message               // "cmd\n\r<msg>\r\n\r(dut) "
	value                 // "cmd\n\r<val>\r\r\n(dut) "
	errParse              // "No such command or device: foo" (no "There was an error" line)
	errExec               // "There was an error executing command 'cmd'\r\n<msg>"
	errStream             // text on the error stream only (the SVD download failure)
)

type result struct {
	kind kind
	text string
	help string // telnet only: the method listing printed before a signature error
}

func ok() result                        { return result{kind: silent} }
func msg(s string) result               { return result{kind: message, text: s} }
func val(s string) result               { return result{kind: value, text: s} }
func execErr(f string, a ...any) result { return result{kind: errExec, text: fmt.Sprintf(f, a...)} }

// emulation is the monitor's state, shared by the XML-RPC and telnet
// servers (as in Renode, where both drive one monitor).
type emulation struct {
	qemuBinary string // QEMU mode when set

	cpuMu sync.Mutex // serialises starting and stopping QEMU
	vm    *qemu.QEMU

	mu        sync.Mutex
	log       *logger
	machine   string
	platform  bool
	elf       string
	vtor      uint32
	halted    bool
	running   bool
	ranFor    time.Duration // virtual time: host time spent running
	since     time.Time     // when the current run started
	macros    map[string][]string
	terminals map[string]*terminal
	uarts     map[string]*terminal // peripheral -> terminal
}

func newEmulation(log *logger, qemuBinary string) *emulation {
	return &emulation{log: log, qemuBinary: qemuBinary, macros: map[string][]string{}, terminals: map[string]*terminal{}, uarts: map[string]*terminal{}}
}

var uartNames = map[string]bool{"sysbus.usart1": true, "sysbus.usart2": true, "sysbus.usart3": true, "sysbus.uart4": true, "sysbus.uart5": true}

// version is what `version` and the telnet banner print.
func (e *emulation) version() string {
	if e.qemuBinary != "" {
		return QEMUVersion
	}
	return Version
}

// prompt is the monitor prompt name.
func (e *emulation) prompt() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.machine == "" {
		return "monitor"
	}
	return e.machine
}

func signature(sig, device string) result {
	return result{kind: errExec, text: "Parameters did not match the signature", help: fmt.Sprintf(
		"\r\nThe following methods are available:\r\n\r - %s\r\n\r\r\n\rUsage:\r\n\r %s MethodName param1 param2 ...\r\n\r\r\n\r", sig, device)}
}

var (
	quotedRE = regexp.MustCompile(`^"([^"]*)"$`)
	macroRE  = regexp.MustCompile(`(?m)^(\s*macro\s+\S+)\s*\n\s*"""`)
)

// execute runs one monitor line (a """ block may span lines).
func (e *emulation) execute(line string) result {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return ok()
	}
	fields := strings.Fields(line)
	switch {
	case fields[0] == "version":
		return msg(e.version())
	case fields[0] == "mach" && len(fields) == 3 && fields[1] == "create":
		m := quotedRE.FindStringSubmatch(fields[2])
		if m == nil {
			return result{kind: errParse, text: "Bad parameters for command " + line}
		}
		e.mu.Lock()
		e.machine = m[1]
		e.mu.Unlock()
		e.log.info("System bus created.")
		return ok()
	case fields[0] == "mach":
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.machine == "" {
			return result{kind: errParse, text: "Bad parameters for command " + line + " No machine selected."}
		}
		return result{kind: errParse, text: "Bad parameters for command " + line}
	case fields[0] == "include" || fields[0] == "i":
		if len(fields) != 2 || !strings.HasPrefix(fields[1], "@") {
			return result{kind: errParse, text: "Bad parameters for command " + line}
		}
		return e.include(fields[1][1:])
	case fields[0] == "macro" && len(fields) >= 3:
		body := strings.TrimSpace(strings.SplitN(line, `"""`, 2)[1])
		body = strings.TrimSuffix(body, `"""`)
		var lines []string
		for _, l := range strings.Split(body, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		e.mu.Lock()
		e.macros[fields[1]] = lines
		e.mu.Unlock()
		return ok()
	case fields[0] == "runMacro" && len(fields) == 2:
		return e.runMacro(strings.TrimPrefix(fields[1], "$"))
	case fields[0] == "start":
		if err := e.setRunning(true); err != nil {
			return execErr("%v", err)
		}
		return msg("Starting emulation...")
	case fields[0] == "pause":
		_ = e.setRunning(false)
		return msg("Pausing emulation...")
	case fields[0] == "quit":
		return msg("Renode is quitting")
	case line == "currentTime":
		// Virtual time is the host time spent running (no compression).
		e.mu.Lock()
		v := e.ranFor
		if e.running {
			v += time.Since(e.since)
		}
		e.mu.Unlock()
		return msg(fmt.Sprintf("Current virtual time: %s\nCurrent real time: %s", clockText(v), clockText(v)))
	}
	if !e.hasMachine() {
		return result{kind: errParse, text: "No such command or device: " + fields[0]}
	}
	switch {
	case line == "machine Reset":
		return e.reset()
	case fields[0] == "machine" && len(fields) == 3 && fields[1] == "LoadPlatformDescription":
		return e.loadPlatform(strings.TrimPrefix(fields[2], "@"))
	case fields[0] == "sysbus" && len(fields) >= 2 && fields[1] == "LoadELF":
		if len(fields) != 3 {
			return signature("Void LoadELF (ReadFilePath fileName, Boolean useVirtualAddress = False, IPeripheral cpu = null)", "sysbus")
		}
		return e.loadELF(strings.TrimPrefix(fields[2], "@"))
	case fields[0] == "cpu" && len(fields) >= 2 && fields[1] == "VectorTableOffset":
		return e.vectorTable(fields[2:])
	case fields[0] == "emulation" && len(fields) >= 2 && fields[1] == "CreateServerSocketTerminal":
		return e.createTerminal(fields[2:])
	case fields[0] == "connector" && len(fields) >= 2 && fields[1] == "Connect":
		return e.connect(fields[2:])
	}
	return result{kind: errParse, text: "No such command or device: " + fields[0]}
}

func (e *emulation) hasMachine() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.machine != ""
}

// include runs a .resc file: one command per line, """ blocks joined, #
// comments and :meta: lines skipped.
func (e *emulation) include(path string) result {
	data, err := os.ReadFile(path)
	if err != nil {
		return execErr("File does not exist: %s", path)
	}
	// "macro reset" with its """ on the next line, as Renode's own scripts write it
	data = macroRE.ReplaceAll(data, []byte(`$1 """`))
	var cmd strings.Builder
	open := false
	for _, l := range strings.Split(string(data), "\n") {
		if !open && (strings.HasPrefix(strings.TrimSpace(l), "#") || strings.HasPrefix(l, ":")) {
			continue
		}
		if cmd.Len() > 0 {
			cmd.WriteByte('\n')
		}
		cmd.WriteString(l)
		if strings.Count(l, `"""`)%2 == 1 {
			open = !open
		}
		if open {
			continue
		}
		if r := e.execute(cmd.String()); r.kind >= errParse {
			return r
		}
		cmd.Reset()
	}
	return ok()
}

func (e *emulation) runMacro(name string) result {
	e.mu.Lock()
	lines, found := e.macros[name]
	e.mu.Unlock()
	if !found {
		return execErr("Macro %s not found.", name)
	}
	for _, l := range lines {
		if r := e.execute(l); r.kind >= errParse {
			return r
		}
	}
	return ok()
}

func (e *emulation) loadPlatform(path string) result {
	data, err := os.ReadFile(path)
	if strings.HasPrefix(path, "platforms/boards/stm32f4_discovery-kit.repl") && err != nil {
		// The stock board: present in every Renode, but its ApplySVD needs the network.
		e.mu.Lock()
		e.platform = true
		e.mu.Unlock()
		e.log.errorf("Failed to download from https://dl.antmicro.com/projects/renode/svd/STM32F40x.svd.gz, reason: server name resolution error (attempt 1/5)")
		return result{kind: errStream, text: "Failed to download https://dl.antmicro.com/projects/renode/svd/STM32F40x.svd.gz, see log for details."}
	}
	if err != nil {
		return execErr("Could not find file '%s'.", path)
	}
	if !bytes.Contains(data, []byte(`using "platforms/boards/stm32f4_discovery-kit.repl"`)) {
		return execErr("Error E00: the fake only knows stm32f4_discovery-kit platforms (%s)", path)
	}
	e.mu.Lock()
	e.platform = true
	e.mu.Unlock()
	return ok()
}

func (e *emulation) loadELF(path string) result {
	data, err := os.ReadFile(path)
	if err != nil {
		return signature("Void LoadELF (ReadFilePath fileName, Boolean useVirtualAddress = False, IPeripheral cpu = null)", "sysbus")
	}
	if !bytes.HasPrefix(data, []byte("\x7fELF")) {
		return execErr("Error while loading ELF: Could not load ELF from path: %s\r\n\tCould not load ELF from path: %s", path, path)
	}
	e.mu.Lock()
	e.elf = path
	e.mu.Unlock()
	e.log.info(fmt.Sprintf("sysbus: Loading block of %d bytes length at 0x8000000.", len(data)))
	return ok()
}

func (e *emulation) vectorTable(args []string) result {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(args) == 0 {
		return val(fmt.Sprintf("0x%08X", e.vtor))
	}
	v, err := strconv.ParseUint(args[0], 0, 32)
	if err != nil {
		return execErr("Cannot convert type 'string' to 'uint'")
	}
	e.vtor = uint32(v)
	return ok()
}

func (e *emulation) createTerminal(args []string) result {
	if len(args) < 2 {
		return signature("Void CreateServerSocketTerminal (Int32 port, String name, Boolean telnetMode = True, Boolean flushOnConnect = False)", "emulation")
	}
	port, err := strconv.Atoi(args[0])
	m := quotedRE.FindStringSubmatch(args[1])
	if err != nil || m == nil {
		return signature("Void CreateServerSocketTerminal (Int32 port, String name, Boolean telnetMode = True, Boolean flushOnConnect = False)", "emulation")
	}
	if len(args) < 3 || args[2] != "false" {
		return execErr("the fake supports telnetMode false only")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.terminals[m[1]]; dup {
		return execErr("External's name already in use")
	}
	t, err := listenTerminal(m[1], port, e)
	if err != nil {
		return execErr("Unable to create '0.0.0.0:%d' socket:[AddressAlreadyInUse] Address already in use", port)
	}
	e.terminals[m[1]] = t
	return ok()
}

func (e *emulation) connect(args []string) result {
	e.mu.Lock()
	defer e.mu.Unlock()
	var t *terminal
	if len(args) == 2 {
		t = e.terminals[args[1]]
	}
	if len(args) != 2 || !uartNames[args[0]] || t == nil {
		return signature("Void Connect (IEmulationElement connectee, IConnectable connector)", "connector")
	}
	e.uarts[args[0]] = t
	return ok()
}

func (e *emulation) setRunning(run bool) error {
	if run {
		if err := e.startCPU(); err != nil {
			return err
		}
	}
	e.mu.Lock()
	was := e.running
	e.running = run
	switch {
	case run && !was:
		e.since = time.Now()
	case !run && was:
		e.ranFor += time.Since(e.since)
	}
	machine, halted := e.machine, e.halted
	terms := e.connected()
	e.mu.Unlock()
	switch {
	case run && !was:
		e.log.info(machine + ": Machine started.")
		if halted {
			e.log.errorf("cpu: PC does not lay in memory or PC and SP are equal to zero. CPU was halted.")
		}
		for _, t := range terms {
			t.run(!halted)
		}
	case !run && was:
		e.log.info(machine + ": Machine paused.")
		for _, t := range terms {
			t.run(false)
		}
	}
	return nil
}

// usartIndex is the QEMU serial index of a UART peripheral (sysbus.usart1
// is serial 0, as QEMU's STM32F405 numbers its USARTs).
func usartIndex(peripheral string) int {
	n, err := strconv.Atoi(peripheral[len(peripheral)-1:])
	if err != nil {
		return -1
	}
	return n - 1
}

// startCPU boots the loaded ELF in QEMU (QEMU mode, first start only) and
// wires the connected UARTs to its serial ports. QEMU waits for every
// serial socket before it runs the guest, so no output is lost.
func (e *emulation) startCPU() error {
	e.cpuMu.Lock()
	defer e.cpuMu.Unlock()
	e.mu.Lock()
	elf, halted := e.elf, e.halted
	uarts := map[int]*terminal{}
	serials := 0
	for p, t := range e.uarts {
		i := usartIndex(p)
		uarts[i] = t
		serials = max(serials, i+1)
	}
	e.mu.Unlock()
	if e.qemuBinary == "" || e.vm != nil || halted {
		return nil
	}
	if elf == "" {
		return errors.New("fake renode (QEMU mode): no ELF loaded")
	}
	if serials == 0 {
		serials = 1
	}
	vm, err := qemu.New(qemu.Config{Binary: e.qemuBinary, Firmware: elf, Serials: serials,
		ConsoleSerial: serials - 1, TransportSerial: -1, Stderr: e.log})
	if err != nil {
		return fmt.Errorf("fake renode (QEMU mode): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := vm.Start(ctx); err != nil {
		_ = vm.Close()
		return fmt.Errorf("fake renode (QEMU mode): %w", err)
	}
	e.vm = vm
	e.log.info(fmt.Sprintf("cpu: QEMU (pid %d) runs %s", vm.Pid(), elf))
	for i, t := range uarts {
		t.attach(vm.Serial(i))
	}
	return nil
}

// resetCPU is QEMU's system_reset (QEMU mode, once started).
func (e *emulation) resetCPU() error {
	e.cpuMu.Lock()
	defer e.cpuMu.Unlock()
	if e.vm == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.vm.Reset(ctx)
}

// stopCPU ends QEMU and reaps it (QEMU mode).
func (e *emulation) stopCPU() {
	e.cpuMu.Lock()
	defer e.cpuMu.Unlock()
	if e.vm != nil {
		_ = e.vm.Close()
		e.vm = nil
	}
}

func (e *emulation) connected() []*terminal {
	var out []*terminal
	for _, t := range e.uarts {
		out = append(out, t)
	}
	return out
}

// reset is `machine Reset`: without a reset macro the CPU halts for good
// (nothing is mapped at 0); with one, the macro reloads the ELF and the
// firmware boots again.
func (e *emulation) reset() result {
	e.mu.Lock()
	_, haveMacro := e.macros["reset"]
	e.vtor = 0
	running := e.running
	terms := e.connected()
	machine := e.machine
	e.mu.Unlock()
	if !haveMacro {
		e.log.warning("No action for reset - macro " + machine + ".reset is not registered.")
		e.mu.Lock()
		e.halted = true
		e.mu.Unlock()
		for _, t := range terms {
			t.run(false)
		}
		e.stopCPU() // halted for good
		return ok()
	}
	if r := e.runMacro("reset"); r.kind >= errParse {
		return r
	}
	if err := e.resetCPU(); err != nil {
		return execErr("fake renode (QEMU mode): %v", err)
	}
	for _, t := range terms {
		t.boot(running)
	}
	return ok()
}

// close drops every terminal and, in QEMU mode, ends QEMU.
func (e *emulation) close() {
	e.stopCPU()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.terminals {
		t.close()
	}
	if e.machine != "" {
		e.log.info(e.machine + ": Disposed.")
	}
}

// clockText formats like Renode's TimeInterval: 00:00:02.213400000.
func clockText(d time.Duration) string {
	h := d / time.Hour
	m := (d % time.Hour) / time.Minute
	sec := (d % time.Minute) / time.Second
	return fmt.Sprintf("%02d:%02d:%02d.%09d", h, m, sec, d%time.Second)
}
