package espat

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// commands returns the recorded command events.
func commands(r *rig) []Event {
	var out []Event
	for _, e := range r.m.Events() {
		if e.Kind == EventCommand {
			out = append(out, e)
		}
	}
	return out
}

// TestCommandsRecordAnswers: every command is recorded with its full
// answer, its result and, for anything but success, why.
func TestCommandsRecordAnswers(t *testing.T) {
	r := newRig(t, []string{"join"})
	r.t1()
	r.cmd("AT+CWDHCP_CUR=1,1", "\r\nERROR\r\n")
	r.cmd("AT+CWMODE=7", "\r\nERROR\r\n")
	r.cmd("AT+CIPSEND=5", "\r\nERROR\r\n")
	r.send("AT+CWJAP=\"lab\",\"secret123\"\r\n")
	r.cmd("AT", "\r\nbusy p...\r\n")
	r.open("join")
	r.expect("WIFI CONNECTED\r\n", "WIFI GOT IP\r\n", ok)
	p := r.t3()
	r.cmd("AT+CIPSEND=2", "\r\nOK\r\n\r\n>")
	r.send("hi")
	readN(t, p, 2)
	r.expect("\r\nRecv 2 bytes\r\n", "\r\nSEND OK\r\n")
	r.cmd("AT+CIPSTATE?", "+CIPSTATE:0,\"TCP\",\"192.168.1.10\",8883,50152,0\r\n", ok)

	type rec struct{ text, answer, result, reason string }
	var got []rec
	for _, e := range commands(r) {
		got = append(got, rec{e.Text, e.Answer, e.Result, e.Reason})
	}
	assert.Equal(t, []rec{
		{"AT", ok, "OK", ""},
		{"ATE0", ok, "OK", ""},
		{"AT+GMR", GMR + ok, "OK", ""},
		{"AT+CWMODE=1", ok, "OK", ""},
		{"AT+CIPMUX=0", ok, "OK", ""},
		{"AT+CWDHCP_CUR=1,1", "\r\nERROR\r\n", "ERROR", "unsupported: AT+CWDHCP_CUR exists only in the 1.7 dialect"},
		{"AT+CWMODE=7", "\r\nERROR\r\n", "ERROR", "bad argument"},
		{"AT+CIPSEND=5", "\r\nERROR\r\n", "ERROR", "wrong state: link 0 is not open"},
		{"AT", "\r\nbusy p...\r\n", "busy p...", "busy: a command was running (AT+CWJAP=\"lab\",\"secret123\" still running)"},
		{"AT+CWJAP=\"lab\",\"secret123\"", "WIFI CONNECTED\r\nWIFI GOT IP\r\n" + ok, "OK", ""},
		{"AT+CIPSTART=\"TCP\",\"192.168.1.10\",8883,60", "CONNECT\r\n" + ok, "OK", ""},
		{"AT+CIPSEND=2", "\r\nOK\r\n\r\n>\r\nRecv 2 bytes\r\n\r\nSEND OK\r\n", "SEND OK", ""},
		{"AT+CIPSTATE?", "+CIPSTATE:0,\"TCP\",\"192.168.1.10\",8883,50152,0\r\n" + ok, "OK", ""},
	}, got)
}

func TestUnsolicitedIsNotAnAnswer(t *testing.T) {
	r := newRig(t, nil)
	r.t1()
	r.t2()
	p := r.t3()
	r.writePeer(p, "x")
	r.expect("\r\n+IPD,1:x\r\n")
	r.cmd("AT", ok)
	c := commands(r)
	assert.Equal(t, ok, c[len(c)-1].Answer)
}

func TestDiagnose(t *testing.T) {
	t.Run("refused init command", func(t *testing.T) {
		r := newRig(t, nil)
		r.expect("\r\nready\r\n")
		r.cmd("ATE0", "ATE0\r\n", ok)
		r.clock.Set(r.clock.Now().Add(1800 * time.Millisecond))
		r.cmd("AT+CWDHCP_CUR=1,1", "\r\nERROR\r\n")
		assert.Equal(t, "module refused AT+CWDHCP_CUR=1,1 at 1.8 s (unsupported: AT+CWDHCP_CUR exists only in the 1.7 dialect); Wi-Fi never joined",
			Diagnose(r.m.Events()))
	})
	t.Run("wrong password", func(t *testing.T) {
		r := newRig(t, nil)
		r.t1()
		r.cmd("AT+CWJAP=\"lab\",\"nope\"", "+CWJAP:2\r\n", "\r\nERROR\r\n")
		assert.Equal(t, `module refused AT+CWJAP="lab","nope" at 0.0 s (wrong state: join failed: wrong password); Wi-Fi never joined`,
			Diagnose(r.m.Events()))
	})
	t.Run("broker refused", func(t *testing.T) {
		r := newRig(t, nil)
		r.t1()
		r.t2()
		r.cmd("AT+CIPSTART=\"TCP\",\"192.168.1.10\",1", "\r\nERROR\r\n", "CLOSED\r\n")
		assert.Equal(t, `module refused AT+CIPSTART="TCP","192.168.1.10",1 at 0.0 s (wrong state: dial 192.168.1.10:1: connect: connection refused); `+
			`no link opened (last dial to 192.168.1.10 failed: refused: connect: connection refused)`, Diagnose(r.m.Events()))
	})
	t.Run("link but no data", func(t *testing.T) {
		r := newRig(t, nil)
		r.t1()
		r.t2()
		r.t3()
		assert.Equal(t, `last command AT+CIPSTART="TCP","192.168.1.10",8883,60 at 0.0 s answered OK; a link opened but no data was sent`,
			Diagnose(r.m.Events()))
	})
	t.Run("silent firmware", func(t *testing.T) {
		r := newRig(t, nil)
		r.expect("\r\nready\r\n")
		r.waitEvent(EventBoot)
		assert.Equal(t, "the firmware sent no AT command", Diagnose(r.m.Events()))
		assert.Equal(t, "the module never became ready", Diagnose(nil))
	})
	t.Run("command cut by a reboot", func(t *testing.T) {
		r := newRig(t, []string{"join", "ready"})
		r.open("ready")
		r.expect("\r\nready\r\n")
		r.cmd("ATE0", "ATE0\r\n", ok)
		r.send("AT+CWJAP=\"lab\",\"secret123\"\r\n")
		require.Eventually(t, func() bool { r.m.mu.Lock(); defer r.m.mu.Unlock(); return r.m.running }, waitLimit, time.Millisecond)
		r.m.Reboot()
		assert.Equal(t, `AT+CWJAP="lab","secret123" at 0.0 s got no final result (interrupted: module rebooted (reboot)); Wi-Fi never joined`,
			Diagnose(r.m.Events()))
	})
	t.Run("traffic flowed", func(t *testing.T) {
		r := newRig(t, nil)
		r.t1()
		r.t2()
		p := r.t3()
		r.cmd("AT+CIPSEND=1", "\r\nOK\r\n\r\n>")
		r.send("x")
		readN(t, p, 1)
		r.expect("\r\nRecv 1 bytes\r\n", "\r\nSEND OK\r\n")
		assert.Empty(t, Diagnose(r.m.Events()))
	})
}
