# tungate's everyday commands. Targets that create namespaces (test, bench)
# must run as root.

GO ?= go
BENCHFLAGS ?=
FUZZTIME ?= 20s

.PHONY: build test bench fuzz clean

build:
	$(GO) build -o bin/tungate ./cmd/tungate

test:
	$(GO) test -count=1 -timeout 15m ./...

# Measures tungate against the kernel, pasta and slirp4netns in one run
# (under 10 minutes). Try BENCHFLAGS=-quick first.
bench: build
	$(GO) build -o bin/tungate-bench ./cmd/tungate-bench
	./bin/tungate-bench -tungate ./bin/tungate $(BENCHFLAGS)

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

clean:
	rm -rf bin
