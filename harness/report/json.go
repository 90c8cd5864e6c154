package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxJSONSize bounds what ReadJSON accepts: a report keeps at most 128 KB per
// payload, so anything larger than this is not a report.
const MaxJSONSize = 512 << 20

// WriteJSON writes r as indented JSON in the field order of the types (map
// keys sorted), so equal reports give byte-identical files.
func WriteJSON(w io.Writer, r *Report) error {
	f, err := prepare(r)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // payload excerpts stay readable; HTML escapes on its own
	if err := enc.Encode(f); err != nil {
		return fmt.Errorf("report: encode json: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("report: write json: %w", err)
	}
	return nil
}

// ReadJSON reads a report written by WriteJSON. It rejects other schema
// versions by name, and reports that are malformed or inconsistent (see
// Validate). Unknown fields are ignored: later v1 writers may add some.
func ReadJSON(r io.Reader) (*Report, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxJSONSize+1))
	if err != nil {
		return nil, fmt.Errorf("report: read: %w", err)
	}
	if len(data) > MaxJSONSize {
		return nil, fmt.Errorf("report: input larger than %d bytes", MaxJSONSize)
	}
	var head struct {
		Schema *string `json:"schema"`
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&head); err != nil {
		return nil, fmt.Errorf("report: not a JSON object: %w", describeJSONError(data, err))
	}
	switch {
	case head.Schema == nil:
		return nil, errors.New(`report: no "schema" field: not a ddhil report`)
	case *head.Schema != SchemaVersion:
		return nil, fmt.Errorf("report: unsupported schema %q: this ddhil reads %q only", *head.Schema, SchemaVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // evidence numbers keep all 64 bits
	rep := new(Report)
	if err := dec.Decode(rep); err != nil {
		return nil, fmt.Errorf("report: decode: %w", describeJSONError(data, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("report: trailing data after the report object")
	}
	if err := rep.Validate(); err != nil {
		return nil, err
	}
	return rep, nil
}

// describeJSONError adds the line and column to the decoder's byte offset.
func describeJSONError(data []byte, err error) error {
	var off int64 = -1
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		off = syn.Offset
	case errors.As(err, &typ):
		off = typ.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	col := off - int64(bytes.LastIndexByte(data[:off], '\n'))
	return fmt.Errorf("line %d column %d: %w", line, col, err)
}
