package gdbrsp

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Segment is one PT_LOAD segment as written: at its physical (load) address,
// so initialised data lands in flash where the start-up code copies it from.
type Segment struct {
	Addr uint64
	Data []byte
}

// LoadResult says what LoadELF wrote.
type LoadResult struct {
	Segments []Segment
	Bytes    int
	// VectorTable is the lowest load address, where a Cortex-M image keeps
	// its initial SP and reset vector.
	VectorTable uint64
}

// ReadSegments returns the PT_LOAD segments of an ELF file with file data.
func ReadSegments(path string) (LoadResult, error) {
	f, err := elf.Open(path)
	if err != nil {
		return LoadResult{}, fmt.Errorf("gdbrsp: load %s: %w", path, err)
	}
	defer f.Close()
	var res LoadResult
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := io.ReadFull(p.Open(), data); err != nil {
			return LoadResult{}, fmt.Errorf("gdbrsp: load %s: segment at 0x%x: %w", path, p.Paddr, err)
		}
		if len(res.Segments) == 0 || p.Paddr < res.VectorTable {
			res.VectorTable = p.Paddr
		}
		res.Segments = append(res.Segments, Segment{Addr: p.Paddr, Data: data})
		res.Bytes += len(data)
	}
	if len(res.Segments) == 0 {
		return LoadResult{}, fmt.Errorf("gdbrsp: load %s: no loadable segments", path)
	}
	return res, nil
}

// LoadELF writes an ELF into the halted target and leaves it halted, ready
// to start from the new image's reset vector on Continue. How depends on the
// stub:
//
//   - QEMU: every segment is written with M (QEMU's STM32 flash is ROM that
//     the stub may write) and read back with m, then "monitor system_reset"
//     makes the core load SP and PC from the vector table. QEMU keeps memory
//     across that reset.
//   - Renode: written and verified the same way, but Renode's reset would wipe
//     memory loaded over GDB (unless a reset macro reloads it), so SP, PC and
//     xPSR are set from the vector table instead (StartAt).
//   - OpenOCD: flash needs OpenOCD's flash drivers, so the ELF is handed to
//     OpenOCD itself ("reset halt", "flash write_image erase", "verify_image",
//     "reset halt"); the path must be readable by the OpenOCD process. The
//     gdb vFlash packets are not used.
func (c *Client) LoadELF(ctx context.Context, path string) (LoadResult, error) {
	res, err := ReadSegments(path)
	if err != nil {
		return LoadResult{}, err
	}
	if c.opts.Stub == StubOpenOCD {
		for _, cmd := range []string{"reset halt", "flash write_image erase " + tclQuote(path), "verify_image " + tclQuote(path), "reset halt"} {
			if _, err := c.Monitor(ctx, cmd); err != nil {
				return LoadResult{}, fmt.Errorf("gdbrsp: load %s: %w", path, err)
			}
		}
		return res, nil
	}
	for _, s := range res.Segments {
		if err := c.WriteMemory(ctx, s.Addr, s.Data); err != nil {
			return LoadResult{}, fmt.Errorf("gdbrsp: load %s: %w", path, err)
		}
		back, err := c.ReadMemory(ctx, s.Addr, len(s.Data))
		if err != nil {
			return LoadResult{}, fmt.Errorf("gdbrsp: load %s: verify: %w", path, err)
		}
		if i := firstDiff(back, s.Data); i >= 0 {
			return LoadResult{}, fmt.Errorf("gdbrsp: load %s: verify failed at 0x%x: wrote %02x, read %02x (read-only memory?)",
				path, s.Addr+uint64(i), s.Data[i], back[i])
		}
	}
	switch c.opts.Stub {
	case StubRenode:
		err = c.StartAt(ctx, res.VectorTable)
	default:
		_, err = c.Monitor(ctx, "system_reset")
	}
	if err != nil {
		return LoadResult{}, fmt.Errorf("gdbrsp: load %s: reset: %w", path, err)
	}
	return res, nil
}

// StartAt points the halted core at the image whose vector table is at
// vectorTable: SP and PC from its first two words, xPSR = Thumb only. It is a
// soft start (peripherals keep their state), for stubs whose reset would
// discard the image.
func (c *Client) StartAt(ctx context.Context, vectorTable uint64) error {
	vec, err := c.ReadMemory(ctx, vectorTable, 8)
	if err != nil {
		return err
	}
	sp := binary.LittleEndian.Uint32(vec[0:4])
	pc := binary.LittleEndian.Uint32(vec[4:8]) &^ 1 // the Thumb bit lives in xPSR
	regs, err := c.RegisterNumbers(ctx)
	if err != nil {
		return err
	}
	for _, r := range []struct {
		name  string
		value uint32
	}{{"sp", sp}, {"pc", pc}, {"xpsr", 1 << 24}} {
		if err := c.WriteRegister(ctx, regs[r.name], r.value); err != nil {
			return fmt.Errorf("gdbrsp: set %s: %w", r.name, err)
		}
	}
	return nil
}

// WriteRegister sets one 32-bit register ("P"), value in target (little-endian) order.
func (c *Client) WriteRegister(ctx context.Context, regnum int, value uint32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], value)
	reply, err := c.Command(ctx, fmt.Sprintf("P%x=%s", regnum, hex.EncodeToString(b[:])))
	if err != nil {
		return err
	}
	if reply != "OK" {
		if reply == "" {
			return fmt.Errorf("gdbrsp: P: %w", ErrUnsupported)
		}
		return fmt.Errorf("gdbrsp: P%x: unexpected reply %q", regnum, reply)
	}
	return nil
}

// ReadRegister reads one 32-bit register ("p").
func (c *Client) ReadRegister(ctx context.Context, regnum int) (uint32, error) {
	reply, err := c.Command(ctx, fmt.Sprintf("p%x", regnum))
	if err != nil {
		return 0, err
	}
	b, err := hex.DecodeString(reply)
	if err != nil || len(b) != 4 {
		if reply == "" {
			return 0, fmt.Errorf("gdbrsp: p: %w", ErrUnsupported)
		}
		return 0, fmt.Errorf("gdbrsp: p%x: unexpected reply %q", regnum, reply)
	}
	return binary.LittleEndian.Uint32(b), nil
}

// armMProfile is GDB's numbering for Cortex-M when the stub has no target
// description: r0-r12, sp 13, lr 14, pc 15, xpsr 25.
var armMProfile = map[string]int{"sp": 13, "lr": 14, "pc": 15, "xpsr": 25}

// RegisterNumbers reads the stub's target description (qXfer:features, with
// its xi:include parts) and returns register numbers by lower-case name.
// Reading it also enables p/P on QEMU, which refuses them before.
func (c *Client) RegisterNumbers(ctx context.Context) (map[string]int, error) {
	if c.features["qXfer:features:read"] != "+" {
		return armMProfile, nil
	}
	regs := map[string]int{}
	next := 0
	if err := c.parseFeatures(ctx, "target.xml", regs, &next, 0); err != nil {
		return nil, err
	}
	for _, name := range []string{"sp", "pc", "xpsr"} {
		if _, ok := regs[name]; !ok {
			return nil, fmt.Errorf("gdbrsp: target description has no %q register", name)
		}
	}
	return regs, nil
}

func (c *Client) parseFeatures(ctx context.Context, annex string, regs map[string]int, next *int, depth int) error {
	if depth > 4 {
		return fmt.Errorf("gdbrsp: target description includes nest too deep at %s", annex)
	}
	doc, err := c.ReadXfer(ctx, "features", annex)
	if err != nil {
		return err
	}
	dec := xml.NewDecoder(bytes.NewReader(doc))
	dec.Strict = false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("gdbrsp: target description %s: %w", annex, err)
		}
		el, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch el.Name.Local {
		case "include":
			for _, a := range el.Attr {
				if a.Name.Local == "href" {
					if err := c.parseFeatures(ctx, a.Value, regs, next, depth+1); err != nil {
						return err
					}
				}
			}
		case "reg":
			name := ""
			for _, a := range el.Attr {
				switch a.Name.Local {
				case "name":
					name = strings.ToLower(a.Value)
				case "regnum":
					if n, err := strconv.Atoi(a.Value); err == nil {
						*next = n
					}
				}
			}
			regs[name] = *next
			*next++
		}
	}
}

// ReadXfer reads a whole qXfer object ("features", "memory-map", ...).
func (c *Client) ReadXfer(ctx context.Context, object, annex string) ([]byte, error) {
	var out []byte
	chunk := c.packetSize - 32
	for {
		reply, err := c.Command(ctx, fmt.Sprintf("qXfer:%s:read:%s:%x,%x", object, annex, len(out), chunk))
		if err != nil {
			return nil, err
		}
		if reply == "" {
			return nil, fmt.Errorf("gdbrsp: qXfer:%s: %w", object, ErrUnsupported)
		}
		data, err := unescapeBinary([]byte(reply[1:]))
		if err != nil {
			return nil, err
		}
		out = append(out, data...)
		switch reply[0] {
		case 'l':
			return out, nil
		case 'm':
			if len(data) == 0 {
				return nil, fmt.Errorf("gdbrsp: qXfer:%s:%s: empty 'm' reply", object, annex)
			}
		default:
			return nil, fmt.Errorf("gdbrsp: qXfer:%s:%s: unexpected reply %q", object, annex, short([]byte(reply)))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// tclQuote makes a path one word for an OpenOCD (Tcl) monitor command.
func tclQuote(s string) string {
	if strings.ContainsAny(s, " \t{}[]$\"\\;") {
		return "{" + s + "}"
	}
	return s
}
