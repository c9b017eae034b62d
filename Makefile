# libvirt-nvram-hook. `make help` lists the targets.
GO       ?= go
BIN      := bin/libvirt-nvram-hook
PKG      := github.com/libvirt-nvram-hook/libvirt-nvram-hook
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X $(PKG)/internal/app.Version=$(VERSION)
PREFIX   ?= /usr/local
DESTDIR  ?=
# "Name <address>" for the packages' Maintainer/Packager fields. Empty: the
# build scripts use a placeholder that says it is one (install/pkglib.sh).
MAINTAINER ?=

.PHONY: all build test vet fmt-check tidy-check notices e2e demo bench install uninstall deb rpm clean help

all: build

help:
	@echo "make build      build $(BIN)"
	@echo "make test       go vet, gofmt, go mod tidy check, go test -race (no root needed)"
	@echo "make e2e        real libvirtd suite (root; installs Debian packages)"
	@echo "make demo       show the hook on a real libvirtd with built-in defaults (root)"
	@echo "make install    install binary, hook entry and config (PREFIX, DESTDIR)"
	@echo "make uninstall  remove binary, hook entry and man page; keeps varstores and a modified config"
	@echo "make deb rpm    packages in bin/ (MAINTAINER=\"Name <address>\" sets the maintainer)"
	@echo "make notices    regenerate install/THIRD-PARTY-NOTICES and install/debian/copyright.in"
	@echo "make bench      whole-process timings, and virsh start with/without the hook (root)"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./hook

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# go.mod and go.sum are what `go mod tidy` makes of the imports (it may ask
# the module proxy for go.sum lines of test-only dependencies).
tidy-check:
	$(GO) mod tidy -diff

test: vet fmt-check tidy-check
	$(GO) test -race -count=1 ./...

clean:
	rm -rf bin

# The real-libvirt suite: root, installs Debian packages, starts and stops its
# own libvirtd, virtlogd and a second libvirt host. See internal/e2e/README.md.
e2e: build
	bash internal/e2e/run.sh

# The main job on built-in defaults, on a real libvirtd (root).
demo: build
	bash install/demo.sh

install: build
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" bash install/install.sh install $(BIN)

uninstall:
	PREFIX="$(PREFIX)" DESTDIR="$(DESTDIR)" bash install/install.sh uninstall

# The third-party notices and the Debian copyright, from go.mod, go.sum and
# the modules' LICENSE files (install/notices; its test fails when stale).
notices:
	$(GO) run ./install/notices -notices install/THIRD-PARTY-NOTICES -copyright install/debian/copyright.in

deb: build
	VERSION="$(VERSION)" MAINTAINER="$(MAINTAINER)" bash install/debian/build-deb.sh $(BIN) bin

rpm: build
	VERSION="$(VERSION)" MAINTAINER="$(MAINTAINER)" bash install/rpm/build-rpm.sh $(BIN) bin

# Whole-process timings against /bin/true, a minimal Go program, cp and
# libvirt's own copy; as root also virsh start with and without the hook on
# a real libvirtd (takes the machine's real-libvirt lock; BENCH_VIRSH=0
# skips it). Writes internal/bench/results.md.
bench: build
	bash internal/bench/run.sh
