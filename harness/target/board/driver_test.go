package board

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/device/hwmap"
	"github.com/ddhil/ddhil/harness/device/profile"
	"github.com/ddhil/ddhil/harness/target"
	"github.com/ddhil/ddhil/harness/target/board/boardtest"
)

func repoPath(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", "..", ".."}, parts...)...)
}

func TestLocate(t *testing.T) {
	cases := []struct {
		name     string
		boards   []string
		id       string
		probes   []string
		probeErr error
		want     string   // board id picked
		errs     []string // error substrings
		detached bool     // ErrBoardNotAttached
	}{
		{name: "only board", boards: []string{boardtest.Nucleo}, probes: []string{"PROBE1"}, want: "nucleo-1"},
		{name: "by id", boards: []string{boardtest.Nucleo, boardtest.U585}, id: "u585-1", probes: []string{"PROBE1", "PROBE2"}, want: "u585-1"},
		{name: "only attached one", boards: []string{boardtest.Nucleo, boardtest.Absent}, probes: []string{"PROBE1", "PROBE3"}, want: "nucleo-1"},
		{name: "two attached", boards: []string{boardtest.Nucleo, boardtest.U585}, probes: []string{"PROBE1", "PROBE2"},
			errs: []string{"2 boards of", "(nucleo-1, u585-1)", "choose one with --board"}},
		{name: "unknown id", boards: []string{boardtest.Nucleo}, id: "x", probes: []string{"PROBE1"},
			errs: []string{`no board "x" in`, "boards: nucleo-1"}},
		{name: "probe boardtest.Absent", boards: []string{boardtest.Nucleo}, probes: []string{"OTHER"}, detached: true,
			errs: []string{`board "nucleo-1" (nucleo-f446re)`, "is not attached", "probe PROBE1 is not among the attached USB devices (1 USB serial numbers seen)", "ddhil boards --hwmap"}},
		{name: "ports missing", boards: []string{boardtest.Absent}, probes: []string{"PROBE3"}, detached: true,
			errs: []string{"console port", "no-such-port is missing", "module port", "no-such-module is missing"}},
		{name: "none attached", boards: []string{boardtest.Nucleo, boardtest.U585}, detached: true,
			errs: []string{"none of the 2 boards", "nucleo-1 (nucleo-f446re): probe PROBE1", "u585-1 (b-u585i-iot02a): probe PROBE2"}},
		{name: "listing failed", boards: []string{boardtest.Nucleo}, probeErr: errors.New("no /sys"), detached: true,
			errs: []string{"listing them failed: no /sys"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			boardtest.StubProbes(t, &ListProbes, tc.probes, tc.probeErr)
			path, _ := boardtest.Bench(t, tc.boards...)
			b, err := Locate(path, tc.id)
			if tc.errs == nil {
				require.NoError(t, err)
				assert.Equal(t, tc.want, b.ID)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, harness.ErrLab)
			assert.Equal(t, tc.detached, errors.Is(err, ErrBoardNotAttached))
			for _, w := range tc.errs {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLocateBoardMapErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("boards:\n  - id: x\n"), 0o644))
	cases := []struct{ name, path, want string }{
		{"no map", "", "target board needs a hardware map (--hwmap FILE"},
		{"missing file", filepath.Join(t.TempDir(), "none.yaml"), "no such file"},
		{"invalid map", bad, "invalid hardware map"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Locate(tc.path, "")
			require.Error(t, err)
			assert.ErrorIs(t, err, harness.ErrLab)
			assert.NotErrorIs(t, err, ErrBoardNotAttached)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestPrepareBoard(t *testing.T) {
	boardtest.StubProbes(t, &ListProbes, []string{"PROBE1", "PROBE2", "PROBE4"}, nil)
	withProfile := strings.Replace(boardtest.Nucleo, "    transport:", "    profile: mine.yaml\n    transport:", 1)
	odd := `  - id: odd-1
    platform: my-board
    probe_serial: "PROBE4"
    openocd: [x.cfg]
    console: {port: {{dir}}/console-2}
    transport: {module: {{dir}}/module-2}
`
	cases := []struct {
		name                   string
		board                  string
		given                  target.Setup
		wantProfile, wantFirmw string // {{dir}} = the map's directory
		err                    string
	}{
		{name: "platform defaults", board: boardtest.Nucleo, wantProfile: "fixtures/profiles/ddagent-nucleo-f446re.yaml", wantFirmw: "firmware/build/nucleo-f446re/ddagent.elf"},
		{name: "map profile", board: withProfile, wantProfile: "{{dir}}/mine.yaml", wantFirmw: "firmware/build/nucleo-f446re/ddagent.elf"},
		{name: "flags win", board: withProfile, given: target.Setup{Profile: "p.yaml", Firmware: "f.elf"}, wantProfile: "p.yaml", wantFirmw: "f.elf"},
		{name: "U5 needs --firmware", board: boardtest.U585, err: `board "u585-1" (b-u585i-iot02a): no firmware: pass --firmware`},
		{name: "U5 with firmware", board: boardtest.U585, given: target.Setup{Firmware: "ntz.elf"}, wantProfile: "fixtures/profiles/stm32u5-iot-reference.yaml", wantFirmw: "ntz.elf"},
		{name: "unknown platform", board: odd, err: "no device profile: pass --profile or set profile: in"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path, dir := boardtest.Bench(t, tc.board)
			o := tc.given
			o.Settings = target.Settings{"hwmap": {path}}
			err := prepare(&o)
			if tc.err != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, harness.ErrLab)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, strings.ReplaceAll(tc.wantProfile, "{{dir}}", dir), o.Profile)
			assert.Equal(t, tc.wantFirmw, o.Firmware)
			assert.NotEmpty(t, o.Device)
		})
	}
	// The platform defaults point at files of this repository.
	for platform, d := range PlatformDefaults {
		_, err := profile.Load(repoPath(d.Profile))
		assert.NoError(t, err, platform)
	}
}

func TestUSBSerials(t *testing.T) {
	dir := t.TempDir()
	old := sysUSB
	sysUSB = dir
	t.Cleanup(func() { sysUSB = old })
	for name, serial := range map[string]string{"1-1": "066DFF485753725187155723\n", "1-2": "\x7f\x06\x50\n", "usb1": "0000:00:14.0\n", "1-3": ""} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, name), 0o755))
		if serial != "" {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name, "serial"), []byte(serial), 0o644))
		}
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "1-4"), 0o755)) // no serial file
	got, err := usbSerials()
	require.NoError(t, err)
	assert.Contains(t, got, "066DFF485753725187155723")
	assert.Contains(t, got, "0000:00:14.0")
	assert.Contains(t, got, "7F0650", "a binary serial also as OpenOCD's hex")
}

func TestConfigureBoardSession(t *testing.T) {
	agent, err := profile.Load(repoPath("fixtures", "profiles", "ddagent-nucleo-f446re.yaml"))
	require.NoError(t, err)
	u5, err := profile.Load(repoPath("fixtures", "profiles", "stm32u5-iot-reference.yaml"))
	require.NoError(t, err)
	moduleBoard := hwmap.Board{ID: "nucleo-1", Transport: hwmap.Transport{Kind: hwmap.TransportModule}}
	netBoard := hwmap.Board{ID: "u585-1", Transport: hwmap.Transport{Kind: hwmap.TransportNetwork}, BrokerListen: "127.0.0.1:18883"}

	cases := []struct {
		name      string
		board     hwmap.Board
		prof      *profile.Profile
		vars      profile.Vars
		preCAHost string // an existing CA in the pki dir made for this host
		err       string
		hosts     []string // broker certificate names wanted
		endpoint  string
	}{
		{name: "module board: nothing to do", board: moduleBoard, prof: agent},
		{name: "network profile on a module board", board: moduleBoard, prof: u5, err: "profile stm32u5-iot-reference expects transport network, but board \"nucleo-1\" is mapped with transport module"},
		{name: "module profile on a network board", board: netBoard, prof: agent, err: "expects transport module"},
		{name: "network board", board: netBoard, prof: u5, vars: profile.Vars{"thing": "t", "port": "1"}, hosts: []string{"127.0.0.1"}, endpoint: "127.0.0.1"},
		{name: "endpoint by name", board: netBoard, prof: u5, vars: profile.Vars{"thing": "t", "endpoint": "lab.amazonaws.local"}, hosts: []string{"127.0.0.1", "lab.amazonaws.local"}, endpoint: "lab.amazonaws.local"},
		{name: "CA made for another host", board: netBoard, prof: u5, vars: profile.Vars{"thing": "t"}, preCAHost: "10.0.0.9", err: "certifies the broker as [10.0.0.9], not \"127.0.0.1\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pki := filepath.Join(t.TempDir(), "pki")
			if tc.preCAHost != "" {
				setup := setupFor(u5, nil)
				require.NoError(t, ConfigureSession(&setup, hwmap.Board{ID: "x", Transport: hwmap.Transport{Kind: hwmap.TransportNetwork}, BrokerListen: tc.preCAHost + ":8883"}, pki))
			}
			cfg := setupFor(tc.prof, tc.vars)
			bt := WithSession(nil, tc.board, pki).(target.SessionConfigurer)
			err := bt.ConfigureSession(&cfg)
			if tc.err != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, harness.ErrLab)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			if tc.hosts == nil {
				assert.Nil(t, cfg.BrokerTLS)
				assert.Empty(t, cfg.BrokerTLSAddr)
				assert.Nil(t, cfg.Signer)
				return
			}
			require.NotNil(t, cfg.BrokerTLS)
			assert.Equal(t, "127.0.0.1:18883", cfg.BrokerTLSAddr)
			assert.Equal(t, "127.0.0.1", cfg.Endpoint)
			assert.Equal(t, "18883", cfg.Vars["port"], "the device dials the port the broker listens on")
			if tc.vars["port"] != "" {
				assert.Equal(t, "1", tc.vars["port"], "caller's vars untouched")
			}
			leaf := cfg.BrokerTLS.Certificates[0].Leaf
			require.NotNil(t, leaf)
			assert.ElementsMatch(t, tc.hosts, leaf.DNSNames)
			assert.NotNil(t, cfg.Signer, "the lab CA signs the device's CSR")
			if tc.endpoint != "127.0.0.1" {
				assert.Equal(t, tc.endpoint, cfg.Vars["endpoint"])
			}
		})
	}
}

// setupFor is what a session hands a board target for a profile.
func setupFor(p *profile.Profile, vars profile.Vars) target.SessionSetup {
	return target.SessionSetup{ProfileName: p.Name, Transport: p.Expect.Transport, NeedsSigner: p.NeedsSigner(), Vars: vars}
}
