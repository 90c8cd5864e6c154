// Package console turns a firmware's console UART into timestamped lines and
// offers expect-style helpers on top. It owns no stream: the target does.
//
// Every raw byte read is copied to an optional log sink; lines are split on
// CR LF, LF or a lone CR, the `\r\x1b[K` redraw that log output uses while the
// CLI waits for input is undone, a leading prompt is stripped, and other ANSI
// CSI sequences are removed. A prompt (which never ends in a newline) is
// recorded as its own event, so ExpectPrompt works on partial lines.
package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// ErrClosed is returned by waits that end because the stream ended; it is
// deliberately distinct from a timeout.
var ErrClosed = errors.New("console: closed")

// Line is one complete console line.
type Line struct {
	Seq  uint64        `json:"seq"`  // position in this console's event order
	Mono time.Duration `json:"mono"` // monotonic offset since Config.Epoch
	Time time.Time     `json:"time"` // wall clock, for humans
	Text string        `json:"text"` // without prompt, terminator and escape sequences
	Log  bool          `json:"log"`  // matched Config.LogPattern
}

// Config tunes a Console; the zero value suits the reference firmware.
type Config struct {
	// Prompt is what the CLI prints while it waits for input (default "> ").
	// Set NoPrompt for consoles without one.
	Prompt   string
	NoPrompt bool
	// LineEnding terminates lines sent with Send (default "\r\n").
	LineEnding string
	// LogPattern marks log lines (default `^\[\d+\] `); Command leaves them
	// out of a command's output.
	LogPattern *regexp.Regexp
	// ErrorPattern marks a command's failure reply (default `^Error: `); nil
	// with NoErrorPattern disables it.
	ErrorPattern   *regexp.Regexp
	NoErrorPattern bool
	// History bounds the lines kept in memory (default 4096).
	History int
	// RawLog receives every byte read, unmodified (a per-run log file).
	RawLog io.Writer
	// Epoch is time zero of Line.Mono (default: when New ran); share it with
	// the other recorders of a session so their clocks line up.
	Epoch time.Time
}

// Matcher selects lines. *regexp.Regexp is one; Literal makes another.
type Matcher interface {
	MatchString(s string) bool
	String() string
}

// Literal matches lines that contain s.
func Literal(s string) Matcher { return literal(s) }

type literal string

func (l literal) MatchString(s string) bool { return strings.Contains(s, string(l)) }
func (l literal) String() string            { return string(l) }

// Console is a line stream over a console UART.
type Console struct {
	cfg Config
	w   io.Writer

	wmu sync.Mutex // serialises Send

	mu       sync.Mutex
	seq      uint64
	lines    []Line   // bounded history, oldest first
	prompts  []uint64 // seqs of prompt events, bounded like lines
	partial  []byte   // current unterminated line (after escape handling)
	crPend   bool     // a CR was seen; the next byte decides what it meant
	esc      []byte   // an escape sequence in progress
	resync   bool     // the target restarted: the next line may carry old bytes
	dropped  []string // unfinished lines dropped by Restart, for evidence
	cursor   uint64   // expect cursor: events up to here are consumed
	notify   chan struct{}
	closed   bool
	closeErr error
	subs     map[*subscription]struct{}
	done     chan struct{}
}

// New starts reading r in the background. w receives what Send writes; it
// may be nil for a read-only console.
func New(r io.Reader, w io.Writer, cfg Config) *Console {
	if cfg.Prompt == "" && !cfg.NoPrompt {
		cfg.Prompt = "> "
	}
	if cfg.NoPrompt {
		cfg.Prompt = ""
	}
	if cfg.LineEnding == "" {
		cfg.LineEnding = "\r\n"
	}
	if cfg.LogPattern == nil {
		cfg.LogPattern = regexp.MustCompile(`^\[\d+\] `)
	}
	if cfg.ErrorPattern == nil && !cfg.NoErrorPattern {
		cfg.ErrorPattern = regexp.MustCompile(`^Error: `)
	}
	if cfg.NoErrorPattern {
		cfg.ErrorPattern = nil
	}
	if cfg.History <= 0 {
		cfg.History = 4096
	}
	if cfg.Epoch.IsZero() {
		cfg.Epoch = time.Now()
	}
	c := &Console{
		cfg:    cfg,
		w:      w,
		notify: make(chan struct{}),
		subs:   map[*subscription]struct{}{},
		done:   make(chan struct{}),
	}
	go c.readLoop(r)
	return c
}

// Done is closed when the stream has ended.
func (c *Console) Done() <-chan struct{} { return c.done }

// Err is why the stream ended (io.EOF for a clean end), nil while it runs.
func (c *Console) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

func (c *Console) readLoop(r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if c.cfg.RawLog != nil {
				_, _ = c.cfg.RawLog.Write(buf[:n])
			}
			c.feed(buf[:n])
		}
		if err != nil {
			c.finish(err)
			return
		}
	}
}

// feed runs the byte-level state machine for one chunk.
func (c *Console) feed(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	for _, ch := range b {
		if c.esc != nil {
			c.esc = append(c.esc, ch)
			if c.escapeDone() {
				changed = c.applyEscape() || changed
			}
			continue
		}
		if c.crPend {
			c.crPend = false
			switch ch {
			case '\n':
				changed = c.endLine() || changed
				continue
			case 0x1b:
				// `\r\x1b[K`: a redraw; the escape decides.
				c.esc = []byte{ch}
				continue
			default:
				changed = c.endLine() || changed
			}
		}
		switch ch {
		case '\r':
			c.crPend = true
		case '\n':
			changed = c.endLine() || changed
		case 0x1b:
			c.esc = []byte{ch}
		case '\b':
			// The CLI erases with "\b \b": undo the last byte.
			if len(c.partial) > 0 {
				c.partial = c.partial[:len(c.partial)-1]
			}
		default:
			c.partial = append(c.partial, ch)
			if c.cfg.Prompt != "" && string(c.partial) == c.cfg.Prompt {
				c.addPrompt()
				changed = true
			}
		}
	}
	if changed {
		c.wake()
	}
}

// escapeDone reports whether the escape sequence in c.esc is complete: ESC
// plus one byte, or a CSI (ESC [) up to its final byte 0x40..0x7e.
func (c *Console) escapeDone() bool {
	if len(c.esc) < 2 {
		return false
	}
	if c.esc[1] != '[' {
		return true
	}
	last := c.esc[len(c.esc)-1]
	return len(c.esc) > 2 && last >= 0x40 && last <= 0x7e || len(c.esc) > 32
}

// applyEscape handles a complete escape sequence: erase-line drops the
// partial line (the firmware redraws it after its log line); others vanish.
func (c *Console) applyEscape() bool {
	seq := c.esc
	c.esc = nil
	if len(seq) >= 3 && seq[1] == '[' && seq[len(seq)-1] == 'K' {
		c.partial = c.partial[:0]
	}
	return false
}

// Restart tells the console that the target restarted (a reset, a
// reboot): the line the old firmware left unfinished is dropped, and if
// more of it was still on its way, the first line of the new boot is cut
// where a log line starts (LogPattern), so the boot banner is a line of its
// own and a ^-anchored marker matches it.
func (c *Console) Restart() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.partial) > 0 && (c.cfg.Prompt == "" || string(c.partial) != c.cfg.Prompt) {
		c.dropped = append(c.dropped, string(c.partial))
	}
	c.partial, c.crPend, c.esc = c.partial[:0], false, nil
	c.resync = true
}

// Dropped lists the unfinished lines Restart dropped, oldest first.
func (c *Console) Dropped() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.dropped...)
}

// resyncText cuts the old firmware's leftover bytes off the first line
// after a restart: the text from the first log-line start after position 0.
func (c *Console) resyncText(text string) string {
	for i := 1; i < len(text); i++ {
		if loc := c.cfg.LogPattern.FindStringIndex(text[i:]); loc != nil && loc[0] == 0 {
			c.dropped = append(c.dropped, text[:i])
			return text[i:]
		}
	}
	return text
}

// endLine completes the partial line. Called with c.mu held.
func (c *Console) endLine() bool {
	text := string(c.partial)
	c.partial = c.partial[:0]
	if c.resync && strings.TrimSpace(text) != "" {
		c.resync = false
		text = c.resyncText(text)
	}
	if p := c.cfg.Prompt; p != "" {
		for strings.HasPrefix(text, p) {
			text = text[len(p):]
		}
		// A prompt whose trailing space was trimmed (`>` alone).
		if tp := strings.TrimRight(p, " "); tp != "" && text == tp {
			text = ""
		}
	}
	if strings.TrimSpace(text) == "" {
		return false
	}
	now := time.Now()
	c.seq++
	l := Line{Seq: c.seq, Mono: now.Sub(c.cfg.Epoch), Time: now, Text: text,
		Log: c.cfg.LogPattern.MatchString(text)}
	c.lines = append(c.lines, l)
	if len(c.lines) > c.cfg.History+c.cfg.History/4 {
		// Trim in batches so a full history does not copy on every line.
		c.lines = append(c.lines[:0:0], c.lines[len(c.lines)-c.cfg.History:]...)
	}
	for s := range c.subs {
		if s.re.MatchString(text) {
			s.push(l)
		}
	}
	return true
}

func (c *Console) addPrompt() {
	c.seq++
	c.prompts = append(c.prompts, c.seq)
	if len(c.prompts) > c.cfg.History+c.cfg.History/4 {
		c.prompts = append(c.prompts[:0:0], c.prompts[len(c.prompts)-c.cfg.History:]...)
	}
}

func (c *Console) wake() {
	close(c.notify)
	c.notify = make(chan struct{})
}

func (c *Console) finish(err error) {
	c.mu.Lock()
	c.crPend = false
	c.endLine()
	c.closed = true
	if errors.Is(err, io.ErrClosedPipe) {
		err = io.EOF
	}
	c.closeErr = err
	for s := range c.subs {
		s.close()
	}
	c.subs = map[*subscription]struct{}{}
	c.wake()
	c.mu.Unlock()
	close(c.done)
}

// Lines returns a copy of the retained history.
func (c *Console) Lines() []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Line(nil), c.lines...)
}

// Tail renders the last n lines plus the unterminated partial line, for
// error messages.
func (c *Console) Tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tailLocked(n)
}

func (c *Console) tailLocked(n int) string {
	start := len(c.lines) - n
	if start < 0 {
		start = 0
	}
	var b strings.Builder
	for _, l := range c.lines[start:] {
		fmt.Fprintf(&b, "  | %s\n", l.Text)
	}
	if len(c.partial) > 0 {
		fmt.Fprintf(&b, "  | %s (no newline yet)\n", c.partial)
	}
	if b.Len() == 0 {
		return "  (no output)\n"
	}
	return b.String()
}

// AtPrompt reports whether the last thing the console printed is the prompt
// (nothing after it yet): the CLI is waiting for input.
func (c *Console) AtPrompt() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.Prompt != "" && string(c.partial) == c.cfg.Prompt && !c.crPend && c.esc == nil
}

// Mark returns the current position; Expect and ExpectPrompt only consider
// what arrives after the cursor, so Skip(Mark()) ignores everything so far.
func (c *Console) Mark() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seq
}

// Skip moves the expect cursor to pos (see Mark).
func (c *Console) Skip(pos uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pos > c.cursor {
		c.cursor = pos
	}
}

// Send writes line plus the line ending in one write.
func (c *Console) Send(line string) error {
	if c.w == nil {
		return errors.New("console: read-only console")
	}
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("console: line %q contains a line break", line)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := io.WriteString(c.w, line+c.cfg.LineEnding); err != nil {
		return fmt.Errorf("console: send %q: %w", line, err)
	}
	return nil
}

// Write sends raw bytes (e.g. Ctrl-C) without a line ending.
func (c *Console) Write(p []byte) (int, error) {
	if c.w == nil {
		return 0, errors.New("console: read-only console")
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.Write(p)
}

// waitFor polls find under the lock until it succeeds, the stream ends or
// ctx is done. find reports the result and whether it is final.
func (c *Console) waitFor(ctx context.Context, what string, find func() bool) error {
	for {
		c.mu.Lock()
		if find() {
			c.mu.Unlock()
			return nil
		}
		if c.closed {
			err := c.closeErr
			tail := c.tailLocked(10)
			c.mu.Unlock()
			return fmt.Errorf("%w (%w) while waiting for %s; last lines:\n%s", ErrClosed, err, what, tail)
		}
		ch := c.notify
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("console: waiting for %s: %w; last lines:\n%s", what, ctx.Err(), c.Tail(10))
		}
	}
}

// Expect waits for the next line after the cursor that m matches and moves
// the cursor past it. Lines that fell out of the history are not searched.
func (c *Console) Expect(ctx context.Context, m Matcher) (Line, error) {
	var got Line
	err := c.waitFor(ctx, fmt.Sprintf("line matching %q", m.String()), func() bool {
		for _, l := range c.lines {
			if l.Seq > c.cursor && m.MatchString(l.Text) {
				got = l
				c.cursor = l.Seq
				return true
			}
		}
		return false
	})
	return got, err
}

// ExpectPrompt waits for a prompt after the cursor and moves the cursor to
// it. A prompt arrives without a newline, so it is detected on the partial
// line.
func (c *Console) ExpectPrompt(ctx context.Context) error {
	if c.cfg.Prompt == "" {
		return errors.New("console: no prompt configured")
	}
	return c.waitFor(ctx, fmt.Sprintf("prompt %q", c.cfg.Prompt), func() bool {
		for _, p := range c.prompts {
			if p > c.cursor {
				c.cursor = p
				return true
			}
		}
		return false
	})
}

// CommandError is a command whose reply matched the error pattern.
type CommandError struct {
	Command string
	Reply   string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("console: command %q failed: %s", e.Command, e.Reply)
}

// Command sends line, waits for a reply line matching ok and then (when the
// console has a prompt) for the prompt after it, and returns the non-log
// output lines between the echo and the prompt; the ok line is always the
// last one. Log lines may match ok but are not returned otherwise. A line
// matching the error pattern ends the wait with a *CommandError.
func (c *Console) Command(ctx context.Context, line string, ok Matcher) ([]string, error) {
	start := c.Mark()
	if err := c.Send(line); err != nil {
		return nil, err
	}
	var out []string
	var okSeq uint64
	var failed *CommandError
	echoSkipped := false
	scanned := start
	err := c.waitFor(ctx, fmt.Sprintf("reply to %q matching %q", line, ok.String()), func() bool {
		for _, l := range c.lines {
			if l.Seq <= scanned {
				continue
			}
			scanned = l.Seq
			if !l.Log && !echoSkipped && strings.TrimSpace(l.Text) == strings.TrimSpace(line) {
				echoSkipped = true
				continue
			}
			if ok.MatchString(l.Text) {
				out = append(out, l.Text)
				okSeq = l.Seq
				return true
			}
			if l.Log {
				continue
			}
			if c.cfg.ErrorPattern != nil && c.cfg.ErrorPattern.MatchString(l.Text) {
				failed = &CommandError{Command: line, Reply: l.Text}
				return true
			}
			out = append(out, l.Text)
		}
		return false
	})
	if err != nil {
		return out, err
	}
	c.Skip(scanned)
	if failed != nil {
		return out, failed
	}
	if c.cfg.Prompt == "" {
		return out, nil
	}
	err = c.waitFor(ctx, fmt.Sprintf("prompt after reply to %q", line), func() bool {
		for _, p := range c.prompts {
			if p > okSeq {
				if p > c.cursor {
					c.cursor = p
				}
				return true
			}
		}
		return false
	})
	return out, err
}

// Subscription delivers the lines that match a pattern, in order, without
// ever blocking the reader; C is closed when the stream ends or on Cancel.
type Subscription struct {
	C   <-chan Line
	sub *subscription
	c   *Console
}

type subscription struct {
	re     Matcher
	mu     sync.Mutex
	queue  []Line
	kick   chan struct{}
	out    chan Line
	ended  bool
	stop   chan struct{}
	closed sync.Once
}

func (s *subscription) push(l Line) {
	s.mu.Lock()
	s.queue = append(s.queue, l)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *subscription) close() {
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *subscription) run() {
	defer close(s.out)
	for {
		s.mu.Lock()
		q := s.queue
		s.queue = nil
		ended := s.ended
		s.mu.Unlock()
		for _, l := range q {
			select {
			case s.out <- l:
			case <-s.stop:
				return
			}
		}
		if ended && len(q) == 0 {
			return
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-s.kick:
		case <-s.stop:
			return
		}
	}
}

// Subscribe delivers every future line matching m (log lines included).
func (c *Console) Subscribe(m Matcher) *Subscription {
	s := &subscription{re: m, kick: make(chan struct{}, 1), out: make(chan Line), stop: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		s.ended = true
	} else {
		c.subs[s] = struct{}{}
	}
	c.mu.Unlock()
	go s.run()
	return &Subscription{C: s.out, sub: s, c: c}
}

// Cancel stops the subscription; C is closed soon after.
func (s *Subscription) Cancel() {
	s.c.mu.Lock()
	delete(s.c.subs, s.sub)
	s.c.mu.Unlock()
	s.sub.closed.Do(func() { close(s.sub.stop) })
}
