// Package proc holds how ddhil starts the external programs it owns
// (emulators, OpenOCD, Chromium): in their own process group, so the whole
// tree can be killed, and, on Linux, tied to the harness's life, so a
// harness killed without cleanup (SIGKILL, a test binary timing out) leaves
// no emulator behind.
package proc

import "syscall"

// Attr returns the SysProcAttr for a child the harness owns.
func Attr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	tieToParent(a)
	return a
}
