# bastion — build, test, lint, bench.
#
# Go 1.26.8 (the machine's) has standard-library vulnerabilities fixed in
# later releases; every target builds with the approved go1.27.3 toolchain,
# which the go command fetches from the module proxy on first use.
export GOTOOLCHAIN := go1.27.3
# cgo builds the PKCS#11 backend (CA keys in an HSM, through crypto11), as
# pg_query_go and the race detector need it anyway.
export CGO_ENABLED := 1
GO       ?= go
BIN      ?= bin/bastion
PKGS     ?= ./...
# The vulnerability database is built from the golang.org/x/vulndb module
# (served by the Go module proxy), so govulncheck works without vuln.go.dev.
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
VULN_VERSION   ?= v1.9.0
CACHE    ?= $(CURDIR)/.cache

# What `bastion version` reports (cmd/bastion/version.go): a tag or `git
# describe` string, the commit and the build date. Outside a git checkout
# they stay empty and the binary says "devel".
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE     ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
DIST     ?= dist

.PHONY: all build test lint vet fmtcheck tidycheck depcheck vulncheck fuzz bench demo dist clean player-assets

all: build

# The first build compiles PostgreSQL's parser (pg_query, C, through cgo):
# minutes on a small machine, during which the go command prints nothing.
# Say so, and say when it is done; later builds take seconds.
build:
	@if [ ! -x $(BIN) ]; then \
		echo "Building $(BIN). The first build compiles PostgreSQL's SQL parser (pg_query, C code, through cgo)"; \
		echo "and takes about 3-4 minutes on 2 cores with nothing printed meanwhile; later builds take seconds."; \
	else echo "Building $(BIN) …"; fi
	@start=$$(date +%s); $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/bastion && \
		echo "Built $(BIN) in $$(( $$(date +%s) - start ))s: $$(./$(BIN) version)"

# The one test command: README and .ci/run both call it.
test:
	$(GO) test -race -timeout 40m $(PKGS)

lint: vet fmtcheck tidycheck depcheck vulncheck

vet:
	$(GO) vet $(PKGS)

fmtcheck:
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# go.mod and go.sum say exactly what the code imports.
tidycheck:
	@$(GO) mod tidy -diff || { echo "go.mod is not tidy: run go mod tidy"; exit 1; }

# Import direction is part of the design (docs/ARCHITECTURE.md).
depcheck:
	@./.ci/depcheck

vulncheck:
	@mkdir -p $(CACHE)
	@if [ ! -f $(CACHE)/vulndb/index/db.json ]; then \
		dir=$$($(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
		$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns $$dir/data/osv -out $(CACHE)/vulndb; \
	fi
	$(GO) run golang.org/x/vuln/cmd/govulncheck@$(VULN_VERSION) -db file://$(CACHE)/vulndb $(PKGS)

# Short coverage-guided runs of every fuzz target (FUZZTIME each).
FUZZTIME ?= 20s
fuzz:
	@./.ci/fuzz $(FUZZTIME)

# Side-by-side benchmarks against OpenSSH (bench/); about five minutes.
bench: build
	$(GO) run ./bench -bastion $(BIN) -out docs/BENCHMARKS.md

# The web console's player: the built files of the asciinema-player npm
# package (with its LICENSE), embedded in the binary with go:embed. This
# refreshes them from the npm registry; nothing of Node runs at run time.
PLAYER_VERSION ?= 3.18.0
PLAYER_DIR     := internal/console/static/player
player-assets:
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	(cd $$tmp && npm pack --silent asciinema-player@$(PLAYER_VERSION) >/dev/null && tar xzf asciinema-player-$(PLAYER_VERSION).tgz) && \
	mkdir -p $(PLAYER_DIR) && \
	cp $$tmp/package/dist/bundle/asciinema-player.min.js $$tmp/package/dist/bundle/asciinema-player.css $$tmp/package/LICENSE $(PLAYER_DIR)/ && \
	echo "asciinema-player $(PLAYER_VERSION) (npm), sha256 of the package: $$(sha256sum $$tmp/asciinema-player-$(PLAYER_VERSION).tgz | cut -d' ' -f1)" > $(PLAYER_DIR)/VERSION && \
	cat $(PLAYER_DIR)/VERSION

demo: build
	./$(BIN) demo

# Release tarballs for linux/amd64 and linux/arm64 with SHA256SUMS: the
# binary, the systemd unit, the example config and the README (.ci/dist says
# how arm64 is cross-compiled with cgo).
dist:
	@VERSION="$(VERSION)" COMMIT="$(COMMIT)" DATE="$(DATE)" DIST="$(DIST)" GO="$(GO)" ./.ci/dist

clean:
	rm -rf bin $(DIST) $(CACHE)
