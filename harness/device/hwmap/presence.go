package hwmap

import (
	"os"
	"strings"
)

// Presence says which parts of a mapped board are attached now.
type Presence struct {
	Probe     bool   // its probe serial is among the attached probes
	Console   string // "present", "missing" or "remote" (tcp://, not checked)
	Transport string // as Console, or "network"
}

// Ready reports whether everything local was found.
func (p Presence) Ready() bool {
	return p.Probe && p.Console != "missing" && p.Transport != "missing"
}

// Check looks for the board's probe among attachedSerials and for its serial
// ports on this machine.
func (b Board) Check(attachedSerials []string) Presence {
	p := Presence{Console: portState(b.Console.Port), Transport: TransportNetwork}
	for _, s := range attachedSerials {
		if s == b.ProbeSerial {
			p.Probe = true
		}
	}
	if b.Transport.Kind == TransportModule {
		p.Transport = portState(b.Transport.Port)
	}
	return p
}

func portState(port string) string {
	if strings.HasPrefix(port, "tcp://") {
		return "remote"
	}
	if _, err := os.Stat(port); err != nil {
		return "missing"
	}
	return "present"
}
