package report

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Offset formats a run offset as [h:]mm:ss.mmm, which sorts and lines up in
// tables for runs from seconds to days.
func Offset(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign, d = "-", -d
	}
	ms := d.Milliseconds()
	h, m, s, frac := ms/3_600_000, ms/60_000%60, ms/1000%60, ms%1000
	if h > 0 {
		return fmt.Sprintf("%s%d:%02d:%02d.%03d", sign, h, m, s, frac)
	}
	return fmt.Sprintf("%s%02d:%02d.%03d", sign, m, s, frac)
}

// Human formats a duration for reading: "850ms", "12.4s", "2m05s", "1h02m".
func Human(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + Human(-d)
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		s := strconv.FormatFloat(d.Seconds(), 'f', 1, 64)
		return strings.TrimSuffix(s, ".0") + "s"
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// Bytes formats a size: "412 B", "3.1 KiB", "2.0 MiB".
func Bytes(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1024*1024:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	default:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1024*1024))
	}
}

// Excerpt renders at most limit bytes of a payload for people: printable
// UTF-8 text as it is, anything else (CBOR) as a hex dump.
func Excerpt(p []byte, limit int) string {
	cut := len(p) > limit
	if cut {
		p = p[:limit]
	}
	var s string
	if isText(p) {
		s = strings.ToValidUTF8(string(p), "")
	} else {
		s = hexDump(p)
	}
	if cut {
		s += "\n… (cut at " + strconv.Itoa(limit) + " bytes)"
	}
	return s
}

func isText(p []byte) bool {
	for len(p) > 0 {
		r, n := utf8.DecodeRune(p)
		if n == 0 || (r == utf8.RuneError && n == 1) {
			// a rune cut by the limit at the very end is still text
			return len(p) < utf8.UTFMax && !utf8.FullRune(p)
		}
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' || r == 0x7f {
			return false
		}
		p = p[n:]
	}
	return true
}

func hexDump(p []byte) string {
	var b strings.Builder
	for off := 0; off < len(p); off += 16 {
		line := p[off:min(off+16, len(p))]
		fmt.Fprintf(&b, "%04x  ", off)
		for i := range 16 {
			if i < len(line) {
				fmt.Fprintf(&b, "%02x ", line[i])
			} else {
				b.WriteString("   ")
			}
			if i == 7 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(" |")
		for _, c := range line {
			if c >= 0x20 && c < 0x7f {
				b.WriteByte(c)
			} else {
				b.WriteByte('.')
			}
		}
		b.WriteString("|")
		if off+16 < len(p) {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Text renders a finding on one line, for JUnit bodies and Markdown lists:
// "[report 42 @ 01:03.900] message (expected X, observed Y; at /path)".
func (f Finding) Text() string {
	var b strings.Builder
	var where []string
	if f.ReportID != nil {
		where = append(where, "report "+strconv.FormatUint(*f.ReportID, 10))
	}
	if f.At != nil {
		where = append(where, "@ "+Offset(*f.At))
	}
	if len(where) > 0 {
		b.WriteString("[" + strings.Join(where, " ") + "] ")
	}
	b.WriteString(f.Message)
	var detail []string
	if f.Expected != "" {
		detail = append(detail, "expected "+f.Expected)
	}
	if f.Observed != "" {
		detail = append(detail, "observed "+f.Observed)
	}
	if f.Path != "" {
		detail = append(detail, "at "+f.Path)
	}
	if len(detail) > 0 {
		b.WriteString(" (" + strings.Join(detail, ", ") + ")")
	}
	return b.String()
}
