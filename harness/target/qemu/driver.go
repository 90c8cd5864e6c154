package qemu

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ddhil/ddhil/harness/target"
)

// Machines are the Cortex-M machines of qemu-system-arm 7.2 that load an
// ELF with -kernel: what a profile's target.qemu.machine may name.
var Machines = []string{
	"emcraft-sf2", "lm3s6965evb", "lm3s811evb", "microbit", "mps2-an385", "mps2-an386",
	"mps2-an500", "mps2-an505", "mps2-an511", "mps2-an521", "mps2-an524", "mps2-an547",
	"musca-a", "musca-b1", "netduino2", "netduinoplus2", "olimex-stm32-h405", "stm32vldiscovery",
}

func init() {
	target.Register(target.Driver{
		Name:    "qemu",
		Summary: "QEMU 7.2 (qemu-system-arm), UARTs on Unix sockets, QMP for reset",
		Options: []target.Option{
			{Flag: "qemu", Usage: "qemu-system-arm binary (default: from PATH)"},
			{Flag: "qemu-machine", Key: "machine", Usage: "QEMU machine, -M (default netduinoplus2)"},
			{Flag: "console-serial", Key: "console_serial", Usage: "QEMU -serial index of the console UART (default 1 on netduinoplus2, else 0)"},
			{Flag: "module-serial", Key: "module_serial", Usage: "QEMU -serial index of the Wi-Fi module UART, -1 for none (default 0 on netduinoplus2, else 1)"},
			{Flag: "qemu-arg", Key: "args", List: true, Usage: "extra QEMU argument (repeatable), e.g. --qemu-arg -icount --qemu-arg shift=6,align=off,sleep=on"},
			{Flag: "tick-symbol", Key: "tick_symbol", Usage: "firmware's 32-bit ms counter QEMU reads as the target clock (default ticks_lo when the ELF has it; - for none: timing judged on host time)"},
		},
		DefaultFirmware: func(s target.Settings) string {
			return filepath.Join("firmware", "build", "qemu-"+machineOf(s), "ddagent.elf")
		},
		Validate: func(s target.Settings) error { _, err := configOf(s); return err },
		Probe: func(_ context.Context, s *target.Setup) target.Availability {
			if err := Probe(s.Settings.Get("qemu")); err != nil {
				return target.Absent("%v", err)
			}
			return target.Ready()
		},
		New: func(s *target.Setup) (target.Target, error) {
			cfg, err := configOf(s.Settings)
			if err != nil {
				return nil, err
			}
			cfg.Firmware, cfg.Stderr = s.Firmware, s.Log
			return New(cfg)
		},
	})
}

func machineOf(s target.Settings) string {
	if m := s.Get("qemu-machine"); m != "" {
		return m
	}
	return "netduinoplus2"
}

// configOf turns driver settings into a Config (without firmware and log).
func configOf(s target.Settings) (Config, error) {
	cfg := Config{Binary: s.Get("qemu"), Machine: machineOf(s), ExtraArgs: s["qemu-arg"], TickSymbol: s.Get("tick-symbol")}
	if !slices.Contains(Machines, cfg.Machine) {
		return cfg, fmt.Errorf("qemu: unknown machine %q (Cortex-M machines of QEMU 7.2: %s)", cfg.Machine, strings.Join(Machines, ", "))
	}
	defCon, defMod := 0, 1
	if cfg.Machine == "netduinoplus2" {
		defCon, defMod = 1, 0
	}
	var err error
	if cfg.ConsoleSerial, err = s.Int("console-serial", defCon); err != nil {
		return cfg, fmt.Errorf("qemu: %w", err)
	}
	if cfg.TransportSerial, err = s.Int("module-serial", defMod); err != nil {
		return cfg, fmt.Errorf("qemu: %w", err)
	}
	if cfg.ConsoleSerial < 0 || cfg.ConsoleSerial > 6 {
		return cfg, fmt.Errorf("qemu: console serial %d outside 0..6", cfg.ConsoleSerial)
	}
	if cfg.TransportSerial < -1 || cfg.TransportSerial > 6 {
		return cfg, fmt.Errorf("qemu: module serial %d outside -1..6", cfg.TransportSerial)
	}
	if cfg.ConsoleSerial == cfg.TransportSerial {
		return cfg, fmt.Errorf("qemu: console and module share serial %d", cfg.ConsoleSerial)
	}
	cfg.Serials = max(cfg.ConsoleSerial, cfg.TransportSerial) + 1
	return cfg, nil
}
