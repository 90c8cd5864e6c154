package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/device/hwmap"
	"github.com/ddhil/ddhil/harness/link/serialport"
)

func boardsCLI(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := dispatch(append([]string{"boards"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// withPorts replaces discovery: no USB boards are attached in this sandbox,
// so attached probes are described as go.bug.st/serial reports them.
func withPorts(t *testing.T, ports []serialport.PortInfo, err error) {
	t.Helper()
	old := discoverBoards
	discoverBoards = func() ([]serialport.PortInfo, error) { return ports, err }
	t.Cleanup(func() { discoverBoards = old })
}

func TestBoardsRealDiscovery(t *testing.T) {
	code, out, stderr := boardsCLI()
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, out, "# ST-LINK virtual COM ports attached:")
}

func TestBoardsSkeleton(t *testing.T) {
	withPorts(t, []serialport.PortInfo{
		{Name: "/dev/ttyACM0", ByID: "/dev/serial/by-id/usb-STMicroelectronics_STM32_STLink_0669FF555052836687031919-if02",
			VID: "0483", PID: "374B", SerialNumber: "0669FF555052836687031919", Product: "STM32 STLink"},
		{Name: "/dev/ttyACM1", VID: "0483", PID: "374E", SerialNumber: "003A00233133510D37363734", Product: "STLINK-V3"},
	}, nil)
	code, out, stderr := boardsCLI()
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, out, "# ST-LINK virtual COM ports attached: 2")
	m, err := hwmap.Parse([]byte(out), "")
	require.NoError(t, err, "the whole output is a loadable hardware map:\n%s", out)
	require.Len(t, m.Boards, 2)
	assert.Equal(t, "0669FF555052836687031919", m.Boards[0].ProbeSerial)
	assert.Equal(t, "/dev/serial/by-id/usb-STMicroelectronics_STM32_STLink_0669FF555052836687031919-if02", m.Boards[0].Console.Port)
	assert.Equal(t, "/dev/ttyACM1", m.Boards[1].Console.Port)
}

func TestBoardsCheckMap(t *testing.T) {
	dir := t.TempDir()
	console := filepath.Join(dir, "ttyACM0")
	require.NoError(t, os.WriteFile(console, nil, 0o644))
	ready := filepath.Join(dir, "ready.yaml")
	require.NoError(t, os.WriteFile(ready, []byte(`boards:
  - id: nucleo-1
    platform: nucleo-f446re
    probe_serial: "S1"
    openocd: [board/st_nucleo_f4.cfg]
    console: {port: `+console+`}
    transport: network
    broker_listen: 10.0.0.2:8883
`), 0o644))
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("boards:\n  - id: x\n    platform: p\n"), 0o644))

	tests := []struct {
		name     string
		ports    []serialport.PortInfo
		args     []string
		code     int
		out, err []string
	}{
		{"all ready", []serialport.PortInfo{{Name: console, SerialNumber: "S1", VID: "0483"}, {Name: "/dev/ttyACM5", SerialNumber: "EXTRA", VID: "0483", Product: "STLINK-V3"}},
			[]string{"--hwmap", ready}, exitOK, []string{"nucleo-1", "S1 attached", "present", "1 of 1 mapped boards ready", "attached but not in the map: /dev/ttyACM5 serial EXTRA"}, nil},
		{"probe absent", nil, []string{"--hwmap", ready}, exitLab, []string{"S1 absent", "0 of 1 mapped boards ready"}, nil},
		{"example map, nothing attached", nil, []string{"--hwmap", "../../fixtures/hwmap/example.yaml"}, exitLab,
			[]string{"nucleo-1", "disco-1", "u585-1", "missing", "0 of 3 mapped boards ready"}, nil},
		{"invalid map", nil, []string{"--hwmap", bad}, exitFail, nil, []string{"missing probe_serial", "bad.yaml:2"}},
		{"missing map", nil, []string{"--hwmap", filepath.Join(dir, "none.yaml")}, exitFail, nil, []string{"no such file"}},
		{"stray argument", nil, []string{"extra"}, exitUsage, nil, []string{"unexpected arguments"}},
		{"bad flag", nil, []string{"--hwmpa", ready}, exitUsage, nil, []string{"flag provided but not defined"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			withPorts(t, tc.ports, nil)
			code, out, stderr := boardsCLI(tc.args...)
			assert.Equal(t, tc.code, code, "stdout:\n%s\nstderr:\n%s", out, stderr)
			for _, w := range tc.out {
				assert.Contains(t, out, w)
			}
			for _, w := range tc.err {
				assert.Contains(t, stderr, w)
			}
		})
	}
}

func TestBoardsDiscoveryFailureIsLab(t *testing.T) {
	withPorts(t, nil, errors.New("sysfs unreadable"))
	code, _, stderr := boardsCLI()
	assert.Equal(t, exitLab, code)
	assert.True(t, strings.Contains(stderr, "sysfs unreadable"), stderr)
}
