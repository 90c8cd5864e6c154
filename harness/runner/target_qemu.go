package runner

import (
	"errors"
	"io"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/qemu"
)

func init() {
	Targets["qemu"] = func(o Options, log io.Writer) (target.Target, error) {
		if o.Compress {
			// -icount sleep=off drops every second SysTick of a WFI-idle
			// firmware, and QEMU 7.2 cannot bound host latency in virtual
			// time (docs/timing.md): no sound compression here.
			return nil, harness.LabError(errors.New("runner: --compress needs --target renode: QEMU 7.2 has no sound time compression (docs/timing.md)"))
		}
		return qemu.New(qemu.Config{Binary: o.QEMUBinary, Firmware: o.Firmware, Stderr: log, TickSymbol: o.TickSymbol})
	}
}
