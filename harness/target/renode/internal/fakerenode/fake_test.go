package fakerenode

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/target/renode/internal/replay"
)

const testdata = "../../testdata"

func recordedBody(t *testing.T, name string) string {
	t.Helper()
	ex, err := replay.LoadExchange(filepath.Join(testdata, "xmlrpc"), name)
	require.NoError(t, err)
	b, err := ex.ResponseBody()
	require.NoError(t, err)
	return string(b)
}

func uartLine(line string, ts float64, groups []any) ordered {
	return ordered{{"Line", line}, {"Timestamp", ts}, {"Groups", groups}, {"IsFailingString", false}}
}

// The fake answers in Renode's byte format: its renderer reproduces the
// recorded response bodies exactly.
func TestRenderMatchesRecordings(t *testing.T) {
	cases := []struct {
		file string
		v    any
		f    *fault
	}{
		{"01-get_keyword_names", keywords(), nil},
		{"11-run_keyword-ExecuteCommand-mach-create", pass(""), nil},
		{"12-run_keyword-ExecuteCommand-version", pass("Renode, version 1.16.1 (-202611271442)\r\n\r"), nil},
		{"18-run_keyword-CreateTerminalTester", pass(0), nil},
		{"19-run_keyword-StartEmulation", pass(nil), nil},
		{"20-run_keyword-WaitForLineOnUart-success", pass(uartLine("echo ready", 0, []any{})), nil},
		{"24-run_keyword-WaitForLineOnUart-regex-unfinished-line", pass(uartLine("ping 42", 3678.7, []any{"i", "42"})), nil},
		{"25-run_keyword-ExecuteCommand-cpu-PC", pass("0x800026c\r\r\n"), nil},
		{"26-run_keyword-unknown-keyword", nil, &fault{1, `Keyword "NoSuchKeyword" not found`}},
		{"28-run_keyword-ExecuteCommand-too-many-args", nil, &fault{2, `Arguments types do not match any available keyword "ExecuteCommand" : [version, dut, extra]`}},
		{"29-run_keyword-with-kwargs-struct", nil, &fault{0, "Request contains too many param elements based on method signature."}},
		{"09-get_library_information", nil, &fault{0, "unsupported method called: get_library_information"}},
		{"svd-04-stop_remote_server", "", nil},
		{"13-run_keyword-ExecuteCommand-unknown-command", ordered{{"status", "FAIL"},
			{"error", "KeywordException: Could not execute command 'foo': No such command or device: foo\n"},
			{"traceback", "KeywordException:   at Antmicro.Renode.RobotFramework.RenodeKeywords.ExecuteCommand (System.String command, System.String machine) [0x0004d] in <8c5ad3e9a2ec40b6b6fcf2e0eba1b542>:0 \n  at (wrapper managed-to-native) System.Reflection.RuntimeMethodInfo.InternalInvoke(System.Reflection.RuntimeMethodInfo,object,object[],System.Exception&)\n  at System.Reflection.RuntimeMethodInfo.Invoke (System.Object obj, System.Reflection.BindingFlags invokeAttr, System.Reflection.Binder binder, System.Object[] parameters, System.Globalization.CultureInfo culture) [0x0007c] in <12b418a7818c4ca0893feeaaf67f1e7f>:0 \n"}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			want := strings.ReplaceAll(recordedBody(t, tc.file), "\r\n", "\n") // XML reads CR LF as LF
			got := strings.ReplaceAll(string(renderResponse(tc.v, tc.f)), "\r\n", "\n")
			assert.Equal(t, want, got)
		})
	}
}

func TestKeywordListIsTheRecordedOne(t *testing.T) {
	recorded, err := os.ReadFile(filepath.Join(testdata, "keywords.txt"))
	require.NoError(t, err)
	assert.Equal(t, string(recorded), keywordList)
	assert.Len(t, keywords(), 57)
}

// The fake's telnet replies have the recorded shapes (monitor-telnet.txt).
func TestTelnetReplyShapes(t *testing.T) {
	tr, err := replay.ParseTranscriptFile(filepath.Join(testdata, "monitor-telnet.txt"))
	require.NoError(t, err)
	// recorded reply (all Renode bytes after the echoed line) per command
	replies := map[string]string{}
	var cmd string
	for _, r := range tr.Records {
		switch r.Dir {
		case replay.FromClient:
			cmd = strings.TrimSuffix(string(r.Data), "\n")
			replies[cmd] = ""
		case replay.FromRenode:
			if cmd != "" {
				replies[cmd] += string(r.Data)
			}
		}
	}
	cases := []struct {
		cmd string
		r   result
	}{
		{"connector Connect sysbus.usart2 term", ok()},
		{"start", msg("Starting emulation...")},
		{"cpu PC", val("0x0")},
		{`emulation RunFor "0.1"`, execErr("This action is not available when emulation is already started")},
		{"foo", result{kind: errParse, text: "No such command or device: foo"}},
		{"sysbus LoadELF @/nonexistent/fw.elf", signature("Void LoadELF (ReadFilePath fileName, Boolean useVirtualAddress = False, IPeripheral cpu = null)", "sysbus")},
		{"machine LoadPlatformDescription @/nonexistent.repl", execErr("Could not find file '/nonexistent.repl'.")},
	}
	for _, tc := range cases {
		t.Run(tc.cmd, func(t *testing.T) {
			var b bytes.Buffer
			w := bufio.NewWriter(&b)
			w.WriteString(tc.cmd + "\n\r")
			writeReply(w, tc.cmd, tc.r, "dut")
			require.NoError(t, w.Flush())
			recorded := replies[tc.cmd]
			require.NotEmpty(t, recorded)
			assert.Equal(t, recorded, b.String())
		})
	}
}
