package defender

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeJSON parses strict RFC 8259 JSON into a tree. Beyond encoding/json it
// rejects invalid UTF-8 and lone surrogate escapes (encoding/json silently
// substitutes U+FFFD), reports duplicate keys and trailing data, keeps
// integers exact as uint64 and bounds nesting and sizes.
func decodeJSON(b []byte) (root node, soft, hard *Problem) {
	p := jsonParser{b: b}
	if err := p.value(&root); err != nil {
		return node{}, nil, err
	}
	p.skipSpace()
	if p.i < len(p.b) {
		p.softFail("", trailingReason(p.b, p.i))
	}
	return root, p.soft, nil
}

type jsonParser struct {
	b     []byte
	i     int
	depth int
	path  pathStack
	soft  *Problem
}

func (p *jsonParser) softFail(path, reason string) {
	if p.soft == nil {
		p.soft = malformed(CategoryDecode, path, reason)
	}
}

func (p *jsonParser) fail(format string, args ...any) *Problem {
	return malformed(CategoryDecode, p.path.pointer(), fmt.Sprintf("invalid JSON at byte %d: ", p.i)+fmt.Sprintf(format, args...))
}

func (p *jsonParser) skipSpace() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(out *node) *Problem {
	p.skipSpace()
	if p.i >= len(p.b) {
		return p.fail("unexpected end of input")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(out)
	case c == '[':
		return p.array(out)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return err
		}
		*out = node{kind: nString, str: s}
		return nil
	case c == '-' || c >= '0' && c <= '9':
		return p.number(out)
	case c == 't':
		*out = node{kind: nBool, b: true}
		return p.literal("true")
	case c == 'f':
		*out = node{kind: nBool}
		return p.literal("false")
	case c == 'n':
		*out = node{kind: nNull}
		return p.literal("null")
	default:
		return p.fail("unexpected %s", quoteByte(c))
	}
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

func (p *jsonParser) literal(word string) *Problem {
	if !bytes.HasPrefix(p.b[p.i:], []byte(word)) {
		return p.fail("invalid literal, want %s", word)
	}
	p.i += len(word)
	return nil
}

func (p *jsonParser) enter() *Problem {
	p.depth++
	if p.depth > maxDepth {
		return p.fail("nesting deeper than %d levels", maxDepth)
	}
	return nil
}

func (p *jsonParser) object(out *node) *Problem {
	if err := p.enter(); err != nil {
		return err
	}
	p.i++ // '{'
	*out = node{kind: nObject}
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		out.obj = []member{}
		p.depth--
		return nil
	}
	out.obj = make([]member, 0, 4) // most report objects have at most four members
	var seen map[string]struct{}   // built once an object grows past a linear scan
	for {
		p.skipSpace()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			if p.i >= len(p.b) {
				return p.fail("unexpected end of input in object")
			}
			return p.fail("expected a string key, found %s", quoteByte(p.b[p.i]))
		}
		key, err := p.string()
		if err != nil {
			return err
		}
		p.skipSpace()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.fail("expected ':' after key %q", key)
		}
		p.i++
		dup := isDuplicate(out.obj, &seen, key)
		if len(out.obj) >= maxElements {
			return p.fail("object has more than %d members", maxElements)
		}
		p.path.push(key)
		// Decode in place so no node escapes to the heap per member; a
		// duplicate's slot is dropped again.
		out.obj = append(out.obj, member{key: key})
		if err := p.value(&out.obj[len(out.obj)-1].val); err != nil {
			return err
		}
		if dup {
			p.softFail(p.path.pointer(), fmt.Sprintf("duplicate key %q", key))
			out.obj = out.obj[:len(out.obj)-1]
		}
		p.path.pop()
		p.skipSpace()
		if p.i >= len(p.b) {
			return p.fail("unexpected end of input in object")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			p.depth--
			return nil
		default:
			return p.fail("expected ',' or '}' after a member, found %s", quoteByte(p.b[p.i]))
		}
	}
}

// isDuplicate reports whether key is already in obj, switching from a
// linear scan to a set for large objects so hostile input stays linear.
func isDuplicate(obj []member, seen *map[string]struct{}, key string) bool {
	const linear = 16
	if len(obj) < linear {
		for i := range obj {
			if obj[i].key == key {
				return true
			}
		}
		return false
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*linear)
		for i := range obj {
			(*seen)[obj[i].key] = struct{}{}
		}
	}
	if _, ok := (*seen)[key]; ok {
		return true
	}
	(*seen)[key] = struct{}{}
	return false
}

func (p *jsonParser) array(out *node) *Problem {
	if err := p.enter(); err != nil {
		return err
	}
	p.i++ // '['
	*out = node{kind: nArray, arr: []node{}}
	p.skipSpace()
	if p.i < len(p.b) && p.b[p.i] != ']' {
		out.arr = make([]node, 0, 4)
	}
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		p.depth--
		return nil
	}
	for {
		if len(out.arr) >= maxElements {
			return p.fail("array has more than %d elements", maxElements)
		}
		p.path.push(strconv.Itoa(len(out.arr)))
		out.arr = append(out.arr, node{})
		if err := p.value(&out.arr[len(out.arr)-1]); err != nil {
			return err
		}
		p.path.pop()
		p.skipSpace()
		if p.i >= len(p.b) {
			return p.fail("unexpected end of input in array")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			p.depth--
			return nil
		default:
			return p.fail("expected ',' or ']' after an element, found %s", quoteByte(p.b[p.i]))
		}
	}
}

// string parses a string starting at the opening quote.
func (p *jsonParser) string() (string, *Problem) {
	p.i++ // opening quote
	start := p.i
	// Fast path: plain ASCII without escapes needs no copy beyond the result.
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			s := intern(p.b[start:p.i])
			p.i++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		p.i++
	}
	var sb strings.Builder
	sb.Write(p.b[start:p.i])
	for {
		if p.i >= len(p.b) {
			return "", p.fail("unterminated string")
		}
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return sb.String(), nil
		case c < 0x20:
			return "", p.fail("control character 0x%02x in string; it must be escaped", c)
		case c == '\\':
			if err := p.escape(&sb); err != nil {
				return "", err
			}
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size <= 1 {
				// Soft: the rest still parses, so the header can be echoed.
				p.softFail(p.path.pointer(), fmt.Sprintf("invalid JSON at byte %d: invalid UTF-8 in string", p.i))
				sb.WriteRune(utf8.RuneError)
				p.i++
				continue
			}
			sb.Write(p.b[p.i : p.i+size])
			p.i += size
		default:
			sb.WriteByte(c)
			p.i++
		}
	}
}

// escape decodes one backslash escape; surrogate halves must pair up.
func (p *jsonParser) escape(sb *strings.Builder) *Problem {
	if p.i+1 >= len(p.b) {
		return p.fail("unterminated escape")
	}
	c := p.b[p.i+1]
	if r, ok := simpleEscape(c); ok {
		sb.WriteByte(r)
		p.i += 2
		return nil
	}
	if c != 'u' {
		return p.fail("invalid escape \\%c", c)
	}
	r, err := p.hex4(p.i + 2)
	if err != nil {
		return err
	}
	at := p.i
	p.i += 6
	if utf16.IsSurrogate(r) {
		combined := utf8.RuneError
		if r < 0xdc00 && p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
			r2, err := p.hex4(p.i + 2)
			if err != nil {
				return err
			}
			if combined = utf16.DecodeRune(r, r2); combined != utf8.RuneError {
				p.i += 6
			}
		}
		if combined == utf8.RuneError {
			// Soft, like invalid UTF-8: encoding/json would substitute U+FFFD silently.
			p.softFail(p.path.pointer(), fmt.Sprintf("invalid JSON at byte %d: lone surrogate \\u%04x", at, r))
		}
		r = combined
	}
	sb.WriteRune(r)
	return nil
}

func simpleEscape(c byte) (byte, bool) {
	switch c {
	case '"', '\\', '/':
		return c, true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	}
	return 0, false
}

func (p *jsonParser) hex4(at int) (rune, *Problem) {
	if at+4 > len(p.b) {
		return 0, p.fail("truncated \\u escape")
	}
	var r rune
	for _, c := range p.b[at : at+4] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, p.fail("invalid \\u escape")
		}
		r = r<<4 | rune(d)
	}
	return r, nil
}

// number parses -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? and keeps
// integers exact.
func (p *jsonParser) number(out *node) *Problem {
	start := p.i
	neg := p.b[p.i] == '-'
	if neg {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	intStart := p.i
	switch n := digits(); {
	case n == 0:
		return p.fail("invalid number, expected a digit")
	case n > 1 && p.b[intStart] == '0':
		return p.fail("invalid number, leading zero")
	}
	intEnd := p.i
	isFloat := false
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		isFloat = true
		if digits() == 0 {
			return p.fail("invalid number, expected a digit after '.'")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		isFloat = true
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return p.fail("invalid number, expected a digit in the exponent")
		}
	}
	lit := p.b[start:p.i]
	if isFloat {
		f, _ := strconv.ParseFloat(string(lit), 64) // range errors give ±Inf, rejected where it matters
		*out = node{kind: nFloat, f: f, str: string(lit)}
		return nil
	}
	u, ok := parseUint(p.b[intStart:intEnd])
	switch {
	case !ok:
		*out = node{kind: nBigInt, str: string(lit)}
		if neg {
			out.kind = nNegInt
		}
	case neg && u != 0:
		*out = node{kind: nNegInt, str: string(lit)}
	default:
		*out = node{kind: nUint, u: u}
	}
	return nil
}

// parseUint parses decimal digits; ok is false on overflow.
func parseUint(digits []byte) (uint64, bool) {
	var u uint64
	for _, c := range digits {
		d := uint64(c - '0')
		if u > (1<<64-1-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	return u, true
}
