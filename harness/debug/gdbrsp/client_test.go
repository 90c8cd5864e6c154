package gdbrsp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddhil/ddhil/harness"
	"github.com/ddhil/ddhil/harness/debug/gdbrsp/rsptest"
)

// peer plays a GDB stub over net.Pipe for protocol unit tests. It follows
// the RSP as GDB's manual describes it; the real-stub tests are in
// qemu_test.go.
type peer struct {
	t     *testing.T
	conn  net.Conn
	br    *bufio.Reader
	noAck bool
	mu    sync.Mutex
	got   []string // packets received, in order ("\x03" for an interrupt)
}

func newPeer(t *testing.T, opts Options) (*Client, *peer) {
	t.Helper()
	a, b := net.Pipe()
	p := &peer{t: t, conn: b, br: bufio.NewReader(b)}
	c := NewClient(a, opts)
	t.Cleanup(func() { c.Close(); b.Close() })
	return c, p
}

// read returns the next packet (acking it unless in no-ack mode), or "\x03".
// badAck makes it answer '-' the first time.
func (p *peer) read(badAck bool) string {
	p.t.Helper()
	for {
		b, err := p.br.ReadByte()
		require.NoError(p.t, err)
		switch b {
		case 0x03:
			p.record("\x03")
			return "\x03"
		case '$':
		default:
			continue
		}
		body, err := p.br.ReadString('#')
		require.NoError(p.t, err)
		sum := make([]byte, 2)
		_, err = io.ReadFull(p.br, sum)
		require.NoError(p.t, err)
		body = strings.TrimSuffix(body, "#")
		require.Equal(p.t, fmt.Sprintf("%02x", checksum([]byte(body))), string(sum), "client checksum")
		if !p.noAck {
			if badAck {
				p.write("-")
				badAck = false
				continue // the client must send it again
			}
			p.write("+")
		}
		p.record(body)
		return body
	}
}

func (p *peer) record(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, s)
}

func (p *peer) packets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

func (p *peer) write(s string) {
	_, err := p.conn.Write([]byte(s))
	require.NoError(p.t, err)
}

// send writes a reply packet and, in ack mode, consumes the client's ack.
func (p *peer) send(payload string) {
	p.t.Helper()
	p.write(string(frame([]byte(payload))))
	if !p.noAck {
		b, err := p.br.ReadByte()
		require.NoError(p.t, err)
		require.Equal(p.t, byte('+'), b, "client ack for %q", payload)
	}
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestHandshakeNoAckAndPacketSize(t *testing.T) {
	c, p := newPeer(t, Options{})
	go func() {
		assert.True(t, strings.HasPrefix(p.read(false), "qSupported:"))
		p.send("PacketSize=4000;qXfer:memory-map:read+;QStartNoAckMode+;vContSupported+")
		assert.Equal(t, "QStartNoAckMode", p.read(false))
		p.send("OK")
		p.noAck = true
		assert.Equal(t, "?", p.read(false))
		p.send("T05thread:01;")
	}()
	ctx := ctx5(t)
	require.NoError(t, c.Handshake(ctx))
	assert.Equal(t, 0x4000, c.PacketSize())
	assert.True(t, c.NoAck())
	v, ok := c.Feature("qXfer:memory-map:read")
	assert.True(t, ok)
	assert.Equal(t, "+", v)
	sr, err := c.StopReason(ctx)
	require.NoError(t, err)
	assert.True(t, sr.Stopped())
	assert.Equal(t, 5, sr.Signal)
}

func TestNakResendsAndBadChecksumIsRefused(t *testing.T) {
	c, p := newPeer(t, Options{})
	go func() {
		assert.Equal(t, "m0,4", p.read(true)) // '-' first: the client resends
		// A reply with a wrong checksum must be answered '-' and dropped.
		p.write("$00000000#ff")
		b, _ := p.br.ReadByte()
		assert.Equal(t, byte('-'), b)
		p.send("01020304")
	}()
	got, err := c.ReadMemory(ctx5(t), 0, 4)
	require.NoError(t, err)
	assert.Equal(t, []byte{1, 2, 3, 4}, got)
	assert.Equal(t, int64(1), c.BadFrames())
}

func TestMemoryChunksUnderPacketSize(t *testing.T) {
	c, p := newPeer(t, Options{})
	c.packetSize = 0x60 // (96-32)/2 = 32 bytes per packet
	data := make([]byte, 70)
	for i := range data {
		data[i] = byte(i)
	}
	go func() {
		for range 3 {
			pkt := p.read(false)
			assert.LessOrEqual(t, len(pkt)+4, 0x60, pkt)
			p.send("OK")
		}
		// Reads: the stub returns a short first chunk and RLE in the next.
		assert.Equal(t, "m20000000,5", p.read(false))
		p.send("0001")
		assert.Equal(t, "m20000002,3", p.read(false))
		p.send("0* 11") // RLE: "0000" + "11"
	}()
	ctx := ctx5(t)
	require.NoError(t, c.WriteMemory(ctx, 0x20000000, data))
	got := p.packets()
	require.Len(t, got, 3)
	assert.Equal(t, "M20000000,20:"+hex.EncodeToString(data[:32]), got[0])
	assert.Equal(t, "M20000020,20:"+hex.EncodeToString(data[32:64]), got[1])
	assert.Equal(t, "M20000040,6:"+hex.EncodeToString(data[64:]), got[2])

	back, err := c.ReadMemory(ctx, 0x20000000, 5)
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 1, 0, 0, 0x11}, back)
}

func TestWriteMemoryBinaryEscapes(t *testing.T) {
	c, p := newPeer(t, Options{})
	data := []byte{'#', '$', '}', '*', 0, 0xff, 'a'}
	var received []byte
	go func() {
		pkt := p.read(false)
		head, body, _ := strings.Cut(pkt, ":")
		assert.Equal(t, "X8000000,7", head)
		received, _ = unescapeBinary([]byte(body))
		p.send("OK")
		p.read(false)
		p.send("") // a stub without X
	}()
	ctx := ctx5(t)
	require.NoError(t, c.WriteMemoryBinary(ctx, 0x08000000, data))
	assert.Equal(t, data, received)
	err := c.WriteMemoryBinary(ctx, 0x08000000, data)
	assert.ErrorIs(t, err, ErrUnsupported)
}

func TestMonitorCollectsOutput(t *testing.T) {
	c, p := newPeer(t, Options{})
	go func() {
		assert.Equal(t, "qRcmd,"+hex.EncodeToString([]byte("reset halt")), p.read(false))
		p.send("O" + hex.EncodeToString([]byte("target halted due to debug-request\n")))
		p.send("O" + hex.EncodeToString([]byte("xPSR: 0x01000000\n")))
		p.send("OK")
		p.read(false)
		p.send(hex.EncodeToString([]byte("as final reply\n")))
		p.read(false)
		p.send("E01")
		p.read(false)
		p.send("")
	}()
	ctx := ctx5(t)
	out, err := c.Monitor(ctx, "reset halt")
	require.NoError(t, err)
	assert.Equal(t, "target halted due to debug-request\nxPSR: 0x01000000\n", out)
	out, err = c.Monitor(ctx, "info")
	require.NoError(t, err)
	assert.Equal(t, "as final reply\n", out)
	_, err = c.Monitor(ctx, "bogus")
	var re *RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "E01", re.Reply)
	_, err = c.Monitor(ctx, "nothing")
	assert.ErrorIs(t, err, ErrUnsupported)
}

func TestContinueOutputAndInterrupt(t *testing.T) {
	var out bytes.Buffer
	c, p := newPeer(t, Options{Output: &out})
	gotInterrupt := make(chan struct{})
	go func() {
		assert.Equal(t, "c", p.read(false))
		p.send("O" + hex.EncodeToString([]byte("semihosting says hi\n")))
		assert.Equal(t, "\x03", p.read(false))
		close(gotInterrupt)
		p.send("T02thread:01;")
	}()
	ctx := ctx5(t)
	require.NoError(t, c.Continue(ctx))
	assert.True(t, c.Running())
	_, err := c.ReadMemory(ctx, 0, 4)
	require.Error(t, err, "memory access while running is refused")
	assert.Contains(t, err.Error(), "running")

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = c.WaitStop(short)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "nothing stops it; still running")
	assert.True(t, c.Running())

	sr, err := c.Interrupt(ctx)
	require.NoError(t, err)
	<-gotInterrupt
	assert.Equal(t, 2, sr.Signal)
	assert.False(t, c.Running())
	assert.Equal(t, "semihosting says hi\n", out.String())
}

func TestRemoteErrorAndConnectionLoss(t *testing.T) {
	c, p := newPeer(t, Options{})
	go func() {
		p.read(false)
		p.send("E14")
		p.read(false)
		p.conn.Close() // the stub died
	}()
	ctx := ctx5(t)
	_, err := c.ReadMemory(ctx, 0xdead0000, 4)
	var re *RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "E14", re.Reply)
	_, err = c.ReadMemory(ctx, 0, 4)
	require.ErrorIs(t, err, harness.ErrLab)
	assert.Contains(t, err.Error(), "lost")
}

func TestRegisterNumbersFromTargetDescription(t *testing.T) {
	c, p := newPeer(t, Options{})
	c.features = map[string]string{"qXfer:features:read": "+"}
	target := `<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd">` +
		`<target><xi:include href="arm-m-profile.xml"/></target>`
	profile := `<feature name="org.gnu.gdb.arm.m-profile">` +
		`<reg name="r0" bitsize="32"/><reg name="r1" bitsize="32"/>` +
		`<reg name="sp" bitsize="32" regnum="13"/><reg name="lr" bitsize="32"/><reg name="pc" bitsize="32"/>` +
		`<reg name="xpsr" bitsize="32" regnum="25"/></feature>`
	go func() {
		assert.Equal(t, "qXfer:features:read:target.xml:0,e0", p.read(false))
		p.send("m" + target[:40])
		assert.Equal(t, "qXfer:features:read:target.xml:28,e0", p.read(false))
		p.send("l" + target[40:])
		assert.Equal(t, "qXfer:features:read:arm-m-profile.xml:0,e0", p.read(false))
		p.send("l" + profile)
	}()
	regs, err := c.RegisterNumbers(ctx5(t))
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"r0": 0, "r1": 1, "sp": 13, "lr": 14, "pc": 15, "xpsr": 25}, regs)
}

// TestLoadELFOpenOCDHandsFlashToOpenOCD checks the command sequence LoadELF
// sends to OpenOCD's gdb server (which cannot run here without a chip): the
// image is written by OpenOCD's own flash driver via monitor commands.
func TestLoadELFOpenOCDHandsFlashToOpenOCD(t *testing.T) {
	ctx := ctx5(t)
	img, err := rsptest.BuildBanner(ctx, t.TempDir(), "x")
	if errors.Is(err, rsptest.ErrNoToolchain) {
		t.Skip(err)
	}
	require.NoError(t, err)
	c, p := newPeer(t, Options{Stub: StubOpenOCD})
	var cmds []string
	go func() {
		for range 4 {
			pkt := p.read(false)
			b, _ := hex.DecodeString(strings.TrimPrefix(pkt, "qRcmd,"))
			cmds = append(cmds, string(b))
			p.send("OK")
		}
	}()
	res, err := c.LoadELF(ctx, img.ELF)
	require.NoError(t, err)
	assert.Equal(t, uint64(0x08000000), res.VectorTable)
	assert.Equal(t, []string{"reset halt", "flash write_image erase " + img.ELF, "verify_image " + img.ELF, "reset halt"}, cmds)
}

func TestDialOverTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		p := &peer{t: t, conn: conn, br: bufio.NewReader(conn)}
		p.read(false)
		p.send("PacketSize=1000")
		_, _ = p.br.ReadByte() // wait for the client to hang up
	}()
	c, err := Dial(ctx5(t), l.Addr().String(), Options{})
	require.NoError(t, err)
	assert.Equal(t, 0x1000, c.PacketSize())
	require.NoError(t, c.Close())

	l2, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l2.Addr().String()
	l2.Close() // nothing listens there now
	_, err = Dial(ctx5(t), addr, Options{})
	assert.ErrorIs(t, err, harness.ErrLab)
}
