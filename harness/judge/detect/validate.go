package detect

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// namePattern is the name rule of profiles, behaviours, dimensions and
// custom metrics (note §2.1).
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9:_-]{1,128}$`)

// cidrPattern is the service model's CIDR string rule (note §1.4).
var cidrPattern = regexp.MustCompile(`^[a-fA-F0-9:./]{2,43}$`)

// Validate checks every definition as ValidateSecurityProfileBehaviors and
// Create* would, and returns one error per problem, each wrapping
// ErrInvalidProfile and naming the file, the behaviour and the field.
func (d *Definitions) Validate() []error {
	var errs []error
	add := func(path, msg string) { errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidProfile, path, msg)) }
	for _, name := range sortedKeys(d.CustomMetrics) {
		m := d.CustomMetrics[name]
		switch {
		case !namePattern.MatchString(m.Name):
			add(m.Path, fmt.Sprintf("custom metric name %q should match [a-zA-Z0-9:_-]{1,128}", m.Name))
		case strings.HasPrefix(m.Name, "aws:"):
			add(m.Path, fmt.Sprintf("custom metric name %q must not start with aws:", m.Name))
		}
		if _, ok := customInfo[m.Type]; !ok {
			add(m.Path, fmt.Sprintf("custom metric %s: metricType %q should be one of number, number-list, string-list, ip-address-list", m.Name, m.Type))
		}
	}
	for _, name := range sortedKeys(d.Dimensions) {
		dim := d.Dimensions[name]
		if !namePattern.MatchString(dim.Name) {
			add(dim.Path, fmt.Sprintf("dimension name %q should match [a-zA-Z0-9:_-]{1,128}", dim.Name))
		}
		if dim.Type != "TOPIC_FILTER" {
			add(dim.Path, fmt.Sprintf("dimension %s: type %q should be TOPIC_FILTER", dim.Name, dim.Type))
		}
		if n := len(dim.StringValues); n < 1 || n > 100 {
			add(dim.Path, fmt.Sprintf("dimension %s: stringValues holds %d values, should be 1..100", dim.Name, n))
		}
		for i, v := range dim.StringValues {
			if len(v) < 1 || len(v) > 256 {
				add(dim.Path, fmt.Sprintf("dimension %s: stringValues[%d] should be 1..256 characters", dim.Name, i))
			}
		}
	}
	names := map[string]string{}
	for _, p := range d.Profiles {
		if prev, dup := names[p.Name]; dup {
			add(p.Path, fmt.Sprintf("security profile %q is also defined in %s", p.Name, prev))
		}
		names[p.Name] = p.Path
		for _, msg := range d.ValidateBehaviors(p) {
			add(p.Path, msg)
		}
	}
	return errs
}

// ValidateBehaviors returns the validationErrors messages
// ValidateSecurityProfileBehaviors would give for p, in AWS's one known
// form "Behavior <name> is malformed. <clause>" (note §2.2, error text).
func (d *Definitions) ValidateBehaviors(p *Profile) []string {
	var out []string
	if !namePattern.MatchString(p.Name) {
		out = append(out, fmt.Sprintf("securityProfileName %q should match [a-zA-Z0-9:_-]{1,128}", p.Name))
	}
	if len(p.Description) > 1000 || strings.IndexFunc(p.Description, func(r rune) bool { return !unicode.IsGraphic(r) }) >= 0 {
		out = append(out, "securityProfileDescription should be at most 1000 printable characters")
	}
	if len(p.Behaviors) > 100 {
		out = append(out, fmt.Sprintf("behaviors holds %d behaviors, at most 100 are allowed", len(p.Behaviors)))
	}
	seen := map[string]bool{}
	for i, b := range p.Behaviors {
		name := b.Name
		if name == "" {
			name = fmt.Sprintf("behaviors[%d]", i)
		}
		bad := func(format string, args ...any) {
			out = append(out, fmt.Sprintf("Behavior %s is malformed. ", name)+fmt.Sprintf(format, args...))
		}
		if !namePattern.MatchString(b.Name) {
			bad("name %q should match [a-zA-Z0-9:_-]{1,128}", b.Name)
		}
		if seen[b.Name] {
			bad("name is used by another behavior of this profile")
		}
		seen[b.Name] = true
		d.validateBehavior(b, bad)
	}
	return out
}

func (d *Definitions) validateBehavior(b Behavior, bad func(string, ...any)) {
	m, known := d.lookup(b.Metric)
	if !known {
		if b.Metric == "" {
			bad("metric is required")
		} else if strings.HasPrefix(b.Metric, "aws:") {
			bad("metric %s is not a Device Defender metric", b.Metric)
		} else {
			bad("metric %s is neither an aws: metric nor a defined custom metric (pass its describe-custom-metric JSON)", b.Metric)
		}
		return
	}
	if dim := b.MetricDimension; dim != nil {
		switch {
		case !strings.HasPrefix(b.Metric, "aws:"):
			bad("metricDimension is not allowed with custom metric %s", b.Metric)
		case !m.dimension:
			bad("metricDimension is not allowed with metric %s (only message-byte-size, num-messages-sent, num-messages-received, num-authorization-failures, source-ip-address)", b.Metric)
		}
		if dim.Operator != "" && dim.Operator != "IN" && dim.Operator != "NOT_IN" {
			bad("metricDimension.operator %q should be IN or NOT_IN", dim.Operator)
		}
		if dim.DimensionName == "" {
			bad("metricDimension.dimensionName is required")
		} else if _, ok := d.Dimensions[dim.DimensionName]; !ok {
			bad("metricDimension.dimensionName %s names no defined dimension (pass its describe-dimension JSON)", dim.DimensionName)
		}
	}
	c := b.Criteria
	if c == nil {
		bad("criteria is required")
		return
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"consecutiveDatapointsToAlarm", c.ConsecutiveDatapointsToAlarm}, {"consecutiveDatapointsToClear", c.ConsecutiveDatapointsToClear}} {
		if f.v != nil && (*f.v < 1 || *f.v > 10) {
			bad("%s %d should be in range[1,10]", f.name, *f.v)
		}
	}
	kinds := 0
	for _, set := range []bool{c.Value != nil, c.StatisticalThreshold != nil, c.MLDetectionConfig != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		bad("criteria should hold exactly one of value, statisticalThreshold and mlDetectionConfig, got %d", kinds)
		return
	}
	if c.MLDetectionConfig != nil {
		if !m.ml {
			bad("metric %s cannot be used with mlDetectionConfig", b.Metric)
		}
		if l := c.MLDetectionConfig.ConfidenceLevel; l != "LOW" && l != "MEDIUM" && l != "HIGH" {
			bad("mlDetectionConfig.confidenceLevel %q should be LOW, MEDIUM or HIGH", l)
		}
		if c.ComparisonOperator != "" {
			bad("comparisonOperator is not allowed with mlDetectionConfig")
		}
		// AWS's ML examples set no duration: only a given one is checked.
		if c.DurationSeconds != nil {
			d.validateDuration(b.Metric, m, c, bad)
		}
		return
	}
	if c.ComparisonOperator == "" {
		bad("comparisonOperator is required")
	} else if !slices.Contains(m.operators(), c.ComparisonOperator) {
		bad("comparisonOperator %s cannot be used with metric %s (allowed: %s)", c.ComparisonOperator, b.Metric, strings.Join(m.operators(), ", "))
	}
	d.validateDuration(b.Metric, m, c, bad)
	if st := c.StatisticalThreshold; st != nil {
		if _, ok := statistics[st.Statistic]; !ok {
			bad("statisticalThreshold.statistic %q should be one of p0, p0.1, p0.01, p1, p10, p50, p90, p99, p99.9, p99.99, p100", st.Statistic)
		}
		if !m.numeric() {
			bad("statisticalThreshold cannot be used with list metric %s", b.Metric)
		} else if c.DurationSeconds == nil {
			bad("statisticalThreshold requires criteria's duration field to be set")
		}
		return
	}
	validateValue(b.Metric, m, c.Value, bad)
}

func (d *Definitions) validateDuration(metric string, m metricInfo, c *Criteria, bad func(string, ...any)) {
	switch {
	case c.DurationSeconds == nil && m.duration == durRequired:
		bad("metric %s requires criteria's duration field to be set (one of 300, 600, 900, 1800, 3600)", metric)
	case c.DurationSeconds != nil && m.duration == durForbidden:
		bad("durationSeconds cannot be used with list-based metric %s", metric)
	case c.DurationSeconds != nil && !slices.Contains(allowedDurations, *c.DurationSeconds):
		bad("durationSeconds %d should be one of 300, 600, 900, 1800, 3600", *c.DurationSeconds)
	}
}

// validateValue checks that the value member matches the metric (note §2.2
// rule 2) and its element rules (note §2.1).
func validateValue(metric string, m metricInfo, v *MetricValue, bad func(string, ...any)) {
	if v.countErr != "" {
		bad("%s", v.countErr)
		return
	}
	members := map[valueKind]bool{kindCount: v.Count != nil, kindNumber: v.Number != nil, kindPorts: v.Ports != nil,
		kindCIDRs: v.CIDRs != nil, kindNumbers: v.Numbers != nil, kindStrings: v.Strings != nil}
	var set []string
	for k, ok := range members {
		if ok {
			set = append(set, string(k))
		}
	}
	slices.Sort(set)
	if len(set) != 1 || !members[m.kind] {
		bad("value should hold exactly value.%s for metric %s, got {%s}", m.kind, metric, strings.Join(set, ", "))
		return
	}
	switch m.kind {
	case kindCount:
		if *v.Count < 0 {
			bad("value.count %d should be >= 0", *v.Count)
		}
	case kindPorts:
		for i, p := range v.Ports {
			if p < 0 || p > 65535 {
				bad("value.ports[%d] %d should be in range[0,65535]", i, p)
			}
		}
	case kindCIDRs:
		for i, s := range v.CIDRs {
			if !cidrPattern.MatchString(s) {
				bad("value.cidrs[%d] %q should be 2..43 characters of [a-fA-F0-9:./]", i, s)
			} else if _, err := parseCIDR(s); err != nil {
				bad("value.cidrs[%d] %q is not a CIDR: %v", i, s, err)
			}
		}
	}
}

// parseCIDR parses "10.0.0.0/8"; a bare address is a single-host prefix.
func parseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
