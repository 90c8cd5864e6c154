package hwmap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const examplePath = "../../../fixtures/hwmap/example.yaml"

func TestLoadExample(t *testing.T) {
	m, err := Load(examplePath)
	require.NoError(t, err)
	assert.Equal(t, []string{"nucleo-1", "disco-1", "u585-1"}, m.IDs())

	n, ok := m.Board("nucleo-1")
	require.True(t, ok)
	assert.Equal(t, "nucleo-f446re", n.Platform)
	assert.Equal(t, "0669FF555052836687031919", n.ProbeSerial)
	assert.Equal(t, []string{"board/st_nucleo_f4.cfg"}, n.OpenOCD)
	assert.Equal(t, TransportModule, n.Transport.Kind)
	assert.Equal(t, 115200, n.Transport.Baud)
	assert.Equal(t, 90*time.Second, time.Duration(n.FlashTimeout))
	assert.Equal(t, filepath.Join("../../../fixtures/profiles/ddagent-nucleo-f446re.yaml"), n.Profile, "profile relative to the map")
	assert.True(t, n.HasFixtures("esp-at-bridge"))
	assert.Greater(t, n.Line, 0)

	d, _ := m.Board("disco-1")
	assert.Equal(t, DefaultBaud, d.Console.Baud, "baud defaults")
	assert.Equal(t, DefaultFlashTimeout, time.Duration(d.FlashTimeout))
	assert.Equal(t, DefaultBootTimeout, time.Duration(d.BootTimeout))

	u, _ := m.Board("u585-1")
	assert.Equal(t, TransportNetwork, u.Transport.Kind)
	assert.Equal(t, "192.168.1.10:8883", u.BrokerListen)
	assert.Equal(t, []string{"../../../fixtures/openocd/b-u585i-iot02a.cfg"}, u.OpenOCD, "./ and ../ resolved against the map")
	_, err = os.Stat(u.OpenOCD[0])
	assert.NoError(t, err, "the resolved path is the real fixture")

	assert.Len(t, m.WithFixture("esp-at-bridge"), 2)
	assert.Len(t, m.WithFixture("wifi", "tls"), 1)
	_, ok = m.Board("nope")
	assert.False(t, ok)
}

func TestMarshalRoundTrip(t *testing.T) {
	m, err := Load(examplePath)
	require.NoError(t, err)
	out, err := m.Marshal()
	require.NoError(t, err)
	again, err := Parse(out, "")
	require.NoError(t, err, string(out))
	for i := range m.Boards {
		m.Boards[i].Line, again.Boards[i].Line = 0, 0
	}
	assert.Equal(t, m.Boards, again.Boards)
}

// board is a valid entry as a YAML fragment; cases change it.
const board = `
  - id: b1
    platform: nucleo-f446re
    probe_serial: "S1"
    openocd: [board/st_nucleo_f4.cfg]
    console: {port: /dev/ttyACM0}
    transport: {module: /dev/ttyUSB0}
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty file", "", []string{"empty file"}},
		{"not a mapping", "- a\n- b\n", []string{"want a mapping"}},
		{"no boards", "boards: []\n", []string{"non-empty list"}},
		{"unknown top key", "bords:\n" + board, []string{`unknown key "bords"`}},
		{"syntax", "boards: [\n", []string{"hwmap: t.yaml"}},
		{"duplicate ids", "boards:" + board + board, []string{`t.yaml:9: board "b1": duplicate board id (first at line 2)`, `probe serial "S1" is already board "b1"'s`}},
		{"missing probe serial", "boards:" + strings.Replace(board, `probe_serial: "S1"`, `probe_serial: ""`, 1), []string{`t.yaml:2: board "b1": missing probe_serial`}},
		{"probe serial absent", "boards:" + strings.Replace(board, "    probe_serial: \"S1\"\n", "", 1), []string{"missing probe_serial"}},
		{"unknown transport", "boards:" + strings.Replace(board, "{module: /dev/ttyUSB0}", "wifi", 1), []string{`board "b1"`, `unknown transport "wifi"`}},
		{"transport mapping without module", "boards:" + strings.Replace(board, "{module: /dev/ttyUSB0}", "{baud: 9600}", 1), []string{"needs module:"}},
		{"transport unknown key", "boards:" + strings.Replace(board, "{module: /dev/ttyUSB0}", "{modul: /dev/ttyUSB0}", 1), []string{`unknown key "modul"`}},
		{"network without broker", "boards:" + strings.Replace(board, "{module: /dev/ttyUSB0}", "network", 1), []string{"needs broker_listen"}},
		{"bad broker address", "boards:" + strings.Replace(board, "{module: /dev/ttyUSB0}", "network\n    broker_listen: lab-host:8883", 1), []string{"host must be an IP"}},
		{"broker port zero", "boards:" + strings.Replace(board, "{module: /dev/ttyUSB0}", "network\n    broker_listen: 10.0.0.2:0", 1), []string{"fixed port"}},
		{"misspelt key", "boards:" + strings.Replace(board, "probe_serial", "probe_seral", 1), []string{`t.yaml:4`, `unknown key "probe_seral"`}},
		{"bad duration", "boards:" + board + "    flash_timeout: 90\n", []string{`bad duration "90"`}},
		{"same port twice", "boards:" + strings.Replace(board, "/dev/ttyUSB0", "/dev/ttyACM0", 1), []string{"transport module port and console port are both"}},
		{"port shared across boards", "boards:" + board + strings.NewReplacer("b1", "b2", `"S1"`, `"S2"`, "ttyACM0", "ttyACM1").Replace(board), []string{`serial port /dev/ttyUSB0 is already board "b1"'s`}},
		{"bad id", "boards:" + strings.Replace(board, "id: b1", "id: my board", 1), []string{`id "my board" may hold only`}},
		{"several problems at once", "boards:" + strings.NewReplacer("platform: nucleo-f446re", "platform: \"\"", "openocd: [board/st_nucleo_f4.cfg]", "openocd: []").Replace(board),
			[]string{"missing platform", "missing openocd"}},
		{"wrong type", "boards:" + strings.Replace(board, "openocd: [board/st_nucleo_f4.cfg]", "openocd: {a: b}", 1), []string{`board "b1"`, "cannot unmarshal"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.yaml), "t.yaml")
			require.Error(t, err)
			assert.Nil(t, m)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParseValidVariants(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, b Board)
	}{
		{"minimal module board", "boards:" + board, func(t *testing.T, b Board) {
			assert.Equal(t, Transport{Kind: TransportModule, Serial: Serial{Port: "/dev/ttyUSB0", Baud: DefaultBaud}}, b.Transport)
		}},
		{"ser2net console", "boards:" + strings.Replace(board, "port: /dev/ttyACM0", "port: tcp://lab-pi:3001", 1), func(t *testing.T, b Board) {
			assert.Equal(t, "tcp://lab-pi:3001", b.Console.Port)
		}},
		{"absolute profile kept", "boards:" + board + "    profile: /etc/ddhil/p.yaml\n", func(t *testing.T, b Board) {
			assert.Equal(t, "/etc/ddhil/p.yaml", b.Profile)
		}},
		{"numeric-looking serial quoted", "boards:" + strings.Replace(board, `"S1"`, `"066"`, 1), func(t *testing.T, b Board) {
			assert.Equal(t, "066", b.ProbeSerial)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.yaml), "")
			require.NoError(t, err)
			tc.check(t, m.Boards[0])
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestSkeleton(t *testing.T) {
	probes := []Probe{
		{Serial: "0669FF555052836687031919", Port: "/dev/serial/by-id/usb-STM_STLink-if02", Product: "STM32 STLink", PID: "374B"},
		{Serial: "003A00233133510D37363734", Port: "/dev/ttyACM1", Product: "STLINK-V3", PID: "374e"},
		{Serial: "1234", Port: "/dev/ttyACM2", Product: "odd", PID: "FFFF"},
	}
	out := Skeleton(probes)
	m, err := Parse(out, "")
	require.NoError(t, err, "the skeleton loads as is:\n%s", out)
	require.Len(t, m.Boards, 3)
	assert.Equal(t, "0669FF555052836687031919", m.Boards[0].ProbeSerial)
	assert.Equal(t, []string{"board/st_nucleo_f4.cfg"}, m.Boards[0].OpenOCD)
	assert.Equal(t, "/dev/serial/by-id/usb-STM_STLink-if02", m.Boards[0].Console.Port)
	assert.Equal(t, []string{"fixtures/openocd/b-u585i-iot02a.cfg"}, m.Boards[1].OpenOCD)
	assert.Equal(t, "1234", m.Boards[2].ProbeSerial, "a numeric serial stays a string")
	assert.Contains(t, string(out), "unknown ST-LINK")
	assert.Contains(t, string(out), "b-u585i-iot02a, nucleo-f446re, stm32f4-discovery")

	none := string(Skeleton(nil))
	assert.Contains(t, none, "No ST-LINK")
	assert.NotContains(t, none, "boards:")
}

func TestCheckPresence(t *testing.T) {
	dir := t.TempDir()
	console := filepath.Join(dir, "ttyACM0")
	require.NoError(t, os.WriteFile(console, nil, 0o644))
	tests := []struct {
		name     string
		b        Board
		attached []string
		want     Presence
		ready    bool
	}{
		{"all there", Board{ProbeSerial: "S1", Console: Serial{Port: console}, Transport: Transport{Kind: TransportNetwork}},
			[]string{"S0", "S1"}, Presence{Probe: true, Console: "present", Transport: "network"}, true},
		{"probe absent", Board{ProbeSerial: "S1", Console: Serial{Port: console}, Transport: Transport{Kind: TransportNetwork}},
			nil, Presence{Probe: false, Console: "present", Transport: "network"}, false},
		{"module adapter unplugged", Board{ProbeSerial: "S1", Console: Serial{Port: console}, Transport: Transport{Kind: TransportModule, Serial: Serial{Port: filepath.Join(dir, "ttyUSB0")}}},
			[]string{"S1"}, Presence{Probe: true, Console: "present", Transport: "missing"}, false},
		{"ser2net", Board{ProbeSerial: "S1", Console: Serial{Port: "tcp://pi:3001"}, Transport: Transport{Kind: TransportNetwork}},
			[]string{"S1"}, Presence{Probe: true, Console: "remote", Transport: "network"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.b.Check(tc.attached)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.ready, got.Ready())
		})
	}
}
