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

type object = map[string]any

func reportTree(r *Report, short bool) (object, error) {
	name := func(k keyName) string {
		if short {
			return k.short
		}
		return k.long
	}
	putUint := func(o object, k keyName, v *uint64) {
		if v != nil {
			o[name(k)] = *v
		}
	}
	root := object{name(rootKeys[0]): object{
		name(headerKeys[0]): r.Header.ReportID,
		name(headerKeys[1]): r.Header.Version,
	}}
	if m := r.Metrics; m != nil {
		met := object{}
		if tc := m.TCPConnections; tc != nil {
			tco := object{}
			if ec := tc.Established; ec != nil {
				eco := object{}
				if ec.Connections != nil {
					cs := make([]any, 0, len(ec.Connections))
					for _, c := range ec.Connections {
						co := object{name(connectionKeys[0]): c.RemoteAddr}
						putUint(co, connectionKeys[1], c.LocalPort)
						if c.LocalInterface != "" {
							co[name(connectionKeys[2])] = c.LocalInterface
						}
						cs = append(cs, co)
					}
					eco[name(establishedKeys[0])] = cs
				}
				putUint(eco, establishedKeys[1], ec.Total)
				tco[name(tcpKeys[0])] = eco
			}
			met[name(metricsKeys[0])] = tco
		}
		for i, ps := range []*Ports{m.ListeningTCPPorts, m.ListeningUDPPorts} {
			if ps == nil {
				continue
			}
			po := object{}
			if ps.Ports != nil {
				list := make([]any, 0, len(ps.Ports))
				for _, p := range ps.Ports {
					o := object{name(portKeys[0]): p.Port}
					if p.Interface != "" {
						o[name(portKeys[1])] = p.Interface
					}
					list = append(list, o)
				}
				po[name(portsKeys[0])] = list
			}
			putUint(po, portsKeys[1], ps.Total)
			met[name(metricsKeys[1+i])] = po
		}
		if ns := m.NetworkStats; ns != nil {
			nso := object{}
			for i, v := range []*uint64{ns.BytesIn, ns.BytesOut, ns.PacketsIn, ns.PacketsOut} {
				putUint(nso, netStatsKeys[i], v)
			}
			met[name(metricsKeys[3])] = nso
		}
		root[name(rootKeys[1])] = met
	}
	if r.CustomMetrics != nil {
		cmet := object{}
		for metric, cm := range r.CustomMetrics {
			var v any
			switch cm.Kind {
			case "number":
				v = cm.Number
			case "number_list":
				v = append([]float64{}, cm.NumberList...) // never null
			case "string_list":
				v = append([]string{}, cm.StringList...)
			case "ip_list":
				v = append([]string{}, cm.IPList...)
			default:
				return nil, fmt.Errorf("defender: encode report: custom metric %q has unknown kind %q", metric, cm.Kind)
			}
			if !finite(cm.Number) || !finite(cm.NumberList...) {
				return nil, fmt.Errorf("defender: encode report: custom metric %q is not finite", metric)
			}
			cmet[metric] = []any{object{cm.Kind: v}}
		}
		root[name(rootKeys[2])] = cmet
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
