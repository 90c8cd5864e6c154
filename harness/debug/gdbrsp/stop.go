package gdbrsp

import (
	"fmt"
	"strconv"
	"strings"
)

// StopReply is a target's answer to "?", to a continue when it stops, or to
// an interrupt.
type StopReply struct {
	Kind   byte              // 'S' or 'T' stopped, 'W' exited, 'X' killed by signal
	Signal int               // signal for S/T/X (2 = SIGINT after an interrupt, 5 = SIGTRAP), exit status for W
	Fields map[string]string // T packets: "thread", "swbreak", register numbers, ...
	Raw    string
}

// Stopped reports whether the target is halted and can be inspected.
func (s StopReply) Stopped() bool { return s.Kind == 'S' || s.Kind == 'T' }

func (s StopReply) String() string { return s.Raw }

// parseStopReply decodes S, T, W and X replies.
func parseStopReply(p string) (StopReply, error) {
	if len(p) < 3 {
		return StopReply{}, fmt.Errorf("gdbrsp: bad stop reply %q", p)
	}
	r := StopReply{Kind: p[0], Raw: p}
	switch r.Kind {
	case 'S', 'T', 'W', 'X':
	default:
		return StopReply{}, fmt.Errorf("gdbrsp: bad stop reply %q", p)
	}
	n, err := strconv.ParseUint(p[1:3], 16, 8)
	if err != nil {
		return StopReply{}, fmt.Errorf("gdbrsp: bad stop reply %q: %w", p, err)
	}
	r.Signal = int(n)
	if r.Kind == 'T' && len(p) > 3 {
		r.Fields = map[string]string{}
		for _, kv := range strings.Split(strings.TrimSuffix(p[3:], ";"), ";") {
			k, v, _ := strings.Cut(kv, ":")
			r.Fields[k] = v
		}
	}
	return r, nil
}
