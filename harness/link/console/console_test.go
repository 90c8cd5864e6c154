package console

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func texts(ls []Line) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.Text)
	}
	return out
}

// readAll feeds input through the console with the given reader wrapper and
// returns the lines once the stream has ended.
func readAll(t *testing.T, input string, wrap func(io.Reader) io.Reader, cfg Config) (*Console, []Line) {
	t.Helper()
	c := New(wrap(strings.NewReader(input)), nil, cfg)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("console did not finish reading")
	}
	return c, c.Lines()
}

func TestLineSplitting(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []string
		prompts int
	}{
		{"crlf", "one\r\ntwo\r\n", []string{"one", "two"}, 0},
		{"lf", "one\ntwo\n", []string{"one", "two"}, 0},
		{"lone cr", "one\rtwo\r", []string{"one", "two"}, 0},
		{"empty lines skipped", "\r\n\r\none\r\n\n\r\n", []string{"one"}, 0},
		{"prompt stripped from echo", "> conf get\r\nthing_name=\"x\"\r\n> ", []string{"conf get", `thing_name="x"`}, 2},
		{"log redraw while idle", "> \r\x1b[K[00001234] mqtt: connected\r\n> ",
			[]string{"[00001234] mqtt: connected"}, 2},
		{"log redraw over partial input", "> con\r\x1b[K[00000001] wifi: connected\r\n> conf get\r\nok\r\n",
			[]string{"[00000001] wifi: connected", "conf get", "ok"}, 2},
		{"colour codes removed", "\x1b[31mred\x1b[0m text\r\n", []string{"red text"}, 0},
		{"unterminated last line flushed at EOF", "tail without newline", []string{"tail without newline"}, 0},
		{"bare prompt line", "> \r\n", nil, 1},
		{"backspace erase", "> conf gx\b \bet\r\n", []string{"conf get"}, 1},
	}
	wraps := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one-byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for _, tc := range cases {
		for wname, wrap := range wraps {
			t.Run(tc.name+"/"+wname, func(t *testing.T) {
				c, lines := readAll(t, tc.in, wrap, Config{})
				assert.Equal(t, tc.want, nilIfEmpty(texts(lines)))
				c.mu.Lock()
				assert.Len(t, c.prompts, tc.prompts)
				c.mu.Unlock()
				assert.ErrorIs(t, c.Err(), io.EOF)
			})
		}
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestLogFlagAndTimestamps(t *testing.T) {
	_, lines := readAll(t, "[00000010] boot: ddagent 1.0 profile=qemu boot=1\r\nplain\r\n", iotest.OneByteReader, Config{})
	require.Len(t, lines, 2)
	assert.True(t, lines[0].Log)
	assert.False(t, lines[1].Log)
	assert.Less(t, lines[0].Seq, lines[1].Seq)
	assert.LessOrEqual(t, lines[0].Mono, lines[1].Mono)
	assert.False(t, lines[0].Time.IsZero())
}

func TestRawLogKeepsEveryByte(t *testing.T) {
	in := "> \r\x1b[K[00000001] x: y\r\n> \x1b[31mq\r\n\x00\xff"
	var raw bytes.Buffer
	readAll(t, in, iotest.OneByteReader, Config{RawLog: &raw})
	assert.Equal(t, in, raw.String())
}

func TestHistoryIsBounded(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 100; i++ {
		b.WriteString("line\r\n")
	}
	b.WriteString("last\r\n")
	_, lines := readAll(t, b.String(), func(r io.Reader) io.Reader { return r }, Config{History: 10})
	assert.LessOrEqual(t, len(lines), 13)
	assert.GreaterOrEqual(t, len(lines), 10)
	assert.Equal(t, "last", lines[len(lines)-1].Text)
}

func TestExpectPromptOnPartialLine(t *testing.T) {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	c := New(iotest.OneByteReader(pr), nil, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _, _ = pw.Write([]byte("[00000001] boot: ddagent\r\n> ")) }()
	require.NoError(t, c.ExpectPrompt(ctx))
	assert.True(t, c.AtPrompt())
	// The prompt was consumed: a second wait needs a new one.
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	err := c.ExpectPrompt(short)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	go func() { _, _ = pw.Write([]byte("\r\n> ")) }()
	require.NoError(t, c.ExpectPrompt(ctx))
	go func() { _, _ = pw.Write([]byte("x")) }()
	require.Eventually(t, func() bool { return !c.AtPrompt() }, time.Second, time.Millisecond)
}

func TestExpect(t *testing.T) {
	cases := []struct {
		name    string
		m       Matcher
		want    string
		wantErr error
	}{
		{"literal", Literal("mqtt: connected"), "[00000100] mqtt: connected", nil},
		{"regexp", regexp.MustCompile(`report: published id=(\d+)`), "[00000200] report: published id=7 format=json keys=long bytes=90", nil},
		{"timeout", Literal("never printed"), "", context.DeadlineExceeded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.Close() })
			c := New(pr, nil, Config{})
			go func() {
				_, _ = pw.Write([]byte("[00000100] mqtt: connected\r\n[00000200] report: published id=7 format=json keys=long bytes=90\r\n> "))
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			l, err := c.Expect(ctx, tc.m)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				assert.NotErrorIs(t, err, ErrClosed)
				assert.Contains(t, err.Error(), tc.m.String(), "error names the pattern")
				assert.Contains(t, err.Error(), "report: published id=7", "error shows the tail")
				assert.Contains(t, err.Error(), "(no newline yet)", "partial prompt shown")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, l.Text)
		})
	}
}

func TestExpectCursorDoesNotRematch(t *testing.T) {
	c, _ := readAll(t, "a 1\r\na 2\r\n", iotest.OneByteReader, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	re := regexp.MustCompile(`^a `)
	l1, err := c.Expect(ctx, re)
	require.NoError(t, err)
	l2, err := c.Expect(ctx, re)
	require.NoError(t, err)
	assert.Equal(t, []string{"a 1", "a 2"}, []string{l1.Text, l2.Text})
	_, err = c.Expect(ctx, re)
	require.ErrorIs(t, err, ErrClosed)
}

func TestClosedIsNotTimeout(t *testing.T) {
	pr, pw := io.Pipe()
	c := New(pr, nil, Config{})
	go func() {
		_, _ = pw.Write([]byte("last words\r\n"))
		pw.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Expect(ctx, Literal("never"))
	require.ErrorIs(t, err, ErrClosed)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "last words")
	require.ErrorIs(t, c.ExpectPrompt(ctx), ErrClosed)
}

// fakeCLI plays the reference firmware's console as docs/firmware-console.md
// describes it: echo, CR LF output, `> ` prompt, log lines that redraw the
// prompt while idle. It writes one byte at a time to fragment everything.
type fakeCLI struct {
	conn net.Conn
	mu   sync.Mutex
	keys map[string]string
	idle bool
	part string
}

func (f *fakeCLI) write(s string) {
	for i := 0; i < len(s); i++ {
		if _, err := f.conn.Write([]byte{s[i]}); err != nil {
			return
		}
	}
}

// log prints a log line the way the firmware does while waiting for input.
func (f *fakeCLI) log(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.idle {
		f.write("\r\x1b[K" + msg + "\r\n> " + f.part)
		return
	}
	f.write(msg + "\r\n")
}

func (f *fakeCLI) run() {
	f.mu.Lock()
	f.write("[00000001] boot: ddagent test profile=fake boot=1\r\n> ")
	f.idle = true
	f.mu.Unlock()
	r := bufio.NewReader(f.conn)
	for {
		b, err := r.ReadByte()
		if err != nil {
			return
		}
		f.mu.Lock()
		if b != '\r' && b != '\n' {
			f.part += string(b)
			f.write(string(b))
			f.mu.Unlock()
			continue
		}
		line := f.part
		f.part = ""
		if line == "" {
			f.mu.Unlock()
			continue
		}
		f.idle = false
		f.write("\r\n")
		fields := strings.Fields(line)
		switch {
		case len(fields) == 4 && fields[0] == "conf" && fields[1] == "set":
			if fields[2] == "bogus" {
				f.write("Error: key: bogus was not recognized.\r\n")
				break
			}
			f.keys[fields[2]] = fields[3]
			f.write(fields[2] + "=\"" + fields[3] + "\"\r\n")
		case len(fields) == 2 && fields[0] == "conf" && fields[1] == "get":
			f.write("[00000050] mqtt: connecting harness:8883\r\n")
			for _, k := range []string{"thing_name", "mqtt_endpoint"} {
				f.write(k + "=\"" + f.keys[k] + "\"\r\n")
			}
		default:
			f.write("Error: unknown command\r\n")
		}
		f.write("> ")
		f.idle = true
		f.mu.Unlock()
	}
}

func startFake(t *testing.T) (*Console, *fakeCLI) {
	t.Helper()
	host, dev := net.Pipe()
	t.Cleanup(func() { host.Close(); dev.Close() })
	f := &fakeCLI{conn: dev, keys: map[string]string{"thing_name": "t0", "mqtt_endpoint": "e0"}}
	go f.run()
	c := New(host, host, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Expect(ctx, Literal("boot: ddagent"))
	require.NoError(t, err)
	require.NoError(t, c.ExpectPrompt(ctx))
	return c, f
}

func TestCommand(t *testing.T) {
	cases := []struct {
		name    string
		line    string
		ok      Matcher
		want    []string
		wantErr string
	}{
		{"set", "conf set thing_name dev-1", regexp.MustCompile(`^thing_name="dev-1"$`), []string{`thing_name="dev-1"`}, ""},
		{"multi-line output without logs", "conf get", Literal("mqtt_endpoint="), []string{`thing_name="t0"`, `mqtt_endpoint="e0"`}, ""},
		{"error reply", "conf set bogus 1", Literal("bogus="), nil, `failed: Error: key: bogus was not recognized.`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := startFake(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			out, err := c.Command(ctx, tc.line, tc.ok)
			if tc.wantErr != "" {
				var ce *CommandError
				require.ErrorAs(t, err, &ce)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, out)
		})
	}
}

func TestCommandsBackToBackWithLogRedraws(t *testing.T) {
	c, f := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub := c.Subscribe(regexp.MustCompile(`report: published id=(\d+)`))
	defer sub.Cancel()
	for i := 0; i < 5; i++ {
		f.log("[00000100] report: published id=" + string(rune('1'+i)) + " format=json keys=long bytes=9")
		_, err := c.Command(ctx, "conf set thing_name n"+string(rune('a'+i)), Literal(`thing_name="n`+string(rune('a'+i))+`"`))
		require.NoError(t, err, "command %d", i)
	}
	var ids []string
	for i := 0; i < 5; i++ {
		select {
		case l := <-sub.C:
			ids = append(ids, regexp.MustCompile(`id=(\d+)`).FindStringSubmatch(l.Text)[1])
		case <-ctx.Done():
			t.Fatal("subscription starved")
		}
	}
	assert.Equal(t, []string{"1", "2", "3", "4", "5"}, ids)
}

func TestCommandTimeoutNamesCommand(t *testing.T) {
	c, _ := startFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Command(ctx, "conf get", Literal("never"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), `"conf get"`)
	assert.Contains(t, err.Error(), `mqtt_endpoint="e0"`)
}

func TestSendRejectsLineBreaks(t *testing.T) {
	c, _ := startFake(t)
	require.Error(t, c.Send("a\nb"))
	ro := New(strings.NewReader(""), nil, Config{})
	require.Error(t, ro.Send("x"))
}

func TestSubscriptionClosesAtEOF(t *testing.T) {
	pr, pw := io.Pipe()
	c := New(pr, nil, Config{})
	sub := c.Subscribe(Literal("match"))
	go func() {
		_, _ = pw.Write([]byte("match 1\r\nother\r\nmatch 2\r\n"))
		pw.Close()
	}()
	var got []string
	timeout := time.After(5 * time.Second)
	for done := false; !done; {
		select {
		case l, ok := <-sub.C:
			if !ok {
				done = true
				break
			}
			got = append(got, l.Text)
		case <-timeout:
			t.Fatal("subscription not closed")
		}
	}
	assert.Equal(t, []string{"match 1", "match 2"}, got)
	// Subscribing after the end yields a closed channel.
	_, ok := <-c.Subscribe(Literal("x")).C
	assert.False(t, ok)
}

func TestWriteErrorsAreWrapped(t *testing.T) {
	host, dev := net.Pipe()
	dev.Close()
	c := New(host, host, Config{})
	err := c.Send("x")
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "console: send"))
	assert.True(t, errors.Is(err, io.ErrClosedPipe))
}

// The reset race seen on Renode (container mode): the reset hit while the
// firmware was half-way through a log line. Replayed byte for byte: the
// old line's start arrives before the reset, more of it after (still in
// the UART socket), then the new boot's banner. The ^-anchored boot marker
// must match the banner as a line of its own.
func TestRestartDropsTheUnfinishedLine(t *testing.T) {
	bootMarker := regexp.MustCompile(`^\[\d{8}\] boot: ddagent (?P<version>\S+) profile=(?P<profile>\S+) boot=(?P<boot>\d+)$`)
	for _, tc := range []struct {
		name          string
		before, after string
		dropped       []string
	}{
		{"cut before the reset", "[00008511] report: published id=8509 form", "[00000000] boot: ddagent 0.1.0 profile=renode-stm32f4disc boot=3\r\n",
			[]string{"[00008511] report: published id=8509 form"}},
		{"rest still in flight", "[00008511] report: publ", "ished id=8509 form[00000000] boot: ddagent 0.1.0 profile=renode-stm32f4disc boot=3\r\n",
			[]string{"[00008511] report: publ", "ished id=8509 form"}},
		{"clean", "[00008511] report: published id=8509 format=json keys=long bytes=532\r\n> ", "[00000000] boot: ddagent 0.1.0 profile=renode-stm32f4disc boot=3\r\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.Close() })
			c := New(pr, nil, Config{})
			_, err := pw.Write([]byte(tc.before))
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				return strings.Contains(c.Tail(1), strings.TrimSuffix(strings.TrimSuffix(tc.before, "> "), "\r\n"))
			}, time.Second, time.Millisecond)
			c.Restart()
			go func() { _, _ = pw.Write([]byte(tc.after)) }()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			l, err := c.Expect(ctx, bootMarker)
			require.NoError(t, err, "the boot marker matches after a reset mid-line")
			assert.Equal(t, "[00000000] boot: ddagent 0.1.0 profile=renode-stm32f4disc boot=3", l.Text)
			assert.Equal(t, tc.dropped, c.Dropped(), "what was dropped is kept as evidence")
		})
	}
}

// Without Restart the same bytes glue the old line to the banner: the
// marker does not match (the bug the test above guards against).
func TestWithoutRestartTheBannerIsGlued(t *testing.T) {
	c, _ := readAll(t, "[00008511] report: published id=8509 form[00000000] boot: ddagent 0.1.0 profile=x boot=3\r\n", iotest.OneByteReader, Config{})
	lines := c.Lines()
	require.Len(t, lines, 1)
	assert.False(t, regexp.MustCompile(`^\[\d{8}\] boot: `).MatchString(lines[0].Text))
}
