package defender

import (
	"strconv"
	"strings"
)

// keyName is one report key in its long and short spelling (protocol doc 2.1).
type keyName struct{ long, short string }

// The keys allowed in each object of a version "1.0" report. The index of a
// key in its table is its slot in validator.fields.
var (
	rootKeys        = []keyName{{"header", "hed"}, {"metrics", "met"}, {"custom_metrics", "cmet"}}
	headerKeys      = []keyName{{"report_id", "rid"}, {"version", "v"}}
	metricsKeys     = []keyName{{"tcp_connections", "tc"}, {"listening_tcp_ports", "tp"}, {"listening_udp_ports", "up"}, {"network_stats", "ns"}}
	tcpKeys         = []keyName{{"established_connections", "ec"}}
	establishedKeys = []keyName{{"connections", "cs"}, {"total", "t"}}
	connectionKeys  = []keyName{{"remote_addr", "rad"}, {"local_port", "lp"}, {"local_interface", "li"}}
	portsKeys       = []keyName{{"ports", "pts"}, {"total", "t"}}
	portKeys        = []keyName{{"port", "pt"}, {"interface", "if"}}
	netStatsKeys    = []keyName{{"bytes_in", "bi"}, {"bytes_out", "bo"}, {"packets_in", "pi"}, {"packets_out", "po"}}
	// Custom-metric value kinds have no short form.
	customKindKeys = []keyName{{"number", ""}, {"number_list", ""}, {"string_list", ""}, {"ip_list", ""}}
)

// internedKeys maps every key spelling to a constant string, so decoding
// the keys of a well-formed report allocates nothing (m[string(b)] does not
// copy b).
var internedKeys = func() map[string]string {
	m := map[string]string{}
	for _, table := range [][]keyName{rootKeys, headerKeys, metricsKeys, tcpKeys, establishedKeys,
		connectionKeys, portsKeys, portKeys, netStatsKeys, customKindKeys} {
		for _, k := range table {
			m[k.long] = k.long
			if k.short != "" {
				m[k.short] = k.short
			}
		}
	}
	return m
}()

// intern returns b as a string, shared when it is a known key.
func intern(b []byte) string {
	if s, ok := internedKeys[string(b)]; ok {
		return s
	}
	return string(b)
}

// lookupKey finds key in keys; short reports which spelling matched.
func lookupKey(keys []keyName, key string) (idx int, short bool, ok bool) {
	for i, k := range keys {
		switch key {
		case k.long:
			return i, false, true
		case k.short:
			if k.short != "" {
				return i, true, true
			}
		}
	}
	return 0, false, false
}

// lookalike returns the real key that key imitates by case or separators
// (listeningTcpPorts, ReportID, bytes-in), or "" when it imitates none.
func lookalike(keys []keyName, key string) string {
	norm := foldKey(key)
	for _, k := range keys {
		if foldKey(k.long) == norm {
			return k.long
		}
		if k.short != "" && foldKey(k.short) == norm {
			return k.short
		}
	}
	return ""
}

// foldKey lower-cases key and drops '_' and '-'.
func foldKey(key string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' {
			return -1
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, key)
}

// spell names a key in both spellings for reasons: `header (hed)`.
func (k keyName) spell() string {
	if k.short == "" {
		return strconv.Quote(k.long)
	}
	return strconv.Quote(k.long) + " (" + strconv.Quote(k.short) + ")"
}
