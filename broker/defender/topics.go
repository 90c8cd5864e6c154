package defender

import (
	"errors"
	"fmt"
	"strings"
)

// Topic pieces exactly as the embedded SDK (defender.h) spells them.
const (
	topicPrefix = "$aws/things/"       // 12 bytes
	topicBridge = "/defender/metrics/" // 18 bytes

	// MaxThingName is DEFENDER_THINGNAME_MAX_LENGTH: the longest thing name
	// in bytes, "as permitted by AWS IoT Core".
	MaxThingName = 128
)

// topicTails are the topic endings after the bridge, indexed by TopicKind.
var topicTails = [...]string{
	JSONPublish:  "json",
	JSONAccepted: "json/accepted",
	JSONRejected: "json/rejected",
	CBORPublish:  "cbor",
	CBORAccepted: "cbor/accepted",
	CBORRejected: "cbor/rejected",
}

// ValidThingName applies the registry's rule (CreateThing): 1..128 bytes of
// [a-zA-Z0-9:_-]. Topic and MatchTopic do not apply it, as the SDK does not;
// the broker uses it to refuse names the registry could never hold.
func ValidThingName(name string) error {
	if name == "" {
		return errors.New("defender: thing name is empty")
	}
	if len(name) > MaxThingName {
		return fmt.Errorf("defender: thing name is %d bytes, longer than %d", len(name), MaxThingName)
	}
	for i := 0; i < len(name); i++ {
		if !thingNameByte(name[i]) {
			return fmt.Errorf("defender: thing name has %q at byte %d; allowed are [a-zA-Z0-9:_-]", name[i], i)
		}
	}
	return nil
}

func thingNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == ':' || c == '_' || c == '-'
}

// Topic builds the topic of the given kind for thing, like the SDK's
// Defender_GetTopic: the name must be 1..128 bytes and kind one of the six
// topics; the name's characters are not checked (see ValidThingName).
func Topic(thing string, kind TopicKind) (string, error) {
	if thing == "" {
		return "", errors.New("defender: topic: thing name is empty")
	}
	if len(thing) > MaxThingName {
		return "", fmt.Errorf("defender: topic: thing name is %d bytes, longer than %d", len(thing), MaxThingName)
	}
	if kind < JSONPublish || kind > CBORRejected {
		return "", fmt.Errorf("defender: topic: kind %d is not one of 0..5", int(kind))
	}
	return topicPrefix + thing + topicBridge + topicTails[kind], nil
}

// MatchTopic recognises a Defender topic like the SDK's Defender_MatchTopic:
// byte-exact and case-sensitive, the thing name runs to the first '/', and
// the name is neither length- nor character-checked (so a subscription's "+"
// matches as a name). ok is false, and kind InvalidTopic, for anything else.
func MatchTopic(topic string) (kind TopicKind, thing string, ok bool) {
	rest, found := strings.CutPrefix(topic, topicPrefix)
	if !found {
		return InvalidTopic, "", false
	}
	end := strings.IndexByte(rest, '/')
	if end < 0 {
		end = len(rest)
	}
	if end == 0 {
		return InvalidTopic, "", false
	}
	thing = rest[:end]
	tail, found := strings.CutPrefix(rest[end:], topicBridge)
	if !found {
		return InvalidTopic, "", false
	}
	for k, t := range topicTails {
		if tail == t {
			return TopicKind(k), thing, true
		}
	}
	return InvalidTopic, "", false
}

// ResponseTopic is the topic the service answers a report on. The name is
// used verbatim, as the service answers whatever thing the report named.
func ResponseTopic(thing string, f Format, accepted bool) string {
	suffix := "/rejected"
	if accepted {
		suffix = "/accepted"
	}
	return topicPrefix + thing + topicBridge + string(f) + suffix
}

// valid reports whether k is one of the six topics.
func (k TopicKind) valid() bool { return k >= JSONPublish && k <= CBORRejected }

// Format is the wire format of the topic, or "" for an invalid kind.
func (k TopicKind) Format() Format {
	switch {
	case !k.valid():
		return ""
	case k <= JSONRejected:
		return JSON
	default:
		return CBOR
	}
}

// IsPublish reports whether devices publish reports on this topic.
func (k TopicKind) IsPublish() bool { return k == JSONPublish || k == CBORPublish }

// IsResponse reports whether the service answers on this topic.
func (k TopicKind) IsResponse() bool { return k.valid() && !k.IsPublish() }

// Accepted reports whether this is an /accepted response topic.
func (k TopicKind) Accepted() bool { return k == JSONAccepted || k == CBORAccepted }

// String names the kind like the SDK's enum, for logs and test names.
func (k TopicKind) String() string {
	names := [...]string{"JsonReportPublish", "JsonReportAccepted", "JsonReportRejected",
		"CborReportPublish", "CborReportAccepted", "CborReportRejected"}
	if !k.valid() {
		return fmt.Sprintf("InvalidTopic(%d)", int(k))
	}
	return names[k]
}
