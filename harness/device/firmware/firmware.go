// Package firmware checks a firmware image before anything boots, so a
// wrong file is a usage mistake with a one-line reason instead of an
// emulator's register dump.
package firmware

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Image is what Check learnt about an ELF.
type Image struct {
	Path       string
	VectorBase uint64 // physical address of the vector table
	InitialSP  uint32
	Reset      uint32 // reset handler (Thumb bit set)
}

// Check opens path and verifies that it is a 32-bit little-endian ARM ELF
// executable whose lowest loadable segment starts with a Cortex-M vector
// table: an initial stack pointer in SRAM and a Thumb reset handler inside
// the image.
func Check(path string) (Image, error) {
	img := Image{Path: path}
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return img, fmt.Errorf("firmware %s: no such file (build it, e.g. make firmware, or pass --firmware)", path)
		}
		return img, fmt.Errorf("firmware %s: %w", path, err)
	}
	if st.IsDir() {
		return img, fmt.Errorf("firmware %s: is a directory, not an ELF file", path)
	}
	f, err := elf.Open(path)
	if err != nil {
		return img, fmt.Errorf("firmware %s: not an ELF file", path)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_ARM || f.Data != elf.ELFDATA2LSB {
		return img, fmt.Errorf("firmware %s: an ELF for %s (%s), not a 32-bit little-endian ARM one", path, f.Machine, f.Class)
	}
	if f.Type != elf.ET_EXEC {
		return img, fmt.Errorf("firmware %s: ELF type %s, not an executable (link it)", path, f.Type)
	}
	var low *elf.Prog
	var lo, hi uint64 = ^uint64(0), 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 {
			continue
		}
		if low == nil || p.Paddr < low.Paddr {
			low = p
		}
		lo, hi = min(lo, p.Paddr), max(hi, p.Paddr+p.Filesz)
	}
	if low == nil || low.Filesz < 8 {
		return img, fmt.Errorf("firmware %s: no loadable segment with a vector table", path)
	}
	var vec [8]byte
	if _, err := io.ReadFull(low.Open(), vec[:]); err != nil {
		return img, fmt.Errorf("firmware %s: reading the vector table: %w", path, err)
	}
	img.VectorBase = low.Paddr
	img.InitialSP = binary.LittleEndian.Uint32(vec[0:])
	img.Reset = binary.LittleEndian.Uint32(vec[4:])
	if img.InitialSP < 0x1000_0000 || img.InitialSP >= 0x4000_0000 || img.InitialSP%4 != 0 {
		return img, fmt.Errorf("firmware %s: no Cortex-M vector table at %#x (initial SP %#x is not in SRAM)", path, img.VectorBase, img.InitialSP)
	}
	if img.Reset&1 == 0 || uint64(img.Reset&^1) < lo || uint64(img.Reset&^1) >= hi {
		return img, fmt.Errorf("firmware %s: no Cortex-M vector table at %#x (reset handler %#x is not a Thumb address in the image)", path, img.VectorBase, img.Reset)
	}
	return img, nil
}
