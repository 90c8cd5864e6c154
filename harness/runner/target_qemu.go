package runner

import (
	"io"

	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/qemu"
)

func init() {
	Targets["qemu"] = func(o Options, log io.Writer) (target.Target, error) {
		return qemu.New(qemu.Config{Binary: o.QEMUBinary, Firmware: o.Firmware, Stderr: log})
	}
}
