package detect

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each rule of note §2 refuses a behaviour with a message naming the
// behaviour and the field.
func TestValidationRules(t *testing.T) {
	cm := `{"metricName":"battery","metricType":"number"}`
	lst := `{"metricName":"modes","metricType":"string-list"}`
	dim := `{"name":"Tele","type":"TOPIC_FILTER","stringValues":["tele/#"]}`
	cases := []struct {
		name, behavior, want string
	}{
		{"toAlarm range (verbatim AWS form, note §2.2)", `{"name":"B","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than","value":{"count":1},"durationSeconds":300,"consecutiveDatapointsToAlarm":11}}`,
			"Behavior B is malformed. consecutiveDatapointsToAlarm 11 should be in range[1,10]"},
		{"toClear range", `{"name":"B","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than","value":{"count":1},"durationSeconds":300,"consecutiveDatapointsToClear":0}}`,
			"Behavior B is malformed. consecutiveDatapointsToClear 0 should be in range[1,10]"},
		{"operator family (rule 1)", `{"name":"B","metric":"aws:listening-tcp-ports","criteria":{"comparisonOperator":"less-than","value":{"count":1}}}`,
			"Behavior B is malformed. comparisonOperator less-than cannot be used with metric aws:listening-tcp-ports"},
		{"value member (rule 2)", `{"name":"B","metric":"aws:listening-tcp-ports","criteria":{"comparisonOperator":"in-port-set","value":{"cidrs":["10.0.0.0/8"]}}}`,
			"Behavior B is malformed. value should hold exactly value.ports"},
		{"custom number takes number, not count (rule 2)", `{"name":"B","metric":"battery","criteria":{"comparisonOperator":"less-than","value":{"count":1}}}`,
			"value should hold exactly value.number for metric battery"},
		{"two threshold kinds (rule 3)", `{"name":"B","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than","value":{"count":1},"statisticalThreshold":{"statistic":"p90"},"durationSeconds":300}}`,
			"exactly one of value, statisticalThreshold and mlDetectionConfig, got 2"},
		{"duration enumeration (rule 4)", `{"name":"B","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than","value":{"count":1},"durationSeconds":120}}`,
			"durationSeconds 120 should be one of 300, 600, 900, 1800, 3600"},
		{"duration mandatory (rule 4, issue I1)", `{"name":"B","metric":"aws:num-messages-sent","criteria":{"comparisonOperator":"less-than","value":{"count":1}}}`,
			"requires criteria's duration field to be set"},
		{"duration forbidden on lists (rule 5)", `{"name":"B","metric":"aws:destination-ip-addresses","criteria":{"comparisonOperator":"in-cidr-set","value":{"cidrs":["10.0.0.0/8"]},"durationSeconds":300}}`,
			"durationSeconds cannot be used with list-based metric"},
		{"statistical needs duration (rule 6)", `{"name":"B","metric":"aws:message-byte-size","criteria":{"comparisonOperator":"less-than","statisticalThreshold":{"statistic":"p90"}}}`,
			"statisticalThreshold requires criteria's duration field to be set"},
		{"statistic pattern (note §1.4: no Average)", `{"name":"B","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than","statisticalThreshold":{"statistic":"Average"},"durationSeconds":300}}`,
			`statisticalThreshold.statistic "Average"`},
		{"statistical on a list metric (rule 6)", `{"name":"B","metric":"modes","criteria":{"comparisonOperator":"in-set","statisticalThreshold":{"statistic":"p50"}}}`,
			"statisticalThreshold cannot be used with list metric modes"},
		{"ML metric (rule 7)", `{"name":"B","metric":"aws:listening-tcp-ports","criteria":{"mlDetectionConfig":{"confidenceLevel":"LOW"}}}`,
			"metric aws:listening-tcp-ports cannot be used with mlDetectionConfig"},
		{"ML confidence", `{"name":"B","metric":"aws:all-bytes-out","criteria":{"mlDetectionConfig":{"confidenceLevel":"SURE"}}}`,
			`confidenceLevel "SURE" should be LOW, MEDIUM or HIGH`},
		{"dimension on a custom metric (rule 8)", `{"name":"B","metric":"battery","metricDimension":{"dimensionName":"Tele"},"criteria":{"comparisonOperator":"less-than","value":{"number":1}}}`,
			"metricDimension is not allowed with custom metric battery"},
		{"dimension on a device metric (rule 8)", `{"name":"B","metric":"aws:all-bytes-out","metricDimension":{"dimensionName":"Tele"},"criteria":{"comparisonOperator":"less-than","value":{"count":1},"durationSeconds":300}}`,
			"metricDimension is not allowed with metric aws:all-bytes-out"},
		{"dimension must exist (rule 8)", `{"name":"B","metric":"aws:num-messages-sent","metricDimension":{"dimensionName":"Nope"},"criteria":{"comparisonOperator":"less-than","value":{"count":1},"durationSeconds":300}}`,
			"metricDimension.dimensionName Nope names no defined dimension"},
		{"dimension operator", `{"name":"B","metric":"aws:num-messages-sent","metricDimension":{"dimensionName":"Tele","operator":"OUT"},"criteria":{"comparisonOperator":"less-than","value":{"count":1},"durationSeconds":300}}`,
			`metricDimension.operator "OUT" should be IN or NOT_IN`},
		{"unknown aws metric (rule 9)", `{"name":"B","metric":"aws:all-bytes-sideways","criteria":{"comparisonOperator":"less-than","value":{"count":1}}}`,
			"metric aws:all-bytes-sideways is not a Device Defender metric"},
		{"undefined custom metric (rule 9)", `{"name":"B","metric":"heap","criteria":{"comparisonOperator":"less-than","value":{"number":1}}}`,
			"metric heap is neither an aws: metric nor a defined custom metric"},
		{"criteria missing (note §1.3)", `{"name":"B","metric":"aws:all-bytes-out"}`, "Behavior B is malformed. criteria is required"},
		{"name pattern", `{"name":"bad name","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than","value":{"count":1},"durationSeconds":300}}`,
			`name "bad name" should match`},
		{"negative count", `{"name":"B","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than","value":{"count":-1},"durationSeconds":300}}`,
			"value.count -1 should be >= 0"},
		{"count not an integer", `{"name":"B","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than","value":{"count":"many"},"durationSeconds":300}}`,
			`value.count "many" is not an integer`},
		{"port range", `{"name":"B","metric":"aws:listening-udp-ports","criteria":{"comparisonOperator":"in-port-set","value":{"ports":[70000]}}}`,
			"value.ports[0] 70000 should be in range[0,65535]"},
		{"cidr characters", `{"name":"B","metric":"aws:source-ip-address","criteria":{"comparisonOperator":"in-cidr-set","value":{"cidrs":["ten/8"]}}}`,
			`value.cidrs[0] "ten/8" should be 2..43 characters`},
		{"cidr shape", `{"name":"B","metric":"aws:source-ip-address","criteria":{"comparisonOperator":"in-cidr-set","value":{"cidrs":["10.0.0.0/33"]}}}`,
			`value.cidrs[0] "10.0.0.0/33" is not a CIDR`},
		{"typo in a field name", `{"name":"B","metric":"aws:all-bytes-out","criteria":{"comparisonOperater":"less-than","value":{"count":1},"durationSeconds":300}}`,
			`Behavior B is malformed. criteria: unknown field "comparisonOperater"`},
		{"wrong JSON type", `{"name":"B","metric":"aws:all-bytes-out","criteria":{"comparisonOperator":"less-than","value":{"count":1},"durationSeconds":"300"}}`,
			"Behavior B is malformed. criteria.durationSeconds should be int64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errs := tryDefs(cm, lst, dim, profile("p", c.behavior))
			if len(errs) == 0 {
				t.Fatalf("accepted; want %q", c.want)
			}
			all := errors.Join(errs...)
			if !errors.Is(all, ErrInvalidProfile) {
				t.Errorf("error does not wrap ErrInvalidProfile: %v", all)
			}
			if !strings.Contains(all.Error(), c.want) || !strings.Contains(all.Error(), "f3.json") {
				t.Errorf("error %q, want it to name the file and say %q", all, c.want)
			}
		})
	}
}

// Duplicate behaviour names and the 100-behaviour cap (note §2.1, §2.2
// rule 10).
func TestValidationProfileRules(t *testing.T) {
	b := `{"name":"B","metric":"aws:listening-tcp-ports","criteria":{"comparisonOperator":"in-port-set","value":{"ports":[1]}}}`
	if _, errs := tryDefs(profile("p", b, b)); len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), "Behavior B is malformed. name is used by another behavior") {
		t.Errorf("duplicate names: %v", errs)
	}
	many := make([]string, 101)
	for i := range many {
		many[i] = strings.Replace(b, `"B"`, `"B`+strings.Repeat("x", i)+`"`, 1)
	}
	if _, errs := tryDefs(profile("p", many...)); len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), "at most 100") {
		t.Errorf("101 behaviours: %v", errs)
	}
}

// Load reads AWS's own files: a describe-security-profile document, a bare
// behaviours array (named after the file), describe-custom-metric and
// describe-dimension output; a bad file is ErrInvalidProfile.
func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := write("full.json", `{
  "securityProfileName": "ddhil-rules",
  "securityProfileArn": "arn:aws:iot:eu-west-1:123456789012:securityprofile/ddhil-rules",
  "securityProfileDescription": "bytes out and listening ports",
  "behaviors": [
    { "name": "BytesOutCap", "metric": "aws:all-bytes-out",
      "criteria": { "comparisonOperator": "less-than-equals", "value": { "count": "4096" },
                    "durationSeconds": 300, "consecutiveDatapointsToAlarm": 2,
                    "consecutiveDatapointsToClear": 2 },
      "suppressAlerts": false }
  ],
  "alertTargets": { "SNS": { "alertTargetArn": "arn:aws:sns:eu-west-1:123456789012:dd",
                             "roleArn": "arn:aws:iam::123456789012:role/dd-sns" } },
  "additionalMetricsToRetainV2": [ { "metric": "aws:num-messages-sent" } ],
  "version": 1,
  "creationDate": 1767225600.0,
  "lastModifiedDate": 1767225600.0
}`)
	bare := write("heap-watch.json", `[{"name":"Heap","metric":"free_heap","criteria":{"comparisonOperator":"greater-than","value":{"number":1024}}}]`)
	metric := write("free_heap.json", `{"metricName":"free_heap","metricArn":"arn:aws:iot:eu-west-1:123456789012:custommetric/free_heap","metricType":"number","displayName":"free heap","creationDate":1767225600.0,"lastModifiedDate":1767225600.0}`)
	d, err := Load(full, bare, metric)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Profiles) != 2 || d.Profiles[0].Name != "ddhil-rules" || d.Profiles[1].Name != "heap-watch" {
		t.Fatalf("profiles %+v", d.Profiles)
	}
	if c := d.Profiles[0].Behaviors[0].Criteria.Value.Count; c == nil || *c != 4096 {
		t.Errorf("count given as a string: %v", c)
	}
	// Without the custom metric's definition the bare array is invalid.
	if _, err := Load(full, bare); !errors.Is(err, ErrInvalidProfile) || !strings.Contains(err.Error(), "Behavior Heap is malformed") {
		t.Errorf("missing custom metric: %v", err)
	}
	for name, text := range map[string]string{"empty.json": "", "junk.json": "{", "other.json": `{"foo":1}`} {
		if _, err := Load(write(name, text)); !errors.Is(err, ErrInvalidProfile) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); !errors.Is(err, ErrInvalidProfile) {
		t.Errorf("missing file: %v", err)
	}
}

// The fixtures in fixtures/security-profiles are valid (and the invalid
// one is not).
func TestFixturesValid(t *testing.T) {
	files, _ := filepath.Glob("../../../fixtures/security-profiles/*.json")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	var defsFiles, invalid []string
	for _, f := range files {
		if strings.Contains(filepath.Base(f), "invalid") {
			invalid = append(invalid, f)
		} else {
			defsFiles = append(defsFiles, f)
		}
	}
	if _, err := Load(defsFiles...); err != nil {
		t.Errorf("fixtures: %v", err)
	}
	for _, f := range invalid {
		if _, err := Load(f); !errors.Is(err, ErrInvalidProfile) {
			t.Errorf("%s loads: %v", f, err)
		}
	}
}
