package robot

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// encodeCall renders an XML-RPC methodCall in the exact layout of Python's
// xmlrpc.client.dumps, which is what the recorded requests (and Robot
// Framework's own Remote library) send: Renode is known to accept it.
func encodeCall(method string, params []any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("<?xml version='1.0'?>\n<methodCall>\n<methodName>")
	if err := escape(&b, method); err != nil {
		return nil, err
	}
	b.WriteString("</methodName>\n<params>\n")
	for _, p := range params {
		b.WriteString("<param>\n")
		if err := encodeValue(&b, p); err != nil {
			return nil, err
		}
		b.WriteString("</param>\n")
	}
	b.WriteString("</params>\n</methodCall>\n")
	return b.Bytes(), nil
}

func encodeValue(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case string:
		b.WriteString("<value><string>")
		if err := escape(b, x); err != nil {
			return err
		}
		b.WriteString("</string></value>\n")
	case bool:
		n := 0
		if x {
			n = 1
		}
		fmt.Fprintf(b, "<value><boolean>%d</boolean></value>\n", n)
	case int:
		if x > math.MaxInt32 || x < math.MinInt32 {
			return fmt.Errorf("robot: int %d does not fit XML-RPC's 32 bits", x)
		}
		fmt.Fprintf(b, "<value><int>%d</int></value>\n", x)
	case float64:
		fmt.Fprintf(b, "<value><double>%s</double></value>\n", strconv.FormatFloat(x, 'g', -1, 64))
	case []string:
		b.WriteString("<value><array><data>\n")
		for _, s := range x {
			if err := encodeValue(b, s); err != nil {
				return err
			}
		}
		b.WriteString("</data></array></value>\n")
	case []any:
		b.WriteString("<value><array><data>\n")
		for _, e := range x {
			if err := encodeValue(b, e); err != nil {
				return err
			}
		}
		b.WriteString("</data></array></value>\n")
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("<value><struct>\n")
		for _, k := range keys {
			b.WriteString("<member>\n<name>")
			if err := escape(b, k); err != nil {
				return err
			}
			b.WriteString("</name>\n")
			if err := encodeValue(b, x[k]); err != nil {
				return err
			}
			b.WriteString("</member>\n")
		}
		b.WriteString("</struct></value>\n")
	default:
		return fmt.Errorf("robot: cannot encode %T as an XML-RPC value", v)
	}
	return nil
}

// escape writes s with &, < and > escaped (as Python does). Characters XML
// 1.0 forbids cannot be carried at all, so they are refused.
func escape(b *bytes.Buffer, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("robot: string %q is not UTF-8", s)
	}
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case !xmlChar(r):
			return fmt.Errorf("robot: string %q holds %U, which XML 1.0 cannot carry", s, r)
		default:
			b.WriteRune(r)
		}
	}
	return nil
}

func xmlChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || (r >= 0x20 && r <= 0xD7FF) ||
		(r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// Renode writes raw UART bytes into results as character references such as
// &#x1;, which XML 1.0 forbids and encoding/xml rejects. sanitize maps each
// forbidden code point to a private-use stand-in (plane 15) before decoding
// and restore maps it back, so the caller gets the bytes Renode meant.
const standIn = 0xF0000

var charRefRE = regexp.MustCompile(`&#(x[0-9a-fA-F]+|[0-9]+);`)

func sanitize(body []byte) []byte {
	body = charRefRE.ReplaceAllFunc(body, func(ref []byte) []byte {
		s := string(ref[2 : len(ref)-1])
		var n uint64
		var err error
		if s[0] == 'x' {
			n, err = strconv.ParseUint(s[1:], 16, 32)
		} else {
			n, err = strconv.ParseUint(s, 10, 32)
		}
		if err != nil || n > 0x1F || xmlChar(rune(n)) {
			return ref
		}
		return utf8.AppendRune(nil, rune(standIn+n))
	})
	// Raw control bytes are forbidden too; give them the same treatment.
	out := body[:0:0]
	for _, c := range body {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			out = utf8.AppendRune(out, rune(standIn+int(c)))
			continue
		}
		out = append(out, c)
	}
	return out
}

func restore(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r >= standIn && r <= standIn+0x1F }) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r >= standIn && r <= standIn+0x1F {
			return r - standIn
		}
		return r
	}, s)
}

// decodeResponse parses a methodResponse into its single value or a *Fault.
func decodeResponse(body []byte) (any, error) {
	d := xml.NewDecoder(bytes.NewReader(sanitize(body)))
	d.CharsetReader = func(label string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := expectStart(d, "methodResponse"); err != nil {
		return nil, err
	}
	se, err := nextStart(d)
	if err != nil {
		return nil, err
	}
	switch se.Name.Local {
	case "params":
		if err := expectStart(d, "param"); err != nil {
			return nil, err
		}
		if err := expectStart(d, "value"); err != nil {
			return nil, err
		}
		return decodeValue(d)
	case "fault":
		if err := expectStart(d, "value"); err != nil {
			return nil, err
		}
		v, err := decodeValue(d)
		if err != nil {
			return nil, err
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("robot: fault is a %T, not a struct", v)
		}
		code, _ := m["faultCode"].(int)
		msg, _ := m["faultString"].(string)
		return nil, &Fault{Code: code, Message: msg}
	default:
		return nil, fmt.Errorf("robot: unexpected <%s> in methodResponse", se.Name.Local)
	}
}

func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("robot: bad XML-RPC response: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.EndElement:
			return xml.StartElement{}, fmt.Errorf("robot: bad XML-RPC response: unexpected </%s>", t.Name.Local)
		}
	}
}

func expectStart(d *xml.Decoder, name string) error {
	se, err := nextStart(d)
	if err != nil {
		return err
	}
	if se.Name.Local != name {
		return fmt.Errorf("robot: bad XML-RPC response: <%s> where <%s> was expected", se.Name.Local, name)
	}
	return nil
}

// decodeValue is called just after <value> and consumes through </value>.
func decodeValue(d *xml.Decoder) (any, error) {
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("robot: bad XML-RPC value: %w", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			text.Write(t)
		case xml.EndElement: // </value> with no type element: a string
			return restore(text.String()), nil
		case xml.StartElement:
			v, err := decodeTyped(d, t.Name.Local)
			if err != nil {
				return nil, err
			}
			return v, skipTo(d, "value")
		}
	}
}

func decodeTyped(d *xml.Decoder, typ string) (any, error) {
	switch typ {
	case "array":
		if err := expectStart(d, "data"); err != nil {
			return nil, err
		}
		out := []any{}
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, fmt.Errorf("robot: bad XML-RPC array: %w", err)
			}
			switch t := tok.(type) {
			case xml.StartElement:
				if t.Name.Local != "value" {
					return nil, fmt.Errorf("robot: bad XML-RPC array: <%s>", t.Name.Local)
				}
				v, err := decodeValue(d)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			case xml.EndElement:
				if t.Name.Local == "data" {
					return out, skipTo(d, "array")
				}
			}
		}
	case "struct":
		out := map[string]any{}
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, fmt.Errorf("robot: bad XML-RPC struct: %w", err)
			}
			switch t := tok.(type) {
			case xml.StartElement:
				if t.Name.Local != "member" {
					return nil, fmt.Errorf("robot: bad XML-RPC struct: <%s>", t.Name.Local)
				}
				name, v, err := decodeMember(d)
				if err != nil {
					return nil, err
				}
				out[name] = v
			case xml.EndElement:
				return out, nil
			}
		}
	}
	var s string
	if err := d.DecodeElement(&s, &xml.StartElement{Name: xml.Name{Local: typ}}); err != nil {
		return nil, fmt.Errorf("robot: bad XML-RPC <%s>: %w", typ, err)
	}
	s = restore(s)
	switch typ {
	case "string":
		return s, nil
	case "i4", "int", "i8":
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("robot: bad XML-RPC integer %q: %w", s, err)
		}
		return int(n), nil
	case "boolean":
		switch strings.TrimSpace(s) {
		case "1":
			return true, nil
		case "0":
			return false, nil
		}
		return nil, fmt.Errorf("robot: bad XML-RPC boolean %q", s)
	case "double":
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("robot: bad XML-RPC double %q: %w", s, err)
		}
		return f, nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("robot: bad XML-RPC base64: %w", err)
		}
		return b, nil
	case "dateTime.iso8601":
		return s, nil
	case "nil":
		return nil, nil
	}
	return nil, fmt.Errorf("robot: unknown XML-RPC type <%s>", typ)
}

func decodeMember(d *xml.Decoder) (string, any, error) {
	var name string
	var val any
	haveVal := false
	for {
		tok, err := d.Token()
		if err != nil {
			return "", nil, fmt.Errorf("robot: bad XML-RPC member: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "name":
				if err := d.DecodeElement(&name, &t); err != nil {
					return "", nil, fmt.Errorf("robot: bad XML-RPC member name: %w", err)
				}
			case "value":
				if val, err = decodeValue(d); err != nil {
					return "", nil, err
				}
				haveVal = true
			default:
				return "", nil, fmt.Errorf("robot: bad XML-RPC member: <%s>", t.Name.Local)
			}
		case xml.EndElement:
			if !haveVal {
				return "", nil, errors.New("robot: XML-RPC member without value")
			}
			return name, val, nil
		}
	}
}

// skipTo consumes tokens through the end element named name.
func skipTo(d *xml.Decoder, name string) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return fmt.Errorf("robot: bad XML-RPC response: %w", err)
		}
		if e, ok := tok.(xml.EndElement); ok && e.Name.Local == name {
			return nil
		}
	}
}
