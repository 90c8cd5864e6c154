package fleet

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ddhil/ddhil/broker/defender"
)

// BenchmarkReportPayload is one agent's cost to build a report.
func BenchmarkReportPayload(b *testing.B) {
	p, err := LoadProfile("../../fixtures/fleet/normal.yaml")
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, f := range []defender.Format{defender.JSON, defender.CBOR} {
		d := newDevice(p, "fleet-0001", rng)
		d.format = f
		b.Run(string(f), func(b *testing.B) {
			b.ReportAllocs()
			now := time.Now()
			for range b.N {
				if _, _, err := d.payload(p, rng, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
