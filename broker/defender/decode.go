package defender

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Decoding turns a payload into a generic, ordered tree first (decode_json.go,
// decode_cbor.go); validate.go then maps the tree onto Report. Keeping the
// two apart lets JSON and CBOR share one schema walk, so both formats get the
// same verdict and the same JSON-pointer paths.

// Decoder limits. No real report comes near them (real ones nest 6 deep and
// list at most 50 entries); they bound what a hostile payload can cost.
const (
	maxDepth    = 32    // nested objects/arrays (CBOR: maps/arrays/tags)
	maxElements = 65536 // entries in one array or members in one object
)

type nodeKind uint8

const (
	nNull      nodeKind = iota
	nUndefined          // CBOR undefined
	nBool
	nUint    // integer 0..2^64-1, in u (JSON "-0" lands here too)
	nNegInt  // integer < 0; decimal text in str
	nBigInt  // JSON integer >= 2^64; decimal text in str
	nFloat   // number with a fraction or exponent (JSON) or a CBOR float; f, and the JSON literal in str
	nString  // text, in str
	nBytes   // CBOR byte string, in str
	nArray   // arr
	nObject  // obj, in the order sent
	nInvalid // a CBOR item the schema cannot hold (tag, simple value); str says what
)

// node is one value of the generic tree.
type node struct {
	kind nodeKind
	b    bool
	u    uint64
	f    float64
	str  string
	arr  []node
	obj  []member
}

type member struct {
	key string
	val node
}

// isNull reports a JSON null or a CBOR null or undefined: no value at all.
func (n *node) isNull() bool { return n.kind == nNull || n.kind == nUndefined }

// typeName names a node's type for reasons ("must be an integer, got string").
func (n *node) typeName() string {
	switch n.kind {
	case nNull:
		return "null"
	case nUndefined:
		return "undefined"
	case nBool:
		return "boolean"
	case nUint, nNegInt, nBigInt:
		return "integer"
	case nFloat:
		return "number"
	case nString:
		return "string"
	case nBytes:
		return "byte string"
	case nArray:
		return "array"
	case nObject:
		return "object"
	default:
		return n.str
	}
}

// describe renders a scalar for reasons, e.g. `-5`, `1.5`, `string "12"`.
func (n *node) describe() string {
	switch n.kind {
	case nUint:
		return strconv.FormatUint(n.u, 10)
	case nNegInt, nBigInt:
		return n.str
	case nFloat:
		return n.numberText()
	case nString:
		s := n.str
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return "string " + strconv.Quote(s)
	case nBool:
		return strconv.FormatBool(n.b)
	default:
		return n.typeName()
	}
}

// numberText is the decimal text of a numeric node: the JSON literal when
// there is one, else the shortest text that round-trips.
func (n *node) numberText() string {
	switch {
	case n.kind == nUint:
		return strconv.FormatUint(n.u, 10)
	case n.str != "":
		return n.str
	default:
		return strconv.FormatFloat(n.f, 'g', -1, 64)
	}
}

// float is a numeric node as float64; ok is false for non-numbers and
// numbers beyond float64's range.
func (n *node) float() (float64, bool) {
	switch n.kind {
	case nUint:
		return float64(n.u), true
	case nNegInt, nBigInt:
		f, err := strconv.ParseFloat(n.str, 64)
		return f, err == nil
	case nFloat:
		return n.f, !math.IsInf(n.f, 0) && !math.IsNaN(n.f)
	}
	return 0, false
}

// pathStack tracks where a walk is, so failures carry a JSON pointer
// (RFC 6901) without building strings on the happy path.
type pathStack []string

func (p *pathStack) push(seg string) { *p = append(*p, seg) }
func (p *pathStack) pop()            { *p = (*p)[:len(*p)-1] }

func (p pathStack) pointer() string { return pointerOf(p...) }

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// pointerOf renders segments as a JSON pointer; the root is "".
func pointerOf(segs ...string) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(pointerEscaper.Replace(s))
	}
	return b.String()
}

// child is the pointer of seg below p.
func (p pathStack) child(seg string) string { return pointerOf(append(p[:len(p):len(p)], seg)...) }

// malformed is the Problem for every decoding and schema failure: AWS
// answers all of them with the same code and message.
func malformed(category, path, reason string) *Problem {
	return &Problem{Code: CodeInvalidPayload, Message: MsgMalformed, Path: path, Reason: reason, Category: category}
}

// trailingReason describes bytes after the report, naming the common C bug
// of publishing the string's NUL terminator (strlen+1).
func trailingReason(b []byte, at int) string {
	reason := fmt.Sprintf("trailing data after the report at byte %d", at)
	if len(b)-at == 1 && b[at] == 0 {
		reason += " (a NUL byte: was the C string terminator published?)"
	}
	return reason
}

// decodeTree decodes payload in format f. hard is set when no tree could be
// built; soft is the first problem that still left a complete tree
// (duplicate key, trailing data, non-text CBOR key), so the header can
// still be read for the response.
func decodeTree(f Format, payload []byte) (root node, soft, hard *Problem) {
	switch f {
	case JSON:
		return decodeJSON(payload)
	case CBOR:
		return decodeCBOR(payload)
	default:
		return node{}, nil, malformed(CategoryDecode, "", "unknown format "+strconv.Quote(string(f))+"; want json or cbor")
	}
}
