package fakerenode

import (
	"bufio"
	_ "embed"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// keywordList is testdata/keywords.txt (Renode 1.16.1's get_keyword_names).
//
//go:embed keywords.txt
var keywordList string

func keywords() []any {
	var out []any
	for _, l := range strings.Split(keywordList, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// xmlValue decodes one XML-RPC <value>.
type xmlValue struct {
	Text   string      `xml:",chardata"`
	String *string     `xml:"string"`
	Int    *int        `xml:"int"`
	I4     *int        `xml:"i4"`
	Bool   *int        `xml:"boolean"`
	Array  *[]xmlValue `xml:"array>data>value"`
	Struct *[]struct {
		Name  string   `xml:"name"`
		Value xmlValue `xml:"value"`
	} `xml:"struct>member"`
}

func (v xmlValue) native() any {
	switch {
	case v.String != nil:
		return *v.String
	case v.Int != nil:
		return *v.Int
	case v.I4 != nil:
		return *v.I4
	case v.Bool != nil:
		return *v.Bool == 1
	case v.Array != nil:
		out := []any{}
		for _, e := range *v.Array {
			out = append(out, e.native())
		}
		return out
	case v.Struct != nil:
		out := map[string]any{}
		for _, m := range *v.Struct {
			out[m.Name] = m.Value.native()
		}
		return out
	}
	return v.Text
}

type methodCall struct {
	Name   string     `xml:"methodName"`
	Params []xmlValue `xml:"params>param>value"`
}

// fault is an XML-RPC fault as Renode words it.
type fault struct {
	code int
	msg  string
}

// renderResponse writes a methodResponse in Renode's layout: 2-space
// indent, <string /> for "", <data /> for an empty array, no final newline.
func renderResponse(v any, f *fault) []byte {
	var b strings.Builder
	b.WriteString("<?xml version=\"1.0\"?>\n<methodResponse>\n")
	if f != nil {
		b.WriteString("  <fault>\n")
		renderValue(&b, 2, ordered{{"faultCode", f.code}, {"faultString", f.msg}})
		b.WriteString("  </fault>\n")
	} else {
		b.WriteString("  <params>\n    <param>\n")
		renderValue(&b, 3, v)
		b.WriteString("    </param>\n  </params>\n")
	}
	b.WriteString("</methodResponse>")
	return []byte(b.String())
}

// ordered is a struct whose member order matters (Renode puts status
// first on FAIL and last on PASS).
type ordered []struct {
	name string
	v    any
}

func renderValue(b *strings.Builder, depth int, v any) {
	if m, isMap := v.(map[string]any); isMap {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var o ordered
		for _, k := range keys {
			o = append(o, struct {
				name string
				v    any
			}{k, m[k]})
		}
		v = o
	}
	ind := strings.Repeat("  ", depth)
	b.WriteString(ind + "<value>\n")
	in := ind + "  "
	switch x := v.(type) {
	case string:
		if x == "" {
			b.WriteString(in + "<string />\n")
		} else {
			b.WriteString(in + "<string>" + escape(x) + "</string>\n")
		}
	case int:
		b.WriteString(in + "<i4>" + strconv.Itoa(x) + "</i4>\n")
	case bool:
		n := "0"
		if x {
			n = "1"
		}
		b.WriteString(in + "<boolean>" + n + "</boolean>\n")
	case float64:
		b.WriteString(in + "<double>" + strconv.FormatFloat(x, 'f', -1, 64) + "</double>\n")
	case []any:
		b.WriteString(in + "<array>\n")
		if len(x) == 0 {
			b.WriteString(in + "  <data />\n")
		} else {
			b.WriteString(in + "  <data>\n")
			for _, e := range x {
				renderValue(b, depth+3, e)
			}
			b.WriteString(in + "  </data>\n")
		}
		b.WriteString(in + "</array>\n")
	case ordered:
		b.WriteString(in + "<struct>\n")
		for _, m := range x {
			b.WriteString(in + "  <member>\n")
			b.WriteString(in + "    <name>" + escape(m.name) + "</name>\n")
			renderValue(b, depth+3, m.v)
			b.WriteString(in + "  </member>\n")
		}
		b.WriteString(in + "</struct>\n")
	}
	b.WriteString(ind + "</value>\n")
}

// escape follows Renode: &, < and > as entities, other control characters
// as (XML 1.0-invalid) character references, NUL dropped.
func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == 0:
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r':
			fmt.Fprintf(&b, "&#x%X;", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func pass(ret any) ordered {
	if ret == nil {
		return ordered{{"status", "PASS"}}
	}
	return ordered{{"return", ret}, {"status", "PASS"}}
}

func fail(errText string) ordered {
	return ordered{{"status", "FAIL"}, {"error", errText},
		{"traceback", "KeywordException:   at Antmicro.Renode.RobotFramework.RenodeKeywords.ExecuteCommand (fake-renode)\n"}}
}

// robotServer serves `--robot-server-port`: one request at a time, any
// path, POST only.
type robotServer struct {
	e    *emulation
	ln   net.Listener
	mu   sync.Mutex
	stop chan struct{}
	once sync.Once
}

func (s *robotServer) serve() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.serveConn(conn)
	}
}

func (s *robotServer) serveConn(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		s.mu.Lock()
		resp, last := s.handle(req, body)
		s.mu.Unlock()
		date := time.Now().UTC().Format(http.TimeFormat)
		fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nServer: Mono-HTTPAPI/1.0\r\nDate: %s\r\nContent-Length: %d\r\nKeep-Alive: timeout=15,max=100\r\n\r\n", date, len(resp))
		_, _ = conn.Write(resp)
		if last {
			// Renode's unsolicited second response, then it exits.
			fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nServer: Mono-HTTPAPI/1.0\r\nDate: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", date)
			s.once.Do(func() { close(s.stop) })
			return
		}
	}
}

func (s *robotServer) handle(req *http.Request, body []byte) (resp []byte, last bool) {
	if req.Method != http.MethodPost {
		// Renode 1.16.1 answers a GET with HTML and then dies (README.md).
		s.e.log.line("ERROR", "FATAL UNHANDLED EXCEPTION: System.InvalidOperationException: Cannot be changed after headers are sent.")
		return []byte("<html><body>Renode</body></html>"), true
	}
	var call methodCall
	if err := xml.Unmarshal(body, &call); err != nil {
		return renderResponse(nil, &fault{0, "Request from client does not contain valid XML."}), false
	}
	switch call.Name {
	case "get_keyword_names":
		return renderResponse(keywords(), nil), false
	case "stop_remote_server":
		s.e.log.info("Robot Framework remote servers listener thread stopped")
		return renderResponse("", nil), true
	case "run_keyword":
	default:
		return renderResponse(nil, &fault{0, "unsupported method called: " + call.Name}), false
	}
	if len(call.Params) > 2 {
		return renderResponse(nil, &fault{0, "Request contains too many param elements based on method signature."}), false
	}
	if len(call.Params) != 2 {
		return renderResponse(nil, &fault{0, "Request contains too few param elements based on method signature."}), false
	}
	name, _ := call.Params[0].native().(string)
	list, _ := call.Params[1].native().([]any)
	var args []string
	for _, a := range list {
		s, _ := a.(string)
		args = append(args, s)
	}
	return s.keyword(name, args)
}

func (s *robotServer) keyword(name string, args []string) ([]byte, bool) {
	known := false
	for _, k := range keywords() {
		known = known || k == name
	}
	if !known {
		return renderResponse(nil, &fault{1, fmt.Sprintf("Keyword %q not found", name)}), false
	}
	switch name {
	case "ExecuteCommand":
		if len(args) < 1 || len(args) > 2 {
			return renderResponse(nil, &fault{2, fmt.Sprintf("Arguments types do not match any available keyword %q : [%s]", name, strings.Join(args, ", "))}), false
		}
		cmd := args[0]
		r := s.e.execute(cmd)
		switch r.kind {
		case silent:
			return renderResponse(pass(""), nil), false
		case message:
			return renderResponse(pass(r.text+"\r\n\r"), nil), false
		case value:
			return renderResponse(pass(r.text+"\r\r\n"), nil), false
		case errParse:
			return renderResponse(fail(fmt.Sprintf("KeywordException: Could not execute command '%s': %s\n", cmd, r.text)), nil), false
		case errStream:
			return renderResponse(fail(fmt.Sprintf("KeywordException: There was an error when executing command '%s': %s\n", cmd, r.text)), nil), false
		default:
			return renderResponse(fail(fmt.Sprintf("KeywordException: Could not execute command '%s': There was an error executing command '%s'%s\n", cmd, cmd, r.text)), nil), false
		}
	case "StartEmulation":
		if err := s.e.setRunning(true); err != nil {
			return renderResponse(fail(fmt.Sprintf("KeywordException: %v\n", err)), nil), false
		}
		return renderResponse(pass(nil), nil), false
	case "StopRemoteServer":
		s.e.log.info("Robot Framework remote servers listener thread stopped")
		return renderResponse(pass(nil), nil), true
	}
	return renderResponse(fail(fmt.Sprintf("NotImplementedException: fake renode does not implement %s\n", name)), nil), false
}
