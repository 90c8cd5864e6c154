package defender_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

// typicalReport is the reference shape at a realistic size: 5 TCP and 2 UDP
// listeners, 2 connections, network stats and three custom metrics.
func typicalReport() *defender.Report {
	ports := func(ps ...uint64) *defender.Ports {
		out := &defender.Ports{Ports: []defender.Port{}, Total: u64(uint64(len(ps)))}
		for _, p := range ps {
			out.Ports = append(out.Ports, defender.Port{Port: p, Interface: "eth0"})
		}
		return out
	}
	return &defender.Report{
		Header: defender.Header{ReportID: 1700000000123, Version: "1.0"},
		Metrics: &defender.Metrics{
			ListeningTCPPorts: ports(22, 80, 443, 1883, 8883),
			ListeningUDPPorts: ports(53, 68),
			NetworkStats: &defender.NetworkStats{BytesIn: u64(29358693495), BytesOut: u64(147230817),
				PacketsIn: u64(1872689), PacketsOut: u64(940337)},
			TCPConnections: &defender.TCPConnections{Established: &defender.EstablishedConnections{
				Connections: []defender.Connection{
					{RemoteAddr: "34.212.105.174:8883", LocalPort: u64(39216), LocalInterface: "eth0"},
					{RemoteAddr: "[2001:db8::1]:443", LocalPort: u64(50000), LocalInterface: "eth0"},
				},
				Total: u64(2),
			}},
		},
		CustomMetrics: map[string]defender.CustomMetric{
			"uptime":                  {Kind: "number", Number: 86400},
			"cpu_usage":               {Kind: "number_list", NumberList: []float64{12.5, 7.25}},
			"network_interface_names": {Kind: "string_list", StringList: []string{"eth0", "lo"}},
		},
	}
}

// go test ./broker/defender -run '^$' -bench BenchmarkValidate -benchmem
func BenchmarkValidate(b *testing.B) {
	r := typicalReport()
	for _, bc := range []struct {
		name   string
		format defender.Format
		short  bool
	}{
		{"json-long", defender.JSON, false},
		{"json-short", defender.JSON, true},
		{"cbor", defender.CBOR, true},
	} {
		payload, err := defender.EncodeReport(bc.format, r, bc.short)
		require.NoError(b, err)
		require.Nil(b, defender.Validate(bc.format, payload, defender.Options{}).Problem)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				if res := defender.Validate(bc.format, payload, defender.Options{}); res.Problem != nil {
					b.Fatal(res.Problem)
				}
			}
		})
	}
}
