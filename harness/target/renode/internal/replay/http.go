package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Exchange is one recorded XML-RPC call: the raw HTTP request the recorder
// sent and the raw bytes Renode answered on that connection (including any
// unsolicited bytes that followed the response).
type Exchange struct {
	Name     string // file stem, e.g. "13-run_keyword-ExecuteCommand-unknown-command"
	Request  []byte // raw request
	Response []byte // raw response bytes as received
}

// LoadExchange reads <dir>/<name>.request.http and .response.http.
func LoadExchange(dir, name string) (Exchange, error) {
	req, err := os.ReadFile(filepath.Join(dir, name+".request.http"))
	if err != nil {
		return Exchange{}, fmt.Errorf("replay: %w", err)
	}
	resp, err := os.ReadFile(filepath.Join(dir, name+".response.http"))
	if err != nil {
		return Exchange{}, fmt.Errorf("replay: %w", err)
	}
	return Exchange{Name: name, Request: req, Response: resp}, nil
}

// RequestBody is the body of the recorded request.
func (e Exchange) RequestBody() ([]byte, error) {
	_, body, ok := bytes.Cut(e.Request, []byte("\r\n\r\n"))
	if !ok {
		return nil, fmt.Errorf("replay: %s: request has no header end", e.Name)
	}
	return body, nil
}

// ResponseBody is the body of the first recorded response (Content-Length
// bytes), without any extra bytes that followed it.
func (e Exchange) ResponseBody() ([]byte, error) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(e.Response)), nil)
	if err != nil {
		return nil, fmt.Errorf("replay: %s: %w", e.Name, err)
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// HTTPServer stands in for Renode's robot server (`--robot-server-port`):
// it accepts POSTs in the recorded order, checks each request body against
// the recording byte for byte (after placeholder substitution) and answers
// with the recorded response bytes exactly as Renode sent them, extra
// unsolicited bytes included. A request that does not match gets no answer:
// the connection is closed and the mismatch is reported by Err.
type HTTPServer struct {
	exchanges    []Exchange
	placeholders map[string]string
	ln           net.Listener

	mu      sync.Mutex
	next    int
	errs    []error
	wg      sync.WaitGroup
	conns   map[net.Conn]struct{}
	closing bool
}

// StartHTTP listens on 127.0.0.1:0 and serves exchanges in order.
func StartHTTP(exchanges []Exchange, placeholders map[string]string) (*HTTPServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	s := &HTTPServer{exchanges: exchanges, placeholders: placeholders, ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// URL is the base URL of the server.
func (s *HTTPServer) URL() string { return "http://" + s.ln.Addr().String() + "/" }

// Addr is host:port.
func (s *HTTPServer) Addr() string { return s.ln.Addr().String() }

// Served is how many exchanges were answered.
func (s *HTTPServer) Served() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// Err reports mismatches and exchanges that were never requested.
func (s *HTTPServer) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := append([]error(nil), s.errs...)
	if s.next < len(s.exchanges) {
		errs = append(errs, fmt.Errorf("replay: %d of %d exchanges not requested (next %s)", len(s.exchanges)-s.next, len(s.exchanges), s.exchanges[s.next].Name))
	}
	return errors.Join(errs...)
}

// Close stops listening and drops open connections.
func (s *HTTPServer) Close() error {
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *HTTPServer) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
}

func (s *HTTPServer) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(conn)
	}
}

func (s *HTTPServer) serveConn(conn net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
		conn.Close()
	}()
	br := bufio.NewReader(conn)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return // client closed its keep-alive connection
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			s.fail(fmt.Errorf("replay: read request body: %w", err))
			return
		}
		ex, err := s.match(req, body)
		if err != nil {
			s.fail(err)
			return
		}
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(ex.Response); err != nil {
			s.fail(fmt.Errorf("replay: %s: write response: %w", ex.Name, err))
			return
		}
		if bytes.Contains(ex.Response, []byte("Connection: close")) {
			return // Renode closes after its unsolicited close response
		}
	}
}

// match takes the next exchange and compares the request with it.
func (s *HTTPServer) match(req *http.Request, body []byte) (Exchange, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next >= len(s.exchanges) {
		return Exchange{}, fmt.Errorf("replay: unexpected extra request %q", body)
	}
	ex := s.exchanges[s.next]
	s.next++
	if req.Method != http.MethodPost {
		return ex, fmt.Errorf("replay: %s: method %s, Renode's server must only get POST (a GET kills it)", ex.Name, req.Method)
	}
	if ct := req.Header.Get("Content-Type"); ct != "text/xml" {
		return ex, fmt.Errorf("replay: %s: Content-Type %q, want text/xml", ex.Name, ct)
	}
	want, err := ex.RequestBody()
	if err != nil {
		return ex, err
	}
	want = Substitute(want, s.placeholders)
	if !bytes.Equal(body, want) {
		return ex, fmt.Errorf("replay: %s: request body differs\n got: %q\nwant: %q", ex.Name, body, want)
	}
	return ex, nil
}
