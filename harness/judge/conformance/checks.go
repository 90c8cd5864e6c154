package conformance

// Citations. AWS pages are named by their documentation slug; "protocol
// note" is docs/defender-protocol.md in the research notes, whose sections
// cite their own sources.
const (
	citeSpec      = "AWS IoT Device Defender guide, Device-side metrics: specification (detect-device-side-metrics)"
	citeTopics    = "AWS IoT Core guide, Reserved topics: Device Defender topics (reserved-topics)"
	citeTrouble   = "AWS IoT guide, Troubleshooting Device Defender (device-defender-troubleshoot)"
	citeMQTT      = "AWS IoT Core guide, MQTT: QoS, retained messages, payload limits (mqtt)"
	citeCustom    = "AWS IoT guide, Custom metrics (dd-detect-custom-metrics)"
	citeLifecycle = "AWS IoT Core guide, Lifecycle events: disconnect reasons (life-cycle-events)"
	citeSecurity  = "AWS IoT Core guide, Transport security and X.509 client certificates (transport-security, x509-client-certs)"
	citePolicy    = "AWS IoT Core guide, Authorization: policies scoped to the thing (iot-policies)"
)

var catalogue = []Check{
	{ID: "DD-S01", Title: "Reports go to the device's own report topic in the topic's format", Severity: SeverityFail,
		Citation: citeTopics + "; protocol note 1.1", ProvenBy: "wrong-thing", Run: checkTopic},
	{ID: "DD-S02", Title: "Payload decodes as strict JSON or CBOR", Severity: SeverityFail,
		Citation: citeSpec + "; protocol note 2.4 (definite and indefinite CBOR)", ProvenBy: "truncate", Run: rejectedUnder("DD-S02")},
	{ID: "DD-S03", Title: "Header has an integer report_id and version \"1.0\"", Severity: SeverityFail,
		Citation: citeSpec + " (header block); protocol note 2.1, 2.3", ProvenBy: "no-header, bad-version", Run: rejectedUnder("DD-S03")},
	{ID: "DD-S04", Title: "metrics and/or custom_metrics present; every section has the right shape and known keys", Severity: SeverityFail,
		Citation: citeSpec + "; protocol note 2.2", ProvenBy: "camelcase", Run: rejectedUnder("DD-S04")},
	{ID: "DD-S05", Title: "Values in range: ports 1..65535, non-negative integer counters, remote_addr is ip:port", Severity: SeverityFail,
		Citation: citeSpec + " (constraints column); protocol note 2.2", ProvenBy: "port-zero", Run: rejectedUnder("DD-S05")},
	{ID: "DD-S06", Title: "Custom metrics are one-element arrays of a known kind", Severity: SeverityFail,
		Citation: citeCustom + "; " + citeTrouble + " (number not in an array is rejected)", ProvenBy: "cmet-bare", Run: rejectedUnder("DD-S06")},
	{ID: "DD-S07", Title: "Lint: one key style, no look-alike keys, totals cover their lists, no null fields, values AWS would keep", Severity: SeverityWarn,
		Citation: "protocol note 2.2, 5, 8 (mistakes seen in the wild)", ProvenBy: "camelcase", Run: checkLint},
	{ID: "DD-S08", Title: "Reports stay within AWS IoT Core's 128 KB payload limit", Severity: SeverityFail,
		Citation: citeMQTT + " (128 KB); " + citeLifecycle + " (CLIENT_ERROR)", ProvenBy: "oversize", Run: checkSize},
	{ID: "DD-P01", Title: "Subscribes to its accepted and rejected topics before the first report", Severity: SeverityFail,
		Citation: citeTopics + "; protocol note 3.3", ProvenBy: "no-subscribe", Run: checkSubscribeFirst},
	{ID: "DD-P02", Title: "QoS 0 or 1 and no RETAIN on reserved topics", Severity: SeverityFail,
		Citation: citeMQTT, ProvenBy: "retain", Run: checkQoSRetain},
	{ID: "DD-P03", Title: "Client ID equals the thing name (AWS recommendation)", Severity: SeverityWarn,
		Citation: citeTrouble + " (client ID and thing name)", ProvenBy: "wrong-thing", Run: checkClientID},
	{ID: "DD-T01", Title: "First report within the profile's bound after each MQTT connection", Severity: SeverityFail,
		Citation: "device profile (first_report_bound); " + citeSpec, ProvenBy: "late-first", Run: checkFirstReport},
	{ID: "DD-T02", Title: "Report interval median within tolerance of the period; jitter p95 bounded", Severity: SeverityFail,
		Citation: "device profile (test_period, tolerance); " + citeSpec, ProvenBy: "period-skew", Run: checkPeriod},
	{ID: "DD-T03", Title: "Production period at least 300 s and no two reports in one cycle", Severity: SeverityFail,
		Citation: citeSpec + " (one report every 5 minutes; throttled otherwise); protocol note 4", ProvenBy: "burst", Run: checkThrottle},
	{ID: "DD-I01", Title: "report_id strictly increasing on one connection", Severity: SeverityFail,
		Citation: citeSpec + " (report_id monotonically increasing)", ProvenBy: "rid-repeat", Run: checkIDsPerConnection},
	{ID: "DD-I02", Title: "report_id strictly increasing across reconnect and reboot", Severity: SeverityFail,
		Citation: citeSpec + "; protocol note 2.3 (duplicates discarded)", ProvenBy: "rid-ticks", Run: checkIDsAcrossRestarts},
	{ID: "DD-A01", Title: "network_stats are deltas since the previous report, not running totals", Severity: SeverityFail,
		Citation: citeSpec + " (network_stats: delta metric); protocol note 8.14", ProvenBy: "ns-cumulative", Run: checkDeltas},
	{ID: "DD-A02", Title: "network_stats agree with the traffic the harness carried", Severity: SeverityFail,
		Citation: citeSpec + " (bytes_in/out, packets_in/out); tolerance model in docs/checks.md", ProvenBy: "ns-inflate", Run: checkTrafficAgrees},
	{ID: "DD-A03", Title: "tcp_connections lists the live broker connection", Severity: SeverityFail,
		Citation: citeSpec + " (tcp_connections.established_connections)", ProvenBy: "tc-stale", Run: checkConnections},
	{ID: "DD-A04", Title: "Listening ports equal the expected set", Severity: SeverityFail,
		Citation: citeSpec + " (listening_tcp_ports, listening_udp_ports)", ProvenBy: "ports-missing", Run: checkListeningPorts},
	{ID: "DD-R01", Title: "Reconnects within its bound after a broker drop or a reboot, and resumes reporting", Severity: SeverityFail,
		Citation: citeLifecycle + "; device profile (reconnect_bound)", ProvenBy: "no-reconnect", Run: checkReconnect},
	{ID: "DD-R02", Title: "Backs off after a rejection without stopping, and carries on without a response", Severity: SeverityFail,
		Citation: citeSpec + " (Throttled); protocol note 4 (retries)", ProvenBy: "retry-storm", Run: checkBackoff},
	{ID: "DD-X01", Title: "Mutual TLS 1.2+ with a strong, valid client certificate", Severity: SeverityFail,
		Citation: citeSecurity, ProvenBy: "no firmware fault (the reference agent has no TLS): a real mutual-TLS client with an RSA-1024 certificate (harness/judge/conformance/tls_test.go)", Run: checkTLS},
	{ID: "DD-X02", Title: "Stays within its own thing's topics", Severity: SeverityFail,
		Citation: citePolicy, ProvenBy: "wrong-thing", Run: checkOwnTopics},
	{ID: "DD-D01", Title: "No behaviour alarms during normal operation", Severity: SeverityFail,
		Citation: citeDetect, ProvenBy: "dd-extra-out, dd-listen, dd-bad-topic (each with fixtures/security-profiles/<fault>.json)", Run: checkDetect},
}
