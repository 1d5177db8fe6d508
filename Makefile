# signet: the only commands a newcomer needs are `make run` and `make test`.
# Each first installs missing Debian packages (scripts/install-deps), then builds what is needed.

DATA_DIR ?= signet-data
JOBS ?= $(shell nproc)
SIGNET := build/dev/src/cli/signet

.PHONY: all deps build run test asan asan-build bench fuzz release format tidy clean

all: build

deps:
	@scripts/install-deps

build/dev/build.ninja: CMakePresets.json CMakeLists.txt
	cmake --preset dev

build: deps build/dev/build.ninja
	cmake --build --preset dev -j $(JOBS)

# Runs the service on https://127.0.0.1:8443; the first run creates the embedded default (SQLite +
# SoftHSM2 + a development TLS certificate in $(DATA_DIR)) and prints the bootstrap admin once.
run: build
	$(SIGNET) serve --data-dir $(DATA_DIR)

# Every test twice: the normal build, then under AddressSanitizer + UndefinedBehaviorSanitizer
# (with LeakSanitizer), because signet parses untrusted input and drives C libraries.
test: build asan-build
	ctest --preset dev -j $(JOBS)
	ctest --preset asan -j $(JOBS)

build/asan/build.ninja: CMakePresets.json CMakeLists.txt
	cmake --preset asan

asan-build: deps build/asan/build.ninja
	cmake --build --preset asan -j $(JOBS)

asan: asan-build
	ctest --preset asan -j $(JOBS)

release: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS)

# Benchmarks print their numbers next to the comparison measured in the same run.
bench: release
	build/release/bench/keystore_bench
	build/release/bench/csc_bench
	build/release/bench/log_append_bench
	build/release/bench/log_verify_bench

# Each fuzzer runs for FUZZ_SECONDS on its seed corpus (copied, so the committed seeds stay small).
# An entry is <folder under src/>:<corpus name>; the binary is <folder with / as _>_<name>_fuzz.
# `make test` replays the committed seeds of each (the *_fuzz_replay tests).
FUZZ_SECONDS ?= 60
FUZZERS := common:encoding config:config pki:chain pki:subject server:query server:http server:json_api \
           server/log:routes audit:note audit:proof audit:tile_path audit:entry audit:export
fuzz: deps
	cmake --preset fuzz
	cmake --build --preset fuzz -j $(JOBS)
	for t in $(FUZZERS); do \
	  c=$${t%%:*}; n=$${t#*:}; p=$$(echo $$c | tr / _); mkdir -p build/fuzz/corpus/$${p}_$$n; \
	  cp -n src/$$c/fuzz/corpus/$$n/* build/fuzz/corpus/$${p}_$$n/; \
	  build/fuzz/src/$$c/$${p}_$${n}_fuzz -max_total_time=$(FUZZ_SECONDS) \
	    build/fuzz/corpus/$${p}_$$n || exit 1; \
	done

format:
	find src tests bench -name '*.h' -o -name '*.cc' | xargs clang-format -i

tidy: build
	find src -name '*.cc' -not -path '*/fuzz/*' | xargs clang-tidy -p build/dev --quiet

clean:
	rm -rf build
