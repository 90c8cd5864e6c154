package fleet

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/ddhil/ddhil/broker/defender"
)

// device is one simulated agent's identity and normal behaviour, drawn
// from the profile once: its period, format, key style, open ports and the
// level of each metric. Reports jitter around those levels, so the fleet's
// spread comes from devices differing, as in a real fleet, and not only
// from noise.
type device struct {
	thing  string
	period time.Duration // production period, before period_scale
	format defender.Format
	short  bool

	tcpPorts, udpPorts []defender.Port
	levels             map[string]float64 // metric -> the device's level
	remotes            []string           // its established connections
	localPorts         []uint64           // their local (ephemeral) ports
	lists              map[string][]string
	count              map[string]int
	lastID             uint64
}

func newDevice(p *Profile, thing string, rng *rand.Rand) *device {
	d := &device{thing: thing, levels: map[string]float64{}, lists: map[string][]string{}, count: map[string]int{}}
	d.period = time.Duration(pickWeighted(rng, len(p.Periods), func(i int) float64 { return p.Periods[i].Weight }, func(i int) float64 { return float64(p.Periods[i].Period) }))
	d.format = defender.JSON
	if rng.Float64()*(p.Formats.JSON+p.Formats.CBOR) >= p.Formats.JSON {
		d.format = defender.CBOR
	}
	d.short = rng.Float64()*(p.Keys.Long+p.Keys.Short) >= p.Keys.Long
	m := &p.Metrics
	for name, r := range map[string]*Range{"bytes_in": m.BytesIn, "bytes_out": m.BytesOut, "packets_in": m.PacketsIn,
		"packets_out": m.PacketsOut, "established_connections": m.EstablishedConnections} {
		if r != nil {
			d.levels[name] = r.Min + rng.Float64()*(r.Max-r.Min)
		}
	}
	d.tcpPorts = pickPorts(rng, m.ListeningTCPPorts, m.Interface)
	d.udpPorts = pickPorts(rng, m.ListeningUDPPorts, m.Interface)
	if m.EstablishedConnections != nil {
		// Slots for the most connections the device may report; each report
		// uses as many as its jittered level says.
		n := int(math.Ceil(m.EstablishedConnections.Max * (1 + jitterOf(m.EstablishedConnections, p.Jitter))))
		for range n {
			d.remotes = append(d.remotes, m.RemoteAddrs[rng.IntN(len(m.RemoteAddrs))])
			d.localPorts = append(d.localPorts, uint64(49152+rng.IntN(16384))) // Linux/IANA ephemeral range
		}
	}
	for _, cm := range p.CustomMetrics {
		switch cm.Type {
		case "number", "number-list":
			d.levels["custom:"+cm.Name] = cm.Min + rng.Float64()*(cm.Max-cm.Min)
			d.count[cm.Name] = cm.Count
		default:
			var subset []string
			for _, v := range cm.Values {
				if rng.IntN(2) == 0 {
					subset = append(subset, v)
				}
			}
			if len(subset) == 0 {
				subset = []string{cm.Values[rng.IntN(len(cm.Values))]}
			}
			d.lists[cm.Name] = subset
		}
	}
	return d
}

// pickWeighted returns value(i) for an index drawn by weight(i).
func pickWeighted(rng *rand.Rand, n int, weight, value func(int) float64) float64 {
	var total float64
	for i := range n {
		total += weight(i)
	}
	x := rng.Float64() * total
	for i := range n {
		if x < weight(i) {
			return value(i)
		}
		x -= weight(i)
	}
	return value(n - 1)
}

func pickPorts(rng *rand.Rand, shares []PortShare, iface string) []defender.Port {
	var out []defender.Port
	for _, ps := range shares {
		if rng.Float64() < ps.Share {
			out = append(out, defender.Port{Port: uint64(ps.Port), Interface: iface})
		}
	}
	return out
}

// jittered returns a device level spread by ±j (uniform), never negative
// for counters.
func jittered(rng *rand.Rand, level, j float64, counter bool) float64 {
	v := level * (1 + (2*rng.Float64()-1)*j)
	if counter && v < 0 {
		v = 0
	}
	return v
}

func jitterOf(r *Range, def float64) float64 {
	if r.Jitter != nil {
		return *r.Jitter
	}
	return def
}

// report builds the device's next report: report_id is epoch milliseconds
// (as aws-c-iot sends it), strictly increasing per device.
func (d *device) report(p *Profile, rng *rand.Rand, now time.Time) *defender.Report {
	id := uint64(now.UnixMilli())
	if id <= d.lastID {
		id = d.lastID + 1
	}
	d.lastID = id
	r := &defender.Report{Header: defender.Header{ReportID: id, Version: "1.0"}}
	m := &p.Metrics
	met := &defender.Metrics{}
	counter := func(name string, rg *Range) *uint64 {
		if rg == nil {
			return nil
		}
		v := uint64(math.Round(jittered(rng, d.levels[name], jitterOf(rg, p.Jitter), true)))
		return &v
	}
	if m.BytesIn != nil || m.BytesOut != nil || m.PacketsIn != nil || m.PacketsOut != nil {
		met.NetworkStats = &defender.NetworkStats{
			BytesIn: counter("bytes_in", m.BytesIn), BytesOut: counter("bytes_out", m.BytesOut),
			PacketsIn: counter("packets_in", m.PacketsIn), PacketsOut: counter("packets_out", m.PacketsOut),
		}
	}
	if len(m.ListeningTCPPorts) > 0 {
		met.ListeningTCPPorts = portsOf(d.tcpPorts)
	}
	if len(m.ListeningUDPPorts) > 0 {
		met.ListeningUDPPorts = portsOf(d.udpPorts)
	}
	if m.EstablishedConnections != nil {
		n := int(math.Round(jittered(rng, d.levels["established_connections"], jitterOf(m.EstablishedConnections, p.Jitter), true)))
		n = min(n, len(d.remotes), 10)
		cs := make([]defender.Connection, 0, n)
		for i, ra := range d.remotes[:n] {
			lp := d.localPorts[i]
			cs = append(cs, defender.Connection{RemoteAddr: ra, LocalPort: &lp, LocalInterface: m.Interface})
		}
		total := uint64(len(cs))
		met.TCPConnections = &defender.TCPConnections{Established: &defender.EstablishedConnections{Connections: cs, Total: &total}}
	}
	r.Metrics = met
	if len(p.CustomMetrics) > 0 {
		r.CustomMetrics = map[string]defender.CustomMetric{}
		for i := range p.CustomMetrics {
			cm := &p.CustomMetrics[i]
			switch cm.Type {
			case "number":
				v := round3(jittered(rng, d.levels["custom:"+cm.Name], jitterOf(&cm.Range, p.Jitter), false))
				r.CustomMetrics[cm.Name] = defender.CustomMetric{Kind: "number", Number: v}
			case "number-list":
				vs := make([]float64, d.count[cm.Name])
				for j := range vs {
					vs[j] = round3(jittered(rng, d.levels["custom:"+cm.Name], jitterOf(&cm.Range, p.Jitter), false))
				}
				r.CustomMetrics[cm.Name] = defender.CustomMetric{Kind: "number_list", NumberList: vs}
			case "string-list":
				r.CustomMetrics[cm.Name] = defender.CustomMetric{Kind: "string_list", StringList: d.lists[cm.Name]}
			case "ip-address-list":
				r.CustomMetrics[cm.Name] = defender.CustomMetric{Kind: "ip_list", IPList: d.lists[cm.Name]}
			}
		}
	}
	return r
}

func portsOf(ps []defender.Port) *defender.Ports {
	t := uint64(len(ps))
	return &defender.Ports{Ports: append([]defender.Port{}, ps...), Total: &t}
}

// round3 keeps custom numbers well inside AWS's 15 significant digits.
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// payload encodes the device's next report.
func (d *device) payload(p *Profile, rng *rand.Rand, now time.Time) ([]byte, uint64, error) {
	r := d.report(p, rng, now)
	b, err := defender.EncodeReport(d.format, r, d.short)
	if err != nil {
		return nil, 0, fmt.Errorf("fleet: encode report of %s: %w", d.thing, err)
	}
	return b, r.Header.ReportID, nil
}

// thingName is the fleet's naming scheme: prefix plus a zero-padded index,
// so names sort in creation order.
func thingName(prefix string, i, n int) string {
	w := len(strconv.Itoa(n - 1))
	s := strconv.Itoa(i)
	for len(s) < w {
		s = "0" + s
	}
	return prefix + s
}
