package defender_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

// requiredKeys are the keys a null cannot stand in for (protocol doc 2.1
// "Req Y", plus port: see docs/protocol-validation.md).
var requiredKeys = map[string]bool{"header": true, "report_id": true, "version": true, "remote_addr": true, "port": true}

// genericReport is typicalReport as a generic tree with long keys, numbers
// as uint64 or float64 so it encodes to CBOR as it does to JSON.
func genericReport(t *testing.T) map[string]any {
	b, err := defender.EncodeReport(defender.JSON, typicalReport(), false)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	return fromNumbers(v).(map[string]any)
}

func fromNumbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = fromNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = fromNumbers(e)
		}
	case json.Number:
		if !strings.ContainsAny(string(v), ".eE-") {
			var u uint64
			if err := json.Unmarshal([]byte(v), &u); err == nil {
				return u
			}
		}
		f, _ := v.Float64()
		return f
	}
	return v
}

// memberPaths lists the path of every object member of the schema (custom
// metrics' names and values aside: they are not optional fields).
func memberPaths(v any, path []string, out *[][]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			p := append(append([]string{}, path...), k)
			*out = append(*out, p)
			if k != "custom_metrics" {
				memberPaths(e, p, out)
			}
		}
	case []any:
		for i, e := range v {
			memberPaths(e, append(append([]string{}, path...), jsonIndex(i)), out)
		}
	}
}

func jsonIndex(i int) string { b, _ := json.Marshal(i); return string(b) }

// edit copies tree and replaces (or, with remove, deletes) the member at path.
func edit(tree any, path []string, value any, remove bool) any {
	switch v := tree.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if k != path[0] {
				out[k] = e
				continue
			}
			switch {
			case len(path) > 1:
				out[k] = edit(e, path[1:], value, remove)
			case !remove:
				out[k] = value
			}
		}
		return out
	case []any:
		out := append([]any{}, v...)
		for i := range out {
			if jsonIndex(i) == path[0] {
				out[i] = edit(out[i], path[1:], value, remove)
			}
		}
		return out
	}
	return tree
}

// Every optional key of the schema may be sent as JSON null, CBOR null or
// CBOR undefined: the report validates exactly as if the key were absent,
// with one null-optional finding at the key. A required key that is null is
// refused, naming the key.
func TestNullOptionalKeysReadAsAbsent(t *testing.T) {
	full := genericReport(t)
	var paths [][]string
	memberPaths(full, nil, &paths)
	optional, required := 0, 0
	for _, path := range paths {
		key := path[len(path)-1]
		pointer := "/" + strings.Join(path, "/")
		for _, tc := range []struct {
			format defender.Format
			null   any
			encode func(any) []byte
		}{
			{defender.JSON, nil, func(v any) []byte { b, err := json.Marshal(v); require.NoError(t, err); return b }},
			{defender.CBOR, nil, mustCBOR},
			{defender.CBOR, raw{0xf7}, mustCBOR}, // undefined
		} {
			withNull := defender.Validate(tc.format, tc.encode(edit(full, path, tc.null, false)), defender.Options{})
			if requiredKeys[key] {
				require.NotNil(t, withNull.Problem, "%s %s: a required key cannot be null", tc.format, pointer)
				assert.Equal(t, pointer, withNull.Problem.Path)
				assert.Contains(t, withNull.Problem.Reason, `required "`+key+`"`)
				assert.Equal(t, defender.CodeInvalidPayload, withNull.Problem.Code)
				required++
				continue
			}
			without := defender.Validate(tc.format, tc.encode(edit(full, path, nil, true)), defender.Options{})
			require.Nil(t, without.Problem, "%s without %s", tc.format, pointer)
			require.Nil(t, withNull.Problem, "%s %s null: %+v", tc.format, pointer, withNull.Problem)
			assert.Equal(t, without.Report, withNull.Report, "%s %s: null reads as absent", tc.format, pointer)
			require.Len(t, withNull.Lint, len(without.Lint)+1, "%s %s", tc.format, pointer)
			f := withNull.Lint[0]
			assert.Equal(t, defender.LintNullOptional, f.Rule)
			assert.Equal(t, pointer, f.Path)
			assert.Contains(t, f.Message, `optional "`+key+`"`)
			optional++
		}
	}
	// Optional members of the typical report: metrics, custom_metrics, the
	// four metrics, established_connections, connections and total, local_port
	// and local_interface of 2 connections, ports and total twice, the
	// interface of 7 ports, 4 counters; each in three spellings of nothing.
	assert.Equal(t, 3*(2+4+1+2+2*2+2*2+7+4), optional, "optional members tried")
	assert.Equal(t, 3*(1+2+2+7), required, "header, report_id, version, 2 remote_addr, 7 port")
}

// A key sent as null and again as a value in the other spelling is still
// one member sent twice.
func TestNullDoesNotHideARepeatedKey(t *testing.T) {
	body := `"metrics":{"tcp_connections":{"established_connections":{"connections":[{"remote_addr":"10.0.0.1:80","local_interface":null,"li":"eth0"}]}}}`
	res := defender.Validate(defender.JSON, []byte(report(body)), defender.Options{})
	require.NotNil(t, res.Problem)
	assert.Equal(t, "/metrics/tcp_connections/established_connections/connections/0/li", res.Problem.Path)
	assert.Contains(t, res.Problem.Reason, `"li" repeats "local_interface"`)
}
