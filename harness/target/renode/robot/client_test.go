package robot

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/target/renode/internal/replay"
)

const recordings = "../testdata/xmlrpc"

// placeholders gives the recordings' path placeholders concrete values; the
// client sends these paths and the double checks them in the request body.
var placeholders = map[string]string{
	"<OFFLINE_REPL>": "/opt/ddhil/stm32f4_discovery-offline.repl",
	"<FW_DIR>":       "/opt/ddhil/fw",
}

// exchangeCase is one recorded XML-RPC exchange, named by its file stem in
// testdata/xmlrpc (copied from shared/renode/xmlrpc), and the client call
// that must produce exactly the recorded request.
type exchangeCase struct {
	file string
	run  func(t *testing.T, ctx context.Context, c *Client)
}

func faultCase(file string, code int, msg string, method string, params ...any) exchangeCase {
	return exchangeCase{file, func(t *testing.T, ctx context.Context, c *Client) {
		_, err := c.Call(ctx, method, params...)
		var f *Fault
		require.ErrorAs(t, err, &f)
		assert.Equal(t, code, f.Code)
		assert.Equal(t, msg, f.Message)
	}}
}

func execCase(file, command, want string) exchangeCase {
	return exchangeCase{file, func(t *testing.T, ctx context.Context, c *Client) {
		out, err := c.ExecuteCommand(ctx, command)
		require.NoError(t, err)
		assert.Equal(t, want, out)
	}}
}

func execFailCase(file, command, message string) exchangeCase {
	return exchangeCase{file, func(t *testing.T, ctx context.Context, c *Client) {
		_, err := c.ExecuteCommand(ctx, command)
		var ke *KeywordError
		require.ErrorAs(t, err, &ke)
		assert.Equal(t, message, ke.Message)
		assert.Equal(t, "ExecuteCommand", ke.Keyword)
		assert.Contains(t, ke.Traceback, "RenodeKeywords.ExecuteCommand")
	}}
}

func passCase(file, keyword string, args ...string) exchangeCase {
	return exchangeCase{file, func(t *testing.T, ctx context.Context, c *Client) {
		r, err := c.RunKeyword(ctx, keyword, args...)
		require.NoError(t, err)
		assert.Equal(t, StatusPass, r.Status)
		assert.Nil(t, r.Return, "void keywords leave out return")
	}}
}

func uartLineCase(file string, want map[string]any, keyword string, args ...string) exchangeCase {
	return exchangeCase{file, func(t *testing.T, ctx context.Context, c *Client) {
		v, err := c.Run(ctx, keyword, args...)
		require.NoError(t, err)
		assert.Equal(t, want, v)
	}}
}

func testerFailCase(file string, contains []string, keyword string, args ...string) exchangeCase {
	return exchangeCase{file, func(t *testing.T, ctx context.Context, c *Client) {
		_, err := c.Run(ctx, keyword, args...)
		var ke *KeywordError
		require.ErrorAs(t, err, &ke)
		assert.True(t, strings.HasPrefix(ke.Message, "Terminal tester failed!\n\nFull report:\n"), ke.Message)
		for _, s := range contains {
			assert.Contains(t, ke.Message, s)
		}
		assert.Contains(t, ke.Traceback, "UartKeywords")
	}}
}

func keywordNames(t *testing.T) []string {
	raw, err := os.ReadFile("../testdata/keywords.txt")
	require.NoError(t, err)
	var names []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			names = append(names, l)
		}
	}
	return names
}

// mainSession is session "main" of sessions.txt (echo_irq.elf), in order.
func mainSession(t *testing.T) []exchangeCase {
	unsupported := func(m string) string { return "unsupported method called: " + m }
	return []exchangeCase{
		{"01-get_keyword_names", func(t *testing.T, ctx context.Context, c *Client) {
			names, err := c.KeywordNames(ctx)
			require.NoError(t, err)
			assert.Equal(t, keywordNames(t), names)
			assert.Len(t, names, 57)
		}},
		faultCase("02-get_keyword_arguments-ExecuteCommand", 0, unsupported("get_keyword_arguments"), "get_keyword_arguments", "ExecuteCommand"),
		faultCase("03-get_keyword_arguments-CreateTerminalTester", 0, unsupported("get_keyword_arguments"), "get_keyword_arguments", "CreateTerminalTester"),
		faultCase("04-get_keyword_arguments-WaitForLineOnUart", 0, unsupported("get_keyword_arguments"), "get_keyword_arguments", "WaitForLineOnUart"),
		faultCase("05-get_keyword_arguments-WriteLineToUart", 0, unsupported("get_keyword_arguments"), "get_keyword_arguments", "WriteLineToUart"),
		faultCase("06-get_keyword_arguments-StartEmulation", 0, unsupported("get_keyword_arguments"), "get_keyword_arguments", "StartEmulation"),
		faultCase("07-get_keyword_arguments-ResetEmulation", 0, unsupported("get_keyword_arguments"), "get_keyword_arguments", "ResetEmulation"),
		faultCase("08-get_keyword_arguments-StopRemoteServer", 0, unsupported("get_keyword_arguments"), "get_keyword_arguments", "StopRemoteServer"),
		faultCase("09-get_library_information", 0, unsupported("get_library_information"), "get_library_information"),
		faultCase("10-get_keyword_documentation-ExecuteCommand", 0, unsupported("get_keyword_documentation"), "get_keyword_documentation", "ExecuteCommand"),
		execCase("11-run_keyword-ExecuteCommand-mach-create", `mach create "dut"`, ""),
		execCase("12-run_keyword-ExecuteCommand-version", "version", "Renode, version 1.16.1 (-202611271442)"),
		execFailCase("13-run_keyword-ExecuteCommand-unknown-command", "foo", "No such command or device: foo"),
		execFailCase("14-run_keyword-ExecuteCommand-LoadELF-bad-path", "sysbus LoadELF @/nonexistent/fw.elf", "Parameters did not match the signature"),
		execCase("15-run_keyword-ExecuteCommand-LoadPlatformDescription-offline", "machine LoadPlatformDescription @"+placeholders["<OFFLINE_REPL>"], ""),
		execCase("16-run_keyword-ExecuteCommand-LoadELF", "sysbus LoadELF @"+placeholders["<FW_DIR>"]+"/echo_irq.elf", ""),
		execCase("17-run_keyword-ExecuteCommand-VectorTableOffset", "cpu VectorTableOffset 0x08000000", ""),
		{"18-run_keyword-CreateTerminalTester", func(t *testing.T, ctx context.Context, c *Client) {
			v, err := c.Run(ctx, "CreateTerminalTester", "sysbus.usart2")
			require.NoError(t, err)
			assert.Equal(t, 0, v, "tester id is an <i4>")
		}},
		passCase("19-run_keyword-StartEmulation", "StartEmulation"),
		uartLineCase("20-run_keyword-WaitForLineOnUart-success",
			map[string]any{"Line": "echo ready", "Timestamp": 0.0, "Groups": []any{}, "IsFailingString": false},
			"WaitForLineOnUart", "echo ready"),
		uartLineCase("21-run_keyword-WriteLineToUart",
			map[string]any{"Line": "", "Timestamp": 0.0, "Groups": []any{}, "IsFailingString": false},
			"WriteLineToUart", "hello renode"),
		testerFailCase("22-run_keyword-WaitForLineOnUart-timeout",
			[]string{"Line containing >>this is never printed<< event: failure", "hello renode [[no newline]]"},
			"WaitForLineOnUart", "this is never printed", "timeout=1"),
		uartLineCase("23-run_keyword-WriteLineToUart-waitForEcho-false",
			map[string]any{"Line": "", "Timestamp": 0.0, "Groups": []any{}, "IsFailingString": false},
			"WriteLineToUart", "ping 42", "waitForEcho=false"),
		uartLineCase("24-run_keyword-WaitForLineOnUart-regex-unfinished-line",
			map[string]any{"Line": "ping 42", "Timestamp": 3678.7, "Groups": []any{"i", "42"}, "IsFailingString": false},
			"WaitForLineOnUart", `p(i)ng (\d+)`, "treatAsRegex=true", "includeUnfinishedLine=true", "timeout=1"),
		execCase("25-run_keyword-ExecuteCommand-cpu-PC", "cpu PC", "0x800026c"),
		faultCase("26-run_keyword-unknown-keyword", 1, `Keyword "NoSuchKeyword" not found`, "run_keyword", "NoSuchKeyword", []string{}),
		{"27-run_keyword-ExecuteCommand-no-args", func(t *testing.T, ctx context.Context, c *Client) {
			_, err := c.RunKeyword(ctx, "ExecuteCommand")
			var f *Fault
			require.ErrorAs(t, err, &f)
			assert.Equal(t, 2, f.Code)
			assert.Equal(t, `Arguments types do not match any available keyword "ExecuteCommand" : []`, f.Message)
		}},
		{"28-run_keyword-ExecuteCommand-too-many-args", func(t *testing.T, ctx context.Context, c *Client) {
			_, err := c.Run(ctx, "ExecuteCommand", "version", "dut", "extra")
			var f *Fault
			require.ErrorAs(t, err, &f)
			assert.Equal(t, 2, f.Code)
			assert.Equal(t, `Arguments types do not match any available keyword "ExecuteCommand" : [version, dut, extra]`, f.Message)
		}},
		faultCase("29-run_keyword-with-kwargs-struct", 0, "Request contains too many param elements based on method signature.",
			"run_keyword", "ExecuteCommand", []string{"version"}, map[string]any{"machine": "dut"}),
		passCase("30-run_keyword-ResetEmulation", "ResetEmulation"),
		execFailCase("31-run_keyword-ExecuteCommand-mach-after-reset", "mach", "Bad parameters for command mach No machine selected."),
		passCase("32-run_keyword-StopRemoteServer", "StopRemoteServer"),
	}
}

func svdSession() []exchangeCase {
	return []exchangeCase{
		execCase("svd-01-run_keyword-ExecuteCommand-mach-create", `mach create "dut"`, ""),
		execFailCase("svd-02-run_keyword-ExecuteCommand-LoadPlatformDescription-stock-svd-fail",
			"machine LoadPlatformDescription @platforms/boards/stm32f4_discovery-kit.repl",
			"Failed to download https://dl.antmicro.com/projects/renode/svd/STM32F40x.svd.gz, see log for details."),
		{"svd-03-run_keyword-ExecuteCommand-peripherals", func(t *testing.T, ctx context.Context, c *Client) {
			out, err := c.ExecuteCommand(ctx, "peripherals")
			require.NoError(t, err)
			assert.True(t, strings.HasPrefix(out, "Available peripherals:\n\n  sysbus (SystemBus)\n  │   \n  ├── bitbandPeripherals (BitBanding)\n"), out[:120])
			assert.Contains(t, out, "usart2 (STM32_UART)\n  │       <0x40004400, 0x400044FF>")
			assert.NotContains(t, out, "usart6")
		}},
		{"svd-04-stop_remote_server", func(t *testing.T, ctx context.Context, c *Client) {
			require.NoError(t, c.StopRemoteServer(ctx))
		}},
	}
}

func noechoSession() []exchangeCase {
	return []exchangeCase{
		execCase("noecho-01-run_keyword-ExecuteCommand-mach-create", `mach create "dut"`, ""),
		execCase("noecho-02-run_keyword-ExecuteCommand-LoadPlatformDescription-offline", "machine LoadPlatformDescription @"+placeholders["<OFFLINE_REPL>"], ""),
		execCase("noecho-03-run_keyword-ExecuteCommand-LoadELF-bin", "sysbus LoadELF @"+placeholders["<FW_DIR>"]+"/bin.elf", ""),
		execCase("noecho-04-run_keyword-ExecuteCommand-VectorTableOffset", "cpu VectorTableOffset 0x08000000", ""),
		{"noecho-05-run_keyword-CreateTerminalTester-timeout", func(t *testing.T, ctx context.Context, c *Client) {
			v, err := c.Run(ctx, "CreateTerminalTester", "sysbus.usart2", "timeout=0.5")
			require.NoError(t, err)
			assert.Equal(t, 0, v)
		}},
		passCase("noecho-06-run_keyword-StartEmulation", "StartEmulation"),
		uartLineCase("noecho-07-run_keyword-WaitForLineOnUart-BIN-END",
			map[string]any{"Line": "BIN END", "Timestamp": 0.0, "Groups": []any{}, "IsFailingString": false},
			"WaitForLineOnUart", "BIN END"),
		testerFailCase("noecho-08-run_keyword-WriteLineToUart-no-echo-fails",
			[]string{"Line containing >>AB<< event: failure", "rx 2 0d"}, "WriteLineToUart", "AB"),
		uartLineCase("noecho-09-run_keyword-WriteLineToUart-waitForEcho-false",
			map[string]any{"Line": "", "Timestamp": 0.0, "Groups": []any{}, "IsFailingString": false},
			"WriteLineToUart", "CD", "waitForEcho=false"),
		uartLineCase("noecho-10-run_keyword-WaitForLineOnUart-rx5",
			map[string]any{"Line": "rx 5 0d", "Timestamp": 2127.40027, "Groups": []any{}, "IsFailingString": false},
			"WaitForLineOnUart", "rx 5 "),
		{"noecho-11-run_keyword-GetTerminalTesterReport", func(t *testing.T, ctx context.Context, c *Client) {
			// The body holds &#x1; etc., which XML 1.0 forbids; the
			// client must decode it anyway and return the raw bytes.
			v, err := c.Run(ctx, "GetTerminalTesterReport")
			require.NoError(t, err)
			s, ok := v.(string)
			require.True(t, ok)
			assert.Contains(t, s, "virt:       0] \x01\x02\x03\x04\x05\x06\x07\x08\t\n")
			assert.Contains(t, s, "\x0b\x0c\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1d\x1e\x1f !\"#$%&'()*+,-./0123456789:;<=>?@A")
			assert.Contains(t, s, "~\x7f\u0080\u0081")
			assert.Contains(t, s, "\u00fe\u00ff\n")
			assert.Contains(t, s, "Line containing >>AB<< event: failure")
		}},
		passCase("noecho-12-run_keyword-StopRemoteServer", "StopRemoteServer"),
	}
}

func load(t *testing.T, names ...string) []replay.Exchange {
	var out []replay.Exchange
	for _, n := range names {
		ex, err := replay.LoadExchange(recordings, n)
		require.NoError(t, err)
		out = append(out, ex)
	}
	return out
}

func startDouble(t *testing.T, names ...string) (*replay.HTTPServer, *Client) {
	srv, err := replay.StartHTTP(load(t, names...), placeholders)
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	c := New(srv.Addr())
	t.Cleanup(c.Close)
	return srv, c
}

// Each recorded exchange on its own: the double checks the request body byte
// for byte and answers with the recorded response bytes.
func TestRecordedExchanges(t *testing.T) {
	all := append(append(mainSession(t), svdSession()...), noechoSession()...)
	seen := map[string]bool{}
	for _, tc := range all {
		seen[tc.file] = true
		t.Run(tc.file, func(t *testing.T) {
			srv, c := startDouble(t, tc.file)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tc.run(t, ctx, c)
			require.NoError(t, srv.Err())
		})
	}
	// Every recording is covered.
	files, err := filepath.Glob(filepath.Join(recordings, "*.request.http"))
	require.NoError(t, err)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".request.http")
		assert.True(t, seen[name], "recording %s has no test case", name)
	}
}

// Whole sessions on one client: keep-alive reuse, the serialised calls and
// the unsolicited close response after StopRemoteServer.
func TestRecordedSessions(t *testing.T) {
	sessions := map[string][]exchangeCase{"main": mainSession(t), "svd": svdSession(), "noecho": noechoSession()}
	for name, cases := range sessions {
		t.Run(name, func(t *testing.T) {
			var files []string
			for _, tc := range cases {
				files = append(files, tc.file)
			}
			srv, c := startDouble(t, files...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for _, tc := range cases {
				t.Run(tc.file, func(t *testing.T) { tc.run(t, ctx, c) })
			}
			require.NoError(t, srv.Err())
			assert.Equal(t, len(cases), srv.Served())
		})
	}
}

func TestEncodeMatchesPythonLayout(t *testing.T) {
	cases := []struct {
		name   string
		method string
		params []any
		want   string
	}{
		{"escapes only amp lt gt", "run_keyword", []any{"ExecuteCommand", []string{`a & <b> "c" 'd'`}},
			"<?xml version='1.0'?>\n<methodCall>\n<methodName>run_keyword</methodName>\n<params>\n<param>\n<value><string>ExecuteCommand</string></value>\n</param>\n<param>\n<value><array><data>\n<value><string>a &amp; &lt;b&gt; \"c\" 'd'</string></value>\n</data></array></value>\n</param>\n</params>\n</methodCall>\n"},
		{"scalars", "m", []any{1, true, 2.5},
			"<?xml version='1.0'?>\n<methodCall>\n<methodName>m</methodName>\n<params>\n<param>\n<value><int>1</int></value>\n</param>\n<param>\n<value><boolean>1</boolean></value>\n</param>\n<param>\n<value><double>2.5</double></value>\n</param>\n</params>\n</methodCall>\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeCall(tc.method, tc.params)
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(b))
		})
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name   string
		params []any
		want   string
	}{
		{"control character", []any{"a\x01b"}, "XML 1.0 cannot carry"},
		{"invalid UTF-8", []any{"a\xffb"}, "not UTF-8"},
		{"unsupported type", []any{struct{}{}}, "cannot encode"},
		{"int overflow", []any{1 << 40}, "32 bits"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := New("127.0.0.1:1") // never dialled: encoding fails first
			_, err := c.Call(context.Background(), "m", tc.params...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "robot: "))
		})
	}
}

// Malformed server answers are errors, never panics.
func TestBadResponses(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"not XML", 200, "hello", "bad XML-RPC response"},
		{"HTML page", 200, "<html><body>x</body></html>", "<html> where <methodResponse>"},
		{"HTTP error", 500, "", "HTTP 500"},
		{"truncated", 200, `<?xml version="1.0"?><methodResponse><params><param><value><struct><member>`, "bad XML-RPC"},
		{"bad int", 200, `<methodResponse><params><param><value><i4>x</i4></value></param></params></methodResponse>`, "bad XML-RPC integer"},
		{"unknown type", 200, `<methodResponse><params><param><value><blob>x</blob></value></param></params></methodResponse>`, "unknown XML-RPC type"},
		{"status missing", 200, `<methodResponse><params><param><value><struct></struct></value></param></params></methodResponse>`, `status ""`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := New(srv.URL)
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := c.RunKeyword(ctx, "StartEmulation")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// A server that never answers (Renode busy in a long keyword) bounds the
// call by its context, and a second caller waits its turn with its own
// context.
func TestContextBoundsCalls(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = http.ReadRequest(bufio.NewReader(conn))
				buf := make([]byte, 1)
				_, _ = conn.Read(buf) // hold the request until the client gives up
			}()
		}
	}()
	c := New(ln.Addr().String())
	defer c.Close()

	first := make(chan error, 1)
	ctx1, cancel1 := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel1()
	go func() { _, err := c.ExecuteCommand(ctx1, "version"); first <- err }()

	require.Eventually(t, func() bool { return len(c.sem) == 1 }, 5*time.Second, time.Millisecond)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_, err = c.ExecuteCommand(ctx2, "version")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "waiting for the previous call")

	err = <-first
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestErrorText(t *testing.T) {
	cases := []struct {
		name, raw, command, want string
	}{
		{"could not execute", "KeywordException: Could not execute command 'foo': No such command or device: foo\n", "foo", "No such command or device: foo"},
		{"glued monitor line", "KeywordException: Could not execute command 'x y': There was an error executing command 'x y'Parameters did not match the signature\n", "x y", "Parameters did not match the signature"},
		{"error stream", "KeywordException: There was an error when executing command 'a': Failed to download u, see log for details.\n", "a", "Failed to download u, see log for details."},
		{"other keyword", "InvalidOperationException: Terminal tester failed!\n\nFull report:\nx\n", "", "Terminal tester failed!\n\nFull report:\nx"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, errorText(tc.raw, tc.command))
		})
	}
}

// The double is strict: a request that differs from the recording gets no
// answer and is reported.
func TestDoubleRejectsDeviation(t *testing.T) {
	srv, c := startDouble(t, "12-run_keyword-ExecuteCommand-version")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.ExecuteCommand(ctx, "Version")
	require.Error(t, err)
	require.Error(t, srv.Err())
	assert.Contains(t, srv.Err().Error(), "request body differs")
}
