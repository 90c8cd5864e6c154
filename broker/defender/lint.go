package defender

import (
	"fmt"
	"net/netip"
	"strings"
)

// Lint rules: observations beyond AWS's verdict. They never change whether a
// report is accepted; conformance check DD-S07 reports them.
const (
	// LintMixedKeys: long and short key names in one report (no AWS source
	// says mixing is allowed; the Python agent does it).
	LintMixedKeys = "mixed-keys"
	// LintUnknownKey: a key the schema does not know, accepted only because
	// Options.Lenient is set.
	LintUnknownKey = "unknown-key"
	// LintCamelCaseKey: a key that imitates a real one by case or separators
	// (listeningTcpPorts for listening_tcp_ports); the message names it.
	LintCamelCaseKey = "camelcase-key"
	// LintTotalBelowList: total is smaller than the list it counts (a
	// larger total is normal: clients sample lists).
	LintTotalBelowList = "total-below-list"
	// LintDroppedCustomValue: a custom-metric value AWS accepts but silently
	// drops (protocol doc section 5).
	LintDroppedCustomValue = "dropped-custom-value"
	// LintNearSizeCap: the payload uses more than 90% of the 128 KB cap.
	LintNearSizeCap = "near-size-cap"
	// LintNullOptional: an optional key sent as JSON null or CBOR
	// null/undefined, read as absent the way AWS's typed decoding reads it
	// (AWS's Python agent writes "local_interface": null).
	LintNullOptional = "null-optional"
)

// maxSignificantDigits is what AWS keeps of a custom number (C++ SDK v2 sample notes).
const maxSignificantDigits = 15

func (v *validator) totalBelowList(total slot, value *uint64, list slot) {
	if value == nil || list.n == nil || list.n.kind != nArray || *value >= uint64(len(list.n.arr)) {
		return
	}
	v.note(LintTotalBelowList, v.path.child(total.key), fmt.Sprintf(
		"total %d is below the %d entries listed in %q", *value, len(list.n.arr), list.key))
}

func (v *validator) lintNumber(n *node) {
	if d := significantDigits(n.numberText()); d > maxSignificantDigits {
		v.note(LintDroppedCustomValue, v.path.pointer(), fmt.Sprintf(
			"number %s has %d significant digits; AWS keeps at most %d and drops the value",
			n.numberText(), d, maxSignificantDigits))
	}
}

// lintStringListItem flags characters AWS drops: the C++ SDK v2 notes allow
// letters and ':' '_' '-' '/' '.'. The note omits digits, yet AWS's own demos
// send "15807620kB" and are shown as working, so digits are allowed here.
func (v *validator) lintStringListItem(s string) {
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(":_-/.", r) {
			continue
		}
		v.note(LintDroppedCustomValue, v.path.pointer(), fmt.Sprintf(
			"string %q has %q; AWS keeps only letters, digits and : _ - / . and drops the value", s, r))
		return
	}
}

// lintIPListItem flags entries that are not a plain IPv4 or IPv6 address.
func (v *validator) lintIPListItem(s string) {
	if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
		v.note(LintDroppedCustomValue, v.path.pointer(), fmt.Sprintf(
			"%q is not a valid IPv4 or IPv6 address; AWS drops the value", s))
	}
}

// significantDigits counts the digits of a decimal number's mantissa from
// the first to the last non-zero one ("0.00120" -> 2, "1234e5" -> 4).
func significantDigits(text string) int {
	if i := strings.IndexAny(text, "eE"); i >= 0 {
		text = text[:i]
	}
	text = strings.TrimLeft(text, "+-")
	text = strings.Replace(text, ".", "", 1)
	text = strings.Trim(text, "0")
	return len(text)
}

// MaxLintFindings bounds the lint findings of one payload; LintTruncated
// marks that more were found.
const (
	MaxLintFindings = 100
	LintTruncated   = "truncated"
)
