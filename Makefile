# ddhil — every workflow is a target here. `make demo` and `make test` do all
# set-up on a fresh Debian/Ubuntu machine (they call `make deps`).

GO        ?= go
OUT       ?= run/demo
PERIODS   ?= 5
# Debian packages the harness and its tests use; `make deps` installs the missing ones.
APT_PKGS  := qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi openocd socat chromium mosquitto make
APT_BINS  := qemu-system-arm arm-none-eabi-gcc openocd socat chromium mosquitto
# What building the firmware alone needs (users' CI jobs that only build it).
FW_PKGS   := gcc-arm-none-eabi libnewlib-arm-none-eabi make
FW_BINS   := arm-none-eabi-gcc

# apt_install installs $(1) when one of the commands $(2) is missing.
define apt_install
	@missing=""; for b in $(2); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	[ -f /usr/lib/arm-none-eabi/newlib/libc.a ] || [ -f /usr/lib/arm-none-eabi/lib/libc.a ] || missing="$$missing newlib"; \
	if [ -n "$$missing" ]; then \
	  echo "deps: missing:$$missing; installing $(1)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	    echo "deps: not root and no sudo: install $(1) by hand" >&2; exit 3; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $(1); \
	fi
endef

.PHONY: all deps deps-firmware firmware build test test-short demo run renode hil bench fuzz checks-doc vet clean

all: build firmware

## deps: install missing Debian packages (apt-get, as root or through sudo) and Go modules.
deps:
	$(call apt_install,$(APT_PKGS),$(APT_BINS))
	@command -v $(GO) >/dev/null || { echo "deps: Go 1.26 is required (https://go.dev/dl)" >&2; exit 3; }
	$(GO) mod download

## deps-firmware: only the cross compiler and newlib.
deps-firmware:
	$(call apt_install,$(FW_PKGS),$(FW_BINS))

## firmware: build the reference agent for every board profile.
firmware: deps-firmware
	$(MAKE) -C firmware

## build: the ddhil binary.
build:
	$(GO) build -ldflags "-X github.com/ddhil/ddhil/internal/version.revision=$$(git describe --always --dirty 2>/dev/null)" -o ddhil ./cmd/ddhil

## test: the whole suite (ci/test.sh: progress per test, a summary; make maps any failure to exit 2, the script keeps 1/3).
test:
	ci/test.sh

## test-short: unit tests only (no processes, no emulators).
test-short:
	$(GO) test -short -count=1 ./...

## demo: the main job on the embedded default (ci/demo.sh: exits like ddhil run; make maps any failure to 2).
demo:
	OUT=$(OUT) PERIODS=$(PERIODS) ci/demo.sh

## run: alias of demo with overridable OUT/PERIODS/ARGS.
run: demo

# The Renode and board suites keep their run folders (reports) under run/.
renode hil: export DDHIL_OUT ?= $(CURDIR)/run

## renode: the conformance suite on Renode (local binary via RENODE=path, or Docker image via RENODE_IMAGE).
renode: firmware
	$(GO) test -count=1 -timeout 30m ./tests/... -args -ddhil.target=renode $(if $(RENODE),-ddhil.renode=$(RENODE)) $(if $(RENODE_IMAGE),-ddhil.renode-image=$(RENODE_IMAGE))

## hil: the conformance suite on an attached board (HWMAP=hwmap.yaml BOARD=id).
hil: firmware
	$(GO) test -count=1 -timeout 60m ./tests/... -args -ddhil.target=board -ddhil.hwmap=$(HWMAP) $(if $(BOARD),-ddhil.board=$(BOARD))

## bench: the Go benchmarks quoted in README.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./broker/...

## fuzz: each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzValidateJSON -fuzztime $(FUZZTIME) ./broker/defender
	$(GO) test -run '^$$' -fuzz FuzzValidateCBOR -fuzztime $(FUZZTIME) ./broker/defender
	$(GO) test -run '^$$' -fuzz FuzzMatchTopic -fuzztime $(FUZZTIME) ./broker/defender

## checks-doc: regenerate docs/checks.md from the catalogue.
checks-doc:
	$(GO) run ./cmd/ddhil checks --markdown > docs/checks.md

vet:
	$(GO) vet ./...

clean:
	rm -rf ddhil run
	$(MAKE) -C firmware clean
