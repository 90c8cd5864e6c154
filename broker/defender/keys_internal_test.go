package defender

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The key table is consistent: every key is spelt, lives in some object's
// schema, and no spelling names two keys.
func TestKeyTable(t *testing.T) {
	schemas := [][]keyID{rootKeys, headerKeys, metricsKeys, tcpKeys, establishedKeys,
		connectionKeys, portsKeys, portKeys, netStatsKeys, customKindKeys}
	used := map[keyID]bool{}
	for _, s := range schemas {
		assert.LessOrEqual(t, len(s), maxObjectKeys)
		for _, k := range s {
			used[k] = true
		}
	}
	spellings := map[string]keyID{}
	for k := keyID(0); k < numKeys; k++ {
		n := keyNames[k]
		require.NotEmpty(t, n.long, "key %d has no name", k)
		assert.True(t, used[k], "%s is in no object's schema", n.long)
		for _, s := range []string{n.long, n.short} {
			if s == "" {
				continue
			}
			if other, dup := spellings[s]; dup {
				t.Errorf("%q spells both %s and %s", s, other.long(), n.long)
			}
			spellings[s] = k
		}
	}
}

// fullReport sets every field of the model, each custom-metric kind once.
func fullReport() *Report {
	u := func(v uint64) *uint64 { return &v }
	return &Report{
		Header: Header{ReportID: 1700000000123, Version: "1.0"},
		Metrics: &Metrics{
			TCPConnections: &TCPConnections{Established: &EstablishedConnections{
				Connections: []Connection{{RemoteAddr: "34.212.105.174:8883", LocalPort: u(39216), LocalInterface: "eth0"}},
				Total:       u(3),
			}},
			ListeningTCPPorts: &Ports{Ports: []Port{{Port: 22, Interface: "eth0"}}, Total: u(1)},
			ListeningUDPPorts: &Ports{Ports: []Port{{Port: 53, Interface: "lo"}}, Total: u(2)},
			NetworkStats:      &NetworkStats{BytesIn: u(29358693495), BytesOut: u(MaxInteger), PacketsIn: u(1872689), PacketsOut: u(940337)},
		},
		CustomMetrics: map[string]CustomMetric{
			"cpu_usage":    {Kind: "number", Number: -37.25},
			"task_numbers": {Kind: "number_list", NumberList: []float64{1, 2.5}},
			"interfaces":   {Kind: "string_list", StringList: []string{"eth0", "lo"}},
			"addresses":    {Kind: "ip_list", IPList: []string{"172.31.5.9", "fe80::1"}},
		},
	}
}

// modelFields lists every leaf field of t by path (Report.Metrics.NetworkStats.BytesIn).
func modelFields(t reflect.Type, path string, out map[string]bool) {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		if t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Struct {
			out[path] = true
			return
		}
		modelFields(t.Elem(), path, out)
	case reflect.Struct:
		for i := range t.NumField() {
			modelFields(t.Field(i).Type, path+"."+t.Field(i).Name, out)
		}
	default:
		out[path] = true
	}
}

// setFields lists the leaf fields of v that hold a non-zero value.
func setFields(v reflect.Value, path string, out map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			setFields(v.Elem(), path, out)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.Struct {
			if v.Len() > 0 {
				out[path] = true
			}
			return
		}
		for i := range v.Len() {
			setFields(v.Index(i), path, out)
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			setFields(it.Value(), path, out)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			setFields(v.Field(i), path+"."+v.Type().Field(i).Name, out)
		}
	default:
		if !v.IsZero() {
			out[path] = true
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// keysOf collects every key of an encoded tree, custom metric names aside.
func keysOf(v any, out map[string]bool, underCustom bool) {
	switch v := v.(type) {
	case tree:
		for k, val := range v {
			if !underCustom {
				out[k] = true
			}
			keysOf(val, out, !underCustom && (k == kCustomMetrics.long() || k == kCustomMetrics.name(true)))
		}
	case []any:
		for _, e := range v {
			keysOf(e, out, false)
		}
	}
}

// Every model field goes through the encoder and back through the
// validator unchanged, in both formats and both spellings, and every key
// of the table is written. Dropping a key from the table, from the encoder
// or from the validator fails here; so does a new model field that the
// sample does not set.
func TestEveryModelFieldRoundTrips(t *testing.T) {
	r := fullReport()
	all, set := map[string]bool{}, map[string]bool{}
	modelFields(reflect.TypeOf(*r), "Report", all)
	setFields(reflect.ValueOf(*r), "Report", set)
	delete(all, "Report.KeyStyle") // derived by the validator, never encoded
	require.Equal(t, sortedKeys(all), sortedKeys(set), "fullReport must set every model field")

	for _, short := range []bool{false, true} {
		style := map[bool]string{false: "long", true: "short"}[short]
		tr, err := reportTree(r, short)
		require.NoError(t, err)
		written := map[string]bool{}
		keysOf(tr, written, false)
		want := map[string]bool{}
		for k := keyID(0); k < numKeys; k++ {
			want[k.name(short)] = true
		}
		assert.Equal(t, sortedKeys(want), sortedKeys(written), "%s: every key of the table is written, and no other", style)

		for _, f := range []Format{JSON, CBOR} {
			b, err := EncodeReport(f, r, short)
			require.NoError(t, err)
			res := Validate(f, b, Options{})
			require.Nil(t, res.Problem, "%s %s: %s", f, style, b)
			assert.Empty(t, res.Lint, "%s %s", f, style)
			w := *r
			w.KeyStyle = style
			assert.Equal(t, &w, res.Report, "%s %s", f, style)
			if f == JSON {
				for k := range want {
					assert.True(t, strings.Contains(string(b), `"`+k+`":`), "%s: %q not in %s", style, k, b)
				}
			}
		}
	}
}
