package hwmap

import (
	"fmt"
	"sort"
	"strings"
)

// Probe is an attached ST-LINK as discovery sees it.
type Probe struct {
	Serial  string // USB serial number = OpenOCD adapter serial
	Port    string // its virtual COM port (stable path when known)
	Product string // USB product string
	PID     string // USB product ID, upper-case hex
}

// Platforms are the boards ddhil knows, with their OpenOCD configuration.
var Platforms = map[string][]string{
	"nucleo-f446re":     {"board/st_nucleo_f4.cfg"},
	"stm32f4-discovery": {"board/stm32f4discovery.cfg"},
	"b-u585i-iot02a":    {"fixtures/openocd/b-u585i-iot02a.cfg"},
}

// stlinkGenerations maps ST-LINK product IDs to a name and the OpenOCD
// configuration of the board that usually carries it.
var stlinkGenerations = map[string]struct{ name, openocd string }{
	"3748": {"ST-LINK/V2", "board/stm32f4discovery.cfg"},
	"374B": {"ST-LINK/V2-1", "board/st_nucleo_f4.cfg"},
	"374E": {"STLINK-V3", "fixtures/openocd/b-u585i-iot02a.cfg"},
	"374F": {"STLINK-V3", "fixtures/openocd/b-u585i-iot02a.cfg"},
	"3753": {"STLINK-V3", "fixtures/openocd/b-u585i-iot02a.cfg"},
	"3754": {"STLINK-V3", "fixtures/openocd/b-u585i-iot02a.cfg"},
}

// Skeleton returns a hardware map for the attached probes to edit: probe
// serial and console port filled in, OpenOCD configuration guessed from the
// ST-LINK generation, platform and transport left for a human. It loads as
// is (platform "unknown", transport network on 0.0.0.0:8883).
func Skeleton(probes []Probe) []byte {
	var b strings.Builder
	b.WriteString("# ddhil hardware map skeleton, from the ST-LINK probes attached now.\n")
	b.WriteString("# Set platform and transport for each board, then check with: ddhil boards --hwmap <this file>\n")
	b.WriteString("# Format and a complete example: docs/boards.md, fixtures/hwmap/example.yaml\n")
	if len(probes) == 0 {
		b.WriteString("# No ST-LINK virtual COM port (USB VID 0483) was found: nothing to map.\n")
		b.WriteString("# (A standalone ST-LINK/V2 has no COM port; write its entry by hand.)\n")
		return []byte(b.String())
	}
	b.WriteString("boards:\n")
	for i, p := range probes {
		gen, known := stlinkGenerations[strings.ToUpper(p.PID)]
		if !known {
			gen.name, gen.openocd = "unknown ST-LINK", "board/st_nucleo_f4.cfg"
		}
		fmt.Fprintf(&b, "  - id: board-%d\n", i+1)
		fmt.Fprintf(&b, "    platform: unknown  # one of: %s\n", strings.Join(platformNames(), ", "))
		fmt.Fprintf(&b, "    probe_serial: %q  # %s, %q\n", p.Serial, gen.name, p.Product)
		fmt.Fprintf(&b, "    openocd: [%s]  # guessed from the probe; see fixtures/openocd/README.md\n", gen.openocd)
		fmt.Fprintf(&b, "    console: {port: %q, baud: %d}  # the ST-LINK virtual COM port\n", p.Port, DefaultBaud)
		b.WriteString("    transport: network  # or {module: /dev/serial/by-id/<USB-serial adapter on the module UART>, baud: 115200}\n")
		b.WriteString("    broker_listen: 0.0.0.0:8883  # network boards: this machine's LAN address\n")
		fmt.Fprintf(&b, "    flash_timeout: %s\n", DefaultFlashTimeout)
		fmt.Fprintf(&b, "    boot_timeout: %s\n", DefaultBootTimeout)
	}
	return []byte(b.String())
}

func platformNames() []string {
	names := make([]string, 0, len(Platforms))
	for n := range Platforms {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
