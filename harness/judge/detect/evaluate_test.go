package detect

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Note §6.1: bytes-out ceiling with hysteresis, toAlarm 2 / toClear 2.
func TestWorkedExampleBytesOutHysteresis(t *testing.T) {
	d := defs(t, profile("ddhil-rules", `{ "name": "BytesOutCap", "metric": "aws:all-bytes-out",
	  "criteria": { "comparisonOperator": "less-than-equals", "value": { "count": 4096 },
	                "durationSeconds": 300, "consecutiveDatapointsToAlarm": 2,
	                "consecutiveDatapointsToClear": 2 }, "suppressAlerts": false }`))
	l := newLog(t)
	for k, n := range []int{1200, 5000, 6100, 4000, 7000, 3900, 800} {
		l.bytesOut(time.Duration(k)*min5, "ddhil-dev-01", k+1, n)
	}
	res := d.Evaluate(l.rec(0), nil)
	want := []string{`in-alarm@10m0s={"count":6100}`, `alarm-cleared@30m0s={"count":800}`}
	if got := states(res.Violations); !slices.Equal(got, want) {
		t.Fatalf("violations %v, want %v", got, want)
	}
	in, cl := res.Violations[0], res.Violations[1]
	if in.ID == "" || in.ID != cl.ID || len(in.ID) != 32 {
		t.Errorf("violation ids %q / %q: want one 32-hex id from in-alarm to its clearing", in.ID, cl.ID)
	}
	if in.Datapoints != 2 || cl.Datapoints != 2 {
		t.Errorf("datapoints %d/%d, want 2/2 (the streaks that moved the state)", in.Datapoints, cl.Datapoints)
	}
	if want := T0.Add(10 * time.Minute); !in.Time.Equal(want) || in.Time.Unix() != 1767226200 {
		t.Errorf("in-alarm time %s, want %s (note §6.1: @1767226200)", in.Time, want)
	}
	if in.Thing != "ddhil-dev-01" || in.Profile != "ddhil-rules" || in.Behavior != "BytesOutCap" || in.Metric != "aws:all-bytes-out" {
		t.Errorf("identity of the violation: %+v", in)
	}
}

// Note §6.1, last paragraph: with durationSeconds 900 each datapoint is the
// sum of the last three reports (1200, 6200, 12300, 15100, 17100, 14900,
// 11700): alarm at k=2, still in alarm at k=6.
func TestWorkedExampleDuration900Sums(t *testing.T) {
	d := defs(t, profile("p", `{ "name": "BytesOutCap", "metric": "aws:all-bytes-out",
	  "criteria": { "comparisonOperator": "less-than-equals", "value": { "count": 4096 },
	                "durationSeconds": 900, "consecutiveDatapointsToAlarm": 2, "consecutiveDatapointsToClear": 2 } }`))
	l := newLog(t)
	for k, n := range []int{1200, 5000, 6100, 4000, 7000, 3900, 800} {
		l.bytesOut(time.Duration(k)*min5, "dev", k+1, n)
	}
	res := d.Evaluate(l.rec(0), nil)
	if got, want := states(res.Violations), []string{`in-alarm@10m0s={"count":12300}`}; !slices.Equal(got, want) {
		t.Fatalf("violations %v, want %v", got, want)
	}
	var sums []float64
	for _, dp := range d.deviceSeries(d.Profiles[0].Behaviors[0], builtins["aws:all-bytes-out"], l.rec(0))["dev"] {
		sums = append(sums, dp.num)
	}
	if want := []float64{1200, 6200, 12300, 15100, 17100, 14900, 11700}; !slices.Equal(sums, want) {
		t.Errorf("900 s sums %v, want %v", sums, want)
	}
}

// Note §6.2: listening-port allow-list; an empty list clears; a missing
// section gives no datapoint; suppressAlerts still records the violation.
func TestWorkedExampleListeningPorts(t *testing.T) {
	d := defs(t, profile("p", `{ "name": "OnlyWebPorts", "metric": "aws:listening-tcp-ports",
	    "criteria": { "comparisonOperator": "in-port-set", "value": { "ports": [80, 443] } }, "suppressAlerts": false }`,
		`{ "name": "FewTcpListeners", "metric": "aws:num-listening-tcp-ports",
	    "criteria": { "comparisonOperator": "less-than-equals", "value": { "count": 2 }, "durationSeconds": 300 },
	    "suppressAlerts": true }`))
	l := newLog(t)
	l.report(0, "dev", 1, `"metrics":{"listening_tcp_ports":{"ports":[{"port":80}],"total":1}}`)
	l.report(min5, "dev", 2, `"metrics":{"listening_tcp_ports":{"ports":[{"port":80},{"port":23}],"total":2}}`)
	l.report(2*min5, "dev", 3, `"metrics":{"listening_tcp_ports":{"ports":[{"port":80},{"port":23},{"port":2323}],"total":3}}`)
	l.report(3*min5, "dev", 4, `"metrics":{"listening_tcp_ports":{"ports":[],"total":0}}`)
	l.report(4*min5, "dev", 5, `"metrics":{"network_stats":{"bytes_in":1,"bytes_out":1,"packets_in":1,"packets_out":1}}`)
	res := d.Evaluate(l.rec(0), nil)
	want := []string{`in-alarm@5m0s={"ports":[23,80]}`, `in-alarm@10m0s={"count":3}`,
		`alarm-cleared@15m0s={"ports":[]}`, `alarm-cleared@15m0s={"count":0}`}
	if got := states(res.Violations); !slices.Equal(got, want) {
		t.Fatalf("violations %v, want %v", got, want)
	}
	for _, v := range res.Violations {
		if (v.Behavior == "FewTcpListeners") != v.Suppressed {
			t.Errorf("%s %s: suppressed=%v", v.Behavior, v.State, v.Suppressed)
		}
	}
	if n := res.Datapoints["p/OnlyWebPorts"]; n != 4 {
		t.Errorf("OnlyWebPorts evaluated %d datapoints, want 4 (the report without the section gives none)", n)
	}
}

// Note §6.3: custom number, toAlarm 5; a rejected report neither grows nor
// resets the streak; then the clearing datapoint.
func TestWorkedExampleCustomNumber(t *testing.T) {
	d := defs(t, `{"metricName":"batteryPercentage","metricArn":"arn:aws:iot:eu-west-1:123456789012:custommetric/batteryPercentage","metricType":"number","displayName":"battery"}`,
		profile("p", `{ "name": "BatteryAbove75", "metric": "batteryPercentage",
	  "criteria": { "comparisonOperator": "greater-than", "value": { "number": 75 },
	                "consecutiveDatapointsToAlarm": 5, "consecutiveDatapointsToClear": 1 } }`))
	l := newLog(t)
	for k, x := range []int{90, 80, 74, 70, 66, -1, 60, 55, 80, 50} {
		if x < 0 { // k=5: the number without its array is REJECTED (InvalidPayload)
			l.report(time.Duration(k)*min5, "dev", k+1, `"custom_metrics":{"batteryPercentage":{"number":62}}`)
			continue
		}
		l.report(time.Duration(k)*min5, "dev", k+1, fmt.Sprintf(`"custom_metrics":{"batteryPercentage":[{"number":%d}]}`, x))
	}
	res := d.Evaluate(l.rec(0), nil)
	want := []string{`in-alarm@35m0s={"number":55}`, `alarm-cleared@40m0s={"number":80}`}
	if got := states(res.Violations); !slices.Equal(got, want) {
		t.Fatalf("violations %v, want %v", got, want)
	}
}

// Note §4.1: each operator, normal vs violation, with the empty-list rule
// and the families of IP addresses.
func TestOperators(t *testing.T) {
	n := func(v int64) MetricValue { return MetricValue{Count: &v} }
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		op    string
		value MetricValue
		dp    MetricValue
		viol  bool
	}{
		{"less-than", n(10), n(9), false},
		{"less-than", n(10), n(10), true},
		{"less-than-equals", n(10), n(10), false},
		{"less-than-equals", n(10), n(11), true},
		{"greater-than", n(128), n(110), true}, // CLI example: greater-than 128 violates with 110
		{"greater-than", n(10), n(0), true},    // CLI example: greater-than 10 violates with 0
		{"greater-than", n(10), n(11), false},
		{"greater-than-equals", n(10), n(10), false},
		{"greater-than-equals", n(10), n(9), true},
		{"less-than", MetricValue{Number: f(75.5)}, MetricValue{Number: f(75.4)}, false},
		{"in-port-set", MetricValue{Ports: []int{8888}}, MetricValue{Ports: []int{8888}}, false}, // FAQ camera
		{"in-port-set", MetricValue{Ports: []int{8888}}, MetricValue{Ports: []int{8888, 22}}, true},
		{"in-port-set", MetricValue{Ports: []int{8888}}, MetricValue{Ports: []int{}}, false}, // empty conforms
		{"not-in-port-set", MetricValue{Ports: []int{23}}, MetricValue{Ports: []int{80, 23}}, true},
		{"not-in-port-set", MetricValue{Ports: []int{23}}, MetricValue{Ports: []int{80}}, false},
		{"not-in-port-set", MetricValue{Ports: []int{23}}, MetricValue{Ports: []int{}}, false},
		{"in-cidr-set", MetricValue{CIDRs: []string{"10.0.0.0/8"}}, MetricValue{CIDRs: []string{"10.1.2.3"}}, false},
		{"in-cidr-set", MetricValue{CIDRs: []string{"10.0.0.0/8"}}, MetricValue{CIDRs: []string{"10.1.2.3", "192.0.2.1"}}, true},
		{"in-cidr-set", MetricValue{CIDRs: []string{"10.0.0.0/8"}}, MetricValue{CIDRs: []string{}}, false},
		{"in-cidr-set", MetricValue{CIDRs: []string{"::/0"}}, MetricValue{CIDRs: []string{"10.1.2.3"}}, true}, // families never mix
		{"in-cidr-set", MetricValue{CIDRs: []string{"192.0.2.1"}}, MetricValue{CIDRs: []string{"192.0.2.1"}}, false},
		{"in-cidr-set", MetricValue{CIDRs: []string{"2001:db8::/32"}}, MetricValue{CIDRs: []string{"2001:db8::1"}}, false},
		{"not-in-cidr-set", MetricValue{CIDRs: []string{"203.0.113.0/24"}}, MetricValue{CIDRs: []string{"203.0.113.9"}}, true},
		{"not-in-cidr-set", MetricValue{CIDRs: []string{"203.0.113.0/24"}}, MetricValue{CIDRs: []string{"198.51.100.1"}}, false},
		{"not-in-cidr-set", MetricValue{CIDRs: []string{"0.0.0.0/0"}}, MetricValue{CIDRs: []string{"not-an-ip"}}, false},
		{"in-set", MetricValue{Numbers: []float64{1, 2}}, MetricValue{Numbers: []float64{2, 1}}, false},
		{"in-set", MetricValue{Numbers: []float64{1, 2}}, MetricValue{Numbers: []float64{3}}, true},
		{"not-in-set", MetricValue{Strings: []string{"debug"}}, MetricValue{Strings: []string{"prod", "debug"}}, true},
		{"not-in-set", MetricValue{Strings: []string{"debug"}}, MetricValue{Strings: []string{"prod"}}, false},
		{"in-set", MetricValue{Strings: []string{"prod"}}, MetricValue{Strings: []string{}}, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %s vs %s", c.op, c.value, c.dp), func(t *testing.T) {
			crit := &Criteria{ComparisonOperator: c.op, Value: &c.value}
			if got := violates(crit, datapoint{value: c.dp, num: numOf(c.dp)}, 0); got != c.viol {
				t.Errorf("violates = %v, want %v", got, c.viol)
			}
		})
	}
}

// Device-side metrics other than the worked examples: each from its report
// section (note §3.1).
func TestDeviceMetrics(t *testing.T) {
	body := `"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"192.0.2.1:8883","local_port":50000},{"remote_addr":"[2001:db8::5]:443"}],"total":2}},
	  "listening_tcp_ports":{"ports":[{"port":8883},{"port":5001}],"total":2},
	  "listening_udp_ports":{"ports":[{"port":5353}]},
	  "network_stats":{"bytes_in":10,"bytes_out":20,"packets_in":3,"packets_out":4}},
	  "custom_metrics":{"heap":[{"number":100}],"codes":[{"number_list":[1,2]}],"mode":[{"string_list":["prod"]}],"peers":[{"ip_list":["10.0.0.1"]}],"bad":[{"string_list":["a b"]}]}`
	l := newLog(t).report(0, "dev", 1, body)
	d := defs(t, `{"metricName":"heap","metricType":"number"}`, `{"metricName":"codes","metricType":"number-list"}`,
		`{"metricName":"mode","metricType":"string-list"}`, `{"metricName":"peers","metricType":"ip-address-list"}`,
		`{"metricName":"bad","metricType":"string-list"}`, `{"metricName":"heapAsList","metricType":"number-list"}`)
	cases := map[string]string{
		"aws:all-bytes-in": `{"count":10}`, "aws:all-bytes-out": `{"count":20}`, "aws:all-packets-in": `{"count":3}`, "aws:all-packets-out": `{"count":4}`,
		"aws:listening-tcp-ports": `{"ports":[5001,8883]}`, "aws:listening-udp-ports": `{"ports":[5353]}`,
		"aws:num-listening-tcp-ports": `{"count":2}`, "aws:num-listening-udp-ports": `{"count":1}`, // total missing: len(ports)
		"aws:num-established-tcp-connections": `{"count":2}`,
		"aws:destination-ip-addresses":        `{"cidrs":["192.0.2.1","2001:db8::5"]}`,
		"heap":                                `{"number":100}`, "codes": `{"numbers":[1,2]}`, "mode": `{"strings":["prod"]}`, "peers": `{"cidrs":["10.0.0.1"]}`,
		"bad":        "", // AWS drops a string with a space: no datapoint (note §1.6)
		"heapAsList": "", // not sent
	}
	for metric, want := range cases {
		v, ok := d.deviceValue(metric, l.events[1].Result)
		got := ""
		if ok {
			b, _ := v.MarshalJSON()
			got = string(b)
		}
		if got != want {
			t.Errorf("%s: %q, want %q", metric, got, want)
		}
	}
}

// Cloud-side metrics (note §3.1): tumbling windows aligned to the start,
// zero datapoints only while connected, one per message or connection for
// the per-event metrics.
func TestCloudMetrics(t *testing.T) {
	l := newLog(t)
	l.connect(10*time.Second, "c1", "dev", "203.0.113.7:40000")
	l.publish(20*time.Second, "c1", "dev", "$aws/things/dev/defender/metrics/json", 100)
	l.publish(30*time.Second, "c1", "dev", "app/telemetry", 50)
	l.deliver(40*time.Second, "c1", "dev", "$aws/things/dev/defender/metrics/json/accepted", 80)
	l.policy(50*time.Second, "c1", "dev", "$aws/things/other/shadow/update")
	l.disconnect(50*time.Second, "c1")
	l.refusedConnect(400*time.Second, "c2", "dev")
	l.connect(1000*time.Second, "c3", "dev", "198.51.100.2:1")
	l.disconnect(1010*time.Second, "c3")
	rec := l.rec(1500 * time.Second)
	cases := []struct {
		metric, extra string
		want          string
	}{
		{"aws:num-messages-sent", `"durationSeconds":300`, `[5m0s=2 20m0s=0]`},
		{"aws:num-messages-received", `"durationSeconds":300`, `[5m0s=1 20m0s=0]`},
		{"aws:num-authorization-failures", `"durationSeconds":300`, `[5m0s=1 20m0s=0]`},
		// The refused CONNECT at 400 s counts though nothing was connected.
		{"aws:num-connection-attempts", `"durationSeconds":300`, `[5m0s=1 10m0s=1 20m0s=1]`},
		{"aws:num-disconnects", `"durationSeconds":300`, `[5m0s=1 20m0s=1]`},
		{"aws:num-messages-sent", `"durationSeconds":600`, `[10m0s=2 20m0s=0]`},
		{"aws:message-byte-size", `"durationSeconds":300`, `[5m0s=150 20m0s=0]`},
		{"aws:message-byte-size", ``, `[20s=100 30s=50]`},
		{"aws:source-ip-address", ``, `[10s=[203.0.113.7] 16m40s=[198.51.100.2]]`},
		// 5-minute steps: disconnected at 50 s, so 250 s = 4 min at 300 s;
		// again at 1010 s, so 190 s = 3 min at 1200 s.
		{"aws:disconnect-duration", ``, `[5m0s=4 10m0s=9 15m0s=14 20m0s=3 25m0s=8]`},
	}
	for _, c := range cases {
		t.Run(c.metric+" "+c.extra, func(t *testing.T) {
			op, val := "less-than-equals", `"value":{"count":1000}`
			if c.metric == "aws:source-ip-address" {
				op, val = "in-cidr-set", `"value":{"cidrs":["0.0.0.0/0"]}`
			}
			crit := fmt.Sprintf(`"comparisonOperator":%q,%s`, op, val)
			if c.extra != "" {
				crit += "," + c.extra
			}
			d := defs(t, profile("p", fmt.Sprintf(`{"name":"b","metric":%q,"criteria":{%s}}`, c.metric, crit)))
			b := d.Profiles[0].Behaviors[0]
			m, _ := d.lookup(b.Metric)
			var got []string
			for _, dp := range d.series(b, m, rec)["dev"] {
				got = append(got, fmt.Sprintf("%s=%s", dp.at, dp.value))
			}
			if s := fmt.Sprint(got); s != c.want {
				t.Errorf("datapoints %s, want %s", s, c.want)
			}
		})
	}
}

// Note §1.5: a TOPIC_FILTER dimension with IN counts matching topics only,
// NOT_IN the others; ${iot:ClientId} is the client's own ID.
func TestDimensionTopicFilter(t *testing.T) {
	dim := `{"name":"Defender","arn":"arn:aws:iot:eu-west-1:123456789012:dimension/Defender","type":"TOPIC_FILTER","stringValues":["$aws/things/${iot:ClientId}/defender/#"]}`
	l := newLog(t).connect(0, "c1", "dev", "192.0.2.9:1")
	l.publish(10*time.Second, "c1", "dev", "$aws/things/dev/defender/metrics/json", 10)
	l.publish(20*time.Second, "c1", "dev", "$aws/things/other/defender/metrics/json", 10)
	l.publish(30*time.Second, "c1", "dev", "app/x", 10)
	for _, c := range []struct{ op, want string }{{"", "2"}, {`,"operator":"IN"`, "1"}, {`,"operator":"NOT_IN"`, "2"}} {
		d := defs(t, dim, profile("p", fmt.Sprintf(`{"name":"b","metric":"aws:num-messages-sent","metricDimension":{"dimensionName":"Defender"%s},
		  "criteria":{"comparisonOperator":"less-than","value":{"count":1},"durationSeconds":300}}`, c.op)))
		if c.op == "" {
			d = defs(t, dim, profile("p", `{"name":"b","metric":"aws:num-messages-sent","criteria":{"comparisonOperator":"less-than","value":{"count":1},"durationSeconds":300}}`))
		}
		if c.op == "" {
			c.want = "3"
		}
		res := d.Evaluate(l.rec(min5), nil)
		if len(res.Violations) != 1 || res.Violations[0].Value.String() != c.want {
			t.Errorf("dimension%s: %v, want one in-alarm with count %s", c.op, states(res.Violations), c.want)
		}
	}
}

// Note §4.2: an open alarm becomes alarm-invalidated when the thing sends
// no metrics for more than two days, without a value; the durations scale
// with the run (test period / production period).
func TestInvalidationAndScale(t *testing.T) {
	d := defs(t, profile("p", `{"name":"NoTelnet","metric":"aws:listening-tcp-ports","criteria":{"comparisonOperator":"not-in-port-set","value":{"ports":[23]}}}`))
	scale := Scale{TestPeriod: time.Second, ProductionPeriod: 300 * time.Second}
	inval := scale.Of(48 * time.Hour) // 576 s of run time
	if inval != 576*time.Second {
		t.Fatalf("two days scaled to %s, want 576s", inval)
	}
	bad := `"metrics":{"listening_tcp_ports":{"ports":[{"port":23}]}}`
	l := newLog(t).report(0, "dev", 1, bad).report(time.Second, "dev", 2, bad)
	rec := &Recording{Events: l.events, End: time.Second + inval + time.Millisecond, Scale: scale}
	res := d.Evaluate(rec, nil)
	got := states(res.Violations)
	want := []string{`in-alarm@0s={"ports":[23]}`, "alarm-invalidated@9m37s"}
	if !slices.Equal(got, want) {
		t.Fatalf("violations %v, want %v", got, want)
	}
	if !strings.Contains(res.TimeScale, "300 s of AWS time = 1s of run time") {
		t.Errorf("time scale not stated: %q", res.TimeScale)
	}
	// Just short of two days: still open.
	rec.End = time.Second + inval
	if got := states(d.Evaluate(rec, nil).Violations); len(got) != 1 {
		t.Errorf("at exactly two days: %v, want the alarm still open", got)
	}
	// A gap of more than two days between datapoints invalidates, and the
	// next violating datapoint opens a new alarm with a new id.
	l.report(2*time.Second+inval, "dev", 3, bad)
	rec = &Recording{Events: l.events, Scale: scale}
	res = d.Evaluate(rec, nil)
	if got := states(res.Violations); len(got) != 3 || res.Violations[2].State != InAlarm || res.Violations[2].ID == res.Violations[0].ID {
		t.Errorf("after the gap: %v, want in-alarm, invalidated, a new in-alarm with a new id", got)
	}
}

// Scaled durationSeconds: in a 1 s test build, 900 s covers three reports.
func TestScaledDurationCounters(t *testing.T) {
	d := defs(t, profile("p", `{"name":"b","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than-equals","value":{"count":250},"durationSeconds":900}}`))
	l := newLog(t)
	for k := range 5 {
		// jitter of ±100 ms must not add or lose a report
		l.bytesOut(time.Duration(k)*time.Second+time.Duration(k%2)*100*time.Millisecond, "dev", k+1, 100)
	}
	rec := &Recording{Events: l.events, Scale: Scale{TestPeriod: time.Second, ProductionPeriod: 300 * time.Second}}
	got := states(d.Evaluate(rec, nil).Violations)
	if want := []string{`in-alarm@2s={"count":300}`}; !slices.Equal(got, want) {
		t.Fatalf("violations %v, want %v", got, want)
	}
}

// Note §4.3: statistical thresholds — from the previous window of the run's
// own fleet, or from a baseline recording.
func TestStatisticalThreshold(t *testing.T) {
	d := defs(t, profile("p", `{"name":"b","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than-equals","statisticalThreshold":{"statistic":"p90"},"durationSeconds":300}}`))
	// Own fleet: ten devices at 100 bytes in window 0, then dev9 jumps.
	l := newLog(t)
	for k := range 2 {
		for i := range 10 {
			n := 100 + i
			if k == 1 && i == 9 {
				n = 5000
			}
			l.bytesOut(time.Duration(k)*min5+time.Duration(i)*time.Second, fmt.Sprintf("dev%d", i), k+1, n)
		}
	}
	res := d.Evaluate(l.rec(0), nil)
	if len(res.Violations) != 1 || res.Violations[0].Thing != "dev9" || *res.Violations[0].Threshold != 108 {
		t.Fatalf("own-fleet p90: %v, want dev9 in alarm against p90=108 (nearest rank of 100..109)", states(res.Violations))
	}
	// Baseline: a recorded fleet sets the percentile; every device above it alarms.
	b := newLog(t)
	for i := range 100 {
		b.bytesOut(time.Duration(i)*time.Second, fmt.Sprintf("fleet%d", i), 1, i+1) // 1..100
	}
	res = d.Evaluate(l.rec(0), Baseline{b.rec(0)})
	alarmed := map[string]bool{}
	for _, v := range res.Violations {
		alarmed[v.Thing] = true
		if *v.Threshold != 90 {
			t.Errorf("threshold %v, want 90 (p90 of 1..100)", *v.Threshold)
		}
	}
	if len(alarmed) != 10 {
		t.Errorf("with a baseline p90=90 all ten devices (>=100 bytes) alarm; got %v", alarmed)
	}
	// Negative custom values make percentiles unavailable (custom metrics page).
	d = defs(t, `{"metricName":"temp","metricType":"number"}`,
		profile("p", `{"name":"b","metric":"temp","criteria":{"comparisonOperator":"less-than","statisticalThreshold":{"statistic":"p50"},"durationSeconds":300}}`))
	l = newLog(t).report(0, "dev", 1, `"custom_metrics":{"temp":[{"number":-5}]}`)
	res = d.Evaluate(l.rec(0), nil)
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "negative") {
		t.Errorf("skipped %v, want the behaviour skipped for a negative value", res.Skipped)
	}
}

func TestPercentileNearestRank(t *testing.T) {
	v := []float64{5, 1, 4, 2, 3}
	for p, want := range map[float64]float64{0: 1, 10: 1, 50: 3, 90: 5, 99.99: 5, 100: 5} {
		if got := percentile(v, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
}

// Note §4.4: ML behaviours are skipped with the reason.
func TestMLDetectSkipped(t *testing.T) {
	d := defs(t, profile("p", `{"name":"ml","metric":"aws:all-bytes-out","criteria":{"mlDetectionConfig":{"confidenceLevel":"HIGH"},"consecutiveDatapointsToAlarm":1}}`))
	l := newLog(t).bytesOut(0, "dev", 1, 1<<30)
	res := d.Evaluate(l.rec(0), nil)
	if len(res.Violations) != 0 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "cannot be reproduced offline") {
		t.Errorf("violations %v skipped %v", states(res.Violations), res.Skipped)
	}
}

// Spans pair every in-alarm with its end, or the recording's end.
func TestSpans(t *testing.T) {
	d := defs(t, profile("p", `{"name":"NoTelnet","metric":"aws:listening-tcp-ports","criteria":{"comparisonOperator":"not-in-port-set","value":{"ports":[23]}}}`))
	bad, good := `"metrics":{"listening_tcp_ports":{"ports":[{"port":23}]}}`, `"metrics":{"listening_tcp_ports":{"ports":[]}}`
	l := newLog(t).report(0, "dev", 1, bad).report(time.Second, "dev", 2, good).report(2*time.Second, "dev", 3, bad)
	res := d.Evaluate(l.rec(0), nil)
	spans := res.Spans(10 * time.Second)
	if len(spans) != 2 || spans[0].End != time.Second || spans[0].EndedState != AlarmCleared || spans[1].End != 10*time.Second || spans[1].EndedState != "" {
		t.Errorf("spans %+v", spans)
	}
	if !res.Alarmed() {
		t.Error("Alarmed() = false")
	}
}
