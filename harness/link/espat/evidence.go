package espat

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Why a command got ERROR, as link.jsonl records it (Event.Reason). A real
// v2 module prints no reason on the AT port; the emulator knows it, so the
// evidence of a run can say why the firmware's handshake stopped.
var (
	// ErrUnsupported: the command is not implemented by this module (or
	// not in this dialect).
	ErrUnsupported = errors.New("unsupported")
	// ErrBadArgument: wrong parameter count, type or range.
	ErrBadArgument = errors.New("bad argument")
	// ErrWrongState: well-formed, but not possible now (no Wi-Fi, link
	// busy or closed, wrong mode, ...).
	ErrWrongState = errors.New("wrong state")
)

// errSyntax is the historical name of ErrBadArgument.
var errSyntax = ErrBadArgument

// stateErr is ErrWrongState with what was wrong.
func stateErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrWrongState, fmt.Sprintf(format, args...))
}

// argErr is ErrBadArgument with what was wrong.
func argErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadArgument, fmt.Sprintf(format, args...))
}

// pendingCmd is the command being answered: its answer accumulates until
// its final result, then it is recorded as one EventCommand.
type pendingCmd struct {
	line   string
	at     time.Time
	answer []byte
	result string // set by the helper that wrote the final result
	reason string
}

// finishCmdLocked records the running command with everything the module
// answered to it. An empty result is read off the answer's final result
// code; an empty reason keeps the one the command set.
func (m *Module) finishCmdLocked(result, reason string) {
	c := m.cur
	if c == nil {
		return
	}
	m.cur = nil
	if result == "" {
		result = c.result
	}
	if result == "" {
		result = finalResult(string(c.answer))
	}
	if reason == "" {
		reason = c.reason
	}
	if result == "" && reason == "" {
		reason = "no final result"
	}
	now := m.cfg.Now()
	m.recordAtLocked(Event{Kind: EventCommand, Text: c.line, Answer: string(c.answer), Result: result,
		Reason: reason, Took: now.Sub(c.at)}, c.at)
}

// finalResult is the last result code in an answer ("" when none).
func finalResult(a string) string {
	a = strings.TrimRight(a, "\r\n ")
	i := strings.LastIndex(a, "\r\n")
	last := a[i+1:]
	if i >= 0 {
		last = a[i+2:]
	}
	switch last {
	case "OK", "ERROR", "SEND OK", "SEND FAIL", "FAIL", "+MQTTPUB:OK", "+MQTTPUB:FAIL":
		return last
	}
	return ""
}

// Diagnose says, from a module's events, where the firmware's network
// bring-up stopped: the last command the module refused (with when it
// first refused it, how often, and why) and the furthest stage reached, e.g. "module refused
// AT+CWDHCP=1,1 at 1.8 s (unsupported); Wi-Fi never joined". It is meant
// for runs that never reached MQTT; it returns "" when the module carried
// application traffic (a send that got SEND OK, or a module MQTT publish),
// since the stop then lies beyond the module.
func Diagnose(evs []Event) string {
	evs = append([]Event(nil), evs...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Mono < evs[j].Mono })
	var (
		booted, cmds, wifi, linked, sent bool
		refused, busy, last              *Event
		dialFail                         *Event
		firstRefusal                     = map[string]time.Duration{}
		refusals                         = map[string]int{}
	)
	for i := range evs {
		e := &evs[i]
		switch e.Kind {
		case EventBoot:
			booted = true
		case EventCommand:
			cmds = true
			last = e
			switch e.Result {
			case "ERROR", "FAIL", "SEND FAIL", "+MQTTPUB:FAIL":
				refused = e
				if _, seen := firstRefusal[e.Text]; !seen {
					firstRefusal[e.Text] = e.Mono
				}
				refusals[e.Text]++
			case "busy p...":
				busy = e
			}
		case EventWiFiUp:
			wifi = true
		case EventLinkOpen:
			linked = true
		case EventDialFail:
			dialFail = e
		case EventSend:
			if e.OK {
				sent = true
			}
		}
	}
	if sent {
		return ""
	}
	var parts []string
	switch {
	case refused != nil:
		why := refused.Reason
		if why == "" {
			why = "no reason recorded"
		}
		when := "at " + secs(firstRefusal[refused.Text])
		if n := refusals[refused.Text]; n > 1 {
			when = fmt.Sprintf("%d times from %s", n, secs(firstRefusal[refused.Text]))
		}
		parts = append(parts, fmt.Sprintf("module refused %s %s (%s)", refused.Text, when, why))
	case last != nil && last.Result == "" && last.Reason != "":
		parts = append(parts, fmt.Sprintf("%s at %s got no final result (%s)", last.Text, secs(last.Mono), last.Reason))
	case busy != nil:
		parts = append(parts, fmt.Sprintf("module answered busy to %s at %s (%s)", busy.Text, secs(busy.Mono), busy.Reason))
	case last != nil:
		parts = append(parts, fmt.Sprintf("last command %s at %s answered %s", last.Text, secs(last.Mono), orNone(last.Result)))
	}
	switch {
	case !booted:
		parts = append(parts, "the module never became ready")
	case !cmds:
		parts = append(parts, "the firmware sent no AT command")
	case !wifi:
		parts = append(parts, "Wi-Fi never joined")
	case !linked && dialFail != nil:
		parts = append(parts, fmt.Sprintf("no link opened (last dial to %s failed: %s)", dialFail.Host, dialFail.Reason))
	case !linked:
		parts = append(parts, "Wi-Fi joined but no link was opened")
	default:
		parts = append(parts, "a link opened but no data was sent")
	}
	return strings.Join(parts, "; ")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}
