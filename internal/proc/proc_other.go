//go:build !linux

package proc

import "syscall"

func tieToParent(*syscall.SysProcAttr) {}
