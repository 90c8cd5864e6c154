// Package robot is a client for Renode's Robot Framework remote-library
// server (`renode --robot-server-port P`): XML-RPC over HTTP with the methods
// get_keyword_names, run_keyword(name, [args]) and stop_remote_server. The
// Renode driver sends every monitor line through the ExecuteCommand keyword,
// which reports failures as structured FAIL results instead of text to
// scrape. Behaviour notes come from recordings of Renode 1.16.1
// (harness/target/renode/testdata/xmlrpc).
package robot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Status values of a run_keyword result.
const (
	StatusPass = "PASS"
	StatusFail = "FAIL"
)

// Result is what run_keyword returns.
type Result struct {
	Status    string // PASS or FAIL
	Return    any    // absent (nil) for void keywords
	Error     string // FAIL only
	Traceback string // FAIL only: a mono stack trace
}

// Fault is an XML-RPC fault. Renode uses code 0 for unsupported methods and
// malformed requests, 1 for an unknown keyword and 2 for arguments that
// match no overload.
type Fault struct {
	Code    int
	Message string
}

func (f *Fault) Error() string { return fmt.Sprintf("robot: fault %d: %s", f.Code, f.Message) }

// KeywordError is a keyword that ran and reported FAIL.
type KeywordError struct {
	Keyword   string
	Args      []string
	Message   string // Renode's error text, e.g. "No such command or device: foo"
	Raw       string // the full error field
	Traceback string
}

func (e *KeywordError) Error() string {
	return fmt.Sprintf("robot: %s %q failed: %s", e.Keyword, e.Args, e.Message)
}

// Client calls one Renode robot server. Renode serves requests one at a
// time, so the client does too: a call waits (bounded by its context) for
// the one before it.
type Client struct {
	url  string
	http *http.Client
	sem  chan struct{}
}

// New returns a client for addr ("127.0.0.1:9999" or a full http URL). Any
// path works with Renode; "/" is used.
func New(addr string) *Client {
	url := addr
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		url = "http://" + addr + "/"
	}
	tr := &http.Transport{
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     10 * time.Second, // Renode keeps idle connections for 15 s
		DisableCompression:  true,
	}
	return &Client{url: url, http: &http.Client{Transport: tr}, sem: make(chan struct{}, 1)}
}

// Close drops idle keep-alive connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Call invokes an XML-RPC method. Params may be string, bool, int, float64,
// []string, []any or map[string]any. A fault comes back as *Fault.
func (c *Client) Call(ctx context.Context, method string, params ...any) (any, error) {
	return c.call(ctx, method, false, params)
}

func (c *Client) call(ctx context.Context, method string, last bool, params []any) (any, error) {
	body, err := encodeCall(method, params)
	if err != nil {
		return nil, err
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("robot: %s: waiting for the previous call: %w", method, ctx.Err())
	}
	defer func() { <-c.sem }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("robot: %w", err)
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "ddhil-renode/1")
	// After stopping, Renode sends an extra unsolicited response on the same
	// connection and exits; never put that connection back in the pool.
	req.Close = last
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("robot: %s: %w", method, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("robot: %s: read response: %w", method, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("robot: %s: HTTP %s", method, resp.Status)
	}
	v, err := decodeResponse(data)
	if err != nil {
		var f *Fault
		if errors.As(err, &f) {
			return nil, f
		}
		return nil, fmt.Errorf("robot: %s: %w", method, err)
	}
	return v, nil
}

// KeywordNames lists the keywords the server offers.
func (c *Client) KeywordNames(ctx context.Context) ([]string, error) {
	v, err := c.Call(ctx, "get_keyword_names")
	if err != nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("robot: get_keyword_names returned %T, not an array", v)
	}
	names := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("robot: get_keyword_names: element %T, not a string", e)
		}
		names = append(names, s)
	}
	return names, nil
}

// RunKeyword runs a keyword with string arguments; named arguments are
// passed as "name=value" after the positional ones. A FAIL is returned as a
// Result (not an error); faults and transport problems are errors.
func (c *Client) RunKeyword(ctx context.Context, name string, args ...string) (Result, error) {
	return c.runKeyword(ctx, name, name == "StopRemoteServer", args)
}

func (c *Client) runKeyword(ctx context.Context, name string, last bool, args []string) (Result, error) {
	if args == nil {
		args = []string{}
	}
	v, err := c.call(ctx, "run_keyword", last, []any{name, args})
	if err != nil {
		return Result{}, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Result{}, fmt.Errorf("robot: run_keyword %s returned %T, not a struct", name, v)
	}
	var r Result
	r.Status, _ = m["status"].(string)
	r.Return = m["return"]
	r.Error, _ = m["error"].(string)
	r.Traceback, _ = m["traceback"].(string)
	if r.Status != StatusPass && r.Status != StatusFail {
		return r, fmt.Errorf("robot: run_keyword %s: status %q", name, r.Status)
	}
	return r, nil
}

// Run runs a keyword and turns FAIL into a *KeywordError.
func (c *Client) Run(ctx context.Context, name string, args ...string) (any, error) {
	r, err := c.RunKeyword(ctx, name, args...)
	if err != nil {
		return nil, err
	}
	if r.Status == StatusFail {
		command := ""
		if name == "ExecuteCommand" && len(args) > 0 {
			command = args[0]
		}
		return nil, &KeywordError{Keyword: name, Args: args, Message: errorText(r.Error, command), Raw: r.Error, Traceback: r.Traceback}
	}
	return r.Return, nil
}

// ExecuteCommand runs one monitor line. It returns the monitor's output
// (ANSI stripped by Renode, see monitorText for line ends); a FAIL becomes a
// *KeywordError whose Message is Renode's error text.
func (c *Client) ExecuteCommand(ctx context.Context, command string) (string, error) {
	v, err := c.Run(ctx, "ExecuteCommand", command)
	if err != nil {
		return "", err
	}
	s, _ := v.(string)
	return monitorText(s), nil
}

// StopRemoteServer asks Renode to quit (the stop_remote_server method).
// Renode answers, sends an unsolicited "Connection: close" response on the
// same connection and exits; the connection is not reused.
func (c *Client) StopRemoteServer(ctx context.Context) error {
	_, err := c.call(ctx, "stop_remote_server", true, nil)
	c.Close()
	return err
}

// errorText strips the exception type and the "could not execute" wrappers
// from a FAIL's error field, leaving Renode's own message. command is the
// monitor line for ExecuteCommand, else "".
func errorText(raw, command string) string {
	s := strings.TrimRight(raw, "\n")
	if i := strings.Index(s, ": "); i > 0 && !strings.Contains(s[:i], " ") {
		s = s[i+2:] // "KeywordException: ", "InvalidOperationException: "
	}
	if command == "" {
		return s
	}
	for _, p := range []string{
		"Could not execute command '" + command + "': ",
		"There was an error when executing command '" + command + "': ",
		// the monitor's own line, glued to the message without a separator
		"There was an error executing command '" + command + "'",
	} {
		s = strings.TrimPrefix(s, p)
	}
	return s
}

// monitorText undoes what XML line-end normalisation does to the monitor's
// "\r\n\r" line ends (they arrive as "\n\n") and drops the trailing blank
// lines: 'Renode, version 1.16.1 (...)\n\n' becomes "Renode, version 1.16.1 (...)".
func monitorText(s string) string {
	return strings.TrimRight(strings.ReplaceAll(s, "\n\n", "\n"), "\n")
}
