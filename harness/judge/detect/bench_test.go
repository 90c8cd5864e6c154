package detect

import (
	"fmt"
	"testing"
	"time"

	"github.com/ddhil/ddhil/broker"
)

// BenchmarkFleetEvaluate: the generous fixture over a recorded fleet of
// 1,000 devices reporting 20 times each (connect, report, publish and
// delivery events), statistical p90 on top.
func BenchmarkFleetEvaluate(b *testing.B) {
	l := newLog(b)
	for i := range 1000 {
		thing := fmt.Sprintf("dev-%04d", i)
		l.add(broker.Event{Kind: broker.EventConnect, Mono: time.Duration(i) * time.Millisecond, ConnID: "c-" + thing, ClientID: thing, Remote: "192.0.2.9:1"})
	}
	for k := range 20 {
		for i := range 1000 {
			thing := fmt.Sprintf("dev-%04d", i)
			at := time.Duration(k)*time.Second + time.Duration(i)*time.Millisecond/2
			l.report(at, thing, k+1, fmt.Sprintf(`"metrics":{"listening_tcp_ports":{"ports":[{"port":8883}]},"network_stats":{"bytes_in":175,"bytes_out":%d,"packets_in":2,"packets_out":2}}`, 500+i%97))
			l.deliver(at, "c-"+thing, thing, "$aws/things/"+thing+"/defender/metrics/json/accepted", 80)
		}
	}
	d, errs := tryDefs(generousForBench, profile("stat", `{"name":"p90","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than-equals","statisticalThreshold":{"statistic":"p90"},"durationSeconds":300}}`))
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	rec := &Recording{Events: l.events, Scale: Scale{TestPeriod: time.Second, ProductionPeriod: 300 * time.Second}}
	b.ResetTimer()
	for range b.N {
		res := d.Evaluate(rec, nil)
		if len(res.Violations) == 0 {
			b.Fatal("the p90 behaviour should alarm for the top decile")
		}
	}
	b.ReportMetric(float64(len(l.events)), "events")
}

const generousForBench = `[{"name":"BytesOutCap","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than-equals","value":{"count":3500},"durationSeconds":300}},
{"name":"KnownTcpPorts","metric":"aws:listening-tcp-ports","criteria":{"comparisonOperator":"in-port-set","value":{"ports":[8883,5001]}}},
{"name":"MessagesSentCap","metric":"aws:num-messages-sent","criteria":{"comparisonOperator":"less-than-equals","value":{"count":100},"durationSeconds":300}},
{"name":"ReceivedCap","metric":"aws:num-messages-received","criteria":{"comparisonOperator":"less-than-equals","value":{"count":100},"durationSeconds":300}}]`
