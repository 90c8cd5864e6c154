package espat

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Replays of real host drivers' command sequences against the module.
//
// Zephyr: zephyrproject-rtos/zephyr drivers/wifi/esp_at at esp.c@02d6d20,
// esp.h@06758ff (the revisions esp-at-dialects.md cites). The read-only
// source index gives no line numbers, so the driver is cited by function
// and macro; each command below is the expansion the driver sends with its
// default Kconfig (VERSION_2_1) plus PASSIVE_MODE, NET_HOSTNAME_ENABLE and
// DNS_USE.
//
// WiFiEspAT: JAndrassy/WiFiEspAT src/utility/EspAtDrv.cpp@07b1ae8, in its
// default AT1 build (the _CUR names), so against the 1.7 profile.

// zephyrIPD checks a +IPD the way cmd_ipd_parse_hdr (esp.c) does: commas
// at bytes 4 and 6 of the line, so the link id is one digit.
func zephyrIPD(t *testing.T, chunk string) {
	t.Helper()
	line := strings.TrimPrefix(chunk, "\r\n")
	require.True(t, strings.HasPrefix(line, "+IPD"), "%q", chunk)
	require.Equal(t, byte(','), line[4], "cmd_ipd_parse_hdr: ',' at 4")
	require.Equal(t, byte(','), line[6], "cmd_ipd_parse_hdr: ',' at 6")
}

func TestZephyrDriverInitAndConnect(t *testing.T) {
	// esp.h: ESP_INIT_TIMEOUT / ESP_CMD_TIMEOUT are 10 s, the reset waits
	// CONFIG_WIFI_ESP_AT_RESET_TIMEOUT (3 s) for "ready": the defaults must
	// answer well inside them.
	d := New(Config{})
	assert.Less(t, d.cfg.ReadyDelay, 3*time.Second)
	assert.LessOrEqual(t, d.cfg.DialTimeout, 10*time.Second)

	r := newRig(t, nil)
	start := time.Now()
	r.expect("\r\nready\r\n")
	// esp_reset(): AT+RST, then "ready" (on_cmd_ready submits init_work).
	r.cmd("AT+RST", "AT+RST\r\n", ok, "\r\nready\r\n")
	// esp_init_work() setup_cmds, in order:
	r.cmd("AT", "AT\r\n", ok)                                          // SETUP_CMD_NOHANDLE("AT")
	r.cmd("ATE0", "ATE0\r\n", ok)                                      // "turn off echo"
	r.cmd("AT+UART_CUR=115200,8,1,0,0", ok)                            // "AT+UART_CUR="_UART_CUR (esp.h, no hw-flow-control)
	r.cmd("AT+GMR", GMR, ok)                                           // CONFIG_WIFI_ESP_AT_FETCH_VERSION; unsol_cmds log "AT version:" etc.
	r.cmd("AT+CWDHCP=1,1", ok)                                         // ESP_CMD_DHCP_ENABLE(STATION, 1) = "AT+CWDHCP=" "1" "," "1"
	r.cmd("AT+CIPMUX=1", ok)                                           // "enable multiple socket support"
	r.cmd("AT+CWLAPOPT=0,23", ok)                                      // ESP_CMD_CWLAPOPT(ORDERED "0", MASK "23")
	r.cmd("AT+CWMODE=1,0", ok)                                         // ESP_CMD_CWMODE(STA) with ",0" (not 1.7/2.0)
	r.cmd("AT+CWAUTOCONN=0", ok)                                       //
	r.cmd("AT+CWMODE=0,0", ok)                                         // ESP_CMD_CWMODE(NONE)
	r.cmd("AT+CIPRECVMODE=1", ok)                                      // CONFIG_WIFI_ESP_AT_PASSIVE_MODE
	r.cmd("AT+CIPSTAMAC?", "+CIPSTAMAC:\"24:0a:c4:00:00:01\"\r\n", ok) // SETUP_CMD(..., "+"_CIPSTAMAC":", on_cmd_cipstamac)
	// Application connects: esp_mode_switch() sends "AT+"_CWMODE"=X"
	// without ",0", then esp_configure_hostname() "AT+CWHOSTNAME=\"%s\"".
	r.cmd("AT+CWMODE=1", ok)
	r.cmd("AT+CWHOSTNAME=\"zephyr\"", ok)
	// esp_mgmt_connect(): "AT+"_CWJAP"=\"" + escaped SSID + "\",\"" + PSK + "\"";
	// unsol_cmds match "WIFI CONNECTED", "WIFI GOT IP".
	r.cmd("AT+CWJAP=\"lab\",\"secret123\"", "WIFI CONNECTED\r\n", "WIFI GOT IP\r\n", ok)
	// esp_ip_addr_work() (1 s after GOT IP): "AT+"_CIPSTA"?" parsed by
	// on_cmd_cipsta ("+"_CIPSTA":", argv split at ':'), then "AT+CIPDNS?".
	r.cmd("AT+CIPSTA?", "+CIPSTA:ip:\"192.0.2.100\"\r\n+CIPSTA:gateway:\"192.0.2.254\"\r\n+CIPSTA:netmask:\"255.255.255.0\"\r\n", ok)
	r.cmd("AT+CIPDNS?", "+CIPDNS:0,\"192.0.2.254\"\r\n", ok)
	// DNS through Zephyr's resolver on an offloaded UDP socket (link = socket slot).
	r.cmd("AT+CIPSTART=1,\"UDP\",\"192.0.2.254\",53", "1,CONNECT\r\n", ok)
	q := dnsQuery(t, "abc123-ats.iot.eu-west-1.amazonaws.com")
	r.cmd(fmt.Sprintf("AT+CIPSEND=1,%d,\"192.0.2.254\",53", len(q)), "\r\nOK\r\n\r\n>") // _sock_send UDP form
	r.send(string(q))
	r.expect(fmt.Sprintf("\r\nRecv %d bytes\r\n", len(q)), "\r\nSEND OK\r\n")
	notice := <-r.chunks // passive: ESP_PROTO_PASSIVE covers UDP on 2.x
	zephyrIPD(t, notice)
	assert.Regexp(t, `^\r\n\+IPD,1,\d+\r\n$`, notice)
	r.send("AT+CIPRECVDATA=1,2048\r\n") // esp_recvdata_work
	data := <-r.chunks
	assert.True(t, strings.HasPrefix(data, "+CIPRECVDATA:"), "%q", data) // _CIPRECVDATA "+CIPRECVDATA:", end ','
	r.expect(ok)
	r.cmd("AT+CIPCLOSE=1", "1,CLOSED\r\n", ok)
	// _sock_connect(): "AT+CIPSTART=%d,\"TCP\",\"%s\",%d,7200".
	r.send("AT+CIPSTART=0,\"TCP\",\"192.0.2.1\",1883,7200\r\n")
	p := r.peer()
	r.expect("0,CONNECT\r\n", ok) // unsol_cmds "0,CONNECT".."4,CONNECT"
	// _sock_send(): "AT+CIPSEND=%d,%d", wait for '>', payload, SEND OK.
	connect := "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c"
	r.cmd(fmt.Sprintf("AT+CIPSEND=0,%d", len(connect)), "\r\nOK\r\n\r\n>")
	r.send(connect)
	assert.Equal(t, connect, readN(t, p, len(connect)))
	r.expect(fmt.Sprintf("\r\nRecv %d bytes\r\n", len(connect)), "\r\nSEND OK\r\n")
	// Passive receive: "+IPD,<id>,<len>\r\n" queues AT+CIPRECVDATA=<id>,2048.
	r.writePeer(p, "\x20\x02\x00\x00")
	notice = <-r.chunks
	zephyrIPD(t, notice)
	assert.Equal(t, "\r\n+IPD,0,4\r\n", notice)
	r.cmd("AT+CIPRECVDATA=0,2048", "+CIPRECVDATA:4,\x20\x02\x00\x00", ok)
	// esp_put(): "AT+CIPCLOSE=%d"; unsol_cmds "0,CLOSED".
	r.cmd("AT+CIPCLOSE=0", "0,CLOSED\r\n", ok)
	assert.Less(t, time.Since(start), 10*time.Second)

	// Every command was answered OK (or SEND OK); one ERROR would abort
	// init (modem_cmd_handler_setup_cmds).
	for _, e := range r.m.Events() {
		if e.Kind == EventCommand {
			assert.Contains(t, []string{"OK", "SEND OK"}, e.Result, "%s: %q (%s)", e.Text, e.Answer, e.Reason)
		}
	}
	assert.Empty(t, Diagnose(r.m.Events()), "traffic was carried")
}

// TestWiFiEspATInit replays EspAtDrvClass::reset(), joinAP (current),
// connect (highest free link first), send and passive read.
func TestWiFiEspATInit(t *testing.T) {
	r := newRig(t, nil, func(c *Config) { c.Dialect = Dialect17 })
	r.expect("\r\nready\r\n")
	// reset(): cmd->print(F("AT+RST")); sendCommand(PSTR("ready")) — "can be missed".
	r.cmd("AT+RST", "AT+RST\r\n", ok, "\r\nready\r\n")
	r.cmd("ATE0", "ATE0\r\n", ok)            // "turn off echo. must work"
	r.cmd("AT+CIPMUX=1", ok)                 // "Enable multiple connections."
	r.cmd("AT+CIPRECVMODE=1", ok)            // "Set TCP Receive Mode - passive"
	r.cmd("AT+CWMODE?", "+CWMODE:1\r\n", ok) // wifiMode = buffer[strlen("+CWMODE:")] - 48
	r.cmd("AT+GMR", GMR17, ok)               // firmwareVersion(): text between "AT version:" and '('
	// joinAP(persistent=false): AT+CWJAP_CUR="ssid","pass".
	r.cmd("AT+CWJAP_CUR=\"lab\",\"secret123\"", "WIFI CONNECTED\r\n", "WIFI GOT IP\r\n", ok)
	r.cmd("AT+CIPSTATUS", "STATUS:2\r\n", ok) // staStatus(): buffer[strlen("STATUS:")] - 48
	r.cmd("AT+CIPSTA_CUR?", "+CIPSTA_CUR:ip:\"192.0.2.100\"\r\n+CIPSTA_CUR:gateway:\"192.0.2.254\"\r\n+CIPSTA_CUR:netmask:\"255.255.255.0\"\r\n", ok)
	r.cmd("AT+CIPDNS_CUR?", "+CIPDNS_CUR:192.0.2.254\r\n", ok) // staDnsQuery(): strlen("+CIPDNS_CUR:")
	// connect(): AT+CIPSTART=<linkId>,"TCP","host",port — linkId 4 first.
	r.send("AT+CIPSTART=4,\"TCP\",\"192.168.1.10\",1883\r\n")
	p := r.peer()
	r.expect("4,CONNECT\r\n", ok)
	r.cmd("AT+CIPSEND=4,4", "\r\nOK\r\n> ") // 1.7 prompt: '>' then a space
	r.send("ping")
	assert.Equal(t, "ping", readN(t, p, 4))
	r.expect("\r\nRecv 4 bytes\r\n", "\r\nSEND OK\r\n") // the Recv line is required
	r.writePeer(p, "pong!")
	r.expect("\r\n+IPD,4,5\r\n")
	r.cmd("AT+CIPRECVLEN?", "+CIPRECVLEN:0,0,0,0,5\r\n", ok) // 1.7: 0 for closed links
	r.cmd("AT+CIPRECVDATA=4,64", "+CIPRECVDATA,5:pong!", ok) // 1.7 shape
	// close(abort=true): AT+CIPCLOSEMODE=<id>,1 then AT+CIPCLOSE=<id>.
	r.cmd("AT+CIPCLOSEMODE=4,1", ok)
	r.cmd("AT+CIPCLOSE=4", "4,CLOSED\r\n", ok)
	r.cmd("AT+CIPCLOSE=4", "UNLINK\r\n", "\r\nERROR\r\n") // taken as "already closed"
}

// TestN1NonOS17 is transcript N1 (1.7, Mbed-style) plus the 1.7 shapes of
// active +IPD, CIPDOMAIN, CWJAP? and the refusals.
func TestN1NonOS17(t *testing.T) {
	r := newRig(t, []string{"join"}, func(c *Config) { c.Dialect = Dialect17 })
	r.expect("\r\nready\r\n")
	r.cmd("ATE0", "ATE0\r\n", ok)
	r.cmd("AT+CWMODE_DEF=1", ok)
	r.cmd("AT+CIPRECVMODE=1", ok)
	r.cmd("AT+CWMODE_CUR=1", ok)
	r.cmd("AT+CWMODE_CUR?", "+CWMODE_CUR:1\r\n", ok)
	r.cmd("AT+CIPMUX=1", ok)
	r.cmd("AT+CIFSR", "+CIFSR:STAIP,\"0.0.0.0\"\r\n+CIFSR:STAMAC,\"24:0a:c4:00:00:01\"\r\n", ok)
	r.cmd("AT+CWDHCP_CUR=1,1", ok)
	r.cmd("AT+CWDHCP_CUR?", "+CWDHCP_CUR:3\r\n", ok)
	r.send("AT+CWJAP_CUR=\"lab\",\"wrong\"\r\n")
	r.open("join")
	r.expect("+CWJAP:2\r\n", "\r\nFAIL\r\n")
	r.send("AT+CWJAP_CUR=\"lab\",\"secret123\"\r\n")
	r.open("join")
	r.expect("WIFI CONNECTED\r\n", "WIFI GOT IP\r\n", ok)
	r.cmd("AT+CWJAP_CUR?", "+CWJAP_CUR:\"lab\",\"aa:bb:cc:dd:ee:ff\",6,-45\r\n", ok)
	r.cmd("AT+CIPDOMAIN=\"abc-ats.iot.eu-west-1.amazonaws.com\"", "+CIPDOMAIN:192.0.2.1\r\n", ok)
	r.cmd("AT+CIPDINFO=1", ok)
	r.send("AT+CIPSTART=0,\"TCP\",\"192.168.1.10\",80\r\n")
	p := r.peer()
	r.expect("0,CONNECT\r\n", ok)
	r.cmd("AT+CIPSTART=0,\"TCP\",\"192.168.1.10\",80", "ALREADY CONNECTED\r\n", "\r\nERROR\r\n")
	r.cmd("AT+CIPSEND=0,4", "\r\nOK\r\n> ")
	r.send("ping")
	readN(t, p, 4)
	r.expect("\r\nRecv 4 bytes\r\n", "\r\nSEND OK\r\n")
	r.writePeer(p, "hello")
	r.expect("\r\n+IPD,0,5\r\n")
	r.cmd("AT+CIPRECVDATA=0,2048", "+CIPRECVDATA,5:hello", ok)
	r.cmd("AT+CIPCLOSE=3", "UNLINK\r\n", "\r\nERROR\r\n")
	r.cmd("AT+CIPSEND=3,4", "link is not valid\r\n", "\r\nERROR\r\n")
	r.cmd("AT+SYSSTORE=0", "\r\nERROR\r\n")
	r.cmd("AT+CIPSEND=0,2049", "too long\r\n", "\r\nERROR\r\n")

	// Active receive in 1.7: bare IP, nothing after the data.
	r.cmd("AT+CIPRECVMODE=0", ok)
	r.writePeer(p, "hi")
	r.expect("\r\n+IPD,0,2,192.168.1.10,80:hi")
	r.cmd("AT+GMR", GMR17, ok)
}
