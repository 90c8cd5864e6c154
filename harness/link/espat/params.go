package espat

import (
	"strconv"
	"strings"
)

// param is one comma-separated field of a set command: bare (integer) or
// double-quoted (string), possibly empty ("AT+CWJAP="s","p",,1").
type param struct {
	s      string
	quoted bool
}

// parseParams splits the text after '=' into fields, undoing the \, \" \\
// escapes inside quotes (esp-at.md §1.1).
func parseParams(s string) ([]param, error) {
	var out []param
	for i := 0; ; {
		var p param
		if i < len(s) && s[i] == '"' {
			p.quoted = true
			i++
			var b strings.Builder
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return nil, errSyntax
			}
			p.s = b.String()
			if i < len(s) && s[i] != ',' {
				return nil, errSyntax
			}
		} else {
			j := strings.IndexByte(s[i:], ',')
			if j < 0 {
				j = len(s) - i
			}
			p.s = s[i : i+j]
			if strings.ContainsAny(p.s, "\" ") {
				return nil, errSyntax
			}
			i += j
		}
		out = append(out, p)
		if i >= len(s) {
			return out, nil
		}
		i++ // the comma
		if i == len(s) {
			out = append(out, param{})
			return out, nil
		}
	}
}

// integer reads a bare decimal field within [lo, hi].
func (p param) integer(lo, hi int) (int, error) {
	if p.quoted || p.s == "" {
		return 0, errSyntax
	}
	n, err := strconv.Atoi(p.s)
	if err != nil || n < lo || n > hi {
		return 0, errSyntax
	}
	return n, nil
}

// str reads a quoted field.
func (p param) str() (string, error) {
	if !p.quoted {
		return "", errSyntax
	}
	return p.s, nil
}

// empty reports an omitted optional field.
func (p param) empty() bool { return !p.quoted && p.s == "" }

// parseTimezone reads AT+CIPSNTPCFG's <timezone>: whole hours -12..14 or the
// v2 [+|-]hhmm form (esp-at.md §3.13). It returns the offset in minutes.
func parseTimezone(p param) (int, error) {
	if p.quoted || p.s == "" {
		return 0, errSyntax
	}
	s := p.s
	sign := 1
	switch s[0] {
	case '+':
		s = s[1:]
	case '-':
		sign = -1
		s = s[1:]
	}
	if s == "" || len(s) > 4 {
		return 0, errSyntax
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errSyntax
		}
	}
	n, _ := strconv.Atoi(s)
	h, m := n, 0
	if len(s) > 2 {
		h, m = n/100, n%100
	}
	if m >= 60 {
		return 0, errSyntax
	}
	total := sign * (h*60 + m)
	if total < -12*60 || total > 14*60 {
		return 0, errSyntax
	}
	return total, nil
}
