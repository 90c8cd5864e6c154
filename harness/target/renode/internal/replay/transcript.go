// Package replay reads the recordings of a real Renode 1.16.1 (telnet
// transcripts and raw XML-RPC HTTP exchanges, see testdata/README.md) and
// replays them over real sockets. Renode cannot be installed in this
// project's CI, so these doubles stand in for it: they send exactly the
// bytes Renode sent, in the recorded order and pacing, and check that the
// client sent exactly what the recording says.
package replay

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Direction says who sent a record.
type Direction int

const (
	// FromRenode is output of Renode to the client.
	FromRenode Direction = iota
	// FromClient is input the recording client sent.
	FromClient
	// EOF is the point where Renode closed the connection.
	EOF
)

func (d Direction) String() string {
	switch d {
	case FromRenode:
		return "renode"
	case FromClient:
		return "client"
	default:
		return "EOF"
	}
}

// Record is one entry of a transcript.
type Record struct {
	Line     int           // line of the header in the transcript file
	At       time.Duration // since connect()
	Until    time.Duration // last recv() of a merged Renode record (= At if one recv)
	Dir      Direction
	Declared int // byte count stated in the header (differs when paths were substituted)
	Chunks   int // recv() calls that delivered a Renode record (1 if not stated)
	Omitted  int // bytes the recording left out ("showing first N; M more bytes omitted")
	Data     []byte
}

// Transcript is a parsed telnet transcript (*.txt or *.hex.txt).
type Transcript struct {
	Name    string
	Header  []string // the leading '#' comment lines, without '#'
	Records []Record
}

var headerRE = regexp.MustCompile(`^\[\+\s*([0-9.]+)s\] (<- renode|-> client)(?:: EOF.*| (\d+) bytes(?: in (\d+) recv\(\) chunks)?(?: until \+([0-9.]+)s)?(?: \(showing first (\d+); (\d+) more bytes omitted.*\))?)$`)

// ParseTranscriptFile reads a transcript in the text (.txt) or hex (.hex.txt)
// form described in the recordings' README.
func ParseTranscriptFile(path string) (*Transcript, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return ParseTranscript(path, raw, strings.HasSuffix(path, ".hex.txt"))
}

// ParseTranscript parses transcript text; hexForm selects the hexdump body
// format instead of quoted strings.
func ParseTranscript(name string, raw []byte, hexForm bool) (*Transcript, error) {
	t := &Transcript{Name: name}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur *Record
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
			if cur == nil {
				t.Header = append(t.Header, strings.TrimSpace(strings.TrimPrefix(line, "#")))
			}
		case strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, "[+"):
			rec, err := parseHeader(line, n)
			if err != nil {
				return nil, fmt.Errorf("replay: %s:%d: %w", name, n, err)
			}
			t.Records = append(t.Records, rec)
			cur = &t.Records[len(t.Records)-1]
		case strings.HasPrefix(line, "    "):
			if cur == nil || cur.Dir == EOF {
				return nil, fmt.Errorf("replay: %s:%d: data line outside a record", name, n)
			}
			var b []byte
			var err error
			if hexForm {
				b, err = parseHexLine(line)
			} else {
				b, err = parseQuotedLine(line)
			}
			if err != nil {
				return nil, fmt.Errorf("replay: %s:%d: %w", name, n, err)
			}
			cur.Data = append(cur.Data, b...)
		default:
			return nil, fmt.Errorf("replay: %s:%d: unexpected line %q", name, n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("replay: %s: %w", name, err)
	}
	if len(t.Records) == 0 {
		return nil, fmt.Errorf("replay: %s: no records", name)
	}
	return t, nil
}

func parseHeader(line string, n int) (Record, error) {
	m := headerRE.FindStringSubmatch(line)
	if m == nil {
		return Record{}, fmt.Errorf("bad record header %q", line)
	}
	rec := Record{Line: n, Chunks: 1}
	rec.At = seconds(m[1])
	rec.Until = rec.At
	switch {
	case m[2] == "-> client":
		rec.Dir = FromClient
	case m[3] == "":
		rec.Dir = EOF
		return rec, nil
	default:
		rec.Dir = FromRenode
	}
	rec.Declared, _ = strconv.Atoi(m[3])
	if m[4] != "" {
		rec.Chunks, _ = strconv.Atoi(m[4])
	}
	if m[5] != "" {
		rec.Until = seconds(m[5])
	}
	if m[7] != "" {
		rec.Omitted, _ = strconv.Atoi(m[7])
	}
	return rec, nil
}

func seconds(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Second))
}

// parseQuotedLine decodes `    "..."`: the content is everything between the
// first and the last double quote (quotes inside are literal), with the
// escapes \r \n \t \e \\ and \xNN.
func parseQuotedLine(line string) ([]byte, error) {
	first := strings.IndexByte(line, '"')
	last := strings.LastIndexByte(line, '"')
	if first < 0 || last <= first {
		return nil, fmt.Errorf("unquoted data line %q", line)
	}
	s := line[first+1 : last]
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("dangling backslash in %q", line)
		}
		i++
		switch s[i] {
		case 'r':
			out = append(out, '\r')
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'e':
			out = append(out, 0x1b)
		case '\\':
			out = append(out, '\\')
		case 'x':
			if i+2 >= len(s) {
				return nil, fmt.Errorf("short \\x escape in %q", line)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("bad \\x escape in %q: %w", line, err)
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf("unknown escape \\%c in %q", s[i], line)
		}
	}
	return out, nil
}

// parseHexLine decodes `    0000  ff fd 00 ...  |...|`.
func parseHexLine(line string) ([]byte, error) {
	s := strings.TrimSpace(line)
	if bar := strings.IndexByte(s, '|'); bar >= 0 {
		s = s[:bar]
	}
	fields := strings.Fields(s)
	if len(fields) < 2 {
		return nil, fmt.Errorf("short hex line %q", line)
	}
	b, err := hex.DecodeString(strings.Join(fields[1:], ""))
	if err != nil {
		return nil, fmt.Errorf("bad hex line %q: %w", line, err)
	}
	return b, nil
}

// Substitute replaces the recordings' placeholders (e.g. "<FW_DIR>") with
// concrete values; the same map is applied to both directions so a replayed
// echo matches what the client really sent.
func Substitute(b []byte, placeholders map[string]string) []byte {
	for k, v := range placeholders {
		b = bytes.ReplaceAll(b, []byte(k), []byte(v))
	}
	return b
}
