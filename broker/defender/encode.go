package defender

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/fxamacker/cbor/v2"
)

// reportEncMode sorts map keys so encoded reports are reproducible.
var reportEncMode = func() cbor.EncMode {
	em, err := cbor.EncOptions{Sort: cbor.SortCoreDeterministic}.EncMode()
	if err != nil {
		panic("defender: cbor options: " + err.Error()) // static options
	}
	return em
}()

// EncodeReport writes r the way a conforming device would, in long or short
// key names. Test clients and the fixture generator use it; Validate
// accepts its output for any Report that Validate produced.
func EncodeReport(f Format, r *Report, short bool) ([]byte, error) {
	if r == nil {
		return nil, errors.New("defender: encode report: nil report")
	}
	tree, err := reportTree(r, short)
	if err != nil {
		return nil, err
	}
	switch f {
	case JSON:
		return json.Marshal(tree)
	case CBOR:
		return reportEncMode.Marshal(tree)
	}
	return nil, fmt.Errorf("defender: encode report: unknown format %q", f)
}

type tree = map[string]any

// reportTree builds r as a generic tree keyed by keyNames, the same table
// the validator reads.
func reportTree(r *Report, short bool) (tree, error) {
	put := func(o tree, k keyID, v any) { o[k.name(short)] = v }
	putUint := func(o tree, k keyID, v *uint64) {
		if v != nil {
			put(o, k, *v)
		}
	}
	putString := func(o tree, k keyID, v string) {
		if v != "" {
			put(o, k, v)
		}
	}
	root := tree{}
	put(root, kHeader, tree{kReportID.name(short): r.Header.ReportID, kVersion.name(short): r.Header.Version})
	if m := r.Metrics; m != nil {
		met := tree{}
		if tc := m.TCPConnections; tc != nil {
			tco := tree{}
			if ec := tc.Established; ec != nil {
				eco := tree{}
				if ec.Connections != nil {
					cs := make([]any, 0, len(ec.Connections))
					for _, c := range ec.Connections {
						co := tree{}
						put(co, kRemoteAddr, c.RemoteAddr)
						putUint(co, kLocalPort, c.LocalPort)
						putString(co, kLocalInterface, c.LocalInterface)
						cs = append(cs, co)
					}
					put(eco, kConnections, cs)
				}
				putUint(eco, kTotal, ec.Total)
				put(tco, kEstablished, eco)
			}
			put(met, kTCPConnections, tco)
		}
		for _, listening := range []struct {
			k  keyID
			ps *Ports
		}{{kListeningTCPPorts, m.ListeningTCPPorts}, {kListeningUDPPorts, m.ListeningUDPPorts}} {
			ps := listening.ps
			if ps == nil {
				continue
			}
			po := tree{}
			if ps.Ports != nil {
				list := make([]any, 0, len(ps.Ports))
				for _, p := range ps.Ports {
					o := tree{}
					put(o, kPort, p.Port)
					putString(o, kInterface, p.Interface)
					list = append(list, o)
				}
				put(po, kPorts, list)
			}
			putUint(po, kTotal, ps.Total)
			put(met, listening.k, po)
		}
		if ns := m.NetworkStats; ns != nil {
			nso := tree{}
			putUint(nso, kBytesIn, ns.BytesIn)
			putUint(nso, kBytesOut, ns.BytesOut)
			putUint(nso, kPacketsIn, ns.PacketsIn)
			putUint(nso, kPacketsOut, ns.PacketsOut)
			put(met, kNetworkStats, nso)
		}
		put(root, kMetrics, met)
	}
	if r.CustomMetrics != nil {
		cmet := tree{}
		for metric, cm := range r.CustomMetrics {
			var v any
			switch cm.Kind {
			case kNumber.long():
				v = cm.Number
			case kNumberList.long():
				v = append([]float64{}, cm.NumberList...) // never null
			case kStringList.long():
				v = append([]string{}, cm.StringList...)
			case kIPList.long():
				v = append([]string{}, cm.IPList...)
			default:
				return nil, fmt.Errorf("defender: encode report: custom metric %q has unknown kind %q", metric, cm.Kind)
			}
			if !finite(cm.Number) || !finite(cm.NumberList...) {
				return nil, fmt.Errorf("defender: encode report: custom metric %q is not finite", metric)
			}
			cmet[metric] = []any{tree{cm.Kind: v}}
		}
		put(root, kCustomMetrics, cmet)
	}
	return root, nil
}

func finite(fs ...float64) bool {
	for _, f := range fs {
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return false
		}
	}
	return true
}
