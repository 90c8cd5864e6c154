// Package boardtest stands in for a bench in tests of the board driver and
// of what drives it: hardware maps whose serial ports are plain files, and
// probes reported attached without USB.
package boardtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Map entries for Bench; {{dir}} is the bench's directory.
const (
	Nucleo = `  - id: nucleo-1
    platform: nucleo-f446re
    probe_serial: "PROBE1"
    openocd: [board/st_nucleo_f4.cfg]
    console: {port: {{dir}}/console-1}
    transport: {module: {{dir}}/module-1}
`
	U585 = `  - id: u585-1
    platform: b-u585i-iot02a
    probe_serial: "PROBE2"
    openocd: [target/stm32u5x.cfg]
    console: {port: {{dir}}/console-2}
    transport: network
    broker_listen: 127.0.0.1:8883
`
	Absent = `  - id: gone-1
    platform: nucleo-f446re
    probe_serial: "PROBE3"
    openocd: [board/st_nucleo_f4.cfg]
    console: {port: {{dir}}/no-such-port}
    transport: {module: {{dir}}/no-such-module}
`
)

// StubProbes makes the listed serials "attached" for the test: pass
// &board.ListProbes.
func StubProbes(t testing.TB, list *func() ([]string, error), serials []string, err error) {
	t.Helper()
	old := *list
	*list = func() ([]string, error) { return serials, err }
	t.Cleanup(func() { *list = old })
}

// Bench writes a hardware map whose serial ports are files in a temporary
// directory (presence is all the board driver checks) and returns its path and
// the directory. boards are map entries such as Nucleo.
func Bench(t testing.TB, boards ...string) (path, dir string) {
	t.Helper()
	dir = t.TempDir()
	for _, name := range []string{"console-1", "module-1", "console-2", "module-2"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	text := "boards:\n" + strings.ReplaceAll(strings.Join(boards, ""), "{{dir}}", dir)
	path = filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, dir
}
