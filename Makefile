# sockpin: build and test both binaries, build their images, run the demo.
GO ?= go
DOCKER ?= docker
export CGO_ENABLED := 0

BINARIES := bin/proxy bin/manager bin/load
# Fuzz targets as package:name. Each package keeps its corpus in
# <package>/testdata/fuzz/<name>/ (seeds, and any input that once failed, which
# every go test run replays); what a fuzz run discovers stays in Go's cache.
FUZZ_TARGETS := filter:FuzzParseTarget filter:FuzzCreateBody filter:FuzzExecBody \
	filter:FuzzObjectField filter:FuzzArrayElements filter:FuzzReadContainer filter:FuzzNarrowContainer \
	proxy:FuzzServeConn
# Per target: FUZZTIME in make test (fuzz-smoke), FUZZ_RUNTIME in make fuzz.
FUZZTIME ?= 10s
FUZZ_RUNTIME ?= 2m
# Interesting inputs are minimized for at most this long, so that the time goes to
# fuzzing (Go's default is a minute per input).
FUZZ_MINIMIZE ?= 5s

# The reliability tests; make soak runs them with SOCKPIN_SOAK=1, which
# selects their long variants (README, Reliability).
SOAK_TESTS := TestDaemonGoneAndBack|TestHostileClients|TestStreamDisconnects|TestLoad
SOAK_TESTS := $(SOAK_TESTS)|TestShutdown|TestManagerKilledMidSpawn|TestManagerDependenciesDown
SOAK_TESTS := $(SOAK_TESTS)|TestManagerManyProjects|TestHTTPHostileInput
SOAK_TESTS := $(SOAK_TESTS)|TestReconcileAfterCrashInSpawn

# Image names; the tests build under their own names and add labels through
# IMAGE_BUILD_FLAGS.
PROXY_IMAGE ?= sockpin/proxy:latest
MANAGER_IMAGE ?= sockpin/manager:latest
IMAGE_BUILD_FLAGS ?=
# Extra flags for the demo driver (bin/demo -help lists them).
DEMO_FLAGS ?=

.PHONY: all build test vet fmt-check fuzz-smoke fuzz run-fuzz soak clean images demo bench load

all: build

build: $(BINARIES)

bin/%: FORCE
	$(GO) build -trimpath -ldflags='-s -w' -o $@ ./cmd/$*

FORCE:

# The demo driver and the stand-in program it packs into images.
bin/demo: FORCE
	$(GO) build -trimpath -o $@ ./deploy/demo

bin/standin: FORCE
	$(GO) build -trimpath -ldflags='-s -w' -o $@ ./internal/dockertest/testdata/standin

# Both images FROM scratch, from the static binaries: no registry needed.
images: build
	$(DOCKER) build --force-rm $(IMAGE_BUILD_FLAGS) -t $(PROXY_IMAGE) -f deploy/proxy.Dockerfile .
	$(DOCKER) build --force-rm $(IMAGE_BUILD_FLAGS) -t $(MANAGER_IMAGE) -f deploy/manager.Dockerfile .

# Everything on this machine, nothing to configure: see README.md. The first
# step only checks that the Docker daemon answers, so that a missing daemon
# gives one clear message instead of a failed image build.
demo: build bin/demo bin/standin
	@bin/demo -check $(DEMO_FLAGS)
	@$(MAKE) --no-print-directory images
	@bin/demo -proxy-image $(PROXY_IMAGE) -manager-image $(MANAGER_IMAGE) $(DEMO_FLAGS)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# Packages that talk to the Docker daemon use fixed names (launchdb-pgbouncer,
# launchdb-internal), so test packages run one at a time (-p 1).
test: build vet fmt-check
	$(GO) test -p 1 -count=1 -timeout 40m ./...
	$(GO) test -run '^$$' -bench . -benchtime 1x ./filter
	$(MAKE) fuzz-smoke

# A short run of every fuzz target, so that they keep working.
fuzz-smoke:
	@$(MAKE) --no-print-directory run-fuzz FUZZ_FOR=$(FUZZTIME)

# Every fuzz target for FUZZ_RUNTIME (make fuzz FUZZ_RUNTIME=10m). A failing
# input is written to the package's testdata/fuzz/<name>/ and fails go test
# from then on: keep it there as the regression test of the fix.
fuzz:
	@$(MAKE) --no-print-directory run-fuzz FUZZ_FOR=$(FUZZ_RUNTIME)

run-fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzz $$name in ./$$pkg for $(FUZZ_FOR)"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZ_FOR) \
			-fuzzminimizetime $(FUZZ_MINIMIZE) ./$$pkg || exit 1; \
	done

# The long variants of the reliability tests: a minute of load from 200
# clients, 1,000 stream disconnects, 30 manager kills, with the usual faults.
soak: build
	SOCKPIN_SOAK=1 $(GO) test -p 1 -count=1 -timeout 60m -v -run '^($(SOAK_TESTS))$$' \
		./proxy ./manager

clean:
	rm -rf bin

# The decision path alone: ns/op and allocs/op per operation.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./filter

# Proxy against the direct socket, side by side (see README, Performance).
load: build bin/standin
	bin/load
