# tungate's everyday commands. Targets that create namespaces (test, bench)
# must run as root.

GO ?= go
BENCHFLAGS ?=
FUZZTIME ?= 20s
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: build test bench fuzz clean install uninstall

# Without cgo: tungate drops its capabilities in every thread after set-up,
# which the Go runtime refuses in a binary that uses cgo.
build:
	CGO_ENABLED=0 $(GO) build -o bin/tungate ./cmd/tungate

test:
	$(GO) test -count=1 -timeout 15m ./...

# Measures tungate against the kernel, pasta and slirp4netns in one run
# (under 10 minutes). Try BENCHFLAGS=-quick first.
bench: build
	$(GO) build -o bin/tungate-bench ./cmd/tungate-bench
	./bin/tungate-bench -tungate ./bin/tungate $(BENCHFLAGS)

# Runs every fuzz target for FUZZTIME each and lists the ones that failed.
# A short -fuzzminimizetime keeps the run inside FUZZTIME: minimising a new
# input past the deadline otherwise ends in "context deadline exceeded".
fuzz:
	@failed=""; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1x $$pkg \
				|| failed="$$failed $$pkg.$$target"; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz targets that failed:$$failed"; exit 1; fi

clean:
	rm -rf bin

# Installs the binary, the man pages and the bash, zsh and fish completions
# under $(DESTDIR)$(PREFIX).
install: build
	install -D -m 0755 bin/tungate $(DESTDIR)$(PREFIX)/bin/tungate
	install -D -m 0644 docs/tungate.1 $(DESTDIR)$(PREFIX)/share/man/man1/tungate.1
	install -D -m 0644 docs/tungate-run.1 $(DESTDIR)$(PREFIX)/share/man/man1/tungate-run.1
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	bin/tungate completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/tungate
	bin/tungate completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_tungate
	bin/tungate completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/tungate.fish

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/tungate \
		$(DESTDIR)$(PREFIX)/share/man/man1/tungate.1 \
		$(DESTDIR)$(PREFIX)/share/man/man1/tungate-run.1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/tungate \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_tungate \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/tungate.fish
