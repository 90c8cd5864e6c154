package openocd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
)

func TestFlashConfigArgs(t *testing.T) {
	tests := []struct {
		name    string
		cfg     FlashConfig
		want    []string
		wantErr error
	}{
		{
			name: "board file and serial",
			cfg:  FlashConfig{ConfigFiles: []string{"board/st_nucleo_f4.cfg"}, ProbeSerial: "0669FF555", ELF: "build/fw.elf"},
			want: []string{"-f", "board/st_nucleo_f4.cfg", "-c", "adapter serial 0669FF555", "-c", "program build/fw.elf verify reset exit"},
		},
		{
			name: "interface and target, no reset",
			cfg:  FlashConfig{ConfigFiles: []string{"interface/stlink-dap.cfg", "target/stm32u5x.cfg"}, ProbeSerial: "003A0023", ELF: "fw.elf", NoReset: true},
			want: []string{"-f", "interface/stlink-dap.cfg", "-f", "target/stm32u5x.cfg", "-c", "adapter serial 003A0023", "-c", "program fw.elf verify exit"},
		},
		{
			name: "path with spaces and brackets is one tcl word",
			cfg:  FlashConfig{ConfigFiles: []string{"a.cfg"}, ProbeSerial: "S", ELF: "/tmp/my fw[1].elf"},
			want: []string{"-f", "a.cfg", "-c", "adapter serial S", "-c", `program /tmp/my\ fw\[1\].elf verify reset exit`},
		},
		{
			name: "no serial allowed explicitly",
			cfg:  FlashConfig{ConfigFiles: []string{"a.cfg"}, AllowNoSerial: true, ELF: "fw.elf"},
			want: []string{"-f", "a.cfg", "-c", "program fw.elf verify reset exit"},
		},
		{name: "no serial refused", cfg: FlashConfig{ConfigFiles: []string{"a.cfg"}, ELF: "fw.elf"}, wantErr: ErrNoProbeSerial},
		{name: "no config files", cfg: FlashConfig{ProbeSerial: "S", ELF: "fw.elf"}},
		{name: "no elf", cfg: FlashConfig{ConfigFiles: []string{"a.cfg"}, ProbeSerial: "S"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.Args()
			if tc.want == nil {
				require.Error(t, err)
				if tc.wantErr != nil {
					assert.ErrorIs(t, err, tc.wantErr)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestFlashRefusesWithoutSerial(t *testing.T) {
	// A binary that does not exist proves no process was attempted: the
	// refusal must come first.
	err := Flash(context.Background(), FlashConfig{
		Binary: "/nonexistent/openocd", ConfigFiles: []string{"board/st_nucleo_f4.cfg"}, ELF: "fw.elf",
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrNoProbeSerial)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.NotContains(t, err.Error(), "nonexistent")
}

func TestFlashMissingELF(t *testing.T) {
	err := Flash(context.Background(), FlashConfig{ConfigFiles: []string{dummyCfg}, ProbeSerial: "S", ELF: filepath.Join(t.TempDir(), "none.elf")})
	require.Error(t, err)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// TestFlashRealOpenOCDFailure programs a junk file through the dummy adapter:
// OpenOCD really runs, "program" fails (no flash bank, not an ELF) and exits
// non-zero; Flash must report a lab error that quotes OpenOCD's output.
func TestFlashRealOpenOCDFailure(t *testing.T) {
	needOpenOCD(t)
	elf := filepath.Join(t.TempDir(), "junk.elf")
	require.NoError(t, os.WriteFile(elf, []byte("not an elf\n"), 0o644))
	var log bytes.Buffer
	start := time.Now()
	err := Flash(context.Background(), FlashConfig{
		ConfigFiles: []string{dummyCfg}, ProbeSerial: "DUMMY0001", ELF: elf, Timeout: 20 * time.Second, Log: &log,
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.Contains(t, err.Error(), "exit status 1")
	assert.Contains(t, err.Error(), "programming failed")
	assert.Contains(t, err.Error(), "** Programming Failed **")
	assert.Contains(t, err.Error(), `probe "DUMMY0001"`)
	assert.Contains(t, log.String(), "** Programming Started **", "Log receives OpenOCD's output")
	t.Logf("failed flash took %s", time.Since(start))
}

// TestFlashRealOpenOCDSuccessPath replaces "program" with a Tcl procedure
// (testdata/program-shadow.cfg) because no chip is attached; OpenOCD itself is
// real, so this checks that the arguments arrive as one Tcl word each and that
// exit status 0 counts as success.
func TestFlashRealOpenOCDSuccessPath(t *testing.T) {
	needOpenOCD(t)
	elf := filepath.Join(t.TempDir(), "my fw[1].elf")
	require.NoError(t, os.WriteFile(elf, []byte("image"), 0o644))
	var log bytes.Buffer
	err := Flash(context.Background(), FlashConfig{
		ConfigFiles: []string{dummyCfg, "testdata/program-shadow.cfg"}, ProbeSerial: "DUMMY0001", ELF: elf, Log: &log,
	})
	require.NoError(t, err, log.String())
	assert.Contains(t, log.String(), "shadow-program: "+elf+" | verify reset exit")
}

func TestFlashTimeoutKillsOpenOCD(t *testing.T) {
	needOpenOCD(t)
	elf := filepath.Join(t.TempDir(), "fw.elf")
	require.NoError(t, os.WriteFile(elf, []byte("image"), 0o644))
	start := time.Now()
	err := Flash(context.Background(), FlashConfig{
		ConfigFiles: []string{dummyCfg, "testdata/hang.cfg"}, ProbeSerial: "S", ELF: elf, Timeout: 500 * time.Millisecond,
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, harness.ErrLab)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "timed out after 500ms")
	assert.Less(t, time.Since(start), 5*time.Second, "the hung OpenOCD is stopped, not waited for")
}

func TestFlashCancelledContext(t *testing.T) {
	needOpenOCD(t)
	elf := filepath.Join(t.TempDir(), "fw.elf")
	require.NoError(t, os.WriteFile(elf, []byte("image"), 0o644))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Flash(ctx, FlashConfig{ConfigFiles: []string{dummyCfg, "testdata/hang.cfg"}, ProbeSerial: "S", ELF: elf})
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled))
}

func TestResetOnceRealOpenOCD(t *testing.T) {
	needOpenOCD(t)
	tests := []struct {
		name    string
		cfg     ResetConfig
		wantErr string
	}{
		{name: "run", cfg: ResetConfig{ConfigFiles: []string{dummyCfg}, ProbeSerial: "DUMMY0001"}},
		{name: "halt", cfg: ResetConfig{ConfigFiles: []string{dummyCfg}, ProbeSerial: "DUMMY0001", Mode: ResetHalt}},
		{name: "missing config", cfg: ResetConfig{ConfigFiles: []string{"board/no-such-board.cfg"}, ProbeSerial: "X"}, wantErr: "configuration file not found"},
		{name: "bad mode", cfg: ResetConfig{ConfigFiles: []string{dummyCfg}, ProbeSerial: "X", Mode: "sideways"}, wantErr: "unknown reset mode"},
		{name: "no serial", cfg: ResetConfig{ConfigFiles: []string{dummyCfg}}, wantErr: "no probe serial"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Reset(context.Background(), tc.cfg)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, harness.ErrLab)
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestResetConfigArgs(t *testing.T) {
	got, err := ResetConfig{ConfigFiles: []string{"board/st_nucleo_f4.cfg"}, ProbeSerial: "0669"}.Args()
	require.NoError(t, err)
	assert.Equal(t, []string{
		"-f", "board/st_nucleo_f4.cfg", "-c", "adapter serial 0669",
		"-c", "tcl_port disabled", "-c", "telnet_port disabled", "-c", "gdb_port disabled",
		"-c", "init", "-c", "reset run", "-c", "shutdown",
	}, got)
}

func TestTclWord(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "0669FF555", "0669FF555"},
		{"path", "/a/b-c_d.elf", "/a/b-c_d.elf"},
		{"empty", "", "{}"},
		{"space", "a b", `a\ b`},
		{"specials", `x{y}[z]$"w";#\`, `x\{y\}\[z\]\$\"w\"\;\#\\`},
		{"newline", "a\nb", `a\nb`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { assert.Equal(t, tc.want, tclWord(tc.in)) })
	}
}
