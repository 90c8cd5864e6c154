package fleet

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ddhil/ddhil/broker/defender"
)

// Profile is the normal behaviour of a fleet: the distribution each
// simulated device draws its report period, format, key style and metric
// levels from. docs/fleet.md documents every field; fixtures/fleet/normal.yaml
// is an example.
type Profile struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// PeriodScale divides every report period and the broker's throttle
	// window, like a device profile's period_scale: 60 turns AWS's 300 s
	// into 5 s. 0 means 1 (production timing).
	PeriodScale float64 `yaml:"period_scale"`
	// Periods is the mix of production report periods (each >= 300 s, AWS's
	// minimum), drawn once per device by weight.
	Periods []PeriodShare `yaml:"periods"`
	// Jitter stretches each wait by a uniform fraction in [0, jitter) of the
	// period: agents sleep the period after each report, so they are late,
	// never early. It also spreads each metric around the device's level
	// (±jitter) unless the metric sets its own.
	Jitter float64 `yaml:"jitter"`
	// Formats and Keys are the shares of JSON vs CBOR and long vs short
	// keys (weights; they need not sum to 1).
	Formats struct {
		JSON float64 `yaml:"json"`
		CBOR float64 `yaml:"cbor"`
	} `yaml:"formats"`
	Keys struct {
		Long  float64 `yaml:"long"`
		Short float64 `yaml:"short"`
	} `yaml:"keys"`
	Metrics       Metrics        `yaml:"metrics"`
	CustomMetrics []CustomMetric `yaml:"custom_metrics"`
}

// PeriodShare is one report period and its weight in the fleet.
type PeriodShare struct {
	Period Duration `yaml:"period"`
	Weight float64  `yaml:"weight"`
}

// Metrics are the device-side metrics. A nil range leaves the metric out of
// every report.
type Metrics struct {
	// Network statistics are deltas per report period (AWS: "delta metric").
	BytesIn    *Range `yaml:"bytes_in"`
	BytesOut   *Range `yaml:"bytes_out"`
	PacketsIn  *Range `yaml:"packets_in"`
	PacketsOut *Range `yaml:"packets_out"`
	// Listening ports: each device listens on each port with its share,
	// drawn once per device (a device's open ports do not flap).
	ListeningTCPPorts []PortShare `yaml:"listening_tcp_ports"`
	ListeningUDPPorts []PortShare `yaml:"listening_udp_ports"`
	// EstablishedConnections is how many connections a device holds; each
	// goes to one of RemoteAddrs ("ip:port").
	EstablishedConnections *Range   `yaml:"established_connections"`
	RemoteAddrs            []string `yaml:"remote_addrs"`
	Interface              string   `yaml:"interface"` // local interface name in ports and connections
}

// Range is a device's level, drawn uniformly in [min, max] once per
// device, then jittered per report by ±jitter (the profile's unless set).
type Range struct {
	Min    float64  `yaml:"min"`
	Max    float64  `yaml:"max"`
	Jitter *float64 `yaml:"jitter"`
}

// PortShare is a listening port and the share of devices that open it.
type PortShare struct {
	Port  uint16  `yaml:"port"`
	Share float64 `yaml:"share"`
}

// CustomMetric is a custom metric as describe-custom-metric names its type:
// number, number-list, string-list or ip-address-list.
type CustomMetric struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// number and number-list: the value range (Min/Max/Jitter as Range).
	Range `yaml:",inline"`
	// number-list: how many numbers per report.
	Count int `yaml:"count"`
	// string-list and ip-address-list: the values a device reports (each
	// device picks a fixed, non-empty subset).
	Values []string `yaml:"values"`
}

// Duration is a time.Duration written as "300s" / "5m" in YAML.
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 300s, 5m): %v", n.Line, n.Value, err)
	}
	*d = Duration(v)
	return nil
}

// MinPeriod is AWS's minimum report period (DEFENDER_REPORT_MIN_PERIOD_SECONDS).
const MinPeriod = 300 * time.Second

// LoadProfile reads and validates a profile file.
func LoadProfile(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet profile: %w", err)
	}
	p, err := ParseProfile(b)
	if err != nil {
		return nil, fmt.Errorf("fleet profile %s: %w", path, err)
	}
	return p, nil
}

// ParseProfile decodes a profile strictly (unknown keys are errors, so a
// typo cannot silently drop a metric) and validates it.
func ParseProfile(b []byte) (*Profile, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks the profile and fills defaults (period_scale 1, one
// 300 s period, all-JSON long keys when no share is given).
func (p *Profile) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.PeriodScale == 0 {
		p.PeriodScale = 1
	}
	if p.PeriodScale < 1 {
		bad("period_scale %g: must be >= 1", p.PeriodScale)
	}
	if len(p.Periods) == 0 {
		p.Periods = []PeriodShare{{Period: Duration(MinPeriod), Weight: 1}}
	}
	for i, ps := range p.Periods {
		if time.Duration(ps.Period) < MinPeriod {
			bad("periods[%d]: period %s is below AWS's minimum of 300s (the service throttles faster reports)", i, time.Duration(ps.Period))
		}
		if ps.Weight <= 0 {
			bad("periods[%d]: weight must be > 0", i)
		}
	}
	if p.Jitter < 0 || p.Jitter >= 1 {
		bad("jitter %g: must be in [0, 1)", p.Jitter)
	}
	if p.Formats.JSON < 0 || p.Formats.CBOR < 0 {
		bad("formats: shares must not be negative")
	}
	if p.Formats.JSON+p.Formats.CBOR == 0 {
		p.Formats.JSON = 1
	}
	if p.Keys.Long < 0 || p.Keys.Short < 0 {
		bad("keys: shares must not be negative")
	}
	if p.Keys.Long+p.Keys.Short == 0 {
		p.Keys.Long = 1
	}
	m := &p.Metrics
	for _, r := range []struct {
		name string
		r    *Range
	}{{"bytes_in", m.BytesIn}, {"bytes_out", m.BytesOut}, {"packets_in", m.PacketsIn}, {"packets_out", m.PacketsOut},
		{"established_connections", m.EstablishedConnections}} {
		if r.r != nil {
			if err := r.r.check(true); err != nil {
				bad("metrics.%s: %v", r.name, err)
			}
		}
	}
	for name, ports := range map[string][]PortShare{"listening_tcp_ports": m.ListeningTCPPorts, "listening_udp_ports": m.ListeningUDPPorts} {
		for i, ps := range ports {
			if ps.Port == 0 {
				bad("metrics.%s[%d]: port must be 1..65535", name, i)
			}
			if ps.Share < 0 || ps.Share > 1 {
				bad("metrics.%s[%d]: share %g must be in [0, 1]", name, i, ps.Share)
			}
		}
	}
	if m.EstablishedConnections != nil {
		if len(m.RemoteAddrs) == 0 {
			bad("metrics.remote_addrs: established_connections needs at least one remote address (ip:port)")
		}
		if m.EstablishedConnections.Max > 10 {
			bad("metrics.established_connections: max %g is above 10 (real agents cap their lists at 10)", m.EstablishedConnections.Max)
		}
	}
	for i, a := range m.RemoteAddrs {
		host, port, err := net.SplitHostPort(a)
		if err == nil && net.ParseIP(host) == nil {
			err = errors.New("not an IP address")
		}
		if n, perr := strconv.Atoi(port); err == nil && (perr != nil || n < 1 || n > 65535) {
			err = errors.New("port must be 1..65535")
		}
		if err != nil {
			bad("metrics.remote_addrs[%d] %q: %v", i, a, err)
		}
	}
	seen := map[string]bool{}
	for i, cm := range p.CustomMetrics {
		where := fmt.Sprintf("custom_metrics[%d] (%s)", i, cm.Name)
		if err := validMetricName(cm.Name); err != nil {
			bad("%s: %v", where, err)
		}
		if seen[cm.Name] {
			bad("%s: duplicate name", where)
		}
		seen[cm.Name] = true
		switch cm.Type {
		case "number", "number-list":
			if err := cm.Range.check(false); err != nil {
				bad("%s: %v", where, err)
			}
			if cm.Type == "number-list" && (cm.Count < 1 || cm.Count > 10) {
				bad("%s: count %d must be 1..10", where, cm.Count)
			}
		case "string-list", "ip-address-list":
			if len(cm.Values) == 0 {
				bad("%s: values must not be empty", where)
			}
			for _, v := range cm.Values {
				if cm.Type == "ip-address-list" && net.ParseIP(v) == nil {
					bad("%s: %q is not an IP address", where, v)
				}
				if cm.Type == "string-list" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-/.") != "" {
					bad("%s: %q has characters AWS does not retain (letters, digits and :_-/. only)", where, v)
				}
			}
		default:
			bad("%s: type %q must be number, number-list, string-list or ip-address-list", where, cm.Type)
		}
	}
	if m.BytesIn == nil && m.BytesOut == nil && m.PacketsIn == nil && m.PacketsOut == nil &&
		len(m.ListeningTCPPorts) == 0 && len(m.ListeningUDPPorts) == 0 && m.EstablishedConnections == nil && len(p.CustomMetrics) == 0 {
		bad("no metrics: set at least one of metrics.* or custom_metrics")
	}
	if m.Interface == "" {
		m.Interface = "eth0"
	}
	return errors.Join(errs...)
}

func (r *Range) check(counter bool) error {
	switch {
	case r.Min > r.Max:
		return fmt.Errorf("min %g is above max %g", r.Min, r.Max)
	case counter && r.Min < 0:
		return fmt.Errorf("min %g: counters cannot be negative", r.Min)
	case r.Jitter != nil && (*r.Jitter < 0 || *r.Jitter >= 1):
		return fmt.Errorf("jitter %g must be in [0, 1)", *r.Jitter)
	}
	return nil
}

// validMetricName applies CreateCustomMetric's rule.
func validMetricName(name string) error {
	if err := defender.ValidThingName(name); err != nil { // same 1..128 [a-zA-Z0-9:_-]+ rule
		return errors.New("name must be 1..128 characters of [a-zA-Z0-9:_-]")
	}
	if strings.HasPrefix(name, "aws:") {
		return errors.New(`name must not start with "aws:"`)
	}
	return nil
}

// MeanPeriod is the fleet's average production period (weighted, with the
// mean jitter stretch), before period_scale.
func (p *Profile) MeanPeriod() time.Duration {
	var sum, w float64
	for _, ps := range p.Periods {
		sum += float64(ps.Period) * ps.Weight
		w += ps.Weight
	}
	return time.Duration(sum / w * (1 + p.Jitter/2))
}
