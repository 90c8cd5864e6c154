package tinygoagent_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/broker"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/judge/conformance"
	"github.com/ddhil/ddhil/harness/judge/detect"
	"github.com/ddhil/ddhil/harness/link/espat"
	"github.com/ddhil/ddhil/harness/report"
	"github.com/ddhil/ddhil/harness/runner"
	"github.com/ddhil/ddhil/harness/scenario"
	"github.com/ddhil/ddhil/harness/session"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/targettest"
	"github.com/ddhil/ddhil/tests/thirdparty/tinygoagent"
)

const (
	thing = "tinygo-dut-1"
	// endpoint has the form of a real AWS IoT data endpoint: the agent is
	// provisioned with the name and resolves it through the module.
	endpoint = "a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"
)

// cmd is one AT command as the module recorded it: the line the driver
// sent and every byte the module answered.
type cmd struct{ line, answer string }

// The handshake of each boot, byte for byte, as TinyGo's espat driver
// (v0.26.0, unmodified) sent it and ddhil's module (1.7 dialect) answered:
//
//	AT                                      \r\nOK\r\n                                  Device.Connected
//	ATE0                                    \r\nOK\r\n                                  Device.Echo(false)
//	AT+CIPCLOSE                             UNLINK\r\n\r\nERROR\r\n (boot 1, no link)      Device.DisconnectSocket
//	                                        CLOSED\r\n\r\nOK\r\n (boot 2: boot 1's link)
//	AT+CWMODE=1                             \r\nOK\r\n                                  ConnectToAccessPoint
//	AT+CWJAP="ddhil","ddhil-pass"           WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n  ConnectToAccessPoint
//	                                        (boot 2: WIFI DISCONNECT\r\n first)
//	AT+CIPSTA?                              +CIPSTA:ip:"192.0.2.100"\r\n+CIPSTA:gateway:"192.0.2.254"\r\n
//	                                        +CIPSTA:netmask:"255.255.255.0"\r\n\r\nOK\r\n  GetClientIP
//	AT+CIPDOMAIN="a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com"
//	                                        +CIPDOMAIN:192.0.2.1\r\n\r\nOK\r\n            net.Dial → ResolveTCPAddr
//	AT+CIPSTART="TCP","192.0.2.1",1883,120  CONNECT\r\n\r\nOK\r\n                         net.Dial → DialTCP
//	AT+CIPSEND=26                           \r\nOK\r\n> \r\nRecv 26 bytes\r\n\r\nSEND OK\r\n   Conn.Write: MQTT CONNECT
//	AT+CIPSEND=120                          ... Recv 120 bytes ... SEND OK                 Conn.Write: SUBSCRIBE accepted+rejected
//
// then one AT+CIPSEND=<n> per report (n = 390-394) and, after the broker
// dropped the connection, AT+CIPSEND=<n> → link is not valid\r\n\r\nERROR\r\n,
// AT+CIPCLOSE → UNLINK\r\n\r\nERROR\r\n and the AT+CIPDOMAIN, AT+CIPSTART,
// CONNECT, SUBSCRIBE sequence again. The data came back as +IPD,<len>:<data>
// (no CR LF after the data in the 1.7 dialect) and the driver's
// Conn.Read returned it.
var handshake = []cmd{
	{"AT", "\r\nOK\r\n"},
	{"ATE0", "\r\nOK\r\n"},
	{"AT+CIPCLOSE", "UNLINK\r\n\r\nERROR\r\n"},
	{"AT+CWMODE=1", "\r\nOK\r\n"},
	{`AT+CWJAP="ddhil","ddhil-pass"`, "WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n"},
	{"AT+CIPSTA?", "+CIPSTA:ip:\"192.0.2.100\"\r\n+CIPSTA:gateway:\"192.0.2.254\"\r\n+CIPSTA:netmask:\"255.255.255.0\"\r\n\r\nOK\r\n"},
	{`AT+CIPDOMAIN="` + endpoint + `"`, "+CIPDOMAIN:192.0.2.1\r\n\r\nOK\r\n"},
	{`AT+CIPSTART="TCP","192.0.2.1",1883,120`, "CONNECT\r\n\r\nOK\r\n"},
	{"AT+CIPSEND=26", "\r\nOK\r\n> \r\nRecv 26 bytes\r\n\r\nSEND OK\r\n"},
	{"AT+CIPSEND=120", "\r\nOK\r\n> \r\nRecv 120 bytes\r\n\r\nSEND OK\r\n"},
}

// TestTinyGoAgentIsJudged runs an agent built on a third-party ESP-AT
// driver through the whole scenario `ddhil run` plays (normal reporting, a
// broker-side drop, a Throttled rejection and a dropped response, a target
// reset) and judges it with the whole catalogue. The driver gets through
// its init and AT handshake unmodified (the transcript above), its reports
// reach the broker and are accepted, and the agent conforms: every check
// passes (DD-D01 against security-profile.json, the Detect behaviours of
// this agent) except DD-X01, which skips because a plain-TCP module link
// has no TLS to judge (the agent uses ConnectTCPSocket; the driver's SSL
// path takes no client certificate).
//
// What the naive agent gets right only because of its rhythm, and what it
// cannot do, is in the package comment (network_stats from Conn.Write and
// Conn.Read; no local_port; a dropped link noticed at the next report).
func TestTinyGoAgentIsJudged(t *testing.T) {
	prof, err := profile.Parse(tinygoagent.Profile)
	require.NoError(t, err)
	agent := tinygoagent.New()
	tgt := targettest.New(agent.Firmware, targettest.Options{Transport: true,
		Info: target.Info{Kind: "fake", Name: "tinygoagent (in-process, host Go)"}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out := t.TempDir()
	started := time.Now()
	s, err := session.Start(ctx, session.Config{Target: tgt, Profile: prof, Vars: profile.Vars{"thing": thing},
		Endpoint: endpoint, BrokerConfig: broker.Config{Throttle: broker.NoThrottle}, OutDir: out, Logf: t.Logf})
	require.NoError(t, err)
	defer s.Close()
	exp, err := prof.Expectations(s.Vars())
	require.NoError(t, err)
	require.NoError(t, scenario.Run(ctx, s, scenario.Config{Thing: thing, Expect: exp, Logf: t.Logf}, scenario.Full(3)))
	capture, err := s.Capture()
	require.NoError(t, err)
	capture.Expect = exp
	capture.SecurityProfiles, err = detect.Load("security-profile.json")
	require.NoError(t, err)
	rep := runner.Judge(capture, conformance.Catalogue(), started)
	require.NoError(t, report.WriteAll(out, rep))
	t.Logf("console:\n%s", s.Console().Tail(60))

	// The driver's handshake, byte for byte, at both boots.
	boots := commandsByBoot(s.Module().Events())
	require.Len(t, boots, 2, "one handshake per boot (the scenario resets the target once)")
	assert.Equal(t, handshake, boots[0][:min(len(handshake), len(boots[0]))], "boot 1")
	second := append([]cmd(nil), handshake...)
	second[2] = cmd{"AT+CIPCLOSE", "CLOSED\r\n\r\nOK\r\n"} // boot 1's link: the module was not reset
	second[4].answer = "WIFI DISCONNECT\r\n" + second[4].answer
	assert.Equal(t, second, boots[1][:min(len(second), len(boots[1]))], "boot 2")

	// Every other command succeeded, except where the broker had dropped
	// the link: the report's CIPSEND and the agent's CIPCLOSE after it.
	var refused []cmd
	for _, b := range boots {
		for _, c := range b[len(handshake):] {
			if !strings.HasSuffix(c.answer, "\r\nOK\r\n") && !strings.HasSuffix(c.answer, "\r\nSEND OK\r\n") {
				refused = append(refused, c)
			}
		}
	}
	require.Len(t, refused, 2, "%q", refused)
	assert.Regexp(t, `^AT\+CIPSEND=\d+$`, refused[0].line)
	assert.Equal(t, "link is not valid\r\n\r\nERROR\r\n", refused[0].answer)
	assert.Equal(t, cmd{"AT+CIPCLOSE", "UNLINK\r\n\r\nERROR\r\n"}, refused[1])

	// Reports reached the broker and were accepted (bar the Throttled one
	// the scenario forced and the one whose response it dropped).
	accepted := 0
	for _, r := range capture.Reports() {
		if r.Result().Accepted() {
			accepted++
		}
	}
	assert.GreaterOrEqual(t, accepted, 7, "accepted reports")

	// The verdict of the whole catalogue.
	status := map[string]report.Status{}
	for _, c := range rep.Checks {
		status[c.ID] = c.Status
		if c.Status != report.StatusPass {
			t.Logf("%s %s: %s %v", c.ID, c.Status, c.SkipReason, c.Findings)
		}
	}
	for _, ch := range conformance.Catalogue() {
		want := report.StatusPass
		switch ch.ID {
		case "DD-X01": // a plain TCP link: no TLS to judge
			want = report.StatusSkip
		}
		assert.Equal(t, want, status[ch.ID], ch.ID)
	}
	assert.Len(t, rep.Checks, len(conformance.Catalogue()), "no DD-SCN or DD-RUN finding")
	assert.Equal(t, 0, rep.ExitCode(), "ddhil run would exit 0: %s", rep.VerdictReason())
}

// commandsByBoot splits the module's command log at each handshake start
// (the driver's first AT after a boot).
func commandsByBoot(evs []espat.Event) [][]cmd {
	var boots [][]cmd
	for _, e := range evs {
		if e.Kind != espat.EventCommand {
			continue
		}
		c := cmd{e.Text, e.Answer}
		if c.line == "AT" || len(boots) == 0 {
			boots = append(boots, nil)
		}
		boots[len(boots)-1] = append(boots[len(boots)-1], c)
	}
	return boots
}

// TestTinyGoAgentOnV2Module is why the profile selects the 1.7 dialect:
// ESP-AT v2 writes <CR><LF> after +IPD data (esp-at.md §2), and the
// driver, written for the NonOS 1.x firmware, takes everything after the
// colon up to the end of the UART read as data. The CONNACK arrives as
// \r\n+IPD,4:\x20\x02\x00\x00\r\n, the agent's MQTT stream holds
// 20 02 00 00 0d 0a, and 0x0d is no MQTT packet type: the agent never gets
// past CONNECT, so no report reaches the broker. The module is right here
// and the driver is not; nothing in the module is changed for it.
func TestTinyGoAgentOnV2Module(t *testing.T) {
	prof, err := profile.Parse(tinygoagent.Profile)
	require.NoError(t, err)
	tgt := targettest.New(tinygoagent.New().Firmware, targettest.Options{Transport: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := session.Start(ctx, session.Config{Target: tgt, Profile: prof, Vars: profile.Vars{"thing": thing},
		BrokerConfig: broker.Config{Throttle: broker.NoThrottle}, Module: espat.Config{Dialect: espat.DialectV2}})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Console().Expect(ctx, regexp.MustCompile(`mqtt: disconnected reason=mqtt_stream:_unsupported_packet_type_0x0$`))
	require.NoError(t, err, "the CR LF after the CONNACK breaks the agent's MQTT stream")

	var connack *espat.Event
	for _, e := range s.Module().Events() {
		if e.Kind == espat.EventRecv && connack == nil {
			connack = &e
		}
	}
	require.NotNil(t, connack, "the module delivered the CONNACK")
	assert.Equal(t, 4, connack.Bytes)
	for _, e := range s.Broker().Events() {
		assert.NotEqual(t, broker.EventReport, e.Kind, "no report reaches the broker")
	}
}
