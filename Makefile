# reach: build, test, lint, bench, demo.
# Every target installs what it needs (Go, Go modules, Debian packages)
# itself, through scripts/setup.sh: Debian packages without starting or
# enabling the services they ship, waiting for the apt lock.

SETUP     := sh scripts/setup.sh
# GO: the go in PATH when it is as new as go.mod asks, else Go 1.26 fetched
# as the module golang.org/toolchain (with Debian's golang-go where no go is
# installed). Resolved once, on first use.
GO        ?= $(eval GO := $(or $(shell $(SETUP) go),$(error no Go toolchain for go.mod: see the setup messages above)))$(GO)
BIN       := bin/reach
PKGS      := ./...
FUZZTIME  ?= 20s

.PHONY: all build test lint bench demo generate check-generate deps fuzz clean

all: build

# Debian packages the tests and the demo use (namespaces, capture, peers).
APT_PKGS := iproute2 procps tcpdump ethtool nftables openssh-client \
	nginx openssh-server redis-server postgresql mariadb-server

# DuckDB's Node.js package, the independent Parquet reader of the export tests.
DUCKDB_DIR := $(CURDIR)/.cache/duckdb
DUCKDB_PKG := @duckdb/node-api@1.5.6-r.1

deps:
	@if [ "$$(id -u)" = 0 ] && ! command -v node >/dev/null 2>&1; then $(SETUP) apt nodejs npm; fi
	@if command -v npm >/dev/null 2>&1 && [ ! -d $(DUCKDB_DIR)/node_modules/@duckdb/node-api ]; then \
	  mkdir -p $(DUCKDB_DIR) && npm install --silent --no-audit --no-fund --prefix $(DUCKDB_DIR) $(DUCKDB_PKG); fi
	@$(SETUP) apt $(APT_PKGS)
	$(GO) mod download

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
build: deps
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/reach

# test: vet, lint and the whole suite (fuzz seeds included), one package at
# a time: the namespace tests measure packets and must not share two cores
# with other packages' tests. Runs as root in CI, where they all run.
test: deps lint check-generate
	REACH_DUCKDB_DIR=$(DUCKDB_DIR) $(GO) test -p 1 -count=1 $(PKGS)

# BPF_PKGS build bpf/xdp.c and the responder: make test installs them so
# the committed bpf2go output is always checked against its C source.
BPF_PKGS := clang-14 llvm-14 libbpf-dev

# check-generate: the committed bpf2go output must be what the C source
# builds to (skipped, saying so, where the compiler cannot be installed).
check-generate:
	@$(SETUP) apt $(BPF_PKGS)
	@if command -v clang-14 >/dev/null 2>&1 && [ -f /usr/include/bpf/bpf_helpers.h ]; then \
	  $(GO) generate ./bpf/ ./bench/responder/ && git diff --exit-code --stat -- bpf/ bench/responder/ || { echo "bpf/ or bench/responder/ is stale: run make generate and commit"; exit 1; }; \
	else echo "clang-14 or libbpf-dev missing: not checking bpf/ against xdp.c"; fi

lint: deps
	@out=$$("$$($(GO) env GOROOT)/bin/gofmt" -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

# bench: the harness (reach against ZMap and masscan in the simulated
# network: sink, recall and idle modes, RUNS runs each, alternating), then
# the Go micro-benchmarks in benchstat format. Installs ZMap and masscan
# unless PEERS=0. Results go to bench-out/. Needs root.
RUNS ?= 5
PEERS ?= 1
bench: build
	@mkdir -p bench-out
	./$(BIN) bench --runs $(RUNS) $(if $(filter 1,$(PEERS)),--install-peers) --json bench-out/bench.json | tee bench-out/bench.txt
	$(GO) test -run '^$$' -bench '^Benchmark(Next|At|PermutedPairs|Probe)$$' -benchmem -count 5 ./engine/permute ./engine/target ./engine/packet | tee bench-out/micro.txt
	$(GO) test -run '^$$' -bench '^BenchmarkRingbufRead$$' -benchtime 200000x -benchmem -count 5 ./bpf | tee -a bench-out/micro.txt
	$(GO) test -run '^$$' -bench '^BenchmarkWrite$$' -benchtime 200000x -benchmem -count 5 ./export | tee -a bench-out/micro.txt

# fuzz: run every fuzz target of every package for FUZZTIME each.
fuzz: deps
	@for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do \
	  pkg=./$$(dirname $$f); \
	  for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -c6-); do \
	    echo "== $$pkg $$t"; $(GO) test $$pkg -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) || exit 1; \
	  done; \
	done

# demo: the main job on the built-in simulated network: build it (network
# namespaces, veth, an XDP responder with a known ground truth; addresses in
# 198.18.0.0/15 only), scan it from its own namespace, check every answer
# against the ground truth, tear it down. Needs root.
demo: build
	./$(BIN) demo

# generate: rebuild the bpf2go output from bpf/xdp.c (needs clang-14, llvm-14,
# libbpf-dev).
generate:
	@$(SETUP) apt $(BPF_PKGS)
	$(GO) generate ./bpf/ ./bench/responder/

clean:
	rm -rf bin
