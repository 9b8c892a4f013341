# sockpin: build and test both binaries.
GO ?= go
export CGO_ENABLED := 0

BINARIES := bin/proxy bin/manager

.PHONY: all build test vet clean

all: build

build: $(BINARIES)

bin/%: FORCE
	$(GO) build -trimpath -ldflags='-s -w' -o $@ ./cmd/$*

FORCE:

vet:
	$(GO) vet ./...

# Packages that talk to the Docker daemon use fixed names (launchdb-pgbouncer,
# launchdb-internal), so test packages run one at a time (-p 1).
test: build vet
	$(GO) test -p 1 -count=1 -timeout 30m ./...

clean:
	rm -rf bin
