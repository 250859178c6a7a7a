# tandem: make demo (run it), make test (test it).
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 3s

.PHONY: all build test test-short demo lint bench bench-go fuzz fuzz-short deps clean torture

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/tandem ./cmd/tandem

## deps: install what the tests need (as root, with apt-get) or say what is missing.
deps:
	@bash .ci/deps

## test: everything CI runs: vet, all tests with the race detector, a short fuzz of every decoder.
test: deps
	$(GO) vet ./...
	$(GO) test -race -timeout 15m ./...
	@FUZZTIME=$(FUZZTIME) bash .ci/fuzz

## test-short: the tests without race detector and fuzzing, for a quick edit loop.
test-short:
	$(GO) test -short ./...

## demo: two nodes on this machine, paired, with a 50 ms each way link between them.
demo: build
	./bin/tandem demo --latency 50ms

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

## bench: tandem side by side with the tools users would pick instead, in one run:
## files (rsync, lsyncd, Unison, Syncthing on loopback through a 100 ms RTT proxy),
## the database (MariaDB's own replication, same sysbench load) and the failover
## (time to the DNS flip, BIND9 and tandem's own DNS). Installs the peers with
## apt-get when missing; 20-30 min. BENCH_FLAGS="--tools tandem,rsync --tree 2000
## --parts files" for a quick run; see `go run ./cmd/tandem-bench --help`.
bench: deps
	@command -v lsyncd >/dev/null && command -v unison >/dev/null && command -v syncthing >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lsyncd unison syncthing; }
	$(GO) run ./cmd/tandem-bench $(BENCH_FLAGS)

## bench-go: the Go benchmarks of the hot paths (delta, index, watcher, apply, snapshot).
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## torture: the randomized fault test, long: two daemons, random writes on both
## sides, partitions, resets, latency spikes, kill -9 and restarts; then it checks
## that nothing was lost. A short run is part of `make test`. A failing run prints
## its seed: TORTURE_SEED=N make torture replays it.
TORTURE_OPS ?= 5000
TORTURE_SEED ?= 0
torture:
	set -o pipefail; $(GO) test -run '^TestTorture' -count=1 -v -timeout 60m ./cmd/tandem -torture.ops=$(TORTURE_OPS) -torture.seed=$(TORTURE_SEED) 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|torture_test.go'

## fuzz: every fuzz target for longer (FUZZTIME=10m make fuzz for a soak).
fuzz: FUZZTIME = 1m
fuzz:
	@FUZZTIME=$(FUZZTIME) bash .ci/fuzz

clean:
	rm -rf bin
