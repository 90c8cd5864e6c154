package proc

import "syscall"

// tieToParent makes the kernel SIGKILL the child when the thread that
// started it dies. Go keeps its threads for the process's life unless a
// goroutine that locked its thread exits, which ddhil never does around
// process starts.
func tieToParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
