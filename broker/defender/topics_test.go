package defender_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker/defender"
)

// The vectors below are the embedded SDK's test/unit-test/defender_utest.c
// (protocol doc 1.4), translated: NULL pointers have no Go equivalent, bad
// parameters become errors, buffer sizes become length checks.

const testThing = "TestThing"

var sdkTopics = []struct {
	kind  defender.TopicKind
	topic string
}{
	{defender.JSONPublish, "$aws/things/TestThing/defender/metrics/json"},
	{defender.JSONAccepted, "$aws/things/TestThing/defender/metrics/json/accepted"},
	{defender.JSONRejected, "$aws/things/TestThing/defender/metrics/json/rejected"},
	{defender.CBORPublish, "$aws/things/TestThing/defender/metrics/cbor"},
	{defender.CBORAccepted, "$aws/things/TestThing/defender/metrics/cbor/accepted"},
	{defender.CBORRejected, "$aws/things/TestThing/defender/metrics/cbor/rejected"},
}

// MacrosString / MacrosLength and GetTopic_*HappyPath (x6).
func TestTopicHappyPath(t *testing.T) {
	wantLen := map[defender.TopicKind]int{0: 43, 1: 52, 2: 52, 3: 43, 4: 52, 5: 52}
	for _, tc := range sdkTopics {
		t.Run(tc.kind.String(), func(t *testing.T) {
			got, err := defender.Topic(testThing, tc.kind)
			require.NoError(t, err)
			assert.Equal(t, tc.topic, got)
			assert.Len(t, got, wantLen[tc.kind])
		})
	}
}

// GetTopic_BadParams (and the lengths the SDK's buffer arithmetic implies).
func TestTopicBadParams(t *testing.T) {
	for _, tc := range []struct {
		name  string
		thing string
		kind  defender.TopicKind
		want  string
	}{
		{"name length 0 (NULL name)", "", defender.JSONPublish, "empty"},
		{"name length 129", strings.Repeat("a", 129), defender.JSONPublish, "129 bytes"},
		{"api -1 (DefenderInvalidTopic)", testThing, defender.InvalidTopic, "kind -1"},
		{"api 6 (DefenderMaxTopic)", testThing, defender.TopicKind(6), "kind 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := defender.Topic(tc.thing, tc.kind)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, got, "nothing is written")
		})
	}
}

// Publish topics are N+34 bytes, response topics N+43; the longest
// (DEFENDER_API_MAX_LENGTH(128)) is 171. GetTopic_BufferTooSmall becomes:
// a 5-byte buffer could never hold any topic.
func TestTopicLengths(t *testing.T) {
	for _, n := range []int{1, 9, 128} {
		name := strings.Repeat("x", n)
		for _, tc := range sdkTopics {
			got, err := defender.Topic(name, tc.kind)
			require.NoError(t, err)
			want := n + 34
			if tc.kind.IsResponse() {
				want = n + 43
			}
			assert.Len(t, got, want, "n=%d kind=%v", n, tc.kind)
			assert.Greater(t, len(got), 5)
		}
	}
	longest, err := defender.Topic(strings.Repeat("x", 128), defender.CBORAccepted)
	require.NoError(t, err)
	assert.Len(t, longest, 171)
}

// MatchTopic_* vectors.
func TestMatchTopic(t *testing.T) {
	const base = "$aws/things/TestThing/defender/metrics"
	jobs := "$aws/things/jobs/TestThing/defender/metrics/json"
	cases := []struct {
		name  string
		topic string
		kind  defender.TopicKind
		thing string
	}{
		{"IncompletePrefix", "$aws/things", defender.InvalidTopic, ""},
		{"InvalidPrefix jobs first", "$aws/jobs/things/TestThing/defender/metrics/json", defender.InvalidTopic, ""},
		{"InvalidPrefix name jobs, length 41", jobs[:41], defender.InvalidTopic, ""},
		{"InvalidPrefix name jobs, full length", jobs, defender.InvalidTopic, ""},
		{"MissingThingName", "$aws/things/", defender.InvalidTopic, ""},
		{"IncompleteBridge no slash", "$aws/things/TestThing", defender.InvalidTopic, ""},
		{"IncompleteBridge slash", "$aws/things/TestThing/", defender.InvalidTopic, ""},
		{"IncompleteBridge defender", "$aws/things/TestThing/defender", defender.InvalidTopic, ""},
		{"InvalidBridge shadow", "$aws/things/TestThing/shadow/metrics/json", defender.InvalidTopic, ""},
		{"InvalidBridge defender twice", "$aws/things/TestThing/defender/defender/metrics/json", defender.InvalidTopic, ""},
		{"IncompleteFormat", base, defender.InvalidTopic, ""},
		{"IncompleteFormat slash", base + "/", defender.InvalidTopic, ""},
		{"InvalidFormat xml", base + "/xml", defender.InvalidTopic, ""},
		{"InvalidSuffix delta", base + "/json/delta", defender.InvalidTopic, ""},
		{"ExtraData after json", base + "/json/gibberish", defender.InvalidTopic, ""},
		{"ExtraData after accepted", base + "/json/accepted/gibberish", defender.InvalidTopic, ""},
		{"upper-case format", base + "/JSON", defender.InvalidTopic, ""},
		{"upper-case prefix", "$AWS/things/TestThing/defender/metrics/json", defender.InvalidTopic, ""},
		{"empty", "", defender.InvalidTopic, ""},
		// No name check while matching, as the SDK: a subscription's "+" and
		// an over-long name both match.
		{"plus as name", "$aws/things/+/defender/metrics/cbor/accepted", defender.CBORAccepted, "+"},
		{"129-byte name", "$aws/things/" + strings.Repeat("n", 129) + "/defender/metrics/json", defender.JSONPublish, strings.Repeat("n", 129)},
	}
	for _, tc := range sdkTopics {
		cases = append(cases, struct {
			name  string
			topic string
			kind  defender.TopicKind
			thing string
		}{"HappyPath " + tc.kind.String(), tc.topic, tc.kind, testThing})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kind, thing, ok := defender.MatchTopic(tc.topic)
			assert.Equal(t, tc.kind, kind)
			assert.Equal(t, tc.thing, thing)
			assert.Equal(t, tc.kind != defender.InvalidTopic, ok)
			if ok {
				assert.Len(t, thing, len(tc.thing))
				assert.Equal(t, tc.topic[12:12+len(thing)], thing, "name is topic+12")
			}
		})
	}
}

func TestTopicKindMethods(t *testing.T) {
	for _, tc := range []struct {
		kind                          defender.TopicKind
		format                        defender.Format
		publish, response, acceptedOK bool
	}{
		{defender.JSONPublish, defender.JSON, true, false, false},
		{defender.JSONAccepted, defender.JSON, false, true, true},
		{defender.JSONRejected, defender.JSON, false, true, false},
		{defender.CBORPublish, defender.CBOR, true, false, false},
		{defender.CBORAccepted, defender.CBOR, false, true, true},
		{defender.CBORRejected, defender.CBOR, false, true, false},
		{defender.InvalidTopic, "", false, false, false},
		{defender.TopicKind(6), "", false, false, false},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			assert.Equal(t, tc.format, tc.kind.Format())
			assert.Equal(t, tc.publish, tc.kind.IsPublish())
			assert.Equal(t, tc.response, tc.kind.IsResponse())
			assert.Equal(t, tc.acceptedOK, tc.kind.Accepted())
		})
	}
}

func TestResponseTopic(t *testing.T) {
	for _, tc := range sdkTopics {
		if !tc.kind.IsResponse() {
			continue
		}
		assert.Equal(t, tc.topic, defender.ResponseTopic(testThing, tc.kind.Format(), tc.kind.Accepted()))
	}
}

func TestValidThingName(t *testing.T) {
	for _, tc := range []struct {
		name, thing string
		ok          bool
	}{
		{"simple", "TestThing", true},
		{"all allowed characters", "a-Z_0:9", true},
		{"128 bytes", strings.Repeat("a", 128), true},
		{"empty", "", false},
		{"129 bytes", strings.Repeat("a", 129), false},
		{"plus", "+", false},
		{"slash", "a/b", false},
		{"space", "my thing", false},
		{"control character", "a\x01", false},
		{"non-ASCII", "thïng", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := defender.ValidThingName(tc.thing)
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}
