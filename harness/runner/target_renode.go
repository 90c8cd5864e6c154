package runner

import (
	"context"
	"io"
	"time"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/renode"
)

// probeTimeout bounds the Docker ping that decides whether Renode can run
// at all, so a hung engine is a lab error instead of a hang.
const probeTimeout = 30 * time.Second

func init() { Targets["renode"] = newRenodeTarget }

// newRenodeTarget runs the firmware (the renode-stm32f4disc build) in
// Renode: o.RenodeBinary (a local renode or launcher) if given, else the
// container o.RenodeImage, else renode from PATH, else renode.DefaultImage
// when Docker answers. With neither a binary nor Docker it fails with an
// error wrapping harness.ErrLab that says how to install Renode.
func newRenodeTarget(o Options, log io.Writer) (target.Target, error) {
	cfg := renode.Config{Binary: o.RenodeBinary, Image: o.RenodeImage, Firmware: o.Firmware, Log: log, Compress: o.Compress, StepSlice: o.StepSlice}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if _, err := renode.Probe(ctx, cfg); err != nil {
		return nil, harness.LabError(err)
	}
	return renode.New(cfg)
}
