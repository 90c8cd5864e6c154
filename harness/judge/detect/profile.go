// Package detect evaluates AWS IoT Device Defender Detect security profiles
// (rules-based behaviours) over a recorded run, offline: device-side metrics
// from the reports the broker accepted, cloud-side metrics from what the
// broker saw, and the violation life cycle AWS documents. The shapes,
// validation rules and semantics follow the research note
// detect-audit.md (cited as "note §n"); docs/detect.md says what is known,
// what is inferred and what cannot be reproduced (ML Detect).
package detect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrInvalidProfile marks a definition file that does not parse or that
// ValidateSecurityProfileBehaviors would refuse; the CLI maps it to exit 2.
var ErrInvalidProfile = errors.New("invalid security profile")

// Profile is a security profile in the shape `aws iot
// describe-security-profile` prints (note §1.1). Fields ddhil does not use
// (alert targets, metrics export, dates) are kept raw so they parse.
type Profile struct {
	Name        string     `json:"securityProfileName"`
	Arn         string     `json:"securityProfileArn,omitempty"`
	Description string     `json:"securityProfileDescription,omitempty"`
	Behaviors   []Behavior `json:"behaviors"`
	Version     int64      `json:"version,omitempty"`

	// Path is the file the profile came from.
	Path string `json:"-"`
}

// Behavior is one behaviour (note §1.3).
type Behavior struct {
	Name            string           `json:"name"`
	Metric          string           `json:"metric"`
	MetricDimension *MetricDimension `json:"metricDimension,omitempty"`
	Criteria        *Criteria        `json:"criteria,omitempty"`
	SuppressAlerts  bool             `json:"suppressAlerts,omitempty"`
	ExportMetric    bool             `json:"exportMetric,omitempty"`
}

// MetricDimension scopes a cloud-side metric to a TOPIC_FILTER dimension;
// Operator is IN (the default) or NOT_IN (note §1.5).
type MetricDimension struct {
	DimensionName string `json:"dimensionName"`
	Operator      string `json:"operator,omitempty"`
}

// Criteria is BehaviorCriteria (note §1.4): it says what is normal.
type Criteria struct {
	ComparisonOperator           string                `json:"comparisonOperator,omitempty"`
	Value                        *MetricValue          `json:"value,omitempty"`
	DurationSeconds              *int64                `json:"durationSeconds,omitempty"`
	ConsecutiveDatapointsToAlarm *int64                `json:"consecutiveDatapointsToAlarm,omitempty"`
	ConsecutiveDatapointsToClear *int64                `json:"consecutiveDatapointsToClear,omitempty"`
	StatisticalThreshold         *StatisticalThreshold `json:"statisticalThreshold,omitempty"`
	MLDetectionConfig            *MLDetectionConfig    `json:"mlDetectionConfig,omitempty"`
}

// StatisticalThreshold names a percentile of the fleet ("p90").
type StatisticalThreshold struct {
	Statistic string `json:"statistic,omitempty"`
}

// MLDetectionConfig marks an ML Detect behaviour, which ddhil skips.
type MLDetectionConfig struct {
	ConfidenceLevel string `json:"confidenceLevel,omitempty"`
}

// MetricValue is AWS's MetricValue union; exactly one member is set. Nil
// and empty lists differ: an empty reported set is a conforming datapoint.
type MetricValue struct {
	Count   *int64    `json:"count,omitempty"`
	CIDRs   []string  `json:"cidrs,omitempty"`
	Ports   []int     `json:"ports,omitempty"`
	Number  *float64  `json:"number,omitempty"`
	Numbers []float64 `json:"numbers,omitempty"`
	Strings []string  `json:"strings,omitempty"`

	countErr string // a count that is not an integer (reported by validation)
}

// UnmarshalJSON accepts count as a number or a numeric string, as
// CloudFormation carries it (note §1.4).
func (v *MetricValue) UnmarshalJSON(b []byte) error {
	type plain MetricValue
	var aux struct {
		plain
		Count json.RawMessage `json:"count"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*v = MetricValue(aux.plain)
	v.Count = nil
	if len(aux.Count) > 0 && string(aux.Count) != "null" {
		text := strings.Trim(string(aux.Count), `"`)
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			v.countErr = fmt.Sprintf("value.count %s is not an integer", aux.Count)
		} else {
			v.Count = &n
		}
	}
	return nil
}

// MarshalJSON writes the members that are set, keeping empty lists (an
// empty reported port set is `{"ports":[]}`), and always a numeric count.
func (v MetricValue) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if v.Count != nil {
		m["count"] = *v.Count
	}
	if v.CIDRs != nil {
		m["cidrs"] = v.CIDRs
	}
	if v.Ports != nil {
		m["ports"] = v.Ports
	}
	if v.Number != nil {
		m["number"] = *v.Number
	}
	if v.Numbers != nil {
		m["numbers"] = v.Numbers
	}
	if v.Strings != nil {
		m["strings"] = v.Strings
	}
	return json.Marshal(m)
}

// String is the value for humans: "4096", "[23 80]", ...
func (v MetricValue) String() string {
	switch {
	case v.Count != nil:
		return strconv.FormatInt(*v.Count, 10)
	case v.Number != nil:
		return strconv.FormatFloat(*v.Number, 'g', -1, 64)
	case v.Ports != nil:
		return fmt.Sprint(v.Ports)
	case v.CIDRs != nil:
		return fmt.Sprint(v.CIDRs)
	case v.Numbers != nil:
		return fmt.Sprint(v.Numbers)
	case v.Strings != nil:
		return fmt.Sprint(v.Strings)
	}
	return "{}"
}

// CustomMetric is a custom metric definition as `aws iot
// describe-custom-metric` prints it (note §1.6).
type CustomMetric struct {
	Name        string `json:"metricName"`
	Arn         string `json:"metricArn,omitempty"`
	Type        string `json:"metricType"` // number | number-list | string-list | ip-address-list
	DisplayName string `json:"displayName,omitempty"`
	Path        string `json:"-"`
}

// Dimension is a TOPIC_FILTER dimension as `aws iot describe-dimension`
// prints it (note §1.5).
type Dimension struct {
	Name         string   `json:"name"`
	Arn          string   `json:"arn,omitempty"`
	Type         string   `json:"type"`
	StringValues []string `json:"stringValues"`
	Path         string   `json:"-"`
}

// Definitions is everything a set of files defined: profiles and the custom
// metrics and dimensions their behaviours refer to.
type Definitions struct {
	Profiles      []*Profile
	CustomMetrics map[string]CustomMetric
	Dimensions    map[string]Dimension
}

// Load reads definition files and validates them. Each file is a security
// profile (describe-security-profile output), a bare behaviours array (the
// create-security-profile --behaviors form; the profile is named after the
// file), a describe-custom-metric output or a describe-dimension output.
// Any problem is an error wrapping ErrInvalidProfile that names the file,
// the behaviour and the field.
func Load(paths ...string) (*Definitions, error) {
	d := &Definitions{CustomMetrics: map[string]CustomMetric{}, Dimensions: map[string]Dimension{}}
	var errs []error
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %v", ErrInvalidProfile, err))
			continue
		}
		if err := d.Add(p, data); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		errs = d.Validate()
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

// Add parses one definition file's content (path names it in errors).
func (d *Definitions) Add(path string, data []byte) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidProfile, path, fmt.Sprintf(format, args...))
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return fail("empty file")
	}
	if data[0] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(data, &raws); err != nil {
			return fail("not a JSON array of behaviors: %v", err)
		}
		name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		p := &Profile{Name: name, Path: path}
		if err := p.addBehaviors(raws); err != nil {
			return fail("%v", err)
		}
		d.Profiles = append(d.Profiles, p)
		return nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return fail("not a JSON object: %v", err)
	}
	_, hasBehaviors := top["behaviors"]
	_, hasProfileName := top["securityProfileName"]
	_, hasMetricName := top["metricName"]
	_, hasStringValues := top["stringValues"]
	switch {
	case hasBehaviors || hasProfileName:
		if err := unknownKeys(top, profileKeys); err != "" {
			return fail("%s", err)
		}
		p := &Profile{Path: path}
		for _, k := range []struct {
			key string
			dst any
		}{{"securityProfileName", &p.Name}, {"securityProfileArn", &p.Arn}, {"securityProfileDescription", &p.Description}, {"version", &p.Version}} {
			if raw, ok := top[k.key]; ok {
				if err := json.Unmarshal(raw, k.dst); err != nil {
					return fail("%s: %v", k.key, err)
				}
			}
		}
		var raws []json.RawMessage
		if raw, ok := top["behaviors"]; ok {
			if err := json.Unmarshal(raw, &raws); err != nil {
				return fail("behaviors: %v", err)
			}
		}
		if err := p.addBehaviors(raws); err != nil {
			return fail("%v", err)
		}
		d.Profiles = append(d.Profiles, p)
	case hasMetricName:
		var m CustomMetric
		if err := json.Unmarshal(data, &m); err != nil {
			return fail("custom metric: %v", err)
		}
		m.Path = path
		if prev, dup := d.CustomMetrics[m.Name]; dup {
			return fail("custom metric %q is also defined in %s", m.Name, prev.Path)
		}
		d.CustomMetrics[m.Name] = m
	case hasStringValues:
		var dim Dimension
		if err := json.Unmarshal(data, &dim); err != nil {
			return fail("dimension: %v", err)
		}
		dim.Path = path
		if prev, dup := d.Dimensions[dim.Name]; dup {
			return fail("dimension %q is also defined in %s", dim.Name, prev.Path)
		}
		d.Dimensions[dim.Name] = dim
	default:
		return fail("neither a security profile (securityProfileName, behaviors), a custom metric (metricName) nor a dimension (stringValues)")
	}
	return nil
}

// addBehaviors decodes behaviours one by one, so an error names the
// behaviour and the field.
func (p *Profile) addBehaviors(raws []json.RawMessage) error {
	for i, raw := range raws {
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(raw, &keys); err != nil {
			return fmt.Errorf("behaviors[%d]: not an object: %v", i, err)
		}
		var b Behavior
		err := json.Unmarshal(raw, &b)
		name := b.Name
		if name == "" {
			name = fmt.Sprintf("behaviors[%d]", i)
		}
		if err != nil {
			return fmt.Errorf("Behavior %s is malformed. %v", name, describeJSONError(err))
		}
		if e := unknownKeys(keys, behaviorKeys); e != "" {
			return fmt.Errorf("Behavior %s is malformed. %s", name, e)
		}
		if c, ok := keys["criteria"]; ok {
			var ck map[string]json.RawMessage
			if json.Unmarshal(c, &ck) == nil {
				if e := unknownKeys(ck, criteriaKeys); e != "" {
					return fmt.Errorf("Behavior %s is malformed. criteria: %s", name, e)
				}
				if v, ok := ck["value"]; ok {
					var vk map[string]json.RawMessage
					if json.Unmarshal(v, &vk) == nil {
						if e := unknownKeys(vk, valueKeys); e != "" {
							return fmt.Errorf("Behavior %s is malformed. criteria.value: %s", name, e)
						}
					}
				}
			}
		}
		p.Behaviors = append(p.Behaviors, b)
	}
	return nil
}

var (
	profileKeys = []string{"securityProfileName", "securityProfileArn", "securityProfileDescription", "behaviors",
		"alertTargets", "additionalMetricsToRetain", "additionalMetricsToRetainV2", "version", "creationDate",
		"lastModifiedDate", "metricsExportConfig", "tags"}
	behaviorKeys = []string{"name", "metric", "metricDimension", "criteria", "suppressAlerts", "exportMetric"}
	criteriaKeys = []string{"comparisonOperator", "value", "durationSeconds", "consecutiveDatapointsToAlarm",
		"consecutiveDatapointsToClear", "statisticalThreshold", "mlDetectionConfig"}
	valueKeys = []string{"count", "cidrs", "ports", "number", "numbers", "strings"}
)

// unknownKeys names the keys of m outside known (typos such as
// "comparisonOperater"), or "" when there are none.
func unknownKeys(m map[string]json.RawMessage, known []string) string {
	var bad []string
	for k := range m {
		ok := false
		for _, want := range known {
			ok = ok || k == want
		}
		if !ok {
			bad = append(bad, strconv.Quote(k))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	sort.Strings(bad)
	return "unknown field " + strings.Join(bad, ", ")
}

// describeJSONError names the field of a type error.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "value"
		}
		return fmt.Sprintf("%s should be %s, got %s", field, te.Type, te.Value)
	}
	return err.Error()
}
