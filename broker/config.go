package broker

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Policies.
const (
	// PolicyOpen lets any client publish and subscribe anywhere (the
	// refusals AWS applies to everyone still hold).
	PolicyOpen = "open"
	// PolicyStrict confines a client to "$aws/things/<thing>/..." where
	// thing is the certificate CN on TLS and the client ID elsewhere.
	PolicyStrict = "strict"
)

// Duplicate report_id policies (AWS's behaviour is not documented).
const (
	DuplicatesAccept = "accept" // answer as usual
	DuplicatesReject = "reject" // reject with InvalidPayload
	DuplicatesDrop   = "drop"   // discard silently, no response
)

// DefaultThrottle is AWS's one report per thing every five minutes.
const DefaultThrottle = 300 * time.Second

// NoThrottle disables the per-thing throttle (Config.Throttle).
const NoThrottle time.Duration = -1

// Config configures a Broker. The zero value is valid: plain MQTT on
// 127.0.0.1:<random>, no TLS, AWS's 300 s throttle, open policy.
type Config struct {
	// MQTTAddr is the plain MQTT listener's address; "" means 127.0.0.1:0.
	MQTTAddr string
	// MQTTSAddr is the mutual-TLS listener's address, used when TLS is set;
	// "" means 127.0.0.1:0.
	MQTTSAddr string
	// TLS enables the mutual-TLS listener. It needs Certificates and
	// ClientCAs; the broker works on a clone and forces TLS >= 1.2,
	// RequireAndVerifyClientCert and ALPN "x-amzn-mqtt-ca" / "mqtt".
	TLS *tls.Config

	// Throttle is the per-thing window after an accepted report in which
	// further reports are rejected as Throttled. 0 means DefaultThrottle;
	// NoThrottle (any negative value) disables it.
	Throttle time.Duration
	// Policy is PolicyOpen ("" too) or PolicyStrict.
	Policy string
	// Lenient accepts unknown report keys with a lint finding.
	Lenient bool
	// DuplicateIDs is what happens to a report whose report_id is not above
	// the highest accepted one of its thing: DuplicatesAccept ("" too),
	// DuplicatesReject or DuplicatesDrop.
	DuplicateIDs string
	// OmitReportIDOnInvalid leaves reportId out of InvalidPayload rejections,
	// reproducing AWS's documented example; by default it is echoed whenever
	// the header parsed.
	OmitReportIDOnInvalid bool

	// HandshakeTimeout bounds a TLS handshake; 0 means 10 s.
	HandshakeTimeout time.Duration
	// ConnectTimeout bounds the wait for CONNECT after accept (or after the
	// TLS handshake); 0 means 10 s.
	ConnectTimeout time.Duration
	// MeterInterval, when > 0, emits a meter event for every open connection
	// at this period.
	MeterInterval time.Duration

	// Record, when set, receives the event log as JSON Lines; it is written
	// by a goroutine of its own and flushed on Close.
	Record io.Writer
	// KeepLast, when > 0, keeps only the latest KeepLast events in memory
	// (a ring) instead of every event: for fleets, whose whole log would
	// not fit. Record still receives every event. Events, Since and WaitFor
	// then see only the kept events; Recorder.Count and WaitCount see all.
	// 0 keeps everything, which conformance runs need (they read Events).
	KeepLast int
	// Logger receives mochi's and the broker's diagnostics; nil discards.
	Logger *slog.Logger

	// clock replaces time.Now for the throttle and response timestamps
	// (tests only).
	clock func() time.Time
}

func (c *Config) ensureDefaults() error {
	if c.MQTTAddr == "" {
		c.MQTTAddr = "127.0.0.1:0"
	}
	if c.MQTTSAddr == "" {
		c.MQTTSAddr = "127.0.0.1:0"
	}
	switch {
	case c.Throttle == 0:
		c.Throttle = DefaultThrottle
	case c.Throttle < 0:
		c.Throttle = NoThrottle
	}
	switch c.Policy {
	case "":
		c.Policy = PolicyOpen
	case PolicyOpen, PolicyStrict:
	default:
		return fmt.Errorf("broker: unknown policy %q (want %q or %q)", c.Policy, PolicyOpen, PolicyStrict)
	}
	switch c.DuplicateIDs {
	case "":
		c.DuplicateIDs = DuplicatesAccept
	case DuplicatesAccept, DuplicatesReject, DuplicatesDrop:
	default:
		return fmt.Errorf("broker: unknown duplicate report_id policy %q (want accept, reject or drop)", c.DuplicateIDs)
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	if c.TLS != nil {
		if len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil {
			return fmt.Errorf("broker: TLS config has no server certificate")
		}
		if c.TLS.ClientCAs == nil {
			return fmt.Errorf("broker: TLS config has no ClientCAs to verify device certificates")
		}
	}
	return nil
}

// ALPN protocols offered on the TLS listener: AWS's name for MQTT with
// X.509 on port 443, and plain "mqtt" (harmless: the certificate is still
// required). Clients that offer no ALPN are served too.
var alpnProtocols = []string{"x-amzn-mqtt-ca", "mqtt"}

func serverTLS(base *tls.Config) *tls.Config {
	t := base.Clone()
	if t.MinVersion < tls.VersionTLS12 {
		t.MinVersion = tls.VersionTLS12
	}
	t.ClientAuth = tls.RequireAndVerifyClientCert
	for _, p := range alpnProtocols {
		found := false
		for _, q := range t.NextProtos {
			found = found || q == p
		}
		if !found {
			t.NextProtos = append(t.NextProtos, p)
		}
	}
	return t
}
