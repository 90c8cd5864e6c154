package defender

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// MaxPayload is AWS IoT Core's MQTT payload cap (128 KB); a larger publish
// never reaches Device Defender.
const MaxPayload = 128 * 1024

// SupportedVersion is the only report version any source knows.
const SupportedVersion = "1.0"

// Validate decodes payload as format f and judges it as Device Defender
// would: any decoding or schema failure is InvalidPayload / "Malformed metrics
// report", with a JSON pointer (key names as sent) and a precise reason that
// AWS does not give. Lint findings never change the outcome. When report_id
// could be read, HeaderParsed and ReportID are set even if the report is
// rejected, so the response can echo it as AWS's clients expect.
func Validate(f Format, payload []byte, opts Options) Result {
	var res Result
	var sizeProblem *Problem
	switch {
	case len(payload) > MaxPayload:
		sizeProblem = OversizeProblem(int64(len(payload)))
	case len(payload) > MaxPayload*9/10:
		res.Lint = append(res.Lint, Finding{Rule: LintNearSizeCap, Path: "",
			Message: fmt.Sprintf("payload is %d bytes, over 90%% of the %d-byte MQTT payload limit", len(payload), MaxPayload)})
	}
	root, soft, hard := decodeTree(f, payload)
	if hard != nil {
		res.Problem = firstProblem(sizeProblem, hard)
		return res
	}
	v := validator{opts: opts}
	res.Report = v.report(&root)
	res.HeaderParsed, res.ReportID = v.headerParsed, v.reportID
	res.Problem = firstProblem(sizeProblem, soft, v.problem)
	res.Lint = append(res.Lint, v.lint...)
	if mixed := v.mixedFinding(); mixed != nil {
		res.Lint = append(res.Lint, *mixed)
	}
	return res
}

// OversizeProblem is the verdict on a payload of size bytes over
// MaxPayload; a negative size means "larger, size unknown" (a pipe). It
// lets a caller that did not read the whole payload name its real size.
func OversizeProblem(size int64) *Problem {
	limit := fmt.Sprintf("over the %d-byte (128 KB) MQTT payload limit of AWS IoT Core", MaxPayload)
	if size < 0 {
		return malformed(CategorySize, "", "payload is "+limit)
	}
	return malformed(CategorySize, "", fmt.Sprintf("payload is %d bytes (%s), %s", size, humanSize(size), limit))
}

// humanSize renders a byte count in KB or MB (powers of 1024, as AWS's
// "128 KB" means 131072 bytes).
func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func firstProblem(ps ...*Problem) *Problem {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

// validator walks a decoded tree, fills the Report, keeps the first
// problem and goes on walking, so the header is read and every lint finding
// is collected whatever fails first.
type validator struct {
	opts    Options
	path    pathStack
	problem *Problem
	lint    []Finding

	longKeys, shortKeys int
	firstShort          bool   // spelling of the first report key seen
	deviation           string // pointer of the first key in the other spelling
	deviationKey        string

	headerParsed bool
	reportID     uint64
	section      string // Problem.Category forced while inside header or custom_metrics
}

// fail records the first problem. Inside the header and custom_metrics
// every problem is filed under that section, whatever its kind.
func (v *validator) fail(category, reason string) { v.failAt(category, v.path.pointer(), reason) }

func (v *validator) failAt(category, path, reason string) {
	if v.section != "" {
		category = v.section
	}
	if v.problem == nil {
		v.problem = malformed(category, path, reason)
	}
}

func (v *validator) note(rule, path, msg string) {
	// A hostile payload can carry thousands of look-alike keys: keep the
	// first MaxLintFindings and count the rest in one last finding.
	switch {
	case len(v.lint) < MaxLintFindings:
		v.lint = append(v.lint, Finding{Rule: rule, Path: path, Message: msg})
	case len(v.lint) == MaxLintFindings:
		v.lint = append(v.lint, Finding{Rule: LintTruncated, Path: "", Message: "more lint findings not listed"})
	}
}

// slot is one resolved member: its value and the key as sent.
type slot struct {
	n   *node
	key string
}

// present reports whether the member was sent with a value: for every key
// a null (JSON null, CBOR null or undefined) reads as absent.
func (s slot) present() bool { return s.n != nil && !s.n.isNull() }

// members is an object resolved against its schema, read by key name.
type members struct {
	keys  []keyID
	slots [maxObjectKeys]slot
}

// get returns the member sent for k; k must be in the object's schema.
func (m *members) get(k keyID) slot {
	for i, id := range m.keys {
		if id == k {
			return m.slots[i]
		}
	}
	panic("defender: key " + k.long() + " is not in this object's schema")
}

// fields resolves the members of object n against keys, accepting either
// spelling. Unknown keys are rejected (or noted when lenient); a key sent in
// both spellings is rejected; a null optional key is noted and reads as
// absent.
func (v *validator) fields(n *node, keys []keyID) (members, bool) {
	ms := members{keys: keys}
	if n.kind != nObject {
		v.fail(CategoryStructure, "must be an object, got "+n.typeName())
		return ms, false
	}
	for i := range n.obj {
		m := &n.obj[i]
		idx, short, ok := lookupKey(keys, m.key)
		if !ok {
			v.unknownKey(keys, m.key)
			continue
		}
		v.noteSpelling(short, m.key)
		if prev := ms.slots[idx].key; ms.slots[idx].n != nil {
			v.failAt(CategoryStructure, v.path.child(m.key), fmt.Sprintf("%q repeats %q: both spell %q", m.key, prev, keys[idx].long()))
			continue
		}
		if m.val.isNull() && !keyNames[keys[idx]].required {
			v.note(LintNullOptional, v.path.child(m.key), fmt.Sprintf(
				"optional %s is %s: read as absent; omit the key instead", keys[idx].spell(), m.val.typeName()))
		}
		ms.slots[idx] = slot{n: &m.val, key: m.key}
	}
	return ms, true
}

func (v *validator) unknownKey(keys []keyID, key string) {
	path := v.path.child(key)
	hint := ""
	if want := lookalike(keys, key); want != "" {
		hint = fmt.Sprintf("; did you mean %q?", want)
		v.note(LintCamelCaseKey, path, fmt.Sprintf("key %q looks like %q; AWS matches key names exactly", key, want))
	}
	if v.opts.Lenient {
		v.note(LintUnknownKey, path, fmt.Sprintf("unknown key %q ignored%s", key, hint))
		return
	}
	v.failAt(CategoryStructure, path, fmt.Sprintf("unknown key %q%s", key, hint))
}

// noteSpelling counts long and short keys and remembers where the report
// first departs from the spelling it started with.
func (v *validator) noteSpelling(short bool, key string) {
	if v.longKeys+v.shortKeys == 0 {
		v.firstShort = short
	} else if short != v.firstShort && v.deviation == "" {
		v.deviation, v.deviationKey = v.path.child(key), key
	}
	if short {
		v.shortKeys++
	} else {
		v.longKeys++
	}
}

func (v *validator) keyStyle() string {
	switch {
	case v.longKeys > 0 && v.shortKeys > 0:
		return "mixed"
	case v.shortKeys > 0:
		return "short"
	case v.longKeys > 0:
		return "long"
	}
	return ""
}

func (v *validator) mixedFinding() *Finding {
	if v.deviation == "" {
		return nil
	}
	first, other := "long", "short"
	if v.firstShort {
		first, other = other, first
	}
	return &Finding{Rule: LintMixedKeys, Path: v.deviation, Message: fmt.Sprintf(
		"%s key %q in a report that starts with %s keys (%d long, %d short keys in all)",
		other, v.deviationKey, first, v.longKeys, v.shortKeys)}
}

// at runs fn on s's value with the path extended by the key as sent; an
// absent or null member is skipped.
func (v *validator) at(s slot, fn func(n *node)) {
	if !s.present() {
		return
	}
	v.path.push(s.key)
	fn(s.n)
	v.path.pop()
}

// require fails when a required member is missing or null.
func (v *validator) require(category string, s slot, k keyID) bool {
	switch {
	case s.n == nil:
		v.fail(category, "missing "+k.spell())
		return false
	case s.n.isNull():
		v.failAt(category, v.path.child(s.key), "required "+k.spell()+" is "+s.n.typeName())
		return false
	}
	return true
}

func (v *validator) report(root *node) *Report {
	if root.kind != nObject {
		v.fail(CategoryStructure, "report must be an object, got "+root.typeName())
		return nil
	}
	s, _ := v.fields(root, rootKeys)
	rep := &Report{}
	header, metrics, custom := s.get(kHeader), s.get(kMetrics), s.get(kCustomMetrics)
	v.require(CategoryHeader, header, kHeader)
	if !metrics.present() && !custom.present() {
		reason := "needs " + kMetrics.spell() + " or " + kCustomMetrics.spell() + " (or both)"
		for _, sent := range []slot{metrics, custom} {
			if sent.n != nil {
				reason += fmt.Sprintf("; %q is %s, which reads as absent", sent.key, sent.n.typeName())
			}
		}
		v.fail(CategoryStructure, reason)
	}
	v.at(header, func(n *node) {
		v.section = CategoryHeader
		rep.Header = v.header(n)
		v.section = ""
	})
	v.at(metrics, func(n *node) { rep.Metrics = v.metrics(n) })
	v.at(custom, func(n *node) {
		v.section = CategoryCustomMetric
		rep.CustomMetrics = v.customMetrics(n)
		v.section = ""
	})
	rep.KeyStyle = v.keyStyle()
	return rep
}

func (v *validator) header(n *node) Header {
	var h Header
	s, ok := v.fields(n, headerKeys)
	if !ok {
		return h
	}
	if rid := s.get(kReportID); v.require(CategoryStructure, rid, kReportID) {
		v.at(rid, func(n *node) {
			if id, ok := v.uint(n); ok {
				h.ReportID, v.reportID, v.headerParsed = id, id, true
			}
		})
	}
	if ver := s.get(kVersion); v.require(CategoryStructure, ver, kVersion) {
		v.at(ver, func(n *node) {
			if ver, ok := v.string(n); ok {
				h.Version = ver
				if ver != SupportedVersion {
					v.fail(CategoryHeader, fmt.Sprintf("unsupported version %q; only %q exists", ver, SupportedVersion))
				}
			}
		})
	}
	return h
}

func (v *validator) metrics(n *node) *Metrics {
	s, ok := v.fields(n, metricsKeys)
	if !ok {
		return nil
	}
	m := &Metrics{}
	v.at(s.get(kTCPConnections), func(n *node) { m.TCPConnections = v.tcpConnections(n) })
	v.at(s.get(kListeningTCPPorts), func(n *node) { m.ListeningTCPPorts = v.ports(n) })
	v.at(s.get(kListeningUDPPorts), func(n *node) { m.ListeningUDPPorts = v.ports(n) })
	v.at(s.get(kNetworkStats), func(n *node) { m.NetworkStats = v.networkStats(n) })
	return m
}

func (v *validator) tcpConnections(n *node) *TCPConnections {
	s, ok := v.fields(n, tcpKeys)
	if !ok {
		return nil
	}
	tc := &TCPConnections{}
	v.at(s.get(kEstablished), func(n *node) {
		s, ok := v.fields(n, establishedKeys)
		if !ok {
			return
		}
		ec := &EstablishedConnections{}
		list, total := s.get(kConnections), s.get(kTotal)
		v.at(list, func(n *node) {
			if n.kind == nArray {
				ec.Connections = make([]Connection, 0, len(n.arr))
			}
			v.list(n, func(item *node) {
				if c, ok := v.connection(item); ok {
					ec.Connections = append(ec.Connections, c)
				}
			})
		})
		v.at(total, func(n *node) { ec.Total = v.uintPtr(n) })
		v.totalBelowList(total, ec.Total, list)
		tc.Established = ec
	})
	return tc
}

func (v *validator) connection(n *node) (Connection, bool) {
	var c Connection
	s, ok := v.fields(n, connectionKeys)
	if !ok {
		return c, false
	}
	rad := s.get(kRemoteAddr)
	ok = v.require(CategoryStructure, rad, kRemoteAddr)
	v.at(rad, func(n *node) {
		addr, isString := v.string(n)
		if !isString {
			ok = false
			return
		}
		if err := checkRemoteAddr(addr); err != nil {
			v.fail(CategoryRange, err.Error())
			ok = false
		}
		c.RemoteAddr = addr
	})
	v.at(s.get(kLocalPort), func(n *node) {
		if p, good := v.port(n, 0); good {
			c.LocalPort = &p
		} else {
			ok = false
		}
	})
	v.at(s.get(kLocalInterface), func(n *node) { c.LocalInterface, _ = v.string(n) })
	return c, ok
}

func (v *validator) ports(n *node) *Ports {
	s, ok := v.fields(n, portsKeys)
	if !ok {
		return nil
	}
	ps := &Ports{}
	list, total := s.get(kPorts), s.get(kTotal)
	v.at(list, func(list *node) {
		if list.kind == nArray {
			ps.Ports = make([]Port, 0, len(list.arr))
		}
		v.list(list, func(n *node) {
			s, ok := v.fields(n, portKeys)
			if !ok {
				return
			}
			var p Port
			pt := s.get(kPort)
			ok = v.require(CategoryStructure, pt, kPort)
			v.at(pt, func(n *node) {
				var good bool
				p.Port, good = v.port(n, 1)
				ok = ok && good
			})
			v.at(s.get(kInterface), func(n *node) { p.Interface, _ = v.string(n) })
			if ok {
				ps.Ports = append(ps.Ports, p)
			}
		})
	})
	v.at(total, func(n *node) { ps.Total = v.uintPtr(n) })
	v.totalBelowList(total, ps.Total, list)
	return ps
}

func (v *validator) networkStats(n *node) *NetworkStats {
	s, ok := v.fields(n, netStatsKeys)
	if !ok {
		return nil
	}
	ns := &NetworkStats{}
	v.at(s.get(kBytesIn), func(n *node) { ns.BytesIn = v.uintPtr(n) })
	v.at(s.get(kBytesOut), func(n *node) { ns.BytesOut = v.uintPtr(n) })
	v.at(s.get(kPacketsIn), func(n *node) { ns.PacketsIn = v.uintPtr(n) })
	v.at(s.get(kPacketsOut), func(n *node) { ns.PacketsOut = v.uintPtr(n) })
	return ns
}

// customMetrics maps metric names to values. Each value must be an array
// holding one object with exactly one known kind; the bare object
// {"m":{"number":1}} is what AWS's troubleshooting guide shows rejected.
func (v *validator) customMetrics(n *node) map[string]CustomMetric {
	if n.kind != nObject {
		v.fail(CategoryStructure, "must be an object, got "+n.typeName())
		return nil
	}
	out := make(map[string]CustomMetric, len(n.obj))
	for i := range n.obj {
		m := &n.obj[i]
		v.path.push(m.key)
		if cm, ok := v.customMetric(&m.val); ok {
			out[m.key] = cm
		}
		v.path.pop()
	}
	return out
}

func (v *validator) customMetric(n *node) (CustomMetric, bool) {
	var cm CustomMetric
	switch {
	case n.kind != nArray:
		v.fail(CategoryCustomMetric, `custom metric must be an array holding one object, like [{"number": 1}]; got `+n.typeName())
		return cm, false
	case len(n.arr) != 1:
		v.fail(CategoryCustomMetric, fmt.Sprintf("custom metric array must hold exactly one object, got %d elements", len(n.arr)))
		return cm, false
	}
	v.path.push("0")
	defer v.path.pop()
	obj := &n.arr[0]
	switch {
	case obj.kind != nObject:
		v.fail(CategoryCustomMetric, "custom metric value must be an object "+`{"<kind>": <value>}, got `+obj.typeName())
		return cm, false
	case len(obj.obj) != 1:
		v.fail(CategoryCustomMetric, fmt.Sprintf("custom metric value must have exactly one key (number, number_list, string_list or ip_list), got %d", len(obj.obj)))
		return cm, false
	}
	kindKey := obj.obj[0].key
	val := &obj.obj[0].val
	idx, _, known := lookupKey(customKindKeys, kindKey)
	if !known {
		// An unknown kind leaves no value, so it is refused even when lenient.
		path := v.path.child(kindKey)
		hint := ""
		if want := lookalike(customKindKeys, kindKey); want != "" {
			hint = fmt.Sprintf("; did you mean %q?", want)
			v.note(LintCamelCaseKey, path, fmt.Sprintf("key %q looks like %q; AWS matches key names exactly", kindKey, want))
		}
		v.failAt(CategoryCustomMetric, path, fmt.Sprintf("unknown custom metric kind %q%s", kindKey, hint))
		return cm, false
	}
	kind := customKindKeys[idx]
	cm.Kind = kind.long()
	v.path.push(kindKey)
	defer v.path.pop()
	ok := true
	switch kind {
	case kNumber:
		cm.Number, ok = v.number(val)
	case kNumberList:
		cm.NumberList = []float64{}
		ok = v.list(val, func(item *node) {
			f, good := v.number(item)
			ok = ok && good
			cm.NumberList = append(cm.NumberList, f)
		}) && ok
	case kStringList:
		cm.StringList = []string{}
		ok = v.list(val, func(item *node) {
			s, good := v.string(item)
			if good {
				v.lintStringListItem(s)
			}
			ok = ok && good
			cm.StringList = append(cm.StringList, s)
		}) && ok
	case kIPList:
		cm.IPList = []string{}
		ok = v.list(val, func(item *node) {
			s, good := v.string(item)
			if good {
				v.lintIPListItem(s)
			}
			ok = ok && good
			cm.IPList = append(cm.IPList, s)
		}) && ok
	}
	return cm, ok
}

// list requires an array and runs fn on each element with its index pushed.
func (v *validator) list(n *node, fn func(item *node)) bool {
	if n.kind != nArray {
		v.fail(CategoryStructure, "must be an array, got "+n.typeName())
		return false
	}
	for i := range n.arr {
		v.path.push(strconv.Itoa(i))
		fn(&n.arr[i])
		v.path.pop()
	}
	return true
}

// MaxInteger is the largest integer AWS reads: the service decodes reports
// into signed 64-bit fields, so report_id, counters and totals above
// 2^63-1 are InvalidPayload there.
const MaxInteger = math.MaxInt64

// uint requires an integer in 0..MaxInteger (counters, totals, report_id).
func (v *validator) uint(n *node) (uint64, bool) {
	switch n.kind {
	case nUint:
		if n.u <= MaxInteger {
			return n.u, true
		}
		v.fail(CategoryRange, tooLarge(n))
	case nNegInt:
		v.fail(CategoryRange, "must be a non-negative integer, got "+n.describe())
	case nBigInt:
		v.fail(CategoryRange, tooLarge(n))
	case nFloat:
		v.fail(CategoryRange, "must be an integer, got "+n.describe())
	default:
		v.fail(CategoryStructure, "must be an integer, got "+n.describe())
	}
	return 0, false
}

func tooLarge(n *node) string {
	return fmt.Sprintf("integer %s is above %d (2^63-1): AWS reads integers as signed 64-bit", n.describe(), uint64(MaxInteger))
}

func (v *validator) uintPtr(n *node) *uint64 {
	if u, ok := v.uint(n); ok {
		return &u
	}
	return nil
}

// port requires an integer in lo..65535.
func (v *validator) port(n *node, lo uint64) (uint64, bool) {
	p, ok := v.uint(n)
	if ok && (p < lo || p > 65535) {
		v.fail(CategoryRange, fmt.Sprintf("port %d is out of range %d..65535", p, lo))
		return 0, false
	}
	return p, ok
}

func (v *validator) string(n *node) (string, bool) {
	if n.kind != nString {
		v.fail(CategoryStructure, "must be a string, got "+n.describe())
		return "", false
	}
	return n.str, true
}

// number is a custom-metric number: any finite number, negative allowed.
func (v *validator) number(n *node) (float64, bool) {
	f, ok := n.float()
	switch {
	case ok:
		v.lintNumber(n)
		return f, true
	case n.kind == nUint || n.kind == nNegInt || n.kind == nBigInt || n.kind == nFloat:
		v.fail(CategoryCustomMetric, "number "+n.describe()+" is not a finite 64-bit float")
	default:
		v.fail(CategoryCustomMetric, "must be a number, got "+n.describe())
	}
	return 0, false
}

// checkRemoteAddr accepts "ip:port" with IPv4, bare IPv6 or bracketed IPv6,
// splitting on the last ':' as the clients write it (protocol doc 2.2).
func checkRemoteAddr(s string) error {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return fmt.Errorf("remote_addr %q is not ip:port", s)
	}
	host, port := s[:i], s[i+1:]
	if err := checkPortText(port); err != nil {
		return fmt.Errorf("remote_addr %q: %w", s, err)
	}
	bracketed := strings.HasPrefix(host, "[")
	if bracketed {
		inner, ok := strings.CutSuffix(host[1:], "]")
		if !ok {
			return fmt.Errorf("remote_addr %q: unbalanced '['", s)
		}
		host = inner
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("remote_addr %q: %q is not an IP address", s, host)
	}
	if bracketed && !addr.Is6() {
		return fmt.Errorf("remote_addr %q: brackets hold an IPv6 address only", s)
	}
	return nil
}

func checkPortText(p string) error {
	if p == "" || len(p) > 5 {
		return errors.New("port must be 1 to 5 digits")
	}
	n := 0
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return fmt.Errorf("port %q is not a decimal number", p)
		}
		n = n*10 + int(p[i]-'0')
	}
	if n < 1 || n > 65535 {
		return fmt.Errorf("port %d is out of range 1..65535", n)
	}
	return nil
}
