package report

import (
	"fmt"
	"time"

	"github.com/ddhil/ddhil/broker/defender"
	"github.com/ddhil/ddhil/harness/target"
)

// The sample is a two-minute QEMU run of the reference agent built with a
// ×30 period scale (10 s period) and the "tick-count report IDs" and
// "cumulative counters" defects: six reports on a first connection, an
// injected link drop and a hardware reset, a reconnect, six more reports of
// which one is rejected (port 0). Its checks cover every status: pass, fail,
// warn, skip and error.

var sampleStart = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
func u64(n uint64) *uint64     { return &n }
func f64(f float64) *float64   { return &f }
func dur(d time.Duration) *time.Duration {
	return &d
}

const sampleThing = "ddagent-qemu-01"

type sampleReportSpec struct {
	at       time.Duration
	id       uint64
	conn     string
	bytesIn  uint64 // cumulative, the defect under test
	bytesOut uint64
	port0    bool // lists listening port 0: rejected InvalidPayload
	extraTCP bool // lists a stale second connection with total 1: lint
}

func sampleSpecs() []sampleReportSpec {
	var specs []sampleReportSpec
	at := []int64{3000, 13012, 23005, 33020, 43008, 53015}
	for i, a := range at {
		n := uint64(i + 1)
		specs = append(specs, sampleReportSpec{at: ms(a), id: uint64(a - 10), conn: "c1", bytesIn: 96 * n, bytesOut: 412 * n})
	}
	at2 := []int64{63900, 73910, 83905, 93912, 103920, 113930}
	for i, a := range at2 {
		n := uint64(i + 1)
		specs = append(specs, sampleReportSpec{at: ms(a), id: uint64(a - 58500 - 10), conn: "c2", bytesIn: 96 * n, bytesOut: 412 * n,
			port0: i == 2, extraTCP: i == 3})
	}
	return specs
}

func samplePayload(s sampleReportSpec) ([]byte, *defender.Report) {
	ports, total := `[]`, 0
	if s.port0 {
		ports, total = `[{"port":0}]`, 1
	}
	conns := `[{"remote_addr":"10.0.2.2:8883","local_port":49153}]`
	if s.extraTCP {
		conns = `[{"remote_addr":"10.0.2.2:8883","local_port":49153},{"remote_addr":"10.0.2.2:8883","local_port":49152}]`
	}
	payload := fmt.Sprintf(`{"header":{"report_id":%d,"version":"1.0"},"metrics":{"listening_tcp_ports":{"ports":%s,"total":%d},`+
		`"tcp_connections":{"established_connections":{"connections":%s,"total":1}},`+
		`"network_stats":{"bytes_in":%d,"bytes_out":%d,"packets_in":%d,"packets_out":%d}}}`,
		s.id, ports, total, conns, s.bytesIn, s.bytesOut, s.bytesIn/48, s.bytesOut/206)

	dec := &defender.Report{
		Header:   defender.Header{ReportID: s.id, Version: "1.0"},
		KeyStyle: "long",
		Metrics: &defender.Metrics{
			ListeningTCPPorts: &defender.Ports{Total: u64(uint64(total))},
			TCPConnections: &defender.TCPConnections{Established: &defender.EstablishedConnections{
				Connections: []defender.Connection{{RemoteAddr: "10.0.2.2:8883", LocalPort: u64(49153)}},
				Total:       u64(1),
			}},
			NetworkStats: &defender.NetworkStats{
				BytesIn: u64(s.bytesIn), BytesOut: u64(s.bytesOut), PacketsIn: u64(s.bytesIn / 48), PacketsOut: u64(s.bytesOut / 206),
			},
		},
	}
	if s.port0 {
		dec.Metrics.ListeningTCPPorts.Ports = []defender.Port{{Port: 0}}
	}
	if s.extraTCP {
		dec.Metrics.TCPConnections.Established.Connections = append(dec.Metrics.TCPConnections.Established.Connections,
			defender.Connection{RemoteAddr: "10.0.2.2:8883", LocalPort: u64(49152)})
	}
	return []byte(payload), dec
}

const awsMetricsDoc = "https://docs.aws.amazon.com/iot-device-defender/latest/devguide/detect-device-side-metrics.html"

// sampleReport builds the realistic report the golden files are made of.
func sampleReport() *Report {
	r := New()
	r.Run = Run{
		Tool: "ddhil", ToolVersion: "v0.1.0-test",
		Started: sampleStart, Finished: sampleStart.Add(ms(120250)), Duration: ms(120250),
		Clock: "wall", Host: "ci-runner-7",
		Command: []string{"ddhil", "run", "--target", "qemu", "--firmware", "firmware/build/qemu-netduinoplus2/ddagent.elf",
			"--profile", "fixtures/profiles/ddagent.yaml", "--out", "run/demo", "--periods", "5"},
	}
	r.Target = target.Info{
		Kind: "qemu", Name: "netduinoplus2", Version: "QEMU emulator version 7.2.0 (Debian 1:7.2+dfsg-7+deb12u7)",
		Firmware: "firmware/build/qemu-netduinoplus2/ddagent.elf",
		Extra:    map[string]string{"transport": "esp-at bridge", "console": "usart2"},
	}
	r.Firmware = Firmware{
		Path:   "firmware/build/qemu-netduinoplus2/ddagent.elf",
		SHA256: "9f2c4e1b7a5d3c8e0f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a",
		Size:   187_412,
	}
	r.Profile = Profile{
		Name: "ddagent-qemu", Path: "fixtures/profiles/ddagent.yaml",
		Expect: Expectations{
			Thing: sampleThing, Format: defender.JSON, Period: 10 * time.Second, Tolerance: 0.1,
			JitterP95: 2 * time.Second, FirstReportBound: 5 * time.Second, ReconnectBound: 15 * time.Second,
			PeriodScale: 30, ListeningTCPPorts: []uint64{},
		},
	}
	r.Schedule = &Schedule{Period: 10 * time.Second, Tolerance: 0.1, FirstReportBound: 5 * time.Second}

	topic := "$aws/things/" + sampleThing + "/defender/metrics/json"
	phase := func(at int64, label string) Mark { return Mark{At: ms(at), Kind: MarkPhase, Label: label} }
	r.Timeline = []Mark{
		phase(0, "boot"),
		phase(850, "await connect"),
		{At: ms(1200), Kind: MarkConnect, ConnID: "c1", Status: "ok", Label: "client " + sampleThing + " from 127.0.0.1:40412"},
		{At: ms(1210), Kind: MarkSubscribe, ConnID: "c1", Label: topic + "/accepted"},
		{At: ms(1215), Kind: MarkSubscribe, ConnID: "c1", Label: topic + "/rejected"},
		phase(1300, "steady state"),
	}
	for _, s := range sampleSpecs() {
		payload, dec := samplePayload(s)
		rc := Received{At: s.at, ReportID: u64(s.id), ConnID: s.conn, Topic: topic, Format: defender.JSON,
			Accepted: !s.port0, Answer: MarkAccepted, Decoded: dec}
		rc.KeepPayload(payload)
		status := MarkAccepted
		if s.port0 {
			status = MarkRejected
			rc.Code, rc.Answer = defender.CodeInvalidPayload, MarkRejected
			rc.Problem = &defender.Problem{Code: defender.CodeInvalidPayload, Message: defender.MsgMalformed,
				Path: "/metrics/listening_tcp_ports/ports/0/port", Reason: "port 0 is outside 1..65535"}
		}
		if s.extraTCP {
			rc.Lint = []defender.Finding{{Rule: "total-below-list", Path: "/metrics/tcp_connections/established_connections/total",
				Message: "total 1 is below the 2 connections listed"}}
		}
		r.Reports = append(r.Reports, rc)
		r.Timeline = append(r.Timeline,
			Mark{At: s.at, Kind: MarkReport, ReportID: u64(s.id), ConnID: s.conn, Status: status, Label: topic},
			Mark{At: s.at + ms(4), Kind: MarkResponse, ReportID: u64(s.id), ConnID: s.conn, Status: status, Label: topic + "/" + status},
		)
		if s.at == ms(53015) {
			r.Timeline = append(r.Timeline,
				phase(58000, "fault: drop link"),
				Mark{At: ms(58000), Kind: MarkFault, Label: "drop-link"},
				Mark{At: ms(58002), Kind: MarkDisconnect, ConnID: "c1", Label: "broker closed the connection (fault drop-link)"},
				Mark{At: ms(58500), Kind: MarkReset, Label: "hardware reset (QMP system_reset)"},
				phase(58500, "reconnect"),
				Mark{At: ms(61480), Kind: MarkConnect, ConnID: "c2", Status: "ok", Label: "client " + sampleThing + " from 127.0.0.1:40418"},
				Mark{At: ms(61490), Kind: MarkSubscribe, ConnID: "c2", Label: topic + "/accepted"},
				Mark{At: ms(61494), Kind: MarkSubscribe, ConnID: "c2", Label: topic + "/rejected"},
			)
		}
	}
	r.Timeline = append(r.Timeline,
		phase(118000, "teardown"),
		Mark{At: ms(120100), Kind: MarkDisconnect, ConnID: "c2", Label: "target stopped"},
	)

	cite := func(c Check, text string) Check { c.Citation, c.CitationURL = text, awsMetricsDoc; return c }
	pass := func(id, title, measured string) Check {
		return Check{ID: id, Title: title, Severity: SeverityFail, Status: StatusPass, Measured: measured}
	}
	var a01 []Finding
	for i, s := range sampleSpecs() {
		if i == 0 || i == 6 { // the first report on each connection has no predecessor
			continue
		}
		prev := sampleSpecs()[i-1]
		a01 = append(a01, Finding{
			Message:  "bytes_out looks like a running total, not the delta since the previous report",
			ReportID: u64(s.id), At: dur(s.at), Path: "/metrics/network_stats/bytes_out",
			Expected: "412 (bytes sent since the previous report)", Observed: fmt.Sprint(s.bytesOut),
			ExpectedValue: f64(412), ObservedValue: f64(float64(s.bytesOut)), Unit: "bytes",
			Window: &Window{From: prev.at, To: s.at},
		})
	}
	r.Checks = []Check{
		cite(pass("DD-S01", "Reports go to the thing's own metrics topic in its format", "12 reports: topics $aws/things/"+sampleThing+"/defender/metrics/json"), "Device-side metrics: MQTT topics"),
		cite(pass("DD-S02", "Payload decodes as strict JSON or CBOR", "12 reports validated as AWS would: 11 accepted, 1 InvalidPayload (0 of them under DD-S02)"), "Device-side metrics: report format"),
		cite(pass("DD-S03", "Header has an integer report_id and version 1.0", "12 reports validated as AWS would: 11 accepted, 1 InvalidPayload (0 of them under DD-S03)"), "Device-side metrics: header block"),
		cite(pass("DD-S04", "Metric sections have the right shape and types", "12 reports validated as AWS would: 11 accepted, 1 InvalidPayload (0 of them under DD-S04)"), "Device-side metrics: metrics block"),
		cite(Check{ID: "DD-S05", Title: "Values are in range", Severity: SeverityFail, Status: StatusFail,
			Measured: "12 reports validated as AWS would: 11 accepted, 1 InvalidPayload (1 of them under DD-S05)", Findings: []Finding{{
				Message: "listening TCP port 0 is outside 1..65535; AWS rejects the report", ReportID: u64(25395), At: dur(ms(83905)),
				Path: "/metrics/listening_tcp_ports/ports/0/port", Expected: "1..65535", Observed: "0",
				ExpectedValue: f64(1), ObservedValue: f64(0), Excerpt: `"listening_tcp_ports":{"ports":[{"port":0}],"total":1}`,
				Evidence: map[string]any{"aws_code": "InvalidPayload", "section": "listening_tcp_ports"},
			}}}, "Device-side metrics: metrics block, ports"),
		cite(Check{ID: "DD-S06", Title: "Custom metrics are well formed", Severity: SeverityFail, Status: StatusSkip,
			SkipReason: "no report carried custom_metrics and the profile declares none"}, "Custom metrics"),
		cite(Check{ID: "DD-S07", Title: "Lint: one key style, no unknown keys, totals cover lists, size", Severity: SeverityWarn, Status: StatusWarn,
			Measured: "12 reports linted: 1 lint finding",
			Findings: []Finding{{Message: "established_connections total 1 is below the 2 connections listed", ReportID: u64(35402),
				At: dur(ms(93912)), Path: "/metrics/tcp_connections/established_connections/total", Expected: "≥ 2", Observed: "1"}}},
			"Device-side metrics: tcp_connections"),
		cite(pass("DD-P01", "Subscribes to accepted and rejected before the first report", "subscriptions before the first report checked on 2 connections"), "Device-side metrics: responses"),
		cite(pass("DD-P02", "QoS ≤ 1, no retain on reserved topics, client ID is the thing name", "12 publishes to $aws/ topics: QoS 0 ×0, QoS 1 ×12, QoS 2 ×0; 0 retained"), "Reserved topics"),
		cite(pass("DD-T01", "First report within the bound after connecting", "2 connections; first report after 1.8s, 2.42s (bound 5s)"), "Profile: first_report_bound"),
		cite(pass("DD-T02", "Report interval within tolerance of the period", "10 intervals: median 10.005s (expected 10s ± 10%), jitter p95 15ms (bound 2s)"), "Profile: period and tolerance"),
		cite(Check{ID: "DD-T03", Title: "Production period is at least 300 s", Severity: SeverityFail, Status: StatusSkip,
			SkipReason: "test build with period scale ×30: the 300 s throttle rule applies to production builds only"}, "Device Defender throttling"),
		cite(pass("DD-I01", "report_id strictly increases on one connection", "12 report_ids on 2 connections, from 2990 to 53005"), "Device-side metrics: header block"),
		cite(Check{ID: "DD-I02", Title: "report_id strictly increases across reconnect and reboot", Severity: SeverityFail, Status: StatusFail,
			Measured: "report_id across 1 restart (reconnect or reboot, reports on both sides): 53005 → 5390",
			Findings: []Finding{{Message: "report_id went backwards after the reset: it looks like a tick count since boot",
				ReportID: u64(5390), At: dur(ms(63900)), Path: "/header/report_id", Expected: "> 53005", Observed: "5390",
				ExpectedValue: f64(53005), ObservedValue: f64(5390),
				Evidence: map[string]any{"previous_id": uint64(53005), "previous_at": ms(53015).String(), "rebooted": true,
					"reported": map[string]any{"conn_id": "c2", "report_id": uint64(5390)}}}}}, "Device-side metrics: header block, report_id"),
		cite(Check{ID: "DD-A01", Title: "network_stats are deltas since the previous report", Severity: SeverityFail, Status: StatusFail, Findings: a01,
			Measured: "11 reports with network_stats; 9 of them after another report since boot, where deltas and running totals differ"},
			"Device-side metrics: network_stats"),
		{ID: "DD-A02", Title: "Traffic counters agree with the bytes the broker counted", Severity: SeverityFail, Status: StatusError,
			Error: "no meter event for connection c2: events.jsonl ends at 01:58.000 without the final meter of c2 (recorder stopped early)"},
		cite(pass("DD-A03", "tcp_connections lists the live broker connection", "tcp_connections of 11 reports compared with the live connection (10.0.2.2:8883 lp=49153)"), "Device-side metrics: tcp_connections"),
		cite(pass("DD-A04", "Listening ports equal the expected set", "listening ports of 11 reports compared with TCP [], UDP []"), "Device-side metrics: listening ports"),
		pass("DD-R01", "Reconnects within its backoff bound after the link drops", "reconnect after kick: 3.48s (bound 15s)"),
		pass("DD-R02", "Does not storm after a rejection", "behaviour after 1 rejection and 0 dropped responses judged"),
		{ID: "DD-X01", Title: "TLS 1.2 or later with a sound client certificate", Severity: SeverityFail, Status: StatusSkip,
			SkipReason: "the transport bridge carries plain TCP: this target has no TLS"},
		cite(pass("DD-X02", "Stays within its own thing's topics", "16 publishes and subscriptions on $aws/things/ topics, 0 outside $aws/things/"+sampleThing+"/…"), "Device Defender policy"),
	}
	r.Artefacts = []Artefact{
		{Name: "console.log", Kind: ArtefactConsoleLog, Description: "firmware console, timestamped", Size: 18_733},
		{Name: "events.jsonl", Kind: ArtefactEvents, Description: "broker event log", Size: 41_208},
		{Name: "report.png", Kind: ArtefactScreenshot, Description: "screenshot of report.html"},
	}
	return r
}

// sampleWithVerdict returns the sample changed so its verdict is o.
func sampleWithVerdict(o Outcome) *Report {
	r := sampleReport()
	for i := range r.Checks {
		c := &r.Checks[i]
		switch {
		case o != Error && c.Status == StatusError:
			c.Status, c.Error = StatusPass, ""
		case o == Pass && c.Status == StatusFail:
			c.Status, c.Findings = StatusPass, nil
		}
	}
	return r
}
