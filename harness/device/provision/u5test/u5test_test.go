package u5test

import (
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness/link/console"
)

// The stand-in answers as shared/docs/stm32-reference.md §1-2 describe.
func TestConsoleReplies(t *testing.T) {
	host, dev := net.Pipe()
	d := Start(dev, Config{})
	t.Cleanup(func() { host.Close(); d.Close() })
	c := console.New(host, host, console.Config{LogPattern: regexp.MustCompile(`^<[A-Z]{3}> +\d+ \[.{10}\] `),
		ErrorPattern: regexp.MustCompile(`^(Error: |ERROR: |Command not recognized)`)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Expect(ctx, console.Literal("File System mounted."))
	require.NoError(t, err)
	require.NoError(t, c.ExpectPrompt(ctx), "the log line is redrawn with the prompt")

	cases := []struct{ name, send, reply string }{
		{"unknown command", "bogus", "Command not recognized. Enter 'help' to view a list of available commands."},
		{"unknown key", "conf get nope", "Error: key: nope was not recognized."},
		{"bad number", "conf set mqtt_port abc", "Error: value: abc is not valid for key: mqtt_port"},
		{"string key", "conf set thing_name dut extra", `thing_name="dut"`},
		{"number key", "conf get mqtt_port", "mqtt_port=8883"},
		{"commit", "conf commit", "Configuration saved to NVM."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if strings.HasPrefix(tc.reply, "Error") || strings.HasPrefix(tc.reply, "Command") {
				_, err := c.Command(ctx, tc.send, regexp.MustCompile(`^no such reply$`))
				var ce *console.CommandError
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, tc.reply, ce.Reply)
				return
			}
			out, err := c.Command(ctx, tc.send, console.Literal(tc.reply))
			require.NoError(t, err)
			assert.Equal(t, tc.reply, out[len(out)-1])
		})
	}
	assert.Equal(t, "dut", d.Committed()["thing_name"])

	// Ctrl-C drops the partial line and prints a fresh prompt; a command
	// line over 127 characters is dropped without a reply.
	mark := c.Mark()
	_, err = c.Write([]byte("conf get thi\x03"))
	require.NoError(t, err)
	c.Skip(mark)
	require.NoError(t, c.ExpectPrompt(ctx))
	long := "conf get " + strings.Repeat("x", MaxCommand)
	before := len(d.Commands())
	require.NoError(t, c.Send(long))
	_, err = c.Expect(ctx, console.Literal(long))
	require.NoError(t, err)
	require.NoError(t, c.ExpectPrompt(ctx))
	assert.Len(t, d.Commands(), before, "the long line was not executed")

	// Without a key, a CSR is only an <ERR> log line: prompt, no PEM.
	_, err = c.Command(ctx, "pki generate csr", regexp.MustCompile(`^<ERR> .*Failed to generate Certificate Request\.`))
	require.NoError(t, err)
}
