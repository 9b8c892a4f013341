# sockpin: build and test both binaries.
GO ?= go
export CGO_ENABLED := 0

BINARIES := bin/proxy bin/manager
FUZZ_TARGETS := FuzzParseTarget FuzzCreateBody FuzzExecBody
FUZZTIME ?= 10s

.PHONY: all build test vet fmt-check fuzz-smoke clean

all: build

build: $(BINARIES)

bin/%: FORCE
	$(GO) build -trimpath -ldflags='-s -w' -o $@ ./cmd/$*

FORCE:

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Packages that talk to the Docker daemon use fixed names (launchdb-pgbouncer,
# launchdb-internal), so test packages run one at a time (-p 1).
test: build vet fmt-check
	$(GO) test -p 1 -count=1 -timeout 40m ./...
	$(MAKE) fuzz-smoke

# A short run of every fuzz target, so that they keep working.
fuzz-smoke:
	@for f in $(FUZZ_TARGETS); do \
		echo "fuzz $$f for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./filter || exit 1; \
	done

clean:
	rm -rf bin
