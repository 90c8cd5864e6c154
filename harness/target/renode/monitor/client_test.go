package monitor

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/target/renode/internal/replay"
)

const testdata = "../testdata"

// Concrete values for the transcripts' path placeholders; the double
// substitutes them into the recorded echo too.
var placeholders = map[string]string{
	"<OFFLINE_REPL>": "/opt/ddhil/stm32f4_discovery-offline.repl",
	"<FW_DIR>":       "/opt/ddhil/fw",
	"<TMP>":          "/tmp/ddhil-x",
}

func sub(s string) string { return string(replay.Substitute([]byte(s), placeholders)) }

func loadTranscript(t *testing.T, name string) *replay.Transcript {
	t.Helper()
	tr, err := replay.ParseTranscriptFile(filepath.Join(testdata, name))
	require.NoError(t, err)
	return tr
}

func startReplay(t *testing.T, tr *replay.Transcript) *replay.MonitorServer {
	t.Helper()
	srv, err := replay.StartMonitor(tr, placeholders)
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return srv
}

func TestTelnetDecoder(t *testing.T) {
	cases := []struct {
		name   string
		chunks [][]byte
		want   []byte
	}{
		{"Renode's negotiation", [][]byte{{0xff, 0xfd, 0x00, 0xff, 0xfb, 0x01, 0xff, 0xfb, 0x03, 0xff, 0xfc, 0x22, 'R'}}, []byte("R")},
		{"split inside a sequence", [][]byte{{'a', 0xff}, {0xfb}, {0x01, 'b'}}, []byte("ab")},
		{"doubled 0xFF", [][]byte{{'a', 0xff, 0xff, 'b'}}, []byte{'a', 0xff, 'b'}},
		{"doubled 0xFF split", [][]byte{{'a', 0xff}, {0xff, 'b'}}, []byte{'a', 0xff, 'b'}},
		{"subnegotiation", [][]byte{{'a', 0xff, 0xfa, 0x1f, 0x00, 0x50, 0xff, 0xff, 0xff, 0xf0, 'b'}}, []byte("ab")},
		{"two-byte command", [][]byte{{'a', 0xff, 0xf1, 'b'}}, []byte("ab")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var d telnetDecoder
			var out []byte
			for _, c := range tc.chunks {
				out = d.decode(out, c)
			}
			assert.Equal(t, tc.want, out)
		})
	}
}

func TestClean(t *testing.T) {
	cases := []struct {
		name       string
		in         string
		text       string
		errText    string
		incomplete bool
	}{
		{"plain reply", "cpu PC\n\r0x80002e4\r\r\n(dut) ", "cpu PC\n0x80002e4\n(dut) ", "", false},
		{"colour prompt", "\r\x1b[33;1m(dut) \x1b[0m", "(dut) ", "", false},
		{"red bold prompt is no error", "\x1b[31;1m(monitor) \x1b[0m", "(monitor) ", "", false},
		{"error colour", "\x1b[;031mNo such command or device: foo\r\n\x1b[0m\x1b[33;1m(dut) \x1b[0m", "No such command or device: foo\n(dut) ", "No such command or device: foo\n", false},
		{"cursor control", "mach\x1b[4D\x1b[Kmach ", "machmach ", "", false},
		{"split escape", "(dut) \x1b[0", "(dut) ", "", true},
		{"lone escape", "(dut) \x1b", "(dut) ", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := clean([]byte(tc.in))
			assert.Equal(t, tc.text, got.text)
			assert.Equal(t, tc.errText, got.errText)
			assert.Equal(t, tc.incomplete, got.incomplete)
		})
	}
}

// TestRawReplay drives every transcript at byte level: each recorded client
// write is sent as is (CR LF, bare CR, split lines, client IAC included) and
// the decoded, cleaned stream must equal the cleaned recorded Renode bytes.
// This exercises the telnet decoder and cleaner on the recorded chunking.
func TestRawReplay(t *testing.T) {
	for _, name := range []string{"monitor-telnet.txt", "monitor-telnet-colour.txt", "monitor-telnet-crlf.txt",
		"monitor-telnet-svd-fail.txt", "monitor-telnet-reset-macro.txt"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tr := loadTranscript(t, name)
			srv := startReplay(t, tr)
			conn, err := net.Dial("tcp", srv.Addr())
			require.NoError(t, err)
			c := &Client{conn: conn}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			var want []byte
			var dec telnetDecoder // the expected stream, decoded like the client's
			expect := func() {
				w := clean(dec.decode(nil, replay.Substitute(want, placeholders))).text
				got, err := c.readUntil(ctx, func(cl cleaned) bool { return cl.text == w })
				require.NoError(t, err, "got %q want %q", got, w)
				want = nil
			}
			for _, r := range tr.Records {
				switch r.Dir {
				case replay.FromRenode:
					want = append(want, r.Data...)
				case replay.FromClient:
					expect()
					require.NoError(t, c.write(ctx, replay.Substitute(append([]byte(nil), r.Data...), placeholders)))
				case replay.EOF:
					expect()
					_, err := c.readUntil(ctx, func(cleaned) bool { return false })
					require.ErrorIs(t, err, io.EOF)
				}
			}
			require.NoError(t, srv.Wait(ctx))
		})
	}
}

// step is one command of a transcript driven through the public API.
type step struct {
	cmd     string // sent with Execute (LF appended by the client)
	raw     string // or: written as is (cases Execute refuses), then prompts awaited
	prompts int    // prompts to await after raw
	want    string // output
	wantErr string // CommandError.Message
	timeout bool   // the recording left the rest out: no prompt ever comes
	quit    bool
	check   func(t *testing.T, out string) // instead of want, for long listings
}

func runSteps(t *testing.T, transcript string, steps []step) {
	t.Parallel()
	tr := loadTranscript(t, transcript)
	srv := startReplay(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, srv.Addr())
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "Renode, version 1.16.1 (-202611271442)", c.Banner())
	assert.Equal(t, "monitor", c.Prompt())
	for _, s := range steps {
		name := s.cmd + s.raw
		switch {
		case s.quit:
			require.NoError(t, c.Quit(ctx), "quit")
		case s.raw != "":
			require.NoError(t, c.write(ctx, []byte(sub(s.raw))))
			text, err := c.readUntil(ctx, func(cl cleaned) bool { return cl.text == s.want })
			require.NoError(t, err, name)
			assert.Equal(t, s.prompts, len(promptLineRE.FindAllString(text, -1)), name)
		case s.timeout:
			sctx, scancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			_, err := c.Execute(sctx, s.cmd)
			scancel()
			require.ErrorIs(t, err, context.DeadlineExceeded, name)
			assert.Contains(t, err.Error(), s.want, name)
		default:
			out, err := c.Execute(ctx, sub(s.cmd))
			if s.wantErr != "" {
				var ce *CommandError
				require.ErrorAs(t, err, &ce, name)
				assert.Equal(t, sub(s.wantErr), ce.Message, name)
				assert.Equal(t, sub(s.cmd), ce.Command)
			} else {
				require.NoError(t, err, name)
			}
			if s.check != nil {
				s.check(t, out)
				continue
			}
			assert.Equal(t, sub(s.want), out, name)
		}
	}
	require.NoError(t, srv.Wait(ctx))
}

const signature = "Parameters did not match the signature"

func TestExecuteMonitorTelnet(t *testing.T) {
	runSteps(t, "monitor-telnet.txt", []step{
		{cmd: "help", timeout: true, want: "Available commands:"},
		{cmd: `mach create "dut"`},
		{cmd: "machine LoadPlatformDescription @<OFFLINE_REPL>"},
		{cmd: "sysbus LoadELF @<FW_DIR>/ticker.elf"},
		{cmd: "cpu VectorTableOffset 0x08000000"},
		{cmd: `emulation CreateServerSocketTerminal 3456 "term" false`},
		{cmd: "connector Connect sysbus.usart2 term"},
		{cmd: "start", want: "Starting emulation..."},
		{cmd: "pause", want: "Pausing emulation..."},
		{cmd: "machine Reset"},
		{cmd: `emulation RunFor "0.1"`},
		{cmd: "cpu PC", want: "0x0"},
		{cmd: "start", want: "Starting emulation..."},
		{cmd: `emulation RunFor "0.1"`, wantErr: "This action is not available when emulation is already started",
			want: "There was an error executing command 'emulation RunFor \"0.1\"'\nThis action is not available when emulation is already started"},
		{cmd: "pause", want: "Pausing emulation..."},
		{cmd: "foo", wantErr: "No such command or device: foo", want: "No such command or device: foo"},
		{cmd: "sysbus LoadELF @/nonexistent/fw.elf", wantErr: signature,
			want: "The following methods are available:\n - Void LoadELF (ReadFilePath fileName, Boolean useVirtualAddress = False, IPeripheral cpu = null)\n\nUsage:\n sysbus MethodName param1 param2 ...\n\nThere was an error executing command 'sysbus LoadELF @/nonexistent/fw.elf'\n" + signature},
		{cmd: "sysbus LoadELF @<TMP>/notelf.elf",
			wantErr: "Error while loading ELF: Could not load ELF from path: <TMP>/notelf.elf\n\tCould not load ELF from path: <TMP>/notelf.elf",
			want:    "There was an error executing command 'sysbus LoadELF @<TMP>/notelf.elf'\nError while loading ELF: Could not load ELF from path: <TMP>/notelf.elf\n\tCould not load ELF from path: <TMP>/notelf.elf"},
		{cmd: "machine LoadPlatformDescription @/nonexistent.repl", wantErr: "Could not find file '/nonexistent.repl'.",
			want: "There was an error executing command 'machine LoadPlatformDescription @/nonexistent.repl'\nCould not find file '/nonexistent.repl'."},
		{cmd: "emulation RunFor 1 2 3", wantErr: signature,
			want: "The following methods are available:\n - Void RunFor (TimeInterval period)\n\nUsage:\n emulation MethodName param1 param2 ...\n\nThere was an error executing command 'emulation RunFor 1 2 3'\n" + signature},
		{cmd: "cpu VectorTableOffset abc", wantErr: "Cannot convert type 'string' to 'uint'",
			want: "There was an error executing command 'cpu VectorTableOffset abc'\nCannot convert type 'string' to 'uint'"},
		{cmd: "mach create 1 2 3", wantErr: "Bad parameters for command mach create 1 2 3",
			want: "Bad parameters for command mach create 1 2 3\nmach\nlist and manipulate machines available in the environment.\n\nCurrent machine: dut\nAvailable machines:\n\t0: dut \n\nYou can use the following commands:\n'mach set [\"name\"|number]'\tto enable the given machine\n'mach add \"name\"'\tto create a new machine with the specified name\n'mach rem \"name\"'\tto remove a machine\n'mach create'\tto create a new machine with generic name and switch to it\n'mach clear'\tto clear the current selection"},
		{cmd: "sysbus.usart9 WriteChar 0x41", wantErr: "No such command or device: sysbus.usart9", want: "No such command or device: sysbus.usart9"},
		{cmd: "connector Connect sysbus.usart9 term", wantErr: signature,
			want: "The following methods are available:\n - Void Connect (IEmulationElement connectee, IConnectable connector)\n\nUsage:\n connector MethodName param1 param2 ...\n\nThere was an error executing command 'connector Connect sysbus.usart9 term'\n" + signature},
		{cmd: "sysbus.usart2 NoSuchMethod", wantErr: "sysbus.usart2 does not provide a field, method or property NoSuchMethod.",
			want: "There was an error executing command 'sysbus.usart2 NoSuchMethod'\nsysbus.usart2 does not provide a field, method or property NoSuchMethod."},
		{quit: true},
	})
}

func TestExecuteMonitorTelnetColour(t *testing.T) {
	runSteps(t, "monitor-telnet-colour.txt", []step{
		{cmd: "help", timeout: true, want: "Available commands:"},
		{cmd: `mach create "dut"`},
		{cmd: "foo", wantErr: "No such command or device: foo", want: "No such command or device: foo"},
		{cmd: "version", want: "Renode, version 1.16.1 (-202611271442)"},
		{cmd: "sysbus LoadELF @/nonexistent/fw.elf", wantErr: signature,
			want: "The following methods are available:\n - Void LoadELF (ReadFilePath fileName, Boolean useVirtualAddress = False, IPeripheral cpu = null)\n\nUsage:\n sysbus MethodName param1 param2 ...\n\nThere was an error executing command 'sysbus LoadELF @/nonexistent/fw.elf'\n" + signature},
		{quit: true},
	})
}

const versionLine = "Renode, version 1.16.1 (-202611271442)"

func TestExecuteMonitorTelnetCRLF(t *testing.T) {
	// Execute sends LF only; the other line ends of the recording are
	// written raw to show what they do to the prompt count.
	runSteps(t, "monitor-telnet-crlf.txt", []step{
		{cmd: `mach create "dut"`},
		{cmd: "version", want: versionLine},
		{raw: "version\r\n", prompts: 2, want: "version\n" + versionLine + "\n(dut) \n(dut) "},
		{raw: "version\r", prompts: 1, want: "version\n" + versionLine + "\n(dut) "},
		{raw: "version\r", prompts: 1, want: "version\n" + versionLine + "\n(dut) "},
		{raw: "\n", prompts: 1, want: "\n(dut) "},
		{raw: "\r\n", prompts: 2, want: "\n(dut) \n(dut) "},
		{raw: "\n", prompts: 1, want: "\n(dut) "},
		{raw: "version\n\r", prompts: 2, want: "version\n" + versionLine + "\n(dut) \n(dut) "},
		{raw: "version\nversion\n", prompts: 2, want: "version\n" + versionLine + "\n(dut) version\n" + versionLine + "\n(dut) "},
		{raw: "vers", prompts: 0, want: "vers"}, // echoed, not run
		{raw: "ion\n", prompts: 1, want: "ion\n" + versionLine + "\n(dut) "},
		{raw: "\xff\xfb\x18\xff\xfd\x01version\n", prompts: 1, want: "version\n" + versionLine + "\n(dut) "},
		{quit: true},
	})
}

func TestExecuteMonitorTelnetSVDFail(t *testing.T) {
	runSteps(t, "monitor-telnet-svd-fail.txt", []step{
		{cmd: `mach create "dut"`},
		{cmd: "machine LoadPlatformDescription @platforms/boards/stm32f4_discovery-kit.repl",
			wantErr: "Failed to download https://dl.antmicro.com/projects/renode/svd/STM32F40x.svd.gz, see log for details.",
			want:    "Failed to download https://dl.antmicro.com/projects/renode/svd/STM32F40x.svd.gz, see log for details."},
		{cmd: "sysbus.usart2", check: func(t *testing.T, out string) {
			// 3729 bytes of listing with no error marker in it
			assert.True(t, strings.HasPrefix(out, "The following methods are available:\n - Void AddAfterReadDoubleWordHook (Int64 offset, String script)\n"), out)
			assert.True(t, strings.HasSuffix(out, "\n - set: sysbus.usart2 PropertyName Value"), out)
			assert.Contains(t, out, " - Void WriteChar (Byte value)\n")
		}},
		{cmd: "sysbus LoadELF @<FW_DIR>/ticker.elf"},
		{cmd: "cpu VectorTableOffset 0x08000000"},
		{cmd: `emulation RunFor "0.1"`},
		{cmd: "sysbus ReadDoubleWord 0x20000000", want: "0x00000064"},
		{quit: true},
	})
}

func TestExecuteMonitorTelnetResetMacro(t *testing.T) {
	runSteps(t, "monitor-telnet-reset-macro.txt", []step{
		{cmd: `mach create "dut"`},
		{cmd: "machine LoadPlatformDescription @<OFFLINE_REPL>"},
		{cmd: "macro reset \"\"\"\nsysbus LoadELF @<FW_DIR>/ticker.elf\ncpu VectorTableOffset 0x08000000\n\"\"\""},
		{cmd: "runMacro $reset"},
		{cmd: `emulation RunFor "0.1"`},
		{cmd: "cpu PC", want: "0x80002e4"},
		{cmd: "sysbus ReadDoubleWord 0x20000000", want: "0x00000064"},
		{cmd: "machine Reset"},
		{cmd: "cpu PC", want: "0x0"},
		{cmd: "cpu VectorTableOffset", want: "0x08000000"},
		{cmd: `emulation RunFor "0.05"`},
		{cmd: "cpu PC", want: "0x80002e6"},
		{cmd: "sysbus ReadDoubleWord 0x20000000", want: "0x00000032"},
		{cmd: "machine GetTimeSourceInfo", want: "Elapsed Virtual Time: 00:00:00.150000000\nElapsed Host Time: 00:00:00.243045100\nCurrent load: 0.640777777777778\nCumulative load: 1.62030066666667\nState: Idle\nAdvance immediately: False\nQuantum: 00:00:00.000100000"},
		{quit: true},
	})
}

// A client that reconnects to a running Renode gets only the 12 IAC bytes,
// no banner and no prompt, until it sends a line (README.md, "One client at
// a time"). That behaviour was described, not captured, so this transcript
// is written from the description in the recordings' format.
const reconnectTranscript = `# constructed from README.md: reconnect gets only the IAC preamble
[+ 0.001000s] <- renode 12 bytes
    "\xff\xfd\x00\xff\xfb\x01\xff\xfb\x03\xff\xfc""
[+ 0.500000s] -> client 1 bytes
    "\n"
[+ 0.500500s] <- renode 8 bytes in 2 recv() chunks until +0.501000s
    "\n"
    "\r(dut) "
[+ 0.700000s] -> client 8 bytes
    "version\n"
[+ 0.700500s] <- renode 56 bytes in 26 recv() chunks until +0.702000s
    "version\n"
    "\rRenode, version 1.16.1 (-202611271442)\r\n"
    "\r(dut) "
`

func TestHandshakeNudgesAfterReconnect(t *testing.T) {
	tr, err := replay.ParseTranscript("reconnect", []byte(reconnectTranscript), false)
	require.NoError(t, err)
	srv := startReplay(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, srv.Addr(), WithNudge(200*time.Millisecond))
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "", c.Banner())
	assert.Equal(t, "dut", c.Prompt())
	out, err := c.Execute(ctx, "version")
	require.NoError(t, err)
	assert.Equal(t, versionLine, out)
}

func TestValidateRefusesUnsafeLines(t *testing.T) {
	cases := []struct {
		name string
		cmd  string
		ok   bool
	}{
		{"plain", "cpu PC", true},
		{"empty line", "", true},
		{"macro block", "macro reset \"\"\"\nsysbus LoadELF @/a.elf\n\"\"\"", true},
		{"CR", "version\r", false},
		{"TAB completion", "mach\t", false},
		{"IAC", "a\xffb", false},
		{"ESC", "a\x1b[0m", false},
		{"two lines", "version\nversion", false},
		{"line break after block", "macro a \"\"\"\nx\n\"\"\"\nversion", false},
		{"unterminated block", "macro a \"\"\"\nx", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(tc.cmd)
			if tc.ok {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "monitor: "))
		})
	}
}

// Nothing is sent for a refused line, and a silent server bounds Execute by
// its context.
func TestExecuteBadInputAndTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = conn.Write([]byte("\xff\xfd\x00Renode, version 1.16.1 (x)\n\r\n\r(monitor) "))
		b, _ := io.ReadAll(conn)
		got <- b
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, ln.Addr().String())
	require.NoError(t, err)
	_, err = c.Execute(ctx, "version\r")
	require.Error(t, err)

	short, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer scancel()
	_, err = c.Execute(short, "start")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, c.Close())
	assert.Equal(t, "start\n", string(<-got))
}

func TestDialFailsCleanly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = Dial(ctx, addr)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "monitor: "))
}
