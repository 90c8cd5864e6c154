package defender

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// cborDecMode checks well-formedness and the limits before the tree is
// built, and decodes the scalars the walk leaves to the library.
// Indefinite-length items are allowed: the STM32 reference sends them.
var cborDecMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  maxDepth,
		MaxArrayElements: maxElements,
		MaxMapPairs:      maxElements,
		IndefLength:      cbor.IndefLengthAllowed,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		UTF8:             cbor.UTF8RejectInvalid,
		TagsMd:           cbor.TagsAllowed, // tags are refused by the walk, with a path
	}.DecMode()
	if err != nil {
		panic("defender: cbor options: " + err.Error()) // static options; a failure is a programming error
	}
	return dm
}()

// decodeCBOR builds the tree from one CBOR data item. fxamacker/cbor
// validates the whole item first (syntax, nesting, element counts); the walk
// below then reads maps and arrays itself so it keeps key order, reports
// duplicate and non-text keys with their path, and checks UTF-8.
func decodeCBOR(b []byte) (root node, soft, hard *Problem) {
	err := cborDecMode.Wellformed(b)
	var extra *cbor.ExtraneousDataError
	trailing := errors.As(err, &extra)
	libFail := func() *Problem {
		return malformed(CategoryDecode, "", "invalid CBOR: "+strings.TrimPrefix(err.Error(), "cbor: "))
	}
	if err != nil && !trailing && !limitError(err) {
		return node{}, nil, libFail()
	}
	w := cborWalker{b: b}
	if perr := w.item(&root); perr != nil {
		return node{}, nil, perr
	}
	if err != nil && !trailing {
		// A limit the walk's own bounds did not catch (they match the
		// library's, so this is a safety net): keep the library's verdict.
		return node{}, nil, libFail()
	}
	if trailing || w.i != len(b) {
		w.softFail("", trailingReason(b, w.i))
	}
	return root, w.soft, nil
}

// limitError reports whether err is one of the decoder limits; the walk
// enforces the same limits and can name the path where they were hit.
func limitError(err error) bool {
	var depth *cbor.MaxNestedLevelError
	var elems *cbor.MaxArrayElementsError
	var pairs *cbor.MaxMapPairsError
	return errors.As(err, &depth) || errors.As(err, &elems) || errors.As(err, &pairs)
}

type cborWalker struct {
	b     []byte
	i     int
	depth int
	path  pathStack
	soft  *Problem
}

func (w *cborWalker) softFail(path, reason string) {
	if w.soft == nil {
		w.soft = malformed(CategoryDecode, path, reason)
	}
}

func (w *cborWalker) fail(format string, args ...any) *Problem {
	return malformed(CategoryDecode, w.path.pointer(), fmt.Sprintf("invalid CBOR at byte %d: ", w.i)+fmt.Sprintf(format, args...))
}

const cborBreak = 0xff

// head reads an item's initial byte and argument. indef is set for
// additional information 31.
func (w *cborWalker) head() (major byte, arg uint64, indef bool, err *Problem) {
	if w.i >= len(w.b) {
		return 0, 0, false, w.fail("unexpected end of input")
	}
	c := w.b[w.i]
	major, ai := c>>5, c&0x1f
	w.i++
	var n int
	switch {
	case ai < 24:
		return major, uint64(ai), false, nil
	case ai == 24:
		n = 1
	case ai == 25:
		n = 2
	case ai == 26:
		n = 4
	case ai == 27:
		n = 8
	case ai == 31:
		return major, 0, true, nil
	default:
		return 0, 0, false, w.fail("reserved additional information %d", ai)
	}
	if w.i+n > len(w.b) {
		return 0, 0, false, w.fail("unexpected end of input")
	}
	var buf [8]byte
	copy(buf[8-n:], w.b[w.i:w.i+n])
	w.i += n
	return major, binary.BigEndian.Uint64(buf[:]), false, nil
}

func (w *cborWalker) item(out *node) *Problem {
	start := w.i
	major, arg, indef, err := w.head()
	if err != nil {
		return err
	}
	if indef && (major <= 1 || major == 6) {
		return w.fail("indefinite length on major type %d", major)
	}
	switch major {
	case 0:
		*out = node{kind: nUint, u: arg}
	case 1:
		text := "-18446744073709551616"
		if arg < math.MaxUint64 {
			text = "-" + strconv.FormatUint(arg+1, 10)
		}
		*out = node{kind: nNegInt, str: text}
	case 2, 3:
		return w.str(out, major, arg, indef, start)
	case 4:
		return w.array(out, arg, indef)
	case 5:
		return w.mapItem(out, arg, indef)
	case 6:
		// Tags (bignums, dates, self-describe) carry nothing a report can
		// hold; refuse the value and keep walking so the header is read.
		path := w.path.pointer()
		if err := w.enter(); err != nil {
			return err
		}
		var inner node
		if err := w.item(&inner); err != nil {
			return err
		}
		w.depth--
		reason := fmt.Sprintf("CBOR tag %d is not allowed", arg)
		if arg == 2 || arg == 3 {
			// A bignum: AWS reads integers as signed 64-bit, and a plain
			// CBOR integer holds every one of them.
			reason += fmt.Sprintf(" (a %s bignum: report integers are plain CBOR integers up to %d)",
				map[bool]string{true: "positive", false: "negative"}[arg == 2], uint64(MaxInteger))
		}
		w.softFail(path, reason)
		*out = node{kind: nInvalid, str: "tagged item"}
	case 7:
		return w.simple(out, arg, start)
	}
	return nil
}

// str reads a byte or text string; chunked strings go through the library.
func (w *cborWalker) str(out *node, major byte, n uint64, indef bool, start int) *Problem {
	kind := nString
	if major == 2 {
		kind = nBytes
	}
	var s string
	if indef {
		var err error
		var rest []byte
		if major == 2 {
			var bs []byte
			rest, err = cborDecMode.UnmarshalFirst(w.b[start:], &bs)
			s = string(bs)
		} else {
			var text string // its own variable: taking &s would move s to the heap on every call
			rest, err = cborDecMode.UnmarshalFirst(w.b[start:], &text)
			s = text
		}
		if err != nil {
			return w.fail("%s", strings.TrimPrefix(err.Error(), "cbor: "))
		}
		w.i = len(w.b) - len(rest)
	} else {
		if n > uint64(len(w.b)-w.i) {
			return w.fail("string runs past the end of input")
		}
		s = intern(w.b[w.i : w.i+int(n)])
		w.i += int(n)
	}
	if kind == nString && !utf8.ValidString(s) {
		// Soft: the rest still decodes, so the header can be echoed.
		w.softFail(w.path.pointer(), fmt.Sprintf("invalid CBOR at byte %d: invalid UTF-8 in text string", start))
		s = strings.ToValidUTF8(s, string(utf8.RuneError))
	}
	*out = node{kind: kind, str: s}
	return nil
}

func (w *cborWalker) enter() *Problem {
	w.depth++
	if w.depth > maxDepth {
		return w.fail("nesting deeper than %d levels", maxDepth)
	}
	return nil
}

// more reports whether another element follows: for a definite container
// while fewer than n were read, for an indefinite one until the break byte.
func (w *cborWalker) more(read int, n uint64, indef bool) (bool, *Problem) {
	if !indef {
		return uint64(read) < n, nil
	}
	if w.i >= len(w.b) {
		return false, w.fail("unexpected end of input, missing break")
	}
	if w.b[w.i] == cborBreak {
		w.i++
		return false, nil
	}
	return true, nil
}

// maxPrealloc caps a container's up-front allocation: a declared count is
// only a claim, and nested claims would each reserve room for the whole
// remaining payload (33 nested arrays claiming 65535 items made a 123 KB
// payload allocate 185 MB). Larger containers grow as they are read.
const maxPrealloc = 16

// capacity bounds a preallocation by the claim, what the remaining input
// can hold, and maxPrealloc.
func (w *cborWalker) capacity(n uint64, indef bool, perItem int) int {
	if indef {
		return 0
	}
	return int(min(n, uint64((len(w.b)-w.i)/perItem), maxPrealloc))
}

func (w *cborWalker) array(out *node, n uint64, indef bool) *Problem {
	if err := w.enter(); err != nil {
		return err
	}
	*out = node{kind: nArray, arr: make([]node, 0, w.capacity(n, indef, 1))}
	for {
		more, err := w.more(len(out.arr), n, indef)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		if len(out.arr) >= maxElements {
			return w.fail("array has more than %d elements", maxElements)
		}
		w.path.push(strconv.Itoa(len(out.arr)))
		out.arr = append(out.arr, node{})
		if err := w.item(&out.arr[len(out.arr)-1]); err != nil {
			return err
		}
		w.path.pop()
	}
	w.depth--
	return nil
}

func (w *cborWalker) mapItem(out *node, n uint64, indef bool) *Problem {
	if err := w.enter(); err != nil {
		return err
	}
	*out = node{kind: nObject, obj: make([]member, 0, w.capacity(n, indef, 2))}
	var seen map[string]struct{}
	for pair := 0; ; pair++ {
		more, err := w.more(pair, n, indef)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		if pair >= maxElements {
			return w.fail("map has more than %d pairs", maxElements)
		}
		// Decode in place (key first into the value slot) so no node
		// escapes to the heap per pair; the slot is dropped if unusable.
		out.obj = append(out.obj, member{})
		m := &out.obj[len(out.obj)-1]
		if err := w.item(&m.val); err != nil {
			return err
		}
		key := m.val
		m.val = node{}
		textKey := key.kind == nString
		if !textKey {
			w.softFail(w.path.pointer(), fmt.Sprintf("map key #%d is %s %s; only text keys are allowed",
				pair, article(key.typeName()), keyText(&key)))
		}
		m.key = key.str
		dup := textKey && isDuplicate(out.obj[:len(out.obj)-1], &seen, key.str)
		w.path.push(key.str)
		if err := w.item(&m.val); err != nil {
			return err
		}
		if dup {
			w.softFail(w.path.pointer(), fmt.Sprintf("duplicate key %q", key.str))
		}
		w.path.pop()
		if !textKey || dup {
			out.obj = out.obj[:len(out.obj)-1]
		}
	}
	w.depth--
	return nil
}

func keyText(k *node) string {
	switch k.kind {
	case nUint, nNegInt:
		return k.describe()
	case nBytes:
		return "h'" + fmt.Sprintf("%x", k.str) + "'"
	}
	return ""
}

func article(s string) string {
	if s != "" && strings.ContainsRune("aeiou", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}

// simple reads major type 7: false, true, null, undefined and floats.
func (w *cborWalker) simple(out *node, arg uint64, start int) *Problem {
	switch ai := w.b[start] & 0x1f; ai {
	case 20, 21:
		*out = node{kind: nBool, b: ai == 21}
	case 22:
		*out = node{kind: nNull}
	case 23:
		*out = node{kind: nUndefined}
	case 25:
		*out = node{kind: nFloat, f: halfToFloat(uint16(arg))}
	case 26:
		*out = node{kind: nFloat, f: float64(math.Float32frombits(uint32(arg)))}
	case 27:
		*out = node{kind: nFloat, f: math.Float64frombits(arg)}
	case 31:
		return w.fail("unexpected break")
	default:
		*out = node{kind: nInvalid, str: fmt.Sprintf("simple value %d", arg)}
	}
	return nil
}

// halfToFloat converts an IEEE 754 half-precision float (RFC 8949 D).
func halfToFloat(h uint16) float64 {
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	var v float64
	switch exp {
	case 0:
		v = math.Ldexp(mant, -24)
	case 31:
		if mant == 0 {
			v = math.Inf(1)
		} else {
			v = math.NaN()
		}
	default:
		v = math.Ldexp(mant+1024, exp-25)
	}
	if h&0x8000 != 0 {
		return -v
	}
	return v
}
