package defender

import (
	"strconv"
	"strings"
)

// keyID names one report key. The validator and the encoder both address
// keys by these names, so adding a metric is one line in keyNames, one in
// the object's schema below, and the code that reads and writes its value.
type keyID uint8

const (
	kHeader keyID = iota
	kMetrics
	kCustomMetrics
	kReportID
	kVersion
	kTCPConnections
	kListeningTCPPorts
	kListeningUDPPorts
	kNetworkStats
	kEstablished
	kConnections
	kTotal // in established_connections and in listening_*_ports
	kRemoteAddr
	kLocalPort
	kLocalInterface
	kPorts
	kPort
	kInterface
	kBytesIn
	kBytesOut
	kPacketsIn
	kPacketsOut
	kNumber
	kNumberList
	kStringList
	kIPList
	numKeys
)

// keyName is one report key in its long and short spelling (protocol doc
// 2.1). required keys must be present and not null; a null on any other
// key reads as absent (see docs/protocol-validation.md).
type keyName struct {
	long, short string
	required    bool
}

// keyNames spells every key. Custom-metric value kinds have no short form.
var keyNames = [numKeys]keyName{
	kHeader:            {long: "header", short: "hed", required: true},
	kMetrics:           {long: "metrics", short: "met"},
	kCustomMetrics:     {long: "custom_metrics", short: "cmet"},
	kReportID:          {long: "report_id", short: "rid", required: true},
	kVersion:           {long: "version", short: "v", required: true},
	kTCPConnections:    {long: "tcp_connections", short: "tc"},
	kListeningTCPPorts: {long: "listening_tcp_ports", short: "tp"},
	kListeningUDPPorts: {long: "listening_udp_ports", short: "up"},
	kNetworkStats:      {long: "network_stats", short: "ns"},
	kEstablished:       {long: "established_connections", short: "ec"},
	kConnections:       {long: "connections", short: "cs"},
	kTotal:             {long: "total", short: "t"},
	kRemoteAddr:        {long: "remote_addr", short: "rad", required: true},
	kLocalPort:         {long: "local_port", short: "lp"},
	kLocalInterface:    {long: "local_interface", short: "li"},
	kPorts:             {long: "ports", short: "pts"},
	kPort:              {long: "port", short: "pt", required: true},
	kInterface:         {long: "interface", short: "if"},
	kBytesIn:           {long: "bytes_in", short: "bi"},
	kBytesOut:          {long: "bytes_out", short: "bo"},
	kPacketsIn:         {long: "packets_in", short: "pi"},
	kPacketsOut:        {long: "packets_out", short: "po"},
	kNumber:            {long: "number"},
	kNumberList:        {long: "number_list"},
	kStringList:        {long: "string_list"},
	kIPList:            {long: "ip_list"},
}

// The keys allowed in each object of a version "1.0" report.
var (
	rootKeys        = []keyID{kHeader, kMetrics, kCustomMetrics}
	headerKeys      = []keyID{kReportID, kVersion}
	metricsKeys     = []keyID{kTCPConnections, kListeningTCPPorts, kListeningUDPPorts, kNetworkStats}
	tcpKeys         = []keyID{kEstablished}
	establishedKeys = []keyID{kConnections, kTotal}
	connectionKeys  = []keyID{kRemoteAddr, kLocalPort, kLocalInterface}
	portsKeys       = []keyID{kPorts, kTotal}
	portKeys        = []keyID{kPort, kInterface}
	netStatsKeys    = []keyID{kBytesIn, kBytesOut, kPacketsIn, kPacketsOut}
	customKindKeys  = []keyID{kNumber, kNumberList, kStringList, kIPList}
)

// maxObjectKeys is the most keys any one object's schema holds.
const maxObjectKeys = 4

// name is the key's spelling in the given style.
func (k keyID) name(short bool) string {
	if short && keyNames[k].short != "" {
		return keyNames[k].short
	}
	return keyNames[k].long
}

func (k keyID) long() string { return keyNames[k].long }

// internedKeys maps every key spelling to a constant string, so decoding
// the keys of a well-formed report allocates nothing (m[string(b)] does not
// copy b).
var internedKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range keyNames {
		m[k.long] = k.long
		if k.short != "" {
			m[k.short] = k.short
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

// lookupKey finds key among an object's keys; idx is its place in keys and
// short reports which spelling matched.
func lookupKey(keys []keyID, key string) (idx int, short bool, ok bool) {
	for i, id := range keys {
		k := &keyNames[id]
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
func lookalike(keys []keyID, key string) string {
	norm := foldKey(key)
	for _, id := range keys {
		k := keyNames[id]
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
func (k keyID) spell() string {
	n := keyNames[k]
	if n.short == "" {
		return strconv.Quote(n.long)
	}
	return strconv.Quote(n.long) + " (" + strconv.Quote(n.short) + ")"
}
