package defender

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// responseEncMode writes the struct in field order with integers as CBOR
// integers, the shape the v4 system test decodes (text keys throughout).
var responseEncMode = func() cbor.EncMode {
	em, err := cbor.EncOptions{}.EncMode()
	if err != nil {
		panic("defender: cbor options: " + err.Error()) // static options
	}
	return em
}()

// EncodeResponse encodes r in the format of the report it answers: JSON on
// json/... topics, CBOR on cbor/... topics (protocol doc 3.1).
func EncodeResponse(f Format, r Response) ([]byte, error) {
	if err := checkResponse(r); err != nil {
		return nil, err
	}
	switch f {
	case JSON:
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("defender: encode response: %w", err)
		}
		return b, nil
	case CBOR:
		b, err := responseEncMode.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("defender: encode response: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("defender: encode response: unknown format %q", f)
}

func checkResponse(r Response) error {
	switch {
	case r.ThingName == "":
		return errors.New("defender: response: thingName is empty")
	case r.Status != StatusAccepted && r.Status != StatusRejected:
		return fmt.Errorf("defender: response: status %q is neither %s nor %s", r.Status, StatusAccepted, StatusRejected)
	case !utf8.ValidString(r.ThingName):
		return errors.New("defender: response: thingName is not valid UTF-8")
	case r.StatusDetails != nil && !(utf8.ValidString(r.StatusDetails.ErrorCode) && utf8.ValidString(r.StatusDetails.ErrorMessage)):
		return errors.New("defender: response: statusDetails is not valid UTF-8")
	}
	return nil
}

// DecodeResponse reads a response as a device would, strictly: one
// well-formed JSON value or CBOR item, no duplicate keys, the documented
// fields with their types. Unknown fields are ignored, as clients do.
func DecodeResponse(f Format, b []byte) (Response, error) {
	var r Response
	root, soft, hard := decodeTree(f, b)
	if p := firstProblem(hard, soft); p != nil {
		return r, fmt.Errorf("defender: decode response: %s at %q", p.Reason, p.Path)
	}
	if root.kind != nObject {
		return r, fmt.Errorf("defender: decode response: want an object, got %s", root.typeName())
	}
	var seen struct{ thing, status, timestamp bool }
	for i := range root.obj {
		m := &root.obj[i]
		var err error
		switch m.key {
		case "thingName":
			r.ThingName, err = textField(m)
			seen.thing = true
		case "status":
			r.Status, err = textField(m)
			seen.status = true
		case "reportId":
			if m.val.kind != nUint {
				err = fmt.Errorf("reportId must be a non-negative integer, got %s", m.val.describe())
			}
			id := m.val.u
			r.ReportID = &id
		case "timestamp":
			r.Timestamp, err = int64Field(m)
			seen.timestamp = true
		case "statusDetails":
			r.StatusDetails, err = statusDetails(&m.val)
		}
		if err != nil {
			return Response{}, fmt.Errorf("defender: decode response: %w", err)
		}
	}
	switch {
	case !seen.thing:
		return Response{}, errors.New("defender: decode response: missing thingName")
	case !seen.status:
		return Response{}, errors.New("defender: decode response: missing status")
	case !seen.timestamp:
		return Response{}, errors.New("defender: decode response: missing timestamp")
	}
	if err := checkResponse(r); err != nil {
		return Response{}, err
	}
	return r, nil
}

func textField(m *member) (string, error) {
	if m.val.kind != nString {
		return "", fmt.Errorf("%s must be a string, got %s", m.key, m.val.describe())
	}
	return m.val.str, nil
}

func int64Field(m *member) (int64, error) {
	switch {
	case m.val.kind == nUint && m.val.u <= math.MaxInt64:
		return int64(m.val.u), nil
	case m.val.kind == nNegInt:
		var v int64
		if _, err := fmt.Sscan(m.val.str, &v); err == nil {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%s must be a 64-bit integer, got %s", m.key, m.val.describe())
}

func statusDetails(n *node) (*StatusDetails, error) {
	if n.kind != nObject {
		return nil, fmt.Errorf("statusDetails must be an object, got %s", n.typeName())
	}
	d := &StatusDetails{}
	for i := range n.obj {
		m := &n.obj[i]
		var err error
		switch m.key {
		case "ErrorCode":
			d.ErrorCode, err = textField(m)
		case "ErrorMessage":
			d.ErrorMessage, err = textField(m)
		}
		if err != nil {
			return nil, fmt.Errorf("statusDetails: %w", err)
		}
	}
	return d, nil
}
