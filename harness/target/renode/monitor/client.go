// Package monitor is a client for Renode's telnet monitor (`renode --port
// P`), the fallback when the XML-RPC robot server is not available. The
// monitor is a line editor meant for people: it negotiates telnet options,
// echoes every byte, colours output unless --plain, writes in tiny TCP
// segments and signals completion only by printing the next prompt. This
// client hides that: Execute sends one line (LF only) and returns the
// command's output, or a *CommandError carrying Renode's error text.
// Behaviour notes come from transcripts of Renode 1.16.1
// (harness/target/renode/testdata/monitor-telnet*.txt).
package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"
)

// CommandError is a monitor command that Renode reported as failed.
type CommandError struct {
	Command string
	Message string // Renode's error text, e.g. "No such command or device: foo"
	Output  string // everything the command printed (cleaned)
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("monitor: %q failed: %s", e.Command, e.Message)
}

// Client is one connection to the monitor. Renode serves one client at a
// time; a second connection is accepted but ignored until the first leaves.
type Client struct {
	conn  net.Conn
	nudge time.Duration

	mu     sync.Mutex // one command at a time
	tel    telnetDecoder
	raw    []byte // decoded bytes not yet consumed
	prompt string
	banner string

	dlMu  sync.Mutex // guards deadline changes made by context callbacks
	dlGen uint64
}

// Option tunes a Client.
type Option func(*Client)

// WithNudge sets how long the handshake waits for a prompt before sending
// an empty line to ask for one (default 1 s). A reconnecting client gets
// only the telnet negotiation, no banner and no prompt, until it sends a
// line.
func WithNudge(d time.Duration) Option { return func(c *Client) { c.nudge = d } }

// Dial connects to the monitor at addr and waits for its prompt.
func Dial(ctx context.Context, addr string, opts ...Option) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	c, err := New(ctx, conn, opts...)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// New runs the handshake on an open connection: it swallows the telnet
// negotiation, keeps the banner and waits for the first prompt. Waiting for
// the prompt (not the banner) matters: a connect-and-close probe can steal
// the start of the banner.
func New(ctx context.Context, conn net.Conn, opts ...Option) (*Client, error) {
	c := &Client{conn: conn, nudge: time.Second}
	for _, o := range opts {
		o(c)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	nctx, cancel := context.WithTimeout(ctx, c.nudge)
	text, err := c.readUntil(nctx, func(cl cleaned) bool { return promptAtEnd(cl.text) != "" })
	cancel()
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		// No prompt yet: ask for one. If the banner turns up after all, its
		// own prompt comes first, then the one for our empty line.
		if err := c.write(ctx, []byte("\n")); err != nil {
			return nil, err
		}
		text, err = c.readUntil(ctx, func(cl cleaned) bool {
			want := 1
			if strings.Contains(cl.text, "Renode, version") {
				want = 2
			}
			return promptAtEnd(cl.text) != "" && len(promptLineRE.FindAllString(cl.text, -1)) >= want
		})
	}
	if err != nil {
		return nil, fmt.Errorf("monitor: handshake: %w", err)
	}
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "Renode, version") {
			c.banner = l
		}
	}
	c.prompt = promptAtEnd(text)
	return c, nil
}

// Banner is the version line Renode greeted with ("" after a reconnect).
func (c *Client) Banner() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.banner
}

// Prompt is the current prompt name: "monitor" until a machine exists, then
// the machine's name.
func (c *Client) Prompt() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.prompt
}

// Close drops the connection; Renode keeps running.
func (c *Client) Close() error { return c.conn.Close() }

var (
	// promptRE finds the prompt at the end of the cleaned text, at a line start.
	promptRE     = regexp.MustCompile(`(?:^|\n)\(([^()\n]+)\) $`)
	promptLineRE = regexp.MustCompile(`(?m)^\([^()\n]+\) `)
)

func promptAtEnd(text string) string {
	m := promptRE.FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	return m[1]
}

// Execute runs one monitor command and returns its output without echo and
// prompt. The line is sent with LF only (CR LF would run an extra empty
// command and put a second prompt in the stream). Commands must not hold CR,
// TAB (completion), ESC or 0xFF; LF is allowed only inside a """ block.
func (c *Client) Execute(ctx context.Context, cmd string) (string, error) {
	if err := validate(cmd); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raw = nil // anything received between commands is unsolicited
	if err := c.write(ctx, []byte(cmd+"\n")); err != nil {
		return "", err
	}
	echo := strings.ReplaceAll(cmd, "\n", "\n> ") + "\n" // continuation lines echo with "> "
	var cl cleaned
	text, err := c.readUntil(ctx, func(x cleaned) bool {
		cl = x
		i := strings.IndexByte(x.text, '\n')
		return i >= 0 && promptAtEnd(x.text[i:]) != ""
	})
	if err != nil {
		return "", fmt.Errorf("monitor: %q: no prompt (got %q): %w", cmd, cl.text, err)
	}
	rest := text
	if strings.HasPrefix(rest, echo) {
		rest = rest[len(echo):]
	} else if i := strings.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[i+1:]
	}
	loc := promptRE.FindStringSubmatchIndex(rest)
	c.prompt = rest[loc[2]:loc[3]]
	out := strings.Trim(rest[:loc[0]], "\n")
	if msg := errorMessage(out, cl.errText); msg != "" {
		return out, &CommandError{Command: cmd, Message: msg, Output: out}
	}
	return out, nil
}

// Quit sends `quit` and waits until Renode has closed the connection.
func (c *Client) Quit(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.raw = nil
	if err := c.write(ctx, []byte("quit\n")); err != nil {
		return err
	}
	text, err := c.readUntil(ctx, func(cleaned) bool { return false })
	if !errors.Is(err, io.EOF) {
		return fmt.Errorf("monitor: quit: connection still open (got %q): %w", text, err)
	}
	c.conn.Close()
	if !strings.Contains(text, "Renode is quitting") {
		return fmt.Errorf("monitor: quit: closed without \"Renode is quitting\" (got %q)", text)
	}
	return nil
}

func validate(cmd string) error {
	if strings.ContainsAny(cmd, "\r\t\x1b") || strings.IndexByte(cmd, 0xff) >= 0 {
		return fmt.Errorf("monitor: command %q holds CR, TAB, ESC or 0xFF", cmd)
	}
	parts := strings.Split(cmd, `"""`)
	if len(parts)%2 == 0 {
		return fmt.Errorf("monitor: command %q: unterminated \"\"\" block", cmd)
	}
	for i := 0; i < len(parts); i += 2 { // even parts are outside blocks
		if strings.Contains(parts[i], "\n") {
			return fmt.Errorf("monitor: command %q: a line break outside a \"\"\" block would run a second command", cmd)
		}
	}
	return nil
}

// Renode's own error texts (Monitor.cs and the recordings); the first match
// gives the message.
var errorMarkers = []string{
	"No such command or device: ",
	"Bad parameters for command ",
	"Could not tokenize here:",
	"Errors during compilation or loading:",
	"Failed to download ", // the stock board's ApplySVD offline; XML-RPC FAILs it too
	"File does not exist: ",
	"Could not find file '",
}

// errorMessage finds the error in a command's cleaned output. After "There
// was an error executing command '...'" the message is the rest of the
// output; other markers stand on one line. Text Renode coloured as an error
// is the fallback.
func errorMessage(out, errText string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "There was an error executing command '") {
			if msg := strings.TrimSpace(strings.Join(lines[i+1:], "\n")); msg != "" {
				return msg
			}
			return l
		}
	}
	for _, l := range lines {
		for _, m := range errorMarkers {
			if strings.HasPrefix(l, m) {
				return l
			}
		}
	}
	return strings.TrimSpace(errText)
}

func (c *Client) write(ctx context.Context, b []byte) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.conn.SetWriteDeadline(dl)
	} else {
		_ = c.conn.SetWriteDeadline(time.Time{})
	}
	if _, err := c.conn.Write(b); err != nil {
		return fmt.Errorf("monitor: write: %w", err)
	}
	return nil
}

// readUntil reads until done accepts the cleaned pending text (which is then
// consumed and returned), the context ends or the connection closes. On
// error the pending bytes stay buffered and the cleaned text is returned.
func (c *Client) readUntil(ctx context.Context, done func(cleaned) bool) (string, error) {
	buf := make([]byte, 4096)
	for {
		cl := clean(c.raw)
		if !cl.incomplete && done(cl) {
			c.raw = nil
			return cl.text, nil
		}
		n, err := c.read(ctx, buf)
		c.raw = c.tel.decode(c.raw, buf[:n])
		if err != nil {
			return clean(c.raw).text, ctxErr(ctx, err)
		}
	}
}

// read is one conn.Read bounded by ctx: its deadline, or an immediate one
// set when ctx is cancelled.
func (c *Client) read(ctx context.Context, buf []byte) (int, error) {
	c.dlMu.Lock()
	c.dlGen++
	gen := c.dlGen
	dl, _ := ctx.Deadline()
	_ = c.conn.SetReadDeadline(dl)
	c.dlMu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		c.dlMu.Lock()
		defer c.dlMu.Unlock()
		if c.dlGen == gen {
			_ = c.conn.SetReadDeadline(time.Unix(1, 0))
		}
	})
	n, err := c.conn.Read(buf)
	stop()
	c.dlMu.Lock()
	c.dlGen++ // a late callback must not touch the next read
	c.dlMu.Unlock()
	return n, err
}

// ctxErr reports a read that hit the context's deadline as the context's
// error: the connection deadline can fire a moment before ctx.Err is set.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ne net.Error
	if dl, ok := ctx.Deadline(); ok && errors.As(err, &ne) && ne.Timeout() && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}
