# tungate's everyday commands. Targets that create namespaces (test, bench)
# must run as root.

GO ?= go
BENCHFLAGS ?=
FUZZTIME ?= 20s

.PHONY: build test bench fuzz clean

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
