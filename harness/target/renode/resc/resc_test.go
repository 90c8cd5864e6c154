package resc

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), string(got))
}

// The driver's script for the reference firmware, with absolute paths as
// the driver writes them.
func TestGoldenDriverScript(t *testing.T) {
	got, err := Script{
		Platform: "/run/ddhil/stm32f4_discovery-offline.repl",
		Firmware: "/work/firmware/build/renode-stm32f4disc/ddagent.elf",
		UARTs:    ReferenceUARTs(40001, 40002),
	}.Render()
	require.NoError(t, err)
	golden(t, "testdata/driver.resc", got)
}

// fixtures/renode/ddagent-stm32f4disc.resc is the same script with paths
// relative to the repository root, for people running Renode by hand.
func TestFixtureScriptIsGenerated(t *testing.T) {
	got, err := Script{
		Platform: "fixtures/renode/stm32f4_discovery-offline.repl",
		Firmware: "firmware/build/renode-stm32f4disc/ddagent.elf",
		UARTs:    ReferenceUARTs(3456, 3457),
	}.Render()
	require.NoError(t, err)
	golden(t, "../../../../fixtures/renode/ddagent-stm32f4disc.resc", got)
}

func TestEmbeddedPlatformMatchesFixture(t *testing.T) {
	fixture, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "fixtures", "renode", "stm32f4_discovery-offline.repl"))
	require.NoError(t, err)
	assert.Equal(t, string(fixture), string(OfflinePlatform))
	// the recipe of stm32f4-facts.md: using the stock board, init without ApplySVD
	assert.True(t, strings.HasPrefix(string(OfflinePlatform), "using \"platforms/boards/stm32f4_discovery-kit.repl\"\n"))
	assert.NotContains(t, string(OfflinePlatform), "ApplySVD @")
	assert.Contains(t, string(OfflinePlatform), "\nsysbus:\n    init:\n        Tag <0x40021000, 0x40021003> \"GPIOE_MODER\" 0xFFFFFFFF\n")
}

func TestRenderDetails(t *testing.T) {
	got, err := Script{Machine: "board-1", Platform: "/p.repl", Firmware: "/f.elf", VectorTable: 0x08004000,
		Extra: []string{"nvic Frequency 168000000"}}.Render()
	require.NoError(t, err)
	s := string(got)
	assert.Contains(t, s, "mach create \"board-1\"\n")
	assert.Contains(t, s, "machine LoadPlatformDescription @/p.repl\nnvic Frequency 168000000\n")
	assert.Contains(t, s, "macro reset \"\"\"\nsysbus LoadELF @/f.elf\ncpu VectorTableOffset 0x08004000\n\"\"\"\n")
	assert.NotContains(t, s, "CreateServerSocketTerminal")
	assert.True(t, strings.HasSuffix(s, "runMacro $reset\n"))
}

func TestRenderRejectsBadInput(t *testing.T) {
	ok := Script{Platform: "/p.repl", Firmware: "/f.elf", UARTs: ReferenceUARTs(1, 2)}
	cases := []struct {
		name   string
		modify func(*Script)
		want   string
	}{
		{"no firmware", func(s *Script) { s.Firmware = "" }, "firmware path is empty"},
		{"space in path", func(s *Script) { s.Platform = "/a b.repl" }, "whitespace"},
		{"quote in path", func(s *Script) { s.Firmware = "/a\"b.elf" }, "quote"},
		{"bad machine", func(s *Script) { s.Machine = "a b" }, "machine name"},
		{"port range", func(s *Script) { s.UARTs = []UART{{"sysbus.usart2", "console", 70000}} }, "out of range"},
		{"same port", func(s *Script) { s.UARTs = ReferenceUARTs(5, 5) }, "used twice"},
		{"bad peripheral", func(s *Script) { s.UARTs = []UART{{"sysbus usart2", "c", 5}} }, "bad UART"},
		{"multi-line extra", func(s *Script) { s.Extra = []string{"a\nb"} }, "spans lines"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			s.UARTs = append([]UART(nil), ok.UARTs...)
			tc.modify(&s)
			_, err := s.Render()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "resc: "))
		})
	}
}

func TestTerminalCommands(t *testing.T) {
	assert.Equal(t, []string{
		`emulation CreateServerSocketTerminal 3456 "console" false`,
		`connector Connect sysbus.usart2 console`,
		`emulation CreateServerSocketTerminal 3457 "transport" false`,
		`connector Connect sysbus.usart1 transport`,
	}, TerminalCommands(ReferenceUARTs(3456, 3457)))
}

// An image whose vector table is at 0 (an nRF52) gets no VectorTableOffset.
func TestVectorTableAtZero(t *testing.T) {
	b, err := Script{Platform: "/p.repl", Firmware: "/f.elf", VectorTableAtZero: true, UARTs: ReferenceUARTs(1, 2)}.Render()
	require.NoError(t, err)
	assert.Contains(t, string(b), "macro reset \"\"\"\nsysbus LoadELF @/f.elf\n\"\"\"\n")
	assert.NotContains(t, string(b), "VectorTableOffset")
}
