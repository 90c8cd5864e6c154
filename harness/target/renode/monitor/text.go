package monitor

import (
	"strconv"
	"strings"
)

// telnetDecoder removes telnet commands from Renode's monitor stream:
// negotiation (IAC WILL/WONT/DO/DONT opt), subnegotiation (IAC SB ... IAC
// SE) and other two-byte commands are swallowed, IAC IAC becomes one 0xFF.
// It keeps its state between reads because a sequence may be split.
type telnetDecoder struct{ state int }

const (
	iac  = 0xFF
	sb   = 0xFA
	se   = 0xF0
	will = 0xFB
	dont = 0xFE
)

func (d *telnetDecoder) decode(dst, src []byte) []byte {
	for _, b := range src {
		switch d.state {
		case 0: // data
			if b == iac {
				d.state = 1
				continue
			}
			dst = append(dst, b)
		case 1: // after IAC
			switch {
			case b == iac:
				dst = append(dst, iac)
				d.state = 0
			case b >= will && b <= dont:
				d.state = 2
			case b == sb:
				d.state = 3
			default:
				d.state = 0
			}
		case 2: // option byte of WILL/WONT/DO/DONT
			d.state = 0
		case 3: // inside SB
			if b == iac {
				d.state = 4
			}
		case 4: // IAC inside SB
			if b == se {
				d.state = 0
			} else {
				d.state = 3
			}
		}
	}
	return dst
}

// cleaned is monitor text with CR and ANSI escape sequences removed.
type cleaned struct {
	text       string
	errText    string // text that Renode coloured as an error (colour mode only)
	incomplete bool   // the input ends inside an escape sequence
}

// clean strips every CR and every escape sequence (CSI "ESC [ ... final"
// and two-byte ESC x). Without --plain, Renode wraps error-stream lines in
// SGR ";031" (red, not bold; the red prompt is "31;1"); that text is also
// collected in errText.
func clean(b []byte) cleaned {
	var out, errOut strings.Builder
	inErr := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '\r':
		case c == 0x1b:
			if i+1 >= len(b) {
				return cleaned{out.String(), errOut.String(), true}
			}
			if b[i+1] != '[' {
				i++ // two-byte escape
				continue
			}
			j := i + 2
			for j < len(b) && (b[j] < 0x40 || b[j] > 0x7e) {
				j++
			}
			if j >= len(b) {
				return cleaned{out.String(), errOut.String(), true}
			}
			if b[j] == 'm' {
				inErr = isErrorColour(string(b[i+2 : j]))
			}
			i = j
		default:
			out.WriteByte(c)
			if inErr {
				errOut.WriteByte(c)
			}
		}
	}
	return cleaned{text: out.String(), errText: errOut.String()}
}

// isErrorColour reports SGR parameters that select red without bold.
func isErrorColour(params string) bool {
	red, bold := false, false
	for _, p := range strings.Split(params, ";") {
		n, err := strconv.Atoi(p)
		if err != nil {
			continue
		}
		switch n {
		case 31, 91:
			red = true
		case 1:
			bold = true
		}
	}
	return red && !bold
}
