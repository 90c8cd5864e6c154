package renode

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/ddhil/ddhil/harness/target"
)

// probeTimeout bounds the Docker ping that decides whether Renode can run
// at all, so a hung engine is a lab error instead of a hang.
const probeTimeout = 30 * time.Second

func init() {
	target.Register(target.Driver{
		Name:    "renode",
		Summary: "Renode 1.16: a local binary, else a container image (testcontainers-go)",
		Options: []target.Option{
			{Flag: "renode", Usage: "local Renode binary or launcher (default: renode from PATH, else the container image)"},
			{Flag: "renode-image", Usage: "Renode container image (default " + DefaultImage + ")"},
			{Flag: "renode-platform", Key: "platform", Path: true, Usage: "Renode platform description (.repl) replacing the offline STM32F4 Discovery"},
			{Flag: "console-uart", Key: "console_uart", Usage: "Renode peripheral of the console UART (default sysbus.usart2)"},
			{Flag: "module-uart", Key: "module_uart", Usage: "Renode peripheral of the Wi-Fi module UART, - for none (default sysbus.usart1)"},
			{Flag: "renode-command", Key: "commands", List: true, Usage: "extra Renode monitor command after the platform loads (repeatable)"},
			{Flag: "compress", Key: "compress", Bool: true, Usage: "let virtual time run ahead while the firmware idles, to judge a long period in seconds (docs/timing.md)"},
			{Flag: "step-slice", Key: "step_slice", Usage: "with compress: advance virtual time in slices of this length, each once the module is idle (e.g. 1s; docs/timing.md)"},
		},
		DefaultFirmware: func(target.Settings) string {
			return "firmware/build/renode-stm32f4disc/ddagent.elf"
		},
		Validate: func(s target.Settings) error {
			if _, err := timeOptions(s); err != nil {
				return err
			}
			if p := s.Get("renode-platform"); p != "" {
				if _, err := os.Stat(p); err != nil {
					return fmt.Errorf("renode: platform %s: %w", p, err)
				}
			}
			return nil
		},
		Probe: func(ctx context.Context, s *target.Setup) target.Availability {
			ctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			if _, err := Probe(ctx, configOf(s)); err != nil {
				return target.Absent("%v", err)
			}
			return target.Ready()
		},
		New: func(s *target.Setup) (target.Target, error) {
			return New(configOf(s))
		},
	})
}

// timeOptions reads compress and step-slice into a Config.
func timeOptions(s target.Settings) (Config, error) {
	var cfg Config
	switch v := s.Get("compress"); v {
	case "", "false":
	case "true":
		cfg.Compress = true
	default:
		return cfg, fmt.Errorf("renode: --compress %q: want true or false", v)
	}
	if v := s.Get("step-slice"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return cfg, fmt.Errorf("renode: --step-slice %q: want a positive duration such as 1s", v)
		}
		if !cfg.Compress {
			return cfg, fmt.Errorf("renode: --step-slice needs --compress")
		}
		cfg.StepSlice = d
	}
	return cfg, nil
}

// configOf turns a run's set-up into a Config.
func configOf(s *target.Setup) Config {
	tc, _ := timeOptions(s.Settings) // checked by Validate
	return Config{
		Compress:      tc.Compress,
		StepSlice:     tc.StepSlice,
		Binary:        s.Settings.Get("renode"),
		Image:         s.Settings.Get("renode-image"),
		Platform:      s.Settings.Get("renode-platform"),
		ConsoleUART:   s.Settings.Get("console-uart"),
		TransportUART: s.Settings.Get("module-uart"),
		Extra:         s.Settings["renode-command"],
		Firmware:      s.Firmware,
		Log:           s.Log,
	}
}
